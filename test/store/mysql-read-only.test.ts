import assert from "node:assert/strict";
import { test } from "node:test";
import mysql from "mysql2/promise";
import { NerveBusError, type TopicConfig } from "../../src/core/index.js";
import { MysqlStore, mapStoreError } from "../../src/store/index.js";
import { ServerPool } from "../../src/store/mysql/server-pool.js";
import { useTestMysql } from "../support/mariadb.js";

// A MySQL server made read-only (what failover tooling does to the old primary) refuses the
// writes of a user without READ ONLY ADMIN / SUPER: src/store/errors.ts reads that error, and
// the store's pool (src/store/mysql/server-pool.ts) replaces its connections when it sees it.

const testMysql = useTestMysql();

const ONE_SHARD = {
  shards: 1,
  config: { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false } satisfies TopicConfig,
};

/** A user with every right on the URL's database only, so read_only applies to it. */
async function narrowUser(url: string, user: string): Promise<string> {
  const u = new URL(url);
  const db = u.pathname.slice(1);
  await testMysql().query(url, `CREATE USER IF NOT EXISTS '${user}'@'127.0.0.1' IDENTIFIED BY 'pw'`);
  await testMysql().query(url, `GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${user}'@'127.0.0.1'`);
  u.username = user;
  u.password = "pw";
  return u.toString();
}

/** Connection ids of `user`'s sessions on the server. */
async function sessionsOf(url: string, user: string): Promise<number[]> {
  const rows = await testMysql().query<mysql.RowDataPacket[]>(
    url,
    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ? ORDER BY ID",
    [user],
  );
  return rows.map((r) => Number(r.ID));
}

async function setReadOnly(url: string, on: boolean): Promise<void> {
  await testMysql().query(url, `SET GLOBAL read_only = ${on ? "ON" : "OFF"}`);
}

test("read-only server: MariaDB's answer to a write is UNAVAILABLE", async () => {
  const admin = await testMysql().database("read_only_error");
  const url = await narrowUser(admin, "nb_ro_err");
  await testMysql().query(admin, "CREATE TABLE t (a INT)");
  const conn = await mysql.createConnection({ uri: url });
  await setReadOnly(admin, true);
  try {
    await assert.rejects(conn.query("INSERT INTO t VALUES (1)"), (err: unknown) => {
      assert.equal((err as { code?: unknown }).code, "ER_OPTION_PREVENTS_STATEMENT", String(err));
      assert.match(String(err), /--read-only option/);
      const mapped = mapStoreError(err, "testing");
      assert.equal(mapped.code, "unavailable", mapped.message);
      assert.equal(mapped.cause, err);
      return true;
    });
  } finally {
    await setReadOnly(admin, false);
    await conn.end();
  }
});

