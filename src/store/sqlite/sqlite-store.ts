import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
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

const CAPABILITIES: StoreCapabilities = {
  kind: "sqlite",
  // SQLite has no packet limit; these bound one transaction's time on the event loop.
  maxInsertRows: 5000,
  maxInsertBytes: 8 << 20,
};

interface QueuedInsert {
  readonly table: string;
  readonly rows: readonly LogMessage[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

type Row = { seq: number; published_at: number; meta: Buffer; data: Buffer };

/**
 * The embedded store: one SQLite file in WAL mode with synchronous=FULL (a commit survives a
 * power cut) and locking_mode=EXCLUSIVE, which holds the file lock for the life of the process
 * so a second broker on the same file fails at start-up instead of assigning the same seqs.
 *
 * better-sqlite3 is synchronous. Inserts requested in the same turn of the event loop (one per
 * shard writer) run in one transaction, so the whole flush costs one fsync.
 */
export class SqliteStore implements Store {
  readonly capabilities = CAPABILITIES;
  readonly #db: Database.Database;
  #queue: QueuedInsert[] = [];
  #flushScheduled = false;
  readonly #insertStatements = new Map<string, Database.Statement>();

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Opens (creating) the database file and takes the exclusive lock. */
  static open(path: string): SqliteStore {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path, { timeout: 0 });
      db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      // The first write takes the exclusive lock, held until close.
      db.exec(`
        CREATE TABLE IF NOT EXISTS nb_topics (
          id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, shards INTEGER NOT NULL,
          config TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS nb_subscriptions (
          topic_id INTEGER NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}',
          created_at INTEGER NOT NULL, PRIMARY KEY (topic_id, name));
        CREATE TABLE IF NOT EXISTS nb_pointers (
          topic_id INTEGER NOT NULL, subscription TEXT NOT NULL, ptr INTEGER NOT NULL, state BLOB,
          PRIMARY KEY (topic_id, subscription));
      `);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "SQLITE_BUSY" || code === "SQLITE_LOCKED") {
        throw new NerveBusError(
          "failed_precondition",
          `store ${path} is in use by another broker process; one broker owns a database at a time`,
          { cause: err },
        );
      }
      throw mapStoreError(err, `opening ${path}`);
    }
    return new SqliteStore(db);
  }

  async ensureTopic(name: string, create: { shards: number } | null) {
    return this.#run("creating a topic", () => {
      let created = false;
      let row = this.#db
        .prepare("SELECT id, name, shards, created_at FROM nb_topics WHERE name = ?")
        .get(name) as { id: number; name: string; shards: number; created_at: number } | undefined;
      if (row === undefined) {
        if (create === null) return null;
        const now = Date.now();
        const info = this.#db
          .prepare("INSERT INTO nb_topics (name, shards, created_at) VALUES (?, ?, ?)")
          .run(name, create.shards, now);
        row = { id: Number(info.lastInsertRowid), name, shards: create.shards, created_at: now };
        created = true;
      }
      const topic: TopicRecord = {
        id: row.id,
        name: row.name,
        shards: row.shards,
        createdAt: row.created_at,
      };
      this.#createShardTables(topic);
      return { topic, created };
    });
  }

  async listTopics(): Promise<TopicRecord[]> {
    return this.#run("listing topics", () =>
      (
        this.#db.prepare("SELECT id, name, shards, created_at FROM nb_topics ORDER BY name").all() as {
          id: number;
          name: string;
          shards: number;
          created_at: number;
        }[]
      ).map((r) => ({ id: r.id, name: r.name, shards: r.shards, createdAt: r.created_at })),
    );
  }

  async ensureSubscription(topic: TopicRecord, name: string, create: boolean) {
    return this.#run("creating a subscription", () => {
      const row = this.#db
        .prepare("SELECT created_at FROM nb_subscriptions WHERE topic_id = ? AND name = ?")
        .get(topic.id, name) as { created_at: number } | undefined;
      if (row !== undefined) {
        const subscription: SubscriptionRecord = { topicId: topic.id, name, createdAt: row.created_at };
        return { subscription, created: false };
      }
      if (!create) return null;
      const now = Date.now();
      this.#db
        .prepare("INSERT INTO nb_subscriptions (topic_id, name, created_at) VALUES (?, ?, ?)")
        .run(topic.id, name, now);
      return { subscription: { topicId: topic.id, name, createdAt: now }, created: true };
    });
  }

  async listSubscriptions(topic: TopicRecord): Promise<SubscriptionRecord[]> {
    return this.#run("listing subscriptions", () =>
      (
        this.#db
          .prepare("SELECT name, created_at FROM nb_subscriptions WHERE topic_id = ? ORDER BY name")
          .all(topic.id) as {
          name: string;
          created_at: number;
        }[]
      ).map((r) => ({ topicId: topic.id, name: r.name, createdAt: r.created_at })),
    );
  }

  insertMessages(topic: TopicRecord, shard: number, rows: readonly LogMessage[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ table: shardTable(topic.id, shard), rows, resolve, reject });
      if (this.#flushScheduled) return;
      this.#flushScheduled = true;
      setImmediate(() => this.#flushInserts());
    });
  }

  #flushInserts(): void {
    this.#flushScheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    try {
      this.#db.transaction(() => {
        for (const q of queue) {
          const stmt = this.#insertStatement(q.table);
          for (const r of q.rows) stmt.run(r.seq, r.publishTime, encodeMeta(r), r.data);
        }
      })();
    } catch (err) {
      const mapped = mapStoreError(err, "inserting messages");
      for (const q of queue) q.reject(mapped);
      return;
    }
    for (const q of queue) q.resolve();
  }

  #insertStatement(table: string): Database.Statement {
    let stmt = this.#insertStatements.get(table);
    if (stmt === undefined) {
      // Idempotent: a retried row has the same content as the one already there.
      stmt = this.#db.prepare(
        `INSERT INTO ${table} (seq, published_at, meta, data) VALUES (?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`,
      );
      this.#insertStatements.set(table, stmt);
    }
    return stmt;
  }

  async readMessages(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LogMessage[]> {
    return this.#run("reading messages", () => {
      const parts: LogMessage[][] = [];
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = this.#db
          .prepare(
            `SELECT seq, published_at, meta, data FROM ${shardTable(topic.id, shard)} WHERE seq BETWEEN ? AND ? ORDER BY seq`,
          )
          .all(fromSeq, toSeq) as Row[];
        parts.push(rows.map((r) => decodeRow(r.seq, r.published_at, r.meta, r.data)));
      }
      return mergeBySeq(parts);
    });
  }

  async firstSeq(topic: TopicRecord): Promise<number> {
    return this.#run("finding the first seq", () => {
      let first = 0;
      for (let shard = 0; shard < topic.shards; shard++) {
        const r = this.#db.prepare(`SELECT MIN(seq) AS s FROM ${shardTable(topic.id, shard)}`).get() as {
          s: number | null;
        };
        if (r.s !== null && (first === 0 || r.s < first)) first = r.s;
      }
      return first;
    });
  }

  async seqAtTime(topic: TopicRecord, time: number): Promise<number> {
    return this.#run("finding a seq by time", () => {
      let found = 0;
      for (let shard = 0; shard < topic.shards; shard++) {
        const r = this.#db
          .prepare(`SELECT MIN(seq) AS s FROM ${shardTable(topic.id, shard)} WHERE published_at >= ?`)
          .get(time) as { s: number | null };
        if (r.s !== null && (found === 0 || r.s < found)) found = r.s;
      }
      return found;
    });
  }

  async recoverTail(topic: TopicRecord, watermark: number): Promise<number> {
    return this.#run("recovering the log tail", () =>
      this.#db.transaction(() => {
        const seqs: number[] = [];
        for (let shard = 0; shard < topic.shards; shard++) {
          const rows = this.#db
            .prepare(`SELECT seq FROM ${shardTable(topic.id, shard)} WHERE seq > ? ORDER BY seq`)
            .pluck()
            .all(watermark) as number[];
          seqs.push(...rows);
        }
        seqs.sort((a, b) => a - b);
        const end = contiguousEnd(watermark, seqs);
        for (let shard = 0; shard < topic.shards; shard++) {
          this.#db.prepare(`DELETE FROM ${shardTable(topic.id, shard)} WHERE seq > ?`).run(end);
        }
        return end;
      })(),
    );
  }

  async loadPointer(topic: TopicRecord, subscription: string): Promise<PointerRecord | null> {
    return this.#run("loading a pointer", () => {
      const r = this.#db
        .prepare("SELECT ptr, state FROM nb_pointers WHERE topic_id = ? AND subscription = ?")
        .get(topic.id, subscription) as { ptr: number; state: Buffer | null } | undefined;
      return r === undefined ? null : { subscription, ptr: r.ptr, state: r.state };
    });
  }

  async savePointers(topic: TopicRecord, pointers: readonly PointerRecord[]): Promise<void> {
    return this.#run("saving pointers", () => {
      const stmt = this.#db.prepare(
        `INSERT INTO nb_pointers (topic_id, subscription, ptr, state) VALUES (?, ?, ?, ?)
         ON CONFLICT (topic_id, subscription) DO UPDATE SET ptr = excluded.ptr, state = excluded.state`,
      );
      this.#db.transaction(() => {
        for (const p of pointers)
          stmt.run(topic.id, p.subscription, p.ptr, p.state === null ? null : Buffer.from(p.state));
      })();
    });
  }

  async close(): Promise<void> {
    if (this.#queue.length > 0) this.#flushInserts();
    this.#db.close();
  }

  #createShardTables(topic: TopicRecord): void {
    for (let shard = 0; shard < topic.shards; shard++) {
      this.#db.exec(
        `CREATE TABLE IF NOT EXISTS ${shardTable(topic.id, shard)} (
           seq INTEGER PRIMARY KEY, published_at INTEGER NOT NULL, meta BLOB NOT NULL, data BLOB NOT NULL)`,
      );
    }
  }

  async #run<T>(what: string, fn: () => T): Promise<T> {
    try {
      return fn();
    } catch (err) {
      throw mapStoreError(err, what);
    }
  }
}
