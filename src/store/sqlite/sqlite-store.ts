import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import * as core from "../../core/index.js";
import { type IndexedRun, joinRuns, type RunRow } from "../../wire/index.js";
import * as codec from "../codec.js";
import { mapSqliteOpenError, mapStoreError } from "../errors.js";
import { SpaceWatch } from "../space-watch.js";
import { SqliteCheckpointer } from "./sqlite-checkpointer.js";
import { lockSqliteFile } from "./sqlite-lock.js";
import { SqliteRunLog } from "./sqlite-run-log.js";

/**
 * Frames of write-ahead log past which the store's own connection checkpoints after all (as
 * SQLite does past 1000 by default): only when the checkpoint thread falls this far behind.
 */
const BACKSTOP_CHECKPOINT_FRAMES = 16_384;

/** This process, as ownership() names it. */
const OWNER = `${hostname()}/${process.pid}`;

const CAPABILITIES: core.StoreCapabilities = {
  kind: "sqlite",
  // SQLite has no packet limit; these bound one transaction's time on the event loop.
  maxInsertRows: 5000,
  maxInsertBytes: 8 << 20,
  maxRunMessages: 50_000,
};

interface QueuedInsert {
  readonly topic: core.TopicRecord;
  readonly shard: number;
  /** Format 1: a row per message. */
  readonly rows: readonly core.LogMessage[];
  /** Format 2: a row per run. */
  readonly runs: readonly RunRow[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

type Row = { seq: number; published_at: number; meta: Buffer; data: Buffer };
type TopicRow = {
  id: number;
  name: string;
  shards: number;
  format: number;
  config: string;
  created_at: number;
};

/** A format-1 topic's rows or a format-2 topic's runs, as insertEncoded takes them. */
export interface EncodedInsert {
  readonly rows: readonly core.LogMessage[];
  readonly runs: readonly RunRow[];
}

/** Messages in the topic's stored format. */
export function encodeMessages(topic: core.TopicRecord, rows: readonly core.LogMessage[]): EncodedInsert {
  return topic.format === 2 ? { rows: [], runs: codec.encodeRuns(rows) } : { rows, runs: [] };
}

/** Runs in the topic's stored format. */
export function encodeRuns(topic: core.TopicRecord, runs: readonly IndexedRun[]): EncodedInsert {
  return topic.format === 2
    ? { rows: [], runs: joinRuns(runs) }
    : { rows: codec.messagesOfIndexedRuns(runs), runs: [] };
}

function toTopic(r: TopicRow): core.TopicRecord {
  return {
    id: r.id,
    name: r.name,
    shards: r.shards,
    format: r.format === 2 ? 2 : 1,
    createdAt: r.created_at,
    config: codec.decodeConfig<core.TopicConfig>(r.config),
  };
}

/**
 * The embedded store: one SQLite file in WAL mode with synchronous=FULL (a commit survives a
 * power cut). The owner holds `PATH-lock` (sqliteLock) for the life of the process, so a second
 * broker on the same file fails at start-up instead of assigning the same seqs, and copies the
 * log into the database file from a thread of its own (SqliteCheckpointer).
 *
 * better-sqlite3 is synchronous. Inserts requested in the same turn of the event loop (one per
 * shard writer) run in one transaction, so the whole flush costs one fsync.
 */
export class SqliteStore implements core.Store {
  readonly capabilities = CAPABILITIES;
  readonly #db: Database.Database;
  #queue: QueuedInsert[] = [];
  #flushScheduled = false;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #runs = new SqliteRunLog((sql) => this.#stmt(sql));

  readonly #lock: Database.Database | undefined;
  readonly #checkpointer: SqliteCheckpointer | undefined;
  /** The file, as errors name it. */
  readonly #path: string;
  /** Whether the file's disk is full (the owner's store only: the writer thread's owner watches its). */
  readonly #space: SpaceWatch | undefined;

  private constructor(
    db: Database.Database,
    path: string,
    space?: SpaceWatch,
    lock?: Database.Database,
    checkpointPath?: string,
  ) {
    this.#db = db;
    this.#path = path;
    this.#space = space;
    this.#lock = lock;
    if (checkpointPath !== undefined) {
      db.pragma(`wal_autocheckpoint = ${BACKSTOP_CHECKPOINT_FRAMES}`);
      // Without the thread, checkpoints go back to SQLite's default, on this connection.
      this.#checkpointer = new SqliteCheckpointer(checkpointPath, () => {
        if (db.open) db.pragma("wal_autocheckpoint = 1000");
      });
    }
  }

