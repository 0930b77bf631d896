import type { OutboxRow } from "./outbox-source.js";

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
  admit(rows: readonly OutboxRow[], now: number): { ready: OutboxRow[]; cursor: number; gaps: number } {
    let previous = this.#cursor;
    for (const r of rows) {
      if (r.id !== previous + 1 && !this.#waiting.has(r.id)) this.#waiting.set(r.id, now);
      previous = r.id;
    }
    const ready: OutboxRow[] = [];
    let expected = this.#cursor + 1;
    let gaps = 0;
    for (const r of rows) {
      if (r.id !== expected) {
        const since = this.#waiting.get(r.id) ?? now;
        if (now - since < this.gapWaitMs) break;
        gaps += r.id - expected;
      }
      ready.push(r);
      expected = r.id + 1;
    }
    return { ready, cursor: expected - 1, gaps };
  }

  /** Moves the cursor once the rows admitted up to it are published. */
  advance(cursor: number, gaps: number): void {
    if (cursor <= this.#cursor) return;
    this.#cursor = cursor;
    this.passed += gaps;
    for (const id of this.#waiting.keys()) if (id <= cursor) this.#waiting.delete(id);
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
