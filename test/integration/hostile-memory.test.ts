import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { dockerfileRuntime } from "../../bench/lib/dockerfile-runtime.js";
import { MessageDelivery_State } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { LEASE_ENTRY_BYTES } from "../../src/core/lease-share.js";
import { seqsOf, TestClient } from "../support/broker.js";
import { freePort } from "../support/mariadb.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

/**
 * Clients that try to make the broker hold memory, against a broker process with a small
 * memory budget: each attack must get clean statuses, leave the broker alive with a canary of
 * confirmed messages intact, keep its peak RSS below the budget plus a fixed margin for the
 * Node runtime, and give the memory back once the attacking client has gone.
 */
const MiB = 1 << 20;
const PACK = 4 * MiB;
/** The budget every part derives its share from (requests 16 MiB, tail caches 12 MiB, leases 8 MiB, …). */
const BUDGET_MB = 64;
const CONFIG = [
  "--memory-budget",
  `${BUDGET_MB}MiB`,
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
];
/**
 * What the broker may use beyond the budget whatever a client does: the runtime (~150 MB),
 * requests received and decoded (each held about twice over while grpc-js frames and the
 * decoded messages coexist) and garbage not collected yet.
 */
const RUNTIME_MB = 250;
const BOUND_MB = BUDGET_MB + RUNTIME_MB;
/** What one attack may grow RSS by beyond the budget: decoded copies and garbage not collected yet. */
const ATTACK_MARGIN_MB = 150;
/**
 * What the heap and Buffers may hold, after a full GC, beyond what they held before an attack
 * and beyond the tail caches (which keep recent messages by design): the attack's memory is
 * returned once its client has gone.
 */
const RETURN_MARGIN_MB = 24;

let broker: BrokerProcess;
/** Where the broker writes the heap snapshots that force its full GCs. */
let gcDir: string;
/** The broker's store. */
let dir: string;
let httpPort: number;
let client: TestClient;
const canary = new Map<number, string>();

const rssMb = (field: "VmRSS" | "VmHWM") => {
  const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${broker.child.pid}/status`, "utf8"));
  return Number(m![1]) / 1024;
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "nb-hostile-mem-"));
  httpPort = await freePort();
  // The container's runtime settings (the Dockerfile's ENV: a capped heap, two malloc arenas,
  // large blocks from mmap), so garbage is collected and returned as a production broker's is.
  // A heap snapshot starts with a full GC: SIGUSR2 is how the test makes the broker collect
  // its garbage from outside, without a debugging endpoint in the broker.
  gcDir = mkdtempSync(join(tmpdir(), "nb-hostile-gc-"));
  const runtime = dockerfileRuntime();
  assert.ok(runtime.nodeOptions.length > 0, "the Dockerfile's NODE_OPTIONS were found");
  broker = await spawnBroker(
    ["--store", `sqlite:${join(dir, "db")}`, "--http-listen", `127.0.0.1:${httpPort}`, ...CONFIG],
    {
      ...runtime.env,
      NODE_OPTIONS: [
        ...runtime.nodeOptions,
        "--heapsnapshot-signal=SIGUSR2",
        `--diagnostic-dir=${gcDir}`,
      ].join(" "),
    },
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
/** Heap and Buffers (beyond the tail caches) after a full GC before the current attack. */
let startHeldMb = 0;

interface StatusMemory {
  openStreams: number;
  memory: NodeJS.MemoryUsage;
  memoryBudget: { budgetBytes: number; parts: { part: string; limitBytes: number; usedBytes: number }[] };
}

async function statusMemory(): Promise<StatusMemory> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`http://127.0.0.1:${httpPort}/api/status?limit=1`);
      return ((await res.json()) as { broker: StatusMemory }).broker;
    } catch (err) {
      // A kept-alive connection the server closed meanwhile (its idle timeout passed while a
      // heap snapshot held the event loop) fails once; a broker that is gone fails every time.
      if (attempt < 3 && broker.child.exitCode === null) continue;
      const why = `exit ${broker.child.exitCode ?? broker.child.signalCode}: ${broker.stderr().slice(-1500)}`;
      throw new Error(`the status did not answer (${why})`, { cause: err });
    }
  }
}

const partUsed = (m: StatusMemory, part: string) =>
  m.memoryBudget.parts.find((p) => p.part === part)?.usedBytes ?? Number.NaN;

