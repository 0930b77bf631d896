import { deliveryMeta, scheduleIdOf, withScheduleId } from "./message-meta.js";
import { storedRecordInfo, storedRecordProblem } from "./stored-record.js";
import { varintSize, WIRE_LEN, WIRE_VARINT, WireError, WireReader, writeVarint } from "./wire-format.js";

/**
 * Storage format v2: a run of consecutive messages stored as one row. Its body is each
 * message's `nervebus.v1.Delivery` wire form without `attempt` (1 seq, 2 data, the stored
 * metadata 3 attributes / 4 ordering_key / 5 message_id / 8 trace_id, 6 publish_time), each
 * preceded by its length, back to back. A first delivery is such a record with field 7
 * (attempt) appended, which protobuf allows: no decoding, no re-encoding. Schedule ids of
 * delayed messages (internal, never delivered) are kept apart, in the run's `ids` blob:
 * (seq − first seq, schedule id) varint pairs; null when the run has none.
 */

/** What a run is made of: one message as the log holds it. */
export interface RunMessage {
  readonly seq: number;
  readonly publishTime: number;
  readonly data: Uint8Array;
  /** Stored metadata (message-meta.ts; may lead with a schedule id). */
  readonly meta: Buffer;
}

/** A run as a store row holds it. */
export interface RunRow {
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly firstTime: number;
  readonly lastTime: number;
  /** Payload and metadata bytes of its messages, as limits count them (for retention). */
  readonly bytes: number;
  readonly body: Buffer;
  readonly ids: Buffer | null;
}

/** One message read back from a run: its fields are views into the run's body. */
export interface RunRecord extends RunMessage {
  /** The whole record (Delivery without attempt). */
  readonly record: Buffer;
}

const TAG_SEQ = (1 << 3) | WIRE_VARINT;
const TAG_DATA = (2 << 3) | WIRE_LEN;
const TAG_TIME = (6 << 3) | WIRE_LEN;

function timestampSize(ms: number): number {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  return (seconds > 0 ? 1 + varintSize(seconds) : 0) + (nanos > 0 ? 1 + varintSize(nanos) : 0);
}

/** Bytes of one record (without its length prefix). */
export function recordSize(
  seq: number,
  publishTime: number,
  dataLength: number,
  deliveryMetaLength: number,
): number {
  return (
    1 +
    varintSize(seq) +
    (dataLength > 0 ? 1 + varintSize(dataLength) + dataLength : 0) +
    deliveryMetaLength +
    2 +
    timestampSize(publishTime)
  );
}

/** Writes one record at `pos` (see recordSize); returns the position after it. */
export function writeRecord(
  buf: Buffer,
  pos: number,
  seq: number,
  publishTime: number,
  data: Uint8Array,
  meta: Buffer,
): number {
  buf[pos++] = TAG_SEQ;
  pos = writeVarint(buf, pos, seq);
  if (data.byteLength > 0) {
    buf[pos++] = TAG_DATA;
    pos = writeVarint(buf, pos, data.byteLength);
    buf.set(data, pos);
    pos += data.byteLength;
  }
  buf.set(meta, pos);
  pos += meta.length;
  const seconds = Math.floor(publishTime / 1000);
  const nanos = (publishTime - seconds * 1000) * 1_000_000;
  buf[pos++] = TAG_TIME;
  buf[pos++] = timestampSize(publishTime);
  if (seconds > 0) {
    buf[pos++] = 1 << 3;
    pos = writeVarint(buf, pos, seconds);
  }
  if (nanos > 0) {
    buf[pos++] = 2 << 3;
    pos = writeVarint(buf, pos, nanos);
  }
  return pos;
}

/**
 * Encodes consecutive messages (seqs first…last without a gap) as one run. `bytes` is what
 * limits count of them (payload plus metadata), kept in the row for retention by size.
 */
