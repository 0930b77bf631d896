import type { Socket } from "node:net";
import type mysql from "mysql2/promise";
import { NerveBusError, OutageLog, type ReadOnlyState, type ServerRole } from "../../core/index.js";
import { isReadOnlyServer, readOnlyServerError } from "../errors.js";

type Log = (level: "warn" | "info" | "error", msg: string, fields?: Record<string, unknown>) => void;

/**
 * At most one new pool per this many ms: while the server the name points at is still the
 * read-only one, every write fails, and a pool per failure would only churn connections to it.
 * Short beside a failover (seconds), so the broker finds the new primary soon after the name moves.
 */
const RECYCLE_MIN_MS = 1000;

/**
 * How long a server may answer nothing at all while a statement waits before its connections
 * are taken for dead (--mysql-stall-timeout-ms; see ServerPool).
 */
export const DEFAULT_STALL_MS = 30_000;

/**
 * A statement or transaction in progress: when it started, its connection once it has one, and
 * whether a stall cut that (its end is then no answer from the server).
 */
interface InFlight {
  readonly startedAt: number;
  conn: mysql.PoolConnection | undefined;
  cut: boolean;
}

/** What runs one statement: a connection, or a ServerPool. */
export interface Queryable {
  query<T extends mysql.ResultSetHeader | mysql.RowDataPacket[]>(
    sql: string,
    params?: unknown[],
  ): Promise<[T, mysql.FieldPacket[]]>;
}

/**
 * The connections of one MySQL database, as a mysql2 pool that is replaced by a fresh one
 * ("recycled") when the server answers that it is read-only: what failover tooling does to the
 * old primary before it moves the DNS name or virtual IP to the promoted replica. The failing
 * connection is closed; the old pool hands out no connection any more and is closed once the
 * statements running on it have ended (not before: a transaction there may be on a server that
 * still takes writes, behind a proxy that spreads connections); the next statement dials the
 * configured host again (resolving its name again), so the broker reaches the new primary
 * without a restart. mysql2 offers no way to close only a pool's idle connections.
 *
 * Every statement goes through query() or transaction(); a read-only error comes out of them as
 * UNAVAILABLE naming the server (readOnlyServerError), any other error as the driver gave it.
 * One warning is logged when the server turns read-only, a reminder at most every 30 s while it
 * stays so, one info line when a write succeeds again (OutageLog).
 *
 * A server that answers nothing is recycled too: when no statement has ended (answered or
 * failed) for `stallMs` while one has waited that long, the connections of the statements in
 * flight are cut (they fail ETIMEDOUT, UNAVAILABLE for their callers, which retry) and a fresh
 * pool dials the name again. That is what a primary whose host died, or a network that drops
 * its packets, looks like: no error and no reset ever arrive, TCP keeps an unanswered
 * connection for a quarter of an hour, and a pool whose connections all wait so would wait that
 * long too, although the name may already lead to the promoted replica.
 *
 * A pool given up, and a connection its owner ends, is told to quit (COM_QUIT) and cut when its
 * socket is still open after `stallMs`: a server that answers nothing never hangs up, and the
 * socket would stay open for ever. `cutoff` (the end of a shutdown's grace) cuts everything at
 * once: statements still waiting fail, none starts after, and end() has nothing left to wait for.
 */
