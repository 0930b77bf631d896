import { randomBytes } from "node:crypto";
import { join } from "node:path";
import Database from "better-sqlite3";
import mysql from "mysql2/promise";
import { ONE_TRIP_MAX_BODY } from "../src/store/mysql/mysql-run-log.js";
import { encodeMeta } from "../src/wire/index.js";
import { CpuPerMessage } from "./lib/cpu.js";
import { measureWindow, now, type Percentiles, percentiles, progress, Samples, sleep } from "./lib/stats.js";
import { traceparent } from "./lib/wire.js";

/**
 * The ceiling: the same rows the broker stores (seq BIGINT UNSIGNED PK, published_at BIGINT,
 * meta BLOB, data LONGBLOB), written and read straight through the drivers the broker uses, in
 * the same shape: one multi-row INSERT in flight per shard table (mysql2), or one transaction
 * per batch of single-row prepared inserts (better-sqlite3, WAL, synchronous=FULL); reads are
 * range SELECTs of all shards in parallel, one range at a time, as the broker's lagging reader
 * does.
 */

export interface RawOptions {
  readonly shards: number;
  readonly bytes: number;
  /** Rows per INSERT (per shard) or per shard per SQLite transaction. */
  readonly batchRows: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** Seqs per range read (the broker reads at most 5000 per range). */
  readonly readRange: number;
  readonly readMs: number;
}

export interface RawResult {
  readonly shards: number;
  readonly bytes: number;
  readonly batchRows: number;
  readonly insertRowsPerSec: number;
  readonly insertStatementsPerSec: number;
  readonly rowsWritten: number;
  readonly selectRowsPerSec: number;
  readonly rowsRead: number;
  /** CPU microseconds per inserted row: { client, db } (db only for MySQL). */
  readonly insertCpuMicrosPerRow: Record<string, number>;
}

/** The broker's meta blob (src/wire/message-meta.ts) for a message with only a traceparent attribute. */
export function metaBlobs(n: number): Buffer[] {
  return Array.from({ length: n }, () => {
    const tp = traceparent();
    return encodeMeta({ attributes: { traceparent: tp }, orderingKey: "", messageId: "" }, tp.slice(3, 35));
  });
}

const seqOf = (batch: number, i: number, batchRows: number, shards: number, shard: number) =>
  (batch * batchRows + i + 1) * shards + shard;

/** A mysql2 pool on the database `url` names (mysql://USER:PASS@HOST:PORT/DB). */
export function rawPool(url: string, options: mysql.PoolOptions): mysql.Pool {
  const u = new URL(url);
  return mysql.createPool({
    host: u.hostname,
    port: Number(u.port),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
    ...options,
  });
}

/** (Re)creates `table` in the shape of the broker's MySQL shard tables. */
async function createShardTable(pool: mysql.Pool, table: string): Promise<void> {
  await pool.query(`DROP TABLE IF EXISTS ${table}`);
  await pool.query(
    `CREATE TABLE ${table} (seq BIGINT UNSIGNED NOT NULL PRIMARY KEY, published_at BIGINT NOT NULL,
       meta BLOB NOT NULL, data LONGBLOB NOT NULL) ENGINE=InnoDB`,
  );
}

/** The columns of the broker's SQLite shard tables. */
const SQLITE_COLUMNS =
  "(seq INTEGER PRIMARY KEY, published_at INTEGER NOT NULL, meta BLOB NOT NULL, data BLOB NOT NULL)";

/** A SQLite database set up as the broker's store: exclusive lock, WAL, synchronous=FULL. */
export function openSqlite(path: string): Database.Database {
  const db = new Database(path);
  db.pragma("locking_mode = EXCLUSIVE");
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  return db;
}

