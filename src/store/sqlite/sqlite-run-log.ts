import type Database from "better-sqlite3";
import * as core from "../../core/index.js";
import type { IndexedRun, RunRow } from "../../wire/index.js";
import * as codec from "../codec.js";

type StoredRunRow = { first_seq: number; last_seq: number; body: Buffer; ids: Buffer | null };

/**
 * Format 2 on SQLite: a topic's shard tables hold a row per run of consecutive messages
 * (DESIGN §3a): `first_seq` (key), `last_seq`, first and last publish time, the bytes limits
 * count, the body (the messages' Delivery records) and the schedule ids. Every call runs inside
 * the store's own error mapping; the statements are the store's (cached by text).
 */
export class SqliteRunLog {
  constructor(private readonly stmt: (sql: string) => Database.Statement) {}

  /** The tables of a new format-2 topic (the DDL, to run with the store's exec). */
  static tableSql(topic: core.TopicRecord, shard: number): string {
    const t = codec.runTable(topic.id, shard);
    return `CREATE TABLE IF NOT EXISTS ${t} (
        first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, first_time INTEGER NOT NULL,
        last_time INTEGER NOT NULL, bytes INTEGER NOT NULL, body BLOB NOT NULL, ids BLOB);
      CREATE INDEX IF NOT EXISTS ${t}_last ON ${t} (last_seq)`;
  }

  /**
   * Writes runs into one shard (inside the caller's transaction). A run already stored must be
   * this very run (a retry); anything else is an error, never a success.
   */
  insert(topic: core.TopicRecord, shard: number, runs: readonly RunRow[]): void {
    const table = codec.runTable(topic.id, shard);
    const insert = this.stmt(
      `INSERT INTO ${table} (first_seq, last_seq, first_time, last_time, bytes, body, ids)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (first_seq) DO NOTHING`,
    );
    for (const run of runs) {
      const { changes } = insert.run(...codec.runRowValues(run));
      if (changes === 1) continue;
      const stored = this.stmt(`SELECT last_seq, body, ids FROM ${table} WHERE first_seq = ?`).get(
        run.firstSeq,
      ) as { last_seq: number; body: Buffer; ids: Buffer | null } | undefined;
      const same =
        stored !== undefined &&
        stored.last_seq === run.lastSeq &&
        stored.body.equals(run.body) &&
        (stored.ids ?? Buffer.alloc(0)).equals(run.ids ?? Buffer.alloc(0));
      if (!same) {
        throw new core.NerveBusError(
          "internal",
          `seq ${run.firstSeq} of topic ${topic.name} already holds a different run: another writer assigned this topic's seqs`,
        );
      }
    }
  }

  /** Runs of every shard overlapping [from, to]. */
  #runs(topic: core.TopicRecord, from: number, to: number): codec.StoredRun[] {
    const out: codec.StoredRun[] = [];
    for (let shard = 0; shard < topic.shards; shard++) {
      const rows = this.stmt(
        codec.runsOverlappingSql(codec.runTable(topic.id, shard), "first_seq, last_seq, body, ids"),
      ).all(from, to) as StoredRunRow[];
      for (const r of rows)
        out.push({ firstSeq: r.first_seq, lastSeq: r.last_seq, body: r.body, ids: r.ids });
    }
    return out;
  }

  readMessages(topic: core.TopicRecord, from: number, to: number): core.LogMessage[] {
    return codec.messagesOfRuns(topic, this.#runs(topic, from, to), from, to);
  }

  readRuns(topic: core.TopicRecord, from: number, to: number): IndexedRun[] {
    return codec.indexedRunsOf(topic, this.#runs(topic, from, to), from, to);
  }

  readIds(topic: core.TopicRecord, from: number, to: number): core.LoggedIds[] {
    return codec.idsOfRuns(topic, this.#runs(topic, from, to), from, to);
  }

  firstSeq(topic: core.TopicRecord): number {
    let first = 0;
    for (let shard = 0; shard < topic.shards; shard++) {
      const s = this.stmt(`SELECT MIN(first_seq) FROM ${codec.runTable(topic.id, shard)}`)
        .pluck()
        .get() as number | null;
      if (s !== null && (first === 0 || s < first)) first = s;
    }
    return first;
  }

  averageRowBytes(topic: core.TopicRecord, sample: number): number {
    let bytes = 0;
    let messages = 0;
    // A run holds many messages: a few recent runs per shard are the sample.
    const per = Math.max(1, Math.ceil(sample / topic.shards / 100));
    for (let shard = 0; shard < topic.shards; shard++) {
      const r = this.stmt(
        `SELECT COALESCE(SUM(bytes), 0) AS b, COALESCE(SUM(last_seq - first_seq + 1), 0) AS n FROM
           (SELECT bytes, first_seq, last_seq FROM ${codec.runTable(topic.id, shard)} ORDER BY first_seq DESC LIMIT ?)`,
      ).get(per) as { b: number; n: number };
      bytes += r.b;
      messages += r.n;
    }
    return messages === 0 ? 0 : bytes / messages;
  }

  /** Deletes whole runs ending at or before `throughSeq`, up to `limit` runs per shard; returns messages deleted. */
  deleteThrough(topic: core.TopicRecord, throughSeq: number, limit: number): number {
    let deleted = 0;
    for (let shard = 0; shard < topic.shards; shard++) {
      const table = codec.runTable(topic.id, shard);
      const runs = this.stmt(
        `SELECT first_seq, last_seq FROM ${table} WHERE last_seq <= ? ORDER BY first_seq LIMIT ?`,
      ).all(throughSeq, limit) as { first_seq: number; last_seq: number }[];
      const del = this.stmt(`DELETE FROM ${table} WHERE first_seq = ?`);
      for (const r of runs) {
        del.run(r.first_seq);
        deleted += r.last_seq - r.first_seq + 1;
      }
    }
    return deleted;
  }

  /** Crash recovery (inside the caller's transaction): see Store.recoverTail. */
  recoverTail(topic: core.TopicRecord, watermark: number): number {
    const runs: { first: number; last: number }[] = [];
    for (let shard = 0; shard < topic.shards; shard++) {
      const rows = this.stmt(
        `SELECT first_seq, last_seq FROM ${codec.runTable(topic.id, shard)} WHERE last_seq > ?`,
      ).all(watermark) as { first_seq: number; last_seq: number }[];
      for (const r of rows) runs.push({ first: r.first_seq, last: r.last_seq });
    }
    const end = codec.runsContiguousEnd(watermark, runs);
    for (let shard = 0; shard < topic.shards; shard++)
      this.stmt(`DELETE FROM ${codec.runTable(topic.id, shard)} WHERE first_seq > ?`).run(end);
    return end;
  }
}