export class ServerPool implements Queryable {
  #pool: mysql.Pool;
  /** Statements and transactions in progress, per pool (a recycled pool ends when it has none). */
  readonly #busy = new Map<mysql.Pool, number>();
  readonly #retired = new Set<mysql.Pool>();
  readonly #onDrop: (() => void)[] = [];
  /** Sockets of pools and connections told to quit that are still open (see class). */
  readonly #quitting = new Set<Socket>();
  /** Each quit in progress (see #quit), until its sockets are closed. */
  readonly #quits = new Set<Promise<void>>();
  /** Set by end() and the cutoff: no statement starts any more. */
  #ended: NerveBusError | undefined;
  #recycledAt = Number.NEGATIVE_INFINITY;
  /** Writes failing as read-only; `#recycles`: pools made since they started. */
  readonly #readOnly: OutageLog;
  /** The last read-only refusal, while writes fail so (for status and health). */
  #readOnlyError: string | undefined;
  /** Writes answered (taken or refused as read-only) by every ServerPool so far, in order. */
  static #writes = 0;
  /** Which of them this pool's last answered write was (0: none yet). */
  #lastWrite = 0;
  #recycles = 0;
  /** Statements and transactions of any pool of this one in progress (see class, stalls). */
  readonly #inFlight = new Set<InFlight>();
  /** When a statement last ended, answered or failed: the server's last sign of life. */
  #lastAnswer = performance.now();
  #watchdog: NodeJS.Timeout | undefined;
  /** Statements stalling: logged once when it starts, once when answers come again. */
  readonly #stalls: OutageLog;

