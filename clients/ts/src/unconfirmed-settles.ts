import type { Settlement } from "./received-message.js";

/** A settlement the broker may not have applied yet. */
export interface UnconfirmedSettle {
  readonly kind: Settlement;
  /** The delivery attempt that was settled. */
  readonly attempt: number;
  /** The nack's delay (nacks only; undefined: the subscription's retry backoff). */
  readonly delayMs: number | undefined;
}

/**
 * Settlements of messages the application is done with, kept until the broker is known to
 * have them, so that a redelivery of such a message (its stream ended before the broker read
 * the settlement) gets the settlement again instead of going to the application a second time.
 * Only a later attempt is such a redelivery: the broker counts on from the settled one while
 * the message is unacked, and starts again at 1 when a seek back replays an acked message.
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
  /** The floor the broker reported last. */
  #floor = 0;

  /**
   * `limit`: the settlements kept once older ones are forgotten (oldest first); up to a quarter
   * more are kept between two such clean-ups.
   */
  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Records the settlement of delivery `attempt` of `seq` (replacing an earlier one of the seq). */
  add(seq: number, attempt: number, kind: Settlement, delayMs?: number): void {
    if (seq <= this.#floor) return;
    this.#bySeq.delete(seq);
    this.#bySeq.set(seq, { kind, attempt, delayMs });
    // Pushed out a quarter of the limit at a time: an iterator per settled message was 7 % of a
    // subscriber's CPU while the broker confirmed nothing (clients/ts/bench).
    if (this.#bySeq.size > this.#limit + (this.#limit >> 2)) {
      let excess = this.#bySeq.size - this.#limit;
      for (const oldest of this.#bySeq.keys()) {
        if (excess-- === 0) break;
        this.#bySeq.delete(oldest);
      }
    }
  }

  /**
   * The settlement the broker may not have, if delivery `attempt` of `seq` is a redelivery of
   * the settled message (a later attempt). A delivery that is not is new to the application:
   * the kept settlement is forgotten.
   */
  redelivered(seq: number, attempt: number): UnconfirmedSettle | undefined {
    const s = this.#bySeq.get(seq);
    if (s === undefined || attempt > s.attempt) return s;
    this.#bySeq.delete(seq);
    return undefined;
  }

  /** The kind of the kept settlement of `seq`, if any. */
  kindOf(seq: number): Settlement | undefined {
    return this.#bySeq.get(seq)?.kind;
  }

  /** Forgets the settlement of `seq` (confirmed, or a nack that was written). */
  delete(seq: number): void {
    this.#bySeq.delete(seq);
  }

  /**
   * The broker reports that every seq ≤ `floor` is acked: no message up to it comes again
   * (a seek back may replay them, as first attempts).
   */
  floor(floor: number): void {
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
