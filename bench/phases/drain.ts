import { preload, runDrain } from "../scenarios.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * Phase 3: a backlog published, then drained by a fresh broker (`drain`), and drained again by a
 * profiled one (`profile`): the profile needs the backlog, so this phase runs for either name.
 */
export async function drainPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  // A million 100 B messages: ~15 s to publish, ~15 s to drain, restarts.
  const drainEstimate =
    Math.min(opt.num("preload-seconds"), opt.num("backlog") / 70_000) + opt.num("backlog") / 70_000 + 5;
  await ctx.phase("drain", drainEstimate, async () => {
    const storeUrl = await ctx.freshStore("drain");
    const flags = { shards: 4, "heartbeat-ms": 200 };
    let b = await ctx.startBroker(storeUrl, flags);
    const pre = await preload(
      b.address,
      "drain",
      {
        total: opt.num("backlog"),
        packSize: opt.num("pack"),
        bytes: 100,
        publishers: opt.num("publishers"),
        maxMs: opt.num("preload-seconds") * 1000,
      },
      `[${store}] drain`,
    );
    await ctx.stopBroker(b, "drain preload");
    const backlog = pre.published;
    if (pre.lastSeq !== backlog) throw new Error(`preload: last seq ${pre.lastSeq}, published ${backlog}`);
    if (ctx.selected("drain")) {
      // A fresh process: nothing of the backlog is in the tail cache, all of it is read.
      b = await ctx.startBroker(storeUrl, flags);
      try {
        const res = await runDrain(
          b.address,
          "drain",
          "drain",
          { backlog, window: opt.num("drain-window"), timeoutMs: opt.num("drain-timeout") * 1000 },
          `[${store}] drain ${backlog}`,
          ctx.pidsOf(b),
        );
        ctx.results.drain = {
          ...res,
          requestedBacklog: opt.num("backlog"),
          shards: 4,
          bytes: 100,
          preloadSeconds: pre.seconds,
          preloadRate: pre.messagesPerSec,
        };
      } finally {
        await ctx.stopBroker(b, "drain");
      }
    }
    if (ctx.selected("profile")) {
      b = await ctx.startBroker(storeUrl, flags, "drain");
      try {
        await runDrain(
          b.address,
          "drain",
          "drain-profile",
          { backlog, window: opt.num("drain-window"), timeoutMs: opt.num("profile-seconds") * 1000 },
          `[${store}] drain (profiled)`,
        );
      } finally {
        await ctx.stopBroker(b, "drain profile");
      }
      ctx.recordProfile("drain");
    }
  });
}
