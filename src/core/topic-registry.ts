import type { CatalogLimits } from "./catalog-limits.js";
import { CorruptRowsError, invalidArgument, NerveBusError, storeOutOfSpace } from "./errors.js";
import { LeaseShare } from "./lease-share.js";
import type { StartPosition, SubscriptionConfig, TopicConfig, TopicRecord } from "./model.js";
import type { BrokerObserver, LogFn } from "./observer.js";
import { OutageLog } from "./outage-log.js";
import type { PackAppender } from "./pack-appender.js";
import { ReadAheadShare } from "./read-ahead.js";
import { RetentionJob } from "./retention.js";
import { DelayScheduler } from "./scheduler.js";
import { StatePersister } from "./state-persister.js";
import type { Store } from "./store.js";
import { type DeadLetter, Subscription } from "./subscription.js";
import { TailCachePool } from "./tail-cache-pool.js";
import { Topic } from "./topic.js";
import type { WriteBudget } from "./write-budget.js";
import { decodePriorityState, decodeWriterState, encodeWriterState, type IdHorizon } from "./writer-state.js";

/** A loaded topic with the parts that work on it. */
export interface TopicEntry {
  readonly topic: Topic;
  /** Moves its delayed messages into the log when due. */
  readonly scheduler: DelayScheduler;
  readonly retention: RetentionJob;
  /** Writes its subscriptions' state. */
  readonly state: StatePersister;
  /** Its subscriptions, loading or loaded. */
  readonly subscriptions: Map<string, Promise<Subscription>>;
  /** The same once loaded, for synchronous readers (gauges). */
  readonly loadedSubscriptions: Map<string, Subscription>;
}

/** What a topic's parts are built with (see BrokerOptions). */
/** Read-ahead of all lagging subscriptions when the options name none (core tests). */
const DEFAULT_READ_AHEAD_BYTES = 64 << 20;
const DEFAULT_LEASE_BYTES = 24 << 20;

export interface TopicRegistryOptions {
  readonly defaultShards: number;
  readonly topicDefaults: TopicConfig;
  readonly tailCacheBytes: number;
  /** All topics' tail caches together (0 or none: no bound beyond each topic's). */
  readonly tailCacheTotalBytes?: number;
  /** What lagging subscriptions read ahead from the store, all together (default 64 MiB). */
  readonly readAheadBytes?: number;
  /** What unacked delivered messages may count for, all subscriptions together (default 24 MiB). */
  readonly leaseBytes?: number;
  readonly confirmTimeoutMs: number;
  readonly statePersistIntervalMs: number;
  readonly retentionIntervalMs: number;
  /** What clients may create (checked before a topic or subscription is created). */
  readonly limits: CatalogLimits;
  readonly log: LogFn;
  readonly observer: BrokerObserver;
}

/** What the registry asks of the broker. */
export interface TopicRegistryHooks {
  /** Moves a subscription's dead letters to its dead-letter topic. */
  readonly deadLetter: (sub: Subscription, letters: DeadLetter[]) => Promise<void>;
  /** True once the broker shuts down. */
  readonly closing: () => boolean;
}

/** A new subscription's settings and where it starts. */
export interface NewSubscription {
  readonly config: SubscriptionConfig;
  readonly start: StartPosition;
  /** Who makes it (per-creator limits); undefined for the broker itself. */
  readonly by?: string;
}

/**
 * The topics and subscriptions this broker has loaded, each loaded once however many calls ask
 * for it at the same time. Loading a topic recovers it: the topic is claimed in the store
 * before anything of it is read (the fencing guarantee), then the log tail written by a
 * previous run is recovered, the writer watermark derived, and the dedup index rebuilt in the
 * background; loading a subscription restores its persisted floor and state.
 */