test("read-only server: the store's write fails with UNAVAILABLE naming the server, its connections are replaced, and it writes again once the server takes writes", async () => {
  const admin = await testMysql().database("read_only_store");
  const user = "nb_ro_store";
  const url = await narrowUser(admin, user);
  const store = await MysqlStore.open({ url, poolSize: 4, allowUnsafeDurability: false, log: () => {} });
  let readOnly = false;
  try {
    await store.ensureTopic("before", ONE_SHARD);
    const before = await sessionsOf(admin, user);
    assert.ok(before.length >= 2, `the pool and the lease's lock hold sessions: ${before}`);
    await setReadOnly(admin, true);
    readOnly = true;
    const server = new URL(url).host;
    await assert.rejects(store.ensureTopic("during", ONE_SHARD), (err: unknown) => {
      assert.ok(err instanceof NerveBusError, String(err));
      assert.equal(err.code, "unavailable", err.message);
      assert.ok(err.message.includes(`the MySQL server at ${server} is read-only`), err.message);
      assert.equal((err.cause as { code?: unknown }).code, "ER_OPTION_PREVENTS_STATEMENT");
      return true;
    });
    // Every session open before the error is closed (the pool's idle ones, the lock's): the
    // next statement dials the server again. Until then, none is reused.
    for (let i = 0; i < 100; i++) {
      const now = await sessionsOf(admin, user);
      if (!now.some((id) => before.includes(id))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const left = (await sessionsOf(admin, user)).filter((id) => before.includes(id));
    assert.deepEqual(left, [], "the sessions open before the read-only error are closed");
    await setReadOnly(admin, false);
    readOnly = false;
    // The lease was renewed meanwhile or is renewed now; the write then goes through.
    for (let attempt = 0; ; attempt++) {
      try {
        await store.ensureTopic("after", ONE_SHARD);
        break;
      } catch (err) {
        if (attempt >= 50 || !(err instanceof NerveBusError) || err.code !== "unavailable") throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const names = (await store.listTopics()).map((t) => t.name).sort();
    assert.deepEqual(names, ["after", "before"]);
  } finally {
    if (readOnly) await setReadOnly(admin, false);
    await store.close();
  }
});

test("read-only transactions: MariaDB's 1792 to a write in one is UNAVAILABLE", async () => {
  const url = await testMysql().database("read_only_transaction");
  await testMysql().query(url, "CREATE TABLE t (a INT)");
  const conn = await mysql.createConnection({ uri: url });
  try {
    // What every new session gets when the server's default transaction_read_only is ON.
    await conn.query("SET SESSION TRANSACTION READ ONLY");
    await assert.rejects(conn.query("INSERT INTO t VALUES (1)"), (err: unknown) => {
      assert.equal((err as { code?: unknown }).code, "ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION", String(err));
      assert.equal((err as { errno?: unknown }).errno, 1792);
      const mapped = mapStoreError(err, "testing");
      assert.equal(mapped.code, "unavailable", mapped.message);
      assert.equal(mapped.cause, err);
      return true;
    });
  } finally {
    await conn.end();
  }
});

test("read-only transactions: a ServerPool whose sessions get 1792 answers UNAVAILABLE naming the server and dials again", async () => {
  const url = await testMysql().database("read_only_tx_pool");
  await testMysql().query(url, "CREATE TABLE t (a INT)");
  // Sessions opened while `readOnly` holds start read-only, as every new session does on a
  // server whose default transaction_read_only is ON (SET GLOBAL would reach the test
  // harness's own sessions too).
  let readOnly = true;
  let pools = 0;
  const logs: string[] = [];
  const pool = new ServerPool(
    () => {
      pools++;
      const p = mysql.createPool({ uri: url, connectionLimit: 2 });
      const startReadOnly = readOnly;
      p.pool.on("connection", (conn) => {
        if (startReadOnly) conn.query("SET SESSION TRANSACTION READ ONLY", () => undefined);
      });
      return p;
    },
    new URL(url).host,
    (level, msg) => logs.push(`${level} ${msg}`),
    "store",
  );
  try {
    await assert.rejects(pool.query("INSERT INTO t VALUES (1)"), (err: unknown) => {
      assert.ok(err instanceof NerveBusError, String(err));
      assert.equal(err.code, "unavailable", err.message);
      assert.ok(err.message.includes(`the MySQL server at ${new URL(url).host} is read-only`), err.message);
      assert.equal((err.cause as { code?: unknown }).code, "ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION");
      return true;
    });
    assert.equal(pools, 2, "the read-only answer replaced the pool");
    readOnly = false;
    // The replacement was made while sessions still started read-only: it fails once more
    // and is replaced (at most once a second) by one whose sessions take writes.
    for (let attempt = 0; ; attempt++) {
      try {
        await pool.query("INSERT INTO t VALUES (2)");
        break;
      } catch (err) {
        if (attempt >= 50 || !(err instanceof NerveBusError) || err.code !== "unavailable") throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const rows = await testMysql().query(url, "SELECT a FROM t");
    assert.deepEqual(
      rows.map((r) => r.a),
      [2],
    );
    assert.deepEqual(logs, [
      "warn the MySQL server is read-only; reconnecting until it takes writes",
      "info the MySQL server takes writes again",
    ]);
  } finally {
    await pool.end();
  }
});

/** An error as mysql2 makes it from a server's answer: the message with its code's name. */
function serverError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

test("read-only server: the codes that also mean something else count only with the read-only text", () => {
  const cases: [Error, string][] = [
    // MySQL's wording for super_read_only.
    [
      serverError(
        "ER_OPTION_PREVENTS_STATEMENT",
        "The MySQL server is running with the --super-read-only option so it cannot execute this statement",
      ),
      "unavailable",
    ],
    [
      serverError(
        "ER_OPTION_PREVENTS_STATEMENT",
        "The MySQL server is running with the --secure-file-priv option so it cannot execute this statement",
      ),
      "internal",
    ],
    [
      serverError("ER_UNKNOWN_COM_ERROR", "WSREP has not yet prepared node for application use"),
      "unavailable",
    ],
    [serverError("ER_UNKNOWN_COM_ERROR", "Unknown command"), "internal"],
    [serverError("ER_READ_ONLY_MODE", "Running in read-only mode"), "unavailable"],
  ];
  for (const [err, code] of cases) assert.equal(mapStoreError(err, "testing").code, code, err.message);
});

test("read-only server: pools of one server (the store's, the cluster lease's) report it read-only until any of them writes again", async () => {
  const admin = await testMysql().database("read_only_siblings");
  const url = await narrowUser(admin, "nb_ro_siblings");
  await testMysql().query(admin, "CREATE TABLE t (a INT)");
  const server = new URL(url).host;
  const open = () =>
    new ServerPool(
      () => mysql.createPool({ uri: url, connectionLimit: 2 }),
      server,
      () => {},
      "store",
    );
  const store = open();
  const lease = open();
  let readOnly = false;
  try {
    assert.equal(ServerPool.readOnlyOf([store, lease]).readOnly, false, "never refused");
    await setReadOnly(admin, true);
    readOnly = true;
    await assert.rejects(store.query("INSERT INTO t VALUES (1)"), /read-only/);
    const refused = ServerPool.readOnlyOf([store, lease]);
    assert.equal(refused.readOnly, true, "the store's pool saw it");
    assert.equal(refused.server, server);
    assert.match(String(refused.error), /read-only/);
    assert.ok(refused.since > 0);

    await setReadOnly(admin, false);
    readOnly = false;
    // Only the lease's pool writes (an idle broker in a cluster renews its leases).
    await lease.query("INSERT INTO t VALUES (2)");
    assert.equal(store.readOnlyState().readOnly, true, "the store's pool has not written since");
    assert.equal(ServerPool.readOnlyOf([store, lease]).readOnly, false, "the lease's write tells");

    // Refused again later: read-only again, whichever pool saw it.
    await setReadOnly(admin, true);
    readOnly = true;
    await assert.rejects(lease.query("INSERT INTO t VALUES (3)"), /read-only/);
    assert.equal(ServerPool.readOnlyOf([store, lease]).readOnly, true);
  } finally {
    if (readOnly) await setReadOnly(admin, false);
    await store.end();
    await lease.end();
  }
});
