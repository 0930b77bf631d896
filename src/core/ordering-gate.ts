/**
 * With ordering on, messages held back behind a busy key, at most; past it the subscription
 * stops reading ahead until keys free up.
 */
export const MAX_BLOCKED = 100_000;

/** What one held-back seq costs: its slot in its key's array, and the array's room to grow. */
export const HELD_SEQ_BYTES = 12;

/**
 * What a key string costs: its header and two bytes per UTF-16 unit at most. Keys go up to
 * 1024 bytes, so a key may cost four times a pending entry (~283 B, LEASE_ENTRY_BYTES).
 */
export function keyStringBytes(key: string): number {
  return 16 + 2 * key.length;
}

/**
 * What a key with seqs held back costs beyond them: its Map slot and array (~110 B measured)
 * and the key itself, a string of its own.
 */
export function heldKeyBytes(key: string): number {
  return 104 + keyStringBytes(key);
}

/**
 * The ordering-key gate of a subscription: how many unacked messages each key has, and the
 * seqs held back (in seq order) behind each busy key. A key's next message goes out only once
 * every earlier one with that key is acked.
 */
export class OrderingGate {
  /** Unacked messages per key. */
  readonly #busy = new Map<string, number>();
  /** Seqs held back behind each busy key. */
  readonly #held = new Map<string, number[]>();
  #heldCount = 0;
  #bytes = 0;

  /**
   * What the keys cost beyond the unacked messages' entries: the key each unacked message
   * keeps (a string of its own, keyStringBytes), and the held-back seqs and their keys
   * (HELD_SEQ_BYTES, heldKeyBytes).
   */
  get bytes(): number {
    return this.#bytes;
  }

  /** What holding one more seq back behind `key` would add to bytes. */
  holdCost(key: string): number {
    return HELD_SEQ_BYTES + (this.#held.has(key) ? 0 : heldKeyBytes(key));
  }

  /** Whether an unacked message has this key. */
  isBusy(key: string): boolean {
    return (this.#busy.get(key) ?? 0) > 0;
  }

  /** Counts one more unacked message with this key. */
  take(key: string): void {
    this.#busy.set(key, (this.#busy.get(key) ?? 0) + 1);
    this.#bytes += keyStringBytes(key);
  }

  /** Holds `seq` back behind its busy key; false (nothing held) when MAX_BLOCKED are held. */
  hold(key: string, seq: number): boolean {
    if (this.#heldCount >= MAX_BLOCKED) return false;
    this.#bytes += this.holdCost(key);
    const queue = this.#held.get(key);
    if (queue === undefined) this.#held.set(key, [seq]);
    else queue.push(seq);
    this.#heldCount++;
    return true;
  }

  /**
   * One fewer unacked message with this key. When that frees the key, the first seq held back
   * behind it that is not `done` (acked meanwhile) is released: it is returned, and counts as
   * the key's one unacked message.
   */
  release(key: string, done: (seq: number) => boolean): number | undefined {
    this.#bytes -= keyStringBytes(key);
    const left = (this.#busy.get(key) ?? 1) - 1;
    if (left > 0) {
      this.#busy.set(key, left);
      return undefined;
    }
    this.#busy.delete(key);
    const queue = this.#held.get(key);
    if (queue === undefined) return undefined;
    while (queue.length > 0) {
      const seq = queue.shift()!;
      this.#heldCount--;
      this.#bytes -= HELD_SEQ_BYTES;
      if (done(seq)) continue;
      if (queue.length === 0) this.#forget(key);
      this.#busy.set(key, 1);
      this.#bytes += keyStringBytes(key);
      return seq;
    }
    this.#forget(key);
    return undefined;
  }

  /** Forgets every held seq and counts busy keys afresh from `keys` (one per unacked message). */
  reset(keys: Iterable<string>): void {
    this.#held.clear();
    this.#heldCount = 0;
    this.#bytes = 0;
    this.#busy.clear();
    for (const key of keys) if (key !== "") this.take(key);
  }

  /** `key` holds nothing back any more. */
  #forget(key: string): void {
    this.#held.delete(key);
    this.#bytes -= heldKeyBytes(key);
  }
}
