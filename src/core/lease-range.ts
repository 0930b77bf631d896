import type { Consumer } from "./consumer.js";

const NONE: readonly number[] = [];
const NONE_HELD = new Uint8Array(0);

/**
 * The first deliveries of one batch to one consumer, leased together: one object for the
 * batch instead of a pending entry per message. Seqs ascend; each is held until it is acked
 * (released here) or something else happens to it (nack, extension, expiry, detach: the
 * subscription then gives it a pending entry of its own and releases it here).
 */
export class LeaseRange {
  /** Seqs still held. */
  open: number;
  /** The lowest and highest seq of the batch (kept when the arrays are dropped). */
  readonly first: number;
  readonly last: number;
  /**
   * The batch's seqs and the bytes each counts against the consumer's window; empty once every
   * seq is released. The subscription's timer heap keeps a range until its deadline although
   * the batch is usually acked within milliseconds: dropping the arrays then leaves a small
   * object there instead of two arrays per batch that survived young-generation collections
   * and were copied to the old generation (BENCHMARKS.md, "Round 2, fourth session: what
   * survives a scavenge").
   */
  seqs: readonly number[];
  sizes: readonly number[];
  /** 1 while seqs[i] is held. */
  #held: Uint8Array;
  /** Whether the seqs are consecutive (the usual batch from the cursor): seq − first is the index. */
  readonly #dense: boolean;

  constructor(
    readonly consumer: Consumer,
    seqs: readonly number[],
    /** Bytes each seq counts against the consumer's window. */
    sizes: readonly number[],
    /** When the lease of every seq still held ends (ms since epoch). */
    readonly deadline: number,
  ) {
    this.seqs = seqs;
    this.sizes = sizes;
    this.open = seqs.length;
    this.first = seqs[0]!;
    this.last = seqs[seqs.length - 1]!;
    this.#held = new Uint8Array(seqs.length).fill(1);
    this.#dense = seqs.length > 0 && this.last - this.first === seqs.length - 1;
  }

  /** The index of `seq` while it is held, else -1. */
  indexOf(seq: number): number {
    const seqs = this.seqs;
    if (this.#dense) {
      // Every ack looks its seq up here (twice): a drain acked 1 M seqs in batches of ~6000.
      const i = seq - this.first;
      return i >= 0 && i < seqs.length && this.#held[i] === 1 ? i : -1;
    }
    let lo = 0;
    let hi = seqs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const s = seqs[mid]!;
      if (s === seq) return this.#held[mid] === 1 ? mid : -1;
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** Stops holding seqs[i]; returns its size. */
  release(i: number): number {
    const size = this.sizes[i]!;
    this.#held[i] = 0;
    if (--this.open === 0) {
      this.seqs = NONE;
      this.sizes = NONE;
      this.#held = NONE_HELD;
    }
    return size;
  }

  /** The indexes of the seqs still held. */
  heldIndexes(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.seqs.length; i++) if (this.#held[i] === 1) out.push(i);
    return out;
  }
}
