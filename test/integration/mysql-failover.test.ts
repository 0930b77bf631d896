import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import { healthClient, healthStatus, seqsOf, startBroker, TestClient } from "../support/broker.js";
import {
  copyDatabase,
  createBrokerUser,
  portOf,
  publishUntilConfirmed,
  startProxy,
  useTwoMysql,
} from "../support/failover.js";
import type { TestMysql } from "../support/mariadb.js";

// A failover as MySQL HA tooling runs it (Orchestrator, MHA, a manual switchover behind a DNS
// name or virtual IP): the old primary is made read-only, the promoted server gets its data,
// then the name moves. The broker dials the name (here a TCP proxy: new connections go to the
// current target, open ones stay where they are) and must find the new primary by itself.

const servers = useTwoMysql();

/** The broker's pool size: small, so a little load opens all of it. */
const POOL = 3;

/** Sessions of the broker's user on a server (its pool's and the lease's lock connection). */
async function sessionsOn(server: TestMysql, admin: string): Promise<number> {
  const [row] = await server.query<mysql.RowDataPacket[]>(
    admin,
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'nbfail'",
  );
  return Number(row!.n);
}

/**
 * The failover, with a broker alone on the database (its store lease and its pool) or one of
 * a --cluster (its cluster lease with a pool of its own, and the store's pool).
 */
