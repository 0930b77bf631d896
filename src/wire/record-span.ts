import type { IndexedRun } from "./indexed-run.js";
import { copyBytes, varintSize, writeVarint } from "./wire-format.js";

/**
 * First deliveries of consecutive seqs held by one run: records `from`…`to − 1` (indexes into
 * the run), each sent as it is stored with `attempt = 1` appended. A batch holds one span per
 * run it takes from, not an object per message.
 */
export interface RecordSpan {
  readonly run: IndexedRun;
  readonly from: number;
  to: number;
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const F_DATA = 2;
const F_ATTRIBUTES = 3;
const F_ORDERING_KEY = 4;
const F_MESSAGE_ID = 5;
/** The Delivery field 2 tag (ReceiveResponse.deliveries) and `attempt = 1` (field 7). */
const TAG_DELIVERY = (2 << 3) | WIRE_LEN;
const TAG_ATTEMPT = 7 << 3;

/** Where the last readVarint stopped (module state: no object per read on the hot path). */
let next = 0;

function readVarint(buf: Buffer, pos: number): number {
  let result = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    const b = buf[pos++]!;
    result += (b & 127) * scale;
    if (b < 128) {
      next = pos;
      return result;
    }
    scale *= 128;
  }
  throw new RangeError("varint longer than 10 bytes in a run record");
}

/** Skips a field of wire type `type` at `pos`; returns where the next one starts. */
function skip(buf: Buffer, pos: number, type: number): number {
  if (type === WIRE_VARINT) {
    readVarint(buf, pos);
    return next;
  }
  if (type === WIRE_LEN) return readVarint(buf, pos) + next;
  if (type === 1) return pos + 8;
  if (type === 5) return pos + 4;
  throw new RangeError(`wire type ${type} in a run record`);
}

/**
 * Record `k` of a run, read from its lengths alone: its size as windows count it (messageBytes:
 * payload, attribute keys and values, ordering key, message id) times 2, plus 1 when it has an
 * ordering key. One number, so nothing is allocated per message.
 */
export function recordInfo(run: IndexedRun, k: number): number {
  // Worked out when the run was read back from a store (and checked then).
  if (run.infos !== undefined) return run.infos[k]!;
  const body = run.body;
  const len = readVarint(body, run.offsets[k]!);
  let pos = next;
  const end = pos + len;
  let bytes = 0;
  let key = 0;
  while (pos < end) {
    const tag = readVarint(body, pos);
    pos = next;
    const type = tag & 7;
    const field = tag >>> 3;
    if (type !== WIRE_LEN) {
      pos = skip(body, pos, type);
      continue;
    }
    const l = readVarint(body, pos);
    pos = next;
    if (field === F_DATA || field === F_MESSAGE_ID) bytes += l;
    else if (field === F_ORDERING_KEY) {
      bytes += l;
      if (l > 0) key = 1;
    } else if (field === F_ATTRIBUTES) {
      // A map entry: key (1) and value (2), both strings.
      let p = pos;
      const e = pos + l;
      while (p < e) {
        const t = readVarint(body, p);
        p = next;
        if ((t & 7) === WIRE_LEN) {
          const sl = readVarint(body, p);
          bytes += sl;
          p = next + sl;
        } else p = skip(body, p, t & 7);
      }
    }
    pos += l;
  }
  return bytes * 2 + key;
}

/** Where the value of record `k`'s first field with tag `tag` starts, or −1 when it has none. */
function fieldOf(run: IndexedRun, k: number, tag: number): number {
  const body = run.body;
  const len = readVarint(body, run.offsets[k]!);
  let pos = next;
  const end = pos + len;
  while (pos < end) {
    const t = readVarint(body, pos);
    pos = next;
    if (t === tag) return pos;
    pos = skip(body, pos, t & 7);
  }
  return -1;
}

/** Record `k`'s publish time (ms since epoch), read from the record. */
export function recordTime(run: IndexedRun, k: number): number {
  const body = run.body;
  let pos = fieldOf(run, k, (6 << 3) | WIRE_LEN);
  if (pos < 0) return 0;
  const tEnd = readVarint(body, pos) + next;
  pos = next;
  let seconds = 0;
  let nanos = 0;
  while (pos < tEnd) {
    const t = readVarint(body, pos);
    const v = readVarint(body, next);
    pos = next;
    if (t === 1 << 3) seconds = v;
    else if (t === 2 << 3) nanos = v;
  }
  return seconds * 1000 + Math.floor(nanos / 1_000_000);
}

/** Bytes the span's deliveries take in a ReceiveResponse (tag, length, record, attempt each). */
export function spanSize(span: RecordSpan): number {
  const { body, offsets } = span.run;
  let size = 0;
  for (let k = span.from; k < span.to; k++) {
    const len = readVarint(body, offsets[k]!);
    size += 1 + varintSize(len + 2) + len + 2;
  }
  return size;
}

/** Writes the span's deliveries at `pos` (spanSize bytes); returns the position after them. */
export function writeSpan(out: Buffer, pos: number, span: RecordSpan): number {
  const { body, offsets } = span.run;
  for (let k = span.from; k < span.to; k++) {
    const len = readVarint(body, offsets[k]!);
    out[pos++] = TAG_DELIVERY;
    pos = writeVarint(out, pos, len + 2);
    pos = copyBytes(body, next, next + len, out, pos);
    out[pos++] = TAG_ATTEMPT;
    out[pos++] = 1;
  }
  return pos;
}

/** Delivery.priority (field 9) as record `k` of a run stores it: 1 urgent, 3 bulk, 0 normal. */
export function recordPriority(run: IndexedRun, k: number): number {
  const pos = fieldOf(run, k, 9 << 3);
  return pos < 0 ? 0 : readVarint(run.body, pos);
}
