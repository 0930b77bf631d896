import assert from "node:assert/strict";
import { test } from "node:test";
import mysql from "mysql2/promise";
import type { Delivery } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { writeOutbox } from "../../clients/ts/src/outbox.js";
import { startBroker, TestClient, type TestStream } from "../support/broker.js";
import { useTestMysql } from "../support/mariadb.js";
import { bumpCounter, CommitLog, relayReady } from "../support/outbox.js";
import { prng } from "../support/prng.js";
import { spawnBroker } from "../support/process.js";

/*
 * The transactional outbox (issue 16, item 1): an application writes nb_outbox rows in its own
 * MySQL transaction, in a database other than the broker's store; the broker relays them. Real
 * MariaDB, real broker, real gRPC subscriber.
 */

const db = useTestMysql();
const text = (d: Delivery) => Buffer.from(d.data).toString();

/** Reads the topic from the start until `done` holds, acking as it goes. */
async function readUntil(
  client: TestClient,
  topic: string,
  done: (s: TestStream) => boolean,
): Promise<Delivery[]> {
  const stream = client.receive(topic, `check-${Date.now()}`, { from: "earliest", maxMessages: 5000 });
  let acked = 0;
  await stream.until(
    () => {
      stream.ack(stream.deliveries.slice(acked).map((d) => d.seq));
      acked = stream.deliveries.length;
      return done(stream);
    },
    90_000,
    "outbox messages",
  );
  stream.cancel();
  return stream.deliveries;
}

async function outboxRows(url: string): Promise<number> {
  const rows = await db().query<{ n: number }[]>(url, "SELECT COUNT(*) AS n FROM nb_outbox");
  return Number(rows[0]!.n);
}

