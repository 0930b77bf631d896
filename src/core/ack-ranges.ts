/**
 * A set of seqs above a floor, kept as sorted disjoint closed ranges. `floor` rises over every
 * seq contiguous with it, so the set only ever holds seqs > floor + 1. Used for the acked
 * messages of a subscription: acks arrive out of order, and the persisted state is the floor
 * plus these ranges.
 */
export class AckRanges {
  #floor: number;
  /** Flat [start0, end0, start1, end1, …], sorted, disjoint, non-adjacent, all > floor + 1. */
  #ranges: number[] = [];

  constructor(floor = 0, ranges: readonly (readonly [number, number])[] = []) {
    this.#floor = floor;
    for (const [start, end] of ranges) this.addRange(start, end);
  }

  /** Adds every seq in [start, end]; returns how many were not in the set before. */
  addRange(start: number, end: number): number {
    const from = Math.max(start, this.#floor + 1);
    if (end < from) return 0;
    const r = this.#ranges;
    let added = end - from + 1;
    // Ranges overlapping or adjacent to [from, end] are merged into one.
    let i = 0;
    while (i < r.length && r[i + 1]! < from - 1) i += 2;
    let lo = from;
    let hi = end;
    let j = i;
    while (j < r.length && r[j]! <= end + 1) {
      const a = r[j]!;
      const b = r[j + 1]!;
      added -= Math.max(0, Math.min(b, end) - Math.max(a, from) + 1);
      lo = Math.min(lo, a);
      hi = Math.max(hi, b);
      j += 2;
    }
    r.splice(i, j - i, lo, hi);
    this.#absorbFloor();
    return added;
  }

  /** How many seqs in (floor, through] are in the set. */
  countThrough(through: number): number {
    let n = 0;
    for (let i = 0; i < this.#ranges.length && this.#ranges[i]! <= through; i += 2) {
      n += Math.min(this.#ranges[i + 1]!, through) - this.#ranges[i]! + 1;
    }
    return n;
  }

  /** Every seq ≤ floor is in the set. */
  get floor(): number {
    return this.#floor;
  }

  /** Number of ranges above the floor (the size of the persisted state). */
  get rangeCount(): number {
    return this.#ranges.length / 2;
  }

  /** Number of seqs in the set above the floor. */
  get countAboveFloor(): number {
    return this.countThrough(Number.POSITIVE_INFINITY);
  }

  has(seq: number): boolean {
    if (seq <= this.#floor) return true;
    const i = this.#indexOf(seq);
    return i >= 0;
  }

  /** Adds seq; returns false when it was already in the set. */
  add(seq: number): boolean {
    if (seq <= this.#floor) return false;
    const r = this.#ranges;
    // Acks mostly arrive in order: the floor moves up without touching the ranges (splice
    // allocates, and this runs once per acked message).
    if (seq === this.#floor + 1 && (r.length === 0 || r[0]! > seq + 1)) {
      this.#floor = seq;
      return true;
    }
    // Find the first range whose end ≥ seq - 1 (binary search over range ends).
    let lo = 0;
    let hi = r.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid * 2 + 1]! < seq - 1) lo = mid + 1;
      else hi = mid;
    }
    const i = lo * 2;
    if (i < r.length && r[i]! <= seq && seq <= r[i + 1]!) return false;
    if (i < r.length && r[i + 1] === seq - 1) {
      r[i + 1] = seq;
      if (i + 2 < r.length && r[i + 2] === seq + 1) {
        r[i + 1] = r[i + 3]!;
        r.splice(i + 2, 2);
      }
    } else if (i < r.length && r[i] === seq + 1) {
      r[i] = seq;
    } else {
      r.splice(i, 0, seq, seq);
    }
    this.#absorbFloor();
    return true;
  }

  /** Raises the floor to at least `floor` (a purge or seek), dropping ranges below it. */
  raiseFloor(floor: number): void {
    if (floor <= this.#floor) return;
    this.#floor = floor;
    while (this.#ranges.length > 0 && this.#ranges[1]! <= floor) this.#ranges.splice(0, 2);
    if (this.#ranges.length > 0 && this.#ranges[0]! <= floor) this.#ranges[0] = floor + 1;
    this.#absorbFloor();
  }

  /** Resets to exactly `floor` with nothing above it (a seek backwards). */
  reset(floor: number): void {
    this.#floor = floor;
    this.#ranges = [];
  }

  /** The smallest seq > `seq` that is not in the set. */
  nextMissing(seq: number): number {
    let s = Math.max(seq + 1, this.#floor + 1);
    const i = this.#indexOf(s);
    if (i >= 0) s = this.#ranges[i + 1]! + 1;
    return s;
  }

  /** The ranges above the floor as pairs, for persistence. */
  ranges(): [number, number][] {
    const out: [number, number][] = [];
    for (let i = 0; i < this.#ranges.length; i += 2) out.push([this.#ranges[i]!, this.#ranges[i + 1]!]);
    return out;
  }

  #indexOf(seq: number): number {
    const r = this.#ranges;
    let lo = 0;
    let hi = r.length / 2 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid * 2 + 1]! < seq) lo = mid + 1;
      else if (r[mid * 2]! > seq) hi = mid - 1;
      else return mid * 2;
    }
    return -1;
  }

  #absorbFloor(): void {
    if (this.#ranges.length > 0 && this.#ranges[0] === this.#floor + 1) {
      this.#floor = this.#ranges[1]!;
      // shift, not splice: splice allocates an array of what it removes.
      this.#ranges.shift();
      this.#ranges.shift();
    }
  }
}