  /**
   * Opens (creating) the database file. "exclusive" (the default) owns the file: it holds
   * `PATH-lock` for the life of the store (":memory:" holds its own exclusive lock) and
   * checkpoints from a thread; "writer" is the writer thread's connection, which leaves the
   * file open to the broker's own reader (the caller holds sqliteLock instead); "reader" opens
   * an existing file read-only, for reads only. `log` hears when the disk fills and has room
   * again ("exclusive" only).
   */
  static open(
    path: string,
    mode: "exclusive" | "writer" | "reader" = "exclusive",
    log?: core.LogFn,
  ): SqliteStore {
    if (mode === "reader") {
      try {
        return new SqliteStore(new Database(path, { readonly: true, fileMustExist: true, timeout: 0 }), path);
      } catch (err) {
        throw mapSqliteOpenError(err, path);
      }
    }
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    const owner = mode === "exclusive" && path !== ":memory:";
    const lock = owner ? lockSqliteFile(path) : undefined;
    let db: Database.Database | undefined;
    try {
      db = new Database(path, { timeout: 0 });
      if (mode === "exclusive" && !owner) db.pragma("locking_mode = EXCLUSIVE");
      db.pragma("journal_mode = WAL");
      db.pragma("synchronous = FULL");
      // The first write takes the exclusive lock, held until close.
      db.exec(`
        CREATE TABLE IF NOT EXISTS nb_topics (
          id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, shards INTEGER NOT NULL,
          config TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS nb_subscriptions (
          topic_id INTEGER NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL,
          created_at INTEGER NOT NULL, PRIMARY KEY (topic_id, name));
        CREATE TABLE IF NOT EXISTS nb_pointers (
          topic_id INTEGER NOT NULL, subscription TEXT NOT NULL, ptr INTEGER NOT NULL, state BLOB,
          PRIMARY KEY (topic_id, subscription));
        CREATE TABLE IF NOT EXISTS nb_topic_schemas (
          topic_id INTEGER PRIMARY KEY, message_type TEXT NOT NULL, descriptor_set BLOB NOT NULL,
          updated_at INTEGER NOT NULL);
      `);
      // Catalogs made before format 2: their topics are format 1.
      const columns = db.pragma("table_info(nb_topics)") as { name: string }[];
      if (!columns.some((c) => c.name === "format"))
        db.exec("ALTER TABLE nb_topics ADD COLUMN format INTEGER NOT NULL DEFAULT 1");
      // Databases made before dead letters were remembered: their subscriptions have none on record.
      const pointerColumns = db.pragma("table_info(nb_pointers)") as { name: string }[];
      if (!pointerColumns.some((c) => c.name === "dead_letters"))
        db.exec("ALTER TABLE nb_pointers ADD COLUMN dead_letters BLOB");
    } catch (err) {
      db?.close();
      lock?.close();
      throw mapSqliteOpenError(err, path);
    }
    const space = mode === "exclusive" ? new SpaceWatch(path, log) : undefined;
    return new SqliteStore(db, path, space, lock, owner ? path : undefined);
  }

