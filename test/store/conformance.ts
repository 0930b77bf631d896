import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type LogFormat,
  LogMessage,
  type PointerRecord,
  type Store,
  type TopicConfig,
  type TopicRecord,
} from "../../src/core/index.js";

const CONFIG: TopicConfig = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };
const shards = (n: number, format: LogFormat = 2) => ({ shards: n, config: CONFIG, format });

/** How a conformance run opens a store: a fresh database per test, reopenable by URL. */
export interface StoreFactory {
  /** A URL for a new, empty database named after the test. */
  fresh(name: string): Promise<string>;
  open(url: string): Promise<Store>;
}

const TRACEPARENT = `00-${"ab".repeat(16)}-${"cd".repeat(8)}-01`;

function row(
  seq: number,
  text = `m${seq}`,
  publishTime = 1_000 + seq,
  attributes: Record<string, string> = { traceparent: TRACEPARENT, k: `v${seq}` },
): LogMessage {
  return LogMessage.of(seq, publishTime, Buffer.from(text), {
    attributes,
    orderingKey: seq % 2 ? "odd" : "",
    messageId: `id-${seq}`,
  });
}

async function insertAll(store: Store, topic: TopicRecord, seqs: number[]) {
  for (let shard = 0; shard < topic.shards; shard++) {
    const rows = seqs.filter((s) => s % topic.shards === shard).map((s) => row(s));
    if (rows.length > 0) await store.insertMessages(topic, shard, rows);
  }
}

/** The behaviour every Store must have; run once per backend. */
/** A subscription's settings, as the tests that make subscriptions use them. */
const SUBSCRIPTION = {
  ackDeadlineMs: 1000,
  minBackoffMs: 1,
  maxBackoffMs: 2,
  maxDeliveryAttempts: 0,
  deadLetterTopic: "",
  ordering: false,
  paused: false,
};

