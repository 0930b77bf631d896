import mysql from "mysql2/promise";
import {
  type LogMessage,
  NerveBusError,
  type PointerRecord,
  type Store,
  type StoreCapabilities,
  type SubscriptionRecord,
  type TopicRecord,
} from "../../core/index.js";
import { contiguousEnd, decodeRow, encodeMeta, mergeBySeq, shardTable } from "../codec.js";
import { mapStoreError } from "../errors.js";

export interface MysqlStoreOptions {
  /** mysql://user:pass@host:port/database */
  readonly url: string;
  /** Connections in the pool: one per shard writer in flight, plus readers. */
  readonly poolSize: number;
  /** Start even when innodb_flush_log_at_trx_commit is not 1 (a commit may then be lost). */
  readonly allowUnsafeDurability: boolean;
  readonly log: (level: "warn" | "info", msg: string, fields?: Record<string, unknown>) => void;
}

type MsgRow = { seq: number; published_at: number; meta: Buffer; data: Buffer };

/**
 * The production store: sharded InnoDB tables over a mysql2 pool. One broker process owns a
 * database: it holds the named lock `nervebus:<database>` (GET_LOCK) on a dedicated connection
 * for its whole life, and a second broker fails at start-up with FAILED_PRECONDITION instead of
 * assigning the same seqs and overwriting messages.
 */
export class MysqlStore implements Store {
  readonly capabilities: StoreCapabilities;
  readonly #pool: mysql.Pool;
  readonly #lockConn: mysql.Connection;

