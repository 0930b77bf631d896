import mysql from "mysql2/promise";
import {
  type LoggedIds,
  type LogMessage,
  NerveBusError,
  type NewMessage,
  type OwnershipState,
  type PointerRecord,
  type ScheduledMessage,
  type Store,
  type StoreCapabilities,
  type SubscriptionConfig,
  type SubscriptionRecord,
  type TopicConfig,
  type TopicRecord,
} from "../../core/index.js";
import {
  contiguousEnd,
  decodeConfig,
  decodeIds,
  decodeRow,
  decodeScheduled,
  encodeConfig,
  encodeScheduledMeta,
  mergeBySeq,
  scheduleTable,
  shardTable,
} from "../codec.js";
import { mapStoreError } from "../errors.js";
import { Lease } from "./lease.js";
import { prepareSchema } from "./schema.js";

export interface MysqlStoreOptions {
  /** mysql://user:pass@host:port/database */
  readonly url: string;
  /** Connections in the pool: one per shard writer in flight, plus readers. */
  readonly poolSize: number;
  /** Start even when innodb_flush_log_at_trx_commit is not 1 (a commit may then be lost). */
  readonly allowUnsafeDurability: boolean;
  /** Store lease timing (see Lease); defaults 5000 / 1000 / ttl + renew. */
  readonly leaseTtlMs?: number;
  readonly leaseRenewMs?: number;
  readonly leaseWaitMs?: number;
  /** Called once if another broker takes the database: this one must stop serving. */
  readonly onOwnershipLost?: (err: NerveBusError) => void;
  readonly log: (level: "warn" | "info" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

type MsgRow = { seq: number; published_at: number; meta: Buffer; data: Buffer };

function toTopic(r: mysql.RowDataPacket): TopicRecord {
  return {
    id: Number(r.id),
    name: String(r.name),
    shards: Number(r.shards),
    createdAt: Number(r.created_at),
    config: decodeConfig<TopicConfig>(String(r.config)),
  };
}

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

/**
 * mysql2 keeps the server's description of every placeholder of a prepared statement (a
 * ColumnDefinition object, ~200 bytes with its strings) for as long as the statement is
 * cached, and uses it only as a type hint for JSON values, which these INSERTs never bind.
 * For multi-row INSERTs that is 4 per row: 170 MB of heap for the statements of a few shard
 * tables in the overload benchmark. Dropping them changes nothing else (mysql2 3.x).
 */
export function dropParameterDefinitions(stmt: unknown): void {
  const info = (stmt as { statement?: { parameters?: unknown[] } }).statement;
  if (Array.isArray(info?.parameters) && info.parameters.length > 0) info.parameters = [];
}

/** Prepared statements a pool connection keeps (LRU); see "Running on MySQL" in the README. */
export const MAX_PREPARED_PER_CONNECTION = 128;

/** The fence slot of a topic's writes that are not shard inserts (pointers, schedule, catalog). */
const META_SLOT = -1;

/** The smallest bucket holding `rows` rows. */
export function insertRowsBucket(rows: number): number {
  for (const n of INSERT_ROW_BUCKETS) if (n >= rows) return n;
  throw new RangeError(`an INSERT holds at most 5000 rows, not ${rows}`);
}

/**
 * The production store: sharded InnoDB tables over a mysql2 pool. One broker owns a database at
 * a time, by a lease (see Lease), and every write proves it inside its own transaction: it first
 * bumps its fence row (`nb_fence`, one per topic and writer) on the condition that the row still
 * holds this broker's epoch. A new owner raises the epoch before it reads anything, so once it
 * has, a write of the old owner matches no fence row and rolls back; its packs are never
 * confirmed. This holds however the old owner's connections came and went, and on clusters where
 * named locks are per node. A row found at a seq with other content is an error, never a success.
 */
export class MysqlStore implements Store {
  readonly capabilities: StoreCapabilities;
  readonly #pool: mysql.Pool;
  readonly #lease: Lease;
  readonly #insertSqls = new Map<string, string>();

  private constructor(pool: mysql.Pool, lease: Lease, capabilities: StoreCapabilities) {
    this.#pool = pool;
    this.#lease = lease;
    this.capabilities = capabilities;
  }

  /**
   * Connects, prepares the schema and takes the store lease (waiting for another broker's to
   * expire, up to `leaseWaitMs`). Throws FAILED_PRECONDITION when another broker keeps it.
   */
  static async open(options: MysqlStoreOptions): Promise<MysqlStore> {
    const url = new URL(options.url);
    const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
    if (database === "")
      throw new NerveBusError(
        "invalid_argument",
        "store: the MySQL URL names no database (mysql://USER:PASS@HOST:PORT/DB)",
      );
    const config: mysql.ConnectionOptions = {
      host: url.hostname,
      port: url.port === "" ? 3306 : Number(url.port),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database,
      supportBigNumbers: true,
      bigNumberStrings: false,
      dateStrings: true,
      connectTimeout: 5000,
      // Affected rows count changed rows only: a duplicate key kept as it is counts 0, which is
      // how insertMessages finds rows that were already there.
      flags: ["-FOUND_ROWS"],
    };
    let setup: mysql.Connection;
    try {
      setup = await mysql.createConnection(config);
    } catch (err) {
      if ((err as { code?: string }).code === "ER_BAD_DB_ERROR") {
        // Create the database on first start, as SQLite creates its file.
        const admin = await mysql.createConnection({ ...config, database: undefined }).catch((e: unknown) => {
          throw mapStoreError(e, `connecting to ${url.host}`);
        });
        await admin.query(`CREATE DATABASE IF NOT EXISTS ${mysql.escapeId(database)}`);
        await admin.end();
        setup = await mysql.createConnection(config);
      } else {
        throw mapStoreError(err, `connecting to ${url.host}`);
      }
    }
    let pool: mysql.Pool | undefined;
    try {
      const [vars] = await setup.query<mysql.RowDataPacket[]>(
        "SELECT @@innodb_flush_log_at_trx_commit AS flush, @@max_allowed_packet AS packet",
      );
      const flush = Number(vars[0]?.flush);
      const packet = Number(vars[0]?.packet);
      if (flush !== 1) {
        const msg = `innodb_flush_log_at_trx_commit is ${flush}, not 1: a confirmed publish can be lost if the MySQL server crashes`;
        if (!options.allowUnsafeDurability) {
          throw new NerveBusError(
            "failed_precondition",
            `${msg}. Set it to 1, or start with --mysql-allow-unsafe-durability`,
          );
        }
        options.log("warn", msg);
      }
      await prepareSchema(setup);
      // Binary rows travel as they are; keep a statement, padded by up to a quarter (see
      // insertMessages), well under the packet limit, and at 4 MiB of payload at most.
      const maxInsertBytes = Math.max(64 << 10, Math.min(4 << 20, Math.floor((packet - (256 << 10)) / 1.5)));
      pool = mysql.createPool({
        // Statements without values (the INSERTs built in insertMessages) skip mysql2's
        // formatter, which otherwise scans the whole multi-megabyte text for placeholders
        // (13.7 % of the publish profile in BENCHMARKS.md).
        queryFormat: (sql: string, values: unknown, timezone?: string) =>
          values === undefined || (Array.isArray(values) && values.length === 0)
            ? sql
            : mysql.format(sql, values as never, false, timezone as never),
        ...config,
        connectionLimit: options.poolSize,
        // Per connection: a few INSERT shapes per shard table (of INSERT_ROW_BUCKETS), the
        // least recently used closed beyond this, so many topics cannot exhaust the server's
        // max_prepared_stmt_count (16,382 by default, server-wide): pool size × 128 at most.
        maxPreparedStatements: MAX_PREPARED_PER_CONNECTION,
        // No stack capture per query (mysql2's default): it showed in every profile.
        trace: false,
        maxIdle: options.poolSize,
        enableKeepAlive: true,
      });
      const ttlMs = options.leaseTtlMs ?? 5000;
      const renewMs = options.leaseRenewMs ?? 1000;
      const lease = new Lease(pool, () => mysql.createConnection(config), `nervebus:${database}`, {
        ttlMs,
        renewMs,
        waitMs: options.leaseWaitMs ?? ttlMs + renewMs,
        log: options.log,
        onLost: options.onOwnershipLost ?? (() => undefined),
      });
      await lease.acquire();
      return new MysqlStore(pool, lease, { kind: "mysql", maxInsertRows: 5000, maxInsertBytes });
    } catch (err) {
      await pool?.end().catch(() => undefined);
      throw mapStoreError(err, "preparing the database");
    } finally {
      await setup.end().catch(() => undefined);
    }
  }

  /** Who owns the store, since when, and whether the lease is current (status and stats). */
  ownership(): OwnershipState {
    return { mechanism: "lease", ...this.#lease.state() };
  }

  async ensureTopic(name: string, create: { shards: number; config: TopicConfig } | null) {
    return this.#run("creating a topic", async () => {
      let created = false;
      const sql = "SELECT id, name, shards, config, created_at FROM nb_topics WHERE name = ?";
      let rows = await this.#select(sql, [name]);
      if (rows.length === 0) {
        if (create === null) return null;
        const [res] = await this.#pool.query<mysql.ResultSetHeader>(
          "INSERT IGNORE INTO nb_topics (name, shards, config, created_at) VALUES (?, ?, ?, ?)",
          [name, create.shards, encodeConfig(create.config), Date.now()],
        );
        created = res.affectedRows === 1;
        rows = await this.#select(sql, [name]);
      }
      const topic = toTopic(rows[0]!);
      for (let shard = 0; shard < topic.shards; shard++) {
        await this.#pool.query(
          `CREATE TABLE IF NOT EXISTS ${shardTable(topic.id, shard)} (
             seq BIGINT UNSIGNED NOT NULL PRIMARY KEY, published_at BIGINT NOT NULL,
             meta BLOB NOT NULL, data LONGBLOB NOT NULL) ENGINE=InnoDB`,
        );
      }
      await this.#pool.query(
        `CREATE TABLE IF NOT EXISTS ${scheduleTable(topic.id)} (
           id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, due_at BIGINT NOT NULL,
           meta BLOB NOT NULL, data LONGBLOB NOT NULL, KEY due (due_at, id)) ENGINE=InnoDB`,
      );
      return { topic, created };
    });
  }

  async listTopics(): Promise<TopicRecord[]> {
    return this.#run("listing topics", async () =>
      (
        await this.#select("SELECT id, name, shards, config, created_at FROM nb_topics ORDER BY name", [])
      ).map(toTopic),
    );
  }

  async updateTopicConfig(topic: TopicRecord, config: TopicConfig): Promise<TopicRecord> {
    await this.#fenced("updating a topic", topic, META_SLOT, (conn) =>
      conn.query("UPDATE nb_topics SET config = ? WHERE id = ?", [encodeConfig(config), topic.id]),
    );
    return { ...topic, config };
  }

  async deleteTopic(topic: TopicRecord): Promise<void> {
    // The catalog rows go in one fenced transaction; the tables (DDL, which commits on its own)
    // are dropped after, when nothing refers to them any more.
    await this.#fenced("deleting a topic", topic, META_SLOT, async (conn) => {
      await conn.query("DELETE FROM nb_pointers WHERE topic_id = ?", [topic.id]);
      await conn.query("DELETE FROM nb_subscriptions WHERE topic_id = ?", [topic.id]);
      await conn.query("DELETE FROM nb_topics WHERE id = ?", [topic.id]);
      await conn.query("DELETE FROM nb_fence WHERE topic_id = ? AND slot <> ?", [topic.id, META_SLOT]);
    });
    await this.#run("deleting a topic", async () => {
      for (let shard = 0; shard < topic.shards; shard++)
        await this.#pool.query(`DROP TABLE IF EXISTS ${shardTable(topic.id, shard)}`);
      await this.#pool.query(`DROP TABLE IF EXISTS ${scheduleTable(topic.id)}`);
      await this.#pool.query("DELETE FROM nb_fence WHERE topic_id = ?", [topic.id]);
    });
  }

  async ensureSubscription(topic: TopicRecord, name: string, create: SubscriptionConfig | null) {
    return this.#run("creating a subscription", async () => {
      const sql = "SELECT config, created_at FROM nb_subscriptions WHERE topic_id = ? AND name = ?";
      let rows = await this.#select(sql, [topic.id, name]);
      let created = false;
      if (rows.length === 0) {
        if (create === null) return null;
        created = await this.#fenced("creating a subscription", topic, META_SLOT, async (conn) => {
          const [res] = await conn.query<mysql.ResultSetHeader>(
            "INSERT IGNORE INTO nb_subscriptions (topic_id, name, config, created_at) VALUES (?, ?, ?, ?)",
            [topic.id, name, encodeConfig(create), Date.now()],
          );
          return res.affectedRows === 1;
        });
        rows = await this.#select(sql, [topic.id, name]);
      }
      const r = rows[0]!;
      const subscription: SubscriptionRecord = {
        topicId: topic.id,
        name,
        createdAt: Number(r.created_at),
        config: decodeConfig<SubscriptionConfig>(String(r.config)),
      };
      return { subscription, created };
    });
  }

  async listSubscriptions(topic: TopicRecord): Promise<SubscriptionRecord[]> {
    return this.#run("listing subscriptions", async () =>
      (
        await this.#select(
          "SELECT name, config, created_at FROM nb_subscriptions WHERE topic_id = ? ORDER BY name",
          [topic.id],
        )
      ).map((r) => ({
        topicId: topic.id,
        name: String(r.name),
        createdAt: Number(r.created_at),
        config: decodeConfig<SubscriptionConfig>(String(r.config)),
      })),
    );
  }

  async updateSubscriptionConfig(
    topic: TopicRecord,
    name: string,
    config: SubscriptionConfig,
  ): Promise<void> {
    await this.#fenced("updating a subscription", topic, META_SLOT, (conn) =>
      conn.query("UPDATE nb_subscriptions SET config = ? WHERE topic_id = ? AND name = ?", [
        encodeConfig(config),
        topic.id,
        name,
      ]),
    );
  }

  async deleteSubscription(topic: TopicRecord, name: string): Promise<void> {
    await this.#fenced("deleting a subscription", topic, META_SLOT, async (conn) => {
      await conn.query("DELETE FROM nb_subscriptions WHERE topic_id = ? AND name = ?", [topic.id, name]);
      await conn.query("DELETE FROM nb_pointers WHERE topic_id = ? AND subscription = ?", [topic.id, name]);
    });
  }

  async insertMessages(topic: TopicRecord, shard: number, rows: readonly LogMessage[]): Promise<void> {
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
    const sql = this.#insertSql(table, n);
    await this.#fenced("inserting messages", topic, shard, async (conn) => {
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
    const [stored] = await conn.query<mysql.RowDataPacket[]>(
      `SELECT seq, published_at, meta, data FROM ${table} WHERE seq BETWEEN ? AND ?`,
      [rows[0]!.seq, rows[rows.length - 1]!.seq],
    );
    const bySeq = new Map<number, mysql.RowDataPacket>();
    for (const r of stored) bySeq.set(Number(r.seq), r);
    for (const row of rows) {
      const r = bySeq.get(row.seq);
      if (r === undefined) continue;
      const same =
        Number(r.published_at) === row.publishTime &&
        Buffer.compare(r.meta as Buffer, row.meta) === 0 &&
        Buffer.compare(
          r.data as Buffer,
          Buffer.from(row.data.buffer, row.data.byteOffset, row.data.byteLength),
        ) === 0;
      if (!same) {
        throw this.#lease.markLost(
          `seq ${row.seq} of topic ${topic.name} already holds a different message: another writer assigned this topic's seqs`,
        );
      }
    }
  }

  /** The INSERT of `n` rows into `table` (cached: mysql2 keys its prepared statements by text). */
  #insertSql(table: string, n: number): string {
    const key = `${table}/${n}`;
    let sql = this.#insertSqls.get(key);
    if (sql === undefined) {
      // Idempotent: a retried row has the same content as the one already there, so a
      // duplicate key keeps the existing row (portable to MySQL 8 and MariaDB, unlike VALUES()
      // aliases).
      sql = `INSERT INTO ${table} (seq, published_at, meta, data) VALUES ${"(?,?,?,?),".repeat(n - 1)}(?,?,?,?) ON DUPLICATE KEY UPDATE seq = seq`;
      this.#insertSqls.set(key, sql);
    }
    return sql;
  }

  async readMessages(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LogMessage[]> {
    return this.#run("reading messages", async () => {
      const parts = await Promise.all(
        Array.from({ length: topic.shards }, async (_, shard) => {
          const [rows] = await this.#pool.query<mysql.RowDataPacket[]>(
            `SELECT seq, published_at, meta, data FROM ${shardTable(topic.id, shard)} WHERE seq BETWEEN ? AND ? ORDER BY seq`,
            [fromSeq, toSeq],
          );
          return (rows as MsgRow[]).map((r) =>
            decodeRow(Number(r.seq), Number(r.published_at), r.meta, r.data),
          );
        }),
      );
      return mergeBySeq(parts, fromSeq, toSeq);
    });
  }

  async readIds(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LoggedIds[]> {
    return this.#run("reading message ids", async () => {
      const parts = await Promise.all(
        Array.from({ length: topic.shards }, (_, shard) =>
          this.#select(
            `SELECT seq, published_at, meta FROM ${shardTable(topic.id, shard)} WHERE seq BETWEEN ? AND ?`,
            [fromSeq, toSeq],
          ),
        ),
      );
      return parts
        .flat()
        .map((r) => decodeIds(Number(r.seq), Number(r.published_at), r.meta as Buffer))
        .sort((a, b) => a.seq - b.seq);
    });
  }

  async firstSeq(topic: TopicRecord): Promise<number> {
    return this.#run("finding the first seq", async () => {
      let found = 0;
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = await this.#select(`SELECT MIN(seq) AS s FROM ${shardTable(topic.id, shard)}`, []);
        const s = rows[0]?.s;
        if (s !== null && s !== undefined && (found === 0 || Number(s) < found)) found = Number(s);
      }
      return found;
    });
  }

  async averageRowBytes(topic: TopicRecord, sample: number): Promise<number> {
    return this.#run("sampling row sizes", async () => {
      let bytes = 0;
      let rows = 0;
      const per = Math.max(1, Math.ceil(sample / topic.shards));
      for (let shard = 0; shard < topic.shards; shard++) {
        const r = await this.#select(
          `SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(data) + LENGTH(meta)), 0) AS b FROM
             (SELECT data, meta FROM ${shardTable(topic.id, shard)} ORDER BY seq DESC LIMIT ?) AS recent`,
          [per],
        );
        rows += Number(r[0]?.n ?? 0);
        bytes += Number(r[0]?.b ?? 0);
      }
      return rows === 0 ? 0 : bytes / rows;
    });
  }

  async deleteMessagesThrough(topic: TopicRecord, throughSeq: number, limit: number): Promise<number> {
    let deleted = 0;
    for (let shard = 0; shard < topic.shards; shard++) {
      // Bounded chunks: one short transaction each, so writers never wait long on it.
      deleted += await this.#fenced("deleting old messages", topic, META_SLOT, async (conn) => {
        const [res] = await conn.query<mysql.ResultSetHeader>(
          `DELETE FROM ${shardTable(topic.id, shard)} WHERE seq <= ? ORDER BY seq LIMIT ?`,
          [throughSeq, limit],
        );
        return res.affectedRows;
      });
    }
    return deleted;
  }

  async recoverTail(topic: TopicRecord, watermark: number): Promise<number> {
    const end = await this.#run("recovering the log tail", async () => {
      const seqs: number[] = [];
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = await this.#select(
          `SELECT seq FROM ${shardTable(topic.id, shard)} WHERE seq > ? ORDER BY seq`,
          [watermark],
        );
        for (const r of rows) seqs.push(Number(r.seq));
      }
      seqs.sort((a, b) => a - b);
      return contiguousEnd(watermark, seqs);
    });
    await this.#fenced("recovering the log tail", topic, META_SLOT, async (conn) => {
      for (let shard = 0; shard < topic.shards; shard++)
        await conn.query(`DELETE FROM ${shardTable(topic.id, shard)} WHERE seq > ?`, [end]);
    });
    return end;
  }

  async scheduleMessages(
    topic: TopicRecord,
    entries: readonly { dueAt: number; message: NewMessage }[],
  ): Promise<number[]> {
    if (entries.length === 0) return [];
    const values = entries.map((e) => [e.dueAt, encodeScheduledMeta(e.message), e.message.data]);
    const [res] = await this.#fenced("scheduling messages", topic, META_SLOT, (conn) =>
      conn.query<mysql.ResultSetHeader>(
        `INSERT INTO ${scheduleTable(topic.id)} (due_at, meta, data) VALUES ?`,
        [values],
      ),
    );
    // A multi-row INSERT gets consecutive AUTO_INCREMENT ids (innodb_autoinc_lock_mode ≤ 1 for
    // "simple inserts" guarantees it on MySQL 8 and MariaDB even in mode 2).
    return entries.map((_, i) => res.insertId + i);
  }

  async dueMessages(topic: TopicRecord, now: number, limit: number): Promise<ScheduledMessage[]> {
    return this.#run("reading due messages", async () =>
      (
        await this.#select(
          `SELECT id, due_at, meta, data FROM ${scheduleTable(topic.id)} WHERE due_at <= ? ORDER BY due_at, id LIMIT ?`,
          [now, limit],
        )
      ).map((r) => decodeScheduled(Number(r.id), Number(r.due_at), r.meta as Buffer, r.data as Buffer)),
    );
  }

  async deleteScheduled(topic: TopicRecord, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#fenced("deleting schedule entries", topic, META_SLOT, (conn) =>
      conn.query(`DELETE FROM ${scheduleTable(topic.id)} WHERE id IN (?)`, [ids]),
    );
  }

  async scheduleSummary(topic: TopicRecord): Promise<{ count: number; nextDueAt: number }> {
    return this.#run("summarising the schedule", async () => {
      const r = (
        await this.#select(`SELECT COUNT(*) AS n, MIN(due_at) AS d FROM ${scheduleTable(topic.id)}`, [])
      )[0];
      return { count: Number(r?.n ?? 0), nextDueAt: r?.d === null || r?.d === undefined ? 0 : Number(r.d) };
    });
  }

  async loadPointer(topic: TopicRecord, subscription: string): Promise<PointerRecord | null> {
    return this.#run("loading a pointer", async () => {
      const rows = await this.#select(
        "SELECT ptr, state FROM nb_pointers WHERE topic_id = ? AND subscription = ?",
        [topic.id, subscription],
      );
      const r = rows[0];
      return r === undefined
        ? null
        : { subscription, ptr: Number(r.ptr), state: (r.state as Buffer | null) ?? null };
    });
  }

  async savePointers(topic: TopicRecord, pointers: readonly PointerRecord[]): Promise<void> {
    if (pointers.length === 0) return;
    const values = pointers.map((p) => [
      topic.id,
      p.subscription,
      p.ptr,
      p.state === null ? null : Buffer.from(p.state),
    ]);
    await this.#fenced("saving pointers", topic, META_SLOT, (conn) =>
      conn.query(
        "INSERT INTO nb_pointers (topic_id, subscription, ptr, state) VALUES ? ON DUPLICATE KEY UPDATE ptr = VALUES(ptr), state = VALUES(state)",
        [values],
      ),
    );
  }

  /**
   * Makes this broker the topic's only writer before its tail is read: raises every fence row
   * of the topic to this broker's epoch, so a write by an earlier owner that has not committed
   * yet can no longer commit. Throws the lost-ownership error if a newer owner exists.
   */
  async claimTopic(topic: TopicRecord): Promise<void> {
    const slots = [META_SLOT, ...Array.from({ length: topic.shards }, (_, shard) => shard)];
    await this.#raiseFence(topic, slots);
  }

  /**
   * Answers when the database does and this broker's lease is current; throws UNAVAILABLE
   * otherwise (health turns NOT_SERVING).
   */
  async ping(): Promise<void> {
    this.#lease.check();
    await this.#run("pinging", () => this.#select("SELECT 1", []));
  }

  async close(): Promise<void> {
    await this.#lease.release();
    await this.#pool.end().catch(() => undefined);
  }

  /**
   * Runs `fn` in a transaction that first proves this broker owns the topic: the fence row of
   * `slot` is bumped only while it holds this broker's epoch. A row that is missing or older
   * (the topic is new, or was created by an earlier owner after this one took over) is raised
   * and the write tried once more; a newer one means ownership is lost.
   */
  async #fenced<T>(
    what: string,
    topic: TopicRecord,
    slot: number,
    fn: (conn: mysql.PoolConnection) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.#lease.check();
      const epoch = this.#lease.epoch;
      type Outcome = { fenced: false } | { fenced: true; value: T };
      const outcome = await this.#transaction<Outcome>(what, async (conn) => {
        const [fence] = await conn.execute<mysql.ResultSetHeader>(
          "UPDATE nb_fence SET writes = writes + 1 WHERE topic_id = ? AND slot = ? AND epoch = ?",
          [topic.id, slot, epoch],
        );
        if (fence.affectedRows !== 1) return { commit: false, value: { fenced: false } };
        return { commit: true, value: { fenced: true, value: await fn(conn) } };
      });
      if (outcome.fenced) return outcome.value;
      if (attempt > 0)
        throw this.#lease.markLost(`fence row ${topic.name}/${slot} does not hold epoch ${epoch}`);
      await this.#raiseFence(topic, [slot]);
    }
  }

  /**
   * Raises (or creates) fence rows of `topic` to this broker's epoch, under the lease row's
   * lock so a takeover in progress is waited for and then seen. Marks ownership lost when the
   * lease or a fence row holds a newer epoch.
   */
  async #raiseFence(topic: TopicRecord, slots: readonly number[]): Promise<void> {
    this.#lease.check();
    const epoch = this.#lease.epoch;
    const lost = await this.#transaction("claiming the topic", async (conn) => {
      const [lease] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT owner, epoch FROM nb_lease WHERE unit = 'store' LOCK IN SHARE MODE",
      );
      const r = lease[0];
      if (r === undefined || Number(r.epoch) !== epoch) {
        const holder =
          r === undefined
            ? "the lease row is gone"
            : `broker ${String(r.owner)} holds epoch ${Number(r.epoch)}`;
        return { commit: false, value: holder };
      }
      await conn.query(
        `INSERT INTO nb_fence (topic_id, slot, epoch) VALUES ${slots.map(() => "(?, ?, ?)").join(", ")}
           ON DUPLICATE KEY UPDATE epoch = GREATEST(epoch, ?)`,
        [...slots.flatMap((slot) => [topic.id, slot, epoch]), epoch],
      );
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT MAX(epoch) AS e FROM nb_fence WHERE topic_id = ? AND slot IN (?)",
        [topic.id, slots],
      );
      const newest = Number(rows[0]?.e ?? 0);
      if (newest > epoch) return { commit: false, value: `topic ${topic.name} is fenced at epoch ${newest}` };
      return { commit: true, value: undefined };
    });
    if (lost !== undefined) throw this.#lease.markLost(`${lost}; ours is ${epoch}`);
  }

  /** Runs `fn` in a transaction on one pool connection; commits when it says so, else rolls back. */
  async #transaction<T>(
    what: string,
    fn: (conn: mysql.PoolConnection) => Promise<{ commit: boolean; value: T }>,
  ): Promise<T> {
    return this.#run(what, async () => {
      const conn = await this.#pool.getConnection();
      let open = false;
      try {
        await conn.query("START TRANSACTION");
        open = true;
        const { commit, value } = await fn(conn);
        await conn.query(commit ? "COMMIT" : "ROLLBACK");
        open = false;
        return value;
      } finally {
        if (open) {
          // A connection whose transaction cannot be rolled back is not given back to the pool.
          await conn.query("ROLLBACK").then(
            () => conn.release(),
            () => conn.destroy(),
          );
        } else {
          conn.release();
        }
      }
    });
  }

  async #select(sql: string, params: unknown[]): Promise<mysql.RowDataPacket[]> {
    const [rows] = await this.#pool.query<mysql.RowDataPacket[]>(sql, params);
    return rows;
  }

  async #run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapStoreError(err, what);
    }
  }
}
