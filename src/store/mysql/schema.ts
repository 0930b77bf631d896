import type mysql from "mysql2/promise";
import { createLeaseTables } from "./lease.js";
import type { Queryable } from "./server-pool.js";

/**
 * Names compare byte for byte, as the broker's maps do: MySQL's and MariaDB's default
 * collations are case-insensitive, and `orders` and `ORDERS` would share a catalog row (and so
 * tables and seqs). utf8mb4_bin exists on MySQL 5.7+, 8 and MariaDB.
 */
const NAME_TYPE = "VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL";

/** Name columns of the catalog, each converted to NAME_TYPE if an older version made it otherwise. */
const NAME_COLUMNS: readonly { table: string; column: string }[] = [
  { table: "nb_topics", column: "name" },
  { table: "nb_subscriptions", column: "name" },
  { table: "nb_pointers", column: "subscription" },
];

/** Creates the catalog, pointer, lease and fence tables, and upgrades older ones. */
export async function prepareSchema(conn: mysql.Connection): Promise<void> {
  await conn.query(`
    CREATE TABLE IF NOT EXISTS nb_topics (
      id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name ${NAME_TYPE}, shards INT UNSIGNED NOT NULL,
      config TEXT NOT NULL, created_at BIGINT NOT NULL, UNIQUE KEY (name)) ENGINE=InnoDB`);
  await conn.query(`
    CREATE TABLE IF NOT EXISTS nb_subscriptions (
      topic_id INT UNSIGNED NOT NULL, name ${NAME_TYPE}, config TEXT NOT NULL,
      created_at BIGINT NOT NULL, PRIMARY KEY (topic_id, name)) ENGINE=InnoDB`);
  await conn.query(`
    CREATE TABLE IF NOT EXISTS nb_pointers (
      topic_id INT UNSIGNED NOT NULL, subscription ${NAME_TYPE}, ptr BIGINT UNSIGNED NOT NULL,
      state LONGBLOB NULL, PRIMARY KEY (topic_id, subscription)) ENGINE=InnoDB`);
  // Typed topics: a topic's declared protobuf message type and its descriptor set.
  await conn.query(`
    CREATE TABLE IF NOT EXISTS nb_topic_schemas (
      topic_id INT UNSIGNED NOT NULL PRIMARY KEY, message_type VARCHAR(512) NOT NULL,
      descriptor_set LONGBLOB NOT NULL, updated_at BIGINT NOT NULL) ENGINE=InnoDB`);
  await createLeaseTables(conn);
  // Catalogs made before format 2: their topics are format 1 (a row per message).
  await addColumn(conn, "nb_topics", "format", "TINYINT UNSIGNED NOT NULL DEFAULT 1");
  // Databases made before dead letters were remembered: their subscriptions have none on record.
  await addColumn(conn, "nb_pointers", "dead_letters", "LONGBLOB NULL");
  // Databases made before names were binary: the old unique keys were case-insensitive, so no
  // two stored names differ only in case and the conversion cannot fail on a duplicate.
  const [cols] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLLATION_NAME AS coll FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?) AND COLUMN_NAME IN (?)`,
    [NAME_COLUMNS.map((n) => n.table), NAME_COLUMNS.map((n) => n.column)],
  );
  for (const { table, column } of NAME_COLUMNS) {
    const found = cols.find((r) => r.t === table && r.c === column);
    if (found !== undefined && found.coll !== "utf8mb4_bin") {
      await conn.query(`ALTER TABLE ${table} MODIFY ${column} ${NAME_TYPE}`);
    }
  }
}

/** MySQL's "Duplicate column name". */
const ER_DUP_FIELDNAME = 1060;

/**
 * Adds `column` to `table` unless it is there. Brokers starting at the same moment on one
 * database all see it missing and all add it: one wins, the others get 1060, which means done.
 */
export async function addColumn(
  db: Queryable,
  table: string,
  column: string,
  definition: string,
): Promise<void> {
  const [found] = await db.query<mysql.RowDataPacket[]>(
    `SELECT 1 FROM information_schema.COLUMNS
       WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?`,
    [table, column],
  );
  if (found.length > 0) return;
  await db
    .query(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`)
    .catch((err: { errno?: number }) => {
      if (err.errno !== ER_DUP_FIELDNAME) throw err;
    });
}
