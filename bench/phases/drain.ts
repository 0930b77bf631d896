import { preload, runDrain } from "../scenarios.js";
import type { PhaseContext } from "./phase-context.js";

/** The payload size the drain profile and the `drain` result of older readers use. */
const PROFILED_BYTES = 100;

/**
 * Phase 3: for each --drain-sizes payload, a backlog published, then drained by a fresh broker
 * (`drain`); the 100 B backlog is drained again by a profiled one (`profile`): the profile needs
 * the backlog, so this phase runs for either name. A size's backlog holds the payload bytes of
 * --backlog messages of 100 B (1 M of 100 B, 97,656 of 1 KiB), so each size takes about as long.
 */
export async function drainPhase(ctx: PhaseContext): Promise<void> {
  const { opt } = ctx;
  for (const bytes of opt.nums("drain-sizes")) {
    if (bytes !== PROFILED_BYTES && !ctx.selected("drain")) continue;
    const backlog = Math.max(1, Math.round((opt.num("backlog") * 100) / bytes));
    // A million 100 B messages: ~15 s to publish, ~15 s to drain, restarts.
    const estimate = Math.min(opt.num("preload-seconds"), backlog / 70_000) + backlog / 70_000 + 5;
    await ctx.phase(bytes === PROFILED_BYTES ? "drain" : `drain ${bytes} B`, estimate, () =>
      drainSize(ctx, bytes, backlog),
    );
  }
}

async function drainSize(ctx: PhaseContext, bytes: number, requested: number): Promise<void> {
  const { opt, store } = ctx;
  const label = `[${store}] drain${bytes === PROFILED_BYTES ? "" : ` ${bytes} B`}`;
  const storeUrl = await ctx.freshStore(`drain${bytes}`);
  const flags = { shards: 4, "heartbeat-ms": 200 };
  let b = await ctx.startBroker(storeUrl, flags);
  const pre = await preload(
    b.address,
    "drain",
    {
      total: requested,
      packSize: opt.num("pack"),
      bytes,
      publishers: opt.num("publishers"),
      maxMs: opt.num("preload-seconds") * 1000,
    },
    label,
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
        `${label} ${backlog}`,
        ctx.pidsOf(b),
      );
      const entry = {
        ...res,
        requestedBacklog: requested,
        shards: 4,
        bytes,
        preloadSeconds: pre.seconds,
        preloadRate: pre.messagesPerSec,
      };
      ctx.results.drains.push(entry);
      if (bytes === PROFILED_BYTES) ctx.results.drain = entry;
    } finally {
      await ctx.stopBroker(b, "drain");
    }
  }
  if (ctx.selected("profile") && bytes === PROFILED_BYTES) {
    b = await ctx.startBroker(storeUrl, flags, "drain");
    try {
      await runDrain(
        b.address,
        "drain",
        "drain-profile",
        { backlog, window: opt.num("drain-window"), timeoutMs: opt.num("profile-seconds") * 1000 },
        `${label} (profiled)`,
      );
    } finally {
      await ctx.stopBroker(b, "drain profile");
    }
    ctx.recordProfile("drain");
  }
}
