import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import { type LogLine, seqsOf, startLoggingBroker, TestClient } from "../support/broker.js";
import {
  copyDatabase,
  createBrokerUser,
  portOf,
  publishUntilConfirmed,
  startProxy,
  useTwoMysql,
} from "../support/failover.js";
import type { TestMysql } from "../support/mariadb.js";

// A failover where the old primary does not say so: its host died (or the network drops its
// packets), so the broker's open connections get neither an answer nor a reset, and connecting
// to it hangs. The HA tooling promotes the replica and moves the name (here a TCP proxy). The
// broker must notice on its own that its connections are dead, give them up and dial the name
// again, within --mysql-stall-timeout-ms; TCP alone would keep them for a quarter of an hour.

const servers = useTwoMysql();

/** The broker's pool size: small, so a little load opens all of it. */
const POOL = 3;
const STALL_MS = 2000;

async function deadPrimary(a: TestMysql, b: TestMysql, name: string, cluster: boolean): Promise<void> {
  const adminA = await a.database(name);
  const adminB = await b.database(name);
  const db = new URL(adminA).pathname.slice(1);
  await createBrokerUser(a, adminA, db, "nbstall");
  await createBrokerUser(b, adminB, db, "nbstall");
  const proxy = await startProxy(portOf(adminA));
  const url = `mysql://nbstall:pw@127.0.0.1:${proxy.port}/${db}`;
  const lines: LogLine[] = [];
  const bus = await startLoggingBroker(url, lines, {
    confirmTimeoutMs: 5000,
    mysqlPoolSize: POOL,
    mysqlStallTimeoutMs: STALL_MS,
    cluster,
  });
  const client = new TestClient(bus.address);
  try {
    await client.publish("orders", ["m1", "m2"]);
    await client.publish("orders", ["m3", "m4", "m5"]);
    const sub = client.receive("orders", "billing", { confirmAcks: true });
    await sub.until(() => sub.deliveries.length >= 5);
    const acked = () => sub.responses.flatMap((r) => (r.ackResults?.ackedSeqs ?? []).map(Number));
    sub.ack([1, 2, 3]);
    await sub.until(() => acked().length >= 3, 20_000, "ack confirmation");
    // Every connection of the pool open, so none reaches the new primary by chance.
    for (let round = 0; round < 3; round++)
      await Promise.all(Array.from({ length: 8 }, (_, i) => client.publish(`load${i}`, ["x"])));

    // The primary's host dies: nothing answers, nothing is reset. Writes under way stall.
    proxy.freeze();
    const during = client.publish("orders", ["m6"], 8000).then(
      () => "confirmed",
      (err: grpc.ServiceError) => `${grpc.status[err.code]}: ${err.details}`,
    );
    sub.ack([4, 5]);
    await new Promise((r) => setTimeout(r, 500));
    // The tooling promotes the replica (it has everything the primary committed) and moves the name.
    copyDatabase(adminA, adminB, db);
    const movedAt = Date.now();
    proxy.thaw(portOf(adminB));

    const m7 = await publishUntilConfirmed(client, "orders", "m7", movedAt + 30_000);
    const recoveredMs = Date.now() - movedAt;
    const m6 = await during;
    assert.ok(
      m6 === "confirmed" || m6.startsWith("UNAVAILABLE"),
      `the publish under way when the primary died is confirmed or UNAVAILABLE: ${m6}`,
    );
    // m6 was either written (and its seq kept) or never had one confirmed: m7 follows the log.
    assert.ok(m7.firstSeq === 6n || m7.firstSeq === 7n, `m7 at seq ${m7.firstSeq}`);
    await sub.until(() => acked().length >= 5, 30_000, "confirmation of the acks made during the stall");
    await sub.until(() => seqsOf(sub.deliveries).includes(Number(m7.firstSeq)), 20_000, "delivery of m7");
    assert.ok(
      lines.some(
        (l) => l.msg === "the MySQL server answers nothing; cutting its connections and reconnecting",
      ),
      "the stall is logged",
    );
    await sub.end();
    console.log(`reconnected ${recoveredMs} ms after the name moved (stall timeout ${STALL_MS} ms)`);

    // The new primary has the acks of 4 and 5, made while the old one answered nothing.
    const [row] = await b.query<mysql.RowDataPacket[]>(
      adminB,
      "SELECT p.ptr AS floor FROM nb_pointers p JOIN nb_topics t ON t.id = p.topic_id WHERE t.name = 'orders' AND p.subscription = 'billing'",
    );
    assert.equal(Number(row?.floor ?? 0), 5, "acks made during the stall persisted on the new primary");
  } finally {
    client.close();
    proxy.server.close();
    proxy.cutAll();
    await bus.stop();
  }
}

/** The test of deadPrimary on database `name`, skipped without two servers of its own. */
function deadPrimaryTest(name: string, cluster: boolean) {
  return async (t: TestContext) => {
    const two = servers();
    if (two === undefined) {
      t.skip("NERVEBUS_TEST_MYSQL_URL points at one server: this test needs two it starts itself");
      return;
    }
    await deadPrimary(two.a, two.b, name, cluster);
  };
}

test(
  "mysql: a primary that answers nothing (host dead, packets dropped) is given up after --mysql-stall-timeout-ms; the broker reaches the new primary by itself",
  { timeout: 120_000 },
  deadPrimaryTest("stall", false),
);

test(
  "mysql with --cluster: the cluster lease's pool and the store's pool both give up a silent primary",
  { timeout: 120_000 },
  deadPrimaryTest("stall_cluster", true),
);
