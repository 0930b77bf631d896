import { runE2E } from "../scenarios.js";
import type { PhaseContext } from "./phase-context.js";

/** Phase 4: end-to-end latency at each --e2e-rates rate, on one broker. */
export async function e2ePhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  const rates = opt.nums("e2e-rates");
  await ctx.phase("e2e", rates.length * (opt.num("e2e-duration") + opt.num("warmup") + 1) + 1, async () => {
    const b = await ctx.startBroker(await ctx.freshStore("e2e"), { shards: 4 });
    try {
      for (const rate of rates) {
        ctx.results.e2e.push(
          await runE2E(
            b.address,
            `e2e-${rate}`,
            {
              rate,
              durationMs: opt.num("e2e-duration") * 1000,
              warmupMs: opt.num("warmup") * 1000,
              tickMs: opt.num("e2e-tick"),
              bytes: 100,
              window: 10_000,
            },
            `[${store}] e2e ${rate} msg/s`,
            ctx.pidsOf(b),
            b.httpAddress,
          ),
        );
      }
    } finally {
      await ctx.stopBroker(b, "e2e");
    }
  });
}
