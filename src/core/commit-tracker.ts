/**
 * Tracks which assigned seqs are durable and derives the writer watermark: the highest seq such
 * that every seq ≤ it is committed. Seq s lives in shard s % shards; each shard writer commits
 * its rows in seq order, one batch at a time, so a shard's committed seqs are always a prefix of
 * the seqs assigned to it. The watermark is then one below the lowest seq still pending in any
 * shard, and never moves over a gap.
 */
export class CommitTracker {
  readonly shards: number;
  #lastAssigned: number;
  /** Per shard: the lowest seq assigned to it and not yet committed, or 0 for none. */
  readonly #lowestPending: number[];

  constructor(shards: number, watermark: number) {
    if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards must be ≥ 1, got ${shards}`);
    this.shards = shards;
    this.#lastAssigned = watermark;
    this.#lowestPending = new Array<number>(shards).fill(0);
  }

  /** Assigns the next `count` seqs; returns the first. */
  assign(count: number): number {
    const first = this.#lastAssigned + 1;
    const last = this.#lastAssigned + count;
    for (let s = first; s <= last && s < first + this.shards; s++) {
      const shard = s % this.shards;
      if (this.#lowestPending[shard] === 0) this.#lowestPending[shard] = s;
    }
    this.#lastAssigned = last;
    return first;
  }

  /** Records that `shard` has committed every seq of its own up to `throughSeq`. */
  commit(shard: number, throughSeq: number): void {
    const pending = this.#lowestPending[shard];
    if (pending === undefined) throw new RangeError(`no shard ${shard}`);
    if (pending === 0 || throughSeq < pending) return;
    if (throughSeq % this.shards !== shard)
      throw new RangeError(`seq ${throughSeq} is not in shard ${shard}`);
    const next = throughSeq + this.shards;
    this.#lowestPending[shard] = next <= this.#lastAssigned ? next : 0;
  }

  /** The highest seq handed out (committed or not). */
  get lastAssigned(): number {
    return this.#lastAssigned;
  }

  /** Every seq ≤ watermark is committed. */
  get watermark(): number {
    let lowest = 0;
    for (const p of this.#lowestPending) if (p !== 0 && (lowest === 0 || p < lowest)) lowest = p;
    return lowest === 0 ? this.#lastAssigned : lowest - 1;
  }
}
