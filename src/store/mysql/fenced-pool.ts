import type mysql from "mysql2/promise";
import type { ReadOnlyState, TopicRecord } from "../../core/index.js";
import { mapStoreError } from "../errors.js";
import type { SpaceWatch } from "../space-watch.js";
import { ServerPool } from "./server-pool.js";
import type { WriteGuard } from "./write-guard.js";

/** The fence slot of a topic's writes that are not shard inserts (pointers, schedule, catalog). */
export const META_SLOT = -1;

/** Proves ownership of a topic's slot: matches one row only while it holds this broker's epoch. */
const BUMP_FENCE_SQL =
  "UPDATE nb_fence SET writes = writes + 1 WHERE topic_id = ? AND slot = ? AND epoch = ?";

/**
 * The condition a write in fencedInOneTrip puts in its WHERE (with the three values it is
 * given): true only while the fence row holds this broker's epoch.
 */
export const FENCE_HOLDS = "EXISTS (SELECT 1 FROM nb_fence WHERE topic_id = ? AND slot = ? AND epoch = ?)";

/**
 * FENCE_HOLDS as a locking read (a shared lock on the fence row until the statement's commit),
 * for a write that proves ownership in its own statement (FencedPool.fencedByLockingRead).
 * `LOCK IN SHARE MODE`: MySQL 8 and MariaDB both take it.
 */
export const FENCE_HOLDS_LOCKED = `EXISTS (SELECT 1 FROM nb_fence WHERE topic_id = ? AND slot = ? AND epoch = ? LOCK IN SHARE MODE)`;

/**
 * How the MySQL store talks to its pool: reads, and writes that prove ownership. A write runs
 * in a transaction that first bumps its fence row (`nb_fence`, one per topic and writer slot)
 * on the condition that the row still holds this broker's epoch. A new owner raises the epoch
 * before it reads anything, so once it has, a write of the old owner matches no fence row and
 * rolls back; its packs are never confirmed. On a single primary a write may instead read its
 * fence row with a shared lock in its own statement (fencedByLockingRead), which the raise
 * waits for and which sees the raise once committed. Every call's driver errors become domain errors
 * here (see mapStoreError), and a failure for lack of disk space marks the database full
 * (`space`).
 */
export class FencedPool {
  constructor(
    private readonly pool: ServerPool,
    readonly lease: WriteGuard,
    /** Whether this database is out of disk space (its place is HOST:PORT/DATABASE). */
    readonly space: SpaceWatch,
    /** Other pools to the same server (the cluster lease's), whose writes tell too. */
    private readonly siblings: readonly ServerPool[] = [],
    /**
     * Whether a locking read of a fence row is serialised against a takeover's raise, as on one
     * InnoDB primary (and the replicas it feeds); not where write sets are certified across
     * primaries (Galera, Group Replication), where only a write of the row is. See
     * fencedByLockingRead.
     */
    readonly lockingReadFences = false,
  ) {}

  /** Whether this database's server refuses writes as read-only (see ServerPool). */
  readOnlyState(): ReadOnlyState {
    return ServerPool.readOnlyOf([this.pool, ...this.siblings]);
  }

