import { create, toBinary } from "@bufbuild/protobuf";
import { MessageSchema, Priority } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { SendPackRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { fmtInt, fmtMs, now, percentiles, progress, Samples, sleep } from "../lib/stats.js";
import { encodeAcks, encodeSubscribe, openReceive, rawClient, sendPack } from "../lib/wire.js";
import type { PhaseContext } from "./phase-context.js";
import type { PriorityPhaseResult } from "./priority-result.js";

/** Messages of the bulk backlog (100 B each, packs of 1000). */
const BACKLOG = 200_000;
/** Urgent messages per second while the backlog drains, one per pack. */
const URGENT_RATE = 100;
/** The consumer's window. */
const WINDOW = 1000;
/**
 * Messages the consumer processes (acks) per second: slower than the broker delivers, as a
 * consumer with a backlog is, so the backlog outlasts the run.
 */
const CONSUME_RATE = 5000;

/** A pack of `count` messages of `bytes` zero bytes (no stamp) with `priority`. */
function backlogPack(topic: string, count: number, bytes: number, priority: Priority): Buffer {
  const data = Buffer.alloc(bytes);
  const messages = Array.from({ length: count }, () => create(MessageSchema, { data, priority }));
  return Buffer.from(toBinary(SendPackRequestSchema, create(SendPackRequestSchema, { topic, messages })));
}

/** One message whose payload starts with its send time (a float64, as the e2e phase stamps). */
function stampedMessage(topic: string, priority: Priority, at: number): Buffer {
  const data = Buffer.alloc(100);
  data.writeDoubleLE(at, 0);
  return Buffer.from(
    toBinary(
      SendPackRequestSchema,
      create(SendPackRequestSchema, { topic, messages: [create(MessageSchema, { data, priority })] }),
    ),
  );
}

/**
 * A backlog, then a consumer draining it (at CONSUME_RATE) while a producer publishes stamped messages at
 * URGENT_RATE with `priority`: their latency from send to delivery, and the backlog drained
 * meanwhile.
 */
async function runBacklog(
  address: string,
  topic: string,
  priority: Priority,
  durationMs: number,
  label: string,
): Promise<PriorityPhaseResult> {
  const producer = rawClient(address);
  // Without priorities (the baseline) the backlog is normal too, so the topic is in seq order.
  const pack = backlogPack(topic, 1000, 100, priority === Priority.URGENT ? Priority.BULK : Priority.NORMAL);
  for (let sent = 0; sent < BACKLOG; sent += 4000) {
    await Promise.all(Array.from({ length: 4 }, () => sendPack(producer, pack, 60_000)));
    if (progress.due) progress.update(`${label}: backlog ${fmtInt(sent)}`);
  }
  const latencies = new Samples();
  let bulk = 0;
  let urgentSent = 0;
  const consumer = rawClient(address);
  const call = openReceive(consumer, true);
  const toAck: number[] = [];
  call.on("data", (b) => {
    const t = now();
    for (const stamp of b.stamps) {
      // Backlog payloads are zeros: a stamp of 0.
      if (stamp > 0) latencies.push(t - stamp);
      else bulk++;
    }
    toAck.push(...b.seqs);
  });
  // Acks at CONSUME_RATE, in delivery order.
  const acker = setInterval(() => {
    const n = Math.min(toAck.length, CONSUME_RATE / 100);
    if (n > 0) call.write(encodeAcks(toAck.splice(0, n)));
  }, 10);
  call.on("error", () => {});
  call.write(encodeSubscribe(topic, "drain", { maxMessages: WINDOW, from: "earliest" }));
  const start = now();
  const end = start + durationMs;
  while (now() < end) {
    const due = Math.floor((URGENT_RATE * (now() - start)) / 1000) - urgentSent;
    for (let i = 0; i < due; i++) {
      urgentSent++;
      void sendPack(producer, stampedMessage(topic, priority, now()), 10_000).catch(() => {});
    }
    if (progress.due)
      progress.update(
        `${label}: ${latencies.values().length} of ${urgentSent} delivered, bulk ${fmtInt(bulk)}`,
      );
    await sleep(5);
  }
  const seconds = (now() - start) / 1000;
  clearInterval(acker);
  call.end();
  call.cancel();
  consumer.close();
  producer.close();
  const result: PriorityPhaseResult = {
    priority: priority === Priority.URGENT ? "urgent" : "normal",
    backlog: BACKLOG,
    sent: urgentSent,
    delivered: latencies.values().length,
    latencyMs: percentiles(latencies.values()),
    bulkDeliveredPerSec: bulk / seconds,
  };
  progress.done(
    `${label}: ${result.delivered} of ${result.sent} delivered within the run, p50 ${fmtMs(result.latencyMs.p50)} ms, p99 ${fmtMs(result.latencyMs.p99)} ms; bulk ${fmtInt(result.bulkDeliveredPerSec)} msg/s`,
  );
  return result;
}

/**
 * Urgent latency under a bulk backlog (first --shards), same run: a backlog of BACKLOG messages
 * drained by one consumer while URGENT_RATE stamped messages per second arrive; once with
 * priorities (bulk backlog, urgent stamped messages) and once without (all normal, the
 * baseline: the stamped messages wait behind the backlog). `--only priority`; not part of the
 * default run.
 */
export async function priorityPhase(ctx: PhaseContext): Promise<void> {
  const { opt, store } = ctx;
  const durationMs = opt.num("duration") * 1000;
  const out: PriorityPhaseResult[] = [];
  await ctx.phase("priority", 2 * (opt.num("duration") + 20), async () => {
    const b = await ctx.startBroker(await ctx.freshStore("priority"), { shards: opt.nums("shards")[0]! });
    try {
      for (const priority of [Priority.URGENT, Priority.NORMAL]) {
        const name = priority === Priority.URGENT ? "urgent" : "normal";
        out.push(
          await runBacklog(
            b.address,
            `prio-${name}`,
            priority,
            durationMs,
            `[${store}] ${name} under a bulk backlog`,
          ),
        );
      }
    } finally {
      await ctx.stopBroker(b, "priority");
    }
  });
  ctx.results.priority = out;
}