/** A full GC in the broker (a heap snapshot, deleted once written); then its memory figures. */
async function collectGarbage(): Promise<StatusMemory> {
  broker.child.kill("SIGUSR2");
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const files = readdirSync(gcDir).filter((f) => f.endsWith(".heapsnapshot"));
    if (files.length === 0) continue;
    // Written once the status answers again: the snapshot is taken on the event loop.
    const m = await statusMemory();
    for (const f of files) unlinkSync(join(gcDir, f));
    return m;
  }
  throw new Error("the broker wrote no heap snapshot in 60 s");
}

/**
 * Full GCs until heap and Buffers are below `bound` MB (heldMb), at most five a second apart:
 * Buffers are freed by callbacks that run after the collection that found them dead, and a
 * closed connection lets go of its buffers once its socket is gone.
 */
async function collectBelow(bound: number): Promise<StatusMemory> {
  let m = await collectGarbage();
  for (let i = 0; i < 4 && heldMb(m) >= bound; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    m = await collectGarbage();
  }
  return m;
}

/** Heap and Buffers in MB beyond what the tail caches hold. */
const heldMb = (m: StatusMemory) =>
  (m.memory.heapUsed + m.memory.external - partUsed(m, "tail_caches")) / MiB;

// Each attack is measured on its own: writing 5 to clear_refs resets the peak RSS (VmHWM) to
// the current RSS, and the attack may grow RSS by at most what the configuration bounds. The
// one that may hold the most (the unread streams) runs last.
beforeEach(async () => {
  startHeldMb = heldMb(await collectGarbage());
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
  rmSync(gcDir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
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
  const bound = Math.max(BOUND_MB, startRss + BUDGET_MB + ATTACK_MARGIN_MB) + extraMb;
  assert.ok(
    peak < bound,
    `peak RSS ${Math.round(peak)} MB after ${what} (started at ${Math.round(startRss)} MB, bound ${Math.round(bound)} MB)`,
  );
}

/**
 * Once the attacking client has gone: nothing of the budget is held for it (request bytes,
 * stream buffers), and after a full GC the heap and Buffers are back within
 * RETURN_MARGIN_MB of where they were before the attack (plus `keptMb` for what the broker
 * keeps by design, such as topics the client created).
 */
async function assertReturned(what: string, keptMb = 0): Promise<void> {
  // The client's cancellations reach the broker shortly after it closed: wait until its
  // streams are gone before looking (up to 30 s: a loaded CI machine can take seconds).
  for (let i = 0; i < 300 && (await statusMemory()).openStreams > 0; i++)
    await new Promise((r) => setTimeout(r, 100));
  const bound = startHeldMb + RETURN_MARGIN_MB + keptMb;
  const m = await collectBelow(bound);
  assert.equal(partUsed(m, "requests"), 0, `request bytes held after ${what}`);
  assert.equal(partUsed(m, "stream_buffers"), 0, `stream buffers held after ${what}`);
  const held = heldMb(m);
  assert.ok(
    held < bound,
    `heap and Buffers ${Math.round(held)} MB after ${what} and a GC (${Math.round(startHeldMb)} MB before it; heap ${Math.round(m.memory.heapUsed / MiB)} MB, Buffers ${Math.round(m.memory.external / MiB)} MB, ${JSON.stringify(m.memoryBudget.parts.map((p) => [p.part, p.usedBytes]))})`,
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
  await assertReturned("big bodies");
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
  await assertReturned("the extension flood");
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
  // The tail caches' share of the budget: 18.75% of it.
  const share = BUDGET_MB * 0.1875 * MiB;
  assert.ok(
    status.broker.tailCacheBytes <= share,
    `all tail caches hold ${status.broker.tailCacheBytes} bytes (bound ${share})`,
  );
  assert.ok(status.broker.tailCacheBytes > 8 * MiB, "recent topics keep their caches");
  await assertHealthy("400 topics");
  // The topics stay (and stay loaded): each keeps its writers, counters and state, ~75 KB.
  await assertReturned("400 topics", 400 * 0.1);
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
  await assertReturned("the confirmation flood");
});

test("subscribers that nack everything, or take a big window and disconnect: leases stay within their share", async () => {
  // 300,000 small messages: before the leases' bound each attacking subscription below held a
  // pending entry (~283 B) for every one of them, 170 MB for the two.
  const total = 300_000;
  // What the canary checks of the attacks before left unacked.
  const leasesBefore = partUsed(await statusMemory(), "leases");
  for (let sent = 0; sent < total; sent += 10_000)
    await client.publish(
      "lease-flood",
      Array.from({ length: 10_000 }, (_, i) => `m${sent + i}`),
    );
  const good = client.receive("lease-good", "good", { from: "earliest" });
  const goodAcked = new Set<number>();
  const ackGood = () => {
    const fresh = seqsOf(good.deliveries).filter((seq) => !goodAcked.has(seq));
    for (const seq of fresh) goodAcked.add(seq);
    good.ack(fresh);
  };
  /** Until `s` got nothing new for a second (the subscription has no room left, or nothing left). */
  const quiet = async (streams: { deliveries: readonly unknown[] }[], onData = () => undefined) => {
    let last = -1;
    for (let i = 0; i < 600; i++) {
      onData();
      const now = streams.reduce((n, s) => n + s.deliveries.length, 0);
      if (now === last) return;
      last = now;
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  // Nacks every message with a long delay: each becomes an entry waiting for redelivery and
  // leaves room in the window for the next.
  const nacker = client.receive("lease-flood", "nacker", { maxMessages: 100_000 });
  let nacked = 0;
  await quiet([nacker], () => {
    // In requests of 10,000 nacks (~150 KB), well under gRPC's 4 MiB message limit.
    for (; nacked < nacker.deliveries.length; nacked += 10_000)
      nacker.send({
        nacks: nacker.deliveries
          .slice(nacked, nacked + 10_000)
          .map((d) => ({ seq: d.seq, delay: { seconds: 3600n, nanos: 0 } })),
      });
    nacked = nacker.deliveries.length;
  });
  // Three streams of 100,000 messages each, cancelled (every lease becomes an entry of its
  // own, redelivered at once), three times over.
  const leaverSeqs = new Set<number>();
  for (let round = 0; round < 3; round++) {
    const streams = [0, 1, 2].map(() => client.receive("lease-flood", "leaver", { maxMessages: 100_000 }));
    await quiet(streams);
    for (const s of streams) {
      for (const seq of seqsOf(s.deliveries)) leaverSeqs.add(seq);
      s.cancel();
    }
  }
  // A subscription of another topic that acks what it gets still receives.
  await client.publish(
    "lease-good",
    Array.from({ length: 50 }, (_, i) => `good ${i}`),
  );
  await good.until(
    () => {
      ackGood();
      return good.deliveries.length >= 50;
    },
    20_000,
    "the well-behaved subscription's messages",
  );
  // Beyond the entries (at most twice the leases' share), the attack may hold the read-ahead's
  // rows (its share) and what else 300,000 messages cost (timer heaps, lease batches): 27 MB
  // over the start in all when this test runs alone; before the leases' bound, 126 MB.
  const leasesMb = BUDGET_MB * 0.125;
  const bound = startHeldMb + 2 * leasesMb + BUDGET_MB * 0.125 + RETURN_MARGIN_MB;
  const m = await collectBelow(bound);
  const leases = m.memoryBudget.parts.find((p) => p.part === "leases");
  assert.ok(leases !== undefined, "the status shows the leases' part");
  assert.equal(leases.limitBytes, leasesMb * MiB);
  // Over the bound a subscription still takes up to an equal share of it: the total stays
  // within twice the bound.
  assert.ok(
    leases.usedBytes <= 2 * leases.limitBytes,
    `leases hold ${leases.usedBytes} of ${leases.limitBytes} bytes`,
  );
  assert.ok(
    nacked < total && leaverSeqs.size < total,
    `the attackers got ${nacked} and ${leaverSeqs.size} messages`,
  );
  assert.ok(
    heldMb(m) < bound,
    `heap and Buffers ${Math.round(heldMb(m))} MB with the attack's entries held (${Math.round(startHeldMb)} MB before it; heap ${Math.round(m.memory.heapUsed / MiB)} MB, Buffers ${Math.round(m.memory.external / MiB)} MB, ${JSON.stringify(m.memoryBudget.parts.map((p) => [p.part, p.usedBytes]))})`,
  );
  await assertHealthy("the lease flood");
  // The attackers ack everything they were given (on streams of window 1, so that the room the
  // acks make is not taken again): the entries, and their memory, are returned.
  await nacker.end();
  const settlers = [
    { sub: "nacker", seqs: seqsOf(nacker.deliveries) },
    { sub: "leaver", seqs: [...leaverSeqs] },
  ].map(({ sub, seqs }) => {
    const s = client.receive("lease-flood", sub, { maxMessages: 1 });
    s.ack(seqs);
    return s;
  });
  // Left: the canary check's unacked messages, and what the settlers were given.
  const left = leasesBefore + (canary.size + settlers.length) * LEASE_ENTRY_BYTES;
  for (let i = 0; i < 300 && partUsed(await statusMemory(), "leases") > left; i++)
    await new Promise((r) => setTimeout(r, 100));
  for (const s of settlers) await s.end();
  await good.end();
  const after = partUsed(await statusMemory(), "leases");
  assert.ok(after <= left, `the acked entries are let go of (${after} bytes held, ${left} expected)`);
  await assertReturned("the lease flood");
});

test("ordered subscriptions that never ack one key: the messages held back behind it count in the leases' share", async () => {
  // 100,000 messages with one ordering key, on 100 subscriptions with ordering whose streams
  // never ack the key's first message: each subscription holds back the key's later seqs.
  // Before they counted in the budget, each held up to 100,000 of them (~1 MB of heap),
  // ~100 MB for the 100 beyond the 8 MiB of the leases' part.
  const topic = "held-flood";
  const subs = 100;
  const total = 100_000;
  await client.adminCall("createTopic", { topic: { name: topic } });
  for (let i = 0; i < subs; i++)
    await client.adminCall("createSubscription", {
      subscription: { topic, name: `held-${i}`, ordering: true },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
  for (let sent = 0; sent < total; sent += 10_000)
    await client.publish(
      topic,
      Array.from({ length: 10_000 }, (_, i) => ({ data: Buffer.from(`m${sent + i}`), orderingKey: "stuck" })),
    );
  // On a connection of their own: 100 streams fill one connection's concurrent streams.
  const consumer = new TestClient(broker.address, { "grpc.use_local_subchannel_pool": 1 });
  const streams = Array.from({ length: subs }, (_, i) =>
    consumer.receive(topic, `held-${i}`, { maxMessages: 10, ackDeadlineMs: 600_000 }),
  );
  for (const s of streams) await s.until(() => s.deliveries.length >= 1, 20_000, "the key's first message");
  // Until the subscriptions stop moving through the log, holding back what they may: the
  // held deliveries of every 1,000th seq are the same three times in a row.
  const heldSample = async () => {
    let held = 0;
    for (let seq = 1000; seq <= total; seq += 1000) {
      const r = await client.adminCall("getMessage", { topic, seq: BigInt(seq) });
      held += r.message!.deliveries.filter((d) => d.state === MessageDelivery_State.HELD).length;
    }
    return held;
  };
  for (let i = 0, last = -1, same = 0; i < 120 && same < 2; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    const now = await heldSample();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  const leasesMb = BUDGET_MB * 0.125;
  const bound = startHeldMb + 2 * leasesMb + BUDGET_MB * 0.125 + RETURN_MARGIN_MB;
  const m = await collectBelow(bound);
  const leases = m.memoryBudget.parts.find((p) => p.part === "leases")!;
  assert.ok(
    leases.usedBytes <= 2 * leases.limitBytes,
    `leases hold ${leases.usedBytes} of ${leases.limitBytes} bytes`,
  );
  assert.ok(
    heldMb(m) < bound,
    `heap and Buffers ${Math.round(heldMb(m))} MB with 100 subscriptions holding back one key (${Math.round(startHeldMb)} MB before it; heap ${Math.round(m.memory.heapUsed / MiB)} MB, Buffers ${Math.round(m.memory.external / MiB)} MB, ${JSON.stringify(m.memoryBudget.parts.map((p) => [p.part, p.usedBytes]))})`,
  );
  // Nothing is lost: an ack of the key's first message lets its second one go out.
  assert.deepEqual(seqsOf(streams[0]!.deliveries), [1]);
  streams[0]!.ack([1]);
  await streams[0]!.until(() => streams[0]!.deliveries.length >= 2, 20_000, "the key's second message");
  assert.deepEqual(seqsOf(streams[0]!.deliveries), [1, 2]);
  await assertHealthy("the held-back flood");
  for (const s of streams) await s.end();
  consumer.close();
  await client.adminCall("deleteTopic", { name: topic });
  await assertReturned("the held-back flood");
});

test("ordered subscriptions that never ack messages with 1 KiB ordering keys: the keys count in the leases' share", async () => {
  // 60,000 messages with a key of their own, 1 KiB long (the limit), on 4 subscriptions with
  // ordering whose streams take what they may and never ack. Each unacked message keeps its key
  // (a string of ~1 KiB) beside its ~283 B entry: counted at 283 B, the leases' part (8 MiB,
  // twice that at most) let the subscriptions keep ~59,000 of them, ~75 MB of heap.
  const topic = "key-flood";
  const subs = 4;
  const total = 60_000;
  const key = (i: number) => `${i}:`.padEnd(1024, "k");
  await client.adminCall("createTopic", { topic: { name: topic } });
  for (let i = 0; i < subs; i++)
    await client.adminCall("createSubscription", {
      subscription: { topic, name: `keys-${i}`, ordering: true },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
  for (let sent = 0; sent < total; sent += 3000)
    await client.publish(
      topic,
      Array.from({ length: 3000 }, (_, i) => ({ data: Buffer.from("m"), orderingKey: key(sent + i) })),
    );
  // One after another, each until nothing new arrives for a second: the first takes the
  // whole bound, the next ones their equal shares of it, up to twice the bound in all.
  const streams = [];
  for (let i = 0; i < subs; i++) {
    const s = client.receive(topic, `keys-${i}`, { maxMessages: 100_000, ackDeadlineMs: 600_000 });
    streams.push(s);
    for (let t = 0, last = -1; t < 120 && s.deliveries.length !== last; t++) {
      last = s.deliveries.length;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const leasesMb = BUDGET_MB * 0.125;
  const bound = startHeldMb + 2 * leasesMb + BUDGET_MB * 0.125 + RETURN_MARGIN_MB;
  const m = await collectBelow(bound);
  const leases = m.memoryBudget.parts.find((p) => p.part === "leases")!;
  assert.ok(
    leases.usedBytes <= 2 * leases.limitBytes + subs * 2 * 1024,
    `leases hold ${leases.usedBytes} of ${leases.limitBytes} bytes`,
  );
  const delivered = streams.reduce((n, s) => n + s.deliveries.length, 0);
  assert.ok(
    heldMb(m) < bound,
    `heap and Buffers ${Math.round(heldMb(m))} MB with ${delivered} messages with 1 KiB keys unacked (${Math.round(startHeldMb)} MB before it; heap ${Math.round(m.memory.heapUsed / MiB)} MB, Buffers ${Math.round(m.memory.external / MiB)} MB, ${JSON.stringify(m.memoryBudget.parts.map((p) => [p.part, p.usedBytes]))})`,
  );
  await assertHealthy("the ordering-key flood");
  for (const s of streams) await s.end();
  await client.adminCall("deleteTopic", { name: topic });
  await assertReturned("the ordering-key flood");
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
    // The streams together hold at most the stream buffers' share of the budget, and their
    // subscriptions' read-ahead at most its share (before these bounds, ~18 MiB per stream
    // made 2.2 GB).
    const m = await statusMemory();
    // One answer of ≤ 1 MiB may pass the bound (it is counted as it is handed over); each
    // lagging subscription reads at least 64 KiB at a time (see ReadAheadShare).
    const slack = { stream_buffers: MiB, read_ahead: 100 * 128 * 1024 };
    for (const [part, extra] of Object.entries(slack)) {
      const p = m.memoryBudget.parts.find((x) => x.part === part)!;
      assert.ok(p.usedBytes <= p.limitBytes + extra, `${part} holds ${p.usedBytes} of ${p.limitBytes} bytes`);
    }
    // Beyond the budget: a lagging subscription's read-ahead rows are cut from the stored run
    // they came in (format 2), which stays in memory with them: up to one pack (here 1.6 MB)
    // per subscription, which the budget's figure does not count yet.
    await assertHealthy("unread streams", 100 * 1.6);
  } finally {
    for (const c of calls) c.cancel();
    raw.close();
  }
  await assertReturned("unread streams");
  // It acks as it goes: the unread streams' subscriptions keep what they were given (their
  // leases' share), and a subscription that never acked would get only its equal share of it.
  const s = client.receive("unread", "reader", { from: "earliest", maxMessages: 5000 });
  let acked = 0;
  await s.until(() => {
    s.ack(seqsOf(s.deliveries.slice(acked)));
    acked = s.deliveries.length;
    return s.deliveries.length >= 2000;
  }, 30_000);
  assert.equal(new Set(seqsOf(s.deliveries)).size, 2000);
  await s.end();
});
