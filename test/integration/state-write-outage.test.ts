import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import type mysql from "mysql2/promise";
import { createSubscription } from "../dashboard/support.js";
import { type LogLine, startLoggingBroker, TestClient } from "../support/broker.js";
import { useTestMysql } from "../support/mariadb.js";
import { withSqliteSide } from "../support/sqlite-side.js";

// Defect: while the store refused subscription-state writes, every retry (about every 50 ms per
// topic) logged the same warning: an outage of minutes wrote thousands of lines per topic. Now
// one warning when it starts, a reminder at most every 30 s, one info line when writes succeed
// again (src/core/outage-log.ts).

const testMysql = useTestMysql();

/** Failed state writes to wait for: well beyond one, so a line per retry would show. */
const FAILURES = 20;

test("mysql: while subscription-state writes fail the log has one warning, not one per retry, then one info line when they succeed, and the acks are persisted", async () => {
  const admin = await testMysql().database("state_outage");
  const db = new URL(admin).pathname.slice(1);
  // A broker user that read_only applies to (no READ ONLY ADMIN / SUPER).
  await testMysql().query(admin, "CREATE USER IF NOT EXISTS 'nbstate'@'127.0.0.1' IDENTIFIED BY 'pw'");
  await testMysql().query(admin, `GRANT ALL PRIVILEGES ON \`${db}\`.* TO 'nbstate'@'127.0.0.1'`);
  const url = `mysql://nbstate:pw@${new URL(admin).host}/${db}`;
  const lines: LogLine[] = [];
  const bus = await startLoggingBroker(url, lines);
  const client = new TestClient(bus.address);
  let readOnly = false;
  try {
    await client.publish("orders", ["m1", "m2", "m3", "m4", "m5"]);
    const sub = client.receive("orders", "billing", { confirmAcks: true });
    await sub.until(() => sub.deliveries.length >= 5);
    const acked = () => sub.responses.flatMap((r) => (r.ackResults?.ackedSeqs ?? []).map(Number));

    // Counts the subscription's state writes that the store refuses (it only watches them; the
    // topic's watermark goes through savePointers too, once after a publish).
    const store = bus.broker.store;
    const save = store.savePointers.bind(store);
    let failed = 0;
    store.savePointers = (topic, pointers) =>
      save(topic, pointers).catch((err: unknown) => {
        if (pointers.some((p) => p.subscription === "billing")) failed++;
        throw err;
      });

    await testMysql().query(admin, "SET GLOBAL read_only = ON");
    readOnly = true;
    sub.ack([1, 2, 3, 4, 5]);
    await sub.until(() => failed >= FAILURES, 30_000, `${FAILURES} failed state writes`);
    const about = (msg: RegExp) => lines.filter((l) => l.topic === "orders" && msg.test(l.msg));
    const warned = about(/subscription state/);
    assert.equal(warned.length, 1, `one line for ${failed} failed writes: ${JSON.stringify(warned)}`);
    assert.equal(warned[0]!.level, "warn");
    assert.match(String(warned[0]!.err), /read-only/, "the warning carries the error");
    assert.deepEqual(acked(), [], "no ack is confirmed before it is written");

    await testMysql().query(admin, "SET GLOBAL read_only = OFF");
    readOnly = false;
    await sub.until(() => acked().length >= 5, 30_000, "confirmation of the acks once writes succeed");
    assert.deepEqual(acked().sort(), [1, 2, 3, 4, 5]);
    const all = about(/subscription state/);
    assert.equal(all.length, 2, JSON.stringify(all));
    const ended = all[1]!;
    assert.equal(ended.level, "info");
    assert.equal(ended.msg, "subscription state is written again");
    assert.ok(Number(ended.failures) >= FAILURES, `failures counted: ${ended.failures}`);
    assert.ok(Number(ended.failingForMs) > 0, `duration: ${ended.failingForMs}`);
    await sub.end();

    // Persisted, not only confirmed: the subscription's floor in the database.
    const [row] = await testMysql().query<mysql.RowDataPacket[]>(
      admin,
      "SELECT p.ptr AS floor FROM nb_pointers p JOIN nb_topics t ON t.id = p.topic_id WHERE t.name = 'orders' AND p.subscription = 'billing'",
    );
    assert.equal(Number(row?.floor), 5);
  } finally {
    if (readOnly) await testMysql().query(admin, "SET GLOBAL read_only = OFF");
    client.close();
    await bus.stop();
  }
});

/** Failed watermark writes to wait for. */
const WATERMARK_FAILURES = 15;

