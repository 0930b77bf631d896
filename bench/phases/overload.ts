import { words } from "../lib/args.js";
import { dockerfileRuntime } from "../lib/dockerfile-runtime.js";
import { progress } from "../lib/stats.js";
import { verifyStored } from "../lib/verify-stored.js";
import { type OverloadResult, runOverload } from "../scenarios.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * Phase 5: publishers at full speed with no consumer, the broker's memory sampled, then the
 * broker stopped and every confirmed message looked up in the store.
 */
export async function overloadPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  await ctx.phase("overload", opt.num("overload-duration") + 8, async () => {
    const storeUrl = await ctx.freshStore("overload");
    const runtime =
      opt.str("overload-node-options") === "dockerfile"
        ? dockerfileRuntime()
        : { nodeOptions: words(opt.str("overload-node-options")), env: {} };
    const nodeOptions = runtime.nodeOptions;
    const b = await ctx.startBroker(storeUrl, { shards: 4 }, undefined, nodeOptions, runtime.env);
    let res: OverloadResult;
    let shutdown: number | "killed";
    try {
      res = await runOverload(
        b,
        "overload",
        {
          publishers: opt.num("overload-publishers"),
          inflight: opt.num("overload-inflight"),
          packSize: opt.num("pack"),
          bytes: opt.num("overload-bytes"),
          durationMs: opt.num("overload-duration") * 1000,
          deadlineMs: opt.num("overload-deadline") * 1000,
          waitThresholdMs: 1000,
        },
        `[${store}] overload`,
        ctx.pidsOf(b),
      );
    } finally {
      shutdown = await ctx.stopBroker(b, "overload");
    }
    progress.update(`[${store}] overload: checking every confirmed seq is in the store…`, true);
    const verify = await verifyStored(storeUrl, "overload", res.confirmedRanges);
    progress.done(`[${store}] overload: ${verify.found} of ${verify.confirmed} confirmed messages stored`);
    ctx.results.overload = {
      ...res,
      verify,
      shutdown,
      nodeOptions: [...Object.entries(runtime.env).map(([k, v]) => `${k}=${v}`), ...nodeOptions].join(" "),
    };
  });
}
