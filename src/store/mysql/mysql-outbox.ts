import { randomBytes } from "node:crypto";
import mysql from "mysql2/promise";
import {
  NerveBusError,
  type OutboxRow,
  type OutboxSource,
  type PassedGap,
  type ReadOnlyState,
  type RelayState,
  sleep,
} from "../../core/index.js";
import { mapStoreError } from "../errors.js";
import { DB_NOW_MS } from "./lease.js";
import { OutboxLease, type OutboxLeaseOptions } from "./outbox-lease.js";
import { OUTBOX_TABLES } from "./outbox-schema.js";
import { cut, ServerPool } from "./server-pool.js";

/** Ids per DELETE statement: under 100 KiB of SQL text, far below max_allowed_packet. */
const DELETE_CHUNK = 10_000;

type Log = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/**
 * An outbox in a MySQL/MariaDB database (`mysql://USER:PASS@HOST:PORT/DB`), read by polling its
 * primary key (see docs/design-round-2.md for why not the binlog). One relay at a time: the
 * named lock `nb-outbox:<db>` held on a connection of its own, or with --cluster the lease row
 * nb_outbox_lease (OutboxLease, which lapses when its broker is frozen), checked in every delete
 * transaction.
 *
 * Its connections follow a failover as the store's do (ServerPool): when the server turns
 * read-only, the pool and the lock's connection are dropped and the next statement dials
 * HOST:PORT again; the relay recovers (published rows found by their message ids) and goes on
 * on the new primary. A read-only error is UNAVAILABLE naming HOST:PORT.
 */
export class MysqlOutboxSource implements OutboxSource {
  readonly name: string;
  readonly #config: mysql.PoolOptions;
  readonly #lockName: string;
  /** HOST:PORT as configured: the name a failover moves. */
  readonly #server: string;
  #pool: ServerPool | undefined;
  #lockConn: mysql.Connection | undefined;
  #lockConnId = 0;
  /** The connection #lock waits for the lock on, until it holds it. */
  #lockWait: mysql.Connection | undefined;
  #lease: OutboxLease | undefined;
  /** The gap ranges stored by this relay's last committed complete (undefined: not known). */
  #storedGaps: string | undefined;

