/**
 * Format 2's commit tracker: seqs are assigned in order and written as runs of consecutive seqs
 * by whichever shard writer a write turn went to, so runs commit in any order. The watermark is
 * the end of the chain of committed runs from the last watermark: it never moves over a run
 * that is not committed yet.
 */
export class RunTracker {
  #lastAssigned: number;
  #watermark: number;
  /** Committed runs above the watermark: first seq → last seq. */
  readonly #ahead = new Map<number, number>();

  constructor(watermark: number) {
    this.#lastAssigned = watermark;
    this.#watermark = watermark;
  }

  /** Assigns the next `count` seqs; returns the first. */
  assign(count: number): number {
    const first = this.#lastAssigned + 1;
    this.#lastAssigned += count;
    return first;
  }

  /** Records that seqs first…last (assigned, consecutive) are committed. */
  commit(first: number, last: number): void {
    if (last <= this.#watermark) return;
    if (first > this.#lastAssigned || last > this.#lastAssigned)
      throw new RangeError(`seqs ${first}–${last} were not assigned (last assigned ${this.#lastAssigned})`);
    this.#ahead.set(first, last);
    for (
      let next = this.#ahead.get(this.#watermark + 1);
      next !== undefined;
      next = this.#ahead.get(this.#watermark + 1)
    ) {
      this.#ahead.delete(this.#watermark + 1);
      this.#watermark = next;
    }
  }

  /** The highest seq handed out (committed or not). */
  get lastAssigned(): number {
    return this.#lastAssigned;
  }

  /** Every seq ≤ watermark is committed. */
  get watermark(): number {
    return this.#watermark;
  }
}
