import {
  type HostInfo,
  type LogFormat,
  type LoggedIds,
  type LogMessage,
  type MoveReport,
  NerveBusError,
  type NewMessage,
  type OwnershipState,
  type PointerRecord,
  type ReadOnlyState,
  readOnlyPerServer,
  type ScheduledMessage,
  type SpaceState,
  type Store,
  type StoreCapabilities,
  type SubscriptionConfig,
  type SubscriptionRecord,
  type TopicConfig,
  type TopicPlacement,
  type TopicRecord,
  type TopicSchema,
  withTenure,
} from "../../core/index.js";
import type { IndexedRun } from "../../wire/index.js";
import { newBrokerIdentity } from "../mysql/cluster-lease.js";
import type { MysqlStore } from "../mysql/mysql-store.js";
import { type HostOptions, HostSet } from "./host-set.js";
import { MultiCluster } from "./multi-cluster.js";
import { type HostSlot, PlacedTopic } from "./placed-topic.js";
import { PlacementCatalog, type PlacementRow } from "./placement-catalog.js";
import type { HostUrl } from "./store-urls.js";
import { TopicMover } from "./topic-mover.js";

type Call<T> = (store: MysqlStore, local: TopicRecord, placed: PlacedTopic) => Promise<T>;

/**
 * A store over several MySQL databases (`--store` with several URLs): each topic lives in one of
 * them, as the placement catalog in the first says; every call on a topic goes to that database's
 * MysqlStore, which keeps the topic's tables, lease and fence rows exactly as with one database.
 * New topics go to the reachable database holding the fewest topics. The core sees the placement
 * row's id, which a move does not change; each database's own ids stay in here. With `--cluster`
 * every database runs its own cluster lease under one broker id, joined by MultiCluster.
 */
export class MultiStore implements Store, TopicPlacement {
  readonly capabilities: StoreCapabilities;
  readonly placement: TopicPlacement = this;
  /** Set with `--cluster`: each topic owned by one broker, by a lease in the topic's database. */
  readonly cluster: MultiCluster | undefined;
  readonly #placed = new Map<string, PlacedTopic>();
  /** Topics whose writes wait (a move copying their tail); resolved when they may go on. */
  readonly #gates = new Map<string, Promise<void>>();
  /** Creations, deletions and moves of a name, one at a time. */
  readonly #changing = new Map<string, Promise<unknown>>();

  private constructor(
    private readonly set: HostSet,
    private readonly catalog: PlacementCatalog,
    private readonly log: HostOptions["log"],
  ) {
    const first = set.slots[0]!.store!.capabilities;
    // The tightest of the open databases' packet limits: a topic may move to any of them.
    const open = set.slots.flatMap((s) => (s.store ? [s.store.capabilities] : []));
    this.capabilities = { ...first, maxInsertBytes: Math.min(...open.map((c) => c.maxInsertBytes)) };
    const lease = set.slots[0]!.store!.cluster;
    if (lease !== undefined) {
      const cluster = new MultiCluster(
        { id: lease.self, secret: lease.secret },
        () => set.slots.flatMap((s) => (s.store?.cluster ? [s.store.cluster] : [])),
        (topic) => this.#placed.get(topic)?.host.store?.cluster,
      );
      set.onLateOpen = (store) => (store.cluster ? cluster.attach(store.cluster) : Promise.resolve());
      this.cluster = cluster;
    }
  }

  /**
   * Opens every database (see HostSet), prepares the placement catalog in the first, and on the
   * first start with several (an empty catalog) takes in the topics each database already holds
   * (every database must then be reachable, and no name in two). Refuses to start when a topic
   * is placed on a database `--store` no longer names.
   */
  static async open(urls: readonly HostUrl[], options: HostOptions): Promise<MultiStore> {
    // One id for this broker in every database's cluster (see MultiCluster).
    const hosts = await HostSet.open(
      urls,
      options.cluster ? { ...options, broker: newBrokerIdentity() } : options,
    );
    try {
      const catalog = new PlacementCatalog(hosts.slots[0]!.store!.fencedPool, !options.cluster);
      await catalog.prepare();
      let rows = await catalog.list();
      if (rows.length === 0) rows = await MultiStore.#adopt(hosts, catalog);
      const unknown = rows.find((r) => hosts.slot(r.host) === undefined);
      if (unknown !== undefined)
        throw new NerveBusError(
          "failed_precondition",
          `topic ${unknown.name} lives on MySQL database ${unknown.host}, which --store does not name; add its URL back (move topics off a database with move-topic before removing it)`,
        );
      return new MultiStore(hosts, catalog, options.log);
    } catch (err) {
      await hosts.close();
      throw err;
    }
  }

