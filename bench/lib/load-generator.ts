import { setFlagsFromString } from "node:v8";
import { growthArgIn, ROOMY_GROWING_PERCENT } from "../../src/cli/heap-growth.js";

/**
 * Gives this process (the load generator: publishers, subscribers and the raw drivers' clients
 * of every phase, ceilings included) the heap growth the broker gives itself
 * (src/cli/heap-growth.ts), unless node was started with one of its own. With V8's default
 * this process ran a mark-compact every ~0.85 s at 10k msg/s end to end, atomic pauses of
 * 3–11 ms and incremental steps of up to 11 ms, and the latencies it measured counted them as
 * the broker's; in drains, collections every 30–100 ms took half its CPU, on the two CPUs it
 * shares with the broker (BENCHMARKS.md, eleventh session). Returns what the results record.
 */
export function paceLoadGenerator(execArgv: readonly string[] = process.execArgv): string {
  const given = growthArgIn(execArgv);
  if (given !== undefined) return `node's ${given}`;
  setFlagsFromString(`--heap-growing-percent=${ROOMY_GROWING_PERCENT}`);
  return `--heap-growing-percent=${ROOMY_GROWING_PERCENT} (the broker's own)`;
}