export async function rawMysql(
  url: string,
  o: RawOptions,
  label: string,
  dbPid: number | undefined,
): Promise<RawResult> {
  const cpu = new CpuPerMessage({ client: process.pid, db: dbPid });
  const pool = rawPool(url, { connectionLimit: o.shards + 1, supportBigNumbers: true });
  const table = (s: number) => `raw_${o.shards}_${o.bytes}_${s}`;
  try {
    for (let s = 0; s < o.shards; s++) {
      await createShardTable(pool, table(s));
    }
    const data = randomBytes(o.bytes);
    const metas = metaBlobs(o.batchRows);
    const insertSql = (shard: number) =>
      `INSERT INTO ${table(shard)} (seq, published_at, meta, data) VALUES ${"(?,?,?,?),".repeat(o.batchRows - 1)}(?,?,?,?) ON DUPLICATE KEY UPDATE seq = seq`;
    const { start, measureFrom, end } = measureWindow(o);
    let rows = 0;
    let statements = 0;
    let written = 0;
    const cpuTimers = [
      setTimeout(() => cpu.start(), o.warmupMs),
      setTimeout(() => cpu.stop(), o.warmupMs + o.durationMs),
    ];
    await Promise.all(
      Array.from({ length: o.shards }, async (_, shard) => {
        for (let batch = 0; now() < end; batch++) {
          // The broker's statement: a prepared multi-row INSERT (binary protocol).
          const values: (number | Buffer)[] = [];
          const ts = Date.now();
          for (let i = 0; i < o.batchRows; i++)
            values.push(seqOf(batch, i, o.batchRows, o.shards, shard), ts, metas[i]!, data);
          await pool.execute(insertSql(shard), values);
          written += o.batchRows;
          const t = now();
          if (t >= measureFrom && t <= end) {
            rows += o.batchRows;
            statements++;
          }
          progress.update(`${label}: INSERT ${Math.round(written / ((t - start) / 1000))} rows/s`);
        }
      }),
    );
    for (const t of cpuTimers) clearTimeout(t);
    cpu.stop();
    const insertSecs = o.durationMs / 1000;
    // Range reads of everything written, one range (all shards in parallel) at a time.
    const maxSeq = seqOf(Math.ceil(written / o.shards / o.batchRows), 0, o.batchRows, o.shards, 0);
    let read = 0;
    const readStart = now();
    for (let from = 0; from <= maxSeq && now() - readStart < o.readMs; from += o.readRange) {
      const parts = await Promise.all(
        Array.from({ length: o.shards }, async (_, shard) => {
          const [r] = await pool.query<mysql.RowDataPacket[]>(
            `SELECT seq, published_at, meta, data FROM ${table(shard)} WHERE seq BETWEEN ? AND ? ORDER BY seq`,
            [from, from + o.readRange - 1],
          );
          return r.length;
        }),
      );
      for (const n of parts) read += n;
      progress.update(`${label}: SELECT ${read} rows`);
    }
    const readSecs = (now() - readStart) / 1000;
    for (let s = 0; s < o.shards; s++) await pool.query(`DROP TABLE IF EXISTS ${table(s)}`);
    return {
      shards: o.shards,
      bytes: o.bytes,
      batchRows: o.batchRows,
      insertRowsPerSec: rows / insertSecs,
      insertStatementsPerSec: statements / insertSecs,
      rowsWritten: written,
      selectRowsPerSec: read / readSecs,
      rowsRead: read,
      insertCpuMicrosPerRow: cpu.perMessage(rows),
    };
  } finally {
    await pool.end();
  }
}

