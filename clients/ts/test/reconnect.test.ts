import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { NerveBusClient, type NerveBusError, type ReceivedMessage, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, delay, eventually, uniqueName } from "./support/helpers.js";
import { receiveCutter } from "./support/receive-cutter.js";

let broker: TestBroker;

before(async () => {
  broker = await TestBroker.start();
});

after(async () => {
  await broker.dispose();
});

for (const signal of ["SIGTERM", "SIGKILL"] as const) {
  test(`subscriber and publisher carry on after the broker restarts on the same SQLite file (${signal})`, async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("restart");
      const subName = uniqueName("sub");
      const received = new Map<string, number>();
      const errors: NerveBusError[] = [];
      const sub = client.subscribe(
        topic,
        subName,
        (m) => {
          received.set(m.text(), (received.get(m.text()) ?? 0) + 1);
        },
        {
          start: "earliest",
          onError: (e) => errors.push(e),
          reconnectBackoff: { initialMs: 50, maxMs: 500 },
        },
      );
      await sub.ready;
      for (let i = 0; i < 3; i++) await client.publish(topic, { data: `before ${i}` });
      await eventually(() => received.size === 3, 5000, "messages before the restart");
      await delay(200); // let the acks reach the store

      await broker.stop(signal);
      // Published while the broker is down: retried until it is back.
      const during = client.publish(topic, { data: "during" });
      await delay(300);
      await broker.restart();
      const result = await during;
      assert.ok(result.seq >= 4);
      for (let i = 0; i < 3; i++) await client.publish(topic, { data: `after ${i}` });

      const expected = ["before 0", "before 1", "before 2", "during", "after 0", "after 1", "after 2"];
      await eventually(
        () => expected.every((k) => received.has(k)),
        15_000,
        "every message after the restart",
      );
      assert.ok(
        errors.some((e) => e.code === StatusCode.UNAVAILABLE),
        `reconnect errors: ${errors.map((e) => e.message)}`,
      );
      if (signal === "SIGTERM") {
        // A graceful stop keeps the acks: nothing acked before the restart comes back.
        for (const k of expected) assert.equal(received.get(k), 1, `${k} delivered once`);
      }
      await eventually(async () => {
        const stats = await client.admin.stats(topic);
        return stats.subscriptions[0]!.backlog === 0;
      });
      await sub.close();
      assert.equal(sub.held, 0);
    } finally {
      await client.close();
    }
  });
}

test("a message still being handled when its stream drops is adopted when redelivered, not handled twice", async () => {
  const client = new NerveBusClient(broker.address);
  try {
    const topic = uniqueName("adopt");
    const subName = uniqueName("sub");
    await client.publish(topic, { data: "slow" });
    const calls: number[] = [];
    const errors: NerveBusError[] = [];
    const sub = client.subscribe(
      topic,
      subName,
      async (m) => {
        calls.push(m.attempt);
        await delay(2500);
      },
      {
        start: "earliest",
        maxMessages: 2,
        // Shorter than the broker's 500 ms heartbeat: the client drops the stream every 300 ms
        // and the broker redelivers what it held to the next stream at once.
        idleTimeoutMs: 300,
        reconnectBackoff: { initialMs: 10, maxMs: 20 },
        onError: (e) => errors.push(e),
      },
    );
    await eventually(() => calls.length === 1, 5000, "first delivery");
    await eventually(async () => {
      const stats = await client.admin.stats(topic);
      return stats.subscriptions[0]!.backlog === 0;
    }, 10_000);
    const stats = await client.admin.stats(topic);
    assert.ok(stats.subscriptions[0]!.redelivered >= 1, "the broker redelivered the message");
    assert.ok(errors.length >= 2, `streams dropped ${errors.length} times`);
    assert.deepEqual(calls, [1], "handled once although the broker redelivered it");
    await sub.close();
  } finally {
    await client.close();
  }
});

/** The subscription's backlog (-1 while the subscription is unknown). */
async function backlog(client: NerveBusClient, topic: string): Promise<number> {
  const stats = await client.admin.stats(topic);
  return stats.subscriptions[0]?.backlog ?? -1;
}

/**
 * Runs `handler` on a one-message topic through a client whose Receive streams `cutter`
 * controls, until the broker has settled the message; returns the attempts the handler saw.
 */
