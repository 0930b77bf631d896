import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { NerveBusClient, NerveBusError, type ReceivedMessage, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import {
  deferred,
  delay,
  eventually,
  packRecorder,
  uniqueName,
  unreachableBroker,
} from "./support/helpers.js";

let broker: TestBroker;

before(async () => {
  broker = await TestBroker.start();
});

after(async () => {
  await broker.dispose();
});

/** Receives `count` messages of a new subscription starting at the earliest message. */
async function receiveAll(client: NerveBusClient, topic: string, count: number): Promise<ReceivedMessage[]> {
  const got: ReceivedMessage[] = [];
  const done = deferred();
  const sub = client.subscribe(
    topic,
    uniqueName("sub"),
    (m) => {
      got.push(m);
      if (got.length === count) done.resolve();
    },
    { start: "earliest", concurrency: 1 },
  );
  const timer = setTimeout(() => done.reject(new Error(`got ${got.length} of ${count} messages`)), 10_000);
  try {
    await done.promise;
  } finally {
    clearTimeout(timer);
    await sub.close();
  }
  return got;
}

describe("publisher", () => {
  test("publishes payloads and attributes that a subscriber receives unchanged, in order", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("payloads");
      const binary = new Uint8Array([0, 1, 2, 255, 254, 0]);
      const results = [];
      results.push(
        await client.publish(topic, { data: "hello", attributes: { kind: "text", "x-y": "ü ✓" } }),
      );
      results.push(await client.publish(topic, { data: binary, messageId: "my-id-1" }));
      results.push(await client.publish(topic, { data: new Uint8Array(0), orderingKey: "k" }));
      assert.deepEqual(
        results.map((r) => [r.seq, r.outcome]),
        [
          [1, "appended"],
          [2, "appended"],
          [3, "appended"],
        ],
      );
      for (const r of results) assert.match(r.traceId, /^[0-9a-f]{32}$/);
      assert.equal(results[1]!.messageId, "my-id-1");
      assert.match(results[0]!.messageId, /^[0-9a-f-]{36}$/, "a message id is assigned when none is given");

      const got = await receiveAll(client, topic, 3);
      assert.deepEqual(
        got.map((m) => m.seq),
        [1, 2, 3],
      );
      assert.equal(got[0]!.text(), "hello");
      assert.equal(got[0]!.attributes.kind, "text");
      assert.equal(got[0]!.attributes["x-y"], "ü ✓");
      assert.deepEqual([...got[1]!.data], [...binary]);
      assert.equal(got[1]!.messageId, "my-id-1");
      assert.equal(got[2]!.data.byteLength, 0);
      assert.equal(got[2]!.orderingKey, "k");
      assert.equal(got[0]!.traceId, results[0]!.traceId);
      assert.equal(got[0]!.attempt, 1);
      assert.ok(Math.abs(got[0]!.publishTime.getTime() - Date.now()) < 60_000);
    } finally {
      await client.close();
    }
  });

  test("many concurrent publishes keep their call order on one topic when sequentially batched", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("order");
      const publisher = client.publisher({ maxInflightBatches: 1, maxBatchMessages: 7 });
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => publisher.publish(topic, { data: String(i) })),
      );
      assert.deepEqual(
        results.map((r) => r.seq),
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      const got = await receiveAll(client, topic, 50);
      assert.deepEqual(
        got.map((m) => m.text()),
        Array.from({ length: 50 }, (_, i) => String(i)),
      );
    } finally {
      await client.close();
    }
  });

  test("batches by count: 10 messages with maxBatchMessages 4 go as packs of 4, 4 and 2", async () => {
    const { interceptor, calls } = packRecorder();
    const client = new NerveBusClient(broker.address, { interceptors: [interceptor] });
    try {
      const topic = uniqueName("count");
      const publisher = client.publisher({ maxBatchMessages: 4, lingerMs: 300 });
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => publisher.publish(topic, { data: `m${i}` })),
      );
      assert.deepEqual(
        calls.map((c) => c.count),
        [4, 4, 2],
      );
      // The two full packs went at once; the last one waited for the linger time.
      assert.ok(
        calls[1]!.startedAt - started < 250,
        `second pack started after ${calls[1]!.startedAt - started} ms`,
      );
      assert.ok(
        calls[2]!.startedAt - started >= 280,
        `last pack started after ${calls[2]!.startedAt - started} ms`,
      );
      assert.deepEqual(new Set(results.map((r) => r.seq)).size, 10);
    } finally {
      await client.close();
    }
  });

  test("batches by linger time: messages published within the linger go in one pack", async () => {
    const { interceptor, calls } = packRecorder();
    const client = new NerveBusClient(broker.address, { interceptors: [interceptor] });
    try {
      const topic = uniqueName("linger");
      const publisher = client.publisher({ lingerMs: 200 });
      const started = Date.now();
      const first = publisher.publish(topic, { data: "a" });
      await delay(50);
      const second = publisher.publish(topic, { data: "b" });
      await delay(50);
      const third = publisher.publish(topic, { data: "c" });
      const results = await Promise.all([first, second, third]);
      const elapsed = Date.now() - started;
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.count, 3);
      assert.ok(elapsed >= 190, `resolved after ${elapsed} ms, before the linger time`);
      assert.deepEqual(
        results.map((r) => r.seq),
        [1, 2, 3],
      );
    } finally {
      await client.close();
    }
  });

  test("batches by bytes: a pack never exceeds maxBatchBytes", async () => {
    const { interceptor, calls } = packRecorder();
    const client = new NerveBusClient(broker.address, { interceptors: [interceptor] });
    try {
      const topic = uniqueName("bytes");
      const publisher = client.publisher({ maxBatchBytes: 1000, lingerMs: 50, autoMessageId: false });
      await Promise.all(Array.from({ length: 7 }, () => publisher.publish(topic, { data: "x".repeat(300) })));
      assert.deepEqual(
        calls.map((c) => c.count),
        [3, 3, 1],
      );
    } finally {
      await client.close();
    }
  });

  test("ordering keys: a key's batches go out one at a time, and its messages keep call order", async () => {
    const { interceptor, calls } = packRecorder();
    const client = new NerveBusClient(broker.address, { interceptors: [interceptor] });
    try {
      const topic = uniqueName("keys");
      const publisher = client.publisher({ maxBatchMessages: 3, lingerMs: 0, maxInflightBatches: 4 });
      const keys = ["a", "b", "c", ""];
      const sent: { key: string; n: number; promise: Promise<{ seq: number }> }[] = [];
      for (let n = 0; n < 60; n++) {
        const key = keys[n % 4 === 3 ? 3 : Math.floor(n / 7) % 3]!;
        sent.push({ key, n, promise: publisher.publish(topic, { data: String(n), orderingKey: key }) });
        if (n % 10 === 9) await delay(1);
      }
      const seqs = await Promise.all(sent.map((s) => s.promise));
      for (const key of ["a", "b", "c"]) {
        const keySeqs = sent.flatMap((s, i) => (s.key === key ? [seqs[i]!.seq] : []));
        assert.deepEqual(
          keySeqs,
          [...keySeqs].sort((x, y) => x - y),
          `seqs of key ${key} follow call order`,
        );
      }
      // No two packs holding the same key were in flight at the same time.
      for (const x of calls) {
        for (const y of calls) {
          if (x === y || ![...x.keys].some((k) => y.keys.has(k))) continue;
          const overlap = x.startedAt < y.endedAt! && y.startedAt < x.endedAt!;
          assert.ok(
            !overlap || x.startedAt === y.endedAt || y.startedAt === x.endedAt,
            "packs sharing a key overlapped",
          );
        }
      }
      assert.ok(calls.length >= 20, `expected many packs, got ${calls.length}`);
    } finally {
      await client.close();
    }
  });

  // A CANCELLED the client did not cause is what a restarting broker's RST_STREAM gave: an
  // unknown outcome, like UNAVAILABLE.
  for (const lostAs of [StatusCode.UNAVAILABLE, StatusCode.CANCELLED]) {
    test(`a retried pack keeps its message ids, so a response lost as ${StatusCode[lostAs]} does not append twice`, async () => {
      const { interceptor, calls } = packRecorder(1, lostAs);
      const client = new NerveBusClient(broker.address, { interceptors: [interceptor] });
      try {
        const topic = uniqueName("retry");
        const publisher = client.publisher({ retry: { initialMs: 20 } });
        const results = await Promise.all([
          publisher.publish(topic, { data: "x" }),
          publisher.publish(topic, { data: "y" }),
        ]);
        assert.equal(calls.length, 2, "one failed attempt, one retry");
        assert.equal(calls[0]!.code, lostAs);
        assert.deepEqual(
          results.map((r) => [r.seq, r.outcome]),
          [
            [1, "duplicate"],
            [2, "duplicate"],
          ],
        );
        const stats = await client.admin.stats(topic);
        assert.equal(stats.topic.lastSeq, 2, "appended once");
      } finally {
        await client.close();
      }
    });
  }

  test("explicit message ids deduplicate; delayed messages are scheduled", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("dedup");
      const a = await client.publish(topic, { data: "a", messageId: "same" });
      const b = await client.publish(topic, { data: "a again", messageId: "same" });
      assert.equal(a.outcome, "appended");
      assert.deepEqual([b.outcome, b.seq], ["duplicate", a.seq]);
      const later = await client.publish(topic, { data: "later", delay: 300 });
      const at = await client.publish(topic, { data: "at", deliverAt: new Date(Date.now() + 300) });
      assert.deepEqual([later.outcome, later.seq, at.outcome], ["scheduled", 0, "scheduled"]);
      const got = await receiveAll(client, topic, 3);
      assert.deepEqual(got.map((m) => m.text()).sort(), ["a", "at", "later"]);
    } finally {
      await client.close();
    }
  });

  test("flush() sends buffered messages at once; close() flushes and then refuses", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("flush");
      const publisher = client.publisher({ lingerMs: 60_000 });
      const p = publisher.publish(topic, { data: "1" });
      const started = Date.now();
      await publisher.flush();
      assert.ok(Date.now() - started < 5000);
      assert.equal((await p).seq, 1);
      const q = publisher.publish(topic, { data: "2" });
      await publisher.close();
      assert.equal((await q).seq, 2);
      await assert.rejects(publisher.publish(topic, { data: "3" }), (err: unknown) => {
        assert.ok(err instanceof NerveBusError);
        assert.equal(err.code, StatusCode.FAILED_PRECONDITION);
        return true;
      });
      // The client's own publisher flushes on client.close().
      const r = client.publish(topic, { data: "4" });
      await client.close();
      assert.equal((await r).seq, 3);
    } finally {
      await client.close();
    }
  });

  test("aborting a queued publish removes it from its batch", async () => {
    const { interceptor, calls } = packRecorder();
    const client = new NerveBusClient(broker.address, { interceptors: [interceptor] });
    try {
      const topic = uniqueName("abort");
      const publisher = client.publisher({ lingerMs: 100 });
      const controller = new AbortController();
      const kept = publisher.publish(topic, { data: "kept" });
      const dropped = publisher.publish(topic, { data: "dropped" }, { signal: controller.signal });
      controller.abort(new Error("changed my mind"));
      await assert.rejects(dropped, /changed my mind/);
      assert.equal((await kept).seq, 1);
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.count, 1);
      const already = new AbortController();
      already.abort();
      await assert.rejects(publisher.publish(topic, { data: "never" }, { signal: already.signal }), {
        name: "AbortError",
      });
    } finally {
      await client.close();
    }
  });

  test("bad input surfaces as NerveBusError INVALID_ARGUMENT, and only for the bad message", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      await assert.rejects(client.publish("bad topic!", { data: "x" }), (err: unknown) => {
        assert.ok(err instanceof NerveBusError);
        assert.equal(err.code, StatusCode.INVALID_ARGUMENT);
        assert.equal(err.codeName, "INVALID_ARGUMENT");
        assert.match(err.details, /topic/);
        return true;
      });
      const topic = uniqueName("bad");
      const publisher = client.publisher({ lingerMs: 50 });
      const good1 = publisher.publish(topic, { data: "ok 1" });
      const bad = publisher.publish(topic, { data: "x", attributes: { "nervebus-reserved": "1" } });
      const good2 = publisher.publish(topic, { data: "ok 2" });
      await assert.rejects(bad, (err: unknown) => {
        assert.ok(err instanceof NerveBusError);
        assert.equal(err.code, StatusCode.INVALID_ARGUMENT);
        assert.match(err.details, /^message\.attributes: .*nervebus-/);
        return true;
      });
      assert.deepEqual([(await good1).seq, (await good2).seq], [1, 2]);
      await assert.rejects(client.publish(topic, { data: "x", delay: 10, deliverAt: Date.now() }), {
        code: StatusCode.INVALID_ARGUMENT,
      });
      await assert.rejects(client.publish(topic, { data: "x", delay: -5 }), {
        code: StatusCode.INVALID_ARGUMENT,
      });
    } finally {
      await client.close();
    }
  });

  test("close({ cancel: true }) fails a pack being retried with its own CANCELLED, not retried", async () => {
    const { interceptor, calls } = packRecorder();
    // A broker that cannot be reached: every attempt fails with UNAVAILABLE and is retried.
    const nobody = await unreachableBroker();
    const client = new NerveBusClient(nobody.address, { interceptors: [interceptor] });
    try {
      const publisher = client.publisher({ retry: { initialMs: 20 } });
      const published = publisher.publish(uniqueName("cancel"), { data: "x" });
      await eventually(() => calls.length >= 2);
      await publisher.close({ cancel: true });
      await assert.rejects(published, { code: StatusCode.CANCELLED, details: "publisher closed" });
    } finally {
      await client.close();
      await nobody.close();
    }
  });

  test("after a keyed message fails, the key is paused until resumeOrderingKey()", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("paused");
      const publisher = client.publisher({ lingerMs: 20 });
      const bad = publisher.publish(topic, {
        data: "x",
        orderingKey: "k",
        attributes: { "nervebus-x": "1" },
      });
      const behind = publisher.publish(topic, { data: "y", orderingKey: "k" });
      const other = publisher.publish(topic, { data: "z", orderingKey: "other" });
      await assert.rejects(bad, { code: StatusCode.INVALID_ARGUMENT });
      await assert.rejects(behind, { code: StatusCode.FAILED_PRECONDITION });
      assert.equal((await other).outcome, "appended");
      await assert.rejects(publisher.publish(topic, { data: "w", orderingKey: "k" }), {
        code: StatusCode.FAILED_PRECONDITION,
      });
      publisher.resumeOrderingKey(topic, "k");
      assert.equal((await publisher.publish(topic, { data: "v", orderingKey: "k" })).outcome, "appended");
      await eventually(() => publisher.pending === 0);
    } finally {
      await client.close();
    }
  });
});
