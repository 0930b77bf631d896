import { runE2E, runPublish } from "../scenarios.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * Phases 6 and 7: CPU profiles of the broker under publish load (4 shards, 100 B) and under
 * end-to-end load at the highest --e2e-rates rate, where the long event-loop stalls come from.
 * (The drain profile is taken in the drain phase, on its backlog.)
 */
export async function profilePhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  await ctx.phase("publish profile", opt.num("profile-seconds") + 2, async () => {
    const b = await ctx.startBroker(await ctx.freshStore("pubprof"), { shards: 4 }, "publish");
    try {
      await runPublish(
        b.address,
        "pub-100",
        {
          publishers: opt.num("publishers"),
          packSize: opt.num("pack"),
          bytes: 100,
          durationMs: opt.num("profile-seconds") * 1000,
          warmupMs: 0,
          deadlineMs: 30_000,
        },
        `[${store}] publish 4 shards 100 B (profiled)`,
      );
    } finally {
      await ctx.stopBroker(b, "publish profile");
    }
    ctx.recordProfile("publish");
  });
  await ctx.phase("e2e profile", opt.num("profile-seconds") + 3, async () => {
    const rate = Math.max(...opt.nums("e2e-rates"));
    const b = await ctx.startBroker(await ctx.freshStore("e2eprof"), { shards: 4 }, "e2e");
    try {
      await runE2E(
        b.address,
        "e2e-profile",
        {
          rate,
          durationMs: opt.num("profile-seconds") * 1000,
          warmupMs: 1000,
          tickMs: opt.num("e2e-tick"),
          bytes: 100,
          window: 10_000,
        },
        `[${store}] e2e ${rate} msg/s (profiled)`,
      );
    } finally {
      await ctx.stopBroker(b, "e2e profile");
    }
    ctx.recordProfile("e2e");
  });
}
