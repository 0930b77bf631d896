import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { test } from "node:test";
import mysql from "mysql2/promise";
import { NerveBusError, OutOfSpaceError } from "../../src/core/index.js";
import { isOutOfSpace, MysqlStore, mapStoreError } from "../../src/store/index.js";
import { freePort, useTestMysql } from "../support/mariadb.js";

// Each test makes mysql2 produce a real error code, from a real MariaDB or from a socket that
// misbehaves as a dead server does, and checks how src/store/errors.ts reads it (its comments
// name these tests).

const testMysql = useTestMysql();

function open(url: string): Promise<MysqlStore> {
  return MysqlStore.open({ url, poolSize: 2, allowUnsafeDurability: false, log: () => {} });
}

/** Asserts that opening the store fails with UNAVAILABLE caused by the driver code `code`. */
async function assertOpenUnavailable(url: string, code: string): Promise<void> {
  await assert.rejects(open(url), (err: unknown) => {
    assert.ok(err instanceof NerveBusError, String(err));
    assert.equal(err.code, "unavailable", err.message);
    assert.equal((err.cause as { code?: unknown }).code, code, err.message);
    return true;
  });
}

/** Asserts that `err` carries driver code `code` (none: undefined) and maps to UNAVAILABLE. */
function assertTransient(err: unknown, code: string | undefined): true {
  assert.equal((err as { code?: unknown }).code, code, String(err));
  const mapped = mapStoreError(err, "testing");
  assert.equal(mapped.code, "unavailable");
  assert.equal(mapped.cause, err);
  return true;
}

async function connectionId(c: mysql.Connection): Promise<number> {
  const [rows] = await c.query<mysql.RowDataPacket[]>("SELECT CONNECTION_ID() AS id");
  return Number(rows[0]!.id);
}