async function failover(a: TestMysql, b: TestMysql, name: string, cluster: boolean): Promise<void> {
  const adminA = await a.database(name);
  const adminB = await b.database(name);
  const db = new URL(adminA).pathname.slice(1);
  await createBrokerUser(a, adminA, db, "nbfail");
  await createBrokerUser(b, adminB, db, "nbfail");
  const proxy = await startProxy(portOf(adminA));
  const url = `mysql://nbfail:pw@127.0.0.1:${proxy.port}/${db}`;
  // A pack waits at most 5 s for its confirm: well inside the 30 s deadline the client gives.
  const bus = await startBroker(url, {
    confirmTimeoutMs: 5000,
    healthIntervalMs: 200,
    mysqlPoolSize: POOL,
    cluster,
  });
  const client = new TestClient(bus.address);
  const health = healthClient(bus.address);
  let readOnly = false;
  try {
    // Before: five messages, three of them acked and the acks confirmed (persisted).
    await client.publish("orders", ["m1", "m2"]);
    await client.publish("orders", ["m3", "m4", "m5"]);
    const sub = client.receive("orders", "billing", { confirmAcks: true });
    await sub.until(() => sub.deliveries.length >= 5);
    const acked = () => sub.responses.flatMap((r) => (r.ackResults?.ackedSeqs ?? []).map(Number));
    sub.ack([1, 2, 3]);
    await sub.until(() => acked().length >= 3, 20_000, "ack confirmation");
    // A busy broker has every connection of its pool open (a pool below its limit opens one
    // when a burst needs it, which then reaches the new primary by chance): eight topics of
    // four shard writers each, three rounds, keep more than POOL statements waiting.
    for (let round = 0; round < 3; round++)
      await Promise.all(Array.from({ length: 8 }, (_, i) => client.publish(`load${i}`, ["x"])));
    assert.ok((await sessionsOn(a, adminA)) >= POOL, "the pool has all its connections open");

    // The failover tooling makes the old primary read-only.
    await a.query(adminA, "SET GLOBAL read_only = ON");
    readOnly = true;
    await assert.rejects(
      client.publish("orders", ["m6"], 30_000),
      (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
        assert.ok(
          err.details.includes(`the MySQL server at 127.0.0.1:${proxy.port} is read-only`),
          err.details,
        );
        return true;
      },
      "a publish while the server is read-only fails with UNAVAILABLE before its deadline, naming the server",
    );
    // Acks made now cannot be written; they are once the new primary is reached.
    sub.ack([4, 5]);
    let status = await healthStatus(health);
    for (let i = 0; i < 100 && status !== "NOT_SERVING"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await healthStatus(health);
    }
    assert.equal(status, "NOT_SERVING", "health says the broker cannot confirm publishes");

    // The promoted server gets everything the old primary committed, then the name moves.
    copyDatabase(adminA, adminB, db);
    proxy.target = portOf(adminB);

    // Without a restart the broker reaches the new primary: m6 kept its seq and is written
    // there, m7 follows it.
    const m7 = await publishUntilConfirmed(client, "orders", "m7", Date.now() + 60_000);
    assert.equal(m7.firstSeq, 7n, "seqs continue after the failover with no gap and none reused");
    await sub.until(() => acked().length >= 5, 30_000, "confirmation of the acks made while read-only");
    await sub.until(() => sub.deliveries.length >= 7, 20_000, "deliveries of m6 and m7");
    assert.deepEqual(seqsOf(sub.deliveries), [1, 2, 3, 4, 5, 6, 7]);
    status = await healthStatus(health);
    for (let i = 0; i < 100 && status !== "SERVING"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await healthStatus(health);
    }
    assert.equal(status, "SERVING", "health is back");
    await sub.end();

    // Everything is on the new primary, not only in the broker's memory: the old one took no
    // write since it turned read-only, and the new one holds all seven messages and the acks.
    const countOn = async (server: TestMysql, admin: string) => {
      const [row] = await server.query<mysql.RowDataPacket[]>(
        admin,
        "SELECT p.ptr AS floor FROM nb_pointers p JOIN nb_topics t ON t.id = p.topic_id WHERE t.name = 'orders' AND p.subscription = 'billing'",
      );
      return Number(row?.floor ?? 0);
    };
    assert.equal(
      await countOn(a, adminA),
      3,
      "the old primary kept the acks persisted before it turned read-only",
    );
    assert.equal(
      await countOn(b, adminB),
      5,
      "the new primary holds the acks made while the old one was read-only",
    );
  } finally {
    if (readOnly) await a.query(adminA, "SET GLOBAL read_only = OFF");
    health.close();
    client.close();
    await bus.stop();
    proxy.server.close();
  }

  // A broker started on the new primary directly reads all seven messages, and the
  // subscription resumes after its acks.
  const direct = await startBroker(`mysql://nbfail:pw@127.0.0.1:${portOf(adminB)}/${db}`, { cluster });
  const check = new TestClient(direct.address);
  try {
    const all = check.receive("orders", "audit", { from: "earliest" });
    await all.until(() => all.deliveries.length >= 7);
    assert.deepEqual(
      all.deliveries.map((d) => Buffer.from(d.data).toString()),
      ["m1", "m2", "m3", "m4", "m5", "m6", "m7"],
    );
    await all.end();
    const billing = check.receive("orders", "billing");
    await billing.until(() => billing.deliveries.length >= 2);
    assert.deepEqual(seqsOf(billing.deliveries), [6, 7], "acks of 1-5 persisted across the failover");
    await billing.end();
    assert.equal((await check.publish("orders", ["m8"])).firstSeq, 8n);
  } finally {
    check.close();
    await direct.stop();
  }
}

test("mysql failover: the old primary turns read-only (SendPack UNAVAILABLE naming it), the name moves to the new primary, and the broker reconnects by itself: no gap, no reused seq, acks kept", async (t) => {
  const two = servers();
  if (two === undefined) {
    t.skip("NERVEBUS_TEST_MYSQL_URL points at one server: this test needs two it starts itself");
    return;
  }
  await failover(two.a, two.b, "failover", false);
});

test("mysql failover with --cluster: the cluster lease and the store's pool both reach the new primary", async (t) => {
  const two = servers();
  if (two === undefined) {
    t.skip("NERVEBUS_TEST_MYSQL_URL points at one server: this test needs two it starts itself");
    return;
  }
  await failover(two.a, two.b, "failover_cluster", true);
});
