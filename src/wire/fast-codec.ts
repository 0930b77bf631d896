import { create, type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import {
  type ReceiveRequest,
  ReceiveRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { type RecordSpan, spanSize, writeSpan } from "./record-span.js";
import { recordSize, writeRecord } from "./run-body.js";
import {
  ByteView,
  copyViews,
  varintSize,
  WIRE_LEN,
  WIRE_VARINT,
  WireReader,
  writeVarint,
  writeVarintField,
} from "./wire-format.js";

/**
 * Hand-written encoders and decoders for the messages on the hot paths: a SendPack request and
 * response, a Receive response carrying deliveries, a Receive request that only acks. They
 * produce and read exactly what protobuf-es does (test/unit/fast-codec.test.ts compares them),
 * without its per-field reflection and without building a message object per delivery:
 * deliveries copy the metadata bytes the store holds (message-meta.ts). Every other message
 * goes through protobuf-es.
 */

/**
 * What encodeSendPackResponse needs of a pack's outcomes, column-wise: kind (MessageResult
 * Outcome numbers) and seq (0: none) per message; trace ids from `traceIds` where set, else
 * 32 bytes at 32 × i in `traces` where `traced[i]` is 1, copied as bytes.
 */
export interface OutcomeColumns {
  readonly count: number;
  readonly kind: Uint8Array;
  readonly seq: Float64Array;
  readonly traces: Buffer | undefined;
  readonly traced: Uint8Array | undefined;
  readonly traceIds: readonly (string | undefined)[] | undefined;
}

/** What encodeDeliveries needs of a delivery (core's Delivered): the message and its attempt. */
export interface DeliveryFields {
  readonly message: {
    readonly seq: number;
    /** ms since epoch. */
    readonly publishTime: number;
    readonly data: Uint8Array;
    /** The stored metadata as Delivery fields (message-meta.ts deliveryMeta). */
    readonly deliveryMeta: Buffer;
    /** Format v2: the stored record (Delivery without attempt), copied as it is when present. */
    readonly record?: Buffer | undefined;
  };
  readonly attempt: number;
}

const MALFORMED = Symbol("nervebus.malformed");

/**
 * Bytes that are not a valid message decode to an empty one carrying the reason, so the
 * handler can answer INVALID_ARGUMENT with it (a decoder that throws makes grpc-js answer
 * INTERNAL "Error deserializing request", which blames the broker and says nothing).
 */
function malformed<T extends object>(empty: T, err: unknown): T {
  return Object.assign(empty, { [MALFORMED]: err instanceof Error ? err.message : String(err) });
}

/** `read(buf)`, or for bytes it cannot read, the empty message of `schema` carrying the reason. */
function readOrMalformed<D extends DescMessage>(
  schema: D,
  read: (buf: Buffer) => MessageShape<D>,
  buf: Buffer,
): MessageShape<D> {
  try {
    return read(buf);
  } catch (err) {
    return malformed(create(schema), err);
  }
}

/**
 * Any request through protobuf-es, with bytes that are not one marked (see malformedReason)
 * instead of thrown: a throwing deserializer makes grpc-js answer INTERNAL, naming nothing.
 */
export function decodeOrMalformed<D extends DescMessage>(schema: D, buf: Buffer): MessageShape<D> {
  return readOrMalformed(schema, (b) => fromBinary(schema, b), buf);
}

/** Why a request decoded by this module is malformed, or undefined when it is not. */
export function malformedReason(request: object): string | undefined {
  return (request as { [MALFORMED]?: string })[MALFORMED];
}

/** SendPackResponse bytes: first and last seq, one MessageResult per message. */
export function encodeSendPackResponse(firstSeq: number, lastSeq: number, results: OutcomeColumns): Buffer {
  const { count, kind, seq, traces, traced, traceIds } = results;
  let size = 0;
  if (firstSeq > 0) size += 1 + varintSize(firstSeq);
  if (lastSeq > 0) size += 1 + varintSize(lastSeq);
  // Per message: its trace id's length (0 or 32 from the pack; any from traceIds), worked out
  // in both passes rather than kept (no array per response).
  const traceLenOf = (i: number) => {
    const t = traceIds?.[i];
    return t !== undefined ? t.length : traced?.[i] === 1 ? 32 : 0;
  };
  for (let i = 0; i < count; i++) {
    const traceLen = traceLenOf(i);
    let len = 2; // outcome: never 0
    if (seq[i]! > 0) len += 1 + varintSize(seq[i]!);
    if (traceLen > 0) len += 2 + traceLen;
    size += 1 + varintSize(len) + len;
  }
  const buf = Buffer.allocUnsafe(size);
  const to = new ByteView(buf);
  const from = traces === undefined ? undefined : new ByteView(traces);
  let pos = 0;
  if (firstSeq > 0) pos = writeVarintField(buf, pos, 1, firstSeq);
  if (lastSeq > 0) pos = writeVarintField(buf, pos, 2, lastSeq);
  for (let i = 0; i < count; i++) {
    const s = seq[i]!;
    const traceLen = traceLenOf(i);
    buf[pos++] = (3 << 3) | WIRE_LEN;
    pos = writeVarint(buf, pos, 2 + (s > 0 ? 1 + varintSize(s) : 0) + (traceLen > 0 ? 2 + traceLen : 0));
    buf[pos++] = (1 << 3) | WIRE_VARINT;
    buf[pos++] = kind[i]!;
    if (s > 0) pos = writeVarintField(buf, pos, 2, s);
    if (traceLen > 0) {
      buf[pos++] = (3 << 3) | WIRE_LEN;
      buf[pos++] = traceLen;
      const t = traceIds?.[i];
      if (t !== undefined) pos += buf.write(t, pos, "latin1");
      else pos = copyViews(from!, 32 * i, 32 * i + 32, to, pos);
    }
  }
  return buf;
}

/**
 * A ReceiveResponse carrying these deliveries, as Delivery fields: seq (1), data (2), the
 * stored metadata as it is (3 attributes, 4 ordering_key, 5 message_id, 8 trace_id),
 * publish_time (6) and attempt (7). A RecordSpan is copied from its run's records.
 */
export function encodeDeliveries(deliveries: readonly (DeliveryFields | RecordSpan)[]): Buffer {
  const n = deliveries.length;
  const lens = new Array<number>(n);
  const metas = new Array<Buffer | undefined>(n);
  let size = 0;
  for (let i = 0; i < n; i++) {
    const d = deliveries[i]!;
    if ("run" in d) {
      const s = spanSize(d);
      lens[i] = s;
      size += s;
      continue;
    }
    const { message: m, attempt } = d;
    const attemptBytes = attempt > 0 ? 1 + varintSize(attempt) : 0;
    let len: number;
    if (m.record !== undefined) {
      // Format v2: the stored record is the delivery already; only the attempt is added.
      len = m.record.length + attemptBytes;
    } else {
      const meta = m.deliveryMeta;
      metas[i] = meta;
      len = recordSize(m.seq, m.publishTime, m.data.byteLength, meta.length) + attemptBytes;
    }
    lens[i] = len;
    size += 1 + varintSize(len) + len;
  }
  const buf = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const d = deliveries[i]!;
    if ("run" in d) {
      pos = writeSpan(buf, pos, d);
      continue;
    }
    const { message: m, attempt } = d;
    buf[pos++] = (2 << 3) | WIRE_LEN;
    pos = writeVarint(buf, pos, lens[i]!);
    if (m.record !== undefined) {
      buf.set(m.record, pos);
      pos += m.record.length;
    } else {
      pos = writeRecord(buf, pos, m.seq, m.publishTime, m.data, metas[i]!);
    }
    if (attempt > 0) pos = writeVarintField(buf, pos, 7, attempt);
  }
  return buf;
}

/**
 * ReceiveRequest from the wire. A request that only acks (the common one) is read here; any
 * other goes through protobuf-es. See malformedReason for bytes that are not one.
 */
export function decodeReceiveRequest(buf: Buffer): ReceiveRequest {
  return readOrMalformed(ReceiveRequestSchema, readReceiveRequest, buf);
}

const ACK_NUMBERS = Symbol("nervebus.ackNumbers");

/**
 * A ReceiveRequest's ack seqs as numbers: those the fast path read (no BigInt per seq: a
 * drain acks every message, and a BigInt each was a good part of the broker's garbage), or
 * else its `ackSeqs` converted.
 */
export function ackSeqNumbers(req: ReceiveRequest): readonly number[] {
  const read = (req as { [ACK_NUMBERS]?: number[] })[ACK_NUMBERS];
  return read ?? req.ackSeqs.map((s) => Number(s));
}

/**
 * Seqs one ReceiveRequest may name (acks, nacks, deadline extensions and terminations
 * together): five windows of the largest (100000), what a client sends at most at once after
 * a reconnect (its kept settlements, two windows, with the acks, nacks and extensions of one
 * each). They are all decoded before anything reads them, at up to a hundred bytes each: 9 MB
 * of packed acks (8.8 KB gzipped) took the broker 245 MB, eight such requests 925 MB.
 */
const MAX_REQUEST_SEQS = 500_000;

const TOO_MANY_SEQS = `names more than ${MAX_REQUEST_SEQS} seqs (acks, nacks, deadline extensions and terminations together); send them in several requests`;

/** Varints in buf[s, e), counted on the bytes: each ends with a byte below 128. */
function varintCount(buf: Buffer, s: number, e: number): number {
  let n = 0;
  for (let i = s; i < e; i++) if (buf[i]! < 128) n++;
  return n;
}

/** Seqs a ReceiveRequest names, counted on its bytes before protobuf-es decodes them. */
function requestSeqs(buf: Buffer): number {
  let n = 0;
  const countPacked = (s: number, e: number) => {
    n += varintCount(buf, s, e);
  };
  const r = new WireReader(buf);
  while (!r.done) {
    const tag = r.tag();
    const field = Math.floor(tag / 8);
    if ((field === 2 || field === 5) && (tag & 7) === WIRE_LEN) countPacked(...r.lenRange());
    else if (field === 3 && (tag & 7) === WIRE_LEN) {
      r.skip(WIRE_LEN);
      n++;
    } else if (field === 4 && (tag & 7) === WIRE_LEN) {
      // ExtendDeadline: its seqs (field 1), packed or not.
      const [s, e] = r.lenRange();
      const inner = new WireReader(buf, s, e);
      while (!inner.done) {
        const t = inner.tag();
        if (t === ((1 << 3) | WIRE_LEN)) countPacked(...inner.lenRange());
        else if (t === ((1 << 3) | WIRE_VARINT)) {
          inner.varint();
          n++;
        } else inner.skip(t & 7);
      }
    } else {
      if (field === 2 || field === 5) n++;
      r.skip(tag & 7);
    }
  }
  return n;
}

function readReceiveRequest(buf: Buffer): ReceiveRequest {
  const r = new WireReader(buf);
  const acks: number[] = [];
  while (!r.done) {
    const tag = r.tag();
    if (tag === ((2 << 3) | WIRE_LEN)) {
      const [s, e] = r.lenRange();
      // Counted only when its bytes could hold too many (each seq takes at least one).
      if (acks.length + (e - s) > MAX_REQUEST_SEQS && acks.length + varintCount(buf, s, e) > MAX_REQUEST_SEQS)
        throw new Error(TOO_MANY_SEQS);
      const packed = new WireReader(buf, s, e);
      while (!packed.done) acks.push(packed.varint());
    } else if (tag === ((2 << 3) | WIRE_VARINT)) {
      acks.push(r.varint());
    } else {
      if (requestSeqs(buf) > MAX_REQUEST_SEQS) throw new Error(TOO_MANY_SEQS);
      return fromBinary(ReceiveRequestSchema, buf);
    }
    if (acks.length > MAX_REQUEST_SEQS) throw new Error(TOO_MANY_SEQS);
  }
  let bigints: bigint[] | undefined;
  const req: ReceiveRequest & { [ACK_NUMBERS]: number[] } = {
    $typeName: "nervebus.v1.ReceiveRequest",
    subscribe: undefined,
    [ACK_NUMBERS]: acks,
    // The protobuf-es field, made only for a reader that asks for it.
    get ackSeqs(): bigint[] {
      bigints ??= acks.map((s) => BigInt(s));
      return bigints;
    },
    nacks: [],
    extendDeadlines: [],
    terminateSeqs: [],
    window: undefined,
  };
  return req;
}
