import mysql from "mysql2/promise";
import { NerveBusError, type StoreCapabilities } from "../../core/index.js";
import { isUnknownDatabase, mapStoreError } from "../errors.js";
import { SpaceWatch } from "../space-watch.js";
import { type BrokerIdentity, ClusterLease } from "./cluster-lease.js";
import { FencedPool } from "./fenced-pool.js";
import { Lease } from "./lease.js";
import { prepareSchema } from "./schema.js";
import { ServerPool } from "./server-pool.js";

/** How a MySQL store holds its lease, and whom it tells when the lease is lost. */
export interface StoreLeaseOptions {
  /** Store lease timing (see Lease); defaults 5000 / 1000 / ttl + renew. */
  readonly leaseTtlMs?: number;
  readonly leaseRenewMs?: number;
  readonly leaseWaitMs?: number;
  /**
   * Share the database with other brokers started with it, each topic owned by one of them
   * (ClusterLease); otherwise one broker owns the whole database (Lease).
   */
  readonly cluster?: boolean;
  /** With `cluster`: this broker's id and secret (default: new ones); the same for every database of `--store`. */
  readonly broker?: BrokerIdentity;
  /** Called once if another broker takes the database: this one must stop serving. */
  readonly onOwnershipLost?: (err: NerveBusError) => void;
  readonly log: (level: "warn" | "info" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

export interface MysqlStoreOptions extends StoreLeaseOptions {
  /** mysql://user:pass@host:port/database */
  readonly url: string;
  /** Connections in the pool: one per shard writer in flight, plus readers. */
  readonly poolSize: number;
  /** ServerPool's stallMs (default DEFAULT_STALL_MS). */
  readonly stallMs?: number;
  /** ServerPool's cutoff: aborted when a shutdown's grace is over. */
  readonly cutoff?: AbortSignal;
  /** Start even when innodb_flush_log_at_trx_commit is not 1 (a commit may then be lost). */
  readonly allowUnsafeDurability: boolean;
}

/** Prepared statements a pool connection keeps (LRU); see "Running on MySQL" in the README. */
export const MAX_PREPARED_PER_CONNECTION = 128;

/**
 * Session limits for brokers sharing a database. MariaDB aborts a transaction left idle longer
 * than `idleSeconds` (its broker frozen or cut off mid-transaction), so the row locks it holds
 * cannot keep the topic's next owner (or every claim) waiting until the connection times out
 * hours later; a lock wait ends after `lockWaitSeconds`, so a heartbeat fails and is retried
 * instead of hanging. MySQL has no idle-transaction limit: the statement fails there and is
 * ignored (README "Running several brokers" says what that costs). Returns `pool`.
 */
function limitSessions(pool: mysql.Pool, idleSeconds: number, lockWaitSeconds?: number): mysql.Pool {
  pool.pool.on("connection", (conn) => {
    conn.query(`SET SESSION idle_transaction_timeout = ${idleSeconds}`, () => undefined);
    if (lockWaitSeconds !== undefined)
      conn.query(`SET SESSION innodb_lock_wait_timeout = ${lockWaitSeconds}`, () => undefined);
  });
  return pool;
}

/**
 * Whether the server is a node of a cluster that certifies write sets (Galera: `wsrep_on`;
 * MySQL Group Replication: its plugin active, in either mode). There a shared lock taken on one
 * node does not keep a transaction on another from committing a write of the same row, so a
 * write must prove ownership by writing its fence row (FencedPool.lockingReadFences).
 */
async function certifiesWriteSets(conn: mysql.Connection): Promise<boolean> {
  const [wsrep] = await conn.query<mysql.RowDataPacket[]>(
    "SHOW GLOBAL VARIABLES WHERE Variable_name = 'wsrep_on'",
  );
  if (wsrep.some((v) => String(v.Value).toUpperCase() === "ON")) return true;
  const [plugins] = await conn.query<mysql.RowDataPacket[]>(
    "SELECT PLUGIN_STATUS AS status FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'group_replication'",
  );
  return plugins.some((p) => String(p.status).toUpperCase() === "ACTIVE");
}

/**
 * Connects (creating the database on first start, as SQLite creates its file), checks the
 * server's durability setting, prepares the schema, opens the pool and takes the store lease,
 * waiting for another broker's to expire up to `leaseWaitMs`. Throws FAILED_PRECONDITION when
 * another broker keeps the lease or durability is off (unless allowed), UNAVAILABLE when the
 * server cannot be reached.
 */
export async function openPool(
  options: MysqlStoreOptions,
): Promise<{ db: FencedPool; capabilities: StoreCapabilities }> {
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
    // how ShardInserter finds rows that were already there.
    flags: ["-FOUND_ROWS"],
  };
  let setup: mysql.Connection;
  try {
    setup = await mysql.createConnection(config);
  } catch (err) {
    if (!isUnknownDatabase(err)) throw mapStoreError(err, `connecting to ${url.host}`);
    const admin = await mysql.createConnection({ ...config, database: undefined }).catch((e: unknown) => {
      throw mapStoreError(e, `connecting to ${url.host}`);
    });
    await admin.query(`CREATE DATABASE IF NOT EXISTS ${mysql.escapeId(database)}`);
    await admin.end();
    setup = await mysql.createConnection(config);
  }
  let pool: ServerPool | undefined;
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
    const certifying = await certifiesWriteSets(setup);
    if (certifying)
      options.log(
        "info",
        "the MySQL server certifies write sets (Galera or Group Replication): every write updates its fence row",
      );
    await prepareSchema(setup);
    // Binary rows travel as they are; keep a statement, padded by up to a quarter (see
    // ShardInserter), well under the packet limit, and at 4 MiB of payload at most.
    const maxInsertBytes = Math.max(64 << 10, Math.min(4 << 20, Math.floor((packet - (256 << 10)) / 1.5)));
    // HOST:PORT as configured: the name a failover moves (ServerPool reconnects to it).
    const server = `${config.host}:${config.port}`;
    const poolOptions: mysql.PoolOptions = {
      // Statements without values (the INSERTs built in ShardInserter) skip mysql2's
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
      // Small writes go as one text query of several statements (ServerPool.oneTrip). Every
      // value reaches SQL through the formatter's escaping, never as text of its own.
      multipleStatements: true,
      maxIdle: options.poolSize,
      enableKeepAlive: true,
    };
    const ttlMs = options.leaseTtlMs ?? 5000;
    const renewMs = options.leaseRenewMs ?? 1000;
    const leaseOptions = {
      ttlMs,
      renewMs,
      waitMs: options.leaseWaitMs ?? ttlMs + renewMs,
      log: options.log,
      onLost: options.onOwnershipLost ?? (() => undefined),
    };
    let lease: Lease | ClusterLease;
    const siblings: ServerPool[] = [];
    if (options.cluster) {
      const idleSeconds = Math.ceil(ttlMs / 1000) + 1;
      pool = new ServerPool(
        () => limitSessions(mysql.createPool(poolOptions), idleSeconds),
        server,
        options.log,
        "store",
        options.stallMs,
        options.cutoff,
      );
      // Its own connections: renewals never queue behind writes waiting for the pool.
      const leasePoolOptions = { ...config, connectionLimit: 2, maxIdle: 2, enableKeepAlive: true };
      const lockWaitSeconds = Math.max(1, Math.floor(renewMs / 1000));
      const leasePool = new ServerPool(
        () => limitSessions(mysql.createPool(leasePoolOptions), idleSeconds, lockWaitSeconds),
        server,
        options.log,
        "store",
        options.stallMs,
        options.cutoff,
      );
      siblings.push(leasePool);
      const cluster = new ClusterLease(leasePool, leaseOptions, options.broker);
      await cluster.join().catch(async (err: unknown) => {
        await leasePool.end().catch(() => undefined);
        throw err;
      });
      lease = cluster;
    } else {
      pool = new ServerPool(
        () => mysql.createPool(poolOptions),
        server,
        options.log,
        "store",
        options.stallMs,
        options.cutoff,
      );
      const single = new Lease(
        pool,
        () => mysql.createConnection(config),
        `nervebus:${database}`,
        leaseOptions,
      );
      await single.acquire();
      lease = single;
    }
    return {
      // HOST:PORT/DATABASE, as placement rows name a database: never the URL's credentials.
      db: new FencedPool(
        pool,
        lease,
        new SpaceWatch(`${config.host}:${config.port}/${database}`, options.log),
        siblings,
        !certifying,
      ),
      capabilities: { kind: "mysql", maxInsertRows: 5000, maxInsertBytes, maxRunMessages: 50_000 },
    };
  } catch (err) {
    await pool?.end().catch(() => undefined);
    throw mapStoreError(err, "preparing the database");
  } finally {
    await setup.end().catch(() => undefined);
  }
}
