import { monotonicNow } from "./clock.js";
/** Events per second over the last 10 s, from per-second buckets (no timers). */
export class RateMeter {
  readonly #buckets = new Float64Array(10);
  #second = 0;
  total = 0;

  mark(n = 1): void {
    this.#advance(Math.floor(monotonicNow() / 1000));
    this.#buckets[this.#second % 10]! += n;
    this.total += n;
  }

  /** Average events per second over the last 10 full-or-partial seconds. */
  rate(): number {
    this.#advance(Math.floor(monotonicNow() / 1000));
    let sum = 0;
    for (const b of this.#buckets) sum += b;
    return sum / 10;
  }

  #advance(second: number): void {
    if (second === this.#second) return;
    const gap = Math.min(10, second - this.#second);
    for (let i = 1; i <= gap; i++) this.#buckets[(this.#second + i) % 10] = 0;
    this.#second = second;
  }
}
