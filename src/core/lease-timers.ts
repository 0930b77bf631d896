import { monotonicNow } from "./clock.js";
import type { LeaseRange } from "./lease-range.js";
import { MinHeap } from "./min-heap.js";

/**
 * Due times: a lease extended or a redelivery (one seq), the leases of one delivered batch
 * (one entry for the batch: they share the deadline), or a ranged lease (first deliveries).
 */
type TimerEntry =
  | { readonly seq: number; readonly kind: "lease" | "retry" }
  | { readonly seqs: number[]; readonly kind: "leases" }
  | { readonly range: LeaseRange; readonly kind: "range" };

/** Whether the entry of kind "lease" or "retry" for `seq`, due `at`, still matches its message. */
export type TimerCheck = (kind: "lease" | "retry", seq: number, at: number) => boolean;

/**
 * A subscription's due times (lease deadlines and redeliveries) and the one Node timer that
 * wakes it for the earliest. Entries are never removed early: a stale one (the lease was
 * extended or settled) is recognised and skipped by its owner when it falls due, and dropped
 * in bulk once stale entries outnumber live ones.
 */
export class LeaseTimers {
  readonly #heap = new MinHeap<TimerEntry>();
  /** Seqs held by "leases" entries (stale ones included), for compaction. */
  #batchSeqs = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  #closed = false;

  /** `wake` runs when the earliest due time has come (once per armed timer). */
  constructor(private readonly wake: () => void) {}

  /** Entries held, stale ones included (stats, tests). */
  get size(): number {
    return this.#heap.size + this.#batchSeqs;
  }

  /** The lease of `seq` ends at `at` (an extension). */
  lease(seq: number, at: number): void {
    this.#heap.push(at, { seq, kind: "lease" });
  }

  /** The leases of one delivered batch end at `at`. */
  leases(seqs: number[], at: number): void {
    this.#heap.push(at, { seqs, kind: "leases" });
    this.#batchSeqs += seqs.length;
  }

  /** The seqs a ranged lease still holds are due at its deadline. */
  range(range: LeaseRange): void {
    this.#heap.push(range.deadline, { range, kind: "range" });
  }

  /** `seq` may be redelivered from `at`. */
  retry(seq: number, at: number): void {
    this.#heap.push(at, { seq, kind: "retry" });
  }

  /**
   * Takes every entry due by `now`, oldest first: `expire(seq, at)` for each lease,
   * `expireRange(range)` for each ranged lease and `due(seq, at)` for each redelivery, `at`
   * being the time the entry was set for.
   */
  runDue(
    now: number,
    expire: (seq: number, at: number) => void,
    due: (seq: number, at: number) => void,
    expireRange?: (range: LeaseRange) => void,
  ): void {
    while ((this.#heap.peekKey() ?? Number.POSITIVE_INFINITY) <= now) {
      const at = this.#heap.peekKey()!;
      const entry = this.#heap.pop()!;
      if (entry.kind === "leases") {
        this.#batchSeqs -= entry.seqs.length;
        for (const seq of entry.seqs) expire(seq, at);
      } else if (entry.kind === "lease") {
        expire(entry.seq, at);
      } else if (entry.kind === "range") {
        expireRange?.(entry.range);
      } else {
        due(entry.seq, at);
      }
    }
  }

  /** Sets the Node timer for the earliest entry, unless one is set for that time or earlier. */
  arm(): void {
    const next = this.#heap.peekKey();
    if (next === undefined || this.#closed) return;
    if (this.#timer !== undefined && this.#timerAt <= next) return;
    clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = 0;
        this.wake();
      },
      Math.max(0, next - monotonicNow()) + 1,
    );
  }

  /**
   * Drops stale entries when they outnumber `live` (the messages that can have one) by far: a
   * fast consumer with a long ack deadline would otherwise pile up millions of them.
   */
  compactIfStale(live: number, isCurrent: TimerCheck): void {
    if (this.#heap.size + this.#batchSeqs <= 4 * live + 10_000) return;
    this.#batchSeqs = 0;
    this.#heap.retain((at, e) => {
      if (e.kind === "leases") {
        let kept = 0;
        for (const seq of e.seqs) if (isCurrent("lease", seq, at)) e.seqs[kept++] = seq;
        e.seqs.length = kept;
        this.#batchSeqs += kept;
        return kept > 0;
      }
      if (e.kind === "range") return e.range.open > 0;
      return isCurrent(e.kind, e.seq, at);
    });
  }

  /** Stops the Node timer for good. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }
}