  /**
   * `make` opens a pool for the database (called again on each recycle); `server` is HOST:PORT
   * as configured, for messages; `role` says whose connections these are (the store's or an
   * outbox relay's), for the read-only state and its log lines.
   */
  constructor(
    private readonly make: () => mysql.Pool,
    readonly server: string,
    log: Log,
    readonly role: ServerRole,
    /** How long the server may answer nothing while a statement waits (see class). */
    private readonly stallMs = DEFAULT_STALL_MS,
    /** Aborted when a shutdown's grace is over: every connection is cut (see class). */
    cutoff?: AbortSignal,
  ) {
    this.#pool = make();
    cutoff?.addEventListener("abort", () => this.#cutAll(), { once: true });
    this.#stalls = new OutageLog(
      log,
      {
        started: "the MySQL server answers nothing; cutting its connections and reconnecting",
        ongoing: "the MySQL server still answers nothing; reconnecting",
        ended: "the MySQL server answers again",
        durationField: "silentForMs",
      },
      { server, role },
    );
    this.#readOnly = new OutageLog(
      log,
      {
        started: "the MySQL server is read-only; reconnecting until it takes writes",
        ongoing: "the MySQL server is still read-only; reconnecting",
        ended: "the MySQL server takes writes again",
        durationField: "readOnlyForMs",
      },
      { server, role },
    );
  }

  /**
   * Whether the server refuses writes as read-only: from a refused write until a write
   * succeeds again (the store's writes and, without --cluster, its lease renewals every
   * second go through this pool, so recovery shows soon after the new primary takes writes).
   */
  readOnlyState(): ReadOnlyState {
    const readOnly = this.#readOnly.failing;
    return {
      server: this.server,
      role: this.role,
      readOnly,
      since: this.#readOnly.since,
      error: readOnly ? this.#readOnlyError : undefined,
    };
  }

  /**
   * The read-only state of the server behind `pools` (pools of one HOST:PORT, such as the
   * store's and the cluster lease's): the pool that wrote last tells. A lease renewal that
   * succeeds after a failover ends it although the store's pool, idle, wrote nothing since.
   */
  static readOnlyOf(pools: readonly ServerPool[]): ReadOnlyState {
    let last = pools[0]!;
    for (const p of pools) if (p.#lastWrite > last.#lastWrite) last = p;
    return last.readOnlyState();
  }

  /**
   * Calls `listener` whenever the pool's connections are given up (each recycle, and the cutoff):
   * for connections of its own the owner must give up too.
   */
  onDrop(listener: () => void): void {
    this.#onDrop.push(listener);
  }

  /** One statement on a connection of the pool (autocommit). */
  query<T extends mysql.ResultSetHeader | mysql.RowDataPacket[] = mysql.ResultSetHeader>(
    sql: string,
    params?: unknown[],
  ): Promise<[T, mysql.FieldPacket[]]> {
    return this.#single(
      (conn) => conn.query<T>(sql, params),
      (result) => !Array.isArray(result[0]),
    );
  }

  /**
   * One write as a prepared statement on a connection of the pool (autocommit): its values
   * travel in the binary protocol as they are, with no SQL text to build or parse. mysql2 keeps
   * the statement per connection (maxPreparedStatements).
   */
  execute(sql: string, params: readonly unknown[]): Promise<mysql.ResultSetHeader> {
    return this.#single(
      async (conn) => {
        const stmt = await conn.prepare(sql);
        dropParameterDefinitions(stmt);
        const [result] = (await stmt.execute(params as unknown[])) as unknown as [mysql.ResultSetHeader];
        return result;
      },
      () => true,
    );
  }

  /** `fn` on a connection of the pool, autocommit; `wrote` tells whether its result is a write's. */
  #single<T>(fn: (conn: mysql.PoolConnection) => Promise<T>, wrote: (result: T) => boolean): Promise<T> {
    return this.#use(async (pool, op) => {
      const conn = await pool.getConnection();
      op.conn = conn;
      let failed: unknown;
      try {
        const result = await fn(conn);
        if (wrote(result)) this.#wrote();
        return result;
      } catch (err) {
        failed = err;
        throw err;
      } finally {
        this.#giveBack(conn, failed);
      }
    });
  }

  /**
   * Runs `fn` in a transaction on one connection; commits when it says so, else rolls back
   * (also when it throws). A connection whose transaction cannot be rolled back, or whose
   * server turned read-only, is closed instead of given back.
   */
  transaction<T>(fn: (conn: mysql.PoolConnection) => Promise<{ commit: boolean; value: T }>): Promise<T> {
    return this.#use(async (pool, op) => {
      const conn = await pool.getConnection();
      op.conn = conn;
      let open = false;
      let failed: unknown;
      try {
        await conn.query("START TRANSACTION");
        open = true;
        const { commit, value } = await fn(conn);
        await conn.query(commit ? "COMMIT" : "ROLLBACK");
        open = false;
        if (commit) this.#wrote();
        return value;
      } catch (err) {
        failed = err;
        throw err;
      } finally {
        await this.#endTransaction(conn, open, failed);
      }
    });
  }

  /**
   * A transaction sent as one text query, `START TRANSACTION; s1; …; COMMIT` (the pool's
   * connections accept several statements at once): one round trip instead of one per
   * statement, for writes small enough that their values cost little as SQL text. Nothing can
   * be decided between the statements, so each write must carry its own condition (see
   * FencedPool.fencedInOneTrip). Returns each statement's result, in order. When a statement
   * fails the server runs none after it, and the transaction is rolled back.
   */
  oneTrip(
    statements: readonly { sql: string; params: readonly unknown[] }[],
  ): Promise<mysql.ResultSetHeader[]> {
    const sql = ["START TRANSACTION", ...statements.map((s) => s.sql), "COMMIT"].join(";\n");
    const params = statements.flatMap((s) => s.params);
    return this.#use(async (pool, op) => {
      const conn = await pool.getConnection();
      op.conn = conn;
      let failed: unknown;
      try {
        const [results] = await conn.query<mysql.ResultSetHeader[]>(sql, params);
        this.#wrote();
        return results.slice(1, 1 + statements.length);
      } catch (err) {
        failed = err;
        throw err;
      } finally {
        // Failed part-way, the transaction may still be open on the connection.
        await this.#endTransaction(conn, failed !== undefined, failed);
      }
    });
  }

  /**
   * Closes every connection, of the current pool and of recycled ones still in use: each is told
   * to quit, and cut if still open after `withinMs` (default the stall timeout) or at the cutoff.
   * No statement starts after it; those still running when a connection is cut fail.
   */
  async end(withinMs = this.stallMs): Promise<void> {
    this.#ended ??= new NerveBusError(
      "unavailable",
      `the MySQL pool is closed (${this.server}): no statement starts after the store closes`,
    );
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    const pools = [this.#pool, ...this.#retired];
    this.#retired.clear();
    for (const p of pools) void this.#quit(p, withinMs);
    // And those of pools given up before, still quitting.
    await Promise.all(this.#quits);
  }

  /**
   * Ends a connection the owner keeps beside the pool (a named lock's) as the pool's own are
   * ended: told to quit, cut if still open after the stall timeout or at the cutoff.
   */
  endConnection(conn: mysql.Connection): Promise<void> {
    return this.#quit(conn, this.stallMs);
  }

  /**
   * Runs `fn` on the current pool, watched for stalls (`fn` sets `op.conn` once it has its
   * connection); a read-only error recycles the pool and becomes UNAVAILABLE.
   */
  async #use<T>(fn: (pool: mysql.Pool, op: InFlight) => Promise<T>): Promise<T> {
    if (this.#ended) throw this.#ended;
    const pool = this.#pool;
    this.#busy.set(pool, (this.#busy.get(pool) ?? 0) + 1);
    const op: InFlight = { startedAt: performance.now(), conn: undefined, cut: false };
    this.#inFlight.add(op);
    this.#watch();
    try {
      const value = await fn(pool, op);
      if (this.#stalls.failing) this.#stalls.recovered({ reconnects: this.#recycles });
      return value;
    } catch (err) {
      if (!isReadOnlyServer(err)) throw err;
      this.#sawReadOnly(pool, err);
      throw readOnlyServerError(err, this.server);
    } finally {
      this.#inFlight.delete(op);
      if (!op.cut) this.#lastAnswer = performance.now();
      const left = this.#busy.get(pool)! - 1;
      if (left > 0) this.#busy.set(pool, left);
      else {
        this.#busy.delete(pool);
        if (this.#retired.delete(pool)) void this.#quit(pool, this.stallMs);
      }
    }
  }

  /**
   * Gives back the connection of a transaction that may still be `open`: rolled back first (and
   * closed when that fails), unless its server turned read-only (#giveBack closes it then).
   */
  async #endTransaction(conn: mysql.PoolConnection, open: boolean, failed: unknown): Promise<void> {
    if (open && !isReadOnlyServer(failed)) {
      await conn.query("ROLLBACK").then(
        () => this.#giveBack(conn, undefined),
        () => conn.destroy(),
      );
    } else {
      this.#giveBack(conn, failed);
    }
  }

  /** Gives a connection back to its pool, or closes it when its server turned read-only. */
  #giveBack(conn: mysql.PoolConnection, failed: unknown): void {
    if (isReadOnlyServer(failed)) conn.destroy();
    else conn.release();
  }

  /** A statement on `pool` found the server read-only: a fresh pool takes over (see class). */
  #sawReadOnly(pool: mysql.Pool, err: unknown): void {
    this.#lastWrite = ++ServerPool.#writes;
    if (!this.#readOnly.failing) this.#recycles = 0;
    this.#readOnly.failed(err);
    this.#readOnlyError = err instanceof Error ? err.message : String(err);
    const now = performance.now();
    // A pool recycled already (its statements were in flight), or one just made: keep it.
    if (pool !== this.#pool || now - this.#recycledAt < RECYCLE_MIN_MS) return;
    this.#recycle(pool, now, 1);
  }

  /** Checks for a stall while statements are in flight (see class). */
  #watch(): void {
    if (this.#watchdog !== undefined) return;
    this.#watchdog = setInterval(() => this.#checkStall(), Math.max(50, Math.floor(this.stallMs / 4)));
    this.#watchdog.unref();
  }

  #checkStall(): void {
    const now = performance.now();
    if (this.#inFlight.size === 0) {
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
      return;
    }
    if (now - this.#lastAnswer < this.stallMs) return;
    let oldest = now;
    for (const op of this.#inFlight) if (op.startedAt < oldest) oldest = op.startedAt;
    if (now - oldest < this.stallMs) return;
    // Nothing answered for stallMs, and a statement has waited that long: cut what waits.
    const err = stallError(this.server, now - this.#lastAnswer);
    if (!this.#stalls.failing) this.#recycles = 0;
    this.#stalls.failed(err);
    this.#lastAnswer = now;
    this.#recycle(this.#pool, now, 0);
    for (const op of this.#inFlight) {
      if (op.conn === undefined) continue;
      op.cut = true;
      cut(op.conn, err);
    }
  }

  /**
   * A fresh pool takes over from `pool`, which closes once its statements have ended (`mine`:
   * those of the caller's own, still counted, 1 from inside a statement).
   */
  #recycle(pool: mysql.Pool, now: number, mine: number): void {
    this.#recycledAt = now;
    this.#recycles++;
    this.#pool = this.make();
    if ((this.#busy.get(pool) ?? 0) > mine) this.#retired.add(pool);
    else void this.#quit(pool, this.stallMs);
    for (const listener of this.#onDrop) listener();
  }

  /**
   * Tells every connection of `target` to quit and waits, up to `withinMs`, for their sockets to
   * close (the server hangs up once it reads the quit); cuts those still open then (see class).
   */
  #quit(target: mysql.Pool | mysql.Connection, withinMs: number): Promise<void> {
    const quit = this.#quitWithin(target, withinMs);
    this.#quits.add(quit);
    return quit.finally(() => this.#quits.delete(quit));
  }

  async #quitWithin(target: mysql.Pool | mysql.Connection, withinMs: number): Promise<void> {
    const sockets = socketsOf(target).filter((s) => !s.destroyed);
    for (const s of sockets) {
      this.#quitting.add(s);
      s.once("close", () => this.#quitting.delete(s));
    }
    void target.end().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const closed = sockets.map((s) => new Promise((r) => (s.destroyed ? r(undefined) : s.once("close", r))));
    await Promise.race([Promise.all(closed), new Promise((r) => (timer = setTimeout(r, withinMs)))]);
    clearTimeout(timer);
    const err = timedOut(
      `the MySQL server at ${this.server} did not hang up within ${withinMs} ms of being told to quit`,
    );
    for (const s of sockets) if (!s.destroyed) s.destroy(err);
  }

  /**
   * The cutoff: the statements in flight fail at once, every connection is cut, none starts
   * after; the owners cut their own connections (onDrop).
   */
  #cutAll(): void {
    const err = timedOut(
      `the shutdown's grace is over: the connections to the MySQL server at ${this.server} are cut`,
    );
    this.#ended = new NerveBusError("unavailable", err.message);
    for (const op of this.#inFlight) {
      if (op.conn === undefined) continue;
      op.cut = true;
      cut(op.conn, err);
    }
    for (const listener of this.#onDrop) listener();
    void this.end(0);
    for (const s of this.#quitting) s.destroy(err);
  }

  /** A write succeeded: the server takes writes (again). */
  #wrote(): void {
    this.#lastWrite = ++ServerPool.#writes;
    if (this.#readOnly.failing) this.#readOnly.recovered({ reconnects: this.#recycles });
  }
}

/** The error statements cut by a stall fail with: ETIMEDOUT, transient (UNAVAILABLE). */
function stallError(server: string, silentMs: number): Error {
  return timedOut(
    `the MySQL server at ${server} answered nothing for ${Math.round(silentMs)} ms; reconnecting`,
  );
}

/** An error with code ETIMEDOUT (transient: UNAVAILABLE), what a connection cut by the broker fails with. */
function timedOut(message: string): Error {
  return Object.assign(new Error(message), { code: "ETIMEDOUT" });
}

/** The sockets of a pool's connections (idle, busy and still connecting), or of one connection. */
function socketsOf(target: mysql.Pool | mysql.Connection): Socket[] {
  // mysql2 has no accessor: the promise wrapper's core pool or connection, its socket(s).
  if ("pool" in target) {
    const all = (target.pool as unknown as { _allConnections: { toArray(): { stream: Socket }[] } })
      ._allConnections;
    return all.toArray().map((c) => c.stream);
  }
  return [(target as unknown as { connection: { stream: Socket } }).connection.stream];
}

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

/**
 * Closes `conn` at once, failing the statement waiting on it with `err` (and dropping it from its
 * pool, if it has one): mysql2's destroy() alone ends the socket gently, and a statement waiting
 * on a server that answers nothing then waits forever.
 */
export function cut(conn: mysql.Connection, err: Error): void {
  // The promise wrapper's core connection, and its socket.
  const socket = (conn as unknown as { connection: { stream: Socket } }).connection.stream;
  socket.destroy(err);
  conn.destroy();
}
