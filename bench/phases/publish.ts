import { runPublish } from "../scenarios.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * Phase 2: publish throughput, one broker per shard count, each payload size in turn on it
 * (each shard count is its own timed phase, `publish N shards`).
 */
export async function publishPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  for (const shards of opt.nums("shards")) {
    const estimate = opt.nums("sizes").length * (opt.num("duration") + opt.num("warmup") + 0.5) + 2;
    await ctx.phase(`publish ${shards} shards`, estimate, async () => {
      const b = await ctx.startBroker(await ctx.freshStore(`pub${shards}`), { shards });
      try {
        for (const bytes of opt.nums("sizes")) {
          const res = await runPublish(
            b.address,
            `pub-${bytes}`,
            {
              publishers: opt.num("publishers"),
              packSize: opt.num("pack"),
              bytes,
              durationMs: opt.num("duration") * 1000,
              warmupMs: opt.num("warmup") * 1000,
              deadlineMs: 30_000,
            },
            `[${store}] publish ${shards} shards ${bytes} B`,
            ctx.pidsOf(b),
          );
          ctx.results.publish.push({ ...res, shards });
        }
      } finally {
        await ctx.stopBroker(b, `publish ${shards} shards`);
      }
    });
  }
}