test("outbox: a rolled-back transaction publishes nothing; a committed one publishes once, with its trace context", async () => {
  const store = await db().database("outbox_basic_store");
  const app = await db().database("outbox_basic_app");
  const bus = await startBroker(store, { outbox: app, outboxGapWaitMs: 50 });
  const client = new TestClient(bus.address);
  const conn = await mysql.createConnection({ uri: app });
  try {
    await relayReady(db(), app);
    await conn.query("CREATE TABLE orders (id INT PRIMARY KEY)");
    await conn.beginTransaction();
    await conn.query("INSERT INTO orders VALUES (1)");
    await writeOutbox(conn, "orders", { data: "rolled back", orderingKey: "o-1" });
    await conn.rollback();
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await conn.beginTransaction();
    await conn.query("INSERT INTO orders VALUES (2)");
    const id = await writeOutbox(conn, "orders", {
      data: "committed",
      orderingKey: "o-2",
      attributes: { traceparent, tracestate: "vendor=1", kind: "created" },
    });
    await conn.commit();
    // A later commit, so the read below knows the relay got past both.
    await conn.beginTransaction();
    await writeOutbox(conn, "orders", { data: "last" });
    await conn.commit();

    const got = await readUntil(client, "orders", (s) => s.deliveries.some((d) => text(d) === "last"));
    assert.deepEqual(got.map(text), ["committed", "last"]);
    const first = got[0]!;
    assert.equal(first.attributes.traceparent, traceparent);
    assert.equal(first.attributes.tracestate, "vendor=1");
    assert.equal(first.attributes.kind, "created");
    assert.equal(first.traceId, "0af7651916cd43dd8448eb211c80319c");
    assert.equal(first.orderingKey, "o-2");
    assert.match(first.messageId, new RegExp(`^outbox/[0-9a-f]{16}/${id}$`));
    // The broker started a trace for the row written without one.
    assert.match(got[1]!.attributes.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    for (let i = 0; (await outboxRows(app)) > 0; i++) {
      assert.ok(i < 100, "relayed rows are deleted from the outbox");
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await conn.end();
    client.close();
    await bus.stop();
  }
});

test("outbox: per-key order is commit order, also when ids become visible out of order", async () => {
  const store = await db().database("outbox_order_store");
  const app = await db().database("outbox_order_app");
  const bus = await startBroker(store, { outbox: app, outboxGapWaitMs: 100 });
  const client = new TestClient(bus.address);
  const conns = await Promise.all(Array.from({ length: 6 }, () => mysql.createConnection({ uri: app })));
  try {
    await relayReady(db(), app);
    // The case the key lock exists for: A inserts first (lower id) but B, same key, must wait for
    // A's commit; C, another key, commits before A with a higher id (visible out of id order).
    const [a, b, c] = conns as [mysql.Connection, mysql.Connection, mysql.Connection];
    await a.beginTransaction();
    await writeOutbox(a, "ordered", { data: "k:A", orderingKey: "k" });
    await b.beginTransaction();
    const bWrite = writeOutbox(b, "ordered", { data: "k:B", orderingKey: "k" });
    await c.beginTransaction();
    await writeOutbox(c, "ordered", { data: "j:C", orderingKey: "j" });
    await c.commit();
    await new Promise((r) => setTimeout(r, 150));
    await a.commit();
    await bWrite;
    await b.commit();

    // Then many concurrent transactions over a few keys, some rolled back.
    await a.query("CREATE TABLE counters (k VARCHAR(64) PRIMARY KEY, n INT NOT NULL)");
    const committed = new CommitLog();
    const random = prng(16);
    await Promise.all(
      conns.map(async (conn, w) => {
        for (let i = 0; i < 120; i++) {
          const key = `key-${Math.floor(random() * 4)}`;
          const payload = `${key}:w${w}-${i}`;
          // A new key's row can deadlock its first writers (InnoDB rolls one back): the
          // application retries the transaction, as the README tells it to.
          for (;;) {
            try {
              await conn.beginTransaction();
              await writeOutbox(conn, "ordered", { data: payload, orderingKey: key });
              const n = await bumpCounter(conn, key);
              if (random() < 0.3) await new Promise((r) => setTimeout(r, random() * 5));
              if (random() < 0.2) {
                await conn.rollback();
                break;
              }
              await conn.commit();
              committed.add(key, n, [payload]);
              break;
            } catch (err) {
              if ((err as { code?: string }).code !== "ER_LOCK_DEADLOCK") throw err;
              await conn.rollback();
            }
          }
        }
      }),
    );
    const total = 3 + committed.total;
    const got = await readUntil(client, "ordered", (s) => s.deliveries.length >= total);
    await new Promise((r) => setTimeout(r, 300));
    const texts = got.map(text);
    assert.equal(texts.length, total, "every committed message once, nothing else");
    assert.ok(texts.indexOf("k:A") < texts.indexOf("k:B"), "B committed after A on key k");
    committed.check(texts);
  } finally {
    await Promise.all(conns.map((c) => c.end()));
    client.close();
    await bus.stop();
  }
});

test("outbox: one broker relays several outboxes (--outbox A,B) into one topic", async () => {
  const store = await db().database("outbox_multi_store");
  const apps = [await db().database("outbox_multi_a"), await db().database("outbox_multi_b")];
  const bus = await startBroker(store, { outbox: apps.join(","), outboxGapWaitMs: 50 });
  const client = new TestClient(bus.address);
  const conns = await Promise.all(apps.map((uri) => mysql.createConnection({ uri })));
  try {
    for (const app of apps) await relayReady(db(), app);
    for (let i = 0; i < 3; i++) {
      for (const [n, conn] of conns.entries()) {
        await conn.beginTransaction();
        await writeOutbox(conn, "merged", { data: `${n}-${i}`, orderingKey: `db${n}` });
        await conn.commit();
      }
    }
    const got = await readUntil(client, "merged", (s) => s.deliveries.length >= 6);
    await new Promise((r) => setTimeout(r, 300));
    const texts = got.map(text);
    assert.equal(texts.length, 6);
    for (const n of [0, 1])
      assert.deepEqual(
        texts.filter((t) => t.startsWith(`${n}-`)),
        [`${n}-0`, `${n}-1`, `${n}-2`],
      );
    // Each outbox has its own source id, so their message ids never collide.
    const sources = new Set(got.map((d) => d.messageId.split("/")[1]));
    assert.equal(sources.size, 2);
  } finally {
    await Promise.all(conns.map((c) => c.end()));
    client.close();
    await bus.stop();
  }
});

test("outbox: one relay per outbox; a broker waiting for it stops cleanly, and takes over when the holder stops", {
  timeout: 60_000,
}, async () => {
  const app = await db().database("outbox_lock_app");
  const first = await startBroker(await db().database("outbox_lock_store1"), { outbox: app });
  await relayReady(db(), app);
  const second = await startBroker(await db().database("outbox_lock_store2"), { outbox: app });
  const conn = await mysql.createConnection({ uri: app });
  const c1 = new TestClient(first.address);
  let c2: TestClient | undefined;
  try {
    await conn.beginTransaction();
    await writeOutbox(conn, "locked", { data: "one" });
    await conn.commit();
    const got1 = await readUntil(c1, "locked", (s) => s.deliveries.length >= 1);
    assert.deepEqual(got1.map(text), ["one"]);
    // A third broker waiting for the lock must not hold up its own shutdown.
    const third = await startBroker(await db().database("outbox_lock_store3"), { outbox: app });
    await third.stop();
    // The holder stops: the waiting broker takes the outbox over and relays what comes next.
    c1.close();
    await first.stop();
    await conn.beginTransaction();
    await writeOutbox(conn, "locked", { data: "two" });
    await conn.commit();
    c2 = new TestClient(second.address);
    const got2 = await readUntil(c2, "locked", (s) => s.deliveries.length >= 1);
    assert.deepEqual(got2.map(text), ["two"], "the second broker relayed only what the first had not");
  } finally {
    await conn.end();
    c1.close();
    c2?.close();
    await first.stop();
    await second.stop();
  }
});

test("outbox: 20 SIGKILLs of the broker while the application commits and rolls back publish each committed message exactly once, in key order", {
  timeout: 240_000,
}, async () => {
  const store = await db().database("outbox_kill_store");
  const app = await db().database("outbox_kill_app");
  // Dedup off: the broker's message-id index would hide a re-published row within its window;
  // what is tested here is the relay's own recovery, which holds however long a broker is down.
  const flags = ["--store", store, "--outbox", app, "--outbox-gap-wait-ms", "50", "--dedup-window-ms", "0"];
  let broker = await spawnBroker(flags);
  await relayReady(db(), app);
  await db().query(app, "CREATE TABLE counters (k VARCHAR(64) PRIMARY KEY, n INT NOT NULL)");
  const committed = new CommitLog();
  const rolledBack = new Set<string>();
  let stop = false;
  const random = prng(2016);
  const writers = Array.from({ length: 4 }, async (_, w) => {
    const conn = await mysql.createConnection({ uri: app });
    try {
      for (let i = 0; !stop; i++) {
        await conn.beginTransaction();
        const rows = 1 + Math.floor(random() * 20);
        const key = `key-${Math.floor(random() * 5)}`;
        const payloads = Array.from({ length: rows }, (_, j) => `${key}:w${w}-t${i}-m${j}`);
        let n: number;
        try {
          for (const p of payloads) await writeOutbox(conn, "killed", { data: p, orderingKey: key });
          n = await bumpCounter(conn, key);
        } catch (err) {
          // A new key's row can deadlock its first writers: InnoDB rolled this one back.
          if ((err as { code?: string }).code !== "ER_LOCK_DEADLOCK") throw err;
          await conn.rollback();
          for (const p of payloads) rolledBack.add(p);
          continue;
        }
        if (random() < 0.3) {
          await conn.rollback();
          for (const p of payloads) rolledBack.add(p);
        } else {
          await conn.commit();
          committed.add(key, n, payloads);
        }
        await new Promise((r) => setTimeout(r, random() * 4));
      }
    } finally {
      await conn.end();
    }
  });
  try {
    for (let kill = 0; kill < 20; kill++) {
      // Let the relay work (and sometimes be mid-round) before the kill.
      await new Promise((r) => setTimeout(r, 200 + random() * 400));
      broker.child.kill("SIGKILL");
      await broker.exited;
      broker = await spawnBroker(flags);
    }
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  const client = new TestClient(broker.address);
  try {
    const total = committed.total;
    assert.ok(total > 1000, `the application committed enough (${total})`);
    const got = await readUntil(client, "killed", (s) => s.deliveries.length >= total);
    // Anything extra (a duplicate) would arrive right behind; give it time to show.
    await new Promise((r) => setTimeout(r, 500));
    const texts = got.map(text);
    const counts = new Map<string, number>();
    for (const t of texts) counts.set(t, (counts.get(t) ?? 0) + 1);
    const dupes = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(dupes, [], "no message published twice");
    for (const t of texts) assert.ok(!rolledBack.has(t), `${t} was rolled back, yet published`);
    assert.equal(texts.length, total, "every committed message published");
    committed.check(texts);
    assert.equal(await outboxRows(app), 0, "the outbox is empty");
  } finally {
    client.close();
    broker.child.kill("SIGTERM");
    await broker.exited;
  }
});

test("outbox: /metrics counts rows relayed and failed rounds, and shows the relay lag", async () => {
  const store = await db().database("outbox_metrics_store");
  const app = await db().database("outbox_metrics_app");
  const bus = await startBroker(store, { outbox: app, outboxGapWaitMs: 50 });
  const client = new TestClient(bus.address);
  const conn = await mysql.createConnection({ uri: app });
  const scrape = async () => {
    const res = await fetch(`http://${bus.httpAddress}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    const value = (name: string) => {
      const m = new RegExp(`^${name}\\{outbox="[^"]*"[^}]*\\} (\\S+)$`, "m").exec(text);
      return m === null ? undefined : Number(m[1]);
    };
    return {
      relayed: value("nervebus_outbox_rows_relayed_total"),
      errors: value("nervebus_outbox_poll_errors_total"),
      lag: value("nervebus_outbox_relay_lag_seconds"),
    };
  };
  try {
    await relayReady(db(), app);
    await conn.beginTransaction();
    for (let i = 0; i < 5; i++) await writeOutbox(conn, "metered", { data: `m${i}` });
    await conn.commit();
    await readUntil(client, "metered", (s) => s.deliveries.length >= 5);
    const first = await scrape();
    assert.equal(first.relayed, 5);
    assert.equal(first.errors, 0);
    assert.ok(first.lag !== undefined && first.lag >= 0 && first.lag < 3600, `lag ${first.lag}`);
    // The relay's lock connection dies (a network cut, a DBA's KILL): the next round cannot
    // delete its rows; the round after that finds out, fails, and is retried once the relay
    // holds the lock again (its rows, published already, are found and not published again).
    const [holder] = await db().query<{ id: number | null }[]>(app, "SELECT IS_USED_LOCK(?) AS id", [
      `nb-outbox:${new URL(app).pathname.slice(1)}`.slice(0, 64),
    ]);
    assert.ok(holder?.id, "the relay holds its lock");
    await db().query(app, `KILL CONNECTION ${Number(holder.id)}`);
    await writeOutbox(conn, "metered", { data: "after the kill" });
    await readUntil(client, "metered", (s) => s.deliveries.some((d) => text(d) === "after the kill"));
    await writeOutbox(conn, "metered", { data: "last" });
    const got = await readUntil(client, "metered", (s) => s.deliveries.some((d) => text(d) === "last"));
    assert.deepEqual(
      got.map(text),
      ["m0", "m1", "m2", "m3", "m4", "after the kill", "last"],
      "each row once",
    );
    for (let i = 0; ; i++) {
      const after = await scrape();
      if (after.relayed === 7 && (after.errors ?? 0) >= 1) break;
      assert.ok(i < 200, `relayed ${after.relayed}, errors ${after.errors}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await conn.end();
    client.close();
    await bus.stop();
  }
});
