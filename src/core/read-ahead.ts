import type { IndexedRun } from "../wire/index.js";
import { type LogMessage, messageOfRun } from "./model.js";

/** Bytes one subscription's read-ahead aims for when few subscriptions lag. */
const MAX_READ_BYTES = 4 << 20;
/** …and when many do: small enough to read efficiently still. */
const MIN_READ_BYTES = 64 << 10;
/** Rows of a reader's first read, before it has seen what its messages weigh. */
const FIRST_READ_ROWS = 64;
/** Seqs per read at most, format 1: a row each, an array slot each. */
const MAX_READ_ROWS = 5000;
/**
 * …format 2: records cut from a few stored runs. Larger ranges mean fewer round trips per
 * message (a 5000-seq range was one ~1000-message run per shard of 4); bytes still bound it.
 */
const MAX_READ_RECORDS = 20_000;

/**
 * The read-ahead rows of all lagging subscriptions together are bounded: 100 subscriptions
 * reading 4 MiB each held 400 MB. Each read aims for an equal share of `totalBytes` among the
 * subscriptions holding rows, never more than what is left of it, between 64 KiB and 4 MiB: the
 * total stays within `totalBytes`, or 64 KiB per lagging subscription when there are more.
 */
export class ReadAheadShare {
  readonly #holders = new Set<ReadAhead>();
  #used = 0;
  /** What reads in flight aim for (counted until they end, so readers starting together share). */
  #reserved = 0;
  /** Bytes per row of recent reads of any reader: what a reader's first read expects. */
  #rowBytes = 16 << 10;

  constructor(readonly totalBytes: number) {}

