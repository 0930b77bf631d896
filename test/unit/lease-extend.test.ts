import assert from "node:assert/strict";
import { test } from "node:test";
import type { ConsumerSink, Delivered } from "../../src/core/index.js";
import { coreBroker } from "../support/core-broker.js";

class Recorder implements ConsumerSink {
  readonly received: { seq: number; attempt: number; at: number }[] = [];
  send(deliveries: readonly Delivered[]): boolean {
    for (const d of deliveries)
      this.received.push({ seq: d.message.seq, attempt: d.attempt, at: Date.now() });
    return true;
  }
  ackResults(): void {}
  fail(): void {}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setUp() {
  const broker = coreBroker({}, 1000);
  const message = (s: string) => ({
    data: Buffer.from(s),
    attributes: {},
    orderingKey: "",
    messageId: "",
    deliverAt: 0,
  });
  await broker.publish("t", [message("a"), message("b"), message("c")], Date.now() + 10_000);
  const rec = new Recorder();
  const a = await broker.subscribe(
    "t",
    "s",
    {
      window: { maxMessages: 10, maxBytes: 0 },
      ackDeadlineMs: 1000,
      start: { kind: "earliest" },
      confirmAcks: false,
      consumerName: "",
    },
    rec,
  );
  for (let i = 0; i < 100 && rec.received.length < 3; i++) await sleep(10);
  assert.equal(rec.received.length, 3);
  return { broker, rec, ...a };
}

test("a lease extended a million times holds one timer entry, not one per extension", async () => {
  const { broker, subscription, consumer } = await setUp();
  try {
    const before = subscription.timerEntries;
    const seqs = new Array<number>(1_000_000).fill(1);
    subscription.extend(consumer, seqs, 60_000);
    subscription.extend(consumer, seqs, 50_000);
    assert.ok(
      subscription.timerEntries <= before + 2,
      `${subscription.timerEntries} timer entries after 2 million extensions (${before} before)`,
    );
  } finally {
    await broker.close(1000);
  }
});

test("extended leases still expire at their new deadline, later or earlier", async () => {
  const { broker, rec, subscription, consumer } = await setUp();
  try {
    const t0 = Date.now();
    subscription.extend(consumer, [1], 2500); // later than the 1 s deadline
    subscription.extend(consumer, [2], 5000);
    subscription.extend(consumer, [2], 1500); // shortened again
    await sleep(1300);
    assert.deepEqual(
      rec.received.filter((r) => r.attempt === 2).map((r) => r.seq),
      [3],
      "only the unextended lease expired after 1 s",
    );
    await sleep(1900);
    const again = rec.received.filter((r) => r.attempt === 2);
    assert.deepEqual(again.map((r) => r.seq).sort(), [1, 2, 3]);
    const at = (seq: number) => again.find((r) => r.seq === seq)!.at - t0;
    assert.ok(at(2) >= 1500 && at(2) < 2400, `seq 2 came back after ${at(2)} ms (deadline 1.5 s)`);
    assert.ok(at(1) >= 2500, `seq 1 came back after ${at(1)} ms (deadline 2.5 s)`);
  } finally {
    await broker.close(1000);
  }
});
