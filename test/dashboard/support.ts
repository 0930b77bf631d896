import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { type TestClient, TestStream } from "../support/broker.js";

/** GET /api/status as the status page sees it. */
export interface ApiStatus {
  broker: {
    address: string;
    store: string;
    startedAt: number;
    now: number;
    healthy: boolean;
    openStreams: number;
    bufferedBytes: number;
  };
  topics: {
    name: string;
    lastSeq: number;
    firstSeq: number;
    publishRate: number;
    scheduled: number;
    dropped: number;
    subscriptions: {
      name: string;
      backlog: number;
      inFlight: number;
      waitingRedelivery: number;
      redelivered: number;
      deadLettered: number;
      deliveryRate: number;
      ackRate: number;
      paused: boolean;
      consumers: { name: string; inFlight: number; maxMessages: number; maxBytes: number }[];
    }[];
  }[];
}

export async function fetchStatus(httpAddress: string): Promise<ApiStatus> {
  const res = await fetch(`http://${httpAddress}/api/status`);
  if (!res.ok) throw new Error(`/api/status answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as ApiStatus;
}

export function findSub(status: ApiStatus, topic: string, sub: string) {
  return status.topics.find((t) => t.name === topic)?.subscriptions.find((s) => s.name === sub);
}

/** Polls `probe` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Creates a topic with the given shard count and retention (ms; 0 keeps messages forever). */
export async function createTopic(
  client: TestClient,
  name: string,
  opts: { shards?: number; retentionMs?: number; ephemeral?: boolean } = {},
): Promise<void> {
  const retentionMs = opts.retentionMs ?? 7 * 24 * 3_600_000;
  await client.adminCall("createTopic", {
    topic: {
      name,
      shards: opts.shards ?? 2,
      retention: create(DurationSchema, { seconds: BigInt(Math.floor(retentionMs / 1000)) }),
      ephemeral: opts.ephemeral ?? false,
    },
  });
}

/** Creates a subscription that starts at the topic's earliest message. */
export async function createSubscription(
  client: TestClient,
  topic: string,
  name: string,
  opts: { maxDeliveryAttempts?: number } = {},
): Promise<void> {
  await client.adminCall("createSubscription", {
    subscription: { topic, name, maxDeliveryAttempts: opts.maxDeliveryAttempts ?? 0 },
    start: { case: "startPoint", value: StartPoint.EARLIEST },
  });
}

/** Opens a Receive stream under a chosen consumer name (the page shows it). */
export function consume(
  client: TestClient,
  topic: string,
  subscription: string,
  consumerName: string,
  maxMessages: number,
  maxBytes = 0,
): TestStream {
  const stream = new TestStream(client.subscriber.receive());
  stream.send({
    subscribe: {
      topic,
      subscription,
      consumerName,
      window: { maxMessages, maxBytes: BigInt(maxBytes) },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    },
  });
  return stream;
}

/**
 * Settles what a stream received since the last call: acks by default; `nack` and `terminate`
 * pick seqs to nack (redeliver after `nackDelayMs`) or dead-letter instead. Returns how many it
 * settled.
 */
export function settle(
  stream: TestStream,
  done: { count: number },
  opts: { nack?: (seq: number) => boolean; terminate?: (seq: number) => boolean; nackDelayMs?: number } = {},
): number {
  const fresh = stream.deliveries.slice(done.count);
  done.count = stream.deliveries.length;
  const acks: bigint[] = [];
  const nacks: { seq: bigint; delay: ReturnType<typeof create<typeof DurationSchema>> }[] = [];
  const terminate: bigint[] = [];
  for (const d of fresh) {
    const seq = Number(d.seq);
    if (d.attempt <= 1 && opts.terminate?.(seq)) terminate.push(d.seq);
    else if (d.attempt <= 1 && opts.nack?.(seq))
      nacks.push({
        seq: d.seq,
        delay: create(DurationSchema, {
          seconds: BigInt(Math.floor((opts.nackDelayMs ?? 0) / 1000)),
          nanos: ((opts.nackDelayMs ?? 0) % 1000) * 1e6,
        }),
      });
    else acks.push(d.seq);
  }
  if (acks.length > 0 || nacks.length > 0 || terminate.length > 0)
    stream.send({ ackSeqs: acks, nacks, terminateSeqs: terminate });
  return fresh.length;
}
