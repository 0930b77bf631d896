import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { NerveBusClient, NerveBusError, type ReceivedMessage, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, delay, eventually, uniqueName } from "./support/helpers.js";

let broker: TestBroker;
let client: NerveBusClient;

before(async () => {
  broker = await TestBroker.start();
  client = new NerveBusClient(broker.address);
});

after(async () => {
  await client.close();
  await broker.dispose();
});

async function publishMany(topic: string, count: number, data = (i: number) => `m${i}`): Promise<void> {
  await Promise.all(Array.from({ length: count }, (_, i) => client.publish(topic, { data: data(i) })));
}

async function backlog(topic: string, subscription: string): Promise<number> {
  const stats = await client.admin.stats(topic);
  return stats.subscriptions.find((s) => s.name === subscription)?.backlog ?? -1;
}

describe("subscriber", () => {
  test("a handler that throws nacks with the configured delay; the redelivery is attempt 2", async () => {
    const topic = uniqueName("nack");
    const subName = uniqueName("sub");
    await client.publish(topic, { data: "retry me" });
    const seen: { attempt: number; at: number }[] = [];
    const acked = deferred();
    const sub = client.subscribe(
      topic,
      subName,
      (m) => {
        seen.push({ attempt: m.attempt, at: Date.now() });
        if (m.attempt === 1) throw new Error("not yet");
        acked.resolve();
      },
      { start: "earliest", nackDelayMs: 400 },
    );
    try {
      await acked.promise;
      assert.deepEqual(
        seen.map((s) => s.attempt),
        [1, 2],
      );
      const gap = seen[1]!.at - seen[0]!.at;
      assert.ok(gap >= 380, `redelivered after ${gap} ms, before the 400 ms nack delay`);
      await eventually(async () => (await backlog(topic, subName)) === 0, 5000, "the ack");
    } finally {
      await sub.close();
    }
  });

  test("the window is never exceeded: at most maxMessages handlers hold messages at once", async () => {
    const topic = uniqueName("window");
    await publishMany(topic, 30);
    let running = 0;
    let maxRunning = 0;
    let handled = 0;
    let maxHeld = 0;
    const done = deferred();
    const sub = client.subscribe(
      topic,
      uniqueName("sub"),
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        maxHeld = Math.max(maxHeld, sub.held);
        await delay(30);
        running--;
        if (++handled === 30) done.resolve();
      },
      { start: "earliest", maxMessages: 3, concurrency: 10 },
    );
    try {
      await sub.ready;
      const stats = await eventually(async () => {
        const s = await client.admin.stats(topic);
        return s.subscriptions[0]!.consumers.length === 1 ? s : undefined;
      });
      assert.equal(stats.subscriptions[0]!.consumers[0]!.window.maxMessages, 3);
      await done.promise;
      assert.equal(maxRunning, 3, "handlers ran 3 at a time, never more");
      assert.ok(maxHeld <= 3, `held ${maxHeld} messages`);
    } finally {
      await sub.close();
    }
  });

  test("a byte window bounds what is held by size", async () => {
    // A broker whose max message size is 1 KiB accepts a 2 KiB window.
    const small = await TestBroker.start(["--max-message-bytes", "1024"]);
    const c = new NerveBusClient(small.address);
    try {
      const topic = uniqueName("bytes");
      await Promise.all(Array.from({ length: 12 }, () => c.publish(topic, { data: "x".repeat(500) })));
      let running = 0;
      let maxRunning = 0;
      let handled = 0;
      const done = deferred();
      const sub = c.subscribe(
        topic,
        uniqueName("sub"),
        async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await delay(30);
          running--;
          if (++handled === 12) done.resolve();
        },
        { start: "earliest", maxMessages: 100, maxBytes: 2048, concurrency: 50 },
      );
      await done.promise;
      await sub.close();
      // Each message counts about 600 bytes (data, message id, the traceparent the broker adds): 3 fit in 2048.
      assert.equal(maxRunning, 3);
    } finally {
      await c.close();
      await small.dispose();
    }
  });

  test("lease extension keeps a slow message from being redelivered, up to maxExtensionMs", async () => {
    const topic = uniqueName("extend");
    await client.publish(topic, { data: "slow" });
    const run = async (maxExtensionMs: number) => {
      const attempts: number[] = [];
      const subName = uniqueName("sub");
      const sub = client.subscribe(
        topic,
        subName,
        async (m) => {
          attempts.push(m.attempt);
          if (m.attempt === 1) await delay(3200);
        },
        { start: "earliest", ackDeadlineMs: 1000, maxExtensionMs, concurrency: 5 },
      );
      await delay(3600);
      await sub.close();
      const stats = await client.admin.stats(topic);
      return { attempts, redelivered: stats.subscriptions.find((s) => s.name === subName)!.redelivered };
    };
    const [extended, capped] = await Promise.all([run(60_000), run(1000)]);
    assert.deepEqual(extended, { attempts: [1], redelivered: 0 });
    // Control: without extensions past 1 s, the 1 s lease runs out and the message comes back.
    assert.equal(capped.attempts[0], 1);
    assert.ok(capped.attempts.includes(2), `attempts ${capped.attempts}`);
    assert.ok(capped.redelivered >= 1);
  });

  test("close() lets running handlers finish and acks them; waiting messages are handed back", async () => {
    const topic = uniqueName("close");
    const subName = uniqueName("sub");
    await publishMany(topic, 6);
    const started: number[] = [];
    const finished: number[] = [];
    const allStarted = deferred();
    const sub = client.subscribe(
      topic,
      subName,
      async (m) => {
        started.push(m.seq);
        if (started.length === 2) allStarted.resolve();
        await delay(300);
        finished.push(m.seq);
      },
      { start: "earliest", concurrency: 2, maxMessages: 6 },
    );
    await allStarted.promise;
    await eventually(() => sub.held === 6, 5000, "6 messages held");
    const t0 = Date.now();
    await sub.close();
    assert.ok(Date.now() - t0 >= 200, "close waited for the running handlers");
    assert.deepEqual(finished.sort(), started.slice(0, 2).sort());
    assert.equal(started.length, 2, "no new handler started while closing");
    // The 2 handled are acked; the 4 handed back are delivered right away to the next consumer.
    await eventually(async () => (await backlog(topic, subName)) === 4, 5000, "backlog 4");
    const rest: ReceivedMessage[] = [];
    const gotRest = deferred();
    const next = client.subscribe(topic, subName, (m) => {
      rest.push(m);
      if (rest.length === 4) gotRest.resolve();
    });
    await gotRest.promise;
    await next.close();
    assert.deepEqual(
      rest.map((m) => m.seq).sort(),
      [1, 2, 3, 4, 5, 6].filter((s) => !started.includes(s)),
    );
  });

  test("close() with a timeout nacks a hung handler's message and aborts its signal", async () => {
    const topic = uniqueName("hung");
    const subName = uniqueName("sub");
    await client.publish(topic, { data: "hang" });
    const inHandler = deferred();
    const aborted = deferred<unknown>();
    const sub = client.subscribe(
      topic,
      subName,
      async (m) => {
        m.signal.addEventListener("abort", () => aborted.resolve(m.signal.reason));
        inHandler.resolve();
        await new Promise(() => {}); // never finishes
      },
      { start: "earliest" },
    );
    await inHandler.promise;
    const t0 = Date.now();
    await sub.close({ timeoutMs: 200 });
    const took = Date.now() - t0;
    assert.ok(took >= 190 && took < 3000, `close took ${took} ms`);
    const reason = await aborted.promise;
    assert.ok(reason instanceof NerveBusError && reason.code === StatusCode.CANCELLED);
    const again = deferred<number>();
    const next = client.subscribe(topic, subName, (m) => again.resolve(m.attempt));
    assert.equal(await again.promise, 2, "redelivered at once as attempt 2");
    await next.close();
  });

  test("an AbortSignal stops the subscriber gracefully", async () => {
    const topic = uniqueName("signal");
    const controller = new AbortController();
    const got = deferred();
    const sub = client.subscribe(topic, uniqueName("sub"), () => got.resolve(), {
      signal: controller.signal,
    });
    await sub.ready;
    await client.publish(topic, { data: "x" });
    await got.promise;
    controller.abort();
    await sub.done;
    const stats = await client.admin.stats(topic);
    assert.equal(stats.subscriptions[0]!.consumers.length, 0);
    assert.equal(stats.subscriptions[0]!.backlog, 0);
  });

  test("a non-retryable stream error stops the subscriber with a NerveBusError", async () => {
    const errors: NerveBusError[] = [];
    const sub = client.subscribe("bad topic!", "s", () => {}, { onError: (e) => errors.push(e) });
    await assert.rejects(sub.ready, { code: StatusCode.INVALID_ARGUMENT });
    await assert.rejects(
      sub.done,
      (err: unknown) => err instanceof NerveBusError && err.code === StatusCode.INVALID_ARGUMENT,
    );
    assert.equal(errors.length, 1);
    await sub.close();
    // A bad window is refused by the broker too.
    const bad = client.subscribe(uniqueName("t"), "s", () => {}, { maxBytes: 10 });
    await assert.rejects(bad.done, { code: StatusCode.INVALID_ARGUMENT });
    assert.throws(() => client.subscribe("t", "s", () => {}, { maxMessages: 0 }), RangeError);
  });

  test("the subscription's ordering delivers one message per key at a time", async () => {
    const topic = uniqueName("ordered");
    const subName = uniqueName("sub");
    await client.admin.createTopic(topic);
    await client.admin.createSubscription(topic, subName, { ordering: true, start: "earliest" });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        client.publish(topic, { data: String(i), orderingKey: `k${i % 2}` }),
      ),
    );
    const active = new Set<string>();
    const order: Record<string, number[]> = { k0: [], k1: [] };
    let overlap = false;
    let count = 0;
    const done = deferred();
    const sub = client.subscribe(
      topic,
      subName,
      async (m) => {
        if (active.has(m.orderingKey)) overlap = true;
        active.add(m.orderingKey);
        await delay(5);
        order[m.orderingKey]!.push(Number(m.text()));
        active.delete(m.orderingKey);
        if (++count === 20) done.resolve();
      },
      { concurrency: 10 },
    );
    await done.promise;
    await sub.close();
    assert.equal(overlap, false);
    assert.deepEqual(order.k0, [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    assert.deepEqual(order.k1, [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  });
});

