import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type mysql from "mysql2/promise";
import { NerveBusError, type TopicRecord } from "../../core/index.js";
import { mapStoreError } from "../errors.js";
import { cut, type ServerPool } from "./server-pool.js";
import type { LeaseState, WriteGuard } from "./write-guard.js";

/** The database's clock in ms: lease expiry is judged by one clock shared by every broker. */
export const DB_NOW_MS = "CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)";

/** The lease row's key: one placement unit per database (every topic in it). */
const UNIT = "store";

export interface LeaseOptions {
  /** How long a lease lasts without renewal (ms). */
  readonly ttlMs: number;
  /** How often the owner renews (ms); well below ttlMs. */
  readonly renewMs: number;
  /** How long a starting broker waits for another broker's live lease to expire (ms). */
  readonly waitMs: number;
  readonly log: (level: "warn" | "info" | "error", msg: string, fields?: Record<string, unknown>) => void;
  /** Called once when another broker took the lease: nothing this broker writes will land. */
  readonly onLost: (err: NerveBusError) => void;
}

/** The tail of a "lease not renewed" error: why the last renewal failed, when known. */
export function failedBecause(renewError: string | undefined): string {
  return renewError === undefined ? "" : ` (the last renewal failed: ${renewError})`;
}

/** What an attempt to take the lease found. */
type TakeOutcome =
  | { taken: true; epoch: number; previous: string }
  | { taken: false; holder: string; expiresInMs: number };

/** Creates the lease and fence tables (idempotent). */
export async function createLeaseTables(conn: mysql.Connection): Promise<void> {
  await conn.query(`
    CREATE TABLE IF NOT EXISTS nb_lease (
      unit VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
      owner VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
      epoch BIGINT UNSIGNED NOT NULL, expires_at BIGINT NOT NULL, acquired_at BIGINT NOT NULL,
      lock_server VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL) ENGINE=InnoDB`);
  // One row per writer of a topic: each shard writer (slot = shard) and everything else (slot
  // -1), so shard writers never wait on each other's fence row. A write transaction bumps its
  // row only while the row holds the writer's epoch; a new owner raises the epoch first.
  await conn.query(`
    CREATE TABLE IF NOT EXISTS nb_fence (
      topic_id INT UNSIGNED NOT NULL, slot INT NOT NULL, epoch BIGINT UNSIGNED NOT NULL,
      writes BIGINT UNSIGNED NOT NULL DEFAULT 0, PRIMARY KEY (topic_id, slot)) ENGINE=InnoDB`);
}

/**
 * This broker's ownership of a database: a row in `nb_lease` with an owner, an epoch and an
 * expiry on the database's clock. The owner renews it every `renewMs`; a starting broker takes
 * it once it has expired (or at once when the holder's named-lock connection is gone from the
 * same server, which a dead process's is), raising the epoch and every fence row with it.
 *
 * The lease bounds time; the fence rows prove ownership inside each write transaction (see
 * MysqlStore). A broker whose renewal has not succeeded for `ttlMs − ttlMs/10` (measured from
 * when the renewal was sent, on this process's monotonic clock, which is never ahead of the
 * database's expiry) starts no further write until a renewal succeeds again; one that finds
 * another owner's epoch stops for good.
 */
export class Lease implements WriteGuard {
  readonly owner = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  #epoch = 0;
  /** performance.now() until which writes may start. */
  #validUntil = 0;
  #renewedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  #lost: NerveBusError | undefined;
  #lockConn: mysql.Connection | undefined;
  /** Why the last renewal failed (none succeeded since), for the error writes wait with. */
  #renewError: string | undefined;

