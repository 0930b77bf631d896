import { readFileSync } from "node:fs";
import { sampleEventLoopDelay } from "../../src/telemetry/event-loop-delay.js";

/**
 * A broker's Prometheus histograms read from its /metrics text: the suite scrapes them around a
 * measured window to tell where the time went (the event loop held, or the store slow).
 */

/** A histogram summed over its label sets: the observation count and each bucket's cumulative count by bound. */
export interface HistogramSnapshot {
  readonly count: number;
  readonly buckets: ReadonlyMap<number, number>;
}

const LINE = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/;

/** `name`'s histogram in a Prometheus text exposition, summed over label sets (empty when absent). */
export function histogramOf(text: string, name: string): HistogramSnapshot {
  let count = 0;
  const buckets = new Map<number, number>();
  for (const line of text.split("\n")) {
    const m = LINE.exec(line);
    if (m === null) continue;
    const value = Number(m[3]);
    if (m[1] === `${name}_count`) count += value;
    else if (m[1] === `${name}_bucket`) {
      const le = /(?:^|,)le="([^"]+)"/.exec(m[2] ?? "")?.[1];
      if (le === undefined) continue;
      const bound = le === "+Inf" ? Number.POSITIVE_INFINITY : Number(le);
      buckets.set(bound, (buckets.get(bound) ?? 0) + value);
    }
  }
  return { count, buckets };
}

/**
 * Observations above `bound` (seconds, one of the histogram's bucket bounds) made between two
 * snapshots; undefined when the bound is not one of its buckets.
 */
export function observedAbove(
  before: HistogramSnapshot,
  after: HistogramSnapshot,
  bound: number,
): number | undefined {
  const a = after.buckets.get(bound);
  if (a === undefined) return undefined;
  const b = before.buckets.get(bound) ?? 0;
  return after.count - before.count - (a - b);
}

/** The broker's /metrics text, or undefined when it has no HTTP address or does not answer in 2 s. */
export async function scrapeMetrics(httpAddress: string | undefined): Promise<string | undefined> {
  if (httpAddress === undefined) return undefined;
  try {
    const res = await fetch(`http://${httpAddress}/metrics`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What held a measured window up: the broker's histograms scraped at its start and end, and
 * the load generator's own event loop (whose delays stamp deliveries late too).
 */
export interface Stalls {
  /** Event-loop delays (nervebus_event_loop_delay_seconds) over 25 and over 100 ms. */
  readonly loopOver25ms: number;
  readonly loopOver100ms: number;
  /** Store statements (nervebus_store_seconds, every operation) over 25 and over 100 ms. */
  readonly storeOver25ms: number;
  readonly storeOver100ms: number;
  /** The load generator's own event-loop delays over 25 and over 100 ms. */
  readonly loadgenOver25ms: number;
  readonly loadgenOver100ms: number;
  /**
   * Linux's I/O pressure over the window (/proc/pressure/io, "full"): ms during which every
   * runnable task of the machine waited for the disk; undefined where the kernel does not say.
   */
  readonly ioFullStallMs?: number | undefined;
}

/** /proc/pressure/io's "full" total (µs), or undefined where there is none. */
export function ioFullStallMicros(): number | undefined {
  try {
    const m = /^full .*total=(\d+)/m.exec(readFileSync("/proc/pressure/io", "utf8"));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Counts this process's event-loop delays over 25 and over 100 ms while it runs. */
export class LoopDelayCounter {
  over25ms = 0;
  over100ms = 0;
  readonly #stop: () => void;

  constructor() {
    this.#stop = sampleEventLoopDelay((seconds) => {
      if (seconds > 0.025) this.over25ms++;
      if (seconds > 0.1) this.over100ms++;
    });
  }

  stop(): void {
    this.#stop();
  }
}

/**
 * Stalls between two /metrics texts, with the load generator's own (`loadgen`); undefined when
 * either text is missing or lacks the histograms.
 */
export function stallsBetween(
  before: string | undefined,
  after: string | undefined,
  loadgen: { readonly over25ms: number; readonly over100ms: number },
  ioFullMicros?: { readonly before: number | undefined; readonly after: number | undefined },
): Stalls | undefined {
  if (before === undefined || after === undefined) return undefined;
  const loop = "nervebus_event_loop_delay_seconds";
  const store = "nervebus_store_seconds";
  const l0 = histogramOf(before, loop);
  const l1 = histogramOf(after, loop);
  const s0 = histogramOf(before, store);
  const s1 = histogramOf(after, store);
  const loop25 = observedAbove(l0, l1, 0.025);
  const loop100 = observedAbove(l0, l1, 0.1);
  if (loop25 === undefined || loop100 === undefined) return undefined;
  return {
    loopOver25ms: loop25,
    loopOver100ms: loop100,
    storeOver25ms: observedAbove(s0, s1, 0.025) ?? 0,
    storeOver100ms: observedAbove(s0, s1, 0.1) ?? 0,
    loadgenOver25ms: loadgen.over25ms,
    loadgenOver100ms: loadgen.over100ms,
    ioFullStallMs:
      ioFullMicros?.before === undefined || ioFullMicros.after === undefined
        ? undefined
        : (ioFullMicros.after - ioFullMicros.before) / 1000,
  };
}
