import { progress } from "../lib/stats.js";
import { type RawRunOptions, rawMysqlRuns, rawSqliteRuns } from "../raw-runs.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * Phase 1b, the run-row ceiling: format-2 rows (a run of --run-messages messages each) written
 * and read straight through the driver, for every shard count and size (see raw-runs.ts).
 */
export async function rawRunsPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  const configs = opt.nums("shards").length * opt.nums("sizes").length;
  await ctx.phase(
    "raw-runs",
    configs * (opt.num("raw-duration") + 0.5 + opt.num("raw-read-seconds")),
    async () => {
      const url = store === "mysql" ? await ctx.mysql!.database("bench_raw_runs") : "";
      for (const shards of opt.nums("shards")) {
        for (const bytes of opt.nums("sizes")) {
          const o: RawRunOptions = {
            shards,
            bytes,
            runMessages: opt.num("run-messages"),
            durationMs: opt.num("raw-duration") * 1000,
            warmupMs: 500,
            readRange: 5000,
            readMs: opt.num("raw-read-seconds") * 1000,
          };
          const label = `[${store}] raw runs ${shards} shards ${bytes} B`;
          const res =
            store === "mysql"
              ? await rawMysqlRuns(url, o, label, ctx.dbPid)
              : await rawSqliteRuns(ctx.workDir, o, label);
          ctx.results.rawRuns.push(res);
          progress.done(
            `${label}: INSERT ${Math.round(res.insertMessagesPerSec)} msg/s (${Math.round(res.insertRowsPerSec)} rows/s), SELECT ${Math.round(res.selectMessagesPerSec)} msg/s`,
          );
        }
      }
    },
  );
}
