import assert from "node:assert/strict";
import { test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import { chromium } from "playwright-core";
import { LogMessage, type NerveBusError, type TopicConfig } from "../../src/core/index.js";
import { MysqlStore, openStore } from "../../src/store/index.js";
import { CHROMIUM, CHROMIUM_ARGS, openPage, skip } from "../dashboard/browser.js";
import { quietLog, startBroker, TestClient } from "../support/broker.js";
import { liveOwners, retrying } from "../support/cluster.js";
import { startTestMysql, type TestMysql, useTestMysql } from "../support/mariadb.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";
import { storedRows } from "../support/stored-rows.js";

const testMysql = useTestMysql();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const TTL_MS = 2000;
const CLUSTER_ARGS = ["--cluster", "--lease-ttl-ms", String(TTL_MS), "--lease-renew-ms", "500"];

const STORE_OPTIONS = { mysqlPoolSize: 4, mysqlAllowUnsafeDurability: false, log: quietLog };
const TOPIC_CONFIG: TopicConfig = {
  retentionMs: 0,
  retentionBytes: 0,
  dedupWindowMs: 60_000,
  ephemeral: false,
};

function message(seq: number, data: string): LogMessage {
  return LogMessage.of(seq, Date.now(), Buffer.from(data), {
    attributes: {},
    orderingKey: "",
    messageId: "",
  });
}

/** `HOST:PORT/DATABASE` of a database URL: how placement rows and move-topic name it. */
function keyOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port}${u.pathname}`;
}

async function placement(server: TestMysql, catalogUrl: string): Promise<Map<string, string>> {
  const rows = await server.query<mysql.RowDataPacket[]>(catalogUrl, "SELECT name, host FROM nb_placement");
  return new Map(rows.map((r) => [String(r.name), String(r.host)]));
}

async function topicNames(server: TestMysql, url: string): Promise<string[]> {
  const rows = await server.query<mysql.RowDataPacket[]>(url, "SELECT name FROM nb_topics ORDER BY name");
  return rows.map((r) => String(r.name));
}

/** Two throwaway databases on two MariaDB servers, and `n` brokers of one cluster over both. */
async function twoDatabaseCluster(name: string, n: number) {
  const first = testMysql();
  const second = await startTestMysql();
  const a = await first.database(`${name}_a`);
  const b = await second.database(`${name}_b`);
  const brokers: BrokerProcess[] = [];
  const clients: TestClient[] = [];
  const close = async () => {
    for (const c of clients) c.close();
    for (const p of brokers) {
      p.child.kill("SIGCONT");
      p.child.kill("SIGKILL");
    }
    await Promise.all(brokers.map((p) => p.exited));
    await second.stop();
  };
  try {
    for (let i = 0; i < n; i++) brokers.push(await spawnBroker(["--store", `${a},${b}`, ...CLUSTER_ARGS]));
  } catch (err) {
    await close();
    throw err;
  }
  for (const p of brokers) clients.push(new TestClient(p.address));
  // Every broker has seen the others' heartbeats in both databases.
  await sleep(1500);
  /** Each topic's live owner, from the lease rows of both databases. */
  const owners = async () => new Map([...(await liveOwners(first, a)), ...(await liveOwners(second, b))]);
  return { first, second, a, b, brokers, clients, owners, close };
}

test("mysql --cluster over two databases: topics on both, each leased in its own database, any broker answers; locate, cluster view, drain-broker", async () => {
  const c = await twoDatabaseCluster("ch_basic", 3);
  try {
    const topics = Array.from({ length: 6 }, (_, i) => `t${i}`);
    for (const t of topics) await retrying(() => c.clients[0]!.publish(t, ["first"]));
    const placed = await placement(c.first, c.a);
    const onA = topics.filter((t) => placed.get(t) === keyOf(c.a));
    const onB = topics.filter((t) => placed.get(t) === keyOf(c.b));
    assert.ok(onA.length > 0 && onB.length > 0, `topics on both databases: ${[...placed]}`);
    assert.deepEqual(await topicNames(c.first, c.a), onA);
    assert.deepEqual(await topicNames(c.second, c.b), onB);
    // A topic's lease row is in its own database (where its writes prove it), never in the other.
    assert.deepEqual([...(await liveOwners(c.first, c.a)).keys()].sort(), onA);
    assert.deepEqual([...(await liveOwners(c.second, c.b)).keys()].sort(), onB);

    // Any broker answers: a publish through each lands in the topic's one log.
    for (const t of topics) for (const client of c.clients) await retrying(() => client.publish(t, [`via`]));
    for (const t of topics) {
      const stored = await storedRows(onA.includes(t) ? c.first : c.second, onA.includes(t) ? c.a : c.b, t);
      assert.deepEqual([...stored.keys()].sort(), [1, 2, 3, 4], `${t}: one log, four messages`);
    }
    const owned = await c.owners();
    for (const t of topics) {
      const located = (await c.clients[1]!.adminCall("locateTopic", { topic: t })).address;
      const owner = owned.get(t)!;
      assert.equal(located === "" ? c.brokers[1]!.address : located, owner, `locate ${t}`);
    }
    // Each broker reads the lease rows at its heartbeat: the newest topic shows within one.
    const shown = async () => {
      const v = await c.clients[2]!.adminCall("getCluster", {});
      return { v, names: v.brokers.flatMap((m) => m.topics.map((t) => t.name)).sort() };
    };
    let { v: view, names } = await shown();
    for (let i = 0; i < 50 && names.length < topics.length; i++) {
      await sleep(200);
      ({ v: view, names } = await shown());
    }
    assert.equal(view.brokers.filter((m) => m.live).length, 3, "three live brokers, each once");
    assert.deepEqual(names, topics, "the cluster view shows the topics of both databases");

    // Drain broker 0: its topics, on either database, go to the others; calls through it go on.
    const drained = c.brokers[0]!.address;
    const had = topics.filter((t) => owned.get(t) === drained);
    const res = await c.clients[0]!.adminCall("drainBroker", {});
    assert.equal(res.topics, had.length);
    for (const t of topics) await retrying(() => c.clients[0]!.publish(t, ["after drain"]));
    const after = await c.owners();
    for (const t of topics) assert.notEqual(after.get(t), drained, `${t} is not on the drained broker`);
  } finally {
    await c.close();
  }
});

test("mysql --cluster over two databases: a topic moved while its old owner is frozen; the woken owner confirms nothing on either database", async () => {
  const c = await twoDatabaseCluster("ch_move", 2);
  try {
    await retrying(() => c.clients[0]!.adminCall("createTopic", { topic: { name: "mv", shards: 2 } }));
    assert.equal((await placement(c.first, c.a)).get("mv"), keyOf(c.a));
    await retrying(() => c.clients[0]!.publish("mv", ["m-first"]));
    const ownerAddress = (await c.owners()).get("mv")!;
    const o = c.brokers.findIndex((p) => p.address === ownerAddress);
    const p = 1 - o;

    /** seq → payload of every confirmed publish, through either broker. */
    const confirmed = new Map<number, string>([[1, "m-first"]]);
    const errors: number[] = [];
    let running = true;
    let n = 0;
    const publishThrough = async (i: number) => {
      while (running) {
        const payloads = Array.from({ length: 5 }, () => `m-${i}-${n++}`);
        try {
          // A long deadline: the pack sent to the owner just before it froze waits for it.
          const res = await c.clients[i]!.publish("mv", payloads, 15_000);
          for (const [k, x] of payloads.entries()) confirmed.set(Number(res.firstSeq) + k, x);
        } catch (err) {
          errors.push((err as grpc.ServiceError).code);
          await sleep(50);
        }
      }
    };
    const work = [publishThrough(o), publishThrough(p)];
    await sleep(1000);

    // The owner freezes; the other broker takes the topic, then moves it to the second database.
    c.brokers[o]!.child.kill("SIGSTOP");
    for (;;) {
      if ((await liveOwners(c.first, c.a)).get("mv") === c.brokers[p]!.address) break;
      await sleep(100);
    }
    const moved = await retrying(() =>
      c.clients[p]!.adminCall("moveTopic", { topic: "mv", toHost: keyOf(c.b) }),
    );
    assert.equal(moved.moved, true);
    assert.equal((await placement(c.first, c.a)).get("mv"), keyOf(c.b));

    // The old owner wakes with its lease of the old copy and packs in flight: they fail, and
    // its calls go to the new owner.
    c.brokers[o]!.child.kill("SIGCONT");
    const woke = confirmed.size;
    await sleep(3000);
    running = false;
    await Promise.all(work);
    assert.ok(confirmed.size > woke, "publishing went on after the old owner woke");
    for (const code of errors) assert.ok([4, 14].includes(code), `publish failed with ${code}`);
    assert.ok(await retrying(() => c.clients[o]!.publish("mv", ["through the woken broker"])));

    assert.deepEqual(await topicNames(c.first, c.a), [], "the old copy is dropped");
    const stored = await storedRows(c.second, c.b, "mv");
    for (const [seq, payload] of confirmed) assert.equal(stored.get(seq), payload, `confirmed seq ${seq}`);
    assert.equal((await c.owners()).get("mv"), c.brokers[p]!.address);
  } finally {
    await c.close();
  }
});

test("mysql --cluster over two databases: one database frozen fails its own topics only (UNAVAILABLE), the others go on; back, it serves again; the status page shows ownership per database", async () => {
  const c = await twoDatabaseCluster("ch_down", 2);
  // A third broker in process, for its status API and page.
  const third = await startBroker(`${c.a},${c.b}`, { cluster: true, leaseTtlMs: TTL_MS, leaseRenewMs: 500 });
  try {
    await retrying(() => c.clients[0]!.publish("near", ["n"]));
    await retrying(() => c.clients[0]!.publish("far", ["f"]));
    await retrying(() => c.clients[0]!.publish("third", ["t"]));
    const placed = await placement(c.first, c.a);
    assert.equal(placed.get("near"), keyOf(c.a));
    assert.equal(placed.get("far"), keyOf(c.b));
    assert.equal(placed.get("third"), keyOf(c.a));

    c.second.pause!();
    try {
      // Past the lease bound: nothing of the frozen database's topics can be confirmed now.
      await sleep(TTL_MS + 500);
      for (const client of c.clients) {
        await client.publish("near", ["n2"], 5000);
        await assert.rejects(client.publish("far", ["f2"], 5000), (err: grpc.ServiceError) => {
          assert.ok([4, 14].includes(err.code), `far: ${err.code} ${err.details}`);
          return true;
        });
      }
      await retrying(() => c.clients[1]!.publish("new", ["x"], 5000));
      // The second database holds fewer topics, but its lease is not current: not a candidate.
      assert.equal((await placement(c.first, c.a)).get("new"), keyOf(c.a), "new topics avoid it");
      await showsOwnershipPerDatabase(third.httpAddress!, [keyOf(c.a), keyOf(c.b)]);
    } finally {
      c.second.resume!();
    }
    for (const client of c.clients) await retrying(() => client.publish("far", ["f3"], 5000), 30_000);
    const far = await storedRows(c.second, c.b, "far");
    const inOrder = [...far].sort((x, y) => x[0] - y[0]).map(([, v]) => v);
    // A publish that timed out while the database was frozen may have landed after all.
    assert.deepEqual(
      inOrder.filter((v) => v !== "f2"),
      ["f", "f3", "f3"],
    );
    // A topic that falls to the in-process broker, so it owns one at least.
    const own = new TestClient(third.address);
    let falls = "";
    try {
      for (let i = 0; i < 50 && falls === ""; i++) {
        const located = (await own.adminCall("locateTopic", { topic: `own-${i}` })).address;
        if (located === "" || located === third.address) falls = `own-${i}`;
      }
      assert.notEqual(falls, "", "some topic falls to the in-process broker");
      await retrying(() => own.publish(falls, ["o"]));
    } finally {
      own.close();
    }
    await ownsPerDatabaseMetric(third, [
      [c.first, c.a],
      [c.second, c.b],
    ]);
  } finally {
    await third.stop();
    await c.close();
  }
});

/**
 * The broker's nervebus_store_database_topics_owned{database} agrees with the lease rows of each
 * database (read until it does: a topic may change hands between the two reads), and names
 * the databases by HOST:PORT/DATABASE, never by their URLs' credentials.
 */
async function ownsPerDatabaseMetric(
  bus: { address: string; httpAddress?: string },
  databases: [TestMysql, string][],
): Promise<void> {
  let last = "";
  for (let i = 0; i < 50; i++) {
    const text = await (await fetch(`http://${bus.httpAddress}/metrics`)).text();
    assert.ok(!/nervebus_store_database_topics_owned\{[^}]*(@|mysql:|password)/.test(text), text);
    const want: string[] = [];
    for (const [server, url] of databases) {
      const mine = [...(await liveOwners(server, url)).values()].filter((a) => a === bus.address).length;
      want.push(`${keyOf(url)} ${mine}`);
    }
    const got = [
      ...text.matchAll(/^nervebus_store_database_topics_owned\{[^}]*database="([^"]*)"[^}]*\} (\d+)$/gm),
    ].map((m) => `${m[1]} ${m[2]}`);
    last = `${JSON.stringify(got)} vs lease rows ${JSON.stringify(want)}`;
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    await sleep(200);
  }
  assert.fail(`topics owned per database: ${last}`);
}