export class TopicRegistry {
  readonly #topics = new Map<string, Promise<TopicEntry>>();
  /** The same topics once loaded, for synchronous readers (gauges, fencing). */
  readonly #loaded = new Map<string, TopicEntry>();
  /** The bound on all topics' tail caches together, when there is one. */
  readonly #cachePool: TailCachePool | undefined;
  /** What lagging subscriptions read ahead from the store, all together. */
  readonly readAheadShare: ReadAheadShare;
  /** The unacked delivered messages of all subscriptions together. */
  readonly leaseShare: LeaseShare;

  constructor(
    private readonly store: Store,
    private readonly budget: WriteBudget,
    private readonly appender: PackAppender,
    private readonly options: TopicRegistryOptions,
    private readonly hooks: TopicRegistryHooks,
  ) {
    if ((options.tailCacheTotalBytes ?? 0) > 0)
      this.#cachePool = new TailCachePool(options.tailCacheTotalBytes!);
    this.readAheadShare = new ReadAheadShare(options.readAheadBytes ?? DEFAULT_READ_AHEAD_BYTES);
    this.leaseShare = new LeaseShare(options.leaseBytes ?? DEFAULT_LEASE_BYTES);
  }

  /** The loaded topics. */
  loaded(): IterableIterator<TopicEntry> {
    return this.#loaded.values();
  }

