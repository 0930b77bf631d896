import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type mysql from "mysql2/promise";
import { seqsOf, startBroker, TestClient } from "../support/broker.js";
import { useTestMysql } from "../support/mariadb.js";

/**
 * Databases written by the broker before format 2 (a row per message; test/fixtures/v1) open
 * with today's: their topic stays format 1 and keeps its messages, subscription state and
 * schedule; new publishes to it go on in format 1; new topics beside it are format 2.
 */
const FIXTURES = fileURLToPath(new URL("../../../test/fixtures/v1/", import.meta.url));
const testMysql = useTestMysql();

async function checkV1(store: string, tables: () => Promise<string[]>): Promise<void> {
  const bus = await startBroker(store);
  const client = new TestClient(bus.address);
  try {
    // billing acked 1–3 before the upgrade: it resumes at 4.
    const billing = client.receive("orders", "billing", { maxMessages: 100 });
    await billing.until(() => billing.deliveries.length >= 7);
    assert.deepEqual(seqsOf(billing.deliveries).slice(0, 7), [4, 5, 6, 7, 8, 9, 10]);
    const d = billing.deliveries[0]!;
    assert.equal(Buffer.from(d.data).toString(), "order 4");
    assert.deepEqual({ ...d.attributes, traceparent: "" }, { kind: "odd", "é✓": "ü", traceparent: "" });
    assert.equal(d.orderingKey, "k0");
    assert.equal(d.messageId, "id-4");
    // The delayed message fell due long ago: it is moved to the log once, as seq 11.
    await billing.until(() => billing.deliveries.some((x) => Buffer.from(x.data).toString() === "delayed"));
    const delayed = billing.deliveries.find((x) => Buffer.from(x.data).toString() === "delayed")!;
    assert.equal(delayed.seq, 11n);
    await billing.end();
    // New messages go on in format 1; a new topic is format 2.
    const more = await client.publish("orders", ["order 12"]);
    assert.equal(more.firstSeq, 12n);
    await client.publish("fresh", ["new"]);
    const all = client.receive("orders", "everything", { from: "earliest", maxMessages: 100 });
    await all.until(() => all.deliveries.length >= 12);
    assert.deepEqual(seqsOf(all.deliveries), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    await all.end();
  } finally {
    client.close();
    await bus.stop();
  }
  const names = await tables();
  assert.ok(names.includes("nb_msg_1_0") && names.includes("nb_msg_1_1"), `format-1 tables kept: ${names}`);
  assert.ok(!names.some((n) => n.startsWith("nb_run_1_")), "the old topic got no run tables");
  assert.ok(
    names.some((n) => /^nb_run_2_\d+$/.test(n)),
    `the new topic is format 2: ${names}`,
  );
}

test("a v1 SQLite database written before format 2 opens, keeps its messages and state, and grows", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-v1-"));
  const path = join(dir, "nervebus.db");
  copyFileSync(join(FIXTURES, "nervebus.db"), path);
  await checkV1(`sqlite:${path}`, async () => {
    const Database = (await import("better-sqlite3")).default;
    const db = new Database(path, { readonly: true });
    try {
      return (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]
      ).map((r) => r.name);
    } finally {
      db.close();
    }
  });
});

test("a v1 MySQL database written before format 2 opens, keeps its messages and state, and grows", async (t) => {
  const server = testMysql();
  const url = await server.database("v1_compat");
  const u = new URL(url);
  try {
    execFileSync(
      "mariadb",
      [
        "-h",
        u.hostname,
        "-P",
        u.port,
        "-u",
        decodeURIComponent(u.username),
        `-p${decodeURIComponent(u.password)}`,
        u.pathname.slice(1),
      ],
      { input: readFileSync(join(FIXTURES, "mysql.sql")) },
    );
  } catch (err) {
    t.skip(`cannot load the dump with the mariadb client: ${String(err)}`);
    return;
  }
  await checkV1(url, async () =>
    (await server.query<mysql.RowDataPacket[]>(url, "SHOW TABLES")).map((r) => String(Object.values(r)[0])),
  );
});
