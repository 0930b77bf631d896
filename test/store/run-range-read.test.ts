import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import mysql from "mysql2/promise";
import type { TopicRecord } from "../../src/core/index.js";
import { MysqlRunLog, runsOverlappingSql, SqliteRunLog } from "../../src/store/index.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

const topic = { id: 7 } as TopicRecord;
const TABLE = "nb_run_7_0";
/** 200 runs of 10 seqs in one shard table, every second run (as with 2 shards), some removed. */
const RUNS = Array.from({ length: 200 }, (_, k) => ({ first: k * 20 + 1, last: k * 20 + 10 })).filter(
  (_, k) => k % 17 !== 5,
);
/** Ranges at the start, middle and end of the log, inside a run, across holes, beyond the end. */
const RANGES: [number, number][] = [
  [1, 1],
  [5, 25],
  [11, 20],
  [104, 140],
  [1000, 1500],
  [2005, 2005],
  [2500, 2600],
  [3990, 4100],
  [5000, 6000],
];

/** What overlaps [from, to], by brute force. */
const expected = (from: number, to: number) =>
  RUNS.filter((r) => r.last >= from && r.first <= to).map((r) => r.first);

const row = (r: { first: number; last: number }) => [r.first, r.last, 0, 0, 10, Buffer.alloc(2000, 1), null];
const INSERT = `INSERT INTO ${TABLE} (first_seq, last_seq, first_time, last_time, bytes, body, ids) VALUES (?, ?, ?, ?, ?, ?, ?)`;

test("mysql: a range read of runs finds exactly the runs it overlaps, reading no row outside them", async () => {
  const server = testMysql();
  const url = await server.database("run_range_read");
  const conn = await mysql.createConnection({ uri: url, supportBigNumbers: true });
  try {
    await conn.query(MysqlRunLog.tableSql(topic, 0));
    for (const r of RUNS) await conn.execute(INSERT, row(r));
    await conn.query(`ANALYZE TABLE ${TABLE}`);
    for (const [from, to] of RANGES) {
      await conn.query("FLUSH STATUS");
      const [rows] = await conn.execute<mysql.RowDataPacket[]>(runsOverlappingSql(TABLE, "first_seq"), [
        from,
        to,
      ]);
      const [status] = await conn.query<mysql.RowDataPacket[]>(
        "SHOW SESSION STATUS WHERE Variable_name IN ('Handler_read_next', 'Handler_read_prev', 'Handler_read_rnd_next')",
      );
      const got = rows.map((r) => Number(r.first_seq)).sort((a, b) => a - b);
      assert.deepEqual(got, expected(from, to), `runs of [${from}, ${to}]`);
      // Index steps: the rows returned and the one past the end of each index range, never a
      // walk to the end of the table or from its start (the plain `last_seq >= ? AND
      // first_seq <= ?` stepped through every earlier row, bodies and all, at the start of the
      // log, and through every later index entry further on).
      const steps = status.reduce((n, s) => n + Number(s.Value), 0);
      assert.ok(steps <= got.length + 2, `[${from}, ${to}]: ${steps} index steps for ${got.length} runs`);
    }
  } finally {
    await conn.end();
  }
});

test("sqlite: a range read of runs finds exactly the runs it overlaps", () => {
  const dir = mkdtempSync(join(tmpdir(), "nervebus-run-range-"));
  const db = new Database(join(dir, "runs.db"));
  try {
    db.exec(SqliteRunLog.tableSql(topic, 0));
    const insert = db.prepare(INSERT);
    for (const r of RUNS) insert.run(...row(r));
    const read = db.prepare(runsOverlappingSql(TABLE, "first_seq"));
    for (const [from, to] of RANGES) {
      const got = (read.all(from, to) as { first_seq: number }[])
        .map((r) => r.first_seq)
        .sort((a, b) => a - b);
      assert.deepEqual(got, expected(from, to), `runs of [${from}, ${to}]`);
    }
    // The rows are a primary-key range, not a scan of the last_seq index to its end.
    const plan = (
      db.prepare(`EXPLAIN QUERY PLAN ${runsOverlappingSql(TABLE, "first_seq")}`).all(1, 2) as {
        detail: string;
      }[]
    ).map((p) => p.detail);
    assert.ok(
      plan.some((d) => /SEARCH .*(INTEGER PRIMARY KEY|rowid).*>.*<|rowid>\?.*rowid<\?/.test(d)),
      plan.join("; "),
    );
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
