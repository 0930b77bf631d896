import type mysql from "mysql2/promise";
import type * as core from "../../core/index.js";
import { NerveBusError, withTenure } from "../../core/index.js";
import { type IndexedRun, joinRuns } from "../../wire/index.js";
import * as codec from "../codec.js";
import { ClusterLease, MOVED_PREFIX, SEALED_EPOCH } from "./cluster-lease.js";
import { type FencedPool, META_SLOT } from "./fenced-pool.js";
import { MysqlRunLog } from "./mysql-run-log.js";
import { type MysqlStoreOptions, openPool } from "./open-pool.js";
import { ShardInserter } from "./shard-inserter.js";

type MsgRow = { seq: number; published_at: number; meta: Buffer; data: Buffer };

/** The catalog rows of a topic (its tables are dropped after, DDL committing on its own). */
async function deleteCatalogRows(conn: mysql.PoolConnection, topic: core.TopicRecord): Promise<void> {
  await conn.query("DELETE FROM nb_pointers WHERE topic_id = ?", [topic.id]);
  await conn.query("DELETE FROM nb_subscriptions WHERE topic_id = ?", [topic.id]);
  await conn.query("DELETE FROM nb_topics WHERE id = ?", [topic.id]);
  await conn.query("DELETE FROM nb_topic_schemas WHERE topic_id = ?", [topic.id]);
  await conn.query("DELETE FROM nb_fence WHERE topic_id = ? AND slot <> ?", [topic.id, META_SLOT]);
}

function toTopic(r: mysql.RowDataPacket): core.TopicRecord {
  return {
    id: Number(r.id),
    name: String(r.name),
    shards: Number(r.shards),
    format: Number(r.format) === 2 ? 2 : 1,
    createdAt: Number(r.created_at),
    config: codec.decodeConfig<core.TopicConfig>(String(r.config)),
  };
}

/**
 * The production store: sharded InnoDB tables over a mysql2 pool. One broker owns a database at
 * a time, by a lease (see Lease), and every write proves it inside its own transaction (see
 * FencedPool): a write of a broker that lost the lease rolls back and its packs are never
 * confirmed. This holds however the old owner's connections came and went, and on clusters where
 * named locks are per node. A row found at a seq with other content is an error, never a success
 * (see ShardInserter). This file holds the catalog, pointer, schedule and log-read statements.
 */
export class MysqlStore implements core.Store {
  readonly capabilities: core.StoreCapabilities;
  /** Set when brokers share the database (`--cluster`): each topic has its own lease. */
  readonly cluster: ClusterLease | undefined;
  readonly #db: FencedPool;
  readonly #inserter: ShardInserter;
  readonly #runs: MysqlRunLog;

  private constructor(db: FencedPool, capabilities: core.StoreCapabilities) {
    this.#db = db;
    this.#inserter = new ShardInserter(db);
    this.#runs = new MysqlRunLog(db);
    this.capabilities = capabilities;
    this.cluster = db.lease instanceof ClusterLease ? db.lease : undefined;
  }

  /**
   * Connects, prepares the schema and takes the store lease (waiting for another broker's to
   * expire, up to `leaseWaitMs`). Throws FAILED_PRECONDITION when another broker keeps it.
   */
  static async open(options: MysqlStoreOptions): Promise<MysqlStore> {
    const { db, capabilities } = await openPool(options);
    return new MysqlStore(db, capabilities);
  }

  /**
   * This database's pool, fenced by this store's lease: for the multi-host layer (src/store/multi),
   * which keeps its placement catalog here and copies a topic's rows between hosts.
   */
  get fencedPool(): FencedPool {
    return this.#db;
  }

