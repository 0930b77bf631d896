import {
  type PublishRequest,
  PublishRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { decodeOrMalformed, malformedReason } from "./fast-codec.js";
import type { Pack } from "./pack.js";
import { readSendPack } from "./send-pack-reader.js";
import {
  lenFieldSize,
  varintSize,
  WIRE_LEN,
  WireError,
  WireReader,
  writeVarint,
  writeVarintField,
} from "./wire-format.js";

/**
 * PublishResponse bytes (the Publish stream's answers), written by hand like SendPackResponse:
 * a confirm embeds the very SendPackResponse bytes the unary call would have answered, so the
 * two calls cannot drift apart.
 */

/** Whether the request's top level has a field 1 (`open`); throws WireError on bad bytes. */
function hasOpen(buf: Buffer): boolean {
  const r = new WireReader(buf);
  while (!r.done) {
    const tag = r.tag();
    if (tag >>> 3 === 1) return true;
    r.skip(tag & 7);
  }
  return false;
}

/**
 * A PublishRequest as the broker reads it: `open` (through protobuf-es, once per stream) and
 * the batch's messages read by readSendPack into a Pack (field 2 is SendPack's repeated Message).
 */
export interface PublishRequestBytes {
  readonly open: PublishRequest["open"];
  readonly pack: Pack;
  /** Why the bytes are not a valid PublishRequest, when they are not. */
  readonly malformed?: string;
}

/**
 * PublishRequest from the wire. A batch (field 2 only) is read straight into a Pack; a request
 * with `open` has its `open` decoded by protobuf-es and its messages (if any) read without it.
 */
export function readPublishRequest(buf: Buffer, reservedPrefix: string): PublishRequestBytes {
  let open: boolean;
  try {
    open = hasOpen(buf);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    return {
      open: undefined,
      pack: readSendPack(Buffer.alloc(0), reservedPrefix).pack,
      malformed: err.message,
    };
  }
  if (!open) {
    const { pack, malformed } = readSendPack(buf, reservedPrefix);
    return malformed === undefined ? { open: undefined, pack } : { open: undefined, pack, malformed };
  }
  const req = decodeOrMalformed(PublishRequestSchema, buf);
  const bad = malformedReason(req);
  const read = readSendPack(bad === undefined ? withoutField1(buf) : Buffer.alloc(0), reservedPrefix);
  const why = bad ?? read.malformed;
  return why === undefined
    ? { open: req.open, pack: read.pack }
    : { open: req.open, pack: read.pack, malformed: why };
}

/** The request without its field 1 (`open`), which readSendPack would take for a topic. */
function withoutField1(buf: Buffer): Buffer {
  const r = new WireReader(buf);
  const parts: Buffer[] = [];
  while (!r.done) {
    const at = r.pos;
    const tag = r.tag();
    r.skip(tag & 7);
    if (tag >>> 3 !== 1) parts.push(buf.subarray(at, r.pos));
  }
  return Buffer.concat(parts);
}

/** An amount of Publish credit. */
export interface CreditFields {
  readonly messages: number;
  readonly bytes: number;
}

/** One durable batch: its number on the stream and its SendPackResponse bytes. */
export interface ConfirmFields {
  readonly batch: number;
  readonly result: Buffer;
}

function creditSize(c: CreditFields): number {
  return (c.messages > 0 ? 1 + varintSize(c.messages) : 0) + (c.bytes > 0 ? 1 + varintSize(c.bytes) : 0);
}

function writeCredit(buf: Buffer, pos: number, field: number, c: CreditFields): number {
  buf[pos++] = (field << 3) | WIRE_LEN;
  pos = writeVarint(buf, pos, creditSize(c));
  if (c.messages > 0) pos = writeVarintField(buf, pos, 1, c.messages);
  if (c.bytes > 0) pos = writeVarintField(buf, pos, 2, c.bytes);
  return pos;
}

/**
 * A PublishResponse: `opened` (field 1) when given, then the confirms (2), then the credit given
 * back (3) when it is not zero.
 */
export function encodePublishResponse(
  opened: CreditFields | undefined,
  confirms: readonly ConfirmFields[],
  credit: CreditFields | undefined,
): Buffer {
  let size = 0;
  if (opened !== undefined) size += lenFieldSize(creditSize(opened));
  const lens = new Array<number>(confirms.length);
  for (let i = 0; i < confirms.length; i++) {
    const c = confirms[i]!;
    lens[i] = 1 + varintSize(c.batch) + lenFieldSize(c.result.byteLength);
    size += lenFieldSize(lens[i]!);
  }
  if (credit !== undefined) size += lenFieldSize(creditSize(credit));
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  if (opened !== undefined) pos = writeCredit(buf, pos, 1, opened);
  for (let i = 0; i < confirms.length; i++) {
    const c = confirms[i]!;
    buf[pos++] = (2 << 3) | WIRE_LEN;
    pos = writeVarint(buf, pos, lens[i]!);
    pos = writeVarintField(buf, pos, 1, c.batch);
    buf[pos++] = (2 << 3) | WIRE_LEN;
    pos = writeVarint(buf, pos, c.result.byteLength);
    pos += c.result.copy(buf, pos);
  }
  if (credit !== undefined) pos = writeCredit(buf, pos, 3, credit);
  return buf;
}
