import { progress } from "../lib/stats.js";
import {
  type RawOptions,
  rawMysql,
  rawMysqlClientCpu,
  rawMysqlCommitLatency,
  rawSqlite,
  rawSqliteCommitLatency,
} from "../raw.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * Phase 1, the ceiling: raw INSERT/SELECT through the driver for every shard count and size,
 * mysql2's client CPU per row (MySQL), and raw commit latency at each end-to-end rate.
 */
export async function rawPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store, results: r } = ctx;
  const rawConfigs = opt.nums("shards").length * opt.nums("sizes").length;
  const rawEstimate =
    rawConfigs * (opt.num("raw-duration") + 1.5) +
    opt.nums("e2e-rates").length * (opt.num("raw-duration") + 1) +
    (store === "mysql" ? 6 : 0);
  await ctx.phase("raw", rawEstimate, async () => {
    const url = store === "mysql" ? await ctx.mysql!.database("bench_raw") : "";
    for (const shards of opt.nums("shards")) {
      for (const bytes of opt.nums("sizes")) {
        const o: RawOptions = {
          shards,
          bytes,
          batchRows: opt.num("raw-batch"),
          durationMs: opt.num("raw-duration") * 1000,
          warmupMs: 500,
          readRange: 5000,
          readMs: opt.num("raw-read-seconds") * 1000,
        };
        const label = `[${store}] raw ${shards} shards ${bytes} B`;
        const res =
          store === "mysql"
            ? await rawMysql(url, o, label, ctx.dbPid)
            : await rawSqlite(ctx.workDir, o, label);
        r.raw.push(res);
        progress.done(
          `${label}: INSERT ${Math.round(res.insertRowsPerSec)} rows/s, SELECT ${Math.round(res.selectRowsPerSec)} rows/s`,
        );
      }
    }
    if (store === "mysql") {
      for (const bytes of opt.nums("sizes")) {
        progress.update(`[mysql] client CPU per row, ${bytes} B: query() vs execute()…`, true);
        const res = await rawMysqlClientCpu(url, { bytes, rows: 1000, statements: 30 });
        r.rawClientCpu.push(res);
        progress.done(
          `[mysql] client CPU per row, ${bytes} B: query ${res.queryMicrosPerRow.toFixed(2)} µs, execute ${res.executeMicrosPerRow.toFixed(2)} µs`,
        );
      }
    }
    for (const rate of opt.nums("e2e-rates")) {
      const o = {
        rate,
        shards: 4,
        bytes: 100,
        tickMs: opt.num("e2e-tick"),
        durationMs: opt.num("raw-duration") * 1000,
        warmupMs: 500,
      };
      progress.update(`[${store}] raw commit latency at ${rate} rows/s…`, true);
      const res =
        store === "mysql"
          ? await rawMysqlCommitLatency(url, o)
          : await rawSqliteCommitLatency(ctx.workDir, o);
      r.rawLatency.push(res);
      progress.done(
        `[${store}] raw commit latency at ${rate} rows/s: p50 ${res.latencyMs.p50.toFixed(2)} ms, p99 ${res.latencyMs.p99.toFixed(2)} ms${res.fencedLatencyMs ? `; fenced run p99 ${res.fencedLatencyMs.p99.toFixed(2)} ms` : ""}`,
      );
    }
  });
}