  /** Every topic whose load succeeded (after those in progress end). */
  async settled(): Promise<TopicEntry[]> {
    const entries = await Promise.allSettled(this.#topics.values());
    return entries.flatMap((e) => (e.status === "fulfilled" ? [e.value] : []));
  }

  /**
   * The topic named `name`, loading it on first use; created in the store when missing and
   * `create` is set, else NOT_FOUND. A failed load is forgotten, so the next call tries again.
   */
  topic(name: string, create: boolean, by?: string): Promise<TopicEntry> {
    let entry = this.#topics.get(name);
    if (entry === undefined) {
      entry = this.#loadTopic(name, create, by);
      this.#topics.set(name, entry);
      const loading = entry;
      // Unless forgotten meanwhile (deleted, lost to another broker, handed over).
      entry.then(
        (e) => {
          if (this.#topics.get(name) === loading) this.#loaded.set(name, e);
        },
        () => {
          if (this.#topics.get(name) === loading) this.#topics.delete(name);
        },
      );
    }
    return entry;
  }

  /** The topic's entry once loaded (no wait), if this broker has it. */
  loadedTopic(name: string): TopicEntry | undefined {
    return this.#loaded.get(name);
  }

  /** The topic's entry, loading or loaded, if this broker has it. */
  peek(name: string): Promise<TopicEntry> | undefined {
    return this.#topics.get(name);
  }

  /** Forgets a deleted topic: later calls load it again (and find it gone). */
  forget(name: string): void {
    this.#topics.delete(name);
    this.#loaded.delete(name);
  }

  /**
   * Stops a topic's parts in order: retention, schedule, writes (finished within `timeoutMs`),
   * subscriptions, then their state, written first when `persist` (shutdown; not on deletion).
   */
  async unload(entry: TopicEntry, timeoutMs: number, persist: boolean): Promise<void> {
    await entry.retention.stop();
    await entry.scheduler.close();
    await entry.topic.close(timeoutMs);
    const subs = await Promise.allSettled(entry.subscriptions.values());
    for (const s of subs) if (s.status === "fulfilled") s.value.close();
    await entry.state.close(persist);
  }

  /**
   * The subscription `name` of a loaded topic, loading it on first use; created (starting at
   * `create.start`) when missing and `create` is given, else NOT_FOUND.
   */
  subscription(
    entry: TopicEntry,
    name: string,
    create: NewSubscription | null,
  ): Promise<{ subscription: Subscription; created: boolean }> {
    const existing = entry.subscriptions.get(name);
    if (existing !== undefined) return existing.then((subscription) => ({ subscription, created: false }));
    let created = false;
    const loading = this.#loadSubscription(entry, name, create).then((r) => {
      created = r.created;
      return r.subscription;
    });
    entry.subscriptions.set(name, loading);
    loading.then(
      (sub) => entry.loadedSubscriptions.set(name, sub),
      () => entry.subscriptions.delete(name),
    );
    return loading.then((subscription) => ({ subscription, created }));
  }

  /** Forgets a deleted subscription and its pending state write. */
  forgetSubscription(entry: TopicEntry, sub: Subscription): void {
    entry.subscriptions.delete(sub.name);
    entry.loadedSubscriptions.delete(sub.name);
    entry.state.forget(sub);
  }

  async #loadTopic(name: string, create: boolean, by: string | undefined): Promise<TopicEntry> {
    const { store, options } = this;
    let found = await store.ensureTopic(name, null);
    if (found === null && create) {
      await options.limits.checkNewTopic(name, by);
      const config = by === undefined ? options.topicDefaults : { ...options.topicDefaults, createdBy: by };
      found = await store.ensureTopic(name, { shards: options.defaultShards, config });
      if (found?.created) options.limits.topicCreated(by);
    }
    if (found === null) throw new NerveBusError("not_found", `topic ${name} does not exist`);
    // Before anything of the topic is read: a write of a previous owner still in flight can no
    // longer commit, so the tail read below is the whole truth.
    const record = await store.claimTopic(found.topic);
    let watermark = 0;
    let ids: IdHorizon = { lastIdSeq: undefined, persistedWatermark: 0 };
    if (!record.config.ephemeral) {
      const pointer = await store.loadPointer(record, "");
      const persisted = pointer?.ptr ?? 0;
      ids = {
        lastIdSeq: decodeWriterState(pointer?.state ?? null),
        persistedWatermark: persisted,
        lastPrioritySeq: decodePriorityState(pointer?.state ?? null),
      };
      watermark = await store.recoverTail(record, persisted);
      if (watermark !== persisted) {
        // The recovered rows have not been looked at: until the topic has, ids and priorities
        // may be anywhere up to the new watermark.
        const state =
          ids.lastIdSeq === undefined
            ? null
            : encodeWriterState(watermark, ids.lastPrioritySeq === undefined ? undefined : watermark);
        await store.savePointers(record, [{ subscription: "", ptr: watermark, state }]);
      }
    }
    const topic = new Topic(
      record,
      watermark,
      store,
      this.budget,
      {
        tailCacheBytes: options.tailCacheBytes,
        ...(this.#cachePool === undefined ? {} : { cachePool: this.#cachePool }),
        readAheadShare: this.readAheadShare,
        leaseShare: this.leaseShare,
        log: options.log,
        observer: options.observer,
      },
      ids,
    );
    if (watermark > 0) topic.publishedThrough(await lastPublishTime(store, record, watermark));
    topic.schema = await store.loadTopicSchema(record);
    if (!record.config.ephemeral) {
      topic.startIndexRebuild((await store.scheduleSummary(record)).count > 0);
      topic.startPriorityRebuild(await this.#lowestFloor(record));
    }
    const scheduler = new DelayScheduler(
      topic,
      store,
      async (messages, scheduleIds) => {
        await this.appender.appendNow(topic, messages, scheduleIds);
      },
      options.log,
    );
    const subscriptions = new Map<string, Promise<Subscription>>();
    const entry: TopicEntry = {
      topic,
      scheduler,
      retention: new RetentionJob(topic, store, subscriptions, {
        intervalMs: options.retentionIntervalMs,
        log: options.log,
        closing: this.hooks.closing,
      }),
      state: new StatePersister(topic, store, {
        intervalMs: options.statePersistIntervalMs,
        log: options.log,
      }),
      subscriptions,
      loadedSubscriptions: new Map(),
    };
    if (!record.config.ephemeral) {
      // The scheduler moves messages only once the index of already-moved ones is rebuilt.
      void topic.indexesReady
        .then(() => scheduler.start())
        .catch((err: unknown) =>
          options.log("warn", "starting the delay scheduler failed", { topic: name, err: String(err) }),
        );
    }
    entry.retention.arm();
    if (found.created)
      options.log("info", "topic created", { topic: name, id: record.id, shards: record.shards });
    return entry;
  }

  async #loadSubscription(
    entry: TopicEntry,
    name: string,
    create: NewSubscription | null,
  ): Promise<{ subscription: Subscription; created: boolean }> {
    const topic = entry.topic;
    let found = await this.store.ensureSubscription(topic.record, name, null);
    if (found === null && create !== null) {
      await this.options.limits.checkNewSubscription(topic.record, name, create.by);
      const config = create.by === undefined ? create.config : { ...create.config, createdBy: create.by };
      found = await this.store.ensureSubscription(topic.record, name, config);
      if (found?.created) this.options.limits.subscriptionCreated(create.by);
    }
    if (found === null)
      throw new NerveBusError(
        "not_found",
        `subscription ${name} on topic ${topic.record.name} does not exist`,
      );
    let pointer = topic.ephemeral ? null : await this.store.loadPointer(topic.record, name);
    if (pointer === null) {
      const floor = await this.#startFloor(topic, create?.start ?? { kind: "latest" });
      pointer = { subscription: name, ptr: floor, state: null };
      if (!topic.ephemeral) await this.store.savePointers(topic.record, [pointer]);
    }
    // Failed reads are tried again every second and failed dead-lettering at the next redelivery:
    // logged as an outage, not a line per attempt (a store outage of an hour gave thousands of
    // lines per subscription).
    const outage = new OutageLog(
      this.options.log,
      {
        started: "subscription work failed; retrying",
        ongoing: "subscription work still fails; retrying",
        ended: "subscription work succeeds again",
      },
      { topic: topic.record.name, subscription: name },
    );
    const subscription = new Subscription(topic, found.subscription, pointer, {
      dirty: (sub) => {
        if (!topic.ephemeral) entry.state.markDirty(sub);
      },
      deadLetter: this.hooks.deadLetter,
      error: (err) => {
        if (err instanceof CorruptRowsError)
          this.options.log(
            "error",
            "subscription cannot read corrupt stored messages; its streams end with DATA_LOSS",
            {
              topic: topic.record.name,
              subscription: name,
              err: err.message,
            },
          );
        else if (!storeOutOfSpace(err)) outage.failed(err);
      },
      recovered: () => outage.recovered(),
    });
    return { subscription, created: found.created };
  }

  /**
   * The lowest persisted floor of the topic's subscriptions (0 when it has none: a subscription
   * made later may start at the earliest message); nothing at or below it is delivered again.
   */
  #lowestFloor(record: TopicRecord): Promise<number> {
    return this.store.lowestPointer(record);
  }

