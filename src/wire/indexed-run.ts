import { withScheduleId } from "./message-meta.js";
import type { Pack } from "./pack.js";
import { type RunRecord, type RunRow, readRecord } from "./run-body.js";
import { storedRecordInfo, storedRecordProblem } from "./stored-record.js";
import { ByteView, copyViews, varintSize, WireError, WireReader, writeVarint } from "./wire-format.js";

/**
 * A run (run-body.ts) as the broker builds it from a pack, before and after it is stored: the
 * row it becomes plus where each record starts in the body, so the tail cache finds a message
 * by seq and a writer cuts a run without reading it.
 */
export interface IndexedRun extends RunRow {
  /** Offset of each record's length prefix in `body` (lastSeq − firstSeq + 1 of them). */
  readonly offsets: Uint32Array;
  /** Payload bytes of its messages (metrics). */
  readonly payloadBytes: number;
  /**
   * Each record's recordInfo, when the run was read back from a store: worked out by the check
   * every stored record passes (storedRecordInfo), so a drain walks a record once.
   */
  readonly infos?: Uint32Array;
}

const TAG_SEQ = 1 << 3;
const TAG_DATA = (2 << 3) | 2;
const TAG_TIME = (6 << 3) | 2;

/** The publish_time field (a Timestamp) of `ms`, as run records hold it. */
function timeField(ms: number): Buffer {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  const inner = (seconds > 0 ? 1 + varintSize(seconds) : 0) + (nanos > 0 ? 1 + varintSize(nanos) : 0);
  const out = Buffer.allocUnsafe(2 + inner);
  out[0] = TAG_TIME;
  out[1] = inner;
  let pos = 2;
  if (seconds > 0) {
    out[pos++] = 1 << 3;
    pos = writeVarint(out, pos, seconds);
  }
  if (nanos > 0) {
    out[pos++] = 2 << 3;
    writeVarint(out, pos, nanos);
  }
  return out;
}

/**
 * The run of the pack's messages at `indices` (all when undefined), in that order, with seqs
 * from `firstSeq` on and publish time `time`: each record written once, straight from the
 * pack's bytes. `scheduleIds[i]` is message i's schedule id, when it has one.
 */
export function buildRun(
  pack: Pack,
  indices: readonly number[] | undefined,
  firstSeq: number,
  time: number,
  scheduleIds?: readonly (number | undefined)[],
): IndexedRun {
  const n = indices === undefined ? pack.count : indices.length;
  if (n === 0) throw new RangeError("a run holds at least one message");
  const { src, dataStart, dataEnd, meta, metaStart, metaEnd, storedBytes } = pack;
  const t = timeField(time);
  const offsets = new Uint32Array(n);
  let size = 0;
  let bytes = 0;
  let payloadBytes = 0;
  for (let k = 0; k < n; k++) {
    const i = indices === undefined ? k : indices[k]!;
    payloadBytes += dataEnd[i]! - dataStart[i]!;
    // recordSize with the publish time's field measured once (`t`), not once per message.
    const dl = dataEnd[i]! - dataStart[i]!;
    const len =
      1 +
      varintSize(firstSeq + k) +
      (dl > 0 ? 1 + varintSize(dl) + dl : 0) +
      metaEnd[i]! -
      metaStart[i]! +
      t.length;
    // Held here until the second pass replaces it with the record's offset.
    offsets[k] = len;
    size += varintSize(len) + len;
    bytes += storedBytes[i]!;
  }
  const body = Buffer.allocUnsafe(size);
  const bodyView = new ByteView(body);
  const srcView = new ByteView(src);
  const metaView = new ByteView(meta);
  const timeView = new ByteView(t);
  let pos = 0;
  let pairs: number[] | undefined;
  for (let k = 0; k < n; k++) {
    const i = indices === undefined ? k : indices[k]!;
    const seq = firstSeq + k;
    const ds = dataStart[i]!;
    const dl = dataEnd[i]! - ds;
    const len = offsets[k]!;
    offsets[k] = pos;
    pos = writeVarint(body, pos, len);
    body[pos++] = TAG_SEQ;
    pos = writeVarint(body, pos, seq);
    if (dl > 0) {
      body[pos++] = TAG_DATA;
      pos = writeVarint(body, pos, dl);
      pos = copyViews(srcView, ds, ds + dl, bodyView, pos);
    }
    pos = copyViews(metaView, metaStart[i]!, metaEnd[i]!, bodyView, pos);
    pos = copyViews(timeView, 0, t.length, bodyView, pos);
    const id = scheduleIds?.[i];
    if (id !== undefined) {
      pairs ??= [];
      pairs.push(k, id);
    }
  }
  return {
    firstSeq,
    lastSeq: firstSeq + n - 1,
    firstTime: time,
    lastTime: time,
    bytes,
    body,
    ids: pairs === undefined ? null : encodePairs(pairs),
    offsets,
    payloadBytes,
  };
}