/** While the second of `keys` is frozen: /api/status and the page show which database is owned. */
async function showsOwnershipPerDatabase(http: string, keys: string[]): Promise<void> {
  const status = (await (await fetch(`http://${http}/api/status`)).json()) as {
    broker: { ownership: { valid: boolean; databases: { key: string; valid: boolean }[] } };
  };
  assert.deepEqual(
    status.broker.ownership.databases.map((d) => [d.key, d.valid]),
    [
      [keys[0], true],
      [keys[1], false],
    ],
  );
  if (skip) return;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const { page, problems } = await openPage(browser, `http://${http}/`);
    await page.locator("#store").filter({ hasText: "databases" }).waitFor();
    const line = (await page.locator("#store").textContent()) ?? "";
    assert.match(line, /owner of 1 of 2 databases/, line);
    assert.ok(line.includes(`${keys[0]}: owner epoch`), line);
    const second = line.slice(line.indexOf(`${keys[1]}: owner epoch`));
    assert.match(second, /^[^·]*, LEASE NOT VALID/, line);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
}

test("mysql --cluster over two databases: a database out of reach when a broker starts joins its cluster once it answers", async () => {
  const c = await twoDatabaseCluster("ch_late", 1);
  try {
    await retrying(() => c.clients[0]!.publish("near", ["n"]));
    await retrying(() => c.clients[0]!.publish("far", ["f"]));
    assert.equal((await placement(c.first, c.a)).get("far"), keyOf(c.b));
    c.clients[0]!.close();
    c.brokers[0]!.child.kill("SIGKILL");
    await c.brokers[0]!.exited;
    c.second.pause!();
    let late: BrokerProcess;
    try {
      late = await spawnBroker(["--store", `${c.a},${c.b}`, ...CLUSTER_ARGS]);
      c.brokers.push(late);
      c.clients.push(new TestClient(late.address));
      await c.clients.at(-1)!.publish("near", ["n2"], 10_000);
    } finally {
      c.second.resume!();
    }
    // Opened in the background, the second database's cluster gets the broker's address and
    // hooks: the dead broker's topic there is adopted and served.
    await retrying(() => c.clients.at(-1)!.publish("far", ["f2"], 5000), 30_000);
    assert.equal((await c.owners()).get("far"), late.address);
  } finally {
    await c.close();
  }
});

