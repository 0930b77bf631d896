import type mysql from "mysql2/promise";
import type { TopicRecord } from "../../core/index.js";
import * as codec from "../codec.js";
import { type FencedPool, META_SLOT } from "../mysql/fenced-pool.js";

/** Rows read per round: format-2 runs are up to 4 MiB each, so at most 32 MiB held. */
const RUN_ROWS_PER_READ = 8;
const MESSAGE_ROWS_PER_READ = 256;
/** 4 MiB per INSERT: below the 16 MiB max_allowed_packet default with room for the SQL text. */
const MAX_INSERT_BYTES = 4 << 20;

/** A table of a topic as copied: its name on each side, key column and columns. */
interface Table {
  readonly from: string;
  readonly to: string;
  readonly key: string;
  readonly columns: readonly string[];
}

/** One side of a copy: a host's pool and the topic as that host knows it. */
export interface CopySide {
  readonly db: FencedPool;
  readonly topic: TopicRecord;
}

/**
 * Copies a topic's rows, row for row, from one MySQL database to another (a move of
 * src/store/multi). Keys (seqs, run starts, schedule ids) are kept, so the copy reads exactly as
 * the original. Every write to the target is fenced by the target's lease; reads of the source
 * need none. Throws NerveBusError (see FencedPool.run).
 */
export class TopicCopier {
  constructor(
    private readonly source: CopySide,
    private readonly target: CopySide,
  ) {}

  /** The topic's log tables (one per shard) and its schedule table. */
  tables(): Table[] {
    const s = this.source.topic;
    const t = this.target.topic;
    const log = Array.from({ length: s.shards }, (_, shard) => ({
      from: codec.logTable(s, shard),
      to: codec.logTable(t, shard),
      key: s.format === 2 ? "first_seq" : "seq",
      columns:
        s.format === 2
          ? ["first_seq", "last_seq", "first_time", "last_time", "bytes", "body", "ids"]
          : ["seq", "published_at", "meta", "data"],
    }));
    const schedule = {
      from: codec.scheduleTable(s.id),
      to: codec.scheduleTable(t.id),
      key: "id",
      columns: ["id", "due_at", "meta", "data"],
    };
    return [...log, schedule];
  }

  /** The highest key of each table now (0 when empty): where a bulk copy stops. */
  async marks(): Promise<number[]> {
    return Promise.all(
      this.tables().map(async (t) => {
        const rows = await this.#read(`SELECT MAX(${t.key}) AS k FROM ${t.from}`, []);
        return Number(rows[0]?.k ?? 0);
      }),
    );
  }