  /** The floor of a new subscription: everything at or below it counts as acked. */
  async #startFloor(topic: Topic, start: StartPosition): Promise<number> {
    switch (start.kind) {
      case "latest":
        return topic.watermark;
      case "earliest": {
        // The watermark before the read: a pack committed while the store is asked is above it,
        // and must not be skipped (a floor taken after the read was past it).
        const watermark = topic.watermark;
        const first = topic.ephemeral ? topic.cache.firstSeq : await this.store.firstSeq(topic.record);
        return first === 0 ? watermark : first - 1;
      }
      case "seq":
        if (start.seq < 1) throw invalidArgument("subscribe.start_seq", "must be ≥ 1");
        return Math.min(start.seq - 1, topic.watermark);
      case "time": {
        const seq = await topic.seqAtTime(start.time);
        return seq === 0 ? topic.watermark : seq - 1;
      }
    }
  }
}

/**
 * The publish time of the message at `watermark`, the last one stored (0 when retention took
 * it, or its row is corrupt: a topic with corrupt rows still loads, see CorruptRowsError).
 */
async function lastPublishTime(store: Store, record: TopicRecord, watermark: number): Promise<number> {
  try {
    const ids = await store.readIds(record, watermark, watermark);
    return ids.at(-1)?.publishTime ?? 0;
  } catch (err) {
    if (err instanceof CorruptRowsError) return 0;
    throw err;
  }
}