test("mysql --cluster over two databases: a mover whose lease lapsed unnoticed cannot switch the topic away from its new owner's writes", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("ch_seal_a"), await server.database("ch_seal_b")];
  const open = (ttl: number, renew: number) =>
    openStore(`${a},${b}`, { ...STORE_OPTIONS, cluster: true, leaseTtlMs: ttl, leaseRenewMs: renew });
  // The stale mover: a lease it believes valid for a minute, and no heartbeat to tell it otherwise
  // (as a broker frozen past its lease and woken just before its next heartbeat).
  const stale = await open(60_000, 30_000);
  const fresh = await open(2000, 500);
  try {
    await stale.cluster!.advertise("127.0.0.1:1");
    await fresh.cluster!.advertise("127.0.0.1:2");
    const made = await stale.ensureTopic("mv", { shards: 1, config: TOPIC_CONFIG });
    const topic = made!.topic;
    await stale.claimTopic(topic);
    await stale.insertMessages(topic, 0, [message(1, "stale-1")]);

    // Its lease lapses as the others see it; the fresh broker takes the topic and writes.
    await server.query(a, "UPDATE nb_lease SET expires_at = 0 WHERE unit LIKE 'topic:%'");
    await fresh.claimTopic(topic);
    await fresh.insertMessages(topic, 0, [message(2, "fresh-2")]);

    // The stale broker's move copies, then cannot seal the old copy: it stays where it is.
    await assert.rejects(stale.placement!.moveTopic("mv", keyOf(b)), (err: NerveBusError) => {
      assert.equal(err.code, "unavailable", err.message);
      return true;
    });
    assert.equal((await placement(server, a)).get("mv"), keyOf(a), "the topic was not switched");
    await assert.rejects(stale.insertMessages(topic, 0, [message(3, "stale-3")]));
    await fresh.insertMessages(topic, 0, [message(3, "fresh-3")]);
    assert.deepEqual(
      [...(await storedRows(server, a, "mv"))].sort((x, y) => x[0] - y[0]),
      [
        [1, "stale-1"],
        [2, "fresh-2"],
        [3, "fresh-3"],
      ],
    );

    // The owner moves it; the stale broker, its placement cached, claims the new copy and is
    // refused (the new owner holds it), and never writes the sealed old one.
    const moved = await fresh.placement!.moveTopic("mv", keyOf(b));
    assert.equal(moved.moved, true);
    await assert.rejects(stale.claimTopic(topic), (err: NerveBusError) => err.code === "unavailable");
    await assert.rejects(stale.insertMessages(topic, 0, [message(4, "stale-4")]));
    await fresh.insertMessages(topic, 0, [message(4, "fresh-4")]);
    assert.deepEqual(await topicNames(server, a), []);
    assert.deepEqual(
      [...(await storedRows(server, b, "mv"))].sort((x, y) => x[0] - y[0]).map(([, v]) => v),
      ["stale-1", "fresh-2", "fresh-3", "fresh-4"],
    );
  } finally {
    await stale.close();
    await fresh.close();
  }
});