export function encodeRun(
  messages: readonly RunMessage[],
  bytes: number,
  onRecord?: (index: number, record: Buffer, data: Buffer) => void,
): RunRow {
  const n = messages.length;
  if (n === 0) throw new RangeError("a run holds at least one message");
  const metas = new Array<Buffer>(n);
  const sizes = new Array<number>(n);
  let size = 0;
  let scheduled = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    if (m.seq !== messages[0]!.seq + i)
      throw new RangeError(`seq ${m.seq} does not follow ${m.seq - 1} in a run`);
    const meta = deliveryMeta(m.meta);
    if (meta !== m.meta) scheduled++;
    metas[i] = meta;
    const s = recordSize(m.seq, m.publishTime, m.data.byteLength, meta.length);
    sizes[i] = s;
    size += varintSize(s) + s;
  }
  const body = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    pos = writeVarint(body, pos, sizes[i]!);
    const start = pos;
    pos = writeRecord(body, pos, m.seq, m.publishTime, m.data, metas[i]!);
    if (onRecord !== undefined) {
      // The payload sits after the seq field and the data field's tag and length.
      const dataStart =
        start + 1 + varintSize(m.seq) + (m.data.byteLength > 0 ? 1 + varintSize(m.data.byteLength) : 0);
      onRecord(i, body.subarray(start, pos), body.subarray(dataStart, dataStart + m.data.byteLength));
    }
  }
  const first = messages[0]!;
  const last = messages[n - 1]!;
  let ids: Buffer | null = null;
  if (scheduled > 0) {
    const pairs: number[] = [];
    for (const m of messages) {
      const id = scheduleIdOf(m.meta);
      if (id !== undefined) pairs.push(m.seq - first.seq, id);
    }
    ids = Buffer.allocUnsafe(pairs.reduce((t, v) => t + varintSize(v), 0));
    let p = 0;
    for (const v of pairs) p = writeVarint(ids, p, v);
  }
  return {
    firstSeq: first.seq,
    lastSeq: last.seq,
    firstTime: first.publishTime,
    lastTime: last.publishTime,
    bytes,
    body,
    ids,
  };
}

/**
 * Reads a run's records with seq in [from, to]; each field is a view into `body`, and a
 * message with a schedule id gets its metadata back with the id in front. Records are the
 * seqs from `firstSeq` on (the row's; by default the first record's), each checked as stored
 * bytes are (storedRecordProblem): a malformed one throws WireError naming its seq.
 */
export function decodeRun(
  body: Buffer,
  ids: Buffer | null,
  from = 0,
  to = Number.MAX_SAFE_INTEGER,
  firstSeq?: number,
): RunRecord[] {
  const scheduleIds = new Map<number, number>();
  if (ids !== null && ids.length > 0) {
    const r = new WireReader(ids);
    while (!r.done) {
      const offset = r.varint();
      scheduleIds.set(offset, r.varint());
    }
  }
  const out: RunRecord[] = [];
  const r = new WireReader(body);
  let first = firstSeq ?? -1;
  for (let k = 0; !r.done; k++) {
    const [start, end] = r.lenRange();
    if (first < 0) first = new WireReader(body, start + 1, end).varint();
    const seq = first + k;
    if (seq < from) continue;
    if (seq > to) break;
    if (storedRecordInfo(body, start, end, seq) < 0)
      throw new WireError(`the record of seq ${seq} is malformed: ${storedRecordProblem}`);
    const rec = readRecord(body, start, end);
    const scheduleId = scheduleIds.get(rec.seq - first);
    out.push(scheduleId === undefined ? rec : { ...rec, meta: withScheduleId(rec.meta, scheduleId) });
  }
  return out;
}

/** The record at body[start, end) (without its length prefix); its fields are views into `body`. */
export function readRecord(body: Buffer, start: number, end: number): RunRecord {
  const rec = new WireReader(body, start, end);
  if (rec.tag() !== TAG_SEQ) throw new WireError("run record does not start with its seq");
  const seq = rec.varint();
  let data: Buffer = body.subarray(rec.pos, rec.pos);
  let metaStart = rec.pos;
  let metaEnd = rec.pos;
  let publishTime = 0;
  while (!rec.done) {
    const at = rec.pos;
    const tag = rec.tag();
    if (tag === TAG_DATA) {
      data = rec.bytes();
      metaStart = rec.pos;
    } else if (tag === TAG_TIME) {
      metaEnd = at;
      const [ts, te] = rec.lenRange();
      const t = new WireReader(body, ts, te);
      let seconds = 0;
      let nanos = 0;
      while (!t.done) {
        const f = t.tag();
        if (f === 1 << 3) seconds = t.varint();
        else if (f === 2 << 3) nanos = t.varint();
        else t.skip(f & 7);
      }
      publishTime = seconds * 1000 + Math.floor(nanos / 1_000_000);
    } else {
      rec.skip(tag & 7);
    }
  }
  return {
    seq,
    publishTime,
    data,
    meta: body.subarray(metaStart, metaEnd),
    record: body.subarray(start, end),
  };
}