  async ensureTopic(
    name: string,
    create: { shards: number; config: core.TopicConfig; format?: core.LogFormat } | null,
  ) {
    return this.#run("creating a topic", () => {
      let created = false;
      let row = this.#stmt(
        "SELECT id, name, shards, format, config, created_at FROM nb_topics WHERE name = ?",
      ).get(name) as TopicRow | undefined;
      if (row === undefined) {
        if (create === null) return null;
        const now = Date.now();
        const config = codec.encodeConfig(create.config);
        const format = create.format ?? 2;
        const info = this.#stmt(
          "INSERT INTO nb_topics (name, shards, format, config, created_at) VALUES (?, ?, ?, ?, ?)",
        ).run(name, create.shards, format, config, now);
        row = {
          id: Number(info.lastInsertRowid),
          name,
          shards: create.shards,
          format,
          config,
          created_at: now,
        };
        created = true;
      }
      const topic = toTopic(row);
      this.#createTopicTables(topic);
      return { topic, created };
    });
  }

  async listTopics(): Promise<core.TopicRecord[]> {
    return this.#run("listing topics", () =>
      (
        this.#stmt(
          "SELECT id, name, shards, format, config, created_at FROM nb_topics ORDER BY name",
        ).all() as TopicRow[]
      ).map(toTopic),
    );
  }

  async updateTopicConfig(topic: core.TopicRecord, config: core.TopicConfig): Promise<core.TopicRecord> {
    return this.#run("updating a topic", () => {
      this.#stmt("UPDATE nb_topics SET config = ? WHERE id = ?").run(codec.encodeConfig(config), topic.id);
      return { ...topic, config };
    });
  }

  async deleteTopic(topic: core.TopicRecord): Promise<void> {
    return this.#run("deleting a topic", () =>
      this.#db.transaction(() => {
        for (let shard = 0; shard < topic.shards; shard++)
          this.#db.exec(`DROP TABLE IF EXISTS ${codec.logTable(topic, shard)}`);
        this.#db.exec(`DROP TABLE IF EXISTS ${codec.scheduleTable(topic.id)}`);
        this.#stmt("DELETE FROM nb_pointers WHERE topic_id = ?").run(topic.id);
        this.#stmt("DELETE FROM nb_subscriptions WHERE topic_id = ?").run(topic.id);
        this.#stmt("DELETE FROM nb_topics WHERE id = ?").run(topic.id);
        this.#stmt("DELETE FROM nb_topic_schemas WHERE topic_id = ?").run(topic.id);
        // Statements on the dropped tables are stale now.
        this.#statements.clear();
      })(),
    );
  }

  async loadTopicSchema(topic: core.TopicRecord): Promise<core.TopicSchema | null> {
    return this.#run("reading a topic schema", () => {
      const row = this.#stmt(
        "SELECT message_type, descriptor_set, updated_at FROM nb_topic_schemas WHERE topic_id = ?",
      ).get(topic.id) as { message_type: string; descriptor_set: Buffer; updated_at: number } | undefined;
      return row === undefined ? null : codec.toTopicSchema(row);
    });
  }

  async saveTopicSchema(topic: core.TopicRecord, schema: core.TopicSchema | null): Promise<void> {
    return this.#run("writing a topic schema", () => {
      if (schema === null) this.#stmt("DELETE FROM nb_topic_schemas WHERE topic_id = ?").run(topic.id);
      else
        this.#stmt(
          "INSERT OR REPLACE INTO nb_topic_schemas (topic_id, message_type, descriptor_set, updated_at) VALUES (?, ?, ?, ?)",
        ).run(topic.id, schema.messageType, Buffer.from(schema.descriptorSet), schema.updatedAt);
    });
  }

  async ensureSubscription(topic: core.TopicRecord, name: string, create: core.SubscriptionConfig | null) {
    return this.#run("creating a subscription", () => {
      const row = this.#stmt(
        "SELECT config, created_at FROM nb_subscriptions WHERE topic_id = ? AND name = ?",
      ).get(topic.id, name) as { config: string; created_at: number } | undefined;
      if (row !== undefined) {
        const subscription: core.SubscriptionRecord = {
          topicId: topic.id,
          name,
          createdAt: row.created_at,
          config: codec.decodeConfig<core.SubscriptionConfig>(row.config),
        };
        return { subscription, created: false };
      }
      if (create === null) return null;
      const now = Date.now();
      this.#stmt("INSERT INTO nb_subscriptions (topic_id, name, config, created_at) VALUES (?, ?, ?, ?)").run(
        topic.id,
        name,
        codec.encodeConfig(create),
        now,
      );
      return { subscription: { topicId: topic.id, name, createdAt: now, config: create }, created: true };
    });
  }

  async listSubscriptions(topic: core.TopicRecord): Promise<core.SubscriptionRecord[]> {
    return this.#run("listing subscriptions", () =>
      (
        this.#stmt(
          "SELECT name, config, created_at FROM nb_subscriptions WHERE topic_id = ? ORDER BY name",
        ).all(topic.id) as {
          name: string;
          config: string;
          created_at: number;
        }[]
      ).map((r) => ({
        topicId: topic.id,
        name: r.name,
        createdAt: r.created_at,
        config: codec.decodeConfig<core.SubscriptionConfig>(r.config),
      })),
    );
  }

  async updateSubscriptionConfig(
    topic: core.TopicRecord,
    name: string,
    config: core.SubscriptionConfig,
  ): Promise<void> {
    return this.#run("updating a subscription", () => {
      this.#stmt("UPDATE nb_subscriptions SET config = ? WHERE topic_id = ? AND name = ?").run(
        codec.encodeConfig(config),
        topic.id,
        name,
      );
    });
  }

  async deleteSubscription(topic: core.TopicRecord, name: string): Promise<void> {
    return this.#run("deleting a subscription", () =>
      this.#db.transaction(() => {
        this.#stmt("DELETE FROM nb_subscriptions WHERE topic_id = ? AND name = ?").run(topic.id, name);
        this.#stmt("DELETE FROM nb_pointers WHERE topic_id = ? AND subscription = ?").run(topic.id, name);
      })(),
    );
  }

  insertMessages(topic: core.TopicRecord, shard: number, rows: readonly core.LogMessage[]): Promise<void> {
    const e = encodeMessages(topic, rows);
    return this.insertEncoded(topic, shard, e.rows, e.runs);
  }

  insertRuns(topic: core.TopicRecord, shard: number, runs: readonly IndexedRun[]): Promise<void> {
    const e = encodeRuns(topic, runs);
    return this.insertEncoded(topic, shard, e.rows, e.runs);
  }

  /**
   * Queues rows already in the topic's format (encodeMessages/encodeRuns) for this turn's insert
   * transaction; settles after its commit. The writer thread's entry point.
   */
  insertEncoded(
    topic: core.TopicRecord,
    shard: number,
    rows: readonly core.LogMessage[],
    runs: readonly RunRow[],
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ topic, shard, rows, runs, resolve, reject });
      if (this.#flushScheduled) return;
      this.#flushScheduled = true;
      setImmediate(() => this.#flushInserts());
    });
  }

  /** Commits the queued inserts now (before a later write, so writes commit in the order issued). */
  flushInserts(): void {
    if (this.#queue.length > 0) this.#flushInserts();
  }

  #flushInserts(): void {
    this.#flushScheduled = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    try {
      this.#db.transaction(() => {
        for (const q of queue) {
          if (q.topic.format === 2) {
            this.#runs.insert(q.topic, q.shard, q.runs);
            continue;
          }
          // Idempotent: a retried row has the same content as the one already there; a row
          // with other content is an error, never a success.
          const table = codec.shardTable(q.topic.id, q.shard);
          const stmt = this.#stmt(
            `INSERT INTO ${table} (seq, published_at, meta, data) VALUES (?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`,
          );
          for (const r of q.rows) {
            if (stmt.run(r.seq, r.publishTime, r.meta, r.data).changes === 1) continue;
            const stored = this.#stmt(`SELECT published_at, meta, data FROM ${table} WHERE seq = ?`).get(
              r.seq,
            ) as Row | undefined;
            if (
              stored === undefined ||
              stored.published_at !== r.publishTime ||
              !stored.meta.equals(r.meta) ||
              !stored.data.equals(r.data)
            )
              throw new core.NerveBusError(
                "internal",
                `seq ${r.seq} of topic ${q.topic.name} already holds a different message: another writer assigned this topic's seqs`,
              );
          }
        }
      })();
    } catch (err) {
      const mapped = mapStoreError(err, "inserting messages", this.#path);
      this.#space?.failed(mapped);
      for (const q of queue) q.reject(mapped);
      return;
    }
    this.#space?.inserted();
    if (this.#checkpointer !== undefined) {
      let bytes = 0;
      for (const q of queue) {
        for (const r of q.runs) bytes += r.body.byteLength;
        for (const r of q.rows) bytes += r.data.byteLength + r.meta.byteLength;
      }
      this.#checkpointer.wrote(bytes);
    }
    for (const q of queue) q.resolve();
  }

  async readMessages(topic: core.TopicRecord, fromSeq: number, toSeq: number): Promise<core.LogMessage[]> {
    return this.#run("reading messages", () => {
      if (topic.format === 2) return this.#runs.readMessages(topic, fromSeq, toSeq);
      const parts: core.LogMessage[][] = [];
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = this.#stmt(
          `SELECT seq, published_at, meta, data FROM ${codec.shardTable(topic.id, shard)} WHERE seq BETWEEN ? AND ? ORDER BY seq`,
        ).all(fromSeq, toSeq) as Row[];
        parts.push(rows.map((r) => codec.decodeRow(topic, r.seq, r.published_at, r.meta, r.data)));
      }
      return codec.mergeBySeq(parts, fromSeq, toSeq);
    });
  }

  async readRuns(topic: core.TopicRecord, fromSeq: number, toSeq: number): Promise<IndexedRun[] | undefined> {
    if (topic.format !== 2) return undefined;
    return this.#run("reading messages", () => this.#runs.readRuns(topic, fromSeq, toSeq));
  }

  async readIds(topic: core.TopicRecord, fromSeq: number, toSeq: number): Promise<core.LoggedIds[]> {
    return this.#run("reading message ids", () => {
      if (topic.format === 2) return this.#runs.readIds(topic, fromSeq, toSeq);
      const all: core.LoggedIds[] = [];
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = this.#stmt(
          `SELECT seq, published_at, meta FROM ${codec.shardTable(topic.id, shard)} WHERE seq BETWEEN ? AND ?`,
        ).all(fromSeq, toSeq) as Omit<Row, "data">[];
        for (const r of rows) all.push(codec.storedIds(topic, r.seq, r.published_at, r.meta));
      }
      return all.sort((a, b) => a.seq - b.seq);
    });
  }

  async firstSeq(topic: core.TopicRecord): Promise<number> {
    return this.#run("finding the first seq", () => {
      if (topic.format === 2) return this.#runs.firstSeq(topic);
      let first = 0;
      for (let shard = 0; shard < topic.shards; shard++) {
        const s = this.#stmt(`SELECT MIN(seq) FROM ${codec.shardTable(topic.id, shard)}`)
          .pluck()
          .get() as number | null;
        if (s !== null && (first === 0 || s < first)) first = s;
      }
      return first;
    });
  }

  async averageRowBytes(topic: core.TopicRecord, sample: number): Promise<number> {
    return this.#run("sampling row sizes", () => {
      if (topic.format === 2) return this.#runs.averageRowBytes(topic, sample);
      let bytes = 0;
      let rows = 0;
      const per = Math.max(1, Math.ceil(sample / topic.shards));
      for (let shard = 0; shard < topic.shards; shard++) {
        const r = this.#stmt(
          `SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(data) + LENGTH(meta)), 0) AS b FROM
             (SELECT data, meta FROM ${codec.shardTable(topic.id, shard)} ORDER BY seq DESC LIMIT ?)`,
        ).get(per) as { n: number; b: number };
        rows += r.n;
        bytes += r.b;
      }
      return rows === 0 ? 0 : bytes / rows;
    });
  }

  async deleteMessagesThrough(topic: core.TopicRecord, throughSeq: number, limit: number): Promise<number> {
    return this.#run("deleting old messages", () => {
      if (topic.format === 2)
        return this.#db.transaction(() => this.#runs.deleteThrough(topic, throughSeq, limit))();
      let deleted = 0;
      for (let shard = 0; shard < topic.shards; shard++) {
        const table = codec.shardTable(topic.id, shard);
        deleted += this.#stmt(
          `DELETE FROM ${table} WHERE seq IN (SELECT seq FROM ${table} WHERE seq <= ? ORDER BY seq LIMIT ?)`,
        ).run(throughSeq, limit).changes;
      }
      return deleted;
    });
  }

  async recoverTail(topic: core.TopicRecord, watermark: number): Promise<number> {
    return this.#run("recovering the log tail", () =>
      this.#db.transaction(() => {
        if (topic.format === 2) return this.#runs.recoverTail(topic, watermark);
        const seqs: number[] = [];
        for (let shard = 0; shard < topic.shards; shard++) {
          const rows = this.#stmt(
            `SELECT seq FROM ${codec.shardTable(topic.id, shard)} WHERE seq > ? ORDER BY seq`,
          )
            .pluck()
            .all(watermark) as number[];
          for (const s of rows) seqs.push(s);
        }
        seqs.sort((a, b) => a - b);
        const end = codec.contiguousEnd(watermark, seqs);
        for (let shard = 0; shard < topic.shards; shard++) {
          this.#stmt(`DELETE FROM ${codec.shardTable(topic.id, shard)} WHERE seq > ?`).run(end);
        }
        return end;
      })(),
    );
  }

  async scheduleMessages(
    topic: core.TopicRecord,
    entries: readonly { dueAt: number; message: core.NewMessage }[],
  ): Promise<number[]> {
    return this.#run("scheduling messages", () =>
      this.#db.transaction(() => {
        const stmt = this.#stmt(
          `INSERT INTO ${codec.scheduleTable(topic.id)} (due_at, meta, data) VALUES (?, ?, ?)`,
        );
        return entries.map((e) =>
          Number(stmt.run(e.dueAt, codec.encodeScheduledMeta(e.message), e.message.data).lastInsertRowid),
        );
      })(),
    );
  }

  async dueMessages(topic: core.TopicRecord, now: number, limit: number): Promise<core.ScheduledMessage[]> {
    return this.#run("reading due messages", () =>
      (
        this.#stmt(
          `SELECT id, due_at, meta, data FROM ${codec.scheduleTable(topic.id)} WHERE due_at <= ? ORDER BY due_at, id LIMIT ?`,
        ).all(now, limit) as { id: number; due_at: number; meta: Buffer; data: Buffer }[]
      ).map((r) => codec.decodeScheduled(r.id, r.due_at, r.meta, r.data)),
    );
  }

  async scheduledIds(
    topic: core.TopicRecord,
    afterId: number,
    limit: number,
  ): Promise<{ id: number; messageId: string }[]> {
    return this.#run("reading schedule ids", () =>
      (
        this.#stmt(
          `SELECT id, meta FROM ${codec.scheduleTable(topic.id)} WHERE id > ? ORDER BY id LIMIT ?`,
        ).all(afterId, limit) as { id: number; meta: Buffer }[]
      ).map((r) => ({ id: r.id, messageId: codec.scheduledMessageId(r.meta) })),
    );
  }

  async deleteScheduled(topic: core.TopicRecord, ids: readonly number[]): Promise<void> {
    return this.#run("deleting schedule entries", () =>
      this.#db.transaction(() => {
        const stmt = this.#stmt(`DELETE FROM ${codec.scheduleTable(topic.id)} WHERE id = ?`);
        for (const id of ids) stmt.run(id);
      })(),
    );
  }

  async scheduleSummary(topic: core.TopicRecord): Promise<{ count: number; nextDueAt: number }> {
    return this.#run("summarising the schedule", () => {
      const r = this.#stmt(
        `SELECT COUNT(*) AS n, MIN(due_at) AS d FROM ${codec.scheduleTable(topic.id)}`,
      ).get() as { n: number; d: number | null };
      return { count: r.n, nextDueAt: r.d ?? 0 };
    });
  }

  async lowestPointer(topic: core.TopicRecord): Promise<number> {
    return this.#run("reading the lowest pointer", () =>
      codec.lowestPointerOf(
        this.#stmt(codec.LOWEST_POINTER_SQL).get(topic.id, topic.id) as
          | { subs: unknown; n: unknown; lo: unknown }
          | undefined,
      ),
    );
  }

  async loadPointer(topic: core.TopicRecord, subscription: string): Promise<core.PointerRecord | null> {
    return this.#run("loading a pointer", () => {
      const r = this.#stmt(
        "SELECT ptr, state, dead_letters FROM nb_pointers WHERE topic_id = ? AND subscription = ?",
      ).get(topic.id, subscription) as
        | { ptr: number; state: Buffer | null; dead_letters: Buffer | null }
        | undefined;
      if (r === undefined) return null;
      const pointer = { subscription, ptr: r.ptr, state: r.state };
      return r.dead_letters === null ? pointer : { ...pointer, deadLetters: r.dead_letters };
    });
  }

  async savePointers(topic: core.TopicRecord, pointers: readonly core.PointerRecord[]): Promise<void> {
    return this.#run("saving pointers", () => {
      // A NULL dead_letters means "unchanged" (see PointerRecord.deadLetters).
      const stmt = this.#stmt(
        `INSERT INTO nb_pointers (topic_id, subscription, ptr, state, dead_letters) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (topic_id, subscription) DO UPDATE SET ptr = excluded.ptr, state = excluded.state,
           dead_letters = COALESCE(excluded.dead_letters, dead_letters)`,
      );
      this.#db.transaction(() => {
        for (const p of pointers)
          stmt.run(
            topic.id,
            p.subscription,
            p.ptr,
            p.state === null ? null : Buffer.from(p.state),
            p.deadLetters === undefined ? null : Buffer.from(p.deadLetters),
          );
      })();
      // At least a page of log each.
      this.#checkpointer?.wrote(pointers.length * 4096);
    });
  }

  /** The exclusive file lock already makes this process the only writer. */
  /** One broker per file: its records need no tenure. */
  async claimTopic(topic: core.TopicRecord): Promise<core.TopicRecord> {
    return topic;
  }

  ownership(): core.OwnershipState {
    return { mechanism: "file-lock", owner: OWNER, epoch: 0, ageMs: 0, valid: true, lost: undefined };
  }

  async ping(): Promise<void> {
    return this.#run("pinging", () => {
      this.#stmt("SELECT 1").get();
    });
  }

  outOfSpace(_topic: core.TopicRecord): core.NerveBusError | undefined {
    return this.#space?.refusal();
  }

  spaceState(): core.SpaceState[] {
    return this.#space === undefined ? [] : [this.#space.state()];
  }

  /** Checkpoints the store's checkpoint thread has finished (0 without one). */
  checkpoints(): number {
    return this.#checkpointer?.completed ?? 0;
  }

  async close(): Promise<void> {
    if (this.#queue.length > 0) this.#flushInserts();
    this.#space?.close();
    // The thread's connection first: this one, closing last, checkpoints what is left.
    await this.#checkpointer?.close();
    this.#db.close();
    this.#lock?.close();
  }

  #createTopicTables(topic: core.TopicRecord): void {
    for (let shard = 0; shard < topic.shards; shard++) {
      if (topic.format === 2) {
        this.#db.exec(SqliteRunLog.tableSql(topic, shard));
        continue;
      }
      this.#db.exec(
        `CREATE TABLE IF NOT EXISTS ${codec.shardTable(topic.id, shard)} (
           seq INTEGER PRIMARY KEY, published_at INTEGER NOT NULL, meta BLOB NOT NULL, data BLOB NOT NULL)`,
      );
    }
    this.#db.exec(
      `CREATE TABLE IF NOT EXISTS ${codec.scheduleTable(topic.id)} (
         id INTEGER PRIMARY KEY AUTOINCREMENT, due_at INTEGER NOT NULL, meta BLOB NOT NULL, data BLOB NOT NULL);
       CREATE INDEX IF NOT EXISTS ${codec.scheduleTable(topic.id)}_due ON ${codec.scheduleTable(topic.id)} (due_at, id)`,
    );
  }

  /** Prepared statements, cached by SQL text (table names come from numeric ids only). */
  #stmt(sql: string): Database.Statement {
    let stmt = this.#statements.get(sql);
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }

  async #run<T>(what: string, fn: () => T): Promise<T> {
    try {
      return fn();
    } catch (err) {
      const mapped = mapStoreError(err, what, this.#path);
      this.#space?.failed(mapped);
      throw mapped;
    }
  }
}
