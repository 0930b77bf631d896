import { storedRuns } from "../lib/stored-runs.js";
import { runPublish } from "../scenarios.js";
import type { PublishEntry } from "../suite-results.js";
import type { PhaseContext } from "./phase-context.js";

/**
 * Phase 2: publish throughput, one broker per shard count, each payload size in turn on it
 * (each shard count is its own timed phase, `publish N shards`).
 */
export async function publishPhase(ctx: PhaseContext): Promise<void> {
  await publishEachSize(ctx, "publish", (shards) => ctx.freshStore(`pub${shards}`), ctx.results.publish);
}

/**
 * The no-store ceiling: the same load as the publish phase against a broker whose store
 * confirms every write at once and keeps nothing (bench/no-store-broker.ts), i.e. what gRPC,
 * protobuf and the broker's request handling allow on these CPUs.
 */
export async function noStorePhase(ctx: PhaseContext): Promise<void> {
  await publishEachSize(ctx, "no-store", async () => "none", ctx.results.noStore);
}

/** For each --shards: a broker on `storeUrl(shards)`, then each --sizes payload published to it. */
async function publishEachSize(
  ctx: PhaseContext,
  name: string,
  storeUrl: (shards: number) => Promise<string>,
  into: PublishEntry[],
): Promise<void> {
  const { opt, store } = ctx;
  for (const shards of opt.nums("shards")) {
    const estimate = opt.nums("sizes").length * (opt.num("duration") + opt.num("warmup") + 0.5) + 2;
    await ctx.phase(`${name} ${shards} shards`, estimate, async () => {
      const url = await storeUrl(shards);
      const b = await ctx.startBroker(url, { shards });
      const done: PublishEntry[] = [];
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
            `[${store}] ${name} ${shards} shards ${bytes} B`,
            ctx.pidsOf(b),
          );
          done.push({ ...res, shards });
        }
      } finally {
        await ctx.stopBroker(b, `${name} ${shards} shards`);
      }
      // How the broker cut the packs into rows, beside the run-row ceiling's --run-messages.
      for (const p of done) {
        const runs = url === "none" ? undefined : await storedRuns(url, ctx.mysql, `pub-${p.bytes}`);
        into.push(
          runs === undefined || runs.rows === 0 ? p : { ...p, messagesPerRun: runs.messages / runs.rows },
        );
      }
    });
  }
}