  private constructor(pool: mysql.Pool, lockConn: mysql.Connection, capabilities: StoreCapabilities) {
    this.#pool = pool;
    this.#lockConn = lockConn;
    this.capabilities = capabilities;
  }

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
    };
    let lockConn: mysql.Connection;
    try {
      lockConn = await mysql.createConnection(config);
    } catch (err) {
      if ((err as { code?: string }).code === "ER_BAD_DB_ERROR") {
        // Create the database on first start, as SQLite creates its file.
        const admin = await mysql.createConnection({ ...config, database: undefined }).catch((e: unknown) => {
          throw mapStoreError(e, `connecting to ${url.host}`);
        });
        await admin.query(`CREATE DATABASE IF NOT EXISTS ${mysql.escapeId(database)}`);
        await admin.end();
        lockConn = await mysql.createConnection(config);
      } else {
        throw mapStoreError(err, `connecting to ${url.host}`);
      }
    }
    try {
      const [lockRows] = await lockConn.query<mysql.RowDataPacket[]>("SELECT GET_LOCK(?, 0) AS got", [
        `nervebus:${database}`,
      ]);
      if (lockRows[0]?.got !== 1) {
        await lockConn.end();
        throw new NerveBusError(
          "failed_precondition",
          `database ${database} is owned by another broker (named lock nervebus:${database} is held); one broker owns a database at a time`,
        );
      }
      const [vars] = await lockConn.query<mysql.RowDataPacket[]>(
        "SELECT @@innodb_flush_log_at_trx_commit AS flush, @@max_allowed_packet AS packet",
      );
      const flush = Number(vars[0]?.flush);
      const packet = Number(vars[0]?.packet);
      if (flush !== 1) {
        const msg = `innodb_flush_log_at_trx_commit is ${flush}, not 1: a confirmed publish can be lost if the MySQL server crashes`;
        if (!options.allowUnsafeDurability) {
          await lockConn.end();
          throw new NerveBusError(
            "failed_precondition",
            `${msg}. Set it to 1, or start with --mysql-allow-unsafe-durability`,
          );
        }
        options.log("warn", msg);
      }
      await lockConn.query(`
        CREATE TABLE IF NOT EXISTS nb_topics (
          id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(128) NOT NULL, shards INT UNSIGNED NOT NULL,
          config TEXT NOT NULL, created_at BIGINT NOT NULL, UNIQUE KEY (name)) ENGINE=InnoDB`);
      await lockConn.query(`
        CREATE TABLE IF NOT EXISTS nb_subscriptions (
          topic_id INT UNSIGNED NOT NULL, name VARCHAR(128) NOT NULL, config TEXT NOT NULL,
          created_at BIGINT NOT NULL, PRIMARY KEY (topic_id, name)) ENGINE=InnoDB`);
      await lockConn.query(`
        CREATE TABLE IF NOT EXISTS nb_pointers (
          topic_id INT UNSIGNED NOT NULL, subscription VARCHAR(128) NOT NULL, ptr BIGINT UNSIGNED NOT NULL,
          state LONGBLOB NULL, PRIMARY KEY (topic_id, subscription)) ENGINE=InnoDB`);
      // Escaped binary doubles in size on the wire (X'…'); keep a statement under half the
      // packet limit with room for the SQL text, and at 4 MiB of payload at most.
      const maxInsertBytes = Math.max(64 << 10, Math.min(4 << 20, Math.floor((packet - (256 << 10)) / 2.2)));
      const pool = mysql.createPool({
        ...config,
        connectionLimit: options.poolSize,
        maxIdle: options.poolSize,
        enableKeepAlive: true,
      });
      return new MysqlStore(pool, lockConn, { kind: "mysql", maxInsertRows: 5000, maxInsertBytes });
    } catch (err) {
      await lockConn.end().catch(() => undefined);
      throw mapStoreError(err, "preparing the database");
    }
  }

  async ensureTopic(name: string, create: { shards: number } | null) {
    return this.#run("creating a topic", async () => {
      let created = false;
      let rows = await this.#select("SELECT id, name, shards, created_at FROM nb_topics WHERE name = ?", [
        name,
      ]);
      if (rows.length === 0) {
        if (create === null) return null;
        const [res] = await this.#pool.query<mysql.ResultSetHeader>(
          "INSERT IGNORE INTO nb_topics (name, shards, config, created_at) VALUES (?, ?, '{}', ?)",
          [name, create.shards, Date.now()],
        );
        created = res.affectedRows === 1;
        rows = await this.#select("SELECT id, name, shards, created_at FROM nb_topics WHERE name = ?", [
          name,
        ]);
      }
      const r = rows[0]!;
      const topic: TopicRecord = {
        id: Number(r.id),
        name: String(r.name),
        shards: Number(r.shards),
        createdAt: Number(r.created_at),
      };
      for (let shard = 0; shard < topic.shards; shard++) {
        await this.#pool.query(
          `CREATE TABLE IF NOT EXISTS ${shardTable(topic.id, shard)} (
             seq BIGINT UNSIGNED NOT NULL PRIMARY KEY, published_at BIGINT NOT NULL,
             meta BLOB NOT NULL, data LONGBLOB NOT NULL) ENGINE=InnoDB`,
        );
      }
      return { topic, created };
    });
  }

  async listTopics(): Promise<TopicRecord[]> {
    return this.#run("listing topics", async () =>
      (await this.#select("SELECT id, name, shards, created_at FROM nb_topics ORDER BY name", [])).map(
        (r) => ({
          id: Number(r.id),
          name: String(r.name),
          shards: Number(r.shards),
          createdAt: Number(r.created_at),
        }),
      ),
    );
  }

  async ensureSubscription(topic: TopicRecord, name: string, create: boolean) {
    return this.#run("creating a subscription", async () => {
      const rows = await this.#select(
        "SELECT created_at FROM nb_subscriptions WHERE topic_id = ? AND name = ?",
        [topic.id, name],
      );
      if (rows.length > 0) {
        const subscription: SubscriptionRecord = {
          topicId: topic.id,
          name,
          createdAt: Number(rows[0]!.created_at),
        };
        return { subscription, created: false };
      }
      if (!create) return null;
      const now = Date.now();
      const [res] = await this.#pool.query<mysql.ResultSetHeader>(
        "INSERT IGNORE INTO nb_subscriptions (topic_id, name, config, created_at) VALUES (?, ?, '{}', ?)",
        [topic.id, name, now],
      );
      return { subscription: { topicId: topic.id, name, createdAt: now }, created: res.affectedRows === 1 };
    });
  }

  async listSubscriptions(topic: TopicRecord): Promise<SubscriptionRecord[]> {
    return this.#run("listing subscriptions", async () =>
      (
        await this.#select("SELECT name, created_at FROM nb_subscriptions WHERE topic_id = ? ORDER BY name", [
          topic.id,
        ])
      ).map((r) => ({
        topicId: topic.id,
        name: String(r.name),
        createdAt: Number(r.created_at),
      })),
    );
  }

  async insertMessages(topic: TopicRecord, shard: number, rows: readonly LogMessage[]): Promise<void> {
    const values: unknown[] = [];
    for (const r of rows) values.push([r.seq, r.publishTime, encodeMeta(r), r.data]);
    // Idempotent: a retried row has the same content as the one already there, so a duplicate
    // key keeps the existing row (portable to MySQL 8 and MariaDB, unlike VALUES() aliases).
    await this.#run("inserting messages", () =>
      this.#pool.query(
        `INSERT INTO ${shardTable(topic.id, shard)} (seq, published_at, meta, data) VALUES ? ON DUPLICATE KEY UPDATE seq = seq`,
        [values],
      ),
    );
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
      return mergeBySeq(parts);
    });
  }

  async firstSeq(topic: TopicRecord): Promise<number> {
    return this.#minOverShards(topic, "MIN(seq)", "", []);
  }

  async seqAtTime(topic: TopicRecord, time: number): Promise<number> {
    return this.#minOverShards(topic, "MIN(seq)", "WHERE published_at >= ?", [time]);
  }

  async recoverTail(topic: TopicRecord, watermark: number): Promise<number> {
    return this.#run("recovering the log tail", async () => {
      const seqs: number[] = [];
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = await this.#select(
          `SELECT seq FROM ${shardTable(topic.id, shard)} WHERE seq > ? ORDER BY seq`,
          [watermark],
        );
        for (const r of rows) seqs.push(Number(r.seq));
      }
      seqs.sort((a, b) => a - b);
      const end = contiguousEnd(watermark, seqs);
      for (let shard = 0; shard < topic.shards; shard++) {
        await this.#pool.query(`DELETE FROM ${shardTable(topic.id, shard)} WHERE seq > ?`, [end]);
      }
      return end;
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
    await this.#run("saving pointers", () =>
      this.#pool.query(
        "INSERT INTO nb_pointers (topic_id, subscription, ptr, state) VALUES ? ON DUPLICATE KEY UPDATE ptr = VALUES(ptr), state = VALUES(state)",
        [values],
      ),
    );
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined);
    await this.#lockConn
      .query("SELECT RELEASE_LOCK(?)", [`nervebus:${this.#lockConn.config.database}`])
      .catch(() => undefined);
    await this.#lockConn.end().catch(() => undefined);
  }

  async #minOverShards(topic: TopicRecord, expr: string, where: string, params: unknown[]): Promise<number> {
    return this.#run("finding a seq", async () => {
      let found = 0;
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = await this.#select(
          `SELECT ${expr} AS s FROM ${shardTable(topic.id, shard)} ${where}`,
          params,
        );
        const s = rows[0]?.s;
        if (s !== null && s !== undefined && (found === 0 || Number(s) < found)) found = Number(s);
      }
      return found;
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
