import type { Settlement } from "./received-message.js";

/** A settlement the broker may not have applied yet. */
export interface UnconfirmedSettle {
  readonly kind: Settlement;
  /** The nack's delay (nacks only; undefined: the subscription's retry backoff). */
  readonly delayMs: number | undefined;
}

/**
 * Settlements of messages the application is done with, kept until the broker is known to
 * have them, so that a redelivery of such a message (its stream ended before the broker read
 * the settlement) gets the settlement again instead of going to the application a second time.
 *
 * An ack or termination is known to be applied once the broker confirms the ack (confirmAcks)
 * or reports a floor at or above its seq (on subscribe and in heartbeats); without either, it
 * is forgotten only when `limit` newer settlements push it out. A nack is kept only until it is
 * written: the redelivery it asks for must reach the application.
 */
export class UnconfirmedSettles {
  /** By seq, oldest first (a settlement recorded again moves to the end). */
  readonly #bySeq = new Map<number, UnconfirmedSettle>();
  readonly #limit: number;
  /** The highest floor the broker reported. */
  #floor = 0;

  /** `limit`: the most settlements kept; older ones are forgotten first. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Settlements kept. */
  get size(): number {
    return this.#bySeq.size;
  }

  /** Records the settlement of `seq` (replacing an earlier one of the same seq). */
  add(seq: number, kind: Settlement, delayMs?: number): void {
    if (seq <= this.#floor) return;
    this.#bySeq.delete(seq);
    this.#bySeq.set(seq, { kind, delayMs });
    if (this.#bySeq.size > this.#limit) {
      const oldest = this.#bySeq.keys().next();
      if (oldest.done !== true) this.#bySeq.delete(oldest.value);
    }
  }

  /** The settlement of `seq` the broker may not have, if any. */
  get(seq: number): UnconfirmedSettle | undefined {
    return this.#bySeq.get(seq);
  }

  /** Forgets the settlement of `seq` (confirmed, or a nack that was written). */
  delete(seq: number): void {
    this.#bySeq.delete(seq);
  }

  /**
   * The broker reports that every seq ≤ `floor` is acked: no message up to it comes again. A floor below one reported before means the subscription was moved back (a seek):
   * the broker delivers those messages again on purpose, so every kept settlement is forgotten.
   */
  floor(floor: number): void {
    if (floor < this.#floor) {
      this.#bySeq.clear();
      this.#floor = floor;
      return;
    }
    if (floor === this.#floor) return;
    this.#floor = floor;
    for (const seq of this.#bySeq.keys()) if (seq <= floor) this.#bySeq.delete(seq);
  }

  /** The seqs of kept acks, oldest first (to send again on a new stream). */
  acks(): number[] {
    const seqs: number[] = [];
    for (const [seq, s] of this.#bySeq) if (s.kind === "ack") seqs.push(seq);
    return seqs;
  }
}
