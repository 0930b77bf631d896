import type { Priority } from "./model.js";

/**
 * Entries one lane keeps at most: beyond it the oldest are forgotten, and their messages go out
 * in seq order like any other (1 Mi seqs ≈ 8 MiB per lane, per topic with mixed priorities).
 */
export const MAX_LANE_ENTRIES = 1 << 20;

/** Rising seqs, appended at the end, forgotten from the front. */
export class SeqLane {
  #seqs: number[] = [];
  #head = 0;

  get size(): number {
    return this.#seqs.length - this.#head;
  }

  push(seq: number): void {
    this.#seqs.push(seq);
    if (this.size > MAX_LANE_ENTRIES) this.#head++;
    // Drop the forgotten front once it is half the array, so pushes stay amortized O(1).
    if (this.#head > 4096 && this.#head * 2 > this.#seqs.length) {
      this.#seqs = this.#seqs.slice(this.#head);
      this.#head = 0;
    }
  }

  /** The position of the first seq ≥ `seq` (binary search); `end` when there is none. */
  firstAtLeast(seq: number): number {
    let lo = this.#head;
    let hi = this.#seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#seqs[mid]! < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Puts `seqs` (rising, all below every seq held) in front of the lane: a restart's rebuild,
   * whose scan ends where the appends since the start began. The newest MAX_LANE_ENTRIES stay.
   */
  prepend(seqs: readonly number[]): void {
    const all = seqs.concat(this.#seqs.slice(this.#head));
    this.#seqs = all.length > MAX_LANE_ENTRIES ? all.slice(all.length - MAX_LANE_ENTRIES) : all;
    this.#head = 0;
  }

  /** Forgets every seq. */
  clear(): void {
    this.#seqs = [];
    this.#head = 0;
  }

  /** The seq at a position from firstAtLeast, or undefined past the end. */
  at(pos: number): number | undefined {
    return pos < this.#head ? undefined : this.#seqs[pos];
  }
}

/**
 * Which seqs of a topic are urgent and which normal, so a subscription can hand out urgent (then
 * normal) messages ahead of older ones; bulk is what neither lane holds. Priority is a field of
 * the stored message, not a separate log: every message keeps its one seq in the topic's order,
 * and acks, floors and redeliveries work on seqs as before. The lanes are kept in memory from the
 * first urgent or bulk message on (until then seq order is priority order, and nothing is kept).
 * When a broker loads a topic, the lanes are rebuilt from the stored backlog (see
 * priority-rebuild.ts); until that is done (`loading`) subscriptions hand out no first delivery.
 */
export class PriorityIndex {
  #mixed = false;
  #loading = false;
  /** Resolves once a rebuild started by `rebuild` is over (at once when none is). */
  ready: Promise<void> = Promise.resolve();
  readonly urgent = new SeqLane();
  readonly normal = new SeqLane();

  /** Whether the topic has a message that is not normal (in the log, or since the broker started). */
  get mixed(): boolean {
    return this.#mixed;
  }

  /** Whether the lanes are still being rebuilt from the stored log. */
  get loading(): boolean {
    return this.#loading;
  }

  /** Records the priority of a message just given `seq` (in rising seq order). */
  note(seq: number, priority: Priority | undefined): void {
    if (priority === undefined || priority === "normal") {
      // While loading, normals are kept too: the backlog may turn out mixed.
      if (this.#mixed || this.#loading) this.normal.push(seq);
      return;
    }
    this.#mixed = true;
    if (priority === "urgent") this.urgent.push(seq);
  }

  /**
   * Rebuilds the lanes from what `scan` finds in the stored log (seqs below every seq noted
   * meanwhile). `loading` until it settles; a failed scan leaves the lanes as appends made them.
   */
  rebuild(scan: Promise<LaneSeqs>): void {
    this.#loading = true;
    this.ready = scan.then(
      (found) => {
        this.#loading = false;
        if (found.mixed) this.#mixed = true;
        if (!this.#mixed) {
          this.normal.clear();
          return;
        }
        this.urgent.prepend(found.urgent);
        this.normal.prepend(found.normal);
      },
      () => {
        this.#loading = false;
        if (!this.#mixed) this.normal.clear();
      },
    );
  }
}

/** What a scan of the stored log found: urgent and normal seqs (rising), and whether any was not normal. */
export interface LaneSeqs {
  readonly urgent: number[];
  readonly normal: number[];
  readonly mixed: boolean;
  /** The highest seq found urgent or bulk (0: none). */
  readonly lastOther: number;
  /** The lowest seq the scan covered (the scan stops at its bounds). */
  readonly from: number;
}