  /** Who owns the store, since when, and whether the lease is current (status and stats). */
  ownership(): core.OwnershipState {
    return { mechanism: "lease", ...this.#db.lease.state() };
  }

  async ensureTopic(
    name: string,
    create: { shards: number; config: core.TopicConfig; format?: core.LogFormat } | null,
  ) {
    return this.#db.run("creating a topic", async () => {
      let created = false;
      const sql = "SELECT id, name, shards, format, config, created_at FROM nb_topics WHERE name = ?";
      let rows = await this.#db.select(sql, [name]);
      if (rows.length === 0) {
        if (create === null) return null;
        const [res] = await this.#db.query<mysql.ResultSetHeader>(
          "INSERT IGNORE INTO nb_topics (name, shards, format, config, created_at) VALUES (?, ?, ?, ?, ?)",
          [name, create.shards, create.format ?? 2, codec.encodeConfig(create.config), Date.now()],
        );
        created = res.affectedRows === 1;
        rows = await this.#db.select(sql, [name]);
      }
      const topic = toTopic(rows[0]!);
      for (let shard = 0; shard < topic.shards; shard++) {
        if (topic.format === 2) {
          await this.#db.query(MysqlRunLog.tableSql(topic, shard));
          continue;
        }
        await this.#db.query(
          `CREATE TABLE IF NOT EXISTS ${codec.shardTable(topic.id, shard)} (
             seq BIGINT UNSIGNED NOT NULL PRIMARY KEY, published_at BIGINT NOT NULL,
             meta BLOB NOT NULL, data LONGBLOB NOT NULL) ENGINE=InnoDB`,
        );
      }
      await this.#db.query(
        `CREATE TABLE IF NOT EXISTS ${codec.scheduleTable(topic.id)} (
           id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, due_at BIGINT NOT NULL,
           meta BLOB NOT NULL, data LONGBLOB NOT NULL, KEY due (due_at, id)) ENGINE=InnoDB`,
      );
      return { topic, created };
    });
  }

  async listTopics(): Promise<core.TopicRecord[]> {
    return this.#db.run("listing topics", async () =>
      (
        await this.#db.select(
          "SELECT id, name, shards, format, config, created_at FROM nb_topics ORDER BY name",
          [],
        )
      ).map(toTopic),
    );
  }

  async updateTopicConfig(topic: core.TopicRecord, config: core.TopicConfig): Promise<core.TopicRecord> {
    await this.#db.fenced("updating a topic", topic, META_SLOT, (conn) =>
      conn.query("UPDATE nb_topics SET config = ? WHERE id = ?", [codec.encodeConfig(config), topic.id]),
    );
    return { ...topic, config };
  }

  async deleteTopic(topic: core.TopicRecord): Promise<void> {
    // The catalog rows go in one fenced transaction; the tables (DDL, which commits on its own)
    // are dropped after, when nothing refers to them any more.
    await this.#db.fenced("deleting a topic", topic, META_SLOT, (conn) => deleteCatalogRows(conn, topic));
    this.cluster?.forget(topic);
    await this.#dropTables(topic);
  }

  /**
   * Drops a copy of a topic that the placement catalog does not point at (src/store/multi: the
   * old copy of a moved topic, or one a crash left behind). With `--cluster` no broker may hold
   * its lease (a stale mover may still be writing a copy it started), so the copy is first sealed
   * in one transaction, its lease and fence rows set to SEALED_EPOCH: no write of anyone commits
   * there after it. Without, it is deleteTopic (the store lease fences it).
   */
  async dropCopy(topic: core.TopicRecord): Promise<void> {
    if (this.cluster === undefined) return this.deleteTopic(topic);
    await this.#db.unfenced("dropping a topic's copy", async (conn) => {
      await this.#seal(conn, topic, `${MOVED_PREFIX}(dropped)`);
      await deleteCatalogRows(conn, topic);
    });
    this.cluster.forget(topic);
    await this.#dropTables(topic);
  }

  /**
   * `--cluster`, a move between databases: proves, in one fenced transaction, that this broker
   * still owns the topic here and seals this copy (see dropCopy), naming the database it moved
   * to. After it, no write of this copy commits, so every confirmed message of the topic is in
   * the target copy (copied before); a broker that finds the seal finishes the switch (movedTo).
   * Throws the lost-ownership error when another broker owns the topic now. No-op without
   * `--cluster` (the store lease fences the one owner).
   */
  async sealMoved(topic: core.TopicRecord, to: string): Promise<void> {
    if (this.cluster === undefined) return;
    await this.#db.fenced("sealing a moved topic", topic, META_SLOT, (conn) =>
      this.#seal(conn, topic, `${MOVED_PREFIX}${to}`),
    );
    this.cluster.forget(topic);
  }

  /**
   * Whether this database still holds this copy of the topic (its catalog row, same id and
   * name): a copy dropped after a move has none, even once the topic has moved back here.
   */
  async holds(topic: core.TopicRecord): Promise<boolean> {
    const rows = await this.#db.run("reading the topic catalog", () =>
      this.#db.select("SELECT 1 FROM nb_topics WHERE id = ? AND name = ?", [topic.id, topic.name]),
    );
    return rows.length > 0;
  }

  /** `--cluster`: the database this copy of the topic was moved to, once sealed (see sealMoved). */
  async movedTo(topic: core.TopicRecord): Promise<string | undefined> {
    if (this.cluster === undefined) return undefined;
    const rows = await this.#db.run("reading a topic lease", () =>
      this.#db.select("SELECT owner FROM nb_lease WHERE unit = ?", [this.cluster!.unitOf(topic)]),
    );
    const owner = rows[0] === undefined ? "" : String(rows[0].owner);
    return owner.startsWith(MOVED_PREFIX) && owner !== `${MOVED_PREFIX}(dropped)`
      ? owner.slice(MOVED_PREFIX.length)
      : undefined;
  }

  async #seal(conn: mysql.PoolConnection, topic: core.TopicRecord, owner: string): Promise<void> {
    await conn.query(
      `INSERT INTO nb_lease (unit, owner, epoch, expires_at, acquired_at, lock_server) VALUES (?, ?, ?, ?, 0, '')
         ON DUPLICATE KEY UPDATE owner = VALUES(owner), epoch = VALUES(epoch), expires_at = VALUES(expires_at)`,
      [this.cluster!.unitOf(topic), owner, SEALED_EPOCH, SEALED_EPOCH],
    );
    await conn.query("UPDATE nb_fence SET epoch = ? WHERE topic_id = ?", [SEALED_EPOCH, topic.id]);
  }

  async #dropTables(topic: core.TopicRecord): Promise<void> {
    await this.#db.run("deleting a topic", async () => {
      for (let shard = 0; shard < topic.shards; shard++)
        await this.#db.query(`DROP TABLE IF EXISTS ${codec.logTable(topic, shard)}`);
      await this.#db.query(`DROP TABLE IF EXISTS ${codec.scheduleTable(topic.id)}`);
      await this.#db.query("DELETE FROM nb_fence WHERE topic_id = ?", [topic.id]);
      await this.#db.query("DELETE FROM nb_lease WHERE unit = ?", [`topic:${topic.id}`]);
    });
  }

  async loadTopicSchema(topic: core.TopicRecord): Promise<core.TopicSchema | null> {
    return this.#db.run("reading a topic schema", async () => {
      const [row] = await this.#db.select(
        "SELECT message_type, descriptor_set, updated_at FROM nb_topic_schemas WHERE topic_id = ?",
        [topic.id],
      );
      return row === undefined
        ? null
        : codec.toTopicSchema({
            message_type: String(row.message_type),
            descriptor_set: row.descriptor_set as Buffer,
            updated_at: Number(row.updated_at),
          });
    });
  }

  async saveTopicSchema(topic: core.TopicRecord, schema: core.TopicSchema | null): Promise<void> {
    await this.#db.fenced("writing a topic schema", topic, META_SLOT, (conn) =>
      schema === null
        ? conn.query("DELETE FROM nb_topic_schemas WHERE topic_id = ?", [topic.id])
        : conn.query(
            `INSERT INTO nb_topic_schemas (topic_id, message_type, descriptor_set, updated_at) VALUES (?, ?, ?, ?)
               ON DUPLICATE KEY UPDATE message_type = VALUES(message_type),
                 descriptor_set = VALUES(descriptor_set), updated_at = VALUES(updated_at)`,
            [topic.id, schema.messageType, Buffer.from(schema.descriptorSet), schema.updatedAt],
          ),
    );
  }

  async ensureSubscription(topic: core.TopicRecord, name: string, create: core.SubscriptionConfig | null) {
    return this.#db.run("creating a subscription", async () => {
      const sql = "SELECT config, created_at FROM nb_subscriptions WHERE topic_id = ? AND name = ?";
      let rows = await this.#db.select(sql, [topic.id, name]);
      let created = false;
      if (rows.length === 0) {
        if (create === null) return null;
        created = await this.#db.fenced("creating a subscription", topic, META_SLOT, async (conn) => {
          const [res] = await conn.query<mysql.ResultSetHeader>(
            "INSERT IGNORE INTO nb_subscriptions (topic_id, name, config, created_at) VALUES (?, ?, ?, ?)",
            [topic.id, name, codec.encodeConfig(create), Date.now()],
          );
          return res.affectedRows === 1;
        });
        rows = await this.#db.select(sql, [topic.id, name]);
      }
      const r = rows[0]!;
      const subscription: core.SubscriptionRecord = {
        topicId: topic.id,
        name,
        createdAt: Number(r.created_at),
        config: codec.decodeConfig<core.SubscriptionConfig>(String(r.config)),
      };
      return { subscription, created };
    });
  }

  async listSubscriptions(topic: core.TopicRecord): Promise<core.SubscriptionRecord[]> {
    return this.#db.run("listing subscriptions", async () =>
      (
        await this.#db.select(
          "SELECT name, config, created_at FROM nb_subscriptions WHERE topic_id = ? ORDER BY name",
          [topic.id],
        )
      ).map((r) => ({
        topicId: topic.id,
        name: String(r.name),
        createdAt: Number(r.created_at),
        config: codec.decodeConfig<core.SubscriptionConfig>(String(r.config)),
      })),
    );
  }

  async updateSubscriptionConfig(
    topic: core.TopicRecord,
    name: string,
    config: core.SubscriptionConfig,
  ): Promise<void> {
    await this.#db.fenced("updating a subscription", topic, META_SLOT, (conn) =>
      conn.query("UPDATE nb_subscriptions SET config = ? WHERE topic_id = ? AND name = ?", [
        codec.encodeConfig(config),
        topic.id,
        name,
      ]),
    );
  }

  async deleteSubscription(topic: core.TopicRecord, name: string): Promise<void> {
    await this.#db.fenced("deleting a subscription", topic, META_SLOT, async (conn) => {
      await conn.query("DELETE FROM nb_subscriptions WHERE topic_id = ? AND name = ?", [topic.id, name]);
      await conn.query("DELETE FROM nb_pointers WHERE topic_id = ? AND subscription = ?", [topic.id, name]);
    });
  }

  async insertMessages(
    topic: core.TopicRecord,
    shard: number,
    rows: readonly core.LogMessage[],
  ): Promise<void> {
    await (topic.format === 2
      ? this.#runs.insert(topic, shard, codec.encodeRuns(rows))
      : this.#inserter.insert(topic, shard, rows));
    this.#db.space.inserted();
  }

  async insertRuns(topic: core.TopicRecord, shard: number, runs: readonly IndexedRun[]): Promise<void> {
    await (topic.format === 2
      ? this.#runs.insert(topic, shard, joinRuns(runs))
      : this.#inserter.insert(topic, shard, codec.messagesOfIndexedRuns(runs)));
    this.#db.space.inserted();
  }

  outOfSpace(_topic: core.TopicRecord): core.NerveBusError | undefined {
    return this.#db.space.refusal();
  }

  spaceState(): core.SpaceState[] {
    return [this.#db.space.state()];
  }

  readOnlyState(): core.ReadOnlyState[] {
    return [this.#db.readOnlyState()];
  }

  async readMessages(topic: core.TopicRecord, fromSeq: number, toSeq: number): Promise<core.LogMessage[]> {
    return this.#db.run("reading messages", async () => {
      if (topic.format === 2) return this.#runs.readMessages(topic, fromSeq, toSeq);
      const parts = await Promise.all(
        Array.from({ length: topic.shards }, async (_, shard) => {
          const [rows] = await this.#db.query<mysql.RowDataPacket[]>(
            `SELECT seq, published_at, meta, data FROM ${codec.shardTable(topic.id, shard)} WHERE seq BETWEEN ? AND ? ORDER BY seq`,
            [fromSeq, toSeq],
          );
          return (rows as MsgRow[]).map((r) =>
            codec.decodeRow(topic, Number(r.seq), Number(r.published_at), r.meta, r.data),
          );
        }),
      );
      return codec.mergeBySeq(parts, fromSeq, toSeq);
    });
  }

  async readRuns(topic: core.TopicRecord, fromSeq: number, toSeq: number): Promise<IndexedRun[] | undefined> {
    if (topic.format !== 2) return undefined;
    return this.#db.run("reading messages", () => this.#runs.readRuns(topic, fromSeq, toSeq));
  }

  async readIds(topic: core.TopicRecord, fromSeq: number, toSeq: number): Promise<core.LoggedIds[]> {
    return this.#db.run("reading message ids", async () => {
      if (topic.format === 2) return this.#runs.readIds(topic, fromSeq, toSeq);
      const parts = await Promise.all(
        Array.from({ length: topic.shards }, (_, shard) =>
          this.#db.select(
            `SELECT seq, published_at, meta FROM ${codec.shardTable(topic.id, shard)} WHERE seq BETWEEN ? AND ?`,
            [fromSeq, toSeq],
          ),
        ),
      );
      return parts
        .flat()
        .map((r) => codec.storedIds(topic, Number(r.seq), Number(r.published_at), r.meta as Buffer))
        .sort((a, b) => a.seq - b.seq);
    });
  }

  async firstSeq(topic: core.TopicRecord): Promise<number> {
    return this.#db.run("finding the first seq", async () => {
      if (topic.format === 2) return this.#runs.firstSeq(topic);
      let found = 0;
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = await this.#db.select(
          `SELECT MIN(seq) AS s FROM ${codec.shardTable(topic.id, shard)}`,
          [],
        );
        const s = rows[0]?.s;
        if (s !== null && s !== undefined && (found === 0 || Number(s) < found)) found = Number(s);
      }
      return found;
    });
  }

  async averageRowBytes(topic: core.TopicRecord, sample: number): Promise<number> {
    return this.#db.run("sampling row sizes", async () => {
      if (topic.format === 2) return this.#runs.averageRowBytes(topic, sample);
      let bytes = 0;
      let rows = 0;
      const per = Math.max(1, Math.ceil(sample / topic.shards));
      for (let shard = 0; shard < topic.shards; shard++) {
        const r = await this.#db.select(
          `SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(data) + LENGTH(meta)), 0) AS b FROM
             (SELECT data, meta FROM ${codec.shardTable(topic.id, shard)} ORDER BY seq DESC LIMIT ?) AS recent`,
          [per],
        );
        rows += Number(r[0]?.n ?? 0);
        bytes += Number(r[0]?.b ?? 0);
      }
      return rows === 0 ? 0 : bytes / rows;
    });
  }

  async deleteMessagesThrough(topic: core.TopicRecord, throughSeq: number, limit: number): Promise<number> {
    if (topic.format === 2) return this.#runs.deleteThrough(topic, throughSeq, limit);
    let deleted = 0;
    for (let shard = 0; shard < topic.shards; shard++) {
      // Bounded chunks: one short transaction each, so writers never wait long on it.
      deleted += await this.#db.fenced("deleting old messages", topic, META_SLOT, async (conn) => {
        const [res] = await conn.query<mysql.ResultSetHeader>(
          `DELETE FROM ${codec.shardTable(topic.id, shard)} WHERE seq <= ? ORDER BY seq LIMIT ?`,
          [throughSeq, limit],
        );
        return res.affectedRows;
      });
    }
    return deleted;
  }

  async recoverTail(topic: core.TopicRecord, watermark: number): Promise<number> {
    if (topic.format === 2)
      return this.#db.run("recovering the log tail", () => this.#runs.recoverTail(topic, watermark));
    const end = await this.#db.run("recovering the log tail", async () => {
      const seqs: number[] = [];
      for (let shard = 0; shard < topic.shards; shard++) {
        const rows = await this.#db.select(
          `SELECT seq FROM ${codec.shardTable(topic.id, shard)} WHERE seq > ? ORDER BY seq`,
          [watermark],
        );
        for (const r of rows) seqs.push(Number(r.seq));
      }
      seqs.sort((a, b) => a - b);
      return codec.contiguousEnd(watermark, seqs);
    });
    await this.#db.fenced("recovering the log tail", topic, META_SLOT, async (conn) => {
      for (let shard = 0; shard < topic.shards; shard++)
        await conn.query(`DELETE FROM ${codec.shardTable(topic.id, shard)} WHERE seq > ?`, [end]);
    });
    return end;
  }

  async scheduleMessages(
    topic: core.TopicRecord,
    entries: readonly { dueAt: number; message: core.NewMessage }[],
  ): Promise<number[]> {
    if (entries.length === 0) return [];
    const values = entries.map((e) => [e.dueAt, codec.encodeScheduledMeta(e.message), e.message.data]);
    const { first, step } = await this.#db.fenced("scheduling messages", topic, META_SLOT, async (conn) => {
      const [res] = await conn.query<mysql.ResultSetHeader>(
        `INSERT INTO ${codec.scheduleTable(topic.id)} (due_at, meta, data) VALUES ?`,
        [values],
      );
      const [inc] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT @@SESSION.auto_increment_increment AS step",
      );
      return { first: res.insertId, step: Number(inc[0]?.step ?? 1) };
    });
    // A multi-row INSERT's AUTO_INCREMENT ids are evenly spaced: writes of the topic's schedule
    // are one at a time (they share the fence row), and "simple inserts" get their ids in one
    // go. The spacing is auto_increment_increment, which Galera sets to the node count
    // (test/integration/mysql-galera.test.ts "schedule ids").
    return entries.map((_, i) => first + i * step);
  }

  async dueMessages(topic: core.TopicRecord, now: number, limit: number): Promise<core.ScheduledMessage[]> {
    return this.#db.run("reading due messages", async () =>
      (
        await this.#db.select(
          `SELECT id, due_at, meta, data FROM ${codec.scheduleTable(topic.id)} WHERE due_at <= ? ORDER BY due_at, id LIMIT ?`,
          [now, limit],
        )
      ).map((r) => codec.decodeScheduled(Number(r.id), Number(r.due_at), r.meta as Buffer, r.data as Buffer)),
    );
  }

  async scheduledIds(
    topic: core.TopicRecord,
    afterId: number,
    limit: number,
  ): Promise<{ id: number; messageId: string }[]> {
    return this.#db.run("reading schedule ids", async () =>
      (
        await this.#db.select(
          `SELECT id, meta FROM ${codec.scheduleTable(topic.id)} WHERE id > ? ORDER BY id LIMIT ?`,
          [afterId, limit],
        )
      ).map((r) => ({ id: Number(r.id), messageId: codec.scheduledMessageId(r.meta as Buffer) })),
    );
  }

  async deleteScheduled(topic: core.TopicRecord, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#db.fenced("deleting schedule entries", topic, META_SLOT, (conn) =>
      conn.query(`DELETE FROM ${codec.scheduleTable(topic.id)} WHERE id IN (?)`, [ids]),
    );
  }

  async scheduleSummary(topic: core.TopicRecord): Promise<{ count: number; nextDueAt: number }> {
    return this.#db.run("summarising the schedule", async () => {
      const r = (
        await this.#db.select(
          `SELECT COUNT(*) AS n, MIN(due_at) AS d FROM ${codec.scheduleTable(topic.id)}`,
          [],
        )
      )[0];
      return { count: Number(r?.n ?? 0), nextDueAt: r?.d === null || r?.d === undefined ? 0 : Number(r.d) };
    });
  }

  async lowestPointer(topic: core.TopicRecord): Promise<number> {
    return this.#db.run("reading the lowest pointer", async () => {
      const rows = await this.#db.select(codec.LOWEST_POINTER_SQL, [topic.id, topic.id]);
      return codec.lowestPointerOf(rows[0] as { subs: unknown; n: unknown; lo: unknown } | undefined);
    });
  }

  async loadPointer(topic: core.TopicRecord, subscription: string): Promise<core.PointerRecord | null> {
    return this.#db.run("loading a pointer", async () => {
      const rows = await this.#db.select(
        "SELECT ptr, state, dead_letters FROM nb_pointers WHERE topic_id = ? AND subscription = ?",
        [topic.id, subscription],
      );
      const r = rows[0];
      if (r === undefined) return null;
      const pointer = { subscription, ptr: Number(r.ptr), state: (r.state as Buffer | null) ?? null };
      const deadLetters = r.dead_letters as Buffer | null;
      return deadLetters === null ? pointer : { ...pointer, deadLetters };
    });
  }

  async savePointers(topic: core.TopicRecord, pointers: readonly core.PointerRecord[]): Promise<void> {
    if (pointers.length === 0) return;
    const values = pointers.map((p) => [
      topic.id,
      p.subscription,
      p.ptr,
      p.state === null ? null : Buffer.from(p.state),
      p.deadLetters === undefined ? null : Buffer.from(p.deadLetters),
    ]);
    // A NULL dead_letters means "unchanged" (see PointerRecord.deadLetters): none is stored as
    // an empty blob.
    await this.#db.fenced("saving pointers", topic, META_SLOT, (conn) =>
      conn.query(
        `INSERT INTO nb_pointers (topic_id, subscription, ptr, state, dead_letters) VALUES ?
         ON DUPLICATE KEY UPDATE ptr = VALUES(ptr), state = VALUES(state),
           dead_letters = COALESCE(VALUES(dead_letters), dead_letters)`,
        [values],
      ),
    );
  }

  /**
   * Makes this broker the topic's only writer before its tail is read: raises every fence row
   * of the topic to this broker's epoch, so a write by an earlier owner that has not committed
   * yet can no longer commit. Throws the lost-ownership error if a newer owner exists. Returns
   * the record naming the claim (TopicRecord.tenure, `--cluster`); `tenure` continues a claim
   * this broker holds of another copy of the topic (TopicMover).
   */
  async claimTopic(topic: core.TopicRecord, tenure?: number): Promise<core.TopicRecord> {
    const claimed = withTenure(topic, await this.#db.lease.claim(topic, tenure));
    // `--cluster`: the topic may have been deleted (or this copy dropped) by its owner between
    // this broker's look at the catalog and its claim; the claim then made lease rows for
    // nothing, which it would go on renewing. Checked after the claim: a delete proves its
    // owner's lease, so none can land after it.
    if (this.cluster !== undefined && !(await this.holds(topic))) {
      await this.abandonClaim(topic);
      throw new NerveBusError("not_found", `topic ${topic.name} does not exist (deleted meanwhile)`);
    }
    const slots = [META_SLOT, ...Array.from({ length: topic.shards }, (_, shard) => shard)];
    await this.#db.raiseFence(claimed, slots);
    return claimed;
  }

  /**
   * Cluster only: gives up this broker's claim of a copy of the topic that is gone (its owner
   * deleted the topic, or moved it and dropped this copy, between the claimer's look at the
   * catalog and its claim). The lease and fence rows the claim made are deleted, as dropping the copy
   * deleted its own, and this broker stops holding the lease; rows of a later epoch are left.
   */
  async abandonClaim(topic: core.TopicRecord): Promise<void> {
    const cluster = this.cluster;
    if (cluster === undefined) return;
    const epoch = cluster.epochOf(topic);
    cluster.forget(topic);
    await this.#db.run("giving up the claim of a dropped copy", async () => {
      await this.#db.query("DELETE FROM nb_fence WHERE topic_id = ? AND epoch = ?", [topic.id, epoch]);
      await this.#db.query("DELETE FROM nb_lease WHERE unit = ? AND owner = ? AND epoch = ?", [
        cluster.unitOf(topic),
        cluster.self,
        epoch,
      ]);
    });
  }

  /** Cluster only: whether this broker's lease of the topic is current (see ClusterLease.serves). */
  serves(topic: core.TopicRecord): boolean {
    return this.cluster === undefined || this.cluster.serves(topic);
  }

  /** Hands the topic's lease to whichever broker claims it next (cluster only; its state is saved). */
  async releaseTopic(topic: core.TopicRecord): Promise<void> {
    await this.cluster?.releaseTopic(topic);
  }

  /**
   * Answers when the database does and this broker's lease is current; throws UNAVAILABLE
   * otherwise (health turns NOT_SERVING).
   */
  async ping(): Promise<void> {
    this.#db.lease.check();
    await this.#db.run("pinging", () => this.#db.select("SELECT 1", []));
  }

  async close(): Promise<void> {
    await this.#db.lease.release();
    await this.#db.end().catch(() => undefined);
  }
}
