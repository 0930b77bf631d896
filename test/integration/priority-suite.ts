import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { Priority } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { StartPoint } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import type { Config } from "../../src/config/index.js";
import {
  type BrokerContext,
  type FreshStore,
  type MessageInit,
  seqsOf,
  withBroker,
} from "../support/broker.js";

const text = (d: { data: Uint8Array }) => Buffer.from(d.data).toString();
const msgs = (prefix: string, n: number, priority: Priority): MessageInit[] =>
  Array.from({ length: n }, (_, i) => ({ data: Buffer.from(`${prefix}${i}`), priority }));

/** Priorities through a real gRPC connection: urgent first, bulk's share, acks, restart, bad input. */
export function prioritySuite(kind: string, fresh: FreshStore): void {
  const it = (name: string, fn: (ctx: BrokerContext) => Promise<void>, overrides: Partial<Config> = {}) =>
    test(`${kind}: priority: ${name}`, () =>
      withBroker(fresh, `pr_${kind}_${name}`.slice(0, 60), overrides, fn));

  it("a window is filled urgent first, then normal, and 1 in 10 first deliveries is the oldest (bulk) message", async ({
    client,
  }) => {
    await client.publish("p1", msgs("bulk", 300, Priority.BULK));
    const urgent = await client.publish("p1", msgs("urgent", 5, Priority.URGENT));
    await client.publish("p1", msgs("normal", 20, Priority.NORMAL));
    const s = client.receive("p1", "s", { maxMessages: 10, from: "earliest" });
    await s.until(() => s.deliveries.length >= 10);
    const first = s.deliveries.slice(0, 10);
    assert.deepEqual(
      first.map(text),
      [
        "urgent0",
        "urgent1",
        "urgent2",
        "urgent3",
        "urgent4",
        "normal0",
        "normal1",
        "normal2",
        "normal3",
        "bulk0",
      ],
      "urgent in seq order, then normal; the 10th slot of the cycle is the oldest message",
    );
    assert.deepEqual(
      first.slice(0, 5).map((d) => Number(d.seq)),
      Array.from({ length: 5 }, (_, i) => Number(urgent.firstSeq) + i),
    );
    assert.deepEqual(
      first.map((d) => d.priority),
      [...Array(5).fill(Priority.URGENT), ...Array(4).fill(Priority.UNSPECIFIED), Priority.BULK],
      "deliveries carry the priority (normal is the default, unset)",
    );
    await s.end();
  });

  it("bulk never starves, acks work across a restart, and nothing is delivered twice", async (ctx) => {
    await ctx.client.publish("p2", msgs("bulk", 100, Priority.BULK));
    await ctx.client.publish("p2", msgs("urgent", 100, Priority.URGENT));
    const s = ctx.client.receive("p2", "s", { maxMessages: 1, from: "earliest", confirmAcks: true });
    for (let n = 1; n <= 50; n++) {
      await s.until(() => s.deliveries.length >= n);
      s.ack([s.deliveries[n - 1]!.seq]);
    }
    const first50 = s.deliveries.slice(0, 50).map(text);
    const bulk = first50.filter((t) => t.startsWith("bulk"));
    assert.equal(bulk.length, 5, `1 in 10 is bulk: ${first50.join(" ")}`);
    assert.deepEqual(bulk, ["bulk0", "bulk1", "bulk2", "bulk3", "bulk4"], "bulk in seq order");
    await s.until(() => s.responses.filter((r) => r.ackResults !== undefined).length > 0);
    await s.end();
    await ctx.restart();
    const again = ctx.client.receive("p2", "s", { maxMessages: 1000, from: "earliest" });
    await again.until(() => again.deliveries.length >= 150);
    const seen = new Set([...first50, ...again.deliveries.map(text)]);
    assert.equal(seen.size, 200, "every message once: the 50 acked ones are not delivered again");
    assert.ok(again.deliveries.every((d) => d.attempt === 1));
    again.ack(seqsOf(again.deliveries));
    await again.end();
    const stats = await ctx.client.adminCall("getStats", { topic: "p2" });
    const sub = stats.subscriptions.find((x) => x.name === "s")!;
    assert.equal(Number(sub.backlog), 0);
    assert.equal(Number(sub.floor), 200, "the floor passes every message once all are acked");
  });

  it("after a restart the backlog's priorities hold: urgent (nacked, leased, never delivered) before normal and bulk", async (ctx) => {
    await ctx.client.publish("p4", msgs("bulk", 300, Priority.BULK));
    await ctx.client.publish("p4", msgs("urgent", 6, Priority.URGENT));
    await ctx.client.publish("p4", msgs("normal", 20, Priority.NORMAL));
    const s = ctx.client.receive("p4", "s", { maxMessages: 3, from: "earliest", confirmAcks: true });
    await s.until(() => s.deliveries.length >= 3);
    assert.deepEqual(s.deliveries.map(text), ["urgent0", "urgent1", "urgent2"]);
    // urgent0: nacked twice (a redelivery with its attempts persisted); urgent1: acked;
    // urgent2: leased and never settled.
    const urgent0 = s.deliveries[0]!.seq;
    s.send({ nacks: [{ seq: urgent0, delay: {} }] });
    await s.until(() => s.deliveries.some((d) => d.seq === urgent0 && d.attempt === 2));
    s.send({ nacks: [{ seq: urgent0, delay: {} }] });
    s.ack([s.deliveries[1]!.seq]);
    await s.until(() => s.responses.some((r) => r.ackResults !== undefined));
    await s.end();
    await ctx.restart();
    const again = ctx.client.receive("p4", "s", { maxMessages: 21 });
    await again.until(() => again.deliveries.length >= 21);
    const got = again.deliveries.slice(0, 21);
    assert.deepEqual(
      got.slice(0, 10).map(text),
      [
        ...["urgent0", "urgent2", "urgent3", "urgent4", "urgent5"],
        ...["normal0", "normal1", "normal2", "normal3", "normal4"],
      ],
      "the redelivery first, then urgent in seq order, then normal",
    );
    // The oldest lane's slot comes every 10 first deliveries; the first one may pass while the
    // backlog is read from the store (the slot then goes to the next lane).
    const bulk = got.map(text).filter((t) => t.startsWith("bulk"));
    assert.ok(bulk.length >= 1 && bulk.length <= 2, `bulk keeps its share: ${got.map(text).join(" ")}`);
    assert.deepEqual(bulk, ["bulk0", "bulk1"].slice(0, bulk.length), "bulk in seq order");
    // 3, or 4 when the first stream got the redelivery after the second nack before it ended.
    assert.ok(got[0]!.attempt >= 3, `the nacked message keeps its attempts: ${got[0]!.attempt}`);
    assert.deepEqual(
      got.slice(1).map((d) => d.attempt),
      Array(20).fill(1),
      "first attempts: the leased one was never acked",
    );
    assert.equal(got[0]!.priority, Priority.URGENT);
    await again.end();
  });

  it("priority does not overtake an ordering key; a bad priority is INVALID_ARGUMENT naming the message", async ({
    client,
  }) => {
    await client.adminCall("createTopic", { topic: { name: "p3" } });
    await client.adminCall("createSubscription", {
      subscription: { topic: "p3", name: "ordered", ordering: true },
      start: { case: "startPoint", value: StartPoint.EARLIEST },
    });
    await client.publish("p3", [
      { data: Buffer.from("k-bulk"), orderingKey: "k", priority: Priority.BULK },
      { data: Buffer.from("free-bulk"), priority: Priority.BULK },
      { data: Buffer.from("k-urgent"), orderingKey: "k", priority: Priority.URGENT },
      { data: Buffer.from("free-urgent"), priority: Priority.URGENT },
    ]);
    const s = client.receive("p3", "ordered", { maxMessages: 10 });
    await s.until(() => s.deliveries.length >= 3);
    const got = s.deliveries.map(text);
    assert.equal(got[0], "free-urgent", "an urgent message without key goes first");
    assert.ok(!got.includes("k-urgent"), "k-urgent waits behind k-bulk (unacked)");
    s.ack(seqsOf(s.deliveries.filter((d) => text(d) === "k-bulk")));
    await s.until(() => s.deliveries.some((d) => text(d) === "k-urgent"));
    await s.end();
    await assert.rejects(
      client.publish("p3", [
        { data: Buffer.from("ok") },
        { data: Buffer.from("x"), priority: 7 as Priority },
      ]),
      (err: grpc.ServiceError) =>
        err.code === grpc.status.INVALID_ARGUMENT &&
        /^messages\[1\]\.priority: 7 is not a priority/.test(err.details),
    );
  });
}
