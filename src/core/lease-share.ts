/**
 * What one unacked delivered message may cost the broker: a pending entry (its Map slot, the
 * PendingEntry object and its lease or redelivery timer entry; 600k entries added 170 MB of
 * heap). A first delivery leased in a LeaseRange costs ~17 B, but it becomes a pending entry the
 * moment its consumer nacks it, lets it expire or goes away, which the broker cannot refuse
 * without losing the message: it counts at this from the start, so the bound holds then too.
 */
export const LEASE_ENTRY_BYTES = 283;

/** A subscription, as the share sees it: what to wake when it may deliver again. */
export interface LeaseHolder {
  scheduleDispatch(): void;
}

/**
 * The unacked delivered messages of all subscriptions together are bounded (the `leases` part
 * of --memory-budget), with the ordering keys they keep and the messages ordered
 * subscriptions hold back behind those keys (OrderingGate.bytes): each subscription counts
 * what it holds in bytes. Over the total, a subscription hands out (or holds back) nothing new
 * unless it holds nothing at all, or less than an equal share of the total among the
 * subscriptions holding any while the total stays under twice the bound: redeliveries of what
 * it holds still go out and acks still count, so nothing is lost or dropped, and a subscription
 * that never acks does not starve the others. The total stays under twice the bound plus one
 * message per subscription.
 * Woken again when acks bring the total under the bound, or a holder lets go of everything
 * (the others' equal shares grow).
 */
export class LeaseShare {
  readonly #holders = new Set<LeaseHolder>();
  readonly #waiting = new Set<LeaseHolder>();
  #bytes = 0;

  constructor(readonly totalBytes: number) {}

  /** Bytes all subscriptions hold together (status, metrics). */
  get usedBytes(): number {
    return this.#bytes;
  }

  /** `holder` holds `delta` more (negative: fewer) bytes, `now` in all. */
  resize(holder: LeaseHolder, delta: number, now: number): void {
    this.#bytes += delta;
    if (delta > 0) {
      if (now === delta) this.#holders.add(holder);
      return;
    }
    let wake = false;
    if (now === 0 && this.#holders.delete(holder)) wake = true;
    if (wake || (this.#waiting.size > 0 && this.#bytes < this.totalBytes)) this.#wake();
  }

  /**
   * Whether `holder`, holding `holds` bytes, may take `bytes` more (by default one first
   * delivery's entry); if not, it is dispatched again once it may.
   */
  mayTake(holder: LeaseHolder, holds: number, bytes = LEASE_ENTRY_BYTES): boolean {
    const after = this.#bytes + bytes;
    if (after <= this.totalBytes || holds === 0) return true;
    // Equal shares alone add up: with subscriptions coming one after another each taking its
    // share of the bound (1/2, 1/3, 1/4 …) the total would grow without bound.
    const holders = this.#holders.size + (this.#holders.has(holder) ? 0 : 1);
    if (after <= 2 * this.totalBytes && holds + bytes <= this.totalBytes / holders) return true;
    this.#waiting.add(holder);
    return false;
  }

  #wake(): void {
    if (this.#waiting.size === 0) return;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const h of waiting) h.scheduleDispatch();
  }
}
