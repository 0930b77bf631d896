/**
 * Recently seen ids, each mapped to the seq it got (0 while a delayed message waits in the
 * schedule), forgotten once older than the window (times are monotonicNow()'s: a wall clock
 * stepped forward does not make the broker forget every id at once). Bounded: past `cap` entries the oldest are
 * forgotten early (the effective window shrinks; `evicted` counts it), so a producer that sends
 * unique ids at a high rate cannot make the broker grow without limit.
 */
export class DedupIndex {
  readonly #map = new Map<string, { seq: number; at: number }>();
  #order: { id: string; at: number }[] = [];
  #head = 0;
  evicted = 0;

  constructor(
    public windowMs: number,
    readonly cap: number,
  ) {}

  get size(): number {
    return this.#map.size;
  }

  get(id: string, now: number): number | undefined {
    this.prune(now);
    return this.#map.get(id)?.seq;
  }

  set(id: string, seq: number, at: number): void {
    if (this.windowMs <= 0) return;
    this.#map.set(id, { seq, at });
    this.#order.push({ id, at });
    while (this.#map.size > this.cap) {
      if (!this.#dropOldest()) break;
      this.evicted++;
    }
  }

  /** Forgets entries older than the window. */
  prune(now: number): void {
    const limit = now - this.windowMs;
    while (this.#head < this.#order.length && this.#order[this.#head]!.at < limit) this.#dropOldest();
  }

  #dropOldest(): boolean {
    if (this.#head >= this.#order.length) return false;
    const { id, at } = this.#order[this.#head++]!;
    // The id may have been set again later (scheduled → appended); only its last entry counts.
    if (this.#map.get(id)?.at === at) this.#map.delete(id);
    if (this.#head > 4096 && this.#head * 2 > this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
    return true;
  }
}