  static async #adopt(hosts: HostSet, catalog: PlacementCatalog): Promise<PlacementRow[]> {
    const found = new Map<string, string>();
    for (const slot of hosts.slots) {
      const store = hosts.store(slot);
      for (const t of await store.listTopics()) {
        const other = found.get(t.name);
        if (other !== undefined)
          throw new NerveBusError(
            "failed_precondition",
            `topic ${t.name} exists in two MySQL databases of --store, ${other} and ${slot.key}; keep one (drop the other's nb_topics row and tables) and start again`,
          );
        found.set(t.name, slot.key);
      }
    }
    return catalog.place([...found].map(([name, host]) => ({ name, host })));
  }

  async hosts(): Promise<HostInfo[]> {
    const rows = await this.catalog.list();
    return this.set.slots.map((s) => ({
      key: s.key,
      // Open and its lease current: a database lost while serving stops counting too.
      reachable: s.store?.ownership().valid === true,
      topics: rows.filter((r) => r.host === s.key).length,
    }));
  }

  ownership(): OwnershipState {
    return this.set.ownership();
  }

  /**
   * Answers when the first database (the placement catalog) does. Another database down fails
   * its own topics only, so it does not turn the whole broker's health NOT_SERVING.
   */
  async ping(): Promise<void> {
    await this.set.store(this.set.slots[0]!).ping();
  }

  /** The topic's database's (a topic not loaded yet has written nothing to refuse). */
  outOfSpace(topic: TopicRecord): NerveBusError | undefined {
    const placed = this.#placed.get(topic.name);
    return placed?.host.store?.outOfSpace(placed.local);
  }

  /** Each open database's, in `--store` order. */
  spaceState(): SpaceState[] {
    return this.set.slots.flatMap((s) => s.store?.spaceState() ?? []);
  }

  /** Each server of the open databases, once (see readOnlyPerServer). */
  readOnlyState(): ReadOnlyState[] {
    return readOnlyPerServer(this.set.slots.flatMap((slot) => slot.store?.readOnlyState() ?? []));
  }

  async close(): Promise<void> {
    // A handover writes through this store as a whole (its topic's state, then its lease): the
    // databases are closed (one at a time, each taken out of use first) once none is in progress.
    await this.cluster?.stopHandovers();
    await this.set.close();
  }

  ensureTopic(
    name: string,
    create: { shards: number; config: TopicConfig; format?: LogFormat } | null,
  ): Promise<{ topic: TopicRecord; created: boolean } | null> {
    return this.#oneAtATime(name, async () => {
      // With `--cluster` a topic another broker owns is looked up afresh: its owner may have
      // changed its settings, or moved it, since this broker cached it, and a broker taking a
      // topic over loads it from this record.
      const cached = this.#placed.get(name);
      if (
        cached !== undefined &&
        this.cluster !== undefined &&
        cached.host.store?.serves(cached.local) !== true
      )
        this.#placed.delete(name);
      const placed = await this.#lookup(name);
      if (placed !== undefined) return { topic: placed.record, created: false };
      if (create === null) return null;
      const slot = await this.#leastLoaded();
      const store = this.set.store(slot);
      // A copy a crash left here (a move or deletion cut short) is not this topic: a new topic starts empty.
      const stale = await store.ensureTopic(name, null);
      if (stale !== null) await store.dropCopy(stale.topic);
      const made = await store.ensureTopic(name, create);
      if (made === null) throw new NerveBusError("internal", `topic ${name} was not created on ${slot.key}`);
      const [row] = await this.catalog.place([{ name, host: slot.key }]);
      if (row === undefined || row.host !== slot.key)
        throw new NerveBusError("internal", `topic ${name} was placed elsewhere meanwhile`);
      const entry = new PlacedTopic(row.id, slot, made.topic);
      this.#placed.set(name, entry);
      this.log("info", "topic placed", { topic: name, host: slot.key });
      return { topic: entry.record, created: true };
    });
  }

  /**
   * The topics of the reachable databases: one out of reach would otherwise stop every caller
   * (creating a topic counts them, the status page lists them), so its topics are left out until
   * it answers again. Reachable as hosts() says: open and its lease current, since a frozen
   * database's query hangs rather than fails.
   */
  async listTopics(): Promise<TopicRecord[]> {
    const rows = await this.catalog.list();
    const out: TopicRecord[] = [];
    for (const slot of this.set.slots) {
      const mine = new Map(rows.filter((r) => r.host === slot.key).map((r) => [r.name, r.id]));
      if (mine.size === 0 || slot.store?.ownership().valid !== true) continue;
      for (const t of await this.set.store(slot).listTopics()) {
        const id = mine.get(t.name);
        if (id !== undefined) out.push({ ...t, id });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async updateTopicConfig(topic: TopicRecord, config: TopicConfig): Promise<TopicRecord> {
    return this.#call(topic, true, async (store, local) => {
      const updated = await store.updateTopicConfig(local, config);
      const placed = this.#placed.get(topic.name);
      if (placed !== undefined) placed.local = withTenure(updated, undefined);
      return { ...updated, id: topic.id };
    });
  }

  deleteTopic(topic: TopicRecord): Promise<void> {
    return this.#oneAtATime(topic.name, async () => {
      const placed = await this.#lookup(topic.name);
      if (placed === undefined) return;
      const store = this.set.store(placed.host);
      this.#placed.delete(topic.name);
      await placed.idle("calls");
      // The topic's own fenced delete first, as a move seals first: a broker whose lease lapsed
      // unnoticed fails here (UNAVAILABLE) and nothing changes, where removing the catalog row
      // first would take the topic from its new owner. A crash after it leaves a row without
      // the topic, which the next lookup removes (see #lookup).
      await store.deleteTopic(withTenure(placed.local, topic.tenure));
      await this.catalog.remove(placed.id);
    });
  }

  loadTopicSchema(topic: TopicRecord): Promise<TopicSchema | null> {
    return this.#call(topic, false, (s, t) => s.loadTopicSchema(t));
  }
  saveTopicSchema(topic: TopicRecord, schema: TopicSchema | null): Promise<void> {
    return this.#call(topic, true, (s, t) => s.saveTopicSchema(t, schema));
  }
  ensureSubscription(topic: TopicRecord, name: string, create: SubscriptionConfig | null) {
    return this.#call(topic, create !== null, async (s, t) => {
      const found = await s.ensureSubscription(t, name, create);
      return found && { ...found, subscription: { ...found.subscription, topicId: topic.id } };
    });
  }
  listSubscriptions(topic: TopicRecord): Promise<SubscriptionRecord[]> {
    return this.#call(topic, false, async (s, t) =>
      (await s.listSubscriptions(t)).map((r) => ({ ...r, topicId: topic.id })),
    );
  }
  updateSubscriptionConfig(topic: TopicRecord, name: string, config: SubscriptionConfig): Promise<void> {
    return this.#call(topic, true, (s, t) => s.updateSubscriptionConfig(t, name, config));
  }
  deleteSubscription(topic: TopicRecord, name: string): Promise<void> {
    return this.#call(topic, true, (s, t) => s.deleteSubscription(t, name));
  }
  insertMessages(topic: TopicRecord, shard: number, rows: readonly LogMessage[]): Promise<void> {
    return this.#call(topic, true, (s, t) => s.insertMessages(t, shard, rows));
  }
  insertRuns(topic: TopicRecord, shard: number, runs: readonly IndexedRun[]): Promise<void> {
    return this.#call(topic, true, (s, t) => s.insertRuns(t, shard, runs));
  }
  readMessages(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LogMessage[]> {
    return this.#call(topic, false, (s, t) => s.readMessages(t, fromSeq, toSeq));
  }
  readRuns(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<IndexedRun[] | undefined> {
    return this.#call(topic, false, (s, t) => s.readRuns(t, fromSeq, toSeq));
  }
  readIds(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LoggedIds[]> {
    return this.#call(topic, false, (s, t) => s.readIds(t, fromSeq, toSeq));
  }
  firstSeq(topic: TopicRecord): Promise<number> {
    return this.#call(topic, false, (s, t) => s.firstSeq(t));
  }
  averageRowBytes(topic: TopicRecord, sample: number): Promise<number> {
    return this.#call(topic, false, (s, t) => s.averageRowBytes(t, sample));
  }
  deleteMessagesThrough(topic: TopicRecord, throughSeq: number, limit: number): Promise<number> {
    return this.#call(topic, true, (s, t) => s.deleteMessagesThrough(t, throughSeq, limit));
  }
  recoverTail(topic: TopicRecord, watermark: number): Promise<number> {
    return this.#call(topic, true, (s, t) => s.recoverTail(t, watermark));
  }
  scheduleMessages(topic: TopicRecord, entries: readonly { dueAt: number; message: NewMessage }[]) {
    return this.#call(topic, true, (s, t) => s.scheduleMessages(t, entries));
  }
  dueMessages(topic: TopicRecord, now: number, limit: number): Promise<ScheduledMessage[]> {
    return this.#call(topic, false, (s, t) => s.dueMessages(t, now, limit));
  }
  scheduledIds(
    topic: TopicRecord,
    afterId: number,
    limit: number,
  ): Promise<{ id: number; messageId: string }[]> {
    return this.#call(topic, false, (s, t) => s.scheduledIds(t, afterId, limit));
  }
  deleteScheduled(topic: TopicRecord, ids: readonly number[]): Promise<void> {
    return this.#call(topic, true, (s, t) => s.deleteScheduled(t, ids));
  }
  scheduleSummary(topic: TopicRecord): Promise<{ count: number; nextDueAt: number }> {
    return this.#call(topic, false, (s, t) => s.scheduleSummary(t));
  }
  lowestPointer(topic: TopicRecord): Promise<number> {
    return this.#call(topic, false, (s, t) => s.lowestPointer(t));
  }

  loadPointer(topic: TopicRecord, subscription: string): Promise<PointerRecord | null> {
    return this.#call(topic, false, (s, t) => s.loadPointer(t, subscription));
  }
  savePointers(topic: TopicRecord, pointers: readonly PointerRecord[]): Promise<void> {
    return this.#call(topic, true, (s, t) => s.savePointers(t, pointers));
  }
  /**
   * With `--cluster` where this broker last saw the topic is checked first (claims are rare):
   * another broker may have moved it since (the catalog row says so, or the move sealed the copy
   * here and died before its switch), and a claim of the old copy would fail; looked up afresh,
   * the topic is found where it is now (see #lookup). The move may also end between that look and
   * the lease take, after which the copy claimed is gone: its lease and fence rows (made by the
   * claim, and removed by nothing else) are deleted again, and the caller gets UNAVAILABLE.
   */
  async claimTopic(topic: TopicRecord): Promise<TopicRecord> {
    const cached = this.#placed.get(topic.name);
    if (this.cluster !== undefined && cached !== undefined && !this.#gates.has(topic.name)) {
      const row = await this.catalog.get(topic.name);
      const here = row?.host === cached.host.key;
      const sealed = here ? await cached.host.store?.movedTo(cached.local) : undefined;
      if ((!here || sealed !== undefined) && this.#placed.get(topic.name) === cached)
        this.#placed.delete(topic.name);
    }
    return this.#call(topic, true, async (store, local, placed) => {
      let claimed: TopicRecord;
      try {
        claimed = await store.claimTopic(local);
      } catch (err) {
        // The database's own check found this copy gone (and gave the claim up): where the
        // topic is now decides the answer, as below.
        if (this.cluster === undefined || !(err instanceof NerveBusError && err.code === "not_found"))
          throw err;
        return this.#claimedGone(topic.name, placed);
      }
      // The database's claim has checked that its copy is still there; the catalog may have
      // switched the topic elsewhere meanwhile.
      if (this.cluster === undefined || (await this.catalog.get(topic.name))?.host === placed.host.key)
        return withTenure(topic, claimed.tenure);
      await store.abandonClaim(local);
      return this.#claimedGone(topic.name, placed);
    });
  }

  /** After a claim of a copy that is gone: NOT_FOUND if the topic is, else the move's UNAVAILABLE. */
  async #claimedGone(name: string, placed: PlacedTopic): Promise<never> {
    if (this.#placed.get(name) === placed) this.#placed.delete(name);
    const now = await this.#lookup(name);
    if (now === undefined) throw new NerveBusError("not_found", `topic ${name} does not exist`);
    throw this.#moved(name, placed, now);
  }

  /** Cluster only: whether this broker's lease of the topic, in its database, is current. */
  serves(topic: TopicRecord): boolean {
    if (this.cluster === undefined) return true;
    const placed = this.#placed.get(topic.name);
    return placed?.host.store?.serves(withTenure(placed.local, topic.tenure)) ?? false;
  }

  /** Cluster only: hands the topic's lease, in its database, to the next broker that claims it. */
  async releaseTopic(topic: TopicRecord): Promise<void> {
    const placed = this.#placed.get(topic.name);
    await placed?.host.store?.releaseTopic(withTenure(placed.local, topic.tenure));
  }

  moveTopic(name: string, host: string, tenure?: number): Promise<MoveReport> {
    const target = this.set.slot(host);
    if (target === undefined)
      throw new NerveBusError(
        "invalid_argument",
        `to_host: ${JSON.stringify(host)} is not a database of --store; they are ${this.set.slots.map((s) => s.key).join(", ")}`,
      );
    return this.#oneAtATime(name, async () => {
      const placed = await this.#lookup(name);
      if (placed === undefined) throw new NerveBusError("not_found", `topic ${name} does not exist`);
      const mover = new TopicMover(this.set, placed, target, this.log, tenure);
      if (placed.host === target) {
        await mover.dropCopies(this.set.slots.filter((s) => s !== target));
        return { from: target.key, to: target.key, moved: false, rowsCopied: 0 };
      }
      const rowsCopied = await mover.move({
        pause: async () => {
          let open: () => void = () => undefined;
          this.#gates.set(name, new Promise<void>((r) => (open = r)));
          await placed.idle("writes");
          return () => {
            this.#gates.delete(name);
            open();
          };
        },
        switchTo: async (local) => {
          try {
            await this.catalog.switchHost(name, placed.host.key, target.key);
          } catch (err) {
            // The COMMIT may have landed with its answer lost: calls look the topic up in the
            // catalog again, which tells (both copies are the same up to here).
            this.#placed.delete(name);
            throw err;
          }
          this.#placed.set(name, new PlacedTopic(placed.id, target, local));
        },
      });
      return { from: placed.host.key, to: target.key, moved: true, rowsCopied };
    });
  }

  /** Where a topic lives, from the cache or the catalog; undefined when it is not placed. */
  async #lookup(name: string): Promise<PlacedTopic | undefined> {
    const cached = this.#placed.get(name);
    if (cached !== undefined) return cached;
    let row = await this.catalog.get(name);
    if (row === undefined) return undefined;
    let slot = this.set.slot(row.host);
    if (slot === undefined)
      throw new NerveBusError("internal", `topic ${name} lives on unknown host ${row.host}`);
    let local = await this.set.store(slot).ensureTopic(name, null);
    if (local === null) {
      // Only a deletion cut short between its fenced delete and the catalog row leaves this.
      await this.catalog.remove(row.id);
      return undefined;
    }
    const movedTo = await this.set.store(slot).movedTo(local.topic);
    if (movedTo !== undefined) {
      // A move sealed this copy and ended before its switch (its broker died or lost the
      // answer): the target copy holds everything confirmed, so finishing the switch is safe.
      await this.catalog.switchHost(name, row.host, movedTo).catch((err: unknown) => {
        if (!(err instanceof NerveBusError && err.code === "failed_precondition")) throw err;
      });
      this.log("info", "finished a topic's move that was cut short after its seal", {
        topic: name,
        to: movedTo,
      });
      row = await this.catalog.get(name);
      slot = row === undefined ? undefined : this.set.slot(row.host);
      if (row === undefined || slot === undefined) return undefined;
      local = await this.set.store(slot).ensureTopic(name, null);
      if (local === null)
        throw new NerveBusError(
          "internal",
          `topic ${name} is placed on ${slot.key}, which has no such topic`,
        );
    }
    const placed = this.#placed.get(name) ?? new PlacedTopic(row.id, slot, local.topic);
    this.#placed.set(name, placed);
    return placed;
  }

  /**
   * Runs a call on the database the topic lives in. A write waits while a move copies the
   * topic's tail, then goes to wherever the topic is once the move ends.
   */
  async #call<T>(topic: TopicRecord, write: boolean, call: Call<T>): Promise<T> {
    for (;;) {
      const gate = write ? this.#gates.get(topic.name) : undefined;
      if (gate !== undefined) {
        await gate;
        continue;
      }
      const placed = await this.#lookup(topic.name);
      if (placed === undefined) throw new NerveBusError("not_found", `topic ${topic.name} does not exist`);
      // Looked up asynchronously: a move may have closed the gate or switched meanwhile.
      if ((write && this.#gates.has(topic.name)) || this.#placed.get(topic.name) !== placed) continue;
      const store = this.set.store(placed.host);
      let answer: T;
      try {
        // The host's record, carrying the claim of the caller's (see TopicRecord.tenure).
        const local = withTenure(placed.local, topic.tenure);
        answer = await placed.track(write, () => call(store, local, placed));
      } catch (err) {
        // Another broker moved the topic and dropped the old copy's tables before this one
        // refreshed its cached place (which it does when it claims the topic). The caller gets
        // UNAVAILABLE, not INTERNAL, and its retry starts over from the catalog: the call is
        // not carried on in the new place here, since what came before it (a topic's claim,
        // its load) went to the old one.
        if (!isMissingTable(err) || this.#placed.get(topic.name) !== placed) throw err;
        this.#placed.delete(topic.name);
        const now = await this.#lookup(topic.name);
        if (now === undefined || now.host === placed.host) throw err;
        throw this.#moved(topic.name, placed, now, err);
      }
      if (write || (await this.#stillPlaced(topic.name, placed))) return answer;
      // A read of a topic another broker owns, from a copy it has moved away: asked again
      // where the topic is now (a read has nothing before it that went to the old copy).
      if (this.#placed.get(topic.name) === placed) this.#placed.delete(topic.name);
      const now = await this.#lookup(topic.name);
      if (now !== undefined) this.#logStale(topic.name, placed, now);
    }
  }

  /**
   * Whether a read's answer from `placed` stands. With `--cluster` the owner of a topic may move
   * it while this broker, which does not own it, keeps its old place cached (a broker that owned
   * it before, or looked at its subscriptions). The old copy's log tables are dropped, so a read
   * of them fails (see #call); but its catalog rows go from tables every topic shares, so a read
   * of its subscriptions, pointers or schema finds none and fails nothing. Checked after the
   * read, so a move that ends during it is seen too: a topic this broker holds the lease of
   * cannot move meanwhile (the move's seal proves its owner's lease); any other is checked
   * against the placement catalog and the copy the read went to.
   */
  async #stillPlaced(name: string, placed: PlacedTopic): Promise<boolean> {
    const store = placed.host.store;
    if (this.cluster === undefined || store === undefined || store.serves(placed.local)) return true;
    return this.#standsAt(name, placed, store);
  }

  /** Whether the placement catalog still puts the topic where `placed` is, and that copy is there. */
  async #standsAt(name: string, placed: PlacedTopic, store: MysqlStore): Promise<boolean> {
    const row = await this.catalog.get(name);
    return row?.host === placed.host.key && (await store.holds(placed.local));
  }

  /**
   * The answer to a call that went to a copy of the topic another broker moved away: UNAVAILABLE,
   * and the client's retry starts over from the catalog.
   */
  #moved(name: string, was: PlacedTopic, now: PlacedTopic, cause?: unknown): NerveBusError {
    this.#logStale(name, was, now);
    return new NerveBusError(
      "unavailable",
      `topic ${name} was moved from ${was.host.key} to ${now.host.key} by another broker; retry`,
      cause === undefined ? undefined : { cause },
    );
  }

  #logStale(name: string, was: PlacedTopic, now: PlacedTopic): void {
    this.log("info", "a topic moved by another broker: its cached place was stale", {
      topic: name,
      from: was.host.key,
      to: now.host.key,
    });
  }

  /** The reachable database with the fewest topics placed on it (the first of equals). */
  async #leastLoaded(): Promise<HostSlot> {
    const infos = await this.hosts();
    let best: HostSlot | undefined;
    let fewest = Number.POSITIVE_INFINITY;
    for (const [i, info] of infos.entries()) {
      if (info.reachable && info.topics < fewest) {
        best = this.set.slots[i];
        fewest = info.topics;
      }
    }
    if (best === undefined)
      throw new NerveBusError("unavailable", "no MySQL database of --store is reachable");
    return best;
  }

  #oneAtATime<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#changing.get(name) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(fn);
    this.#changing.set(name, run);
    void run
      .finally(() => {
        if (this.#changing.get(name) === run) this.#changing.delete(name);
      })
      .catch(() => undefined);
    return run;
  }
}

/** Whether a store call failed because a table is gone (MySQL's ER_NO_SUCH_TABLE, 1146). */
function isMissingTable(err: unknown): boolean {
  const cause = err instanceof Error ? (err.cause as { errno?: number } | undefined) : undefined;
  return cause?.errno === 1146 || (err as { errno?: number } | undefined)?.errno === 1146;
}
