import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { seqsOf, TestClient } from "../support/broker.js";
import { freePort } from "../support/mariadb.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

/**
 * Clients that try to make the broker hold memory, against a broker process with a small
 * configuration: each attack must get clean statuses, leave the broker alive with a canary of
 * confirmed messages intact, and keep its peak RSS below what the configuration bounds plus a
 * margin for the Node runtime.
 */
const MiB = 1 << 20;
const PACK = 4 * MiB;
const CONFIG = [
  "--max-pack-bytes",
  String(PACK),
  "--max-message-bytes",
  String(MiB),
  "--max-packs-per-connection",
  "8",
  "--max-packs-in-progress",
  "16",
  "--tail-cache-bytes",
  String(8 * MiB),
  "--tail-cache-total-bytes",
  String(32 * MiB),
  "--write-buffer-bytes",
  String(32 * MiB),
];
/**
 * Requests held (16 × 4 MiB, received and decoded: ×3), tail caches, write buffer, and the
 * runtime (~150 MB): what the broker may use whatever a client does.
 */
const RUNTIME_MB = 250;
const BOUND_MB = 16 * 4 * 3 + 32 + 32 + RUNTIME_MB;

let broker: BrokerProcess;
let httpPort: number;
let client: TestClient;
const canary = new Map<number, string>();

const rssMb = (field: "VmRSS" | "VmHWM") => {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${broker.child.pid}/status`, "utf8"));
  return Number(m![1]) / 1024;
};

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-hostile-mem-"));
  httpPort = await freePort();
  // The container's runtime settings (Dockerfile): a capped heap and two malloc arenas, so
  // garbage is collected and returned as a production broker's is.
  broker = await spawnBroker(
    ["--store", `sqlite:${join(dir, "db")}`, "--http-listen", `127.0.0.1:${httpPort}`, ...CONFIG],
    { NODE_OPTIONS: "--max-old-space-size=256", MALLOC_ARENA_MAX: "2" },
  );
  client = new TestClient(broker.address);
  for (let pack = 0; pack < 5; pack++) {
    const payloads = Array.from({ length: 20 }, (_, i) => `canary ${pack}.${i}`);
    const r = await client.publish("canary", payloads);
    for (const [i, p] of payloads.entries()) canary.set(Number(r.firstSeq) + i, p);
  }
});

/** RSS when the current attack started: what the attacks before left (not always returned). */
let startRss = 0;

// Each attack is measured on its own: writing 5 to clear_refs resets the peak RSS (VmHWM) to
// the current RSS, and the attack may grow RSS by at most what the configuration bounds. The
// one that may hold the most (the unread streams) runs last.
beforeEach(() => {
  startRss = rssMb("VmRSS");
  try {
    writeFileSync(`/proc/${broker.child.pid}/clear_refs`, "5");
  } catch {
    // Not allowed here: the peak then covers the attacks before too, which only makes it stricter.
  }
});

after(async () => {
  client.close();
  broker.child.kill("SIGKILL");
});

/**
 * The broker answers, takes a publish, and still holds every canary message at its seq; its
 * peak RSS is below BOUND_MB plus `extraMb` that the attack may legitimately hold.
 */
async function assertHealthy(what: string, extraMb = 0): Promise<void> {
  assert.equal(broker.child.exitCode, null, `the broker is alive after ${what}`);
  const fresh = new TestClient(broker.address);
  try {
    const r = await fresh.publish("after", [what]);
    assert.ok(Number(r.firstSeq) >= 1);
    const s = fresh.receive("canary", `check-${Math.random().toString(36).slice(2)}`, { from: "earliest" });
    await s.until(() => s.deliveries.length >= canary.size, 20_000, "the canary");
    assert.deepEqual(
      new Map(s.deliveries.map((d) => [Number(d.seq), Buffer.from(d.data).toString()])),
      canary,
      `canary after ${what}`,
    );
    await s.end();
  } finally {
    fresh.close();
  }
  const peak = rssMb("VmHWM");
  // Absolute for the first attack; after that, the growth over what the others left.
  const bound = Math.max(BOUND_MB, startRss + BOUND_MB - RUNTIME_MB) + extraMb;
  assert.ok(
    peak < bound,
    `peak RSS ${Math.round(peak)} MB after ${what} (started at ${Math.round(startRss)} MB, bound ${Math.round(bound)} MB)`,
  );
}

function rawClient(): grpc.Client {
  return new grpc.Client(broker.address, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
    "grpc.max_send_message_length": 64 << 20,
  });
}

test("2 connections × 100 streams of pack-sized bodies: refused before their body is read, never held", async () => {
  const body = Buffer.alloc(PACK - 1024, 0x41);
  body[0] = 0x0a; // not a valid SendPackRequest: each admitted call is INVALID_ARGUMENT
  const codes = new Map<number, number>();
  const conns = [rawClient(), rawClient()];
  try {
    await Promise.all(
      conns.flatMap((c) =>
        Array.from(
          { length: 100 },
          () =>
            new Promise<void>((resolve) =>
              c.makeUnaryRequest(
                "/nervebus.v1.PublisherService/SendPack",
                (b: Buffer) => b,
                (b: Buffer) => b,
                body,
                (err) => {
                  const code = err ? err.code : grpc.status.OK;
                  codes.set(code, (codes.get(code) ?? 0) + 1);
                  resolve();
                },
              ),
            ),
        ),
      ),
    );
  } finally {
    for (const c of conns) c.close();
  }
  assert.deepEqual(
    [...codes.keys()].sort(),
    [grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED],
    "admitted calls are refused for their content, the rest for admission",
  );
  assert.ok((codes.get(grpc.status.RESOURCE_EXHAUSTED) ?? 0) >= 100);
  await assertHealthy("big bodies");
});

test("a lease extended a million times in requests: memory stays bounded", async () => {
  const s = client.receive("canary", "extender", { from: "earliest", maxMessages: 1 });
  await s.until(() => s.deliveries.length >= 1);
  const seq = s.deliveries[0]!.seq;
  const seqs = new Array<bigint>(100_000).fill(seq);
  for (let i = 0; i < 10; i++) s.send({ extendDeadlines: [{ seqs, deadline: { seconds: 60n, nanos: 0 } }] });
  s.ack([seq]);
  await s.end();
  await assertHealthy("the extension flood");
});

test("400 topics with full tail caches stay within the total tail-cache bound", async () => {
  const payload = "x".repeat(64 * 1024);
  // 400 × 1 MiB: each topic's own cache (8 MiB) would keep all of its messages.
  for (let t = 0; t < 400; t++)
    await client.publish(
      `many-${t}`,
      Array.from({ length: 16 }, () => payload),
    );
  const status = (await (await fetch(`http://127.0.0.1:${httpPort}/api/status?limit=1`)).json()) as {
    broker: { tailCacheBytes: number };
  };
  assert.ok(
    status.broker.tailCacheBytes <= 32 * MiB,
    `all tail caches hold ${status.broker.tailCacheBytes} bytes (bound ${32 * MiB})`,
  );
  assert.ok(status.broker.tailCacheBytes > 8 * MiB, "recent topics keep their caches");
  // 400 MiB went through the broker: what garbage collection has not returned yet counts too.
  await assertHealthy("400 topics", 150);
});