export function storeConformance(kind: string, factory: StoreFactory): void {
  const withStore = (name: string, fn: (store: Store, url: string) => Promise<void>) =>
    test(`${kind} store: ${name}`, async () => {
      const url = await factory.fresh(`${kind}_${name}`);
      const store = await factory.open(url);
      try {
        await fn(store, url);
      } finally {
        await store.close();
      }
    });

  withStore("topics are created once and found again", async (store) => {
    assert.equal(await store.ensureTopic("t.a", null), null, "no topic without create");
    const a = await store.ensureTopic("t.a", shards(3));
    assert.equal(a?.created, true);
    assert.equal(a?.topic.shards, 3);
    const again = await store.ensureTopic("t.a", shards(5));
    assert.equal(again?.created, false);
    assert.deepEqual(again?.topic, a?.topic);
    await store.ensureTopic("t.b", shards(1));
    assert.deepEqual(
      (await store.listTopics()).map((t) => t.name),
      ["t.a", "t.b"],
    );
  });

  for (const format of [1, 2] as const) {
    withStore(
      `messages round-trip across shards in seq order, and re-inserts are harmless (format ${format})`,
      async (store) => {
        const { topic } = (await store.ensureTopic("rt", shards(4, format)))!;
        const seqs = Array.from({ length: 50 }, (_, i) => i + 1);
        await insertAll(store, topic, seqs);
        await insertAll(store, topic, [5, 6, 7]);
        const read = await store.readMessages(topic, 1, 50);
        assert.deepEqual(
          read.map((m) => m.seq),
          seqs,
        );
        const m7 = read[6]!;
        assert.equal(Buffer.from(m7.data).toString(), "m7");
        assert.deepEqual(m7.attributes, row(7).attributes);
        assert.equal(m7.orderingKey, "odd");
        assert.equal(m7.messageId, "id-7");
        assert.equal(m7.publishTime, 1007);
        assert.deepEqual(
          (await store.readMessages(topic, 10, 12)).map((m) => m.seq),
          [10, 11, 12],
        );
        assert.equal(await store.firstSeq(topic), 1);
        const ids = await store.readIds(topic, 19, 21);
        assert.deepEqual(ids, [
          { seq: 19, publishTime: 1019, messageId: "id-19", scheduleId: undefined },
          { seq: 20, publishTime: 1020, messageId: "id-20", scheduleId: undefined },
          { seq: 21, publishTime: 1021, messageId: "id-21", scheduleId: undefined },
        ]);
      },
    );

    withStore(`large payloads and empty ones survive (format ${format})`, async (store) => {
      const { topic } = (await store.ensureTopic("big", shards(2, format)))!;
      const big = Buffer.alloc(900 * 1024, 7);
      const r1 = row(1);
      await store.insertMessages(topic, 1, [new LogMessage(1, r1.publishTime, big, r1.meta)]);
      await store.insertMessages(topic, 0, [row(2, "", undefined, {})]);
      const [a, b] = await store.readMessages(topic, 1, 2);
      assert.equal(Buffer.compare(Buffer.from(a!.data), big), 0);
      assert.equal(b!.data.byteLength, 0);
      assert.deepEqual(b!.attributes, {});
    });

    withStore(
      `recoverTail keeps the contiguous run and deletes rows above the first gap (format ${format})`,
      async (store) => {
        const { topic } = (await store.ensureTopic("rec", shards(3, format)))!;
        await insertAll(store, topic, [1, 2, 3, 4, 5, 6, 8, 9, 11]);
        assert.equal(await store.recoverTail(topic, 2), 6);
        assert.deepEqual(
          (await store.readMessages(topic, 1, 20)).map((m) => m.seq),
          [1, 2, 3, 4, 5, 6],
        );
        assert.equal(await store.recoverTail(topic, 6), 6);
      },
    );

    withStore(
      `old messages are deleted in bounded chunks; sizes are sampled (format ${format})`,
      async (store) => {
        const { topic } = (await store.ensureTopic("ret", shards(2, format)))!;
        await insertAll(
          store,
          topic,
          Array.from({ length: 40 }, (_, i) => i + 1),
        );
        assert.ok((await store.averageRowBytes(topic, 10)) > 3);
        assert.equal(await store.deleteMessagesThrough(topic, 30, 5), 10, "at most 5 per shard");
        assert.equal(await store.firstSeq(topic), 11);
        for (let n = 1; n > 0; ) {
          n = await store.deleteMessagesThrough(topic, 30, 5);
          assert.ok(n <= 10);
        }
        assert.equal(await store.firstSeq(topic), 31);
      },
    );
  }

  for (const format of [1, 2] as const) {
    withStore(
      `what is already at a seq is kept only if it is the same message; other content is an error (format ${format})`,
      async (store) => {
        const { topic } = (await store.ensureTopic("dup", shards(1, format)))!;
        await store.insertMessages(topic, 0, [row(4, "four")]);
        await store.insertMessages(topic, 0, [row(4, "four")]); // a retry after a lost commit
        await assert.rejects(store.insertMessages(topic, 0, [row(4, "FOUR")]), /already holds a different/);
        assert.deepEqual(
          (await store.readMessages(topic, 1, 10)).map((m) => Buffer.from(m.data).toString()),
          ["four"],
        );
      },
    );
  }

  withStore(
    "format 2: runs in any shard are read back in seq order across run and shard boundaries",
    async (store) => {
      const { topic } = (await store.ensureTopic("runs", shards(3)))!;
      assert.equal(topic.format, 2);
      const run = (from: number, to: number) =>
        Array.from({ length: to - from + 1 }, (_, i) => row(from + i));
      await store.insertMessages(topic, 2, run(1, 5));
      await store.insertMessages(topic, 0, run(6, 10));
      await store.insertMessages(topic, 1, [...run(11, 12), ...run(14, 15)]); // two runs in one write
      assert.deepEqual(
        (await store.readMessages(topic, 3, 14)).map((m) => m.seq),
        [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14],
      );
      const [m4] = await store.readMessages(topic, 4, 4);
      assert.ok(m4!.record, "a message read from a run carries its stored record");
      assert.deepEqual(
        (await store.readIds(topic, 9, 11)).map((r) => r.messageId),
        ["id-9", "id-10", "id-11"],
      );
      assert.equal(await store.firstSeq(topic), 1);
      // Recovery keeps whole runs up to the first gap (13) and drops the run after it.
      assert.equal(await store.recoverTail(topic, 5), 12);
      assert.deepEqual((await store.readMessages(topic, 1, 20)).map((m) => m.seq).slice(-2), [11, 12]);
      // Retention deletes whole runs: through 7 leaves the run 6–10 whole.
      assert.equal(await store.deleteMessagesThrough(topic, 7, 100), 5);
      assert.equal(await store.firstSeq(topic), 6);
    },
  );

  withStore("a topic's schema is stored, replaced, cleared, and deleted with its topic", async (store) => {
    const t = (await store.ensureTopic("typed", shards(1)))!.topic;
    const other = (await store.ensureTopic("plain", shards(1)))!.topic;
    assert.equal(await store.loadTopicSchema(t), null);
    const v1 = { messageType: "shop.v1.Order", descriptorSet: new Uint8Array([1, 2, 3]), updatedAt: 1000 };
    await store.saveTopicSchema(t, v1);
    assert.deepEqual(await store.loadTopicSchema(t), v1);
    const big = new Uint8Array(1 << 20).fill(7);
    const v2 = { messageType: "shop.v2.Order", descriptorSet: big, updatedAt: 2000 };
    await store.saveTopicSchema(t, v2);
    assert.deepEqual(await store.loadTopicSchema(t), v2, "replaced");
    assert.equal(await store.loadTopicSchema(other), null, "per topic");
    await store.saveTopicSchema(t, null);
    assert.equal(await store.loadTopicSchema(t), null, "cleared");
    await store.saveTopicSchema(other, v1);
    await store.deleteTopic(other);
    assert.equal(await store.loadTopicSchema(other), null, "its row went with the topic");
  });

  withStore("pointers are upserted with their state", async (store) => {
    const { topic } = (await store.ensureTopic("ptr", shards(1)))!;
    assert.equal(await store.loadPointer(topic, "s"), null);
    await store.savePointers(topic, [
      { subscription: "", ptr: 10, state: null },
      { subscription: "s", ptr: 3, state: Buffer.from("abc") },
    ]);
    await store.savePointers(topic, [{ subscription: "s", ptr: 4, state: Buffer.from("xyz") }]);
    assert.equal((await store.loadPointer(topic, ""))?.ptr, 10);
    const s = await store.loadPointer(topic, "s");
    assert.equal(s?.ptr, 4);
    assert.equal(Buffer.from(s!.state!).toString(), "xyz");
    assert.equal(s?.deadLetters, undefined, "none stored yet");
  });

  withStore(
    "the lowest pointer is the lowest of the subscriptions' pointers, 0 while one has none",
    async (store) => {
      const { topic } = (await store.ensureTopic("lowest", shards(1)))!;
      const { topic: other } = (await store.ensureTopic("lowest-other", shards(1)))!;
      const config = SUBSCRIPTION;
      assert.equal(await store.lowestPointer(topic), 0, "no subscriptions");
      await store.ensureSubscription(topic, "a", config);
      await store.ensureSubscription(topic, "b", config);
      await store.ensureSubscription(other, "a", config);
      await store.savePointers(topic, [{ subscription: "a", ptr: 7, state: null }]);
      assert.equal(await store.lowestPointer(topic), 0, "b has no pointer yet");
      await store.savePointers(topic, [
        { subscription: "b", ptr: 5, state: Buffer.from("x") },
        // A pointer row of no subscription (none is made so today) does not count.
        { subscription: "gone", ptr: 1, state: null },
      ]);
      await store.savePointers(other, [{ subscription: "a", ptr: 2, state: null }]);
      assert.equal(await store.lowestPointer(topic), 5);
      assert.equal(await store.lowestPointer(other), 2, "per topic");
      await store.deleteSubscription(topic, "b");
      assert.equal(await store.lowestPointer(topic), 7, "a deleted subscription no longer counts");
    },
  );

  withStore("a pointer's dead letters are kept until a save carries new ones", async (store) => {
    const { topic } = (await store.ensureTopic("ptr-dead", shards(1)))!;
    const dead = (p: PointerRecord | null) =>
      p?.deadLetters === undefined ? undefined : Buffer.from(p.deadLetters).toString();
    await store.savePointers(topic, [
      { subscription: "s", ptr: 3, state: null, deadLetters: Buffer.from('[[2,2,"dlq"]]') },
      { subscription: "t", ptr: 1, state: null },
    ]);
    await store.savePointers(topic, [
      { subscription: "s", ptr: 5, state: null },
      { subscription: "t", ptr: 2, state: null, deadLetters: Buffer.from("[]") },
    ]);
    const s = await store.loadPointer(topic, "s");
    assert.equal(s?.ptr, 5);
    assert.equal(dead(s), '[[2,2,"dlq"]]', "a save without them leaves them");
    assert.equal(dead(await store.loadPointer(topic, "t")), "[]", "an empty log is stored as such");
  });

  withStore("subscriptions are created once", async (store) => {
    const { topic } = (await store.ensureTopic("subs", shards(1)))!;
    const sub = SUBSCRIPTION;
    assert.equal(await store.ensureSubscription(topic, "a", null), null);
    assert.equal((await store.ensureSubscription(topic, "a", sub))?.created, true);
    assert.equal((await store.ensureSubscription(topic, "a", sub))?.created, false);
    assert.deepEqual(
      (await store.listSubscriptions(topic)).map((s) => s.name),
      ["a"],
    );
  });

  withStore(
    "delayed messages wait in the schedule in due order and are removed once moved",
    async (store) => {
      const { topic } = (await store.ensureTopic("sched", shards(1)))!;
      const msg = (text: string, messageId = "") => ({
        data: Buffer.from(text),
        attributes: { a: text },
        orderingKey: "",
        messageId,
        deliverAt: 0,
      });
      const ids = await store.scheduleMessages(topic, [
        { dueAt: 3000, message: msg("late") },
        { dueAt: 1000, message: msg("early", "id-e") },
        { dueAt: 2000, message: msg("middle") },
      ]);
      assert.equal(new Set(ids).size, 3);
      assert.deepEqual(await store.scheduleSummary(topic), { count: 3, nextDueAt: 1000 });
      const due = await store.dueMessages(topic, 2500, 10);
      assert.deepEqual(
        due.map((d) => Buffer.from(d.message.data).toString()),
        ["early", "middle"],
      );
      assert.equal(due[0]!.id, ids[1]);
      assert.equal(due[0]!.message.messageId, "id-e");
      assert.deepEqual(due[0]!.message.attributes, { a: "early" });
      // The dedup index's rebuild pages through the ids, in id order.
      assert.deepEqual(await store.scheduledIds(topic, 0, 2), [
        { id: ids[0], messageId: "" },
        { id: ids[1], messageId: "id-e" },
      ]);
      assert.deepEqual(await store.scheduledIds(topic, ids[1]!, 2), [{ id: ids[2], messageId: "" }]);
      await store.deleteScheduled(
        topic,
        due.map((d) => d.id),
      );
      assert.deepEqual(await store.scheduleSummary(topic), { count: 1, nextDueAt: 3000 });
    },
  );

  withStore("settings are stored, updated, and deleted with their topic and subscriptions", async (store) => {
    const { topic } = (await store.ensureTopic("cfg", shards(2)))!;
    const updated = await store.updateTopicConfig(topic, { ...CONFIG, retentionMs: 5000 });
    assert.equal((await store.ensureTopic("cfg", null))?.topic.config.retentionMs, 5000);
    const sub = {
      ackDeadlineMs: 2000,
      minBackoffMs: 1,
      maxBackoffMs: 2,
      maxDeliveryAttempts: 3,
      deadLetterTopic: "dlq",
      ordering: true,
      paused: false,
    };
    await store.ensureSubscription(updated, "s", sub);
    await store.updateSubscriptionConfig(updated, "s", { ...sub, paused: true });
    assert.equal((await store.ensureSubscription(updated, "s", null))?.subscription.config.paused, true);
    await store.savePointers(updated, [{ subscription: "s", ptr: 1, state: null }]);
    await store.deleteSubscription(updated, "s");
    assert.equal(await store.ensureSubscription(updated, "s", null), null);
    assert.equal(await store.loadPointer(updated, "s"), null);
    await store.ensureSubscription(updated, "t", sub);
    await insertAll(store, updated, [1, 2, 3]);
    await store.deleteTopic(updated);
    assert.equal(await store.ensureTopic("cfg", null), null);
    const again = (await store.ensureTopic("cfg", shards(2)))!;
    assert.deepEqual(
      await store.readMessages(again.topic, 1, 100),
      [],
      "a new topic of the same name starts empty",
    );
    assert.deepEqual(await store.listSubscriptions(again.topic), []);
  });

  withStore(
    "a second broker on the same database is refused with FAILED_PRECONDITION",
    async (_store, url) => {
      await assert.rejects(factory.open(url), (err: Error & { code?: string }) => {
        assert.equal(err.code, "failed_precondition");
        assert.match(err.message, /another broker/);
        return true;
      });
    },
  );
}