test("mysql --cluster over two databases: a move made under a claim the mover lost and took again meanwhile is refused at its seal, and the topic stays with what the owner in between wrote; a move under the new claim carries it to the new copy", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("ch_reclaim_a"), await server.database("ch_reclaim_b")];
  // No heartbeat within the test: each broker learns of a loss from its own writes, as one
  // woken from a freeze does.
  const open = () =>
    openStore(`${a},${b}`, { ...STORE_OPTIONS, cluster: true, leaseTtlMs: 60_000, leaseRenewMs: 30_000 });
  const mover = await open();
  const other = await open();
  const pointer = async (url: string) => {
    const rows = await server.query<mysql.RowDataPacket[]>(
      url,
      "SELECT ptr FROM nb_pointers WHERE subscription = 's'",
    );
    return rows.map((r) => Number(r.ptr));
  };
  try {
    await mover.cluster!.advertise("127.0.0.1:1");
    await other.cluster!.advertise("127.0.0.1:2");
    const topic = (await mover.ensureTopic("re", { shards: 1, config: TOPIC_CONFIG }))!.topic;
    const first = await mover.claimTopic(topic);
    await mover.insertMessages(first, 0, [message(1, "one")]);
    await mover.savePointers(first, [{ subscription: "s", ptr: 1, state: null }]);

    // The mover's lease lapses; the other broker takes the topic, writes and acks, and hands it back.
    await server.query(a, "UPDATE nb_lease SET expires_at = 0 WHERE unit LIKE 'topic:%'");
    const byOther = await other.claimTopic((await other.ensureTopic("re", null))!.topic);
    await other.insertMessages(byOther, 0, [message(2, "two")]);
    await other.savePointers(byOther, [{ subscription: "s", ptr: 2, state: null }]);
    await assert.rejects(mover.insertMessages(first, 0, [message(2, "stale")]), /no longer owns topic re/);
    await other.releaseTopic!(byOther);
    const second = await mover.claimTopic(topic);
    assert.notEqual(second.tenure, first.tenure);
    assert.equal(mover.serves!(first), false, "the ended claim delivers nothing");
    assert.equal(mover.serves!(second), true);
    // A handover of the ended claim (its topic unloaded late) releases nothing of the new one.
    await mover.releaseTopic!(first);
    assert.equal(mover.serves!(second), true);
    await assert.rejects(mover.deleteTopic(first), /earlier claim of it by this broker/);

    // The move begun under the first claim copies, then cannot seal: nothing switches.
    await assert.rejects(mover.placement!.moveTopic("re", keyOf(b), first.tenure), (err: NerveBusError) => {
      assert.equal(err.code, "unavailable", err.message);
      assert.match(err.message, /earlier claim of it by this broker/);
      return true;
    });
    assert.equal((await placement(server, a)).get("re"), keyOf(a), "the topic was not switched");
    assert.deepEqual(await pointer(a), [2], "the acks of the owner in between stand");

    // Under the claim it holds now the move goes through, and that claim writes on in the new copy.
    assert.equal((await mover.placement!.moveTopic("re", keyOf(b), second.tenure)).moved, true);
    await mover.insertMessages(second, 0, [message(3, "three")]);
    await mover.savePointers(second, [{ subscription: "s", ptr: 3, state: null }]);
    await assert.rejects(mover.insertMessages(first, 0, [message(4, "stale")]), /earlier claim/);
    assert.deepEqual(
      [...(await storedRows(server, b, "re"))].sort((x, y) => x[0] - y[0]).map(([, v]) => v),
      ["one", "two", "three"],
    );
    assert.deepEqual(await pointer(b), [3]);
  } finally {
    await mover.close();
    await other.close();
  }
});

