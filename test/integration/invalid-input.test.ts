import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { ReceiveRequestSchema, StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import type { NerveBus } from "../../src/nervebus.js";
import { openStore } from "../../src/store/index.js";
import { quietLog, startBroker, TestClient, TestStream } from "../support/broker.js";

let bus: NerveBus;
let client: TestClient;
/** The temp dirs of this file's brokers, removed after its tests (they were left behind). */
const dirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
before(async () => {
  const dir = tempDir("nb-invalid-");
  bus = await startBroker(`sqlite:${join(dir, "nb.db")}`, {
    maxMessageBytes: 4096,
    maxPackMessages: 100,
    maxPackBytes: 100_000,
  });
  client = new TestClient(bus.address);
});
after(async () => {
  client.close();
  await bus.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function rejectsWith(p: Promise<unknown>, code: grpc.status, details: RegExp): Promise<void> {
  await assert.rejects(p, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `status ${grpc.status[err.code]}: ${err.details}`);
    assert.match(err.details, details);
    return true;
  });
}

test("SendPack refuses bad topic names, naming the field", async () => {
  await rejectsWith(client.publish("", ["x"]), grpc.status.INVALID_ARGUMENT, /^topic: must not be empty$/);
  await rejectsWith(
    client.publish("a b", ["x"]),
    grpc.status.INVALID_ARGUMENT,
    /^topic: contains " "; allowed are A-Z a-z 0-9 \. _ -$/,
  );
  await rejectsWith(
    client.publish("x".repeat(129), ["x"]),
    grpc.status.INVALID_ARGUMENT,
    /^topic: is 129 characters; the limit is 128$/,
  );
  await rejectsWith(client.publish("../etc", ["x"]), grpc.status.INVALID_ARGUMENT, /topic: contains "\/"/);
  await rejectsWith(
    client.publish("..", ["x"]),
    grpc.status.INVALID_ARGUMENT,
    /^topic: "\.\." is not a usable name$/,
  );
});

test("SendPack refuses empty packs and packs or messages over the limits", async () => {
  await rejectsWith(
    client.publish("t", []),
    grpc.status.INVALID_ARGUMENT,
    /^messages: a pack needs at least one message$/,
  );
  await rejectsWith(
    client.publish("t", [{ data: Buffer.alloc(5000) }]),
    grpc.status.INVALID_ARGUMENT,
    /^messages\[0\]: message is 5000 bytes; the limit is 4096$/,
  );
  await rejectsWith(
    client.publish("t", ["ok", { data: Buffer.alloc(10), attributes: { k: "v".repeat(5000) } }]),
    grpc.status.INVALID_ARGUMENT,
    /^messages\[1\]: message is 5011 bytes; the limit is 4096$/,
  );
  await rejectsWith(
    client.publish(
      "t",
      Array.from({ length: 101 }, () => "m"),
    ),
    grpc.status.INVALID_ARGUMENT,
    /^messages: pack has 101 messages; the limit is 100$/,
  );
  await rejectsWith(
    client.publish(
      "t",
      Array.from({ length: 30 }, () => ({ data: Buffer.alloc(4000) })),
    ),
    grpc.status.INVALID_ARGUMENT,
    /^messages: pack is 120000 bytes; the limit is 100000$/,
  );
  await rejectsWith(
    client.publish("t", [{ data: Buffer.from("x"), orderingKey: "k".repeat(1025) }]),
    grpc.status.INVALID_ARGUMENT,
    /messages\[0\]/,
  );
});

test("SendPack refuses a negative or too long delay, naming the message; deliver_at wins over delay", async () => {
  // A regression: the SendPack reader once took a negative delay for "no delay" and stored the
  // message for delivery now.
  await rejectsWith(
    client.publish("t", ["ok", { data: Buffer.from("x"), delay: durationFromMs(-5) }]),
    grpc.status.INVALID_ARGUMENT,
    /^messages\[1\]\.delay: must be between 0 and 7 days$/,
  );
  await rejectsWith(
    client.publish("t", [{ data: Buffer.from("x"), delay: durationFromMs(8 * 86_400_000) }]),
    grpc.status.INVALID_ARGUMENT,
    /^messages\[0\]\.delay: must be between 0 and 7 days$/,
  );
  // As the proto says, delay is ignored when deliver_at is set (here: now, so no delay at all).
  const res = await client.publish("t", [
    { data: Buffer.from("x"), deliverAt: timestampFromMs(Date.now()), delay: durationFromMs(-5) },
  ]);
  assert.equal(res.results.length, 1);
  assert.ok(res.results[0]!.seq > 0n, "delivered now: it has a seq");
});

test("limits count UTF-8 bytes, not characters", async () => {
  await rejectsWith(
    client.publish("t", [{ data: Buffer.from("x"), orderingKey: "€".repeat(400) }]),
    grpc.status.INVALID_ARGUMENT,
    /^messages\[0\]\.ordering_key: is 1200 bytes; the limit is 1024$/,
  );
  await rejectsWith(
    client.publish("t", [{ data: Buffer.from("x"), messageId: "€".repeat(100) }]),
    grpc.status.INVALID_ARGUMENT,
    /^messages\[0\]\.message_id: is 300 bytes; the limit is 256$/,
  );
  await rejectsWith(
    client.publish("t", [{ data: Buffer.alloc(10), attributes: { k: "€".repeat(1400) } }]),
    grpc.status.INVALID_ARGUMENT,
    /^messages\[0\]: message is 4211 bytes; the limit is 4096$/,
  );
  // A regression: consumer_name counted UTF-16 units, so 65 "é" (130 bytes) passed.
  const s = new TestStream(client.subscriber.receive());
  s.send({
    subscribe: { topic: "t", subscription: "s", window: { maxMessages: 1 }, consumerName: "é".repeat(65) },
  });
  await s.until(() => s.ended, 5000, "stream end");
  assert.equal(s.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(s.error?.details ?? "", /^subscribe\.consumer_name: is 130 bytes; the limit is 128$/);
});

test("a refused pack harms nothing: nothing of it is stored and the topic goes on", async () => {
  const ok1 = await client.publish("intact", ["a"]);
  await assert.rejects(client.publish("intact", ["b", { data: Buffer.alloc(5000) }]));
  const ok2 = await client.publish("intact", ["c"]);
  assert.equal(ok2.firstSeq, ok1.firstSeq + 1n, "the refused pack took no seq");
  const s = client.receive("intact", "r", { from: "earliest" });
  await s.until(() => s.deliveries.length >= 2);
  assert.deepEqual(
    s.deliveries.map((d) => Buffer.from(d.data).toString()),
    ["a", "c"],
  );
  await s.end();
});

test("Receive refuses a missing subscribe, bad names, bad windows, bad deadlines, with the field named", async () => {
  const cases: [Parameters<TestClient["receive"]>, grpc.status, RegExp][] = [
    [["", "s"], grpc.status.INVALID_ARGUMENT, /^subscribe\.topic: must not be empty$/],
    [["t", "bad/name"], grpc.status.INVALID_ARGUMENT, /^subscribe\.subscription: contains "\/"/],
    [
      ["t", "s", { maxMessages: 0 }],
      grpc.status.INVALID_ARGUMENT,
      /^subscribe\.window\.max_messages: must be 1–100000, got 0$/,
    ],
    [
      ["t", "s", { maxMessages: 10, maxBytes: 100 }],
      grpc.status.INVALID_ARGUMENT,
      /^subscribe\.window\.max_bytes: must be 0 \(no limit\) or at least the max message size 4096, got 100$/,
    ],
    [
      ["t", "s", { ackDeadlineMs: 500 }],
      grpc.status.INVALID_ARGUMENT,
      /^subscribe\.ack_deadline: must be 1 s – 10 min, got 500 ms$/,
    ],
  ];
  for (const [args, code, details] of cases) {
    const s = client.receive(...args);
    await s.until(() => s.ended, 5000, "stream end");
    assert.equal(s.error?.code, code, `${JSON.stringify(args)}: ${s.error?.details}`);
    assert.match(s.error?.details ?? "", details);
  }
  const call = client.subscriber.receive();
  const ended = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
  call.write({
    $typeName: "nervebus.v1.ReceiveRequest",
    ackSeqs: [1n],
    nacks: [],
    extendDeadlines: [],
    terminateSeqs: [],
  });
  const err = await ended;
  assert.equal(err.code, grpc.status.FAILED_PRECONDITION);
  assert.match(err.details, /^subscribe: the first request of a Receive stream must carry subscribe$/);
});

test("a second subscribe on the same stream is refused", async () => {
  await client.publish("twice", ["x"]);
  const s = client.receive("twice", "s");
  await s.until(() => s.responses.some((r) => r.subscribed));
  s.send({ subscribe: { topic: "twice", subscription: "s", window: { maxMessages: 1 } } });
  await s.until(() => s.ended);
  assert.equal(s.error?.code, grpc.status.FAILED_PRECONDITION);
  assert.match(s.error?.details ?? "", /only the first request of a stream may carry subscribe/);
});

test("bytes that are not protobuf get INVALID_ARGUMENT with the reason, on SendPack and on Receive", async () => {
  const raw = new grpc.Client(bus.address, grpc.credentials.createInsecure());
  const identity = (b: Buffer) => b;
  try {
    // Field 2 (messages) says 100 bytes follow; only 3 do.
    const truncated = Buffer.from([0x12, 100, 1, 2, 3]);
    await rejectsWith(
      new Promise((resolve, reject) =>
        raw.makeUnaryRequest(
          "/nervebus.v1.PublisherService/SendPack",
          identity,
          identity,
          truncated,
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      ),
      grpc.status.INVALID_ARGUMENT,
      /^request: is not a valid SendPackRequest \(length-delimited field runs past its message\)$/,
    );
    const call = raw.makeBidiStreamRequest("/nervebus.v1.SubscriberService/Receive", identity, identity);
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    call.on("data", () => {});
    call.write(Buffer.from([0x0a, 0xff])); // field 1 (subscribe) with a truncated length
    const err = await ended;
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT, err.details);
    assert.match(err.details, /^request: is not a valid ReceiveRequest \(.+\)$/);
  } finally {
    raw.close();
  }
  // The broker goes on serving well-formed calls.
  const ok = await client.publish("after-garbage", ["fine"]);
  assert.equal(Number(ok.firstSeq), 1);
});

test("invalid UTF-8 in an attribute value, ordering key, message id or topic gets INVALID_ARGUMENT naming it, never a rewritten U+FFFD", async () => {
  const raw = new grpc.Client(bus.address, grpc.credentials.createInsecure());
  const identity = (b: Buffer) => b;
  const field = (n: number, bytes: Buffer) =>
    Buffer.concat([Buffer.from([(n << 3) | 2, bytes.length]), bytes]);
  const sendPack = (body: Buffer) =>
    new Promise((resolve, reject) =>
      raw.makeUnaryRequest("/nervebus.v1.PublisherService/SendPack", identity, identity, body, (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  const bad = Buffer.from([0x61, 0xc3, 0x28]); // "a" then a broken two-byte sequence
  const topic = field(1, Buffer.from("utf8"));
  const message = (...fields: Buffer[]) => field(2, Buffer.concat([field(1, Buffer.from("x")), ...fields]));
  try {
    // Message field 2 is attributes (map entry: key 1, value 2); 3 ordering_key; 4 message_id.
    const cases: [Buffer, RegExp][] = [
      [
        Buffer.concat([topic, message(field(2, Buffer.concat([field(1, Buffer.from("k")), field(2, bad)])))]),
        /attribute "k"'s value is not valid UTF-8/,
      ],
      [Buffer.concat([topic, message(field(3, bad))]), /ordering_key is not valid UTF-8/],
      [Buffer.concat([topic, message(field(4, bad))]), /message_id is not valid UTF-8/],
      [Buffer.concat([field(1, bad), message()]), /topic is not valid UTF-8/],
    ];
    for (const [body, reason] of cases)
      await rejectsWith(sendPack(body), grpc.status.INVALID_ARGUMENT, reason);
  } finally {
    raw.close();
  }
  const ok = await client.publish("utf8", ["fine"]);
  assert.equal(Number(ok.firstSeq), 1, "nothing of the refused packs was appended");
});

test("a publish quota answers RESOURCE_EXHAUSTED with a retry delay once a client is over it", async () => {
  const dir = tempDir("nb-quota-");
  const quotaBus = await startBroker(`sqlite:${join(dir, "db")}`, { publishQuotaMessages: 50 });
  const c = new TestClient(quotaBus.address);
  try {
    // A pack is never split: 60 messages take the 50 msg/s bucket into debt.
    await c.publish(
      "q",
      Array.from({ length: 60 }, (_, i) => `m${i}`),
    );
    const err = await c.publish("q", ["over"]).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    assert.equal(err?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(
      err?.details ?? "",
      /client 127\.0\.0\.1 is over its publish quota \(50 msg\/s\); retry after \d+ ms/,
    );
    const wait = Number(err?.metadata.get("nervebus-retry-after-ms")[0]);
    assert.ok(wait > 0 && wait <= 1000, `retry after ${wait} ms`);
    await new Promise((r) => setTimeout(r, wait));
    assert.equal(Number((await c.publish("q", ["later"])).firstSeq), 61, "the refused pack was not appended");
  } finally {
    c.close();
    await quotaBus.stop();
  }
});

test("topics and subscriptions over --max-topics and --max-subscriptions-per-topic are refused with RESOURCE_EXHAUSTED; existing ones go on", async () => {
  const dir = tempDir("nb-limits-");
  const limited = await startBroker(`sqlite:${join(dir, "db")}`, {
    maxTopics: 3,
    maxSubscriptionsPerTopic: 2,
  });
  const c = new TestClient(limited.address);
  try {
    for (const t of ["a", "b", "c"]) await c.publish(t, ["x"]);
    await rejectsWith(
      c.publish("d", ["x"]),
      grpc.status.RESOURCE_EXHAUSTED,
      /topic d cannot be created: 3 topics exist, the limit is 3 \(--max-topics\)/,
    );
    await rejectsWith(
      c.adminCall("createTopic", { topic: { name: "e" } }),
      grpc.status.RESOURCE_EXHAUSTED,
      /the limit is 3 \(--max-topics\)/,
    );
    assert.equal(Number((await c.publish("a", ["y"])).firstSeq), 2, "existing topics take publishes");
    await c.adminCall("deleteTopic", { name: "c" });
    await c.publish("d", ["x"]); // room again
    for (const s of ["s1", "s2"]) {
      const stream = c.receive("a", s);
      await stream.until(() => stream.deliveries.length >= 1);
      await stream.end();
    }
    const third = c.receive("a", "s3");
    await third.until(() => third.ended);
    assert.equal(third.error?.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(
      third.error?.details ?? "",
      /subscription s3 cannot be created: topic a has 2 subscriptions, the limit is 2/,
    );
  } finally {
    c.close();
    await limited.stop();
  }
});

test("a call from one connection more than --max-connections gets RESOURCE_EXHAUSTED; health checks are always answered", async () => {
  const dir = tempDir("nb-conns-");
  const limited = await startBroker(`sqlite:${join(dir, "db")}`, { maxConnections: 2 });
  const own = { "grpc.use_local_subchannel_pool": 1 };
  const clients = [0, 1, 2].map(() => new TestClient(limited.address, own));
  try {
    await clients[0]!.publish("t", ["x"]);
    const streams = [clients[0]!, clients[1]!].map((c) => c.subscriber.receive());
    for (const s of streams) s.on("error", () => undefined);
    // Two connections hold a call in progress (their Receive streams).
    for (const [i, s] of streams.entries())
      s.write(
        create(ReceiveRequestSchema, {
          subscribe: { topic: "t", subscription: `s${i}`, window: { maxMessages: 1 } },
        }),
      );
    await new Promise((r) => setTimeout(r, 300));
    await rejectsWith(
      clients[2]!.publish("t", ["y"]),
      grpc.status.RESOURCE_EXHAUSTED,
      /2 connections have calls in progress \(limit 2, --max-connections\)/,
    );
    for (const s of streams) s.cancel();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(
      Number((await clients[2]!.publish("t", ["y"])).firstSeq),
      2,
      "room again once the others are done",
    );
  } finally {
    for (const c of clients) c.close();
    await limited.stop();
  }
});

test("a seq past 2^53 is past the end: a seek goes to the end, GetMessage is NOT_FOUND, never 'must be ≥ 1'", async () => {
  // A regression: such a uint64 arrives rounded to an unsafe integer, which was refused as
  // INVALID_ARGUMENT "seq: must be ≥ 1, got 18446744073709552000", while seq 1000 went to the end.
  await client.publish("far-seq", ["a", "b"]);
  await client.adminCall("createSubscription", { subscription: { topic: "far-seq", name: "s" } });
  for (const seq of [1000n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
    const res = await client.adminCall("seekSubscription", {
      topic: "far-seq",
      name: "s",
      target: { case: "seq", value: seq },
    });
    assert.equal(res.floor, 2n, `seek to ${seq}`);
    // Named as sent, or as past 2^53: never as the rounded 18446744073709552000.
    await rejectsWith(
      client.adminCall("getMessage", { topic: "far-seq", seq }),
      grpc.status.NOT_FOUND,
      seq === 1000n
        ? /^seq 1000 of topic far-seq was never published \(last seq 2\)$/
        : /^seq past 2\^53 of topic far-seq was never published \(last seq 2\)$/,
    );
  }
  // An ack (the fast path's seqs) and a termination of 2^64 - 1 on a Receive stream.
  for (const req of [{ ackSeqs: [2n ** 64n - 1n] }, { terminateSeqs: [2n ** 64n - 1n] }]) {
    const s = client.receive("far-seq", "acks");
    await s.until(() => s.responses.some((r) => r.subscribed !== undefined), 5000, "subscribed");
    s.send(req);
    await s.until(() => s.ended, 5000, "stream end");
    assert.equal(s.error?.code, grpc.status.INVALID_ARGUMENT, s.error?.details);
    assert.match(
      s.error?.details ?? "",
      /seq past 2\^53 was never published on topic far-seq \(last seq 2\)$/,
    );
  }
  await rejectsWith(
    client.adminCall("seekSubscription", { topic: "far-seq", name: "s", target: { case: "seq", value: 0n } }),
    grpc.status.INVALID_ARGUMENT,
    /^seq: must be ≥ 1, got 0$/,
  );
});

test("a window of 2^63 or 2^64 - 1 bytes is no byte bound in practice, on subscribe and on a window change", async () => {
  // A regression: over 2^53 bytes ended the stream with INVALID_ARGUMENT "max_bytes: is too
  // large", though the proto sets no maximum and clients pass 2^63 - 1 for "no limit".
  await client.publish("wide", ["a", "b", "c"]);
  const s = new TestStream(client.subscriber.receive());
  s.send({
    subscribe: {
      topic: "wide",
      subscription: "s",
      window: { maxMessages: 2, maxBytes: 2n ** 64n - 1n },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    },
  });
  await s.until(() => s.deliveries.length === 2 || s.ended, 5000, "two deliveries");
  assert.equal(s.error, undefined);
  s.send({ window: { maxMessages: 3, maxBytes: 2n ** 63n } });
  await s.until(() => s.deliveries.length === 3 || s.ended, 5000, "the third delivery");
  assert.equal(s.error, undefined);
  assert.deepEqual(
    s.deliveries.map((d) => Buffer.from(d.data).toString()),
    ["a", "b", "c"],
  );
  await s.end();
  assert.equal(s.error, undefined);
});

test("a topic's retention and retention_bytes are bounded where set; one stored out of range still lists", async () => {
  // A regression: retention 2^63 - 1 s and retention_bytes 2^64 - 1 were stored, their answer
  // failed INTERNAL, and so did every ListTopics and GetTopic after, across restarts.
  const refused = [
    [
      { retentionBytes: 2n ** 64n - 1n },
      /^topic\.retention_bytes: must be at most 9007199254740991 \(2\^53 - 1\)/,
    ],
    [{ retentionBytes: 2n ** 53n + 1n }, /^topic\.retention_bytes: must be at most 9007199254740991/],
    [{ retention: { seconds: 2n ** 63n - 1n, nanos: 0 } }, /^topic\.retention: must be at most 3650 days/],
  ] as const;
  for (const [fields, details] of refused) {
    await rejectsWith(
      client.adminCall("createTopic", { topic: { name: "bounded", ...fields } }),
      grpc.status.INVALID_ARGUMENT,
      details,
    );
  }
  await client.adminCall("createTopic", { topic: { name: "bounded" } });
  await rejectsWith(
    client.adminCall("updateTopic", {
      topic: { name: "bounded", retentionBytes: 2n ** 64n - 1n },
      updateMask: { paths: ["retention_bytes"] },
    }),
    grpc.status.INVALID_ARGUMENT,
    /^topic\.retention_bytes: must be at most/,
  );
  const most = await client.adminCall("updateTopic", {
    topic: { name: "bounded", retentionBytes: BigInt(Number.MAX_SAFE_INTEGER) },
    updateMask: { paths: ["retention_bytes"] },
  });
  assert.equal(most.topic?.retentionBytes, BigInt(Number.MAX_SAFE_INTEGER));
  assert.ok((await client.adminCall("listTopics", {})).topics.some((t) => t.name === "bounded"));

  // A database where an earlier version stored such values: its topics still list.
  const dir = tempDir("nb-unbounded-");
  const url = `sqlite:${join(dir, "nb.db")}`;
  const store = await openStore(url, { mysqlPoolSize: 1, mysqlAllowUnsafeDurability: false, log: quietLog });
  await store.ensureTopic("unbounded", {
    shards: 1,
    config: { retentionMs: 2 ** 63 * 1000, retentionBytes: 2 ** 64, dedupWindowMs: 0, ephemeral: false },
  });
  await store.close();
  const old = await startBroker(url);
  const oldClient = new TestClient(old.address);
  try {
    const [topic] = (await oldClient.adminCall("listTopics", {})).topics;
    assert.equal(topic?.name, "unbounded");
    assert.equal(topic?.retentionBytes, 2n ** 64n - 1n);
    assert.equal(topic?.retention?.seconds, 315_576_000_000n);
  } finally {
    oldClient.close();
    await old.stop();
  }
});

test("a google.protobuf.Duration whose nanos is outside ±999,999,999 is INVALID_ARGUMENT naming its nanos", async () => {
  // A regression: nanos was read as that many more ms, so 10 s + 2e9 ns was a 12 s deadline.
  await rejectsWith(
    client.adminCall("createSubscription", {
      subscription: { topic: "nanos", name: "s", ackDeadline: { seconds: 10n, nanos: 2_000_000_000 } },
    }),
    grpc.status.INVALID_ARGUMENT,
    /^subscription\.ack_deadline\.nanos: must be -999999999 to 999999999, got 2000000000$/,
  );
  await rejectsWith(
    client.adminCall("createTopic", {
      topic: { name: "nanos", dedupWindow: { seconds: 60n, nanos: -1_000_000_000 } },
    }),
    grpc.status.INVALID_ARGUMENT,
    /^topic\.dedup_window\.nanos: must be -999999999 to 999999999, got -1000000000$/,
  );
  await rejectsWith(
    client.publish("nanos", [{ data: Buffer.from("a"), delay: { seconds: 0n, nanos: 2_000_000_000 } }]),
    grpc.status.INVALID_ARGUMENT,
    /\(messages\[0\]\.delay\.nanos: must be -999999999 to 999999999, got 2000000000\)$/,
  );
  await client.publish("nanos", ["a"]);
  const s = client.receive("nanos", "s");
  await s.until(() => s.deliveries.length === 1, 5000, "the message");
  s.send({ nacks: [{ seq: s.deliveries[0]!.seq, delay: { seconds: 0n, nanos: 1_000_000_000 } }] });
  await s.until(() => s.ended, 5000, "stream end");
  assert.equal(s.error?.code, grpc.status.INVALID_ARGUMENT, s.error?.details);
  assert.match(
    s.error?.details ?? "",
    /^nacks\[0\]\.delay\.nanos: must be -999999999 to 999999999, got 1000000000$/,
  );
});

/**
 * Timestamps that are not one (timestamp.proto: nanos 0 to 999,999,999, seconds from
 * 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z) and the INVALID_ARGUMENT details each gets as
 * `field`, naming its nanos or seconds.
 */
function badTimestamps(field: string): { ts: { seconds: bigint; nanos: number }; details: string }[] {
  const seconds = "must be -62135596800 to 253402300799 (0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z)";
  return [
    { ts: { seconds: 0n, nanos: -1 }, details: `${field}.nanos: must be 0 to 999999999, got -1` },
    {
      ts: { seconds: 0n, nanos: 1_000_000_000 },
      details: `${field}.nanos: must be 0 to 999999999, got 1000000000`,
    },
    {
      ts: { seconds: -62_135_596_801n, nanos: 0 },
      details: `${field}.seconds: ${seconds}, got -62135596801`,
    },
    {
      ts: { seconds: 253_402_300_800n, nanos: 0 },
      details: `${field}.seconds: ${seconds}, got 253402300800`,
    },
  ];
}

/** `details` as a pattern of the whole message (or, `inside`, of its parenthesized end). */
function exactly(details: string, inside = false): RegExp {
  const text = details.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return inside ? new RegExp(`\\(${text}\\)$`) : new RegExp(`^${text}$`);
}

// A regression: each was read as ms as it came (nanos of -1 a ms early, 1e9 a second late),
// and seconds outside the range went on as times no Timestamp holds.
test("SeekSubscription: a time outside google.protobuf.Timestamp's range is INVALID_ARGUMENT naming time.nanos or time.seconds", async () => {
  await client.publish("ts-seek", ["a"]);
  await client.adminCall("createSubscription", { subscription: { topic: "ts-seek", name: "s" } });
  for (const { ts, details } of badTimestamps("time")) {
    await rejectsWith(
      client.adminCall("seekSubscription", {
        topic: "ts-seek",
        name: "s",
        target: { case: "time", value: ts },
      }),
      grpc.status.INVALID_ARGUMENT,
      exactly(details),
    );
  }
  const edge = { seconds: 253_402_300_799n, nanos: 999_999_999 };
  const res = await client.adminCall("seekSubscription", {
    topic: "ts-seek",
    name: "s",
    target: { case: "time", value: edge },
  });
  assert.equal(res.floor, 1n, "the latest Timestamp is after every message");
});

test("CreateSubscription: a start_time outside google.protobuf.Timestamp's range is INVALID_ARGUMENT naming start_time.nanos or .seconds", async () => {
  await client.publish("ts-create", ["a"]);
  for (const { ts, details } of badTimestamps("start_time")) {
    await rejectsWith(
      client.adminCall("createSubscription", {
        subscription: { topic: "ts-create", name: "s" },
        start: { case: "startTime", value: ts },
      }),
      grpc.status.INVALID_ARGUMENT,
      exactly(details),
    );
  }
});

test("Receive: a subscribe.start_time outside google.protobuf.Timestamp's range is INVALID_ARGUMENT naming subscribe.start_time.nanos or .seconds", async () => {
  for (const { ts, details } of badTimestamps("subscribe.start_time")) {
    const s = new TestStream(client.subscriber.receive());
    s.send({
      subscribe: {
        topic: "ts-receive",
        subscription: "s",
        window: { maxMessages: 10 },
        start: { case: "startTime", value: ts },
      },
    });
    await s.until(() => s.ended, 5000, "stream end");
    assert.equal(s.error?.code, grpc.status.INVALID_ARGUMENT, s.error?.details);
    assert.match(s.error?.details ?? "", exactly(details));
  }
});

for (const [field, key] of [
  ["from_time", "fromTime"],
  ["to_time", "toTime"],
] as const) {
  test(`ListMessages: a ${field} outside google.protobuf.Timestamp's range is INVALID_ARGUMENT naming ${field}.nanos or .seconds`, async () => {
    await client.publish("ts-browse", ["a"]);
    for (const { ts, details } of badTimestamps(field)) {
      await rejectsWith(
        client.adminCall("listMessages", { topic: "ts-browse", [key]: ts }),
        grpc.status.INVALID_ARGUMENT,
        exactly(details),
      );
    }
  });
}

test("SendPack: a deliver_at outside google.protobuf.Timestamp's range is INVALID_ARGUMENT naming messages[i].deliver_at.nanos or .seconds", async () => {
  for (const { ts, details } of badTimestamps("messages[1].deliver_at")) {
    await rejectsWith(
      client.publish("ts-send", ["ok", { data: Buffer.from("x"), deliverAt: ts }]),
      grpc.status.INVALID_ARGUMENT,
      exactly(details, true),
    );
  }
});

test("GET /api/topics/T/messages: a since or until outside google.protobuf.Timestamp's range is 400 naming it", async () => {
  await client.publish("ts-http", ["a"]);
  const range = "must be between 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z";
  const cases: [string, string][] = [
    ["since=0000-12-31T23:59:59Z", `since: ${range}, got "0000-12-31T23:59:59Z"`],
    ["until=%2B010000-01-01T00:00:00Z", `until: ${range}, got "+010000-01-01T00:00:00Z"`],
    ["until=253402300800000", `until: ${range}, got "253402300800000"`],
  ];
  for (const [query, error] of cases) {
    const res = await fetch(`http://${bus.httpAddress}/api/topics/ts-http/messages?${query}`);
    const body = (await res.json()) as { error?: string };
    assert.equal(res.status, 400, `${query}: ${JSON.stringify(body)}`);
    assert.equal(body.error, error, query);
  }
  const ok = await fetch(`http://${bus.httpAddress}/api/topics/ts-http/messages?until=253402300799999`);
  assert.equal(ok.status, 200, "the latest time there is");
});