test("a stream that acks with confirmations and never reads them: memory stays bounded", async () => {
  await client.publish("confirm-flood", ["a"]);
  const raw = rawClient();
  const call = raw.makeBidiStreamRequest(
    "/nervebus.v1.SubscriberService/Receive",
    (b: Buffer) => b,
    (b: Buffer) => b,
  );
  call.on("error", () => undefined);
  call.pause(); // never reads: every confirmation stays with the broker unless it stops reading
  const { create, toBinary } = await import("@bufbuild/protobuf");
  const { ReceiveRequestSchema } = await import("../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js");
  const frame = (req: Parameters<typeof create<typeof ReceiveRequestSchema>>[1]) =>
    Buffer.from(toBinary(ReceiveRequestSchema, create(ReceiveRequestSchema, req)));
  call.write(
    frame({
      subscribe: {
        topic: "confirm-flood",
        subscription: "s",
        window: { maxMessages: 10, maxBytes: 0n },
        start: { case: "startPoint", value: 1 },
        confirmAcks: true,
      },
    }),
  );
  // 2,000 requests acking seq 1 20,000 times each: ~400 MB of confirmations if all were read.
  const ack = frame({ ackSeqs: new Array<bigint>(20_000).fill(1n) });
  let written = 0;
  const until = Date.now() + 8000;
  while (written < 2000 && Date.now() < until) {
    written++;
    if (!call.write(ack)) {
      const drained = await Promise.race([
        new Promise<boolean>((r) => call.once("drain", () => r(true))),
        new Promise<boolean>((r) => setTimeout(() => r(false), 2000)),
      ]);
      if (!drained) break;
    }
  }
  call.cancel();
  raw.close();
  assert.ok(written > 0);
  await assertHealthy("the confirmation flood");
});

test("100 streams with big windows that never read: each stream's send buffer is bounded", async () => {
  const payload = "y".repeat(16 * 1024);
  for (let i = 0; i < 20; i++)
    await client.publish(
      "unread",
      Array.from({ length: 100 }, () => payload),
    );
  const raw = rawClient();
  const calls: grpc.ClientDuplexStream<Buffer, Buffer>[] = [];
  try {
    for (let i = 0; i < 100; i++) {
      const call = raw.makeBidiStreamRequest(
        "/nervebus.v1.SubscriberService/Receive",
        (b: Buffer) => b,
        (b: Buffer) => b,
      );
      call.on("error", () => undefined);
      call.pause(); // never reads
      const { create, toBinary } = await import("@bufbuild/protobuf");
      const { ReceiveRequestSchema } = await import("../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js");
      call.write(
        Buffer.from(
          toBinary(
            ReceiveRequestSchema,
            create(ReceiveRequestSchema, {
              subscribe: {
                topic: "unread",
                subscription: `s${i}`,
                window: { maxMessages: 100_000, maxBytes: 0n },
                start: { case: "startPoint", value: 1 },
              },
            }),
          ),
        ),
      );
      calls.push(call);
    }
    await new Promise((r) => setTimeout(r, 3000));
    // Per stream: 1 MiB of deliveries waiting for the transport, one response of ≤ 1 MiB being
    // written, what HTTP/2 holds for the stream, the run bodies its subscription's read-ahead
    // keeps, and garbage not collected yet: ~8 MB (before this bound, ~18 MiB per stream made
    // 2.2 GB).
    await assertHealthy("unread streams", 100 * 8);
  } finally {
    for (const c of calls) c.cancel();
    raw.close();
  }
  const s = client.receive("unread", "reader", { from: "earliest", maxMessages: 5000 });
  await s.until(() => s.deliveries.length >= 2000, 30_000);
  assert.equal(new Set(seqsOf(s.deliveries)).size, 2000);
  await s.end();
});