// Defect: while the store refused the topic's watermark write (its pointer row) and messages
// went on committing, every attempt (about every 100 ms per topic) logged "persisting the
// watermark failed". Now it is an outage too. A trigger refuses only that row, so publishes
// keep committing and the watermark write is attempted again and again.
test("sqlite: while watermark writes fail the log has one warning, not one per attempt, then one info line when they succeed", () =>
  withSqliteSide(
    "watermark-outage",
    async ({ bus, client, lines, other }) => {
      await client.publish("orders", ["m0"]);
      const store = bus.broker.store;
      const save = store.savePointers.bind(store);
      let failed = 0;
      let saved = 0;
      store.savePointers = (topic, pointers) =>
        save(topic, pointers).then(
          () => {
            if (pointers.some((p) => p.subscription === "")) saved++;
          },
          (err: unknown) => {
            if (pointers.some((p) => p.subscription === "")) failed++;
            throw err;
          },
        );
      other.exec(`CREATE TRIGGER refuse_watermark BEFORE UPDATE ON nb_pointers WHEN NEW.subscription = ''
      BEGIN SELECT RAISE(ABORT, 'watermark writes refused by the test'); END`);
      for (let i = 1; failed < WATERMARK_FAILURES; i++) {
        await client.publish("orders", [`m${i}`]);
        await new Promise((r) => setTimeout(r, 50));
      }
      const about = () => lines.filter((l) => l.topic === "orders" && /watermark/.test(l.msg));
      const warned = about();
      assert.equal(warned.length, 1, `one line for ${failed} failed writes: ${JSON.stringify(warned)}`);
      assert.equal(warned[0]!.level, "warn");
      assert.match(String(warned[0]!.err), /refused by the test/, "the warning carries the error");

      other.exec("DROP TRIGGER refuse_watermark");
      const before = saved;
      for (let i = 0; saved === before; i++) {
        await client.publish("orders", [`after${i}`]);
        await new Promise((r) => setTimeout(r, 50));
      }
      const all = about();
      assert.equal(all.length, 2, JSON.stringify(all));
      assert.equal(all[1]!.level, "info");
      assert.equal(all[1]!.msg, "the watermark is written again");
      assert.ok(Number(all[1]!.failures) >= WATERMARK_FAILURES, `failures counted: ${all[1]!.failures}`);
    },
    5000,
  ));

/** Failed reads of stored messages to wait for (one a second). */
const READ_FAILURES = 4;

