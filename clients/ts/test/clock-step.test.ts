import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { NerveBusClient, type ReceivedMessage } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, delay, uniqueName } from "./support/helpers.js";

/**
 * The client's wall clock steps back an hour (NTP stepping it, a laptop or VM resumed) while a
 * handler works on a message: the subscriber must go on extending its lease, or the broker
 * hands the message to another consumer while this one still works on it. The broker runs in
 * its own process; only this test process's wall clock (Date.now() and new Date()) steps, as
 * the whole process's would.
 */
const RealDate = Date;
const realNow = Date.now;
let offset = 0;

class SteppedDate extends Date {
  constructor(...args: ConstructorParameters<DateConstructor> | []) {
    if (args.length === 0) super(realNow() + offset);
    else super(...(args as [number]));
  }

  static override now(): number {
    return realNow() + offset;
  }
}

let broker: TestBroker;
let client: NerveBusClient;

before(async () => {
  broker = await TestBroker.start();
  client = new NerveBusClient(broker.address);
});

after(async () => {
  globalThis.Date = RealDate;
  await client.close();
  await broker.dispose();
});

test("a handler's lease is still extended after the wall clock steps back an hour", async () => {
  const topic = uniqueName("clock");
  const subName = uniqueName("sub");
  await client.publish(topic, { data: "slow" });
  const attempts: number[] = [];
  const working = deferred();
  const sub = client.subscribe(
    topic,
    subName,
    async (m: ReceivedMessage) => {
      attempts.push(m.attempt);
      if (m.attempt !== 1) return;
      working.resolve();
      await delay(3500);
    },
    { start: "earliest", ackDeadlineMs: 1000, maxExtensionMs: 60_000 },
  );
  await working.promise;
  globalThis.Date = SteppedDate as DateConstructor;
  offset = -3_600_000;
  await delay(4000);
  await sub.close();
  const stats = await client.admin.stats(topic);
  assert.deepEqual(attempts, [1], "delivered once, its lease extended while the handler worked");
  assert.equal(stats.subscriptions.find((s) => s.name === subName)!.redelivered, 0);
});
