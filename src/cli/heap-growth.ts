import { setFlagsFromString } from "node:v8";

/**
 * V8 starts a full collection once the old generation, plus the Buffer memory allocated since
 * the last one, nears a limit it sets from the JS heap alone: about twice a heap of ~25 MB. The
 * broker's JS heap is small and its Buffers are large (run bodies the tail cache keeps for a
 * few hundred ms, so they outlive two scavenges and are freed only by a full collection): at
 * full publish speed that was a mark-compact every ~100 ms, 20–30 % of the broker's CPU, each
 * freeing a few MB. A growth of 200 % (the heap may reach 3 × what the last collection left)
 * makes them 2–4 × rarer: broker CPU per published message −22 to −40 % (BENCHMARKS.md, "Round 2,
 * fourth session: publish CPU"). 300 % saved a little more and let overload RSS past 300 MB.
 */
export const ROOMY_GROWING_PERCENT = 200;

/**
 * 64 MiB: what garbage waiting for a collection may take of the ~100 MB the runtime has on top
 * of the memory budget (README, "What bounds the broker's memory"); a broker at full publish
 * speed holds ~180 MB with the default budget (192 MiB), so it leaves the roomy growth its room.
 */
export const GARBAGE_ALLOWANCE_BYTES = 64 << 20;

/**
 * 100 ms: a full collection's room is spent in a few hundred ms at full speed, and a broker
 * filling up under overload must be back to V8's own growth before its next collection.
 */
const CHECK_MS = 100;

/**
 * The `--heap-growing-percent` V8 should use with `rssBytes` resident and `heapUsedBytes` of JS
 * heap: as much growth as there is room for below `ceilingBytes` (the memory budget plus
 * GARBAGE_ALLOWANCE_BYTES) beyond what the process holds now (growth counts the garbage,
 * Buffers included, that the next full collection frees), at most the roomy growth; 0 (V8's
 * own, which keeps garbage near the live heap) when that room is less than the heap itself.
 * So the garbage it lets wait never takes a broker past its bound, and a broker near its bound
 * collects as before.
 */
export function growingPercentFor(rssBytes: number, heapUsedBytes: number, ceilingBytes: number): number {
  const percent = Math.floor((100 * (ceilingBytes - rssBytes)) / Math.max(1, heapUsedBytes));
  return percent < 100 ? 0 : Math.min(percent, ROOMY_GROWING_PERCENT);
}

/** The `--heap-growing-percent` argument Node was started with, if any. */
export function growthArgIn(execArgv: readonly string[]): string | undefined {
  return execArgv.find((a) => /^--heap[-_]growing[-_]percent(=|$)/.test(a));
}

/** Whether Node was started with its own `--heap-growing-percent` (then it is left alone). */
export function growthGivenIn(execArgv: readonly string[]): boolean {
  return growthArgIn(execArgv) !== undefined;
}

/**
 * process.memoryUsage(), or undefined when the process has no file descriptor left to read its
 * RSS from /proc (EMFILE, a flood of connections): the growth set last stays until it can be
 * read again; the exception thrown from a timer would have ended the broker.
 */
function residentUsage(): NodeJS.MemoryUsage | undefined {
  try {
    return process.memoryUsage();
  } catch {
    return undefined;
  }
}

/**
 * Paces V8's full collections by the broker's memory budget: every CHECK_MS sets the heap
 * growth growingPercentFor gives (V8 reads it at each collection's end). Does nothing when the
 * process was started with a growth of its own. Returns the function that stops it and gives
 * V8 its own growth back.
 */
export function paceFullCollections(budgetBytes: number, execArgv = process.execArgv): () => void {
  if (growthGivenIn(execArgv)) return () => undefined;
  let current = -1;
  const apply = (percent: number) => {
    if (percent === current) return;
    current = percent;
    setFlagsFromString(`--heap-growing-percent=${percent}`);
  };
  const check = () => {
    const usage = residentUsage();
    if (usage !== undefined)
      apply(growingPercentFor(usage.rss, usage.heapUsed, budgetBytes + GARBAGE_ALLOWANCE_BYTES));
  };
  check();
  const timer = setInterval(check, CHECK_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    apply(0);
  };
}
