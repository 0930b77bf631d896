import { encodeRun, type IndexedRun } from "../wire/index.js";
import { type LogMessage, messageOfRun } from "./model.js";
import type { TailCachePool } from "./tail-cache-pool.js";

/**
 * What a cached run costs beyond its body and record index: the run object, its Buffer views,
 * the array slots (an estimate of V8's object sizes, on the high side). Counting it makes the
 * limit bound memory, not just payload bytes.
 */
const RUN_OVERHEAD_BYTES = 320;

/**
 * The most recent messages of a topic, in seq order, bounded in bytes. The write path appends
 * every run (a pack's messages, as stored) as it is assigned its seqs, so subscribers that keep
 * up are served from here and never read the store. Whole runs are evicted, oldest first; a
 * message is decoded from its run only when asked for.
 */
export class TailCache {
  readonly #limitBytes: number;
  /** Evicted slots are undefined until the array is compacted. */
  #runs: (IndexedRun | undefined)[] = [];
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;

  /** `pool`, when given, bounds the bytes of all topics' caches together. */
  constructor(
    limitBytes: number,
    private readonly pool?: TailCachePool,
  ) {
    this.#limitBytes = limitBytes;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The lowest cached seq, or 0 when empty. */
  get firstSeq(): number {
    return this.#runs[this.#head]?.firstSeq ?? 0;
  }

  /** Appends one message (tests, tools): a run of one. */
  append(message: LogMessage): void {
    const row = encodeRun([message], message.bytes);
    this.appendRun({ ...row, offsets: new Uint32Array(1), payloadBytes: message.data.byteLength });
  }

  /** Appends the next run; one that does not follow the last one restarts the cache. */
  appendRun(run: IndexedRun): void {
    const size = run.body.length + run.offsets.byteLength + RUN_OVERHEAD_BYTES;
    const last = this.#runs.length > this.#head ? this.#runs[this.#runs.length - 1] : undefined;
    if (last === undefined || run.firstSeq !== last.lastSeq + 1) this.clear();
    this.#runs.push(run);
    this.#sizes.push(size);
    this.#bytes += size;
    this.pool?.resize(this, size);
    while (this.#bytes > this.#limitBytes && this.#runs.length - this.#head > 1) this.#evictOne();
    this.pool?.enforce(this);
  }

  /** Drops the oldest runs until at most `bytes` are held (the newest always stays). */
  shrinkTo(bytes: number): void {
    while (this.#bytes > bytes && this.#runs.length - this.#head > 1) this.#evictOne();
  }

  /** Drops every entry (the pool needs room, or the topic goes away). */
  clear(): void {
    this.pool?.resize(this, -this.#bytes);
    this.#runs = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  /** The run holding `seq`, if cached. */
  runOf(seq: number): IndexedRun | undefined {
    const runs = this.#runs;
    let lo = this.#head;
    let hi = runs.length - 1;
    if (lo > hi || seq < runs[lo]!.firstSeq || seq > runs[hi]!.lastSeq) return undefined;
    // Most lookups are for the newest runs (subscribers keeping up).
    if (seq >= runs[hi]!.firstSeq) return runs[hi];
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (runs[mid]!.firstSeq <= seq) lo = mid;
      else hi = mid - 1;
    }
    return runs[lo];
  }

  /** The cached message with this seq, if any (decoded from its run now). */
  get(seq: number): LogMessage | undefined {
    const run = this.runOf(seq);
    return run === undefined ? undefined : messageOfRun(run, seq);
  }

  #evictOne(): void {
    const size = this.#sizes[this.#head]!;
    this.#bytes -= size;
    this.pool?.resize(this, -size);
    this.#runs[this.#head] = undefined;
    this.#head++;
    // Compact now and then so the arrays do not grow without bound.
    if (this.#head > 1024 && this.#head * 2 > this.#runs.length) {
      this.#runs = this.#runs.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }
}
