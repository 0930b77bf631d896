import assert from "node:assert/strict";
import { test } from "node:test";
import mysql from "mysql2/promise";
import { LogMessage } from "../../src/core/index.js";
import { MysqlStore } from "../../src/store/mysql/mysql-store.js";
import { dropParameterDefinitions } from "../../src/store/mysql/server-pool.js";
import { INSERT_ROW_BUCKETS, insertRowsBucket } from "../../src/store/mysql/shard-inserter.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();
const CONFIG = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };

test("row buckets: every batch size 1…5000 fits a bucket at most a quarter larger", () => {
  assert.equal(INSERT_ROW_BUCKETS[0], 1);
  assert.equal(INSERT_ROW_BUCKETS[INSERT_ROW_BUCKETS.length - 1], 5000);
  for (let rows = 1; rows <= 5000; rows++) {
    const n = insertRowsBucket(rows);
    assert.ok(n >= rows && n <= Math.max(rows + 1, Math.ceil(rows * 1.25)), `${rows} rows → ${n}`);
  }
  assert.throws(() => insertRowsBucket(5001), RangeError);
});

test("mysql: padded batches store each row once, with its own content", async () => {
  const url = await testMysql().database("insert_pad");
  const store = await MysqlStore.open({ url, poolSize: 2, allowUnsafeDurability: false, log: () => {} });
  try {
    // Padding is how format 1 (a row per message) INSERTs.
    const { topic } = (await store.ensureTopic("t", { shards: 1, config: CONFIG, format: 1 }))!;
    // Sizes that need padding (9 → 10, 500 → 571), with the smallest row in the middle.
    let seq = 0;
    const written: LogMessage[] = [];
    for (const count of [1, 9, 500, 4999]) {
      const batch = Array.from({ length: count }, (_, i) => {
        seq++;
        const data = i === Math.floor(count / 2) ? Buffer.alloc(0) : Buffer.from(`payload-${seq}`.repeat(3));
        return LogMessage.of(seq, 1000 + seq, data, {
          attributes: { k: `v${seq}` },
          orderingKey: "",
          messageId: "",
        });
      });
      await store.insertMessages(topic, 0, batch);
      written.push(...batch);
    }
    const read = await store.readMessages(topic, 1, seq);
    assert.equal(read.length, written.length);
    for (let i = 0; i < read.length; i++) {
      const [r, w] = [read[i]!, written[i]!];
      assert.equal(r.seq, w.seq);
      assert.equal(r.publishTime, w.publishTime);
      assert.deepEqual(Buffer.from(r.data), Buffer.from(w.data));
      assert.deepEqual(r.attributes, w.attributes);
    }
  } finally {
    await store.close();
  }
});

test("mysql: a prepared statement's placeholder definitions can be dropped and it still executes", async () => {
  // Guards the mysql2 internals dropParameterDefinitions relies on: if an upgrade renames
  // them, this fails instead of the heap silently filling up again.
  const url = await testMysql().database("insert_defs");
  const conn = await mysql.createConnection({ uri: url });
  try {
    await conn.query("CREATE TABLE t (a BIGINT NOT NULL PRIMARY KEY, b LONGBLOB NOT NULL)");
    const stmt = await conn.prepare(`INSERT INTO t (a, b) VALUES ${"(?,?),".repeat(99)}(?,?)`);
    const info = (stmt as unknown as { statement: { parameters: unknown[] } }).statement;
    assert.equal(info.parameters.length, 200, "mysql2 keeps one definition per placeholder");
    dropParameterDefinitions(stmt);
    assert.equal(info.parameters.length, 0);
    await stmt.execute(Array.from({ length: 100 }, (_, i) => [i + 1, Buffer.from(`b${i}`)]).flat());
    const [rows] = await conn.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS c FROM t");
    assert.equal(Number(rows[0]!.c), 100);
  } finally {
    await conn.end();
  }
});