  /** `lease`: with --cluster, hold the outbox by a lease instead of a named lock. */
  constructor(
    url: string,
    private readonly log: Log,
    private readonly lease?: OutboxLeaseOptions,
    /** ServerPool's stallMs for the outbox's server (default DEFAULT_STALL_MS). */
    private readonly stallMs?: number,
    /** ServerPool's cutoff: aborted when a shutdown's grace is over. */
    private readonly cutoff?: AbortSignal,
  ) {
    const u = new URL(url);
    const database = decodeURIComponent(u.pathname.replace(/^\//, ""));
    if (!url.startsWith("mysql://") || database === "")
      throw new NerveBusError("invalid_argument", "outbox: expected mysql://USER:PASS@HOST:PORT/DB");
    this.name = `${u.host}/${database}`;
    this.#lockName = `nb-outbox:${database}`.slice(0, 64);
    this.#server = `${u.hostname}:${u.port === "" ? 3306 : Number(u.port)}`;
    this.#config = {
      host: u.hostname,
      port: u.port === "" ? 3306 : Number(u.port),
      user: decodeURIComponent(u.username),
      password: decodeURIComponent(u.password),
      database,
      supportBigNumbers: true,
      bigNumberStrings: false,
      connectTimeout: 5000,
      connectionLimit: 3,
      enableKeepAlive: true,
      trace: false,
    };
  }

  async open(wanted: () => boolean): Promise<RelayState> {
    try {
      this.#pool ??= this.#openPool();
      for (const ddl of OUTBOX_TABLES) await this.#pool.query(ddl);
      await this.#hold(wanted);
      await this.#pool.query(
        "INSERT IGNORE INTO nb_outbox_relay (id, source_id, cursor_id) VALUES (1, ?, 0)",
        [randomBytes(8).toString("hex")],
      );
      const [[relay]] = await this.#pool.query<mysql.RowDataPacket[]>(
        "SELECT source_id, cursor_id FROM nb_outbox_relay WHERE id = 1",
      );
      const [topics] = await this.#pool.query<mysql.RowDataPacket[]>(
        "SELECT topic, scan_from FROM nb_outbox_topic",
      );
      const [[gaps]] = await this.#pool.query<mysql.RowDataPacket[]>(
        `SELECT gaps, ${DB_NOW_MS} - written_at AS since FROM nb_outbox_gaps WHERE id = 1`,
      );
      this.#storedGaps = undefined;
      return {
        sourceId: String(relay!.source_id),
        cursor: Number(relay!.cursor_id),
        scanFrom: new Map(topics.map((t) => [String(t.topic), Number(t.scan_from)])),
        passedGaps: gaps === undefined ? [] : parseGaps(gaps.gaps, Number(gaps.since)),
      };
    } catch (err) {
      throw mapStoreError(err, `outbox ${this.name}`);
    }
  }

  /** The relay's pool; the lock's connection is dropped with each of its recycles (see class). */
  #openPool(): ServerPool {
    const pool = new ServerPool(
      () => autocommitPool(this.#config, this.lease),
      this.#server,
      this.log,
      "outbox",
      this.stallMs,
      this.cutoff,
    );
    // A lock held on the old primary says nothing to a relay on the new one; at the cutoff its
    // connection goes with the pool's. A wait for the lock there ends too: no stall watch covers
    // it, and a server that answers nothing would keep it (and the relay's stop) for ever.
    pool.onDrop(() => {
      void this.#dropLock();
      if (this.#lockWait !== undefined)
        cut(this.#lockWait, new Error("the outbox's connections were dropped"));
    });
    return pool;
  }

  /** Takes the lease (with --cluster) or the named lock. */
  async #hold(wanted: () => boolean): Promise<void> {
    if (this.lease === undefined) return this.#lock(wanted);
    this.#lease ??= new OutboxLease(this.#pool!, this.lease);
    if (this.#lease.held()) return;
    await this.#lease.acquire(wanted, () =>
      this.log("warn", "another broker relays this outbox; waiting", { outbox: this.name }),
    );
    this.log("info", "outbox relay lease taken", { outbox: this.name, epoch: this.#lease.epoch });
  }

  held(): boolean {
    return this.#lease === undefined ? this.#lockConn !== undefined : this.#lease.held();
  }

  /** Holds the relay lock, waiting (and saying so once) while another relay has it. */
  async #lock(wanted: () => boolean): Promise<void> {
    if (this.#lockConn !== undefined) {
      const [[row]] = await this.#pool!.query<mysql.RowDataPacket[]>("SELECT IS_USED_LOCK(?) AS holder", [
        this.#lockName,
      ]);
      if (Number(row?.holder) === this.#lockConnId) return;
      await this.#dropLock();
    }
    const conn = await mysql.createConnection(this.#config);
    conn.on("error", () => undefined);
    this.#lockWait = conn;
    try {
      for (let said = false; ; ) {
        const [[row]] = await conn.query<mysql.RowDataPacket[]>(
          "SELECT GET_LOCK(?, 1) AS got, CONNECTION_ID() AS id",
          [this.#lockName],
        );
        if (Number(row?.got) === 1) {
          this.#lockConn = conn;
          this.#lockConnId = Number(row!.id);
          return;
        }
        if (!said) this.log("warn", "another relay holds this outbox; waiting", { outbox: this.name });
        said = true;
        if (!wanted()) {
          await this.#pool!.endConnection(conn);
          throw new NerveBusError("unavailable", `outbox ${this.name}: stopped waiting for the relay lock`);
        }
        await sleep(1000);
      }
    } finally {
      this.#lockWait = undefined;
    }
  }

  async #dropLock(): Promise<void> {
    const conn = this.#lockConn;
    this.#lockConn = undefined;
    if (conn !== undefined) await this.#pool?.endConnection(conn);
  }

  fetch(cursor: number, limit: number): Promise<OutboxRow[]> {
    return this.#select("id > ?", [cursor], limit);
  }

  fetchLate(ranges: readonly (readonly [number, number])[], limit: number): Promise<OutboxRow[]> {
    if (ranges.length === 0) return Promise.resolve([]);
    return this.#select(ranges.map(() => "id BETWEEN ? AND ?").join(" OR "), ranges.flat(), limit);
  }

  async #select(where: string, values: readonly number[], limit: number): Promise<OutboxRow[]> {
    try {
      const [rows] = await this.#pool!.query<mysql.RowDataPacket[]>(
        `SELECT id, topic, ordering_key, attributes, data,
           TIMESTAMPDIFF(MICROSECOND, created_at, NOW(6)) AS age_us
         FROM nb_outbox WHERE ${where} ORDER BY id LIMIT ?`,
        [...values, limit],
      );
      const readAt = Date.now();
      return rows.map((r) => ({
        id: Number(r.id),
        topic: String(r.topic),
        orderingKey: String(r.ordering_key),
        attributes: parseAttributes(r.attributes, Number(r.id)),
        data: r.data as Buffer,
        ageMs: Math.max(0, Number(r.age_us) / 1000),
        readAt,
      }));
    } catch (err) {
      throw mapStoreError(err, `outbox ${this.name}`);
    }
  }

  async addTopic(topic: string, scanFrom: number): Promise<void> {
    try {
      await this.#pool!.query("INSERT IGNORE INTO nb_outbox_topic (topic, scan_from) VALUES (?, ?)", [
        topic,
        scanFrom,
      ]);
    } catch (err) {
      throw mapStoreError(err, `outbox ${this.name}`);
    }
  }

  async complete(
    ids: readonly number[],
    scanFrom: ReadonlyMap<string, number>,
    cursor: number,
    gaps?: readonly PassedGap[],
  ): Promise<void> {
    // Written only when the ranges changed: the ages stored stay true, counted from written_at.
    const ranges = gaps?.map((g) => `${g.lo}-${g.hi}`).join(",");
    const writeGaps = gaps !== undefined && ranges !== this.#storedGaps;
    try {
      // READ COMMITTED (the sessions' level, see autocommitPool): deleting an id another relay
      // deleted already (after a failover) takes no gap lock, which would hold up the
      // application's inserts above it.
      await this.#pool!.transaction(async (conn) => {
        if (this.#lease !== undefined) await this.#lease.check(conn);
        else await this.#checkLock(conn);
        // By primary key equality, never a range: a range scan would also lock the next row
        // beyond it, which may be an application's uncommitted insert, so the relay would wait
        // on (and could deadlock with) the application's transactions.
        for (let i = 0; i < ids.length; i += DELETE_CHUNK)
          await conn.query("DELETE FROM nb_outbox WHERE id IN (?)", [ids.slice(i, i + DELETE_CHUNK)]);
        if (scanFrom.size > 0)
          await conn.query(
            "INSERT INTO nb_outbox_topic (topic, scan_from) VALUES ? ON DUPLICATE KEY UPDATE scan_from = GREATEST(scan_from, VALUES(scan_from))",
            [[...scanFrom]],
          );
        await conn.query("UPDATE nb_outbox_relay SET cursor_id = GREATEST(cursor_id, ?) WHERE id = 1", [
          cursor,
        ]);
        if (writeGaps)
          await conn.query(
            `INSERT INTO nb_outbox_gaps (id, gaps, written_at) VALUES (1, ?, ${DB_NOW_MS})
               ON DUPLICATE KEY UPDATE gaps = VALUES(gaps), written_at = VALUES(written_at)`,
            [JSON.stringify(gaps!.map((g) => [g.lo, g.hi, Math.max(0, Math.round(g.ageMs))]))],
          );
        return { commit: true, value: undefined };
      });
      if (writeGaps) this.#storedGaps = ranges;
    } catch (err) {
      throw mapStoreError(err, `outbox ${this.name}`);
    }
  }

  /** Throws "unavailable" (dropping the lock) unless this relay still holds the named lock. */
  async #checkLock(conn: mysql.PoolConnection): Promise<void> {
    const [[row]] = await conn.query<mysql.RowDataPacket[]>("SELECT IS_USED_LOCK(?) AS holder", [
      this.#lockName,
    ]);
    if (Number(row?.holder) !== this.#lockConnId || this.#lockConn === undefined) {
      await this.#dropLock();
      throw new NerveBusError("unavailable", `outbox ${this.name}: the relay lock was lost`);
    }
  }

  /** The relay pool's (see ServerPool): its deletes and cursor writes tell. */
  readOnlyState(): ReadOnlyState | undefined {
    return this.#pool?.readOnlyState();
  }

  async close(): Promise<void> {
    await this.#lease?.release();
    this.#lease = undefined;
    await this.#dropLock();
    await this.#pool?.end().catch(() => undefined);
    this.#pool = undefined;
  }
}