test("mysql --cluster over two databases: a move whose broker died between its seal and its switch is finished by the next broker that looks the topic up", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("ch_finish_a"), await server.database("ch_finish_b")];
  const open = () =>
    openStore(`${a},${b}`, { ...STORE_OPTIONS, cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500 });
  const mover = await open();
  await mover.cluster!.advertise("127.0.0.1:1");
  const made = await mover.ensureTopic("fin", { shards: 1, config: TOPIC_CONFIG });
  await mover.claimTopic(made!.topic);
  await mover.insertMessages(made!.topic, 0, [message(1, "one"), message(2, "two")]);
  await mover.placement!.moveTopic("fin", keyOf(b));
  await mover.close();

  // What the broker's death leaves: the old copy sealed (naming the new one), the catalog row
  // not switched yet. (The old copy here is empty, so reading it by mistake would show.)
  const old = await MysqlStore.open({
    ...STORE_OPTIONS,
    url: a,
    poolSize: 2,
    allowUnsafeDurability: false,
    cluster: true,
  });
  const copy = await old.ensureTopic("fin", { shards: 1, config: TOPIC_CONFIG });
  await old.close();
  await server.query(
    a,
    `INSERT INTO nb_lease (unit, owner, epoch, expires_at, acquired_at, lock_server)
       VALUES (?, ?, ?, ?, 0, '')`,
    [`topic:${copy!.topic.id}`, `moved:${keyOf(b)}`, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  );
  await server.query(a, "UPDATE nb_placement SET host = ? WHERE name = 'fin'", [keyOf(a)]);

  const next = await open();
  try {
    await next.cluster!.advertise("127.0.0.1:2");
    const found = await next.ensureTopic("fin", null);
    assert.equal((await placement(server, a)).get("fin"), keyOf(b), "the switch is finished");
    await next.claimTopic(found!.topic);
    await next.insertMessages(found!.topic, 0, [message(3, "three")]);
    const read = await next.readMessages(found!.topic, 1, 10);
    assert.deepEqual(
      read.map((m) => Buffer.from(m.data).toString()),
      ["one", "two", "three"],
    );
  } finally {
    await next.close();
  }
});

