import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type mysql from "mysql2/promise";
import { MysqlRunLog, runsOverlappingSql, SqliteRunLog } from "../src/store/index.js";
import { encodeRun, type RunRow } from "../src/wire/index.js";
import { CpuPerMessage } from "./lib/cpu.js";
import { measureWindow, now, progress, sleep } from "./lib/stats.js";
import { runTopic, tableOf } from "./lib/stored-runs.js";
import { metaBlobs, openSqlite, rawPool } from "./raw.js";

/**
 * The run-row ceiling: format-2 rows (a row per run of consecutive messages, its body the
 * messages' Delivery records back to back, as src/wire/run-body.ts encodes them) written and
 * read straight through the drivers, in the broker's own tables (the stores' DDL). Writes: one
 * single-run prepared INSERT in flight per shard table, autocommit (mysql2; the broker wraps
 * each in its fenced transaction, which the ratio charges to the broker), or one transaction
 * per turn holding a run per shard (better-sqlite3, as the SQLite store flushes). Reads: the
 * broker's range query (runsOverlappingSql) over all shards, 5000 seqs at a time. Bodies are encoded once, outside the measured loop: this is the driver and the
 * database, not the encoding.
 */

export interface RawRunOptions {
  readonly shards: number;
  readonly bytes: number;
  /** Messages per run (per row). */
  readonly runMessages: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Seqs per range read (the broker reads at most 5000 per range). */
  readonly readRange: number;
  readonly readMs: number;
}

export interface RawRunResult {
  readonly shards: number;
  readonly bytes: number;
  readonly runMessages: number;
  /** Bytes of one run's body. */
  readonly bodyBytes: number;
  readonly insertMessagesPerSec: number;
  readonly insertRowsPerSec: number;
  readonly messagesWritten: number;
  readonly selectMessagesPerSec: number;
  readonly messagesRead: number;
  /** CPU microseconds per message written: { client, db } (db only for MySQL). */
  readonly insertCpuMicrosPerMessage: Record<string, number>;
  /** CPU microseconds per message read: { client, db }. */
  readonly selectCpuMicrosPerMessage: Record<string, number>;
}

/** One run of `o.runMessages` messages as the broker encodes it (seqs in the millions, as in a long log). */
function templateRun(o: RawRunOptions): RunRow {
  const data = randomBytes(o.bytes);
  const metas = metaBlobs(o.runMessages);
  const t = Date.now();
  const messages = metas.map((meta, i) => ({ seq: 1_000_000 + i, publishTime: t, data, meta }));
  let bytes = 0;
  for (const m of messages) bytes += m.data.byteLength + m.meta.length;
  return encodeRun(messages, bytes);
}

/** Run k of shard s: runs go round-robin over the shards, as the broker places them. */
const firstSeqOf = (k: number, shard: number, o: RawRunOptions) => (k * o.shards + shard) * o.runMessages + 1;

const RUN_COLUMNS = "first_seq, last_seq, first_time, last_time, bytes, body, ids";

/** Messages of [first, last] within [from, to]. */
const overlap = (first: number, last: number, from: number, to: number) =>
  Math.max(0, Math.min(last, to) - Math.max(first, from) + 1);

/** Reads every range of `maxSeq` seqs, one range at a time; returns messages read and seconds. */
async function readRanges(
  o: RawRunOptions,
  maxSeq: number,
  readRange: (from: number, to: number) => Promise<number> | number,
  label: string,
): Promise<{ read: number; seconds: number }> {
  let read = 0;
  const start = now();
  for (let from = 1; from <= maxSeq && now() - start < o.readMs; from += o.readRange) {
    read += await readRange(from, from + o.readRange - 1);
    progress.update(`${label}: SELECT ${read} messages`);
  }
  return { read, seconds: (now() - start) / 1000 };
}