/**
 * A pool for the relay (ServerPool makes a new one after each failover), its sessions in
 * autocommit whatever the server's default: the relay polls with plain SELECTs, and with
 * autocommit off (a my.cnf or init_connect setting of the application's server) each would open
 * a transaction whose REPEATABLE READ snapshot lasts across polls, hiding every row committed
 * after the first one: the relay would stall. Its own transaction (complete) begins explicitly,
 * at READ COMMITTED, the sessions' level (an autocommit SELECT reads committed rows at either).
 *
 * With a lease (--cluster), on MariaDB, the server also ends a session left idle inside a
 * transaction for the lease time: a frozen relay (SIGSTOP) in the middle of its delete
 * transaction would otherwise keep the lease row and its rows locked, holding up the broker
 * that takes over. MySQL has no such setting (the statement fails there, harmlessly).
 */
function autocommitPool(config: mysql.PoolOptions, lease: OutboxLeaseOptions | undefined): mysql.Pool {
  const pool = mysql.createPool(config);
  pool.pool.on("connection", (conn) => {
    conn.query("SET SESSION autocommit = 1", () => undefined);
    conn.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", () => undefined);
    if (lease !== undefined)
      conn.query(
        `SET SESSION idle_transaction_timeout = ${Math.max(1, Math.ceil(lease.ttlMs / 1000))}`,
        () => undefined,
      );
  });
  return pool;
}

/**
 * The stored gaps (see nb_outbox_gaps), aged by `since` ms more. Written only by the relay; an
 * entry that is not [lo, hi, age] with lo ≤ hi is left out rather than trusted.
 */
function parseGaps(raw: unknown, since: number): PassedGap[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(String(raw));
  } catch {
    return [];
  }
  if (!Array.isArray(parsed)) return [];
  const out: PassedGap[] = [];
  for (const g of parsed as unknown[]) {
    if (!Array.isArray(g) || g.length !== 3 || !g.every((n) => Number.isSafeInteger(n) && n >= 0)) continue;
    const [lo, hi, age] = g as number[];
    if (lo! <= hi!) out.push({ lo: lo!, hi: hi!, ageMs: age! + Math.max(0, since) });
  }
  return out;
}

/** The attributes column: a JSON object of strings, or NULL. Anything else is the application's bug. */
function parseAttributes(raw: unknown, id: number): Record<string, string> {
  if (raw === null || raw === undefined || raw === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.isBuffer(raw) ? raw.toString("utf8") : String(raw));
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    throw new NerveBusError("invalid_argument", `outbox row ${id}: attributes is not a JSON object`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) out[k] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}