describe("messages() async iterator", () => {
  test("yields messages to settle by hand; break sends pending acks and ends the stream", async () => {
    const topic = uniqueName("iter");
    const subName = uniqueName("sub");
    await publishMany(topic, 5);
    const got: string[] = [];
    for await (const msg of client.messages(topic, subName, { start: "earliest" })) {
      got.push(msg.text());
      msg.ack();
      if (got.length === 5) break;
    }
    assert.deepEqual(got, ["m0", "m1", "m2", "m3", "m4"]);
    await eventually(async () => (await backlog(topic, subName)) === 0, 5000, "acks applied");
    const stats = await client.admin.stats(topic);
    assert.equal(stats.subscriptions[0]!.consumers.length, 0, "stream closed");
  });

  test("unsettled messages fill the window; nack redelivers; a signal ends the loop", async () => {
    const topic = uniqueName("iter-window");
    const subName = uniqueName("sub");
    await publishMany(topic, 4);
    const controller = new AbortController();
    const stream = client.messages(topic, subName, {
      start: "earliest",
      maxMessages: 2,
      signal: controller.signal,
    });
    const held: ReceivedMessage[] = [];
    const seen: string[] = [];
    const loop = (async () => {
      for await (const msg of stream) {
        seen.push(`${msg.text()}#${msg.attempt}`);
        if (msg.text() === "m0" && msg.attempt === 1) msg.nack(0);
        else held.push(msg);
      }
    })();
    await eventually(() => held.length === 2, 5000, "two held");
    await delay(300);
    assert.equal(held.length, 2, "no more than the window while unsettled");
    for (const m of held.splice(0)) m.ack();
    await eventually(() => held.length === 2, 5000, "two more");
    assert.ok(seen.includes("m0#1") && seen.includes("m0#2"), `seen ${seen}`);
    for (const m of held.splice(0)) m.ack();
    controller.abort();
    await loop;
    await eventually(async () => (await backlog(topic, subName)) === 0, 5000, "all acked");
  });
});