export async function rawSqlite(dir: string, o: RawOptions, label: string): Promise<RawResult> {
  const db = openSqlite(join(dir, `raw-${o.shards}-${o.bytes}.db`));
  const table = (s: number) => `raw_${s}`;
  try {
    const inserts: Database.Statement[] = [];
    for (let s = 0; s < o.shards; s++) {
      db.exec(`CREATE TABLE ${table(s)} ${SQLITE_COLUMNS}`);
      inserts.push(
        db.prepare(
          `INSERT INTO ${table(s)} (seq, published_at, meta, data) VALUES (?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING`,
        ),
      );
    }
    const data = randomBytes(o.bytes);
    const metas = metaBlobs(o.batchRows);
    // One transaction per batch: batchRows rows into every shard (one broker flush), one fsync.
    const writeBatch = db.transaction((batch: number) => {
      const ts = Date.now();
      for (let shard = 0; shard < o.shards; shard++) {
        const stmt = inserts[shard]!;
        for (let i = 0; i < o.batchRows; i++)
          stmt.run(seqOf(batch, i, o.batchRows, o.shards, shard), ts, metas[i], data);
      }
    });
    const { start, measureFrom, end } = measureWindow(o);
    let rows = 0;
    let txns = 0;
    let written = 0;
    let batch = 0;
    const cpu = new CpuPerMessage({ client: process.pid });
    let measuring = false;
    for (; now() < end; batch++) {
      if (!measuring && now() >= measureFrom) {
        cpu.start();
        measuring = true;
      }
      writeBatch(batch);
      written += o.batchRows * o.shards;
      const t = now();
      if (t >= measureFrom && t <= end) {
        rows += o.batchRows * o.shards;
        txns++;
      }
      progress.update(`${label}: INSERT ${Math.round(written / ((t - start) / 1000))} rows/s`);
      if (batch % 8 === 7) await sleep(0); // let the progress line and timers run
    }
    cpu.stop();
    const insertSecs = o.durationMs / 1000;
    const selects = Array.from({ length: o.shards }, (_, s) =>
      db.prepare(
        `SELECT seq, published_at, meta, data FROM ${table(s)} WHERE seq BETWEEN ? AND ? ORDER BY seq`,
      ),
    );
    const maxSeq = seqOf(batch, 0, o.batchRows, o.shards, 0);
    let read = 0;
    const readStart = now();
    for (let from = 0; from <= maxSeq && now() - readStart < o.readMs; from += o.readRange) {
      for (const stmt of selects) read += stmt.all(from, from + o.readRange - 1).length;
    }
    const readSecs = (now() - readStart) / 1000;
    return {
      shards: o.shards,
      bytes: o.bytes,
      batchRows: o.batchRows,
      insertRowsPerSec: rows / insertSecs,
      insertStatementsPerSec: txns / insertSecs,
      rowsWritten: written,
      selectRowsPerSec: read / readSecs,
      rowsRead: read,
      insertCpuMicrosPerRow: cpu.perMessage(rows),
    };
  } finally {
    db.close();
  }
}

/**
 * The latency ceiling of the end-to-end test: rows fall due at `rate` per second, and every
 * `tickMs` the rows due so far go out, one INSERT per shard in parallel (MySQL) or one
 * transaction (SQLite), the next batch only once the previous one committed, as the broker's
 * shard writers do. Latency = commit time − the time the row fell due.
 */
export interface CommitLatencyResult {
  readonly rate: number;
  readonly shards: number;
  readonly bytes: number;
  readonly tickMs: number;
  readonly latencyMs: Percentiles;
  /**
   * MySQL only: the broker's write shape at the same rate and tick, straight through the
   * driver: each tick's rows one run row in one shard (round-robin), in a transaction of
   * START, the fence row's UPDATE, the INSERT and COMMIT (src/store/mysql/fenced-pool.ts),
   * sent as one text query up to the broker's ONE_TRIP_MAX_BODY, else as four round trips.
   */
  readonly fencedLatencyMs?: Percentiles;
}

async function paced(
  o: { rate: number; tickMs: number; durationMs: number; warmupMs: number },
  write: (first: number, count: number) => Promise<void> | void,
): Promise<Percentiles> {
  const lat = new Samples();
  const { start, measureFrom, end } = measureWindow(o);
  let written = 0;
  while (now() < end) {
    const t = now();
    const due = Math.floor(((t - start) * o.rate) / 1000);
    if (due > written) {
      const first = written;
      const count = due - written;
      await write(first, count);
      written = due;
      const done = now();
      // Row k fell due at start + k / rate.
      for (let k = first; k < first + count; k++) {
        const dueAt = start + (k * 1000) / o.rate;
        if (dueAt >= measureFrom) lat.push(done - dueAt);
      }
    }
    const next = start + (Math.floor((now() - start) / o.tickMs) + 1) * o.tickMs;
    await sleep(Math.max(0, next - now()));
  }
  return percentiles(lat.values());
}