// Defect: while reads of stored messages failed, a subscription read again at every dispatch
// (its 1 s pause after a failure was not checked there) and logged "subscription work failed;
// retrying" each time: ~500 lines a second. Now reads pause, and the failures are an outage.
// The broker restarts, so the subscription's messages are not in the tail cache and come from
// the store; another connection renames the topic's tables away meanwhile (SQLite answers "no
// such table"), then back.
test("sqlite: while a subscription's reads of stored messages fail the log has one warning, then one info line when they succeed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-read-outage-"));
  const path = join(dir, "bus.db");
  const first = await startLoggingBroker(`sqlite:${path}`, []);
  const firstClient = new TestClient(first.address);
  try {
    await firstClient.publish("orders", ["m1", "m2", "m3"]);
    // Nothing delivered yet: its messages must be read from the store after the restart.
    await createSubscription(firstClient, "orders", "billing");
  } finally {
    firstClient.close();
    await first.stop();
  }
  const lines: LogLine[] = [];
  const bus = await startLoggingBroker(`sqlite:${path}`, lines);
  const client = new TestClient(bus.address);
  const other = new Database(path, { timeout: 5000 });
  const tables = () =>
    (
      other.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'nb_run_*'").all() as {
        name: string;
      }[]
    ).map((t) => t.name);
  let renamed: string[] = [];
  try {
    // Loads the topic (its recovery reads the tables) before they go.
    const warm = client.receive("orders", "warmup", { from: "latest" });
    await warm.until(() => warm.responses.some((r) => r.subscribed !== undefined));
    await warm.end();
    const store = bus.broker.store;
    const readRuns = store.readRuns!.bind(store);
    let failed = 0;
    store.readRuns = (...args) =>
      readRuns(...args).catch((err: unknown) => {
        failed++;
        throw err;
      });
    renamed = tables();
    assert.ok(renamed.length > 0, "the topic has run tables");
    for (const t of renamed) other.exec(`ALTER TABLE ${t} RENAME TO away_${t}`);
    const sub = client.receive("orders", "billing");
    await sub.until(() => failed >= READ_FAILURES, 30_000, `${READ_FAILURES} failed reads`);
    // Reads pause a second after a failure: a read per dispatch made ~2000 by the time the
    // 4th was seen (a busy loop on the store).
    assert.ok(failed <= READ_FAILURES + 2, `reads pause after a failure: ${failed} failed reads`);
    const about = () => lines.filter((l) => l.subscription === "billing" && /subscription work/.test(l.msg));
    const warned = about();
    assert.equal(warned.length, 1, `one line for ${failed} failed reads: ${JSON.stringify(warned)}`);
    assert.equal(warned[0]!.level, "warn");
    assert.match(String(warned[0]!.err), /no such table/, "the warning carries the error");

    for (const t of renamed) other.exec(`ALTER TABLE away_${t} RENAME TO ${t}`);
    renamed = [];
    await sub.until(() => sub.deliveries.length >= 3, 30_000, "the stored messages once reads succeed");
    const all = about();
    assert.equal(all.length, 2, JSON.stringify(all));
    assert.equal(all[1]!.level, "info");
    assert.equal(all[1]!.msg, "subscription work succeeds again");
    assert.ok(Number(all[1]!.failures) >= READ_FAILURES, `failures counted: ${all[1]!.failures}`);
    await sub.end();
  } finally {
    for (const t of renamed) other.exec(`ALTER TABLE away_${t} RENAME TO ${t}`);
    other.close();
    client.close();
    await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Failed message writes to wait for: past the 10th, where the old code logged again. */
const WRITE_FAILURES = 12;

// Defect: a failed message write logged "shard write failed; retrying" at every 10th attempt
// per shard (one line every ~10 s per shard and topic once the backoff reaches 2 s). Now an
// outage per topic. Another connection holds the SQLite write lock, so the INSERTs get
// SQLITE_BUSY and are retried.
test("sqlite: while message writes fail the log has one warning, then one info line when they are written, and the pack is confirmed", () =>
  withSqliteSide("write-outage", async ({ bus, client, lines, other: locker }) => {
    await client.publish("orders", ["m1"]);
    const store = bus.broker.store;
    const insert = store.insertRuns.bind(store);
    let failed = 0;
    store.insertRuns = (...args) =>
      insert(...args).catch((err: unknown) => {
        failed++;
        throw err;
      });
    locker.exec("BEGIN IMMEDIATE");
    const published = client.publish("orders", ["m2"], 60_000);
    const sub = client.receive("orders", "watch", { from: "latest" });
    await sub.until(() => failed >= WRITE_FAILURES, 30_000, `${WRITE_FAILURES} failed writes`);
    const about = () => lines.filter((l) => l.topic === "orders" && /messages|shard write/.test(l.msg));
    const warned = about();
    assert.equal(warned.length, 1, `one line for ${failed} failed writes: ${JSON.stringify(warned)}`);
    assert.equal(warned[0]!.level, "warn");
    assert.match(String(warned[0]!.err), /busy|locked/i, "the warning carries the error");

    locker.exec("COMMIT");
    assert.equal(Number((await published).firstSeq), 2);
    const all = about();
    assert.equal(all.length, 2, JSON.stringify(all));
    assert.equal(all[1]!.level, "info");
    assert.equal(all[1]!.msg, "messages are written again");
    assert.ok(Number(all[1]!.failures) >= WRITE_FAILURES, `failures counted: ${all[1]!.failures}`);
    await sub.end();
  }));

// Defect: a topic unloaded (lost to another broker, deleted) while its subscription-state write
// was failing kept writing that state: the failed write in progress scheduled its retry after the
// unload had stopped the timer, and so on for ever. With --cluster the retry landed once the
// broker owned the topic again, over the acks its owner in between had written (the ended claim
// is now refused by the store as well, test/integration/mysql-cluster-claim.test.ts).
test("sqlite: a topic deleted while its subscription-state write is failing stops writing that state", () =>
  withSqliteSide("state-unload", async ({ bus, client, other }) => {
    await client.publish("orders", ["m1", "m2"]);
    const sub = client.receive("orders", "billing");
    await sub.until(() => sub.deliveries.length >= 2);
    other.exec(`CREATE TRIGGER refuse_state_update BEFORE UPDATE ON nb_pointers WHEN NEW.subscription = 'billing'
      BEGIN SELECT RAISE(ABORT, 'state writes refused by the test'); END;
      CREATE TRIGGER refuse_state_insert BEFORE INSERT ON nb_pointers WHEN NEW.subscription = 'billing'
      BEGIN SELECT RAISE(ABORT, 'state writes refused by the test'); END`);
    // Each state write takes 300 ms before the store refuses it, so the deletion below starts
    // while one is in progress.
    const store = bus.broker.store;
    const save = store.savePointers.bind(store);
    let attempts = 0;
    let started: () => void = () => undefined;
    store.savePointers = async (topic, pointers) => {
      if (!pointers.some((p) => p.subscription === "billing")) return save(topic, pointers);
      attempts++;
      started();
      await new Promise((r) => setTimeout(r, 300));
      return save(topic, pointers);
    };
    sub.ack([1, 2]);
    await new Promise<void>((r) => (started = r));
    await sub.end().catch(() => undefined);
    await client.adminCall("deleteTopic", { name: "orders" });
    const after = attempts;
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(after >= 1, "a state write was in progress when the topic was deleted");
    assert.equal(attempts, after, "no state write of the deleted topic after its deletion");
  }));