export async function rawMysqlRuns(
  url: string,
  o: RawRunOptions,
  label: string,
  dbPid: number | undefined,
): Promise<RawRunResult> {
  const pool = rawPool(url, { connectionLimit: o.shards + 1, supportBigNumbers: true });
  const topic = runTopic(900_000 + o.bytes, o.shards);
  const table = (s: number) => tableOf(MysqlRunLog.tableSql(topic, s));
  try {
    for (let s = 0; s < o.shards; s++) {
      await pool.query(`DROP TABLE IF EXISTS ${table(s)}`);
      await pool.query(MysqlRunLog.tableSql(topic, s));
    }
    const run = templateRun(o);
    const insert = (s: number) =>
      `INSERT INTO ${table(s)} (${RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?) ON DUPLICATE KEY UPDATE first_seq = first_seq`;
    const cpu = new CpuPerMessage({ client: process.pid, db: dbPid });
    const { start, measureFrom, end } = measureWindow(o);
    let rows = 0;
    let written = 0;
    let maxK = 0;
    const cpuTimers = [
      setTimeout(() => cpu.start(), o.warmupMs),
      setTimeout(() => cpu.stop(), o.warmupMs + o.durationMs),
    ];
    await Promise.all(
      Array.from({ length: o.shards }, async (_, shard) => {
        for (let k = 0; now() < end; k++) {
          const first = firstSeqOf(k, shard, o);
          await pool.execute(insert(shard), [
            first,
            first + o.runMessages - 1,
            run.firstTime,
            run.lastTime,
            run.bytes,
            run.body,
            run.ids,
          ]);
          maxK = Math.max(maxK, k);
          written += o.runMessages;
          const t = now();
          if (t >= measureFrom && t <= end) rows++;
          progress.update(`${label}: INSERT ${Math.round(written / ((t - start) / 1000))} msg/s`);
        }
      }),
    );
    for (const t of cpuTimers) clearTimeout(t);
    cpu.stop();
    const readCpu = new CpuPerMessage({ client: process.pid, db: dbPid });
    readCpu.start();
    const { read, seconds } = await readRanges(
      o,
      firstSeqOf(maxK + 1, 0, o) - 1,
      async (from, to) => {
        const parts = await Promise.all(
          Array.from({ length: o.shards }, async (_, shard) => {
            const [r] = await pool.query<mysql.RowDataPacket[]>(
              runsOverlappingSql(table(shard), "first_seq, last_seq, body, ids"),
              [from, to],
            );
            let n = 0;
            for (const row of r) n += overlap(Number(row.first_seq), Number(row.last_seq), from, to);
            return n;
          }),
        );
        return parts.reduce((a, b) => a + b, 0);
      },
      label,
    );
    readCpu.stop();
    for (let s = 0; s < o.shards; s++) await pool.query(`DROP TABLE IF EXISTS ${table(s)}`);
    return result(o, run, rows, written, read, seconds, cpu, readCpu);
  } finally {
    await pool.end();
  }
}

export async function rawSqliteRuns(dir: string, o: RawRunOptions, label: string): Promise<RawRunResult> {
  const db = openSqlite(join(dir, `raw-runs-${o.shards}-${o.bytes}.db`));
  const topic = runTopic(1, o.shards);
  try {
    const table = (s: number) => tableOf(SqliteRunLog.tableSql(topic, s));
    const inserts = Array.from({ length: o.shards }, (_, s) => {
      db.exec(SqliteRunLog.tableSql(topic, s));
      return db.prepare(
        `INSERT INTO ${table(s)} (${RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (first_seq) DO NOTHING`,
      );
    });
    const run = templateRun(o);
    // One transaction per turn, a run into every shard: the SQLite store's flush of a write turn.
    const writeTurn = db.transaction((k: number) => {
      for (let s = 0; s < o.shards; s++) {
        const first = firstSeqOf(k, s, o);
        inserts[s]!.run(
          first,
          first + o.runMessages - 1,
          run.firstTime,
          run.lastTime,
          run.bytes,
          run.body,
          run.ids,
        );
      }
    });
    const cpu = new CpuPerMessage({ client: process.pid });
    const { start, measureFrom, end } = measureWindow(o);
    let rows = 0;
    let written = 0;
    let k = 0;
    for (; now() < end; k++) {
      if (now() >= measureFrom) cpu.start();
      writeTurn(k);
      written += o.runMessages * o.shards;
      const t = now();
      if (t >= measureFrom && t <= end) rows += o.shards;
      progress.update(`${label}: INSERT ${Math.round(written / ((t - start) / 1000))} msg/s`);
      if (k % 8 === 7) await sleep(0); // let the progress line and timers run
    }
    cpu.stop();
    const selects = Array.from({ length: o.shards }, (_, s) =>
      db.prepare(runsOverlappingSql(table(s), "first_seq, last_seq, body, ids")),
    );
    const readCpu = new CpuPerMessage({ client: process.pid });
    readCpu.start();
    const { read, seconds } = await readRanges(
      o,
      firstSeqOf(k, 0, o) - 1,
      (from, to) => {
        let n = 0;
        for (const stmt of selects)
          for (const row of stmt.all(from, to) as { first_seq: number; last_seq: number }[])
            n += overlap(row.first_seq, row.last_seq, from, to);
        return n;
      },
      label,
    );
    readCpu.stop();
    return result(o, run, rows, written, read, seconds, cpu, readCpu);
  } finally {
    db.close();
  }
}

function result(
  o: RawRunOptions,
  run: RunRow,
  rows: number,
  written: number,
  read: number,
  readSeconds: number,
  cpu: CpuPerMessage,
  readCpu: CpuPerMessage,
): RawRunResult {
  const insertSecs = o.durationMs / 1000;
  return {
    shards: o.shards,
    bytes: o.bytes,
    runMessages: o.runMessages,
    bodyBytes: run.body.length,
    insertMessagesPerSec: (rows * o.runMessages) / insertSecs,
    insertRowsPerSec: rows / insertSecs,
    messagesWritten: written,
    selectMessagesPerSec: read / readSeconds,
    messagesRead: read,
    insertCpuMicrosPerMessage: cpu.perMessage(rows * o.runMessages),
    selectCpuMicrosPerMessage: readCpu.perMessage(read),
  };
}
