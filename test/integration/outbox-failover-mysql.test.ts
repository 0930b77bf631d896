import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type mysql from "mysql2/promise";
import { type LogLine, startLoggingBroker, TestClient } from "../support/broker.js";
import { copyDatabase, portOf, startProxy, useTwoMysql } from "../support/failover.js";
import type { TestMysql } from "../support/mariadb.js";
import { relayReady } from "../support/outbox.js";

// Defect: the outbox relay's connections stayed on the old primary after a switchover (made
// read-only, then the name moved): its DELETEs failed as read-only forever and rows committed on
// the new primary were never relayed. Its pool now follows the name as the store's does
// (ServerPool). Two MariaDB servers, a TCP proxy for the name, as mysql-failover.test.ts.

const servers = useTwoMysql();

/** The relay's user, with every right on `db` only: read_only applies to it. */
async function relayUser(server: TestMysql, adminUrl: string, db: string): Promise<void> {
  await server.query(adminUrl, "CREATE USER IF NOT EXISTS 'nbrelay'@'127.0.0.1' IDENTIFIED BY 'pw'");
  await server.query(adminUrl, `GRANT ALL PRIVILEGES ON \`${db}\`.* TO 'nbrelay'@'127.0.0.1'`);
}

/**
 * Commits outbox rows `names` on a server as the application does (the admin user), in one
 * transaction: the relay reads them in one round. While the server is read-only a relay whose
 * delete failed cannot recover (its open writes), so a row committed a moment after that round
 * would wait for the switch, and the test for it timed out on a loaded machine.
 */
async function commitRows(server: TestMysql, adminUrl: string, names: string[]): Promise<void> {
  await server.query(
    adminUrl,
    `INSERT INTO nb_outbox (topic, ordering_key, data) VALUES ${names.map(() => "('orders', 'k', ?)").join(", ")}`,
    names,
  );
}

async function outboxLeft(server: TestMysql, adminUrl: string): Promise<number> {
  const [row] = await server.query<mysql.RowDataPacket[]>(adminUrl, "SELECT COUNT(*) AS n FROM nb_outbox");
  return Number(row!.n);
}

test("outbox failover: the relay follows the name to the new primary; rows before, during and after the switch relayed once each", async (t) => {
  const two = servers();
  if (two === undefined) {
    t.skip("NERVEBUS_TEST_MYSQL_URL points at one server: this test needs two it starts itself");
    return;
  }
  const { a, b } = two;
  const adminA = await a.database("outbox_failover");
  const adminB = await b.database("outbox_failover");
  const db = new URL(adminA).pathname.slice(1);
  await relayUser(a, adminA, db);
  await relayUser(b, adminB, db);
  const proxy = await startProxy(portOf(adminA));
  const dir = mkdtempSync(join(tmpdir(), "nb-outbox-failover-"));
  const lines: LogLine[] = [];
  const bus = await startLoggingBroker(`sqlite:${join(dir, "nb.db")}`, lines, {
    outbox: `mysql://nbrelay:pw@127.0.0.1:${proxy.port}/${db}`,
    outboxGapWaitMs: 50,
  });
  const client = new TestClient(bus.address);
  const sub = client.receive("orders", "audit", { from: "earliest" });
  let readOnly = false;
  // First deliveries only (nothing is acked: the messages come again after their deadline).
  const texts = () =>
    sub.deliveries.filter((d) => d.attempt === 1).map((d) => Buffer.from(d.data).toString());
  try {
    await relayReady(a, adminA);
    // Before: relayed and deleted on the old primary.
    await commitRows(a, adminA, ["r1", "r2", "r3"]);
    await sub.until(() => texts().length >= 3, 30_000, "rows before the switch");
    for (let i = 0; (await outboxLeft(a, adminA)) > 0; i++) {
      assert.ok(i < 300, "the relay deletes the rows it relayed");
      await new Promise((r) => setTimeout(r, 50));
    }

    // The switchover: the old primary turns read-only. Rows committed as it does (the admin
    // user bypasses read_only) are relayed, but the relay cannot delete them there.
    await a.query(adminA, "SET GLOBAL read_only = ON");
    readOnly = true;
    await commitRows(a, adminA, ["r4", "r5"]);
    await sub.until(() => texts().length >= 5, 30_000, "rows committed during the switch");
    assert.equal(await outboxLeft(a, adminA), 2, "the old primary kept the rows it could not delete");

    // The promoted server gets the data (r4 and r5 still in its outbox), then the name moves.
    copyDatabase(adminA, adminB, db);
    proxy.target = portOf(adminB);
    // After: committed on the new primary.
    await commitRows(b, adminB, ["r6", "r7"]);
    await sub.until(() => texts().length >= 7, 60_000, "rows committed on the new primary");
    for (let i = 0; (await outboxLeft(b, adminB)) > 0; i++) {
      assert.ok(i < 600, "the relay deletes on the new primary what it relayed, r4 and r5 included");
      await new Promise((r) => setTimeout(r, 50));
    }

    // Nothing twice: a message published after the outbox emptied comes right after r1..r7.
    await client.publish("orders", ["end"]);
    await sub.until(() => texts().includes("end"), 20_000, "the end marker");
    assert.deepEqual(texts(), ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "end"]);

    // The log: the relay's failed delete named the server as the store's errors do; its pool
    // said when the server turned read-only and when writes worked again.
    const server = `127.0.0.1:${proxy.port}`;
    const failed = lines.find((l) => l.msg === "outbox relay failed; recovering and retrying");
    assert.ok(
      String(failed?.err).includes(`the MySQL server at ${server} is read-only`),
      JSON.stringify(lines),
    );
    assert.deepEqual(
      lines.filter((l) => l.server === server).map((l) => [l.level, l.msg]),
      [
        ["warn", "the MySQL server is read-only; reconnecting until it takes writes"],
        ["info", "the MySQL server takes writes again"],
      ],
    );
  } finally {
    if (readOnly) await a.query(adminA, "SET GLOBAL read_only = OFF");
    await sub.end().catch(() => undefined);
    client.close();
    await bus.stop();
    proxy.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