  /**
   * Rows a reader's first read should ask for: FIRST_READ_ROWS, fewer when that many rows of
   * the size recent reads saw would exceed the reader's share (a hundred subscriptions starting
   * at once each read 64 rows of 16 KiB, 100 MB where the share was 8 MiB).
   */
  firstReadRows(targetBytes: number): number {
    return Math.max(1, Math.min(FIRST_READ_ROWS, Math.floor(targetBytes / this.#rowBytes)));
  }

  /** A read of `rows` rows brought `bytes` bytes. */
  observe(rows: number, bytes: number): void {
    if (rows > 0) this.#rowBytes = Math.max(1, Math.round(this.#rowBytes * 0.75 + (bytes / rows) * 0.25));
  }

  /** Bytes of rows read ahead and not handed out yet, all readers together (status, metrics). */
  get usedBytes(): number {
    return this.#used;
  }

  /** A reader's rows grew (or shrank) by `delta` bytes. */
  resize(delta: number): void {
    this.#used += delta;
  }

  /** Whether `bytes` more fit in the total without crowding out other readers. */
  hasRoomFor(bytes: number): boolean {
    return this.totalBytes - this.#used - this.#reserved >= bytes;
  }

  /** A read in flight aims for `delta` more (or, negative, fewer) bytes. */
  reserve(delta: number): void {
    this.#reserved += delta;
  }

  /** Bytes the next read of `reader` should aim for (`holding`: what it holds now, replaced). */
  target(reader: ReadAhead, holding = 0): number {
    const n = this.#holders.size + (this.#holders.has(reader) ? 0 : 1);
    const left = this.totalBytes - this.#used - this.#reserved + holding;
    return Math.max(MIN_READ_BYTES, Math.min(MAX_READ_BYTES, Math.floor(this.totalBytes / n), left));
  }

  hold(reader: ReadAhead, holding: boolean): void {
    if (holding) this.#holders.add(reader);
    else this.#holders.delete(reader);
  }
}

/**
 * The read-ahead window of a lagging subscription: which range to read from the store next
 * (one read at a time, sized by its ReadAheadShare), and what the last range read holds: rows
 * by seq (holes where the store had none), each handed out once, or (format 2) runs holding
 * just the records of the range, let go of as the cursor passes them. With runs, the next range
 * is read while the cursor is still in the second half of this one (see prefetchFrom), so a
 * lagging subscriber does not wait a round trip per range.
 */
export class ReadAhead {
  #from = 0;
  #rows: (LogMessage | undefined)[] = [];
  #runs: IndexedRun[] = [];
  /** The first run the cursor has not passed. */
  #runAt = 0;
  /** The last seq of the ranges of runs read (0 when none is held). */
  #runsEnd = 0;
  #reading = false;
  /** Rows per read; adapts to the message size seen (undefined before the first read). */
  #readRows: number | undefined;
  /** Rows not taken yet. */
  #left = 0;
  /** Their bytes, as counted in the share. */
  #bytes = 0;
  /** What the read in flight aims for, as reserved in the share. */
  #reserved = 0;

  constructor(private readonly share: ReadAheadShare) {}

  /** Whether a read is in flight. */
  get reading(): boolean {
    return this.#reading;
  }

  /**
   * Starts a read from `from`: returns the last seq to read (at most `watermark`), or undefined
   * when a read is in flight already. Call `end` once it is over.
   */
  begin(from: number, watermark: number): number | undefined {
    return this.#begin(from, watermark, this.#bytes);
  }

  /**
   * Starts reading the range after the runs held when the cursor (at `seq`) has passed half of
   * them, no read is in flight and the share has room for another read besides what is held:
   * returns [from, to] to read (call `end` once it is over), else undefined.
   */
  prefetchFrom(seq: number, watermark: number): [number, number] | undefined {
    const end = this.#runsEnd;
    if (this.#reading || end === 0 || end >= watermark || this.#readRows === undefined) return undefined;
    if (end - seq >= this.#readRows / 2) return undefined;
    if (!this.share.hasRoomFor(this.share.target(this))) return undefined;
    const to = this.#begin(end + 1, watermark, 0);
    return to === undefined ? undefined : [end + 1, to];
  }

  #begin(from: number, watermark: number, holding: number): number | undefined {
    if (this.#reading) return undefined;
    this.#reading = true;
    this.#reserved = this.share.target(this, holding);
    this.share.reserve(this.#reserved);
    this.share.hold(this, true);
    return Math.min(watermark, from + (this.#readRows ?? this.share.firstReadRows(this.#reserved)) - 1);
  }

  /** The read begun last is over (done or failed). */
  end(): void {
    this.#reading = false;
    this.share.reserve(-this.#reserved);
    this.#reserved = 0;
    if (this.#left === 0 && this.#runs.length === 0) this.share.hold(this, false);
  }

  /** Replaces the contents with the rows (in seq order) of a range starting at `from`. */
  fill(from: number, rows: readonly LogMessage[]): void {
    this.#from = from;
    this.#runs = [];
    this.#runAt = 0;
    this.#runsEnd = 0;
    const last = rows.length > 0 ? rows[rows.length - 1]!.seq : from - 1;
    const slots = new Array<LogMessage | undefined>(last - from + 1);
    let bytes = 0;
    for (const row of rows) {
      slots[row.seq - from] = row;
      bytes += row.bytes;
    }
    this.#rows = slots;
    this.#left = rows.length;
    this.share.resize(bytes - this.#bytes);
    this.share.observe(rows.length, bytes);
    this.#bytes = bytes;
    this.share.hold(this, rows.length > 0);
    // Aim for this reader's share of bytes per read: small messages come in large ranges,
    // large ones in few.
    const avg = rows.length > 0 ? bytes / rows.length : 1024;
    this.#readRows = Math.max(
      1,
      Math.min(MAX_READ_ROWS, Math.floor(this.share.target(this, bytes + this.#reserved) / Math.max(avg, 1))),
    );
  }

  /**
   * Takes runs (in seq order) read for [from, to]: after the runs held when the range follows
   * them (a prefetch), else in their place.
   */
  fillRuns(from: number, to: number, runs: IndexedRun[]): void {
    this.#from = from;
    this.#rows = [];
    this.#left = 0;
    // What is held: the records' bytes (copied out of their rows, so nothing more), let go
    // of run by run as the cursor passes them.
    let bytes = 0;
    let count = 0;
    for (const r of runs) {
      bytes += r.body.length;
      count += r.offsets.length;
    }
    this.share.observe(count, bytes);
    if (this.#runsEnd !== 0 && from === this.#runsEnd + 1 && this.#runAt < this.#runs.length) {
      this.#runs = this.#runs.slice(this.#runAt).concat(runs);
      this.#runAt = 0;
      this.share.resize(bytes);
      this.#bytes += bytes;
    } else {
      this.#runs = runs;
      this.#runAt = 0;
      this.share.resize(bytes - this.#bytes);
      this.#bytes = bytes;
    }
    this.#runsEnd = to;
    this.share.hold(this, this.#runs.length > 0);
    const avg = count > 0 ? bytes / count : 1024;
    this.#readRows = Math.max(
      1,
      Math.min(
        MAX_READ_RECORDS,
        Math.floor(this.share.target(this, bytes + this.#reserved) / Math.max(avg, 1)),
      ),
    );
  }

  has(seq: number): boolean {
    if (this.#runs.length > 0) {
      for (let i = this.#runAt; i < this.#runs.length; i++) {
        const r = this.#runs[i]!;
        if (seq >= r.firstSeq && seq <= r.lastSeq) return true;
      }
      return false;
    }
    return this.#rows[seq - this.#from] !== undefined;
  }

  /**
   * The run read that holds `seq`, if any; runs below `seq` are let go of (seqs are asked for
   * in ascending order, from the cursor).
   */
  runOf(seq: number): IndexedRun | undefined {
    const runs = this.#runs;
    while (this.#runAt < runs.length && runs[this.#runAt]!.lastSeq < seq) {
      const passed = runs[this.#runAt++]!.body.length;
      this.share.resize(-passed);
      this.#bytes -= passed;
    }
    if (this.#runAt === runs.length) {
      if (runs.length > 0) this.clear();
      return undefined;
    }
    const r = runs[this.#runAt]!;
    return seq >= r.firstSeq ? r : undefined;
  }

  /** The message with this seq, if read and not taken yet; it is taken. */
  take(seq: number): LogMessage | undefined {
    if (this.#runs.length > 0) {
      const run = this.runOf(seq);
      return run === undefined ? undefined : messageOfRun(run, seq);
    }
    const i = seq - this.#from;
    if (i < 0 || i >= this.#rows.length) return undefined;
    const row = this.#rows[i];
    if (row === undefined) return undefined;
    this.#rows[i] = undefined;
    if (--this.#left === 0) {
      this.clear();
    } else {
      this.share.resize(-row.bytes);
      this.#bytes -= row.bytes;
    }
    return row;
  }

  clear(): void {
    this.#rows = [];
    this.#runs = [];
    this.#runAt = 0;
    this.#runsEnd = 0;
    this.#left = 0;
    this.share.resize(-this.#bytes);
    this.#bytes = 0;
    this.share.hold(this, false);
  }
}
