import {
  type PublishRequest,
  PublishRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { decodeOrMalformed, decodeSendPackRequest, malformedReason } from "./fast-codec.js";
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
 * PublishRequest from the wire (see malformedReason for bytes that are not one). A batch
 * (field 2 only) is read by the SendPack decoder, whose field 2 is the same repeated Message;
 * a request with `open`, once per stream, goes through protobuf-es.
 */
export function decodePublishRequest(buf: Buffer): PublishRequest {
  let open: boolean;
  try {
    open = hasOpen(buf);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    open = true;
  }
  if (open) return decodeOrMalformed(PublishRequestSchema, buf);
  const pack = decodeSendPackRequest(buf);
  if (malformedReason(pack) !== undefined) return decodeOrMalformed(PublishRequestSchema, buf);
  return { $typeName: "nervebus.v1.PublishRequest", open: undefined, messages: pack.messages };
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
