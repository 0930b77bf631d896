import assert from "node:assert/strict";
import { test } from "node:test";
import type mysql from "mysql2/promise";
import { createConnection } from "mysql2/promise";
import { MysqlStore } from "../../src/store/index.js";
import { prepareSchema } from "../../src/store/mysql/schema.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

test("mysql: a catalog made by an older version with case-insensitive names is converted to binary names at start-up", async () => {
  const server = testMysql();
  const url = await server.database("schema_upgrade");
  // The round-1 schema, in the server's default (case-insensitive) collation.
  await server.query(
    url,
    `CREATE TABLE nb_topics (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(128) NOT NULL,
       shards INT UNSIGNED NOT NULL, config TEXT NOT NULL, created_at BIGINT NOT NULL, UNIQUE KEY (name))
       CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`,
  );
  await server.query(
    url,
    `CREATE TABLE nb_subscriptions (topic_id INT UNSIGNED NOT NULL, name VARCHAR(128) NOT NULL, config TEXT NOT NULL,
       created_at BIGINT NOT NULL, PRIMARY KEY (topic_id, name)) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`,
  );
  await server.query(
    url,
    `CREATE TABLE nb_pointers (topic_id INT UNSIGNED NOT NULL, subscription VARCHAR(128) NOT NULL,
       ptr BIGINT UNSIGNED NOT NULL, state LONGBLOB NULL, PRIMARY KEY (topic_id, subscription))
       CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`,
  );
  await server.query(
    url,
    "INSERT INTO nb_topics (name, shards, config, created_at) VALUES ('orders', 1, '{}', 0)",
  );
  const store = await MysqlStore.open({ url, poolSize: 2, allowUnsafeDurability: false, log: () => {} });
  try {
    const collations = await server.query<mysql.RowDataPacket[]>(
      url,
      `SELECT CONCAT(TABLE_NAME, '.', COLUMN_NAME) AS col, COLLATION_NAME AS coll FROM information_schema.COLUMNS
         WHERE TABLE_SCHEMA = DATABASE() AND COLUMN_NAME IN ('name', 'subscription') ORDER BY col`,
    );
    assert.deepEqual(
      collations.map((r) => [r.col, r.coll]),
      [
        ["nb_pointers.subscription", "utf8mb4_bin"],
        ["nb_subscriptions.name", "utf8mb4_bin"],
        ["nb_topics.name", "utf8mb4_bin"],
      ],
    );
    const config = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };
    const upper = await store.ensureTopic("ORDERS", { shards: 1, config });
    assert.equal(upper?.created, true, "ORDERS is a topic of its own");
    assert.notEqual(upper?.topic.id, 1);
    assert.equal((await store.ensureTopic("orders", null))?.topic.id, 1, "the existing topic kept its id");
  } finally {
    await store.close();
  }
});

test("mysql: brokers preparing the schema of an empty database at the same moment all succeed (one adds each new column, the others find it)", async () => {
  const server = testMysql();
  for (let round = 0; round < 4; round++) {
    const url = await server.database(`schema_race_${round}`);
    const conns = await Promise.all([0, 1, 2, 3].map(() => createConnection(url)));
    try {
      const results = await Promise.allSettled(conns.map((c) => prepareSchema(c)));
      const failed = results.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
      assert.deepEqual(failed, [], `round ${round}`);
      const format = await server.query<mysql.RowDataPacket[]>(
        url,
        `SELECT COUNT(*) AS n FROM information_schema.COLUMNS
           WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'nb_topics' AND COLUMN_NAME = 'format'`,
      );
      assert.equal(Number(format[0]?.n), 1);
    } finally {
      await Promise.all(conns.map((c) => c.end()));
    }
  }
});