/** Waits until connection `id` runs a statement that starts with `prefix` (as seen by `via`). */
async function runningStatement(via: mysql.Connection, id: number, prefix: string): Promise<void> {
  for (;;) {
    const [rows] = await via.query<mysql.RowDataPacket[]>(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE CONCAT(?, '%')",
      [id, prefix],
    );
    if (Number(rows[0]!.n) === 1) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A TCP server on a loopback port that treats every connection with `onConnection`. */
async function fakeServer(onConnection: (socket: Socket) => void): Promise<{ url: string; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.on("close", () => {
    for (const s of sockets) s.destroy();
  });
  const { port } = server.address() as { port: number };
  return { url: `mysql://u:p@127.0.0.1:${port}/db`, server };
}

test("connection refused: nothing listens on the port", async () => {
  await assertOpenUnavailable(`mysql://u:p@127.0.0.1:${await freePort()}/db`, "ECONNREFUSED");
});

test("connection reset: the server resets the connection", async () => {
  const { url, server } = await fakeServer((socket) => socket.resetAndDestroy());
  try {
    await assertOpenUnavailable(url, "ECONNRESET");
  } finally {
    server.close();
  }
});

test("connect timeout: the server accepts but never greets (the store waits connectTimeout, 5 s)", async () => {
  const { url, server } = await fakeServer(() => {});
  try {
    await assertOpenUnavailable(url, "ETIMEDOUT");
  } finally {
    server.close();
  }
});

test("server gone: a connection closed under a statement, or before the next one", async () => {
  const closing = await fakeServer((socket) => socket.end());
  try {
    await assertOpenUnavailable(closing.url, "PROTOCOL_CONNECTION_LOST");
  } finally {
    closing.server.close();
  }

  const url = await testMysql().database("errors_gone");
  const killer = await mysql.createConnection({ uri: url });
  const busy = await mysql.createConnection({ uri: url });
  const idle = await mysql.createConnection({ uri: url });
  try {
    busy.on("error", () => {});
    // Killed while it runs a statement: the statement loses its connection.
    const busyId = await connectionId(busy);
    const running = busy.query("SELECT SLEEP(30)").then(
      () => assert.fail("SLEEP(30) ended although its connection was killed"),
      (err: unknown) => err,
    );
    await runningStatement(killer, busyId, "SELECT SLEEP");
    await killer.query(`KILL CONNECTION ${busyId}`);
    assertTransient(await running, "PROTOCOL_CONNECTION_LOST");

    // Killed while idle: the driver has marked the connection failed, and the next statement is
    // refused with an error that has no code (mysql2's "closed state").
    const idleId = await connectionId(idle);
    // The driver reports the close as an error event of the idle connection.
    const closed = new Promise((resolve) => idle.once("error", resolve));
    await killer.query(`KILL CONNECTION ${idleId}`);
    await closed;
    await assert.rejects(idle.query("SELECT 1"), (err) => assertTransient(err, undefined));
  } finally {
    await killer.end();
    busy.destroy();
    idle.destroy();
  }
});

test("too many connections: max_connections reached", async () => {
  const url = await testMysql().database("errors_connections");
  const admin = await mysql.createConnection({ uri: url });
  // A user without privileges (the test user's SUPER lets it past the limit), which connects to
  // no database (it may use none; the limit is checked after that).
  await admin.query("DROP USER IF EXISTS 'nb_plain'@'127.0.0.1'");
  await admin.query("CREATE USER 'nb_plain'@'127.0.0.1' IDENTIFIED BY 'nb-plain'");
  const [vars] = await admin.query<mysql.RowDataPacket[]>("SELECT @@max_connections AS n");
  const before = Number(vars[0]!.n);
  const { hostname, port } = new URL(url);
  const held: mysql.Connection[] = [];
  try {
    // 10 is the least MariaDB accepts; the plain user's connections fill what is left of it.
    await admin.query("SET GLOBAL max_connections = 10");
    const connect = () =>
      mysql.createConnection({ host: hostname, port: Number(port), user: "nb_plain", password: "nb-plain" });
    let refused: unknown;
    for (let i = 0; i < 12 && refused === undefined; i++) {
      await connect().then(
        (c) => held.push(c),
        (err: unknown) => {
          refused = err;
        },
      );
    }
    assert.ok(refused !== undefined, "a connection beyond max_connections was refused");
    assertTransient(refused, "ER_CON_COUNT_ERROR");
  } finally {
    for (const c of held) await c.end();
    await admin.query(`SET GLOBAL max_connections = ${before}`);
    await admin.query("DROP USER IF EXISTS 'nb_plain'@'127.0.0.1'");
    await admin.end();
  }
});

test("deadlock and lock wait timeout: InnoDB asks the client to retry", async () => {
  const url = await testMysql().database("errors_locks");
  const a = await mysql.createConnection({ uri: url });
  const b = await mysql.createConnection({ uri: url });
  try {
    await a.query("CREATE TABLE t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB");
    await a.query("INSERT INTO t VALUES (1, 0), (2, 0)");

    // deadlock: each transaction holds the row the other one wants next.
    const aId = await connectionId(a);
    await a.query("START TRANSACTION");
    await b.query("START TRANSACTION");
    await a.query("UPDATE t SET v = 1 WHERE id = 1");
    await b.query("UPDATE t SET v = 1 WHERE id = 2");
    const aWaits = a.query("UPDATE t SET v = 2 WHERE id = 2");
    await runningStatement(b, aId, "UPDATE t SET v = 2");
    const bFails = b.query("UPDATE t SET v = 2 WHERE id = 1");
    // InnoDB rolls back one of the two; the other goes on.
    const outcomes = await Promise.allSettled([aWaits, bFails]);
    const failed = outcomes.filter((o) => o.status === "rejected");
    assert.equal(failed.length, 1);
    assertTransient((failed[0] as PromiseRejectedResult).reason, "ER_LOCK_DEADLOCK");
    await a.query("ROLLBACK");
    await b.query("ROLLBACK");

    // lock wait timeout: a row held longer than the waiter's innodb_lock_wait_timeout.
    await a.query("START TRANSACTION");
    await a.query("UPDATE t SET v = 3 WHERE id = 1");
    await b.query("SET SESSION innodb_lock_wait_timeout = 1");
    await assert.rejects(b.query("UPDATE t SET v = 4 WHERE id = 1"), (err) =>
      assertTransient(err, "ER_LOCK_WAIT_TIMEOUT"),
    );
    await a.query("ROLLBACK");
  } finally {
    await a.end();
    await b.end();
  }
});

test("creates its database: a URL naming a database that does not exist yet", async () => {
  const url = await testMysql().database("errors_create");
  await testMysql().query(url, "DROP DATABASE nbt_errors_create");
  const store = await open(url);
  try {
    const [db] = await testMysql().query(url, "SELECT DATABASE() AS d");
    assert.equal(db!.d, "nbt_errors_create");
    assert.deepEqual(await store.listTopics(), []);
  } finally {
    await store.close();
  }
});

test("table full: a MEMORY table past max_heap_table_size answers ER_RECORD_FILE_FULL (1114), read as out of disk space", async () => {
  const url = await testMysql().database("errors_full");
  const c = await mysql.createConnection({ uri: url });
  try {
    // 16 KiB, the smallest MariaDB allows: the table is full after a few rows. InnoDB answers
    // the same code when its tablespace cannot grow (a full disk, or a size limit).
    await c.query("SET SESSION max_heap_table_size = 16384");
    await c.query("CREATE TABLE m (b VARBINARY(1000)) ENGINE=MEMORY");
    let err: unknown;
    for (let i = 0; i < 1000 && err === undefined; i++)
      await c.query("INSERT INTO m VALUES (?)", [Buffer.alloc(1000, i % 256)]).catch((e: unknown) => {
        err = e;
      });
    assert.ok(err !== undefined, "the MEMORY table never filled");
    assert.equal((err as { code?: unknown }).code, "ER_RECORD_FILE_FULL", String(err));
    assert.equal((err as { errno?: unknown }).errno, 1114);
    assert.equal(isOutOfSpace(err), true);
    const mapped = mapStoreError(err, "inserting messages", "127.0.0.1:3306/nbt_errors_full");
    assert.equal(mapped.code, "resource_exhausted");
    assert.match(
      mapped.message,
      /^store is out of disk space \(127\.0\.0\.1:3306\/nbt_errors_full\) while inserting messages: /,
    );
    assert.equal(mapped.cause, err);
    assert.ok(mapped instanceof OutOfSpaceError);
    assert.equal(mapped.place, "127.0.0.1:3306/nbt_errors_full");
  } finally {
    await c.end();
  }
});

test("errno 28: MariaDB's words for ENOSPC in file and engine errors are read as out of disk space", () => {
  // Not forced here (MariaDB waits for space rather than answering when its disk fills); the
  // messages as MariaDB 10.11 words them (share/errmsg-utf8.txt with %M = errno and text).
  const driverError = (code: string, errno: number, sqlMessage: string) =>
    Object.assign(new Error(sqlMessage), { code, errno, sqlMessage });
  const full = [
    driverError(
      "ER_ERROR_ON_WRITE",
      1026,
      "Error writing file './db/t.ibd' (errno: 28 \"No space left on device\")",
    ),
    driverError("ER_GET_ERRNO", 1030, 'Got error 28 "No space left on device" from storage engine InnoDB'),
    driverError(
      "ER_CANT_CREATE_TABLE",
      1005,
      'Can\'t create table `db`.`t` (errno: 28 "No space left on device")',
    ),
    driverError(
      "ER_DISK_FULL",
      1021,
      'Disk full (./db/t.MAI); waiting for someone to free some space... (errno: 28 "No space left on device")',
    ),
  ];
  for (const err of full) {
    assert.equal(isOutOfSpace(err), true, err.message);
    assert.equal(mapStoreError(err, "writing").code, "resource_exhausted", err.message);
  }
  // Other errnos of the same errors are not a full disk.
  const other = driverError(
    "ER_ERROR_ON_WRITE",
    1026,
    "Error writing file './db/t.ibd' (errno: 5 \"Input/output error\")",
  );
  assert.equal(isOutOfSpace(other), false);
  assert.equal(mapStoreError(other, "writing").code, "internal");
  const engine = driverError("ER_GET_ERRNO", 1030, "Got error 280 from storage engine InnoDB");
  assert.equal(isOutOfSpace(engine), false);
});
