import type mysql from "mysql2/promise";
import type { LogMessage, TopicRecord } from "../../core/index.js";
import { shardTable } from "../codec.js";
import type { FencedPool } from "./fenced-pool.js";
import { dropParameterDefinitions, type Queryable } from "./server-pool.js";

/**
 * Row counts a prepared INSERT exists for: 1…5000 in steps of about a quarter, so a batch is
 * padded by at most 25 % and a table needs at most 38 statements.
 */
export const INSERT_ROW_BUCKETS: readonly number[] = (() => {
  const sizes: number[] = [];
  for (let n = 1; n < 5000; n = Math.max(n + 1, Math.floor(n * 1.25))) sizes.push(n);
  sizes.push(5000);
  return sizes;
})();

/** The smallest bucket holding `rows` rows. */
export function insertRowsBucket(rows: number): number {
  for (const n of INSERT_ROW_BUCKETS) if (n >= rows) return n;
  throw new RangeError(`an INSERT holds at most 5000 rows, not ${rows}`);
}

const MESSAGE_COLUMNS = ["seq", "published_at", "meta", "data"] as const;
const insertSqls = new Map<string, string>();

/**
 * The INSERT of `n` rows of `columns` into `table`, cached (mysql2 keys its prepared statements
 * by text). Idempotent: a row whose key exists is kept as it is (the duplicate-key clause sets
 * the first column to itself; portable to MySQL 8 and MariaDB, unlike VALUES() aliases), and the
 * caller checks that it holds the same content.
 */
export function multiRowInsert(table: string, columns: readonly string[], n: number): string {
  const key = `${table}/${n}/${columns.join(",")}`;
  let sql = insertSqls.get(key);
  if (sql === undefined) {
    const row = `(${columns.map(() => "?").join(",")})`;
    sql = `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${`${row},`.repeat(n - 1)}${row} ON DUPLICATE KEY UPDATE ${columns[0]} = ${columns[0]}`;
    insertSqls.set(key, sql);
  }
  return sql;
}

/**
 * Within an insert's transaction (or after one that stored nothing new): every item whose key
 * already exists (per `sql`, keyed by `keyColumn`) must be `same` as stored; the first that is
 * not throws `onConflict`'s error.
 */
export async function checkStored<T>(
  conn: Queryable,
  sql: string,
  params: unknown[],
  keyColumn: string,
  items: readonly T[],
  keyOf: (item: T) => number,
  same: (stored: mysql.RowDataPacket, item: T) => boolean,
  onConflict: (item: T) => Error,
): Promise<void> {
  const [stored] = await conn.query<mysql.RowDataPacket[]>(sql, params);
  const byKey = new Map<number, mysql.RowDataPacket>();
  for (const r of stored) byKey.set(Number(r[keyColumn]), r);
  for (const item of items) {
    const r = byKey.get(keyOf(item));
    if (r !== undefined && !same(r, item)) throw onConflict(item);
  }
}

/**
 * Writes shard batches: one prepared multi-row INSERT per batch, in a fenced transaction of
 * the shard's own slot. A row already at a seq must hold the same message (a retried write
 * whose commit outcome was lost); anything else means two writers and ends this broker's
 * ownership.
 */
export class ShardInserter {
  constructor(private readonly db: FencedPool) {}

  async insert(topic: TopicRecord, shard: number, rows: readonly LogMessage[]): Promise<void> {
    // A prepared multi-row INSERT (binary protocol): payloads and metadata travel as they are,
    // with no hex text for mysql2 to build and MariaDB to parse (half the client CPU per row
    // of the text protocol in bench/raw.ts). Statements exist for a few row counts only, so a
    // connection prepares a handful per table; a batch is padded up to the next count by
    // repeating its smallest row (at most a quarter more rows, of at most a quarter more bytes),
    // which the duplicate-key clause turns into a no-op.
    const n = insertRowsBucket(rows.length);
    let smallest = 0;
    if (n > rows.length) {
      for (let i = 1; i < rows.length; i++)
        if (rows[i]!.data.byteLength < rows[smallest]!.data.byteLength) smallest = i;
    }
    const values: (number | Buffer)[] = new Array(n * 4);
    for (let i = 0, v = 0; i < n; i++) {
      const r = rows[i < rows.length ? i : smallest]!;
      values[v++] = r.seq;
      values[v++] = r.publishTime;
      values[v++] = r.meta;
      values[v++] = Buffer.isBuffer(r.data)
        ? r.data
        : Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
    }
    const table = shardTable(topic.id, shard);
    const sql = multiRowInsert(table, MESSAGE_COLUMNS, n);
    await this.db.fenced("inserting messages", topic, shard, async (conn) => {
      const stmt = await conn.prepare(sql); // cached per connection by mysql2
      dropParameterDefinitions(stmt);
      const [res] = (await stmt.execute(values)) as unknown as [mysql.ResultSetHeader];
      // Each new row counts 1 and each kept duplicate 0 (see the FOUND_ROWS flag), the padding
      // included: fewer means some seqs were there already, legitimately only as a retry of a
      // write whose commit outcome was lost, with the very same content.
      if (res.affectedRows !== rows.length) await this.#checkExisting(conn, topic, table, rows);
    });
  }

  /**
   * Within the insert's transaction: every row of `rows` that already existed must hold the same
   * message. Another writer's row at one of these seqs means two brokers assigned the same seqs;
   * that is never a success: the write rolls back and this broker stops writing.
   */
  async #checkExisting(
    conn: mysql.PoolConnection,
    topic: TopicRecord,
    table: string,
    rows: readonly LogMessage[],
  ): Promise<void> {
    await checkStored(
      conn,
      `SELECT seq, published_at, meta, data FROM ${table} WHERE seq BETWEEN ? AND ?`,
      [rows[0]!.seq, rows[rows.length - 1]!.seq],
      "seq",
      rows,
      (row) => row.seq,
      (r, row) =>
        Number(r.published_at) === row.publishTime &&
        Buffer.compare(r.meta as Buffer, row.meta) === 0 &&
        Buffer.compare(
          r.data as Buffer,
          Buffer.from(row.data.buffer, row.data.byteOffset, row.data.byteLength),
        ) === 0,
      (row) =>
        this.db.lease.markLost(
          topic,
          `seq ${row.seq} of topic ${topic.name} already holds a different message: another writer assigned this topic's seqs`,
        ),
    );
  }
}
