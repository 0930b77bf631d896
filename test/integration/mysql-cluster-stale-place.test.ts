import assert from "node:assert/strict";
import { test } from "node:test";
import type mysql from "mysql2/promise";
import {
  LogMessage,
  type NerveBusError,
  type Store,
  type SubscriptionConfig,
  type TopicConfig,
  type TopicRecord,
} from "../../src/core/index.js";
import { openStore } from "../../src/store/index.js";
import type { PlacementCatalog } from "../../src/store/multi/placement-catalog.js";
import type { Logger } from "../../src/telemetry/index.js";
import { type TestMysql, useTestMysql } from "../support/mariadb.js";
import { storedRows } from "../support/stored-rows.js";

const testMysql = useTestMysql();

const TOPIC_CONFIG: TopicConfig = {
  retentionMs: 0,
  retentionBytes: 0,
  dedupWindowMs: 60_000,
  ephemeral: false,
};
const SUBSCRIPTION: SubscriptionConfig = {
  ackDeadlineMs: 10_000,
  minBackoffMs: 100,
  maxBackoffMs: 1000,
  maxDeliveryAttempts: 0,
  deadLetterTopic: "",
  ordering: false,
  paused: false,
};

/** `HOST:PORT/DATABASE` of a database URL: how placement rows and move-topic name it. */
function keyOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port}${u.pathname}`;
}

function message(seq: number, data: string): LogMessage {
  return LogMessage.of(seq, Date.now(), Buffer.from(data), {
    attributes: {},
    orderingKey: "",
    messageId: "",
  });
}

async function topicNames(server: TestMysql, url: string): Promise<string[]> {
  const rows = await server.query<mysql.RowDataPacket[]>(url, "SELECT name FROM nb_topics ORDER BY name");
  return rows.map((r) => String(r.name));
}

/** One broker's store over both databases, and what it logged. */
interface Broker {
  readonly store: Store;
  readonly logged: { msg: string; fields: Record<string, unknown> }[];
}

/**
 * Two brokers' stores of one cluster over databases `a` and `b`. A lease renewed every 30 s of
 * a minute: no heartbeat runs within a test, so nothing but a broker's own calls refreshes the
 * places it has cached (as for a broker whose next heartbeat is still to come).
 */
async function twoBrokers(a: string, b: string): Promise<[Broker, Broker]> {
  const open = async (address: string): Promise<Broker> => {
    const logged: Broker["logged"] = [];
    const log: Logger = (_level, msg, fields) => logged.push({ msg, fields: fields ?? {} });
    const store = await openStore(`${a},${b}`, {
      mysqlPoolSize: 4,
      mysqlAllowUnsafeDurability: false,
      log,
      cluster: true,
      leaseTtlMs: 60_000,
      leaseRenewMs: 30_000,
    });
    await store.cluster!.advertise(address);
    return { store, logged };
  };
  return [await open("127.0.0.1:1"), await open("127.0.0.1:2")];
}

const payloads = (ms: readonly { data: Uint8Array }[]) => ms.map((m) => Buffer.from(m.data).toString());

const LATER = { data: Buffer.from("later"), attributes: {}, orderingKey: "", messageId: "", deliverAt: 0 };

/**
 * A topic "sp" in database `a` with messages 1–2 and a scheduled one, written by A (so A has
 * cached its place), handed over to B (as drain or rebalancing do), and written by B (3).
 * Returns the topic as A knows it.
 */
async function handedOver(A: Broker, B: Broker): Promise<TopicRecord> {
  const made = (await A.store.ensureTopic("sp", { shards: 2, config: TOPIC_CONFIG }))!.topic;
  await A.store.claimTopic(made);
  await A.store.insertMessages(made, 0, [message(1, "one"), message(2, "two")]);
  await A.store.scheduleMessages(made, [{ dueAt: 1, message: LATER }]);
  await A.store.ensureSubscription(made, "s", SUBSCRIPTION);
  await A.store.savePointers(made, [{ subscription: "s", ptr: 1, state: null }]);
  assert.deepEqual(payloads(await A.store.readMessages(made, 1, 10)), ["one", "two"]);
  await A.store.releaseTopic!(made);
  const topic = (await B.store.ensureTopic("sp", null))!.topic;
  await B.store.claimTopic(topic);
  await B.store.insertMessages(topic, 1, [message(3, "three")]);
  return made;
}

/** The databases, the two brokers and the topic `handedOver` made, for one test. */
interface Setup {
  readonly server: TestMysql;
  readonly a: string;
  readonly b: string;
  readonly A: Broker;
  readonly B: Broker;
  readonly topic: TopicRecord;
}

/** Runs `fn` on databases `NAME_a` and `NAME_b` with two brokers and a handed-over topic; closes both. */
async function withHandedOver(name: string, fn: (s: Setup) => Promise<void>): Promise<void> {
  const server = testMysql();
  const [a, b] = [await server.database(`${name}_a`), await server.database(`${name}_b`)];
  const [A, B] = await twoBrokers(a, b);
  try {
    await fn({ server, a, b, A, B, topic: await handedOver(A, B) });
  } finally {
    await A.store.close();
    await B.store.close();
  }
}

test("mysql --cluster over two databases: a broker whose cached place of a topic is stale (another broker moved the topic and dropped the old copy's tables) gets UNAVAILABLE, never INTERNAL, from each call that reads the old tables; its retry reads the new copy, and its publish after claiming lands there at the next seq", () =>
  withHandedOver("sp_tables", async ({ server, a, b, A, B, topic }) => {
    // The calls a broker makes that read the topic's own tables (a lagging subscription's
    // reads, dedup and priority rebuilds, retention, the schedule, stats), each with what
    // its retry reads from the new copy. The topic moves before each, so each finds A's
    // cached place stale.
    const calls: [string, (s: Store) => Promise<unknown>, unknown][] = [
      ["readMessages", (s) => s.readMessages(topic, 1, 10).then(payloads), ["one", "two", "three"]],
      [
        "readRuns",
        (s) => s.readRuns!(topic, 1, 10).then((rs) => rs!.map((r) => [r.firstSeq, r.lastSeq])),
        [
          [1, 2],
          [3, 3],
        ],
      ],
      ["readIds", (s) => s.readIds(topic, 1, 10).then((r) => r.map((x) => x.seq)), [1, 2, 3]],
      ["firstSeq", (s) => s.firstSeq(topic), 1],
      ["averageRowBytes", (s) => s.averageRowBytes(topic, 10).then((n) => n > 0), true],
      [
        "dueMessages",
        (s) => s.dueMessages(topic, 10, 10).then((r) => payloads(r.map((x) => x.message))),
        ["later"],
      ],
      ["scheduleSummary", (s) => s.scheduleSummary(topic), { count: 1, nextDueAt: 1 }],
    ];
    let from = a;
    for (const [name, call, want] of calls) {
      const to = from === a ? b : a;
      assert.equal((await B.store.placement!.moveTopic("sp", keyOf(to))).moved, true);
      assert.deepEqual(await topicNames(server, from), [], "the old copy's tables are dropped");
      A.logged.length = 0;
      await assert.rejects(call(A.store), (err: NerveBusError) => {
        assert.equal(err.code, "unavailable", `${name}: ${err.code} ${err.message}`);
        assert.equal(
          err.message,
          `topic sp was moved from ${keyOf(from)} to ${keyOf(to)} by another broker; retry`,
        );
        return true;
      });
      assert.deepEqual(
        A.logged.filter((l) => l.msg.includes("cached place was stale")).map((l) => l.fields),
        [{ topic: "sp", from: keyOf(from), to: keyOf(to) }],
        `${name}: A dropped its stale place and found the new one`,
      );
      // The old copy's tables are gone: an answer can only come from the new copy.
      assert.deepEqual(await call(A.store), want, `${name}: the retry reads the new copy`);
      from = to;
    }

    // A publish through A: refused while B owns the topic (UNAVAILABLE, the client retries);
    // once B hands it back, A's claim and write go to where the topic is now.
    await assert.rejects(A.store.insertMessages(topic, 0, [message(4, "four")]), (err: NerveBusError) => {
      assert.equal(err.code, "unavailable", err.message);
      return true;
    });
    await B.store.releaseTopic!((await B.store.ensureTopic("sp", null))!.topic);
    await A.store.claimTopic(topic);
    await A.store.insertMessages(topic, 0, [message(4, "four")]);
    const other = from === a ? b : a;
    assert.deepEqual(await topicNames(server, other), []);
    assert.deepEqual(
      [...(await storedRows(server, from, "sp"))].sort((x, y) => x[0] - y[0]),
      [
        [1, "one"],
        [2, "two"],
        [3, "three"],
        [4, "four"],
      ],
    );
  }));

test("mysql --cluster over two databases: a broker that does not own a topic and has its place cached reads its subscriptions, pointers and schema where the topic is now, never 'none' from the copy its owner moved away and dropped (nor from a new copy made on the same database)", () =>
  withHandedOver("sp_catalog", async ({ a, b, A, B, topic }) => {
    const owned = (await B.store.ensureTopic("sp", null))!.topic;
    await B.store.ensureSubscription(owned, "t", SUBSCRIPTION);
    await B.store.savePointers(owned, [
      { subscription: "s", ptr: 2, state: null },
      { subscription: "t", ptr: 3, state: null },
    ]);
    const schema = { messageType: "shop.v1.Order", descriptorSet: Buffer.from([10, 0]), updatedAt: 5 };
    await B.store.saveTopicSchema(owned, schema);
    // Reads of rows kept in tables every topic shares: a dropped copy has none, and the read
    // fails nothing. The deletion of a topic (is it a dead-letter topic?) and the limits on
    // subscriptions ask this of topics the broker does not own.
    const calls: [string, (s: Store) => Promise<unknown>, unknown][] = [
      ["listSubscriptions", (s) => s.listSubscriptions(topic).then((r) => r.map((x) => x.name)), ["s", "t"]],
      ["loadPointer", (s) => s.loadPointer(topic, "t").then((p) => p?.ptr), 3],
      ["lowestPointer", (s) => s.lowestPointer(topic), 2],
      [
        "ensureSubscription",
        (s) => s.ensureSubscription(topic, "t", null).then((r) => r?.subscription.name),
        "t",
      ],
      ["loadTopicSchema", (s) => s.loadTopicSchema(topic).then((r) => r?.messageType), "shop.v1.Order"],
    ];
    let from = a;
    const check = async (name: string, call: (s: Store) => Promise<unknown>, want: unknown, to: string) => {
      A.logged.length = 0;
      assert.deepEqual(await call(A.store), want, `${name}: read where the topic is now`);
      assert.deepEqual(
        A.logged.filter((l) => l.msg.includes("cached place was stale")).map((l) => l.fields),
        [{ topic: "sp", from: keyOf(from), to: keyOf(to) }],
        `${name}: A dropped its stale place and found the new one`,
      );
    };
    for (const [name, call, want] of calls) {
      const to = from === a ? b : a;
      assert.equal((await B.store.placement!.moveTopic("sp", keyOf(to))).moved, true);
      await check(name, call, want, to);
      from = to;
    }
    // Moved away and back while A looked elsewhere: the database A has cached holds the topic
    // again, in a new copy; the one A knew is gone.
    const away = from === a ? b : a;
    await B.store.placement!.moveTopic("sp", keyOf(away));
    await B.store.placement!.moveTopic("sp", keyOf(from));
    const [name, call, want] = calls[0]!;
    await check(`${name} after a move away and back`, call, want, from);
    // The owner reads its own topic without a second look (nothing was stale for it).
    B.logged.length = 0;
    assert.deepEqual(await calls[0]![1](B.store), ["s", "t"]);
    assert.deepEqual(B.logged, []);
  }));

test("mysql --cluster over two databases: a broker taking over a topic it has cached loads the settings its owner gave it since, after a handover and after a move", () =>
  withHandedOver("sp_config", async ({ server, a, b, A, B, topic }) => {
    const changed = async (retentionMs: number) => {
      const owned = (await B.store.ensureTopic("sp", null))!.topic;
      await B.store.claimTopic(owned);
      await B.store.updateTopicConfig(owned, { ...TOPIC_CONFIG, retentionMs });
    };
    const handBack = async () => {
      await B.store.releaseTopic!((await B.store.ensureTopic("sp", null))!.topic);
      const loaded = (await A.store.ensureTopic("sp", null))!.topic;
      await A.store.claimTopic(loaded);
      return loaded;
    };

    // Handed over to B, changed by B, handed back: A loads B's settings.
    await changed(60_000);
    let loaded = await handBack();
    assert.equal(loaded.config.retentionMs, 60_000, "after a handover");
    assert.equal(loaded.id, topic.id);
    await A.store.releaseTopic!(loaded);

    // The same with a move to the other database in between.
    await changed(120_000);
    assert.equal((await B.store.placement!.moveTopic("sp", keyOf(b))).moved, true);
    loaded = await handBack();
    assert.equal(loaded.config.retentionMs, 120_000, "after a move");
    await A.store.insertMessages(loaded, 0, [message(4, "four")]);
    assert.deepEqual(
      [...(await storedRows(server, b, "sp"))].sort((x, y) => x[0] - y[0]).map(([, v]) => v),
      ["one", "two", "three", "four"],
    );
    assert.deepEqual(await topicNames(server, a), []);
  }));

// Defect: a claim whose topic its owner moved (switch and drop of the old copy) between the
// claimer's look at the catalog and its lease take made lease and fence rows for the dropped
// copy and held them: the claimer counted as the topic's owner (cluster view, owns) though the
// copy was gone, and its load failed later on the missing tables.
test("mysql --cluster over two databases: a claim that lands after its look at the catalog while the owner moves the topic and drops the old copy takes nothing of the dropped copy: it answers UNAVAILABLE, and the retry claims the topic where it is now", () =>
  withHandedOver("sp_claim", async ({ server, a, b, A, B, topic }) => {
    const [old] = await server.query<mysql.RowDataPacket[]>(a, "SELECT id FROM nb_topics WHERE name = 'sp'");
    // A's claim reads the catalog (the topic is in `a`, as A has cached); B's move lands
    // right after that read, before A takes the lease.
    const catalog = (A.store as unknown as { catalog: PlacementCatalog }).catalog;
    const get = catalog.get.bind(catalog);
    catalog.get = async (name) => {
      const row = await get(name);
      catalog.get = get;
      assert.equal((await B.store.placement!.moveTopic("sp", keyOf(b))).moved, true);
      return row;
    };
    await assert.rejects(A.store.claimTopic(topic), (err: NerveBusError) => {
      assert.equal(err.code, "unavailable", err.message);
      assert.equal(
        err.message,
        `topic sp was moved from ${keyOf(a)} to ${keyOf(b)} by another broker; retry`,
      );
      return true;
    });
    assert.equal(catalog.get, get, "the move landed inside the claim");
    const unit = `topic:${old!.id}`;
    assert.deepEqual(await server.query(a, "SELECT owner FROM nb_lease WHERE unit = ?", [unit]), []);
    assert.deepEqual(await server.query(a, "SELECT epoch FROM nb_fence WHERE topic_id = ?", [old!.id]), []);
    assert.equal(A.store.cluster!.owns("sp"), false);
    const self = A.store.cluster!.view().members.find((m) => m.id === A.store.cluster!.self);
    assert.deepEqual(self?.topics ?? [], [], "A shows no topic as its own");

    // While B owns the topic A's retry is refused; once B hands it over, it claims the new copy.
    const now = (await A.store.ensureTopic("sp", null))!.topic;
    await assert.rejects(A.store.claimTopic(now), (err: NerveBusError) => err.code === "unavailable");
    await B.store.releaseTopic!((await B.store.ensureTopic("sp", null))!.topic);
    await A.store.claimTopic(now);
    assert.equal(A.store.cluster!.owns("sp"), true);
    await A.store.insertMessages(now, 0, [message(4, "four")]);
    assert.deepEqual(
      [...(await storedRows(server, b, "sp"))].sort((x, y) => x[0] - y[0]).map(([, v]) => v),
      ["one", "two", "three", "four"],
    );
  }));
