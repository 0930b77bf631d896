import type mysql from "mysql2/promise";
import { NerveBusError, sleep } from "../../core/index.js";
import { DB_NOW_MS } from "./lease.js";
import type { Queryable } from "./server-pool.js";

/** How a relay with --cluster holds its outbox (see OutboxLease). */
export interface OutboxLeaseOptions {
  /** This broker's id (Cluster.self). */
  readonly owner: string;
  /** --lease-ttl-ms / --lease-renew-ms, as for topic leases. */
  readonly ttlMs: number;
  readonly renewMs: number;
}

/**
 * The relay lease of one outbox with --cluster: the row `nb_outbox_lease` (id 1) in the outbox
 * database itself, taken like a topic lease (free or lapsed by the database's clock, a new
 * epoch each time it changes hands) and renewed every renewMs. Unlike the named lock used
 * without --cluster, it lapses when its holder is frozen (SIGSTOP keeps a connection, and so a
 * named lock, alive), so another broker takes the outbox within the lease time.
 *
 * Kept in the outbox database, not the broker's store, so that the relay's delete transaction
 * fences itself: it locks the row and commits only while it still holds this holder's epoch.
 * Before each publish the relay also asks `held()`, which counts the lease from before the
 * statement that took or renewed it, by this process's monotonic clock: false once the lease
 * may have lapsed, whatever the database's clock says.
 */
export class OutboxLease {
  #epoch = 0;
  #validUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  #lost = false;

  constructor(
    private readonly pool: Queryable,
    private readonly options: OutboxLeaseOptions,
  ) {}

  /** The epoch held (0 before the first take). */
  get epoch(): number {
    return this.#epoch;
  }

  /**
   * Takes the lease, waiting while another broker holds it and `wanted()` says so (else
   * throws "unavailable"); `waiting` is called once when it has to wait. Renews it from then on.
   */
  async acquire(wanted: () => boolean, waiting: () => void): Promise<void> {
    this.#stopRenewing();
    for (let said = false; ; ) {
      const sentAt = performance.now();
      if (await this.#take()) {
        this.#validUntil = sentAt + this.options.ttlMs;
        this.#lost = false;
        this.#timer = setInterval(() => void this.#renew(), this.options.renewMs);
        this.#timer.unref();
        return;
      }
      if (!said) waiting();
      said = true;
      if (!wanted()) throw new NerveBusError("unavailable", "stopped waiting for the outbox relay lease");
      await sleep(Math.min(this.options.renewMs, 1000));
    }
  }

  /** Whether the lease is surely still this broker's now (see the class comment). */
  held(): boolean {
    return !this.#lost && this.#epoch > 0 && performance.now() < this.#validUntil;
  }

  /**
   * Inside the caller's transaction on the outbox database: locks the lease row and throws
   * "unavailable" unless it still holds this broker's epoch, unexpired.
   */
  async check(conn: mysql.PoolConnection): Promise<void> {
    const [[row]] = await conn.query<mysql.RowDataPacket[]>(
      `SELECT owner, epoch, expires_at > ${DB_NOW_MS} AS live FROM nb_outbox_lease WHERE id = 1 FOR UPDATE`,
    );
    if (
      row === undefined ||
      String(row.owner) !== this.options.owner ||
      Number(row.epoch) !== this.#epoch ||
      Number(row.live) !== 1 ||
      !this.held()
    ) {
      this.#lost = true;
      throw new NerveBusError("unavailable", "the outbox relay lease was lost");
    }
  }

  /** Stops renewing and lets the lease lapse at once, so another broker takes over now. */
  async release(): Promise<void> {
    this.#stopRenewing();
    if (this.#epoch === 0) return;
    const epoch = this.#epoch;
    this.#epoch = 0;
    await this.pool
      .query("UPDATE nb_outbox_lease SET expires_at = 0 WHERE id = 1 AND owner = ? AND epoch = ?", [
        this.options.owner,
        epoch,
      ])
      .catch(() => undefined);
  }

  /** One attempt: inserts the row, or takes it over if it lapsed (or is this broker's). */
  async #take(): Promise<boolean> {
    const { owner, ttlMs } = this.options;
    await this.pool.query(
      `INSERT IGNORE INTO nb_outbox_lease (id, owner, epoch, expires_at) VALUES (1, '', 0, 0)`,
    );
    const [result] = await this.pool.query<mysql.ResultSetHeader>(
      `UPDATE nb_outbox_lease SET owner = ?, epoch = LAST_INSERT_ID(epoch + 1), expires_at = ${DB_NOW_MS} + ?
         WHERE id = 1 AND (expires_at <= ${DB_NOW_MS} OR owner = ?)`,
      [owner, ttlMs, owner],
    );
    if (result.affectedRows !== 1) return false;
    this.#epoch = Number(result.insertId);
    return true;
  }

  async #renew(): Promise<void> {
    if (this.#lost || this.#epoch === 0) return;
    const sentAt = performance.now();
    try {
      const [result] = await this.pool.query<mysql.ResultSetHeader>(
        `UPDATE nb_outbox_lease SET expires_at = ${DB_NOW_MS} + ?
           WHERE id = 1 AND owner = ? AND epoch = ? AND expires_at > ${DB_NOW_MS}`,
        [this.options.ttlMs, this.options.owner, this.#epoch],
      );
      if (result.affectedRows === 1) this.#validUntil = sentAt + this.options.ttlMs;
      else this.#lost = true;
    } catch {
      // A failed renewal leaves the lease running out; held() turns false when it may have.
    }
  }

  #stopRenewing(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