  /**
   * Runs `fn` in a transaction that first proves this broker owns the topic: the fence row of
   * `slot` is bumped only while it holds this broker's epoch. A row that is missing or older
   * (the topic is new, or was created by an earlier owner after this one took over) is raised
   * and the write tried once more; a newer one means ownership is lost.
   */
  async fenced<T>(
    what: string,
    topic: TopicRecord,
    slot: number,
    fn: (conn: mysql.PoolConnection) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.lease.check(topic);
      const epoch = this.lease.epochOf(topic);
      type Outcome = { fenced: false } | { fenced: true; value: T };
      const outcome = await this.#transaction<Outcome>(what, async (conn) => {
        const [fence] = await conn.execute<mysql.ResultSetHeader>(BUMP_FENCE_SQL, [topic.id, slot, epoch]);
        if (fence.affectedRows !== 1) return { commit: false, value: { fenced: false } };
        return { commit: true, value: { fenced: true, value: await fn(conn) } };
      });
      if (outcome.fenced) return outcome.value;
      if (attempt > 0)
        throw this.lease.markLost(topic, `fence row ${topic.name}/${slot} does not hold epoch ${epoch}`);
      await this.raiseFence(topic, [slot]);
    }
  }

  /**
   * fenced() for one write in one round trip (ServerPool.oneTrip): the fence row is bumped and
   * the write runs in the same transaction, sent as one text query. The server cannot be asked
   * between the two whether the bump matched, so the write must match nothing unless the fence
   * row holds this broker's epoch: `write` gets the condition (FENCE_HOLDS, with its three
   * values) to put in its WHERE. When the bump matched no row, the write did nothing either;
   * the fence is raised and the write tried once more, as in fenced(). The fence row is
   * written, not only read, so Galera's certification still sees every write's fence.
   */
  async fencedInOneTrip(
    what: string,
    topic: TopicRecord,
    slot: number,
    write: (fenceParams: readonly number[]) => { sql: string; params: readonly unknown[] },
  ): Promise<mysql.ResultSetHeader> {
    for (let attempt = 0; ; attempt++) {
      this.lease.check(topic);
      const fenceParams = [topic.id, slot, this.lease.epochOf(topic)];
      const [fence, result] = await this.run(what, () =>
        this.pool.oneTrip([{ sql: BUMP_FENCE_SQL, params: fenceParams }, write(fenceParams)]),
      );
      if (fence!.affectedRows === 1) return result!;
      if (attempt > 0)
        throw this.lease.markLost(
          topic,
          `fence row ${topic.name}/${slot} does not hold epoch ${fenceParams[2]}`,
        );
      await this.raiseFence(topic, [slot]);
    }
  }

  /**
   * One write that proves ownership in its own statement, sent as a prepared statement in
   * autocommit: one round trip, its values in the binary protocol. `write` gets the condition
   * (FENCE_HOLDS_LOCKED, with its three values) to put in its WHERE: the fence row is read with
   * a shared lock, which a new owner's raise (an UPDATE of the row) waits for, and which waits
   * for a raise in progress; once a raise committed, the read sees the new epoch and the write
   * matches nothing. Only where lockingReadFences holds (the caller checks).
   *
   * Returns the statement's result. No affected row means either that the fence row does not
   * hold this broker's epoch (or does not exist yet) or that the write's own condition held
   * nothing new (a duplicate key kept): the caller then writes through fenced(), which tells
   * them apart, raises a missing fence row, and reports a lost topic.
   */
  async fencedByLockingRead(
    what: string,
    topic: TopicRecord,
    slot: number,
    write: (fenceParams: readonly number[]) => { sql: string; params: readonly unknown[] },
  ): Promise<mysql.ResultSetHeader> {
    this.lease.check(topic);
    const { sql, params } = write([topic.id, slot, this.lease.epochOf(topic)]);
    return this.run(what, () => this.pool.execute(sql, params));
  }

  /**
   * Raises (or creates) fence rows of `topic` to this broker's epoch, under the lease row's
   * lock so a takeover in progress is waited for and then seen. Marks ownership lost when the
   * lease or a fence row holds a newer epoch.
   */
  async raiseFence(topic: TopicRecord, slots: readonly number[]): Promise<void> {
    this.lease.check(topic);
    const epoch = this.lease.epochOf(topic);
    const lost = await this.#transaction("claiming the topic", async (conn) => {
      const [lease] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT owner, epoch FROM nb_lease WHERE unit = ? LOCK IN SHARE MODE",
        [this.lease.unitOf(topic)],
      );
      const r = lease[0];
      if (r === undefined || Number(r.epoch) !== epoch) {
        const holder =
          r === undefined
            ? "the lease row is gone"
            : `broker ${String(r.owner)} holds epoch ${Number(r.epoch)}`;
        return { commit: false, value: holder };
      }
      await conn.query(
        `INSERT INTO nb_fence (topic_id, slot, epoch) VALUES ${slots.map(() => "(?, ?, ?)").join(", ")}
           ON DUPLICATE KEY UPDATE epoch = GREATEST(epoch, ?)`,
        [...slots.flatMap((slot) => [topic.id, slot, epoch]), epoch],
      );
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT MAX(epoch) AS e FROM nb_fence WHERE topic_id = ? AND slot IN (?)",
        [topic.id, slots],
      );
      const newest = Number(rows[0]?.e ?? 0);
      if (newest > epoch) return { commit: false, value: `topic ${topic.name} is fenced at epoch ${newest}` };
      return { commit: true, value: undefined };
    });
    if (lost !== undefined) throw this.lease.markLost(topic, `${lost}; ours is ${epoch}`);
  }

  /** Rows of a read that needs no transaction (catalog, log and schedule reads). */
  async select(sql: string, params: unknown[]): Promise<mysql.RowDataPacket[]> {
    const [rows] = await this.pool.query<mysql.RowDataPacket[]>(sql, params);
    return rows;
  }

  /** A statement outside any transaction: DDL (which commits on its own) and catalog inserts. */
  query<T extends mysql.ResultSetHeader | mysql.RowDataPacket[] = mysql.ResultSetHeader>(
    sql: string,
    params?: unknown[],
  ): Promise<[T, mysql.FieldPacket[]]> {
    return this.pool.query<T>(sql, params);
  }

  /** Runs `fn`, turning driver errors into domain errors that name `what`. */
  async run<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const mapped = mapStoreError(err, what, this.space.place);
      this.space.failed(mapped);
      throw mapped;
    }
  }

  /**
   * Runs `fn` in a transaction that proves nothing (commits when it returns): for writes that
   * fence others out themselves (sealing a moved or abandoned copy of a topic).
   */
  unfenced<T>(what: string, fn: (conn: mysql.PoolConnection) => Promise<T>): Promise<T> {
    return this.#transaction(what, async (conn) => ({ commit: true, value: await fn(conn) }));
  }

  /** Closes the pool's connections. */
  end(): Promise<void> {
    this.space.close();
    return this.pool.end();
  }

  /** Runs `fn` in a transaction on one pool connection; commits when it says so, else rolls back. */
  #transaction<T>(
    what: string,
    fn: (conn: mysql.PoolConnection) => Promise<{ commit: boolean; value: T }>,
  ): Promise<T> {
    return this.run(what, () => this.pool.transaction(fn));
  }
}
