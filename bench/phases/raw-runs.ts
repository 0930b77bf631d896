import { progress } from "../lib/stats.js";
import { type RawRunOptions, rawMysqlRuns, rawSqliteRuns } from "../raw-runs.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * The run-row ceiling: format-2 rows written and read straight through the driver, for every
 * shard count and size (see raw-runs.ts), each row as long as the broker's own runs were in
 * this run's publish phase (--run-messages auto) or as --run-messages says.
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
            runMessages: runMessages(ctx, shards, bytes),
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

/** Messages per row: --run-messages, or with "auto" what the broker stored per row when publishing. */
function runMessages(ctx: PhaseContext, shards: number, bytes: number): number {
  if (ctx.opt.str("run-messages") !== "auto") return Math.round(ctx.opt.num("run-messages"));
  const p = ctx.results.publish.find((x) => x.shards === shards && x.bytes === bytes);
  return Math.max(1, Math.round(p?.messagesPerRun ?? ctx.opt.num("pack")));
}