export async function rawMysqlCommitLatency(
  url: string,
  o: { rate: number; shards: number; bytes: number; tickMs: number; durationMs: number; warmupMs: number },
): Promise<CommitLatencyResult> {
  const pool = rawPool(url, { connectionLimit: o.shards + 1, multipleStatements: true });
  const table = (s: number) => `rawlat_${s}`;
  try {
    for (let s = 0; s < o.shards; s++) {
      await createShardTable(pool, table(s));
    }
    const data = randomBytes(o.bytes);
    const meta = metaBlobs(1)[0]!;
    const latencyMs = await paced(o, async (first, count) => {
      const perShard: unknown[][][] = Array.from({ length: o.shards }, () => []);
      const ts = Date.now();
      for (let seq = first + 1; seq <= first + count; seq++)
        perShard[seq % o.shards]!.push([seq, ts, meta, data]);
      await Promise.all(
        perShard.map((values, shard) =>
          values.length === 0
            ? undefined
            : pool.query(
                `INSERT INTO ${table(shard)} (seq, published_at, meta, data) VALUES ? ON DUPLICATE KEY UPDATE seq = seq`,
                [values],
              ),
        ),
      );
    });
    for (let s = 0; s < o.shards; s++) await pool.query(`DROP TABLE IF EXISTS ${table(s)}`);
    const fencedLatencyMs = await fencedCommitLatency(pool, o, meta, data);
    return { rate: o.rate, shards: o.shards, bytes: o.bytes, tickMs: o.tickMs, latencyMs, fencedLatencyMs };
  } finally {
    await pool.end();
  }
}

/** The fenced-run variant of rawMysqlCommitLatency (see CommitLatencyResult.fencedLatencyMs). */
async function fencedCommitLatency(
  pool: mysql.Pool,
  o: { rate: number; shards: number; tickMs: number; durationMs: number; warmupMs: number },
  meta: Buffer,
  data: Buffer,
): Promise<Percentiles> {
  const table = (s: number) => `rawlat_run_${s}`;
  await pool.query("DROP TABLE IF EXISTS rawlat_fence");
  await pool.query(
    "CREATE TABLE rawlat_fence (slot INT NOT NULL PRIMARY KEY, epoch BIGINT NOT NULL, writes BIGINT NOT NULL) ENGINE=InnoDB",
  );
  for (let s = 0; s < o.shards; s++) {
    await pool.query(`DROP TABLE IF EXISTS ${table(s)}`);
    await pool.query(
      `CREATE TABLE ${table(s)} (first_seq BIGINT UNSIGNED NOT NULL PRIMARY KEY, last_seq BIGINT UNSIGNED NOT NULL,
         first_time BIGINT NOT NULL, last_time BIGINT NOT NULL, bytes BIGINT NOT NULL, body LONGBLOB NOT NULL,
         ids BLOB NULL, KEY last_seq (last_seq)) ENGINE=InnoDB`,
    );
    await pool.query("INSERT INTO rawlat_fence VALUES (?, 1, 0)", [s]);
  }
  // A record of the body: about what the broker stores per message (its Delivery bytes).
  const record = Buffer.concat([meta, data]);
  let tick = 0;
  const latency = await paced(o, async (first, count) => {
    const shard = tick++ % o.shards;
    const body = Buffer.allocUnsafe(record.length * count);
    for (let i = 0; i < count; i++) record.copy(body, i * record.length);
    const t = Date.now();
    const values = [first + 1, first + count, t, t, body.length, body];
    const columns = "first_seq, last_seq, first_time, last_time, bytes, body, ids";
    if (body.length <= ONE_TRIP_MAX_BODY) {
      const [results] = await pool.query<mysql.ResultSetHeader[]>(
        `START TRANSACTION; UPDATE rawlat_fence SET writes = writes + 1 WHERE slot = ? AND epoch = 1;
         INSERT INTO ${table(shard)} (${columns}) SELECT ?, ?, ?, ?, ?, ?, NULL FROM DUAL
           WHERE EXISTS (SELECT 1 FROM rawlat_fence WHERE slot = ? AND epoch = 1); COMMIT`,
        [shard, ...values, shard],
      );
      if (results[2]?.affectedRows !== 1) throw new Error("raw fenced run: the INSERT stored nothing");
      return;
    }
    const conn = await pool.getConnection();
    try {
      await conn.query("START TRANSACTION");
      await conn.execute("UPDATE rawlat_fence SET writes = writes + 1 WHERE slot = ? AND epoch = ?", [
        shard,
        1,
      ]);
      await conn.execute(`INSERT INTO ${table(shard)} (${columns}) VALUES (?, ?, ?, ?, ?, ?, NULL)`, values);
      await conn.query("COMMIT");
    } finally {
      conn.release();
    }
  });
  for (let s = 0; s < o.shards; s++) await pool.query(`DROP TABLE IF EXISTS ${table(s)}`);
  await pool.query("DROP TABLE rawlat_fence");
  return latency;
}

