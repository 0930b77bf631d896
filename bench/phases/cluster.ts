import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AdminService, LocateTopicRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { createClient } from "../../clients/ts/src/grpc-adapter.js";
import type { BrokerProcess } from "../lib/broker.js";
import { fmtInt, now, progress, sleep } from "../lib/stats.js";
import { encodeAcks, encodePack, encodeSubscribe, openReceive, rawClient, sendPack } from "../lib/wire.js";
import type { ClusterRun, Route } from "./cluster-result.js";
import type { PhaseContext } from "./phase-context.js";

/** Topics of each run, one publisher and one consumer each: enough to spread over 3 brokers. */
const TOPICS = 6;
/** Bytes of each message's payload. */
const PAYLOAD_BYTES = 100;
/** The drain streams' window. */
const WINDOW = 10_000;

/** Where each topic's owner is (an index into `brokers`), asked of the first broker. */
async function owners(brokers: readonly BrokerProcess[], topics: readonly string[]): Promise<number[]> {
  const admin = createClient(AdminService, brokers[0]!.address);
  try {
    const out: number[] = [];
    for (const topic of topics) {
      const address = await new Promise<string>((resolve, reject) =>
        admin.locateTopic(
          create(LocateTopicRequestSchema, { topic }),
          new grpc.Metadata(),
          { deadline: Date.now() + 10_000 },
          (err, res) => (err ? reject(err) : resolve(res!.address)),
        ),
      );
      const i = address === "" ? 0 : brokers.findIndex((b) => b.address === address);
      out.push(Math.max(0, i));
    }
    return out;
  } finally {
    admin.close();
  }
}

/** Publishes to each topic through its client for `durationMs`; returns the messages confirmed per topic. */
async function publishAll(
  clients: readonly grpc.Client[],
  topics: readonly string[],
  pack: number,
  durationMs: number,
): Promise<number[]> {
  const confirmed = topics.map(() => 0);
  const end = now() + durationMs;
  await Promise.all(
    topics.map(async (topic, i) => {
      const request = encodePack(topic, pack, PAYLOAD_BYTES);
      while (now() < end) {
        const r = await sendPack(clients[i]!, request, 30_000);
        confirmed[i]! += r.lastSeq - r.firstSeq + 1;
      }
    }),
  );
  return confirmed;
}

/** Reads and acks every topic's `expected` messages; returns how many were read. */
async function drainAll(
  clients: readonly grpc.Client[],
  topics: readonly string[],
  expected: readonly number[],
  timeoutMs: number,
): Promise<number> {
  let read = 0;
  await Promise.all(
    topics.map(
      (topic, i) =>
        new Promise<void>((resolve) => {
          const call = openReceive(clients[i]!, false);
          let got = 0;
          const finish = () => {
            clearTimeout(timer);
            call.cancel();
            resolve();
          };
          const timer = setTimeout(finish, timeoutMs);
          call.on("error", finish);
          call.on("data", (b) => {
            got += b.seqs.length;
            read += b.seqs.length;
            call.write(encodeAcks(b.seqs));
            if (got >= expected[i]!) finish();
          });
          // The subscription is made by this stream, from the earliest message.
          call.write(encodeSubscribe(topic, "drain", { maxMessages: WINDOW, from: "earliest" }));
        }),
    ),
  );
  return read;
}

/**
 * Publish and drain through 1, 2 and 3 brokers sharing one MySQL database (`--cluster`), each
 * with the calls forwarded (every call to a broker that does not own its topic) and direct (to
 * the owner, as `directToOwner` clients do). TOPICS topics with one SendPack publisher each
 * (--pack messages of 100 B) for --warmup and then --duration seconds, then one consumer each
 * drains them.
 * MySQL only; `--only cluster`, not part of the default run. Each run is printed as one JSON
 * line on stdout, and all of them go to cluster-mysql.json in the results directory and to the
 * store's `cluster` in results.json (a table in results.md).
 */
export async function clusterPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  if (ctx.mysql === undefined) {
    progress.done(`[${store}] cluster: MySQL only, skipped`);
    return;
  }
  const durationMs = opt.num("duration") * 1000;
  const drainTimeoutMs = opt.num("drain-timeout") * 1000;
  const runs: ClusterRun[] = [];
  await ctx.phase("cluster", 5 * (opt.num("duration") * 2 + 5) + 20, async () => {
    for (const count of [1, 2, 3]) {
      const url = await ctx.freshStore(`cluster${count}`);
      const brokers: BrokerProcess[] = [];
      try {
        for (let i = 0; i < count; i++)
          brokers.push(
            await ctx.startBroker(url, { "lease-ttl-ms": 2000, "lease-renew-ms": 500 }, undefined, [], {
              NERVEBUS_CLUSTER: "true",
            }),
          );
        // Every broker has seen the others' heartbeats before topics fall to them.
        await sleep(1500);
        const routes: Route[] = count === 1 ? ["direct"] : ["forwarded", "direct"];
        for (const route of routes) {
          const topics = Array.from({ length: TOPICS }, (_, i) => `cl${count}-${route}-${i}`);
          const owner = await owners(brokers, topics);
          const clients = topics.map((_, i) => {
            const at = route === "direct" ? owner[i]! : (owner[i]! + 1) % count;
            return rawClient(brokers[at]!.address);
          });
          try {
            const label = `[${store}] cluster ${count} broker${count > 1 ? "s" : ""} ${route}`;
            progress.update(`${label}: publishing`, true);
            // The warm-up (topics created, connections made, code compiled) is not measured, but
            // drained with the rest.
            const warm = await publishAll(clients, topics, opt.num("pack"), opt.num("warmup") * 1000);
            const started = now();
            const measured = await publishAll(clients, topics, opt.num("pack"), durationMs);
            const publishSeconds = (now() - started) / 1000;
            const perTopic = measured.map((n, i) => n + warm[i]!);
            const messages = perTopic.reduce((a, b) => a + b, 0);
            progress.update(`${label}: draining ${fmtInt(messages)}`, true);
            const drainStart = now();
            const read = await drainAll(clients, topics, perTopic, drainTimeoutMs);
            const run: ClusterRun = {
              brokers: count,
              route,
              topics: TOPICS,
              publishPerSec: measured.reduce((a, b) => a + b, 0) / publishSeconds,
              drainPerSec: read / ((now() - drainStart) / 1000),
              messages,
              undrained: Math.max(0, messages - read),
            };
            runs.push(run);
            progress.done(
              `${label}: ${fmtInt(run.publishPerSec)} msg/s published, ${fmtInt(run.drainPerSec)} msg/s drained`,
            );
            process.stdout.write(`${JSON.stringify(run)}\n`);
          } finally {
            for (const c of clients) c.close();
          }
        }
      } finally {
        for (const b of brokers) await ctx.stopBroker(b, `cluster ${count} brokers`);
      }
    }
  });
  writeFileSync(join(ctx.suite.out, `cluster-${store}.json`), `${JSON.stringify(runs, null, 2)}\n`);
  ctx.results.cluster = runs;
}
