/** Small helpers shared by the benchmark programs. */

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Milliseconds on a monotonic clock with sub-millisecond resolution (same in every module). */
export const now = (): number => performance.timeOrigin + performance.now();

/**
 * A measured run's clock marks from now: it starts, measures after `warmupMs`, and ends
 * `durationMs` later (ms, on the `now` clock).
 */
export function measureWindow(o: { readonly warmupMs: number; readonly durationMs: number }): {
  start: number;
  measureFrom: number;
  end: number;
} {
  const start = now();
  const measureFrom = start + o.warmupMs;
  return { start, measureFrom, end: measureFrom + o.durationMs };
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of `values` (ms). */
export function percentiles(values: ArrayLike<number>): Percentiles {
  const n = values.length;
  if (n === 0)
    return {
      count: 0,
      p50: Number.NaN,
      p99: Number.NaN,
      p999: Number.NaN,
      max: Number.NaN,
      mean: Number.NaN,
    };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return { count: n, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: sorted[n - 1]!, mean: sum / n };
}

/** A growable list of float64 samples. */
export class Samples {
  #buf = new Float64Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.#buf.length) {
      const next = new Float64Array(this.#buf.length * 2);
      next.set(this.#buf);
      this.#buf = next;
    }
    this.#buf[this.length++] = v;
  }

  values(): Float64Array {
    return this.#buf.subarray(0, this.length);
  }
}

/** One status line on stderr, redrawn in place; silent when stderr is not a terminal. */
export class Progress {
  readonly #tty = process.stderr.isTTY === true;
  #last = 0;

  /** Whether a status line would be shown now (callers skip formatting it otherwise). */
  get due(): boolean {
    return this.#tty && Date.now() - this.#last >= 100;
  }

  /** Shows `text` (at most 10 redraws a second unless `force`). */
  update(text: string, force = false): void {
    if (!this.#tty) return;
    const t = Date.now();
    if (!force && t - this.#last < 100) return;
    this.#last = t;
    const width = Math.max(20, (process.stderr.columns ?? 100) - 1);
    process.stderr.write(`\r\x1b[K${text.slice(0, width)}`);
  }

  /** Leaves `text` on its own line. */
  done(text: string): void {
    if (!this.#tty) return;
    process.stderr.write(`\r\x1b[K${text}\n`);
  }
}

export const progress = new Progress();

/** 12345.6 → "12,346". */
export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
}

/** A latency in ms with sensible precision. */
export function fmtMs(n: number): string {
  if (!Number.isFinite(n)) return "–";
  return n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0);
}

export function fmtMiB(bytes: number): string {
  return Number.isFinite(bytes) ? `${(bytes / (1 << 20)).toFixed(0)} MiB` : "–";
}
