/**
 * 10 000 runs: the log is rewritten whole when it changes (≈ 30 bytes a run, so ≈ 300 KB at
 * most); a subscription past that forgets its oldest dead letters, which then read as acked.
 */
export const MAX_DEAD_LETTER_RUNS = 10_000;

/** Consecutive seqs dead-lettered to one topic ("" when they were dropped: no dead-letter topic). */
interface Run {
  first: number;
  last: number;
  readonly topic: string;
}

/**
 * Which seqs of a subscription were dead-lettered, and to which topic. The acked ranges cannot
 * tell: a dead-lettered message counts as acked, and the floor soon passes it. Kept as runs in
 * seq order, stored in a column of its own (written only when it changed, since dead letters
 * are rare and the state blob is rewritten every few milliseconds), so it survives restarts.
 */
export class DeadLetterLog {
  #runs: Run[];
  /** Changed since the last `take`. */
  #changed = false;

  private constructor(runs: Run[]) {
    this.#runs = runs;
  }

  /** The log a stored blob holds (null or empty: none); a blob it cannot read counts as none. */
  static decode(blob: Uint8Array | null | undefined): DeadLetterLog {
    if (blob === null || blob === undefined || blob.byteLength === 0) return new DeadLetterLog([]);
    try {
      const parsed = JSON.parse(Buffer.from(blob).toString("utf8")) as [number, number, string][];
      return new DeadLetterLog(parsed.map(([first, last, topic]) => ({ first, last, topic })));
    } catch {
      // Only the history of dead letters is lost; nothing is delivered differently.
      return new DeadLetterLog([]);
    }
  }

  /** The topic `seq` was dead-lettered to ("" when it was dropped), or undefined when it was not. */
  topicOf(seq: number): string | undefined {
    const i = this.#indexAtOrBefore(seq);
    const run = i < 0 ? undefined : this.#runs[i]!;
    return run !== undefined && seq <= run.last ? run.topic : undefined;
  }

  /** Records that `seq` was dead-lettered to `topic`. */
  add(seq: number, topic: string): void {
    const i = this.#indexAtOrBefore(seq);
    const before = i < 0 ? undefined : this.#runs[i]!;
    if (before !== undefined && seq <= before.last && before.topic === topic) return;
    this.#changed = true;
    if (before !== undefined && seq <= before.last) {
      // Dead-lettered again after a seek back, to another topic: split the run around it.
      const parts: Run[] = [];
      if (before.first < seq) parts.push({ first: before.first, last: seq - 1, topic: before.topic });
      parts.push({ first: seq, last: seq, topic });
      if (seq < before.last) parts.push({ first: seq + 1, last: before.last, topic: before.topic });
      this.#runs.splice(i, 1, ...parts);
    } else if (before !== undefined && before.last === seq - 1 && before.topic === topic) {
      before.last = seq;
    } else {
      this.#runs.splice(i + 1, 0, { first: seq, last: seq, topic });
    }
    this.#mergeAround(Math.max(0, i - 1));
    if (this.#runs.length > MAX_DEAD_LETTER_RUNS)
      this.#runs.splice(0, this.#runs.length - MAX_DEAD_LETTER_RUNS);
  }

  /** Forgets seqs ≥ `seq` (a seek back: they are delivered again). */
  forgetFrom(seq: number): boolean {
    const kept = this.#runs.filter((r) => r.first < seq);
    const last = kept[kept.length - 1];
    if (last !== undefined && last.last >= seq) last.last = seq - 1;
    else if (kept.length === this.#runs.length) return false;
    this.#runs = kept;
    this.#changed = true;
    return true;
  }

  /** Forgets seqs ≤ `seq` (retention deleted them; nobody can look them up any more); true if any were. */
  forgetThrough(seq: number): boolean {
    const kept = this.#runs.filter((r) => r.last > seq);
    const first = kept[0];
    if (first !== undefined && first.first <= seq) first.first = seq + 1;
    else if (kept.length === this.#runs.length) return false;
    this.#runs = kept;
    this.#changed = true;
    return true;
  }

  /** The blob to store when the log changed since the last call (and marks it stored), else undefined. */
  take(): Uint8Array | undefined {
    if (!this.#changed) return undefined;
    this.#changed = false;
    return Buffer.from(JSON.stringify(this.#runs.map((r) => [r.first, r.last, r.topic])));
  }

  /** A taken blob was not stored after all: the next take returns the log again. */
  untake(): void {
    this.#changed = true;
  }

  /** The index of the last run starting at or before `seq` (-1: none). */
  #indexAtOrBefore(seq: number): number {
    let lo = 0;
    let hi = this.#runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.#runs[mid]!.first <= seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi;
  }

  /** Joins the few runs from index `i` on that an add made adjacent and that share a topic. */
  #mergeAround(i: number): void {
    for (let j = i; j + 1 < this.#runs.length && j <= i + 3; ) {
      const a = this.#runs[j]!;
      const b = this.#runs[j + 1]!;
      if (a.last + 1 === b.first && a.topic === b.topic) {
        a.last = b.last;
        this.#runs.splice(j + 1, 1);
      } else j++;
    }
  }
}
