import { performance } from "node:perf_hooks";

/** How often the event loop is sampled (ms): a timer due every TICK_MS that fires late by the delay. */
export const TICK_MS = 20;

/**
 * Samples how late a timer due every TICK_MS fires: the time the broker's only thread was
 * busy (or paused) past the moment it should have come round. Each sample goes to `record`
 * in seconds; a block of 120 ms is one sample of ~0.1 s. The timer keeps no process alive.
 * Returns a function that stops the sampling.
 */
export function sampleEventLoopDelay(record: (seconds: number) => void): () => void {
  let due = performance.now() + TICK_MS;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const t = performance.now();
    record(Math.max(0, t - due) / 1000);
    due = t + TICK_MS;
    timer = setTimeout(tick, TICK_MS).unref();
  };
  timer = setTimeout(tick, TICK_MS).unref();
  return () => clearTimeout(timer);
}
