import type mysql from "mysql2/promise";
import type * as core from "../../core/index.js";
import type { IndexedRun, RunRow } from "../../wire/index.js";
import * as codec from "../codec.js";
import { FENCE_HOLDS, FENCE_HOLDS_LOCKED, type FencedPool, META_SLOT } from "./fenced-pool.js";
import { dropParameterDefinitions, type Queryable } from "./server-pool.js";
import { checkStored, multiRowInsert } from "./shard-inserter.js";

const RUN_COLUMNS = ["first_seq", "last_seq", "first_time", "last_time", "bytes", "body", "ids"] as const;

/** Runs per INSERT statement at most (a write turn is usually one run per shard). */
const MAX_RUNS_PER_INSERT = 16;

/**
 * The largest body written in one round trip as SQL text (MysqlRunLog.#insertInOneTrip), where
 * a run cannot go as one prepared statement (see MysqlRunLog.insert); larger runs go as a
 * prepared statement (binary), in a transaction of four round trips that their size amortizes.
 */
export const ONE_TRIP_MAX_BODY = 16 << 10;

/** `INSERT INTO table (columns) SELECT ?, … FROM DUAL`, to be followed by a WHERE. */
function conditionalInsert(table: string): string {
  return `INSERT INTO ${table} (${RUN_COLUMNS.join(", ")}) SELECT ${RUN_COLUMNS.map(() => "?").join(", ")} FROM DUAL`;
}

/** Whether a stored row holds `run`, byte for byte. */
function sameRun(r: mysql.RowDataPacket, run: RunRow): boolean {
  return (
    Number(r.last_seq) === run.lastSeq &&
    (r.body as Buffer).equals(run.body) &&
    ((r.ids as Buffer | null) ?? Buffer.alloc(0)).equals(run.ids ?? Buffer.alloc(0))
  );
}

/**
 * Format 2 on MySQL: a topic's shard tables hold a row per run of consecutive messages
 * (DESIGN §3a): `first_seq` (primary key), `last_seq` (indexed, for range reads), first and
 * last publish time, the bytes limits count, the body (the messages' Delivery records back to
 * back) and the schedule ids. A write turn of a topic is one run, one row, one INSERT, one
 * commit, in the fenced transaction of the shard's slot.
 */
export class MysqlRunLog {
  constructor(private readonly db: FencedPool) {}

  /** DDL of one shard table of a format-2 topic. */
  static tableSql(topic: core.TopicRecord, shard: number): string {
    return `CREATE TABLE IF NOT EXISTS ${codec.runTable(topic.id, shard)} (
      first_seq BIGINT UNSIGNED NOT NULL PRIMARY KEY, last_seq BIGINT UNSIGNED NOT NULL,
      first_time BIGINT NOT NULL, last_time BIGINT NOT NULL, bytes BIGINT NOT NULL,
      body LONGBLOB NOT NULL, ids BLOB NULL, KEY last_seq (last_seq)) ENGINE=InnoDB`;
  }