function encodePairs(pairs: readonly number[]): Buffer {
  let size = 0;
  for (const v of pairs) size += varintSize(v);
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  for (const v of pairs) p = writeVarint(out, p, v);
  return out;
}

/** The (offset from first seq, schedule id) pairs of a run's ids blob. */
function decodePairs(ids: Buffer | null): number[] {
  const out: number[] = [];
  if (ids === null) return out;
  const r = new WireReader(ids);
  while (!r.done) out.push(r.varint());
  return out;
}

/** Message `seq`'s schedule id in a run, if it has one. */
function scheduleIdIn(run: RunRow, seq: number): number | undefined {
  const pairs = decodePairs(run.ids);
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] === seq - run.firstSeq) return pairs[i + 1];
  return undefined;
}

/**
 * The record of `seq` (firstSeq ≤ seq ≤ lastSeq); a message with a schedule id gets its
 * metadata with the id in front, as decodeRun gives it.
 */
export function recordOf(run: IndexedRun, seq: number): RunRecord {
  const r = new WireReader(run.body, run.offsets[seq - run.firstSeq]!);
  const [start, end] = r.lenRange();
  const rec = readRecord(run.body, start, end);
  const scheduleId = run.ids === null ? undefined : scheduleIdIn(run, seq);
  return scheduleId === undefined ? rec : { ...rec, meta: withScheduleId(rec.meta, scheduleId) };
}

/** Records `from`…`to − 1` (indexes) of a run, as a run of their own (a view, no copy of the body). */
export function sliceRun(run: IndexedRun, from: number, to: number): IndexedRun {
  const n = run.offsets.length;
  if (from === 0 && to === n) return run;
  const start = run.offsets[from]!;
  const end = to < n ? run.offsets[to]! : run.body.length;
  const offsets = new Uint32Array(to - from);
  let payloadBytes = 0;
  for (let k = from; k < to; k++) {
    offsets[k - from] = run.offsets[k]! - start;
    payloadBytes += recordOf(run, run.firstSeq + k).data.length;
  }
  let ids: Buffer | null = null;
  if (run.ids !== null) {
    const pairs = decodePairs(run.ids);
    const kept: number[] = [];
    for (let i = 0; i < pairs.length; i += 2)
      if (pairs[i]! >= from && pairs[i]! < to) kept.push(pairs[i]! - from, pairs[i + 1]!);
    if (kept.length > 0) ids = encodePairs(kept);
  }
  return {
    firstSeq: run.firstSeq + from,
    lastSeq: run.firstSeq + to - 1,
    firstTime: run.firstTime,
    lastTime: run.lastTime,
    // What limits count is known per run only: a cut run's share is prorated by its body.
    bytes: Math.round((run.bytes * (end - start)) / Math.max(1, run.body.length)),
    body: run.body.subarray(start, end),
    ids,
    offsets,
    payloadBytes,
  };
}

/**
 * Store rows of runs (in seq order): runs that follow one another without a gap become one
 * row (their bodies back to back are a body), so a write turn's packs are one row.
 */
export function joinRuns(runs: readonly IndexedRun[]): RunRow[] {
  const out: RunRow[] = [];
  let i = 0;
  while (i < runs.length) {
    let j = i + 1;
    while (j < runs.length && runs[j]!.firstSeq === runs[j - 1]!.lastSeq + 1) j++;
    if (j === i + 1) out.push(runs[i]!);
    else out.push(join(runs.slice(i, j)));
    i = j;
  }
  return out;
}