  constructor(
    private readonly pool: ServerPool,
    private readonly connect: () => Promise<mysql.Connection>,
    private readonly lockName: string,
    private readonly options: LeaseOptions,
  ) {
    // The named lock's connection goes where the pool's go: a lock held on the old primary
    // says nothing to a broker starting on the new one.
    pool.onDrop(() => this.#cutLockConn());
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** Every topic is fenced at the store's epoch. */
  epochOf(): number {
    return this.#epoch;
  }

  /** Every topic's writes prove the store's lease row. */
  unitOf(): string {
    return UNIT;
  }

  /**
   * Topics need no claim of their own: the store's lease covers them all, and once lost it is
   * never taken again by this broker, so no tenure is needed.
   */
  async claim(): Promise<undefined> {
    return undefined;
  }

  get lost(): NerveBusError | undefined {
    return this.#lost;
  }

  state(): LeaseState {
    return {
      owner: this.owner,
      epoch: this.#epoch,
      ageMs: Math.round(performance.now() - this.#renewedAt),
      valid: this.#lost === undefined && performance.now() < this.#validUntil,
      lost: this.#lost?.message,
    };
  }

  /**
   * Throws unless a write may start now: UNAVAILABLE while the lease is not known to be valid
   * (renewal failing; retried writes wait for it), and the lost-ownership error for good once
   * another broker holds it.
   */
  check(): void {
    if (this.#lost) throw this.#lost;
    if (performance.now() >= this.#validUntil) {
      throw new NerveBusError(
        "unavailable",
        `store lease not renewed for ${Math.round(performance.now() - this.#renewedAt)} ms (ttl ${this.options.ttlMs} ms); writes wait until it is${failedBecause(this.#renewError)}`,
      );
    }
  }

  /**
   * Takes the lease, waiting up to `waitMs` for another broker's to expire. Throws
   * FAILED_PRECONDITION naming the holder when it does not.
   */
  async acquire(): Promise<void> {
    const giveUpAt = performance.now() + this.options.waitMs;
    for (let attempt = 0; ; attempt++) {
      const hint = await this.#takeNamedLock();
      const sentAt = performance.now();
      const outcome = await this.#tryTake(hint).catch((err: unknown) => {
        // Two brokers racing on a cluster: the loser's COMMIT fails with a deadlock; try again.
        const mapped = mapStoreError(err, "taking the store lease");
        if (mapped.code !== "unavailable") throw mapped;
        return { taken: false as const, holder: `unknown (${mapped.message})`, expiresInMs: 200 };
      });
      if (outcome.taken) {
        this.#epoch = outcome.epoch;
        this.#renewed(sentAt);
        this.options.log("info", "store lease taken", {
          owner: this.owner,
          epoch: this.#epoch,
          previous: outcome.previous,
        });
        this.#timer = setInterval(() => void this.renew(), this.options.renewMs);
        this.#timer.unref();
        return;
      }
      const left = giveUpAt - performance.now();
      if (left <= 0) {
        throw new NerveBusError(
          "failed_precondition",
          `the database is owned by another broker, ${outcome.holder} (lease expires in ${outcome.expiresInMs} ms unless renewed); ` +
            "one broker owns a database at a time: stop the other broker, or wait for its lease to expire",
        );
      }
      if (attempt === 0) {
        this.options.log("info", "waiting for another broker's store lease to expire", {
          holder: outcome.holder,
          expiresInMs: outcome.expiresInMs,
        });
      }
      await new Promise((r) => setTimeout(r, Math.max(20, Math.min(left, outcome.expiresInMs + 10, 250))));
    }
  }

  /**
   * Extends the lease. A failure that is not a lost lease leaves it to expire on its own (writes
   * stop at the local bound and resume when a later renewal succeeds).
   */
  renew(): Promise<void> {
    this.#renewing ??= this.#renewOnce().finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  /** Stops renewing and lets the next broker take over at once. */
  async release(): Promise<void> {
    clearInterval(this.#timer);
    await this.#renewing?.catch(() => undefined);
    if (this.#lost === undefined && this.#epoch > 0) {
      await this.pool
        .query("UPDATE nb_lease SET expires_at = 0 WHERE unit = ? AND owner = ? AND epoch = ?", [
          UNIT,
          this.owner,
          this.#epoch,
        ])
        .catch(() => undefined);
    }
    this.#validUntil = 0;
    // Ending the session releases its named lock: no RELEASE_LOCK, which a server that answers
    // nothing would leave waiting.
    await this.#dropLockConn();
  }

  /**
   * Records that a write found a newer epoch in a fence row or the lease row: ownership is gone
   * for good. Returns the error writes fail with from now on.
   */
  markLost(_topic: TopicRecord | undefined, detail: string): NerveBusError {
    if (this.#lost) return this.#lost;
    clearInterval(this.#timer);
    this.#validUntil = 0;
    this.#lost = new NerveBusError(
      "unavailable",
      `this broker no longer owns the store (${detail}); it confirms nothing more: retry on the current owner`,
    );
    this.options.log("error", "store ownership lost; this broker stops serving", {
      owner: this.owner,
      epoch: this.#epoch,
      detail,
    });
    this.options.onLost(this.#lost);
    return this.#lost;
  }

  async #renewOnce(): Promise<void> {
    if (this.#lost) return;
    const sentAt = performance.now();
    try {
      const [res] = await this.pool.query<mysql.ResultSetHeader>(
        `UPDATE nb_lease SET expires_at = ${DB_NOW_MS} + ? WHERE unit = ? AND owner = ? AND epoch = ?`,
        [this.options.ttlMs, UNIT, this.owner, this.#epoch],
      );
      if (res.affectedRows === 1) {
        this.#renewed(sentAt);
        // Keep the named lock too (its connection may have dropped), so a starting broker knows
        // this one is alive.
        await this.#takeNamedLock();
        return;
      }
      const [rows] = await this.pool.query<mysql.RowDataPacket[]>(
        "SELECT owner, epoch FROM nb_lease WHERE unit = ?",
        [UNIT],
      );
      const r = rows[0];
      if (r === undefined || Number(r.epoch) !== this.#epoch || String(r.owner) !== this.owner) {
        this.markLost(
          undefined,
          r === undefined
            ? "the lease row is gone"
            : `broker ${String(r.owner)} took it at epoch ${Number(r.epoch)}; ours was ${this.#epoch}`,
        );
      }
    } catch (err) {
      this.#renewError = err instanceof Error ? err.message : String(err);
      this.options.log("warn", "renewing the store lease failed", {
        err: String(err),
        ageMs: Math.round(performance.now() - this.#renewedAt),
      });
    }
  }

  #renewed(sentAt: number): void {
    this.#renewError = undefined;
    this.#renewedAt = sentAt;
    this.#validUntil = sentAt + this.options.ttlMs - this.options.ttlMs / 10;
  }

  /**
   * Takes the named lock on a connection of its own. Holding it says "this broker's process is
   * alive"; getting it says the previous holder's connection is gone. Only a hint (a lock is per
   * server, so on a cluster it proves nothing about other nodes): safety comes from the fence.
   */
  async #takeNamedLock(): Promise<boolean> {
    try {
      if (this.#lockConn === undefined) {
        const conn = await this.connect();
        conn.on("error", () => {
          if (this.#lockConn === conn) this.#lockConn = undefined;
        });
        this.#lockConn = conn;
      }
      const [rows] = await this.#lockConn.query<mysql.RowDataPacket[]>(
        "SELECT IF(IS_USED_LOCK(?) <=> CONNECTION_ID(), 1, GET_LOCK(?, 0)) AS got",
        [this.lockName, this.lockName],
      );
      if (rows[0]?.got === 1) return true;
    } catch {
      await this.#dropLockConn();
    }
    return false;
  }

  /**
   * The pool was recycled (its server turned read-only, or answers nothing) or cut at the end of
   * a shutdown's grace: the named lock's connection is cut at once, so a renewal or release
   * waiting on it fails instead of waiting forever.
   */
  #cutLockConn(): void {
    const conn = this.#lockConn;
    this.#lockConn = undefined;
    if (conn !== undefined) cut(conn, new Error("the store's connections were recycled"));
  }

  /** Closes the named lock's connection (the lock goes with it); the next renewal opens one. */
  async #dropLockConn(): Promise<void> {
    const conn = this.#lockConn;
    this.#lockConn = undefined;
    if (conn !== undefined) await this.pool.endConnection(conn);
  }

  #tryTake(namedLockFree: boolean): Promise<TakeOutcome> {
    return this.pool.transaction<TakeOutcome>(async (conn) => {
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        `SELECT owner, epoch, expires_at, lock_server, ${DB_NOW_MS} AS now,
           CONCAT(@@hostname, ':', @@port) AS server FROM nb_lease WHERE unit = ? FOR UPDATE`,
        [UNIT],
      );
      const r = rows[0];
      let epoch: number;
      let previous = "none";
      if (r === undefined) {
        const [now] = await conn.query<mysql.RowDataPacket[]>(
          `SELECT ${DB_NOW_MS} AS now, CONCAT(@@hostname, ':', @@port) AS server`,
        );
        epoch = 1;
        await conn.query(
          "INSERT INTO nb_lease (unit, owner, epoch, expires_at, acquired_at, lock_server) VALUES (?, ?, ?, ?, ?, ?)",
          [
            UNIT,
            this.owner,
            epoch,
            Number(now[0]!.now) + this.options.ttlMs,
            Number(now[0]!.now),
            now[0]!.server,
          ],
        );
      } else {
        const now = Number(r.now);
        const expired = Number(r.expires_at) <= now;
        // The holder's named-lock connection is gone from the server it used: its process died.
        const holderGone = namedLockFree && String(r.lock_server) === String(r.server);
        if (!expired && !holderGone) {
          return {
            commit: false,
            value: { taken: false, holder: String(r.owner), expiresInMs: Number(r.expires_at) - now },
          };
        }
        epoch = Number(r.epoch) + 1;
        previous = `${String(r.owner)} at epoch ${Number(r.epoch)}${expired ? " (expired)" : " (process gone)"}`;
        await conn.query(
          "UPDATE nb_lease SET owner = ?, epoch = ?, expires_at = ? + ?, acquired_at = ?, lock_server = ? WHERE unit = ?",
          [this.owner, epoch, now, this.options.ttlMs, now, String(r.server), UNIT],
        );
      }
      // Every topic's writers are fenced from here on (rows created later are raised when the
      // topic is claimed; see MysqlStore.claimTopic).
      await conn.query("UPDATE nb_fence SET epoch = ? WHERE epoch < ?", [epoch, epoch]);
      return { commit: true, value: { taken: true, epoch, previous } };
    });
  }
}
