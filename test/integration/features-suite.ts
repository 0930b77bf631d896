import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { MessageResult_Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import type { Config } from "../../src/config/index.js";
import {
  type BrokerContext,
  type FreshStore,
  seqsOf,
  type TestStream,
  withBroker,
} from "../support/broker.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = (d: { data: Uint8Array }) => Buffer.from(d.data).toString();
const sec = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 });

/** Subscriptions, leases, dead letters, schedule, ordering, dedup, retention, admin: per store. */
export function featuresSuite(kind: string, fresh: FreshStore): void {
  const it = (name: string, fn: (ctx: BrokerContext) => Promise<void>, overrides: Partial<Config> = {}) =>
    test(`${kind}: ${name}`, () => withBroker(fresh, `${kind}_${name}`.slice(0, 60), overrides, fn));

  it("names differing only in letter case are different topics and subscriptions, in memory and in the store, across a restart", async (ctx) => {
    const a1 = await ctx.client.publish("orders", ["a1"]);
    const b1 = await ctx.client.publish("ORDERS", ["B1"]);
    const a2 = await ctx.client.publish("orders", ["a2"]);
    assert.deepEqual([a1.firstSeq, b1.firstSeq, a2.firstSeq], [1n, 1n, 2n], "each topic has its own seqs");
    const create = (name: string) =>
      ctx.client.adminCall("createSubscription", {
        subscription: { topic: "orders", name },
        start: { case: "startPoint", value: StartPoint.EARLIEST },
      });
    await create("billing");
    await create("BILLING"); // not ALREADY_EXISTS: BILLING is not billing
    await assert.rejects(
      create("billing"),
      (err: grpc.ServiceError) => err.code === grpc.status.ALREADY_EXISTS,
    );
    await ctx.restart();
    for (const [topic, want] of [
      ["orders", ["a1", "a2"]],
      ["ORDERS", ["B1"]],
    ] as const) {
      const s = ctx.client.receive(topic, "check");
      await s.until(() => s.deliveries.length >= want.length);
      await sleep(200);
      assert.deepEqual(s.deliveries.map(text), want, `topic ${topic} kept its own messages`);
      await s.end();
    }
    for (const sub of ["billing", "BILLING"]) {
      const s = ctx.client.receive("orders", sub);
      await s.until(() => s.deliveries.length >= 2);
      assert.deepEqual(s.deliveries.map(text), ["a1", "a2"], `subscription ${sub} receives`);
      await s.end();
    }
    const topics = await ctx.client.adminCall("listTopics", {});
    assert.deepEqual(
      topics.topics
        .map((t) => t.name)
        .filter((n) => n.toLowerCase() === "orders")
        .sort(),
      ["ORDERS", "orders"],
    );
  });

  it("two consumers with windows 1 and 100 share a subscription: no message to both, no window overrun", async ({
    client,
  }) => {
    const total = 600;
    for (let i = 0; i < total; i += 200) {
      await client.publish(
        "share",
        Array.from({ length: 200 }, (_, j) => `m${i + j}`),
      );
    }
    const small = client.receive("share", "s", { maxMessages: 1, from: "earliest" });
    const big = client.receive("share", "s", { maxMessages: 100, from: "earliest" });
    const outstanding = new Map<TestStream, Set<number>>([
      [small, new Set()],
      [big, new Set()],
    ]);
    const seen = new Map<TestStream, number>([
      [small, 0],
      [big, 0],
    ]);
    let maxSmall = 0;
    let maxBig = 0;
    await small.until(() => {
      for (const [s, held] of outstanding) {
        for (const d of s.deliveries.slice(seen.get(s)!)) held.add(Number(d.seq));
        seen.set(s, s.deliveries.length);
        maxSmall = Math.max(maxSmall, outstanding.get(small)!.size);
        maxBig = Math.max(maxBig, outstanding.get(big)!.size);
        // Ack half of what is held each round, so windows stay under pressure.
        const acks = [...held].slice(0, Math.ceil(held.size / 2));
        for (const a of acks) held.delete(a);
        s.ack(acks);
      }
      return small.deliveries.length + big.deliveries.length >= total;
    }, 60_000);
    assert.ok(maxSmall <= 1, `window 1 held ${maxSmall}`);
    assert.ok(maxBig <= 100, `window 100 held ${maxBig}`);
    const all = [...seqsOf(small.deliveries), ...seqsOf(big.deliveries)];
    assert.equal(new Set(all).size, total, "no message went to both");
    assert.ok(small.deliveries.length > 0 && big.deliveries.length > small.deliveries.length);
    await Promise.all([small.end(), big.end()]);
  });

  it("an unacked message comes back after its deadline, with exponential backoff between attempts", async ({
    client,
  }) => {
    await client.adminCall("createTopic", { topic: { name: "lease" } });
    await client.adminCall("createSubscription", {
      subscription: {
        topic: "lease",
        name: "s",
        ackDeadline: sec(1000),
        minBackoff: sec(600),
        maxBackoff: sec(5000),
      },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
    await client.publish("lease", ["slow"]);
    const s = client.receive("lease", "s");
    const times: number[] = [];
    await s.until(() => {
      while (times.length < s.deliveries.length) times.push(Date.now());
      return s.deliveries.length >= 3;
    }, 20_000);
    assert.deepEqual(
      s.deliveries.map((d) => d.attempt),
      [1, 2, 3],
    );
    // attempt 1 expires after 1 s, then waits 600 ms; attempt 2 expires after 1 s, then 600–1200 ms.
    assert.ok(times[1]! - times[0]! >= 1500, `second delivery after ${times[1]! - times[0]!} ms`);
    assert.ok(times[2]! - times[1]! >= 1500, `third delivery after ${times[2]! - times[1]!} ms`);
    assert.ok(times[2]! - times[1]! <= 3500, `third delivery after ${times[2]! - times[1]!} ms`);
    // Extending keeps it: no fourth delivery while extended.
    s.send({ extendDeadlines: [{ seqs: [1n], deadline: sec(5000) }] });
    await sleep(1800);
    assert.equal(s.deliveries.length, 3, "an extended lease is not redelivered");
    await s.end();
  });

  it("a poison message is dead-lettered after N attempts while the rest keep flowing", async ({ client }) => {
    await client.adminCall("createTopic", { topic: { name: "work" } });
    await client.adminCall("createSubscription", {
      subscription: {
        topic: "work",
        name: "w",
        maxDeliveryAttempts: 3,
        deadLetterTopic: "work.dlq",
        minBackoff: sec(0),
        maxBackoff: sec(0),
      },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
    await client.publish("work", [
      { data: Buffer.from("poison"), attributes: { kind: "bad" } },
      "ok1",
      "ok2",
      "ok3",
    ]);
    const s = client.receive("work", "w");
    let handled = 0;
    const worker = setInterval(() => {
      for (const d of s.deliveries.slice(handled)) {
        if (text(d) === "poison") s.send({ nacks: [{ seq: d.seq }] });
        else if (text(d) !== "stop-me") s.ack([d.seq]);
      }
      handled = s.deliveries.length;
    }, 20);
    try {
      const dlq = client.receive("work.dlq", "inspect", { from: "earliest" });
      await dlq.until(() => dlq.deliveries.length >= 1, 15_000, "dead letter");
      const dead = dlq.deliveries[0]!;
      assert.equal(text(dead), "poison");
      assert.equal(dead.attributes.kind, "bad");
      assert.equal(dead.attributes["nervebus-dlq-source-topic"], "work");
      assert.equal(dead.attributes["nervebus-dlq-subscription"], "w");
      assert.equal(dead.attributes["nervebus-dlq-seq"], "1");
      assert.equal(dead.attributes["nervebus-dlq-attempts"], "3");
      assert.equal(dead.attributes["nervebus-dlq-reason"], "max_delivery_attempts");
      assert.equal(s.deliveries.filter((d) => text(d) === "poison").length, 3);
      assert.deepEqual(s.deliveries.filter((d) => text(d) !== "poison").map(text), ["ok1", "ok2", "ok3"]);
      await sleep(200);
      const stats = await client.adminCall("getStats", { topic: "work" });
      const w = stats.subscriptions.find((x) => x.name === "w")!;
      assert.equal(w.backlog, 0n);
      assert.equal(w.deadLettered, 1n);
      assert.equal(w.redelivered, 2n);
      // terminate: dead-letter now.
      await client.publish("work", ["stop-me"]);
      await s.until(() => s.deliveries.some((d) => text(d) === "stop-me"));
      const target = s.deliveries.find((d) => text(d) === "stop-me")!;
      s.send({ terminateSeqs: [target.seq] });
      await dlq.until(() => dlq.deliveries.length >= 2);
      assert.equal(dlq.deliveries[1]!.attributes["nervebus-dlq-reason"], "terminated");
      await dlq.end();
    } finally {
      clearInterval(worker);
    }
    await s.end();
  });

  it("a restart keeps nack delays, attempts and acked ranges", async (ctx) => {
    await ctx.client.publish("keep", ["a", "b", "c", "d"]);
    const s = ctx.client.receive("keep", "s", { from: "earliest", confirmAcks: true });
    await s.until(() => s.deliveries.length >= 4);
    const nackedAt = Date.now();
    s.send({ nacks: [{ seq: 2n, delay: sec(3000) }], ackSeqs: [1n, 3n] });
    await s.until(
      () => s.responses.some((r) => (r.ackResults?.ackedSeqs.length ?? 0) > 0),
      10_000,
      "ack confirmation",
    );
    await ctx.restart();
    const again = ctx.client.receive("keep", "s");
    await again.until(() => again.deliveries.length >= 1);
    await sleep(300);
    assert.deepEqual(seqsOf(again.deliveries), [4], "only the unacked message without delay comes first");
    // A message out on its first attempt is not kept in the state (it is simply delivered
    // again), so it counts as attempt 1; redelivered and nacked ones keep their count.
    assert.equal(again.deliveries[0]!.attempt, 1);
    await again.until(() => again.deliveries.length >= 2, 10_000);
    assert.equal(Number(again.deliveries[1]!.seq), 2);
    assert.ok(Date.now() - nackedAt >= 2900, "the nack delay held across the restart");
    assert.equal(again.deliveries[1]!.attempt, 2);
    await again.end();
  });

  it("delayed messages fall due across a restart and reach every subscription at their time", async (ctx) => {
    const subA = ctx.client.receive("later", "a", { from: "latest" });
    const subB = ctx.client.receive("later", "b", { from: "latest" });
    await subA.until(() => subA.responses.some((r) => r.subscribed));
    await subB.until(() => subB.responses.some((r) => r.subscribed));
    const publishedAt = Date.now();
    const at = publishedAt + 1500;
    const res = await ctx.client.publish("later", [
      { data: Buffer.from("in 2s"), delay: sec(2000) },
      "now",
      {
        data: Buffer.from("at +1.5s"),
        deliverAt: { seconds: BigInt(Math.floor(at / 1000)), nanos: (at % 1000) * 1e6 },
      },
    ]);
    assert.deepEqual(
      res.results.map((r) => r.outcome),
      [MessageResult_Outcome.SCHEDULED, MessageResult_Outcome.APPENDED, MessageResult_Outcome.SCHEDULED],
    );
    assert.equal(res.firstSeq, 1n);
    assert.equal(res.results[0]!.seq, 0n);
    assert.match(res.results[0]!.traceId, /^[0-9a-f]{32}$/, "a scheduled message has its trace id at once");
    const stats = await ctx.client.adminCall("getStats", { topic: "later" });
    assert.equal(stats.topic?.scheduled, 2n);
    await ctx.restart();
    const a = ctx.client.receive("later", "a");
    const b = ctx.client.receive("later", "b");
    await a.until(() => a.deliveries.length >= 3, 15_000);
    await b.until(() => b.deliveries.length >= 3, 15_000);
    const arrived = Date.now();
    assert.deepEqual(a.deliveries.map(text), ["now", "at +1.5s", "in 2s"]);
    assert.deepEqual(b.deliveries.map(text), ["now", "at +1.5s", "in 2s"]);
    assert.ok(arrived - publishedAt >= 2000, "not before its time");
    assert.deepEqual(seqsOf(a.deliveries), [1, 2, 3], "a delayed message gets its seq when due");
    assert.equal(
      a.deliveries[2]!.traceId,
      res.results[0]!.traceId,
      "and keeps the trace id it was given at publish",
    );
    await sleep(300);
    assert.equal((await ctx.client.adminCall("getStats", { topic: "later" })).topic?.scheduled, 0n);
    await Promise.all([a.end(), b.end()]);
  });

  it("ordering keys: one message per key in flight, in seq order across redeliveries; other keys flow", async ({
    client,
  }) => {
    await client.adminCall("createTopic", { topic: { name: "ord" } });
    await client.adminCall("createSubscription", {
      subscription: { topic: "ord", name: "o", ordering: true, minBackoff: sec(0), maxBackoff: sec(0) },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
    await client.publish(
      "ord",
      ["A1", "B1", "A2", "B2", "A3", "C1"].map((t) => ({ data: Buffer.from(t), orderingKey: t[0]! })),
    );
    const s = client.receive("ord", "o", { maxMessages: 100 });
    await s.until(() => s.deliveries.length >= 3);
    await sleep(300);
    assert.deepEqual(
      s.deliveries.map(text),
      ["A1", "B1", "C1"],
      "the first of each key, nothing behind a busy key",
    );
    // Nack A1: it comes again before A2 does; B and C flow.
    s.send({ nacks: [{ seq: 1n }], ackSeqs: [2n, 6n] });
    await s.until(() => s.deliveries.length >= 5);
    assert.deepEqual(s.deliveries.slice(3).map(text).sort(), ["A1", "B2"]);
    const a1 = s.deliveries.slice(3).find((d) => text(d) === "A1")!;
    assert.equal(a1.attempt, 2);
    s.ack([a1.seq]);
    await s.until(() => s.deliveries.some((d) => text(d) === "A2"));
    const a2 = s.deliveries.find((d) => text(d) === "A2")!;
    await sleep(200);
    assert.equal(
      s.deliveries.some((d) => text(d) === "A3"),
      false,
      "A3 waits for A2",
    );
    s.ack([a2.seq]);
    await s.until(() => s.deliveries.some((d) => text(d) === "A3"));
    const order = s.deliveries.filter((d) => text(d).startsWith("A")).map(text);
    assert.deepEqual(order, ["A1", "A1", "A2", "A3"]);
    await s.end();
  });

  it("ordering keys: a message held behind its key and released later is acked like any other", async ({
    client,
  }) => {
    // Every message has the one key, so each one after the first is delivered only once it is
    // released, above every seq delivered fresh: its ack must count, not be "never delivered".
    await client.adminCall("createTopic", { topic: { name: "ord1" } });
    await client.adminCall("createSubscription", {
      subscription: { topic: "ord1", name: "o", ordering: true },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
    await client.publish(
      "ord1",
      ["K1", "K2", "K3"].map((t) => ({ data: Buffer.from(t), orderingKey: "K" })),
    );
    const s = client.receive("ord1", "o", { maxMessages: 100, confirmAcks: true });
    for (let n = 1; n <= 3; n++) {
      await s.until(() => s.deliveries.length >= n);
      s.ack([s.deliveries[n - 1]!.seq]);
    }
    await s.until(() => s.responses.flatMap((r) => r.ackResults?.ackedSeqs ?? []).length >= 3);
    assert.deepEqual(s.deliveries.map(text), ["K1", "K2", "K3"]);
    assert.deepEqual(s.responses.flatMap((r) => r.ackResults?.ignoredSeqs ?? []).map(Number), []);
    await s.end();
  });

  it("ordering turned off: every message held behind its key goes out at once, and each ack counts", async ({
    client,
  }) => {
    // A regression: the held-back messages still went out one per ack of their key after
    // ordering was turned off, so a backlog behind a stuck key stayed stuck.
    await client.adminCall("createTopic", { topic: { name: "ord2" } });
    await client.adminCall("createSubscription", {
      subscription: { topic: "ord2", name: "o", ordering: true },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
    await client.publish(
      "ord2",
      Array.from({ length: 6 }, (_, i) => ({ data: Buffer.from(`K${i + 1}`), orderingKey: "K" })),
    );
    const s = client.receive("ord2", "o", { maxMessages: 100, confirmAcks: true });
    await s.until(() => s.deliveries.length >= 1);
    await sleep(200);
    assert.deepEqual(s.deliveries.map(text), ["K1"], "the first holds its key");
    await client.adminCall("updateSubscription", {
      subscription: { topic: "ord2", name: "o", ordering: false },
      updateMask: { paths: ["ordering"] },
    });
    await s.until(() => s.deliveries.length >= 6, 5000, "the held messages, with K1 unacked");
    assert.deepEqual(s.deliveries.map(text), ["K1", "K2", "K3", "K4", "K5", "K6"]);
    s.ack(s.deliveries.map((d) => d.seq));
    await s.until(() => s.responses.flatMap((r) => r.ackResults?.ackedSeqs ?? []).length >= 6);
    assert.deepEqual(s.responses.flatMap((r) => r.ackResults?.ignoredSeqs ?? []).map(Number), []);
    await sleep(200);
    assert.equal(s.deliveries.length, 6, "nothing twice");
    const stats = await client.adminCall("getStats", { topic: "ord2" });
    assert.equal(stats.subscriptions[0]!.backlog, 0n);
    await s.end();
  });

  it("a message id seen again within the dedup window is not appended again, also after a restart", async (ctx) => {
    const first = await ctx.client.publish("dedup", [
      { data: Buffer.from("x"), messageId: "order-1" },
      { data: Buffer.from("y"), messageId: "order-2" },
      { data: Buffer.from("x again"), messageId: "order-1" },
    ]);
    assert.deepEqual(
      first.results.map((r) => [r.outcome, Number(r.seq)]),
      [
        [MessageResult_Outcome.APPENDED, 1],
        [MessageResult_Outcome.APPENDED, 2],
        [MessageResult_Outcome.DUPLICATE, 1],
      ],
    );
    await ctx.restart();
    const retry = await ctx.client.publish("dedup", [
      { data: Buffer.from("y"), messageId: "order-2" },
      { data: Buffer.from("z"), messageId: "order-3" },
    ]);
    assert.deepEqual(
      retry.results.map((r) => [r.outcome, Number(r.seq)]),
      [
        [MessageResult_Outcome.DUPLICATE, 2],
        [MessageResult_Outcome.APPENDED, 3],
      ],
    );
    const s = ctx.client.receive("dedup", "r", { from: "earliest" });
    await s.until(() => s.deliveries.length >= 3);
    await sleep(200);
    assert.deepEqual(s.deliveries.map(text), ["x", "y", "z"]);
    await s.end();
  });

  it(
    "retention deletes old messages; a subscription left behind moves on and reports what it skipped",
    async ({ client }) => {
      await client.adminCall("createTopic", { topic: { name: "old", retention: sec(1000) } });
      await client.adminCall("createSubscription", {
        subscription: { topic: "old", name: "behind" },
        start: { case: "startPoint", value: StartPoint.EARLIEST },
      });
      await client.publish(
        "old",
        Array.from({ length: 50 }, (_, i) => `old${i}`),
      );
      await sleep(1500);
      await client.publish("old", ["fresh"]);
      let stats = await client.adminCall("getStats", { topic: "old" });
      for (let i = 0; i < 50 && stats.topic!.firstSeq !== 51n; i++) {
        await sleep(100);
        stats = await client.adminCall("getStats", { topic: "old" });
      }
      assert.equal(stats.topic!.firstSeq, 51n);
      assert.equal(stats.topic!.retentionDeleted, 50n);
      const behind = stats.subscriptions.find((x) => x.name === "behind")!;
      assert.equal(behind.skipped, 50n);
      assert.equal(behind.floor, 50n);
      const s = client.receive("old", "behind");
      await s.until(() => s.deliveries.length >= 1);
      assert.equal(text(s.deliveries[0]!), "fresh");
      await s.end();
    },
    { retentionIntervalMs: 200 },
  );

  it(
    "idle streams get heartbeats with backlog figures",
    async ({ client }) => {
      await client.publish("hb", ["one", "two"]);
      const s = client.receive("hb", "h", { from: "earliest", maxMessages: 1 });
      await s.until(() => s.responses.some((r) => r.heartbeat !== undefined), 5000, "heartbeat");
      const hb = s.responses.find((r) => r.heartbeat)!.heartbeat!;
      assert.equal(hb.lastSeq, 2n);
      assert.equal(hb.backlog, 2n);
      assert.equal(hb.inFlight, 1);
      await s.end();
    },
    { heartbeatMs: 300 },
  );

  it("late acks count; acks of already-acked seqs are reported back, never fatal", async ({ client }) => {
    await client.adminCall("createTopic", { topic: { name: "late" } });
    await client.adminCall("createSubscription", {
      subscription: {
        topic: "late",
        name: "s",
        ackDeadline: sec(1000),
        minBackoff: sec(0),
        maxBackoff: sec(0),
      },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
    await client.publish("late", ["m"]);
    const slow = client.receive("late", "s", { confirmAcks: true });
    await slow.until(() => slow.deliveries.length >= 1);
    const other = client.receive("late", "s", { confirmAcks: true });
    await other.until(() => other.deliveries.length >= 1, 10_000, "redelivery to the other consumer");
    slow.ack([1n]);
    await slow.until(() => slow.responses.some((r) => r.ackResults?.ackedSeqs.includes(1n)));
    other.ack([1n]);
    await other.until(() => other.responses.some((r) => r.ackResults?.alreadyAckedSeqs.includes(1n)));
    assert.equal(other.ended, false, "an already-acked ack does not end the stream");
    await Promise.all([slow.end(), other.end()]);
  });

  it("acks of seqs never delivered on the subscription are ignored and reported, so no consumer loses them", async ({
    client,
  }) => {
    await client.publish("neverdelivered", ["a", "b", "c"]);
    const s = client.receive("neverdelivered", "s", { from: "earliest", maxMessages: 1, confirmAcks: true });
    await s.until(() => s.deliveries.length >= 1);
    s.ack([2n, 3n]);
    await s.until(() => s.responses.some((r) => (r.ackResults?.ignoredSeqs.length ?? 0) > 0));
    assert.deepEqual(s.responses.flatMap((r) => r.ackResults?.ignoredSeqs ?? []).map(Number), [2, 3]);
    s.ack([1n]);
    await s.until(() => s.deliveries.length >= 2);
    s.ack([2n]);
    await s.until(() => s.deliveries.length >= 3);
    assert.deepEqual(
      seqsOf(s.deliveries),
      [1, 2, 3],
      "the messages acked before they were given are still delivered",
    );
    s.ack([3n]);
    await s.end();
  });

  it("a window of 0 pauses one stream; acks sent just before a half-close are confirmed before it ends", async ({
    client,
  }) => {
    await client.publish("pause", ["a", "b", "c"]);
    const s = client.receive("pause", "p", { from: "earliest", maxMessages: 1, confirmAcks: true });
    await s.until(() => s.deliveries.length >= 1);
    s.send({ window: { maxMessages: 0 }, ackSeqs: [1n] });
    await sleep(300);
    assert.equal(s.deliveries.length, 1, "no delivery while the window is 0");
    s.send({ window: { maxMessages: 5 } });
    await s.until(() => s.deliveries.length >= 3);
    s.ack([2n, 3n]);
    await s.end();
    const confirmed = s.responses.flatMap((r) => r.ackResults?.ackedSeqs ?? []).map(Number);
    assert.deepEqual(
      confirmed.sort(),
      [1, 2, 3],
      "every ack confirmed, the last ones before the stream ended",
    );
    assert.equal(s.error, undefined);
  });

  it("admin: topics and subscriptions are created, read, listed, updated, paused, purged, sought and deleted", async ({
    client,
  }) => {
    const created = await client.adminCall("createTopic", {
      topic: { name: "adm", shards: 2, dedupWindow: sec(5000) },
    });
    assert.equal(created.topic?.shards, 2);
    assert.equal(created.topic?.retention?.seconds, 7n * 24n * 3600n, "default retention 7 days");
    await assert.rejects(client.adminCall("createTopic", { topic: { name: "adm" } }), {
      code: grpc.status.ALREADY_EXISTS,
    });
    await assert.rejects(client.adminCall("getTopic", { name: "nope" }), { code: grpc.status.NOT_FOUND });
    await assert.rejects(
      client.adminCall("createTopic", { topic: { name: "bad name" } }),
      (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
        assert.match(e.details, /^topic\.name: contains " "/);
        return true;
      },
    );
    const updated = await client.adminCall("updateTopic", {
      topic: { name: "adm", retention: sec(60_000) },
      updateMask: { paths: ["retention"] },
    });
    assert.equal(updated.topic?.retention?.seconds, 60n);
    assert.equal(updated.topic?.dedupWindow?.seconds, 5n, "fields outside the mask keep their value");
    await assert.rejects(
      client.adminCall("updateTopic", { topic: { name: "adm" }, updateMask: { paths: ["shards"] } }),
      (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
        assert.match(e.details, /update_mask: "shards" cannot be changed/);
        return true;
      },
    );
    assert.deepEqual(
      (await client.adminCall("listTopics", {})).topics.map((t) => t.name),
      ["adm"],
    );

    await client.publish(
      "adm",
      Array.from({ length: 10 }, (_, i) => `m${i + 1}`),
    );
    await client.adminCall("createSubscription", {
      subscription: { topic: "adm", name: "s", ackDeadline: sec(5000), maxDeliveryAttempts: 4 },
      start: { case: "startSeq", value: 4n },
    });
    const got = await client.adminCall("getSubscription", { topic: "adm", name: "s" });
    assert.equal(got.subscription?.maxDeliveryAttempts, 4);
    assert.equal(got.subscription?.ackDeadline?.seconds, 5n);
    await assert.rejects(
      client.adminCall("createSubscription", { subscription: { topic: "adm", name: "s" } }),
      {
        code: grpc.status.ALREADY_EXISTS,
      },
    );
    await assert.rejects(
      client.adminCall("createSubscription", {
        subscription: { topic: "adm", name: "x", deadLetterTopic: "adm" },
      }),
      (e: grpc.ServiceError) => /dead_letter_topic: must differ/.test(e.details),
    );
    const upd = await client.adminCall("updateSubscription", {
      subscription: { topic: "adm", name: "s", ordering: true },
      updateMask: { paths: ["ordering"] },
    });
    assert.equal(upd.subscription?.ordering, true);
    assert.equal(upd.subscription?.maxDeliveryAttempts, 4);
    await assert.rejects(
      client.adminCall("updateSubscription", {
        subscription: { topic: "adm", name: "s" },
        updateMask: { paths: ["ack_deadline"] },
      }),
      (e: grpc.ServiceError) => /subscription\.ack_deadline: must be 1 s – 10 min, got 0 ms/.test(e.details),
      "a masked field left unset takes its zero value, which is judged like any other",
    );

    // Pause: nothing is delivered while messages keep arriving; resume delivers.
    await client.adminCall("pauseSubscription", { topic: "adm", name: "s" });
    const s = client.receive("adm", "s", { maxMessages: 100 });
    await s.until(() => s.responses.some((r) => r.subscribed));
    await client.publish("adm", ["m11"]);
    await sleep(300);
    assert.equal(s.deliveries.length, 0, "paused");
    let stats = await client.adminCall("getStats", { topic: "adm" });
    assert.equal(stats.subscriptions[0]!.paused, true);
    assert.equal(stats.subscriptions[0]!.backlog, 8n);
    assert.equal(stats.subscriptions[0]!.consumers.length, 1);
    assert.equal(stats.topic?.lastSeq, 11n);
    await client.adminCall("resumeSubscription", { topic: "adm", name: "s" });
    await s.until(() => s.deliveries.length >= 8);
    assert.deepEqual(seqsOf(s.deliveries), [4, 5, 6, 7, 8, 9, 10, 11]);
    stats = await client.adminCall("getStats", { topic: "adm" });
    assert.equal(stats.subscriptions[0]!.inFlight, 8n);

    // Seek back to 2, purge, seek by time.
    await s.end();
    const seek = await client.adminCall("seekSubscription", {
      topic: "adm",
      name: "s",
      target: { case: "seq", value: 2n },
    });
    assert.equal(seek.floor, 1n);
    const again = client.receive("adm", "s", { maxMessages: 100 });
    await again.until(() => again.deliveries.length >= 10);
    assert.equal(Number(again.deliveries[0]!.seq), 2);
    await again.end();
    const purge = await client.adminCall("purgeSubscription", { topic: "adm", name: "s" });
    assert.equal(purge.floor, 11n);
    stats = await client.adminCall("getStats", { topic: "adm" });
    assert.equal(stats.subscriptions[0]!.backlog, 0n);
    const byTime = await client.adminCall("seekSubscription", {
      topic: "adm",
      name: "s",
      target: { case: "time", value: { seconds: 0n, nanos: 0 } },
    });
    assert.equal(byTime.floor, 0n, "seeking to the epoch goes back to the first message");

    await client.adminCall("deleteSubscription", { topic: "adm", name: "s" });
    assert.deepEqual((await client.adminCall("listSubscriptions", { topic: "adm" })).subscriptions, []);
    await client.adminCall("deleteTopic", { name: "adm" });
    await assert.rejects(client.adminCall("getTopic", { name: "adm" }), { code: grpc.status.NOT_FOUND });
  });

  it("deleting a topic ends its streams with NOT_FOUND; a dead-letter topic in use cannot be deleted", async ({
    client,
  }) => {
    await client.adminCall("createTopic", { topic: { name: "src" } });
    await client.adminCall("createTopic", { topic: { name: "src.dlq" } });
    await client.adminCall("createSubscription", {
      subscription: { topic: "src", name: "s", deadLetterTopic: "src.dlq" },
    });
    await assert.rejects(client.adminCall("deleteTopic", { name: "src.dlq" }), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.FAILED_PRECONDITION);
      assert.match(e.details, /dead-letter topic of subscription s on topic src/);
      return true;
    });
    const s = client.receive("src", "s");
    await s.until(() => s.responses.some((r) => r.subscribed));
    await client.adminCall("deleteTopic", { name: "src" });
    await s.until(() => s.ended);
    assert.equal(s.error?.code, grpc.status.NOT_FOUND);
  });

  it(
    "without auto-create, a dead-letter topic that does not exist is refused NOT_FOUND when set, not met at each dead letter",
    async ({ client }) => {
      // A regression: it was accepted, and every terminated message then went back to the
      // consumers (attempt 2, 3 …) with a warning each time, since its letter could never be written.
      await client.adminCall("createTopic", { topic: { name: "jobs" } });
      const missing = (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.NOT_FOUND);
        assert.match(e.details, /^subscription\.dead_letter_topic: topic jobs\.dlq does not exist/);
        return true;
      };
      await assert.rejects(
        client.adminCall("createSubscription", {
          subscription: { topic: "jobs", name: "s", deadLetterTopic: "jobs.dlq" },
        }),
        missing,
      );
      await client.adminCall("createSubscription", { subscription: { topic: "jobs", name: "s" } });
      await assert.rejects(
        client.adminCall("updateSubscription", {
          subscription: { topic: "jobs", name: "s", deadLetterTopic: "jobs.dlq" },
          updateMask: { paths: ["dead_letter_topic"] },
        }),
        missing,
      );
      await client.adminCall("createTopic", { topic: { name: "jobs.dlq" } });
      const upd = await client.adminCall("updateSubscription", {
        subscription: { topic: "jobs", name: "s", deadLetterTopic: "jobs.dlq" },
        updateMask: { paths: ["dead_letter_topic"] },
      });
      assert.equal(upd.subscription?.deadLetterTopic, "jobs.dlq");
    },
    { autoCreate: false },
  );

  it("ephemeral topics deliver only to connected consumers with room and count what they drop", async ({
    client,
  }) => {
    await client.adminCall("createTopic", { topic: { name: "clicks", ephemeral: true } });
    await client.publish("clicks", ["before anyone listens"]);
    const s = client.receive("clicks", "live", { maxMessages: 2, from: "latest" });
    await s.until(() => s.responses.some((r) => r.subscribed));
    await client.publish(
      "clicks",
      Array.from({ length: 10 }, (_, i) => `c${i}`),
    );
    await s.until(() => s.deliveries.length >= 2);
    await sleep(300);
    assert.deepEqual(s.deliveries.map(text), ["c0", "c1"]);
    const stats = await client.adminCall("getStats", { topic: "clicks" });
    assert.equal(stats.subscriptions[0]!.backlog, 2n, "only what is in flight remains");
    assert.equal(stats.topic?.dropped, 8n);
    await assert.rejects(
      client.publish("clicks", [{ data: Buffer.from("x"), delay: sec(1000) }]),
      (e: grpc.ServiceError) => /ephemeral and keeps no delayed messages/.test(e.details),
    );
    s.ack([s.deliveries[0]!.seq]);
    await client.publish("clicks", ["after"]);
    await s.until(() => s.deliveries.length >= 3);
    assert.equal(text(s.deliveries[2]!), "after");
    await s.end();
  });
}
