import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import { MessageResult_Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { LogMessage } from "../../src/core/index.js";
import type { NerveBus } from "../../src/nervebus.js";
import { MysqlStore, openStore } from "../../src/store/index.js";
import { quietLog, startBroker, TestClient } from "../support/broker.js";
import { startTestMysql, type TestMysql, useTestMysql } from "../support/mariadb.js";
import { runCli } from "../support/process.js";

const testMysql = useTestMysql();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `HOST:PORT/DATABASE` of a database URL: how placement rows and move-topic name it. */
function keyOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port}${u.pathname}`;
}

async function placement(server: TestMysql, catalogUrl: string): Promise<Record<string, string>> {
  const rows = await server.query<mysql.RowDataPacket[]>(catalogUrl, "SELECT name, host FROM nb_placement");
  return Object.fromEntries(rows.map((r) => [String(r.name), String(r.host)]));
}

async function topicNames(server: TestMysql, url: string): Promise<string[]> {
  const rows = await server.query<mysql.RowDataPacket[]>(url, "SELECT name FROM nb_topics ORDER BY name");
  return rows.map((r) => String(r.name));
}

/** Publishes packs of 10 to `topic` until stopped; returns seq → payload of every confirmed message. */
function publishLoop(client: TestClient, topic: string, prefix: string) {
  const confirmed = new Map<number, string>();
  const failures: number[] = [];
  let running = true;
  let n = 0;
  const done = (async () => {
    while (running) {
      const payloads = Array.from({ length: 10 }, () => `${prefix}-${n++}`);
      try {
        const res = await client.publish(topic, payloads, 20_000);
        for (const [i, p] of payloads.entries()) confirmed.set(Number(res.firstSeq) + i, p);
      } catch (err) {
        failures.push((err as grpc.ServiceError).code);
      }
    }
  })();
  return {
    confirmed,
    failures,
    async stop() {
      running = false;
      await done;
    },
  };
}

const STORE_OPTIONS = {
  mysqlPoolSize: 4,
  mysqlAllowUnsafeDurability: false,
  log: quietLog,
};

test("--store with several URLs: each is checked before anything connects, the bad one named", async () => {
  await assert.rejects(
    openStore("mysql://u:secret@127.0.0.1:1/a,mysql://u:secret@127.0.0.1:1/", STORE_OPTIONS),
    (err: Error) =>
      /URL 2 of 2, "mysql:\/\/u:\*\*\*@127\.0\.0\.1:1\/", names no database/.test(err.message) &&
      !err.message.includes("secret"),
  );
  await assert.rejects(
    openStore("mysql://u:p@127.0.0.1:1/a,sqlite:./x.db", STORE_OPTIONS),
    /URL 2 of 2, "sqlite:.\/x.db", is SQLite, which holds one database only/,
  );
  await assert.rejects(
    openStore("mysql://u:p@127.0.0.1:1/a, mysql://v:q@127.0.0.1:1/a", STORE_OPTIONS),
    /URL 2 of 2, .* names 127\.0\.0\.1:1\/a a second time/,
  );
});

test("new topics go to the database with the fewest; they stay put across restarts", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("hosts_place_a"), await server.database("hosts_place_b")];
  // A topic made before the second database was added: taken into the catalog where it is.
  const single = await startBroker(a);
  const first = new TestClient(single.address);
  await first.publish("old", ["o1", "o2"]);
  first.close();
  await single.stop();

  const store = `${a},${b}`;
  let bus = await startBroker(store);
  let client = new TestClient(bus.address);
  try {
    for (const t of ["t1", "t2", "t3"]) await client.publish(t, [`${t}-m`]);
    assert.deepEqual(await placement(server, a), {
      old: keyOf(a),
      t1: keyOf(b),
      t2: keyOf(a),
      t3: keyOf(b),
    });
    assert.deepEqual(await topicNames(server, a), ["old", "t2"]);
    assert.deepEqual(await topicNames(server, b), ["t1", "t3"]);
    client.close();
    await bus.stop();
    bus = await startBroker(store);
    client = new TestClient(bus.address);
    await client.publish("t1", ["t1-again"]);
    const s = client.receive("t1", "s", { from: "earliest" });
    await s.until(() => s.deliveries.length >= 2);
    assert.deepEqual(
      s.deliveries.map((d) => Buffer.from(d.data).toString()),
      ["t1-m", "t1-again"],
    );
    await s.end();
    const listed = await client.adminCall("listTopics", {});
    assert.deepEqual(
      listed.topics.map((t) => t.name),
      ["old", "t1", "t2", "t3"],
    );
    assert.deepEqual(await topicNames(server, b), ["t1", "t3"], "t1 stayed on the second database");
    const moveOnOne = await startBroker(await server.database("hosts_place_one"));
    const oneClient = new TestClient(moveOnOne.address);
    await oneClient.publish("x", ["x"]);
    await assert.rejects(
      oneClient.adminCall("moveTopic", { topic: "x", toHost: "127.0.0.1:1/y" }),
      (err: grpc.ServiceError) =>
        err.code === grpc.status.FAILED_PRECONDITION && /one database/.test(err.details),
    );
    oneClient.close();
    await moveOnOne.stop();
  } finally {
    client.close();
    await bus.stop();
  }
});

test("move-topic copies a topic to another database while it is used: nothing confirmed lost, nothing acked again", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("hosts_move_a"), await server.database("hosts_move_b")];
  const store = `${a},${b}`;
  let bus: NerveBus = await startBroker(store, { ackDeadlineMs: 60_000 });
  let client = new TestClient(bus.address);
  try {
    await client.adminCall("createTopic", { topic: { name: "mv", shards: 3 } });
    assert.equal((await placement(server, a)).mv, keyOf(a));
    const before = publishLoop(client, "mv", "before");
    while (before.confirmed.size < 300) await sleep(20);
    await before.stop();
    const dedup = await client.publish("mv", [{ data: Buffer.from("once"), messageId: "id-once" }]);
    const onceSeq = Number(dedup.firstSeq);
    before.confirmed.set(onceSeq, "once");
    await client.publish("mv", [{ data: Buffer.from("later"), delay: { seconds: 4n, nanos: 0 } }]);

    const s = client.receive("mv", "s", { from: "earliest", confirmAcks: true, maxMessages: 5000 });
    await s.until(() => s.deliveries.length >= before.confirmed.size);
    const acked = [...before.confirmed.keys()].filter((seq) => seq % 2 === 0 && seq <= 200);
    s.ack(acked);
    const confirmedAcks = () => s.responses.flatMap((r) => r.ackResults?.ackedSeqs ?? []).length;
    await s.until(() => confirmedAcks() >= acked.length, 20_000, "ack confirmations");

    // A subscription with no stream during the move: only its stored state can carry its acks.
    const cold = client.receive("mv", "cold", { from: "earliest", confirmAcks: true });
    await cold.until(() => cold.deliveries.length >= 50);
    cold.ack(cold.deliveries.slice(0, 50).map((d) => d.seq));
    await cold.until(
      () => cold.responses.flatMap((r) => r.ackResults?.ackedSeqs ?? []).length >= 50,
      20_000,
      "cold ack confirmations",
    );
    const coldAcked = new Set(cold.deliveries.slice(0, 50).map((d) => Number(d.seq)));
    await cold.end();

    // Publishing goes on during the move: the packs that arrive while the tail is copied wait.
    const during = publishLoop(client, "mv", "during");
    while (during.confirmed.size < 100) await sleep(20);
    const moved = await client.adminCall("moveTopic", { topic: "mv", toHost: keyOf(b) });
    assert.equal(moved.moved, true);
    assert.equal(moved.fromHost, keyOf(a));
    assert.equal(moved.toHost, keyOf(b));
    assert.ok(moved.rowsCopied > 0n);
    const sizeAtSwitch = during.confirmed.size;
    while (during.confirmed.size < sizeAtSwitch + 100) await sleep(20);
    await during.stop();
    assert.deepEqual(during.failures, [], "no publish failed across the move");

    assert.equal((await placement(server, a)).mv, keyOf(b));
    assert.deepEqual(await topicNames(server, a), [], "the old copy is dropped");
    assert.deepEqual(await topicNames(server, b), ["mv"]);

    // The open stream keeps going on the new database: the messages published during the move
    // and the delayed one arrive, and no acked message comes again.
    const confirmed = new Map([...before.confirmed, ...during.confirmed]);
    await s.until(
      () => s.deliveries.some((d) => Buffer.from(d.data).toString() === "later"),
      20_000,
      "the delayed message, moved with the schedule",
    );
    await s.until(() => new Set(s.deliveries.map((d) => Number(d.seq))).size >= confirmed.size + 1);
    const ackedSet = new Set(acked);
    for (const d of s.deliveries.slice(before.confirmed.size)) {
      const seq = Number(d.seq);
      assert.equal(ackedSet.has(seq), false, `acked seq ${seq} is not delivered again`);
    }
    for (const d of s.deliveries) {
      const want = confirmed.get(Number(d.seq));
      if (want !== undefined) assert.equal(Buffer.from(d.data).toString(), want, `seq ${d.seq}`);
    }
    await s.end();

    // After a restart everything comes from the new database alone: state, log and dedup ids.
    client.close();
    await bus.stop();
    bus = await startBroker(store, { ackDeadlineMs: 60_000 });
    client = new TestClient(bus.address);
    const again = await client.publish("mv", [{ data: Buffer.from("once"), messageId: "id-once" }]);
    assert.equal(again.results[0]?.outcome, MessageResult_Outcome.DUPLICATE);
    assert.equal(Number(again.results[0]?.seq), onceSeq);
    const c = client.receive("mv", "cold", { maxMessages: 100 });
    await c.until(() => c.deliveries.length >= 100);
    for (const d of c.deliveries)
      assert.equal(coldAcked.has(Number(d.seq)), false, `cold: acked ${d.seq} again`);
    await c.end();
    const r = client.receive("mv", "s", { maxMessages: 5000 });
    const expected = [...confirmed.keys()].filter((seq) => !ackedSet.has(seq));
    await r.until(() => r.deliveries.length >= expected.length + 1, 20_000, "every unacked message");
    await sleep(300);
    const got = r.deliveries.map((d) => Number(d.seq));
    assert.equal(new Set(got).size, got.length, "each once");
    for (const seq of expected) assert.ok(got.includes(seq), `confirmed seq ${seq} is delivered`);
    for (const seq of got) assert.equal(ackedSet.has(seq), false, `acked seq ${seq} is not delivered again`);
    for (const d of r.deliveries) {
      const want = confirmed.get(Number(d.seq));
      if (want !== undefined) assert.equal(Buffer.from(d.data).toString(), want);
      else assert.equal(Buffer.from(d.data).toString(), "later");
    }
    await r.end();
  } finally {
    client.close();
    await bus.stop();
  }
});

test("a move cut short leaves the topic where it was; moving again finishes it", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("hosts_crash_a"), await server.database("hosts_crash_b")];
  const store = `${a},${b}`;
  let bus = await startBroker(store);
  let client = new TestClient(bus.address);
  const confirmed = new Map<number, string>();
  try {
    await client.adminCall("createTopic", { topic: { name: "c", shards: 2 } });
    for (let i = 0; i < 5; i++) {
      const payloads = Array.from({ length: 10 }, (_, j) => `c-${i}-${j}`);
      const res = await client.publish("c", payloads);
      for (const [j, p] of payloads.entries()) confirmed.set(Number(res.firstSeq) + j, p);
    }
    client.close();
    await bus.stop();
    // What a crash during the copy leaves: the topic on the other database, partly copied (here
    // with other content at the same seqs, so a copy that was kept would show).
    const partial = await MysqlStore.open({
      ...STORE_OPTIONS,
      url: b,
      poolSize: 4,
      allowUnsafeDurability: false,
    });
    const made = await partial.ensureTopic("c", {
      shards: 2,
      config: { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 60_000, ephemeral: false },
    });
    assert.ok(made);
    await partial.claimTopic(made.topic);
    const junk = [1, 2, 3].map((seq) =>
      LogMessage.of(seq, Date.now(), Buffer.from(`junk-${seq}`), {
        attributes: {},
        orderingKey: "",
        messageId: "",
      }),
    );
    await partial.insertMessages(made.topic, 0, junk);
    await partial.close();

    bus = await startBroker(store);
    client = new TestClient(bus.address);
    const s = client.receive("c", "s", { from: "earliest" });
    await s.until(() => s.deliveries.length >= confirmed.size);
    for (const d of s.deliveries) assert.equal(Buffer.from(d.data).toString(), confirmed.get(Number(d.seq)));
    await s.end();
    const moved = await client.adminCall("moveTopic", { topic: "c", toHost: keyOf(b) });
    assert.equal(moved.moved, true);
    const r = client.receive("c", "s2", { from: "earliest" });
    await r.until(() => r.deliveries.length >= confirmed.size);
    await sleep(200);
    assert.deepEqual(
      r.deliveries.map((d) => [Number(d.seq), Buffer.from(d.data).toString()]),
      [...confirmed].sort((x, y) => x[0] - y[0]),
    );
    await r.end();
    // A crash after the switch leaves the old copy: moving to where it is drops it.
    client.close();
    await bus.stop();
    const old = await MysqlStore.open({
      ...STORE_OPTIONS,
      url: a,
      poolSize: 4,
      allowUnsafeDurability: false,
    });
    await old.ensureTopic("c", {
      shards: 2,
      config: { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 60_000, ephemeral: false },
    });
    await old.close();
    bus = await startBroker(store);
    client = new TestClient(bus.address);
    // From the command line this time.
    const rerun = await runCli(["move-topic", "--server", bus.address, "--topic", "c", "--to", keyOf(b)]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(JSON.parse(rerun.stdout), { fromHost: keyOf(b), toHost: keyOf(b) });
    assert.deepEqual(await topicNames(server, a), []);
    assert.deepEqual(await topicNames(server, b), ["c"]);
  } finally {
    client.close();
    await bus.stop();
  }
});

test("a database out of reach fails its own topics only, at start and while serving", async () => {
  const server = testMysql();
  const other = await startTestMysql();
  let bus: NerveBus | undefined;
  try {
    const a = await server.database("hosts_reach_a");
    const b = await other.database("hosts_reach_b");
    const store = `${a},${b}`;
    bus = await startBroker(store, { leaseTtlMs: 3000, leaseRenewMs: 500 });
    let client = new TestClient(bus.address);
    await client.publish("near", ["n"]);
    await client.publish("far", ["f"]);
    assert.deepEqual(await placement(server, a), { near: keyOf(a), far: keyOf(b) });
    client.close();
    await bus.stop();
    bus = undefined;

    other.pause?.();
    try {
      bus = await startBroker(store, { leaseTtlMs: 3000, leaseRenewMs: 500 });
      client = new TestClient(bus.address);
      await client.publish("near", ["n2"]);
      await assert.rejects(client.publish("far", ["f2"]), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAVAILABLE);
        assert.match(err.details, /not reachable/);
        return true;
      });
      // No new topic goes to a database out of reach.
      await client.publish("new", ["x"]);
      assert.equal((await placement(server, a)).new, keyOf(a));
    } finally {
      other.resume?.();
    }
    // Back in reach: its topics are served again (the next attempt to open it succeeds).
    for (let i = 0; ; i++) {
      const ok = await client.publish("far", ["f3"], 3000).then(
        () => true,
        () => false,
      );
      if (ok) break;
      assert.ok(i < 60, "the second database is used again once it answers");
      await sleep(250);
    }
    // Lost while serving: the other database's topics keep working.
    other.pause?.();
    try {
      // Past the frozen database's lease bound (ttl 3 s): its topics can no longer write.
      await sleep(3500);
      await client.publish("near", ["n3"]);
      await client.publish("new", ["x2"]);
    } finally {
      other.resume?.();
    }
    await client.publish("far", ["f4"]);
    client.close();
  } finally {
    await bus?.stop();
    await other.stop();
  }
});

test("a format-1 topic (a row per message, from older versions) moves too, its schema and schedule ids kept", async () => {
  const server = testMysql();
  const [a, b] = [await server.database("hosts_v1_a"), await server.database("hosts_v1_b")];
  const store = await openStore(`${a},${b}`, STORE_OPTIONS);
  try {
    const made = await store.ensureTopic("old", {
      shards: 2,
      format: 1,
      config: { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 60_000, ephemeral: false },
    });
    assert.ok(made);
    const topic = made.topic;
    await store.claimTopic(topic);
    const message = (seq: number) =>
      LogMessage.of(seq, 1000 + seq, Buffer.from(`v1-${seq}`), {
        attributes: {},
        orderingKey: "",
        messageId: "",
      });
    await store.insertMessages(topic, 1, [1, 3, 5].map(message));
    await store.insertMessages(topic, 0, [2, 4].map(message));
    const newMessage = {
      data: Buffer.from("later"),
      attributes: {},
      orderingKey: "",
      messageId: "",
      deliverAt: 9,
    };
    const ids = await store.scheduleMessages(topic, [
      { dueAt: 9, message: newMessage },
      { dueAt: 9, message: newMessage },
    ]);
    await store.deleteScheduled(topic, ids.slice(1));
    // The store keeps a schema as bytes; it is not parsed here.
    const schema = { messageType: "shop.v1.Order", descriptorSet: Buffer.from([1, 2, 3]), updatedAt: 42 };
    await store.saveTopicSchema(topic, schema);
    // A subscription's state, and which of its messages were dead-lettered, go along.
    const dead = Buffer.from('[[2,2,"old.dlq"]]');
    await store.savePointers(topic, [
      { subscription: "s", ptr: 3, state: Buffer.from("{}"), deadLetters: dead },
    ]);
    const report = await store.placement?.moveTopic("old", keyOf(b));
    assert.equal(report?.moved, true);
    assert.deepEqual(await topicNames(server, a), []);
    const moved = await store.loadTopicSchema(topic);
    assert.deepEqual(
      moved && { ...moved, descriptorSet: Buffer.from(moved.descriptorSet) },
      schema,
      "the payload schema moved with the topic",
    );
    const pointer = await store.loadPointer(topic, "s");
    assert.equal(pointer?.ptr, 3);
    assert.deepEqual(
      pointer?.deadLetters && Buffer.from(pointer.deadLetters),
      dead,
      "dead letters moved too",
    );
    const read = await store.readMessages(topic, 1, 10);
    assert.deepEqual(
      read.map((m) => [m.seq, Buffer.from(m.data).toString()]),
      [1, 2, 3, 4, 5].map((seq) => [seq, `v1-${seq}`]),
    );
    assert.deepEqual(
      (await store.dueMessages(topic, 10, 10)).map((d) => d.id),
      ids.slice(0, 1),
    );
    // A new entry gets an id after every id the old database gave, deleted ones included.
    const [next] = await store.scheduleMessages(topic, [{ dueAt: 9, message: newMessage }]);
    assert.ok(next! > ids[1]!, `new schedule id ${next} is above ${ids[1]}`);
  } finally {
    await store.close();
  }
});