  /**
   * Writes runs into one shard. A run already stored must be this very run (a retry after a
   * lost commit); anything else means two writers and ends this broker's ownership.
   */
  async insert(topic: core.TopicRecord, shard: number, runs: readonly RunRow[]): Promise<void> {
    const table = codec.runTable(topic.id, shard);
    if (runs.length === 1 && this.db.lockingReadFences) {
      if (await this.#insertByLockingRead(topic, table, shard, runs[0]!)) return;
      // Nothing inserted: already stored, or the fence row is missing or newer. The fenced
      // transaction below tells which.
    } else if (runs.length === 1 && runs[0]!.body.length <= ONE_TRIP_MAX_BODY) {
      await this.#insertInOneTrip(topic, table, shard, runs[0]!);
      return;
    }
    await this.db.fenced("inserting runs", topic, shard, async (conn) => {
      for (let i = 0; i < runs.length; i += MAX_RUNS_PER_INSERT) {
        const part = runs.slice(i, i + MAX_RUNS_PER_INSERT);
        const values: (number | Buffer | null)[] = [];
        for (const r of part) values.push(...codec.runRowValues(r));
        const stmt = await conn.prepare(multiRowInsert(table, RUN_COLUMNS, part.length)); // cached per connection
        dropParameterDefinitions(stmt);
        const [res] = (await stmt.execute(values)) as unknown as [mysql.ResultSetHeader];
        // A new run counts 1, a kept duplicate 0 (the pool has no FOUND_ROWS flag).
        if (res.affectedRows !== part.length) await this.#checkExisting(conn, topic, table, part);
      }
    });
  }

  /**
   * A run in one round trip, as one prepared statement that reads its fence row with a shared
   * lock (FencedPool.fencedByLockingRead): where four round trips (START, the fence UPDATE, the
   * INSERT, COMMIT) each waited for an event loop busy with other packs, this is one. True when
   * the run was inserted.
   */
  async #insertByLockingRead(
    topic: core.TopicRecord,
    table: string,
    shard: number,
    run: RunRow,
  ): Promise<boolean> {
    const res = await this.db.fencedByLockingRead("inserting runs", topic, shard, (fence) => ({
      sql: `${conditionalInsert(table)} WHERE ${FENCE_HOLDS_LOCKED} ON DUPLICATE KEY UPDATE first_seq = first_seq`,
      params: [...codec.runRowValues(run), ...fence],
    }));
    return res.affectedRows === 1;
  }

  /**
   * On a certifying cluster (where #insertByLockingRead is not used), a small run (what a
   * producer sending a few messages at a time makes) in one round trip instead of four: its
   * body travels as SQL text (hex, twice its size), which costs less than the round trips up to
   * ONE_TRIP_MAX_BODY.
   */
  async #insertInOneTrip(topic: core.TopicRecord, table: string, shard: number, run: RunRow): Promise<void> {
    const values = codec.runRowValues(run);
    const res = await this.db.fencedInOneTrip("inserting runs", topic, shard, (fence) => ({
      sql: `${conditionalInsert(table)} WHERE ${FENCE_HOLDS} ON DUPLICATE KEY UPDATE first_seq = first_seq`,
      params: [...values, ...fence],
    }));
    // Already stored (a retry after a lost commit): it must be this very run. The fence bump
    // matched, so the INSERT's condition held and the row is there; the duplicate changed
    // nothing, so having committed it is harmless either way.
    if (res.affectedRows !== 1)
      await this.db.run("inserting runs", () => this.#checkExisting(this.db, topic, table, [run]));
  }