export async function rawSqliteCommitLatency(
  dir: string,
  o: { rate: number; shards: number; bytes: number; tickMs: number; durationMs: number; warmupMs: number },
): Promise<CommitLatencyResult> {
  const db = openSqlite(join(dir, `rawlat-${o.rate}.db`));
  try {
    const inserts = Array.from({ length: o.shards }, (_, s) => {
      db.exec(`CREATE TABLE rawlat_${s} ${SQLITE_COLUMNS}`);
      return db.prepare(`INSERT INTO rawlat_${s} (seq, published_at, meta, data) VALUES (?, ?, ?, ?)`);
    });
    const data = randomBytes(o.bytes);
    const meta = metaBlobs(1)[0]!;
    const write = db.transaction((first: number, count: number) => {
      const ts = Date.now();
      for (let seq = first + 1; seq <= first + count; seq++)
        inserts[seq % o.shards]!.run(seq, ts, meta, data);
    });
    const latencyMs = await paced(o, (first, count) => write(first, count));
    return { rate: o.rate, shards: o.shards, bytes: o.bytes, tickMs: o.tickMs, latencyMs };
  } finally {
    db.close();
  }
}

/**
 * Client-side CPU per row of the two ways mysql2 can send the same multi-row INSERT: the text
 * protocol (`query`: every value escaped into the SQL text, BLOBs as X'…' hex) and prepared
 * statements (`execute`: binary protocol, BLOBs sent as they are; what the broker uses). One statement
 * in flight; the lower of two interleaved rounds is kept, as CPU time is less noisy than wall
 * time on a shared machine.
 */
export interface ClientCpuResult {
  readonly bytes: number;
  readonly rowsPerStatement: number;
  readonly queryMicrosPerRow: number;
  readonly executeMicrosPerRow: number;
}

export async function rawMysqlClientCpu(
  url: string,
  o: { bytes: number; rows: number; statements: number },
): Promise<ClientCpuResult> {
  const pool = rawPool(url, { connectionLimit: 2 });
  try {
    const data = randomBytes(o.bytes);
    const metas = metaBlobs(o.rows);
    const placeholders = Array.from({ length: o.rows }, () => "(?, ?, ?, ?)").join(", ");
    const best = { query: Number.POSITIVE_INFINITY, execute: Number.POSITIVE_INFINITY };
    for (const mode of ["query", "execute", "query", "execute"] as const) {
      await createShardTable(pool, "rawcpu");
      let seq = 1;
      const before = process.cpuUsage();
      for (let s = 0; s < o.statements; s++) {
        const ts = Date.now();
        if (mode === "query") {
          const values: unknown[][] = [];
          for (let i = 0; i < o.rows; i++) values.push([seq++, ts, metas[i], data]);
          await pool.query(
            "INSERT INTO rawcpu (seq, published_at, meta, data) VALUES ? ON DUPLICATE KEY UPDATE seq = seq",
            [values],
          );
        } else {
          const params: (number | Buffer)[] = [];
          for (let i = 0; i < o.rows; i++) params.push(seq++, ts, metas[i]!, data);
          await pool.execute(
            `INSERT INTO rawcpu (seq, published_at, meta, data) VALUES ${placeholders} ON DUPLICATE KEY UPDATE seq = seq`,
            params,
          );
        }
      }
      const used = process.cpuUsage(before);
      best[mode] = Math.min(best[mode], (used.user + used.system) / (o.rows * o.statements));
    }
    await pool.query("DROP TABLE IF EXISTS rawcpu");
    return {
      bytes: o.bytes,
      rowsPerStatement: o.rows,
      queryMicrosPerRow: best.query,
      executeMicrosPerRow: best.execute,
    };
  } finally {
    await pool.end();
  }
}