test("mysql --cluster, one and two databases: a deleter whose lease lapsed unnoticed gets UNAVAILABLE and the topic stays with its new owner", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("ch_del_a"), await server.database("ch_del_b")];
  const one = await server.database("ch_del_one");
  for (const urls of [`${a},${b}`, one]) {
    const open = (ttl: number, renew: number) =>
      openStore(urls, { ...STORE_OPTIONS, cluster: true, leaseTtlMs: ttl, leaseRenewMs: renew });
    // As in the stale mover's test: a lease the stale broker believes valid for a minute.
    const stale = await open(60_000, 30_000);
    const fresh = await open(2000, 500);
    const first = urls.split(",")[0]!;
    try {
      await stale.cluster!.advertise("127.0.0.1:1");
      await fresh.cluster!.advertise("127.0.0.1:2");
      const topic = (await stale.ensureTopic("del", { shards: 1, config: TOPIC_CONFIG }))!.topic;
      await stale.claimTopic(topic);
      await stale.insertMessages(topic, 0, [message(1, "stale-1")]);
      await server.query(first, "UPDATE nb_lease SET expires_at = 0 WHERE unit LIKE 'topic:%'");
      await fresh.claimTopic(topic);

      await assert.rejects(stale.deleteTopic(topic), (err: NerveBusError) => {
        assert.equal(err.code, "unavailable", err.message);
        return true;
      });
      assert.deepEqual(await topicNames(server, first), ["del"], "the topic's rows stay");
      if (urls !== one) assert.equal((await placement(server, a)).get("del"), keyOf(a), "and its placement");
      const again = await fresh.ensureTopic("del", null);
      assert.ok(again !== null, "the new owner still finds the topic");
      await fresh.insertMessages(again.topic, 0, [message(2, "fresh-2")]);
      assert.deepEqual(
        (await fresh.readMessages(again.topic, 1, 10)).map((m) => Buffer.from(m.data).toString()),
        ["stale-1", "fresh-2"],
      );

      // The owner's delete goes through, placement row included.
      await fresh.deleteTopic(again.topic);
      assert.deepEqual(await topicNames(server, first), []);
      if (urls !== one) assert.equal((await placement(server, a)).get("del"), undefined);
      assert.equal(await fresh.ensureTopic("del", null), null);
    } finally {
      await stale.close();
      await fresh.close();
    }
  }
});