  /** Every run of `runs` already stored must be the same run (#conflict otherwise). */
  async #checkExisting(
    conn: Queryable,
    topic: core.TopicRecord,
    table: string,
    runs: readonly RunRow[],
  ): Promise<void> {
    await checkStored(
      conn,
      `SELECT first_seq, last_seq, body, ids FROM ${table} WHERE first_seq IN (?)`,
      [runs.map((r) => r.firstSeq)],
      "first_seq",
      runs,
      (run) => run.firstSeq,
      sameRun,
      (run) => this.#conflict(topic, run),
    );
  }

  /** A run stored at `run`'s seq differs from it: another writer assigned this topic's seqs. */
  #conflict(topic: core.TopicRecord, run: RunRow): core.NerveBusError {
    return this.db.lease.markLost(
      topic,
      `seq ${run.firstSeq} of topic ${topic.name} already holds a different run: another writer assigned this topic's seqs`,
    );
  }

  /** Runs of every shard overlapping [from, to]. */
  async #runs(topic: core.TopicRecord, from: number, to: number): Promise<codec.StoredRun[]> {
    const parts = await Promise.all(
      Array.from({ length: topic.shards }, (_, shard) =>
        this.db.select(
          codec.runsOverlappingSql(codec.runTable(topic.id, shard), "first_seq, last_seq, body, ids"),
          [from, to],
        ),
      ),
    );
    return parts.flat().map((r) => ({
      firstSeq: Number(r.first_seq),
      lastSeq: Number(r.last_seq),
      body: r.body as Buffer,
      ids: (r.ids as Buffer | null) ?? null,
    }));
  }

  async readMessages(topic: core.TopicRecord, from: number, to: number): Promise<core.LogMessage[]> {
    return codec.messagesOfRuns(topic, await this.#runs(topic, from, to), from, to);
  }

  async readRuns(topic: core.TopicRecord, from: number, to: number): Promise<IndexedRun[]> {
    return codec.indexedRunsOf(topic, await this.#runs(topic, from, to), from, to);
  }

  async readIds(topic: core.TopicRecord, from: number, to: number): Promise<core.LoggedIds[]> {
    return codec.idsOfRuns(topic, await this.#runs(topic, from, to), from, to);
  }

  async firstSeq(topic: core.TopicRecord): Promise<number> {
    let found = 0;
    for (let shard = 0; shard < topic.shards; shard++) {
      const rows = await this.db.select(
        `SELECT MIN(first_seq) AS s FROM ${codec.runTable(topic.id, shard)}`,
        [],
      );
      const s = rows[0]?.s;
      if (s !== null && s !== undefined && (found === 0 || Number(s) < found)) found = Number(s);
    }
    return found;
  }

  async averageRowBytes(topic: core.TopicRecord, sample: number): Promise<number> {
    let bytes = 0;
    let messages = 0;
    // A run holds many messages: a few recent runs per shard are the sample.
    const per = Math.max(1, Math.ceil(sample / topic.shards / 100));
    for (let shard = 0; shard < topic.shards; shard++) {
      const r = await this.db.select(
        `SELECT COALESCE(SUM(bytes), 0) AS b, COALESCE(SUM(last_seq - first_seq + 1), 0) AS n FROM
           (SELECT bytes, first_seq, last_seq FROM ${codec.runTable(topic.id, shard)} ORDER BY first_seq DESC LIMIT ?) AS recent`,
        [per],
      );
      bytes += Number(r[0]?.b ?? 0);
      messages += Number(r[0]?.n ?? 0);
    }
    return messages === 0 ? 0 : bytes / messages;
  }

  /** Deletes whole runs ending at or before `throughSeq`, up to `limit` runs per shard; returns messages deleted. */
  async deleteThrough(topic: core.TopicRecord, throughSeq: number, limit: number): Promise<number> {
    let deleted = 0;
    for (let shard = 0; shard < topic.shards; shard++) {
      const table = codec.runTable(topic.id, shard);
      // Bounded chunks: one short transaction each, so writers never wait long on it.
      deleted += await this.db.fenced("deleting old messages", topic, META_SLOT, async (conn) => {
        const [runs] = await conn.query<mysql.RowDataPacket[]>(
          `SELECT first_seq, last_seq FROM ${table} WHERE last_seq <= ? ORDER BY first_seq LIMIT ? FOR UPDATE`,
          [throughSeq, limit],
        );
        if (runs.length === 0) return 0;
        await conn.query(`DELETE FROM ${table} WHERE first_seq IN (?)`, [
          runs.map((r) => Number(r.first_seq)),
        ]);
        let n = 0;
        for (const r of runs) n += Number(r.last_seq) - Number(r.first_seq) + 1;
        return n;
      });
    }
    return deleted;
  }

  /** Crash recovery: see Store.recoverTail (a run is all or nothing). */
  async recoverTail(topic: core.TopicRecord, watermark: number): Promise<number> {
    const runs: { first: number; last: number }[] = [];
    for (let shard = 0; shard < topic.shards; shard++) {
      const rows = await this.db.select(
        `SELECT first_seq, last_seq FROM ${codec.runTable(topic.id, shard)} WHERE last_seq > ?`,
        [watermark],
      );
      for (const r of rows) runs.push({ first: Number(r.first_seq), last: Number(r.last_seq) });
    }
    const end = codec.runsContiguousEnd(watermark, runs);
    await this.db.fenced("recovering the log tail", topic, META_SLOT, async (conn) => {
      for (let shard = 0; shard < topic.shards; shard++)
        await conn.query(`DELETE FROM ${codec.runTable(topic.id, shard)} WHERE first_seq > ?`, [end]);
    });
    return end;
  }
}
