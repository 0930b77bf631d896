import type { OutboxRow, PassedGap } from "./outbox-source.js";

/**
 * The outbox relay's order rule. InnoDB hands out AUTO_INCREMENT ids when rows are inserted,
 * not when their transactions commit, so a later id can become visible before an earlier one.
 * A row waits behind a missing lower id until that id appears, or until the row has been visible
 * for `gapWaitMs`; then the gap is passed (the cursor moves over it) and a row that appears in
 * it later is relayed when it shows up, after the rows above it: nothing is ever skipped, only
 * reordered, and only after the wait. A rolled-back transaction leaves a gap that is never
 * filled; it costs the rows above it `gapWaitMs` of latency.
 *
 * Per ordering key the order does not depend on the wait: the client helpers lock the key in
 * the application's transaction before inserting, so a later transaction with the same key gets
 * a higher id and can only commit after the earlier one did.
 */
export class OutboxGate {
  #cursor: number;
  /** Rows seen just above a gap: id → when first seen. */
  readonly #waiting = new Map<number, number>();
  /** Ids passed while missing, counted (a growing count means rollbacks or slow commits). */
  passed = 0;
  /** Gaps passed recently (id ranges, when passed), oldest first: where late rows can appear. */
  #recent: { lo: number; hi: number; at: number }[] = [];

  constructor(
    cursor: number,
    readonly gapWaitMs: number,
  ) {
    this.#cursor = cursor;
  }

  /** Every id ≤ cursor was relayed or passed. */
  get cursor(): number {
    return this.#cursor;
  }

  /**
   * Of `rows` (ascending, all above the cursor), the prefix that may be relayed at `now`, and
   * the cursor it reaches; nothing changes until `advance` is called with it.
   */
  admit(
    rows: readonly OutboxRow[],
    now: number,
  ): { ready: OutboxRow[]; cursor: number; gaps: number; passedGaps: [number, number][] } {
    let previous = this.#cursor;
    for (const r of rows) {
      if (r.id !== previous + 1 && !this.#waiting.has(r.id)) this.#waiting.set(r.id, now);
      previous = r.id;
    }
    const ready: OutboxRow[] = [];
    let expected = this.#cursor + 1;
    let gaps = 0;
    const passedGaps: [number, number][] = [];
    for (const r of rows) {
      if (r.id !== expected) {
        const since = this.#waiting.get(r.id) ?? now;
        if (now - since < this.gapWaitMs) break;
        gaps += r.id - expected;
        passedGaps.push([expected, r.id - 1]);
      }
      ready.push(r);
      expected = r.id + 1;
    }
    return { ready, cursor: expected - 1, gaps, passedGaps };
  }

  /** Moves the cursor once the rows admitted up to it are published. */
  advance(
    cursor: number,
    gaps: number,
    passedGaps: readonly [number, number][] = [],
    now = Date.now(),
  ): void {
    if (cursor <= this.#cursor) return;
    this.#cursor = cursor;
    this.passed += gaps;
    for (const [lo, hi] of passedGaps) this.#recent.push({ lo, hi, at: now });
    for (const id of this.#waiting.keys()) if (id <= cursor) this.#waiting.delete(id);
  }

  /**
   * Takes over gaps passed earlier (by the gate a failed round replaced, or stored by the relay
   * before a restart or failover): rows that commit in them later are still late rows of this
   * relay, to be looked for every round. Parts above this gate's cursor are left out (those ids
   * are fetched above the cursor), and so are ranges it already has.
   */
  inherit(gaps: readonly PassedGap[], now: number): void {
    for (const g of gaps) {
      const hi = Math.min(g.hi, this.#cursor);
      if (g.lo > hi || this.#recent.some((r) => r.lo === g.lo && r.hi === hi)) continue;
      this.#recent.push({ lo: g.lo, hi, at: now - g.ageMs });
    }
    this.#recent.sort((a, b) => a.at - b.at);
  }

  /**
   * The gaps passed within `horizonMs` before `now` (older ones are forgotten here; the relay's
   * periodic full sweep still covers them), at most `max` ranges: merged into one range from
   * the oldest when there are more.
   */
  recentGaps(now: number, horizonMs: number, max: number): [number, number][] {
    return this.passedGaps(now, horizonMs, max).map((g) => [g.lo, g.hi]);
  }

  /** recentGaps with how long ago each was passed (a merged range: its newest part's age). */
  passedGaps(now: number, horizonMs: number, max: number): PassedGap[] {
    let drop = 0;
    while (drop < this.#recent.length && now - this.#recent[drop]!.at > horizonMs) drop++;
    if (drop > 0) this.#recent = this.#recent.slice(drop);
    if (this.#recent.length <= max)
      return this.#recent.map((g) => ({ lo: g.lo, hi: g.hi, ageMs: now - g.at }));
    const lo = Math.min(...this.#recent.map((g) => g.lo));
    return [{ lo, hi: this.#cursor, ageMs: now - this.#recent[this.#recent.length - 1]!.at }];
  }

  /** Goes back to `cursor` after a failed publish (its rows are fetched again). */
  reset(cursor: number): void {
    this.#cursor = cursor;
  }

  /** How long, at most, the first row held back has still to wait (ms), or undefined if none. */
  nextRelease(now: number): number | undefined {
    let soonest: number | undefined;
    for (const since of this.#waiting.values()) {
      const left = Math.max(0, since + this.gapWaitMs - now);
      if (soonest === undefined || left < soonest) soonest = left;
    }
    return soonest;
  }
}