function join(runs: readonly IndexedRun[]): RunRow {
  const first = runs[0]!;
  const last = runs[runs.length - 1]!;
  let bytes = 0;
  const pairs: number[] = [];
  for (const r of runs) {
    bytes += r.bytes;
    const own = decodePairs(r.ids);
    for (let k = 0; k < own.length; k += 2) pairs.push(own[k]! + r.firstSeq - first.firstSeq, own[k + 1]!);
  }
  return {
    firstSeq: first.firstSeq,
    lastSeq: last.lastSeq,
    firstTime: first.firstTime,
    lastTime: last.lastTime,
    bytes,
    body: Buffer.concat(runs.map((r) => r.body)),
    ids: pairs.length === 0 ? null : encodePairs(pairs),
  };
}

/**
 * The records with from ≤ seq ≤ to of a run read back from a store (first seq, body, ids), as
 * an indexed run with a body of their own: a copy, so a read that needs a few records of a large
 * row does not keep the whole row alive (nor a driver's network buffer that holds other rows).
 * A run kept whole whose body is most of the memory behind it is used as it is: a copy would
 * hold the same bytes (a drain reads whole runs). Undefined when the run holds none of them. Its times,
 * `bytes` and `payloadBytes` are not known without decoding and are 0 (deliveries read each
 * record's own).
 */
export function copyStoredRange(
  firstSeq: number,
  body: Buffer,
  ids: Buffer | null,
  from: number,
  to: number,
): IndexedRun | undefined {
  const r = new WireReader(body);
  let seq = firstSeq;
  // Skip the records below `from`, then note where each one kept starts.
  while (seq < from && !r.done) {
    skipStoredRecord(r, seq, false);
    seq++;
  }
  if (r.done || seq > to) return undefined;
  const first = seq;
  const start = r.pos;
  const starts: number[] = [];
  const infos: number[] = [];
  while (seq <= to && !r.done) {
    starts.push(r.pos - start);
    infos.push(skipStoredRecord(r, seq, true));
    seq++;
  }
  const n = starts.length;
  let kept: Buffer | null = null;
  if (ids !== null) {
    const pairs = decodePairs(ids);
    const out: number[] = [];
    for (let i = 0; i < pairs.length; i += 2) {
      const k = pairs[i]! - (first - firstSeq);
      if (k >= 0 && k < n) out.push(k, pairs[i + 1]!);
    }
    if (out.length > 0) kept = encodePairs(out);
  }
  return {
    firstSeq: first,
    lastSeq: first + n - 1,
    firstTime: 0,
    lastTime: 0,
    bytes: 0,
    body:
      start === 0 && r.pos === body.length && ownsMemory(body)
        ? body
        : Buffer.from(body.subarray(start, r.pos)),
    ids: kept,
    offsets: Uint32Array.from(starts),
    payloadBytes: 0,
    infos: Uint32Array.from(infos),
  };
}

/** Whether `b` is at least half of the memory it is a view of (keeping it keeps at most twice its bytes). */
function ownsMemory(b: Buffer): boolean {
  return b.byteLength * 2 >= b.buffer.byteLength;
}

/**
 * Moves past the stored record of `seq` (no range tuple made per record): its length must fit
 * the body, and a record that is `kept` must be well formed (storedRecordInfo), so that the
 * deliveries cut from it never meet a malformed one. Returns a kept record's recordInfo (0 for
 * one skipped). Throws WireError naming the seq.
 */
function skipStoredRecord(r: WireReader, seq: number, kept: boolean): number {
  const len = r.varint();
  const start = r.pos;
  if (len > r.end - start) throw new WireError(`the record of seq ${seq} runs past the end of its run`);
  r.pos = start + len;
  if (!kept) return 0;
  const info = storedRecordInfo(r.buf, start, r.pos, seq);
  if (info < 0) throw new WireError(`the record of seq ${seq} is malformed: ${storedRecordProblem}`);
  return info;
}