  /**
   * Copies every row with a key in (after[i], upTo[i]] of each table; `replace` overwrites rows
   * the target has at those keys. Returns how many rows were copied.
   */
  async copy(after: readonly number[], upTo: readonly number[], replace: boolean): Promise<number> {
    let copied = 0;
    for (const [i, table] of this.tables().entries()) {
      const perRead = table.key === "first_seq" ? RUN_ROWS_PER_READ : MESSAGE_ROWS_PER_READ;
      let from = after[i] ?? 0;
      for (;;) {
        const rows = await this.#read(
          `SELECT ${table.columns.join(", ")} FROM ${table.from} WHERE ${table.key} > ? AND ${table.key} <= ? ORDER BY ${table.key} LIMIT ?`,
          [from, upTo[i] ?? Number.MAX_SAFE_INTEGER, perRead],
        );
        if (rows.length === 0) break;
        await this.#write(table, rows, replace);
        copied += rows.length;
        from = Number(rows[rows.length - 1]![table.key]);
      }
    }
    return copied;
  }

  /**
   * Makes the target's key set that of the source where the source lost rows since the bulk
   * copy: retention (below the first key), recovery of an unconfirmed tail (above the last), and
   * schedule entries moved into the log (anywhere, so those are compared key by key).
   */
  async trim(): Promise<void> {
    for (const table of this.tables()) {
      if (table.key === "id") {
        const have = new Set((await this.#read(`SELECT id FROM ${table.from}`, [])).map((r) => Number(r.id)));
        const extra = (
          await this.target.db.run("copying a topic", () =>
            this.target.db.select(`SELECT id FROM ${table.to}`, []),
          )
        )
          .map((r) => Number(r.id))
          .filter((id) => !have.has(id));
        for (let i = 0; i < extra.length; i += 1000)
          await this.#fenced((conn) =>
            conn.query(`DELETE FROM ${table.to} WHERE id IN (?)`, [extra.slice(i, i + 1000)]),
          );
        continue;
      }
      const [r] = await this.#read(
        `SELECT MIN(${table.key}) AS lo, MAX(${table.key}) AS hi FROM ${table.from}`,
        [],
      );
      const lo = r?.lo === null || r?.lo === undefined ? Number.MAX_SAFE_INTEGER : Number(r.lo);
      const hi = r?.hi === null || r?.hi === undefined ? 0 : Number(r.hi);
      await this.#fenced((conn) =>
        conn.query(`DELETE FROM ${table.to} WHERE ${table.key} < ? OR ${table.key} > ?`, [lo, hi]),
      );
    }
  }

  /**
   * Replaces the target's subscriptions, pointers (subscription state and the writer's dedup
   * horizon), payload schema, topic config and creation time with the source's, in one
   * transaction; then
   * sets the schedule's next id past every id the source ever gave, so an id the log still
   * names as moved is never given again.
   */
  async copyCatalog(): Promise<void> {
    const s = this.source.topic;
    const t = this.target.topic;
    const [topic] = await this.#read("SELECT config, created_at FROM nb_topics WHERE id = ?", [s.id]);
    const subs = await this.#read(
      "SELECT name, config, created_at FROM nb_subscriptions WHERE topic_id = ?",
      [s.id],
    );
    const pointers = await this.#read(
      "SELECT subscription, ptr, state, dead_letters FROM nb_pointers WHERE topic_id = ?",
      [s.id],
    );
    const schemas = await this.#read(
      "SELECT message_type, descriptor_set, updated_at FROM nb_topic_schemas WHERE topic_id = ?",
      [s.id],
    );
    await this.#fenced(async (conn) => {
      if (topic !== undefined)
        await conn.query("UPDATE nb_topics SET config = ?, created_at = ? WHERE id = ?", [
          topic.config,
          topic.created_at,
          t.id,
        ]);
      await conn.query("DELETE FROM nb_subscriptions WHERE topic_id = ?", [t.id]);
      await conn.query("DELETE FROM nb_pointers WHERE topic_id = ?", [t.id]);
      if (subs.length > 0)
        await conn.query("INSERT INTO nb_subscriptions (topic_id, name, config, created_at) VALUES ?", [
          subs.map((r) => [t.id, r.name, r.config, r.created_at]),
        ]);
      if (pointers.length > 0)
        await conn.query(
          "INSERT INTO nb_pointers (topic_id, subscription, ptr, state, dead_letters) VALUES ?",
          [pointers.map((r) => [t.id, r.subscription, r.ptr, r.state, r.dead_letters])],
        );
      await conn.query("DELETE FROM nb_topic_schemas WHERE topic_id = ?", [t.id]);
      if (schemas.length > 0)
        await conn.query(
          "INSERT INTO nb_topic_schemas (topic_id, message_type, descriptor_set, updated_at) VALUES ?",
          [schemas.map((r) => [t.id, r.message_type, r.descriptor_set, r.updated_at])],
        );
    });
    const from = codec.scheduleTable(s.id);
    const [created] = await this.#read(`SHOW CREATE TABLE ${from}`, []);
    const counter = /AUTO_INCREMENT=(\d+)/.exec(String(created?.["Create Table"] ?? ""))?.[1];
    const [max] = await this.#read(`SELECT COALESCE(MAX(id), 0) + 1 AS n FROM ${from}`, []);
    const next = Math.max(Number(counter ?? 1), Number(max?.n ?? 1));
    // DDL commits on its own; nothing reads the target before the switch, so it need not be fenced.
    await this.target.db.run("copying a topic", () =>
      this.target.db.query(`ALTER TABLE ${codec.scheduleTable(t.id)} AUTO_INCREMENT = ${next}`),
    );
  }

  #read(sql: string, params: unknown[]): Promise<mysql.RowDataPacket[]> {
    return this.source.db.run("copying a topic", () => this.source.db.select(sql, params));
  }

  #fenced<T>(fn: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> {
    return this.target.db.fenced("copying a topic", this.target.topic, META_SLOT, fn);
  }

  /** Inserts rows into the target, as few statements as fit under MAX_INSERT_BYTES. */
  async #write(table: Table, rows: mysql.RowDataPacket[], replace: boolean): Promise<void> {
    const verb = replace ? "REPLACE" : "INSERT IGNORE";
    let batch: unknown[][] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const values = batch;
      batch = [];
      bytes = 0;
      await this.#fenced((conn) =>
        conn.query(`${verb} INTO ${table.to} (${table.columns.join(", ")}) VALUES ?`, [values]),
      );
    };
    for (const r of rows) {
      const row = table.columns.map((c) => r[c] as unknown);
      const size = row.reduce<number>((n, v) => n + (Buffer.isBuffer(v) ? v.length : 16), 0);
      if (bytes + size > MAX_INSERT_BYTES) await flush();
      batch.push(row);
      bytes += size;
    }
    await flush();
  }
}
