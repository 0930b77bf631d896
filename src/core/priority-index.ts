import type { Priority } from "./model.js";

/**
 * Entries one lane keeps at most: beyond it the oldest are forgotten, and their messages go out
 * in seq order like any other (1 Mi seqs ≈ 8 MiB per lane, per topic with mixed priorities).
 */
export const MAX_LANE_ENTRIES = 1 << 20;

/** Rising seqs, appended at the end, forgotten from the front. */
export class SeqLane {
  #seqs: number[] = [];
  #head = 0;

  get size(): number {
    return this.#seqs.length - this.#head;
  }

  push(seq: number): void {
    this.#seqs.push(seq);
    if (this.size > MAX_LANE_ENTRIES) this.#head++;
    // Drop the forgotten front once it is half the array, so pushes stay amortized O(1).
    if (this.#head > 4096 && this.#head * 2 > this.#seqs.length) {
      this.#seqs = this.#seqs.slice(this.#head);
      this.#head = 0;
    }
  }

  /** The position of the first seq ≥ `seq` (binary search); `end` when there is none. */
  firstAtLeast(seq: number): number {
    let lo = this.#head;
    let hi = this.#seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#seqs[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The seq at a position from firstAtLeast, or undefined past the end. */
  at(pos: number): number | undefined {
    return pos < this.#head ? undefined : this.#seqs[pos];
  }
}

/**
 * Which seqs of a topic are urgent and which normal, so a subscription can hand out urgent (then
 * normal) messages ahead of older ones; bulk is what neither lane holds. Priority is a field of
 * the stored message, not a separate log: every message keeps its one seq in the topic's order,
 * and acks, floors and redeliveries work on seqs as before. The lanes are kept in memory from the
 * first urgent or bulk message on (until then seq order is priority order, and nothing is kept);
 * after a restart they start empty, so a backlog from before it goes out in seq order.
 */
export class PriorityIndex {
  #mixed = false;
  readonly urgent = new SeqLane();
  readonly normal = new SeqLane();

  /** Whether the topic has had a message that is not normal (since the broker started). */
  get mixed(): boolean {
    return this.#mixed;
  }

  /** Records the priority of a message just given `seq` (in rising seq order). */
  note(seq: number, priority: Priority | undefined): void {
    if (priority === undefined || priority === "normal") {
      if (this.#mixed) this.normal.push(seq);
      return;
    }
    this.#mixed = true;
    if (priority === "urgent") this.urgent.push(seq);
  }
}