async function handleOne(
  cutter: ReturnType<typeof receiveCutter>,
  handler: (m: ReceivedMessage) => Promise<void> | void,
  onError?: (err: NerveBusError) => void,
): Promise<number[]> {
  const client = new NerveBusClient(broker.address, { interceptors: [cutter.interceptor] });
  try {
    const topic = uniqueName("adopt");
    await client.publish(topic, { data: "one" });
    const calls: number[] = [];
    const sub = client.subscribe(
      topic,
      uniqueName("sub"),
      (m) => {
        calls.push(m.attempt);
        return handler(m);
      },
      { start: "earliest", reconnectBackoff: { initialMs: 20, maxMs: 20 }, ...(onError && { onError }) },
    );
    await eventually(async () => (await backlog(client, topic)) === 0, 10_000, "the message settled");
    await sub.close();
    assert.equal(sub.held, 0);
    return calls;
  } finally {
    await client.close();
  }
}

/** Asserts that the broker redelivered seq 1 (attempt 2) on the second stream. */
function assertRedelivered(cutter: ReturnType<typeof receiveCutter>): void {
  assert.ok(cutter.streams.length >= 2, `${cutter.streams.length} streams`);
  assert.deepEqual(cutter.streams[1]!.deliveries, [{ seq: 1, attempt: 2 }], "the redelivery");
}

test("a message whose handler runs while its stream is lost is adopted when redelivered", async () => {
  const cutter = receiveCutter();
  const calls = await handleOne(cutter, async () => {
    cutter.cut();
    await eventually(() => cutter.streams[1]?.deliveries.length, 10_000, "the redelivery");
  });
  assertRedelivered(cutter);
  assert.deepEqual(calls, [1], "handled once");
});

test("a message acked while no stream is up is not handed out again when redelivered", async () => {
  const cutter = receiveCutter();
  const lost = deferred();
  // The stream is lost while the handler runs; the handler returns once the subscriber has
  // seen the loss, before the next stream opens: the ack waits for that stream.
  const calls = await handleOne(
    cutter,
    async () => {
      cutter.cut();
      await lost.promise;
    },
    () => lost.resolve(),
  );
  assertRedelivered(cutter);
  assert.deepEqual(calls, [1], "handled once although the broker redelivered it");
});

test("an ack lost with its stream is sent again, and the redelivery is not handed out", async () => {
  const cutter = receiveCutter();
  // The request carrying the ack is lost with the connection: the broker never reads it.
  cutter.cutBefore((r) => r.ackSeqs.length > 0);
  const calls = await handleOne(cutter, () => {});
  assertRedelivered(cutter);
  assert.deepEqual(calls, [1], "handled once although the broker redelivered it");
});

test("a termination lost with its stream is applied to the redelivery, which is not handed out", async () => {
  const cutter = receiveCutter();
  cutter.cutBefore((r) => r.terminateSeqs.length > 0);
  const calls = await handleOne(cutter, (m) => m.terminate());
  assertRedelivered(cutter);
  assert.deepEqual(calls, [1], "handled once although the broker redelivered it");
});

test("a seek back replays acked messages although the client never heard a floor covering their acks", async () => {
  // The client keeps acks until a floor covers them; heartbeats (which carry the floor) are
  // hidden, so these acks are still kept when the seek replays their messages as attempt 1.
  const cutter = receiveCutter({ hideHeartbeats: true });
  const client = new NerveBusClient(broker.address, { interceptors: [cutter.interceptor] });
  try {
    const topic = uniqueName("seek");
    const subName = uniqueName("sub");
    for (let i = 1; i <= 3; i++) await client.publish(topic, { data: `m${i}` });
    const got: { seq: number; attempt: number }[] = [];
    const sub = client.subscribe(topic, subName, (m) => void got.push({ seq: m.seq, attempt: m.attempt }), {
      start: "earliest",
    });
    await eventually(async () => got.length === 3 && (await backlog(client, topic)) === 0, 10_000, "acks");
    assert.equal(await client.admin.seek(topic, subName, { seq: 1 }), 0);
    await eventually(() => got.length === 6, 10_000, "the replay");
    assert.deepEqual(
      got.slice(3),
      [1, 2, 3].map((seq) => ({ seq, attempt: 1 })),
    );
    await sub.close();
  } finally {
    await client.close();
  }
});
