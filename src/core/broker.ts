import { newTraceparent, traceIdOf } from "../wire/index.js";
import { Consumer, type ConsumerSink, type Window } from "./consumer.js";
import { invalidArgument, NerveBusError } from "./errors.js";
import {
  checkPack,
  checkShards,
  checkSubscriptionConfig,
  checkTopicConfig,
  checkWindow,
  type PublishLimits,
  validateName,
} from "./limits.js";
import type {
  NewMessage,
  StartPosition,
  SubscriptionConfig,
  SubscriptionRecord,
  TopicConfig,
  TopicRecord,
} from "./model.js";
import { messageBytes } from "./model.js";
import { type BrokerObserver, NO_OBSERVER } from "./observer.js";
import { ReadAheadShare } from "./read-ahead.js";
import { DelayScheduler } from "./scheduler.js";
import type { Store } from "./store.js";
import { type DeadLetter, Subscription, type SubscriptionStats } from "./subscription.js";
import { TailCachePool } from "./tail-cache-pool.js";
import { decodeWriterState, encodeWriterState, type IdHorizon, type MessageOutcome, Topic } from "./topic.js";
import { WriteBudget } from "./write-budget.js";

/** Logging hook: the core never picks a logger. */
export type LogFn = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface BrokerOptions extends PublishLimits {
  /** Shards of a topic created without an explicit count. */
  readonly defaultShards: number;
  /** Create topics and subscriptions on first use. */
  readonly autoCreate: boolean;
  /** Bytes the write path may buffer before SendPack waits (then RESOURCE_EXHAUSTED). */
  readonly writeBufferBytes: number;
  /** Bytes of recent messages kept in memory per topic for subscribers that keep up. */
  readonly tailCacheBytes: number;
  /** All topics' tail caches together (0: no bound beyond each topic's). */
  readonly tailCacheTotalBytes?: number;
  /** How long a pack may wait for its confirm when the call has no deadline. */
  readonly confirmTimeoutMs: number;
  /** How often dirty subscription state is persisted (coalescing acks). */
  readonly statePersistIntervalMs: number;
  /** How often retention runs per topic. */
  readonly retentionIntervalMs: number;
  readonly topicDefaults: TopicConfig;
  readonly subscriptionDefaults: SubscriptionConfig;
  readonly log: LogFn;
  /** Traces and metrics (default: none). */
  readonly observer?: BrokerObserver;
}

/** The answer to a SendPack. */
export interface PublishResult {
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Per message, in pack order. */
  readonly results: readonly MessageOutcome[];
}

/** What a consumer gets back when it attaches. */
export interface Attachment {
  readonly consumer: Consumer;
  readonly subscription: Subscription;
  readonly created: boolean;
  readonly ackDeadlineMs: number;
}

/** Options of one Receive stream. */
export interface SubscribeOptions {
  readonly window: Window;
  readonly ackDeadlineMs: number | undefined;
  readonly start: StartPosition;
  readonly confirmAcks: boolean;
  readonly consumerName: string;
}

/** A topic's figures. */
export interface TopicStats {
  readonly name: string;
  readonly lastSeq: number;
  readonly firstSeq: number;
  readonly publishRate: number;
  readonly scheduled: number;
  readonly dedupIds: number;
  readonly dropped: number;
  readonly retentionDeleted: number;
}

/** A subscription's figures, with the age of its oldest unacked message. */
export interface SubscriptionReport extends SubscriptionStats {
  readonly name: string;
  readonly oldestUnackedAgeMs: number;
}

interface TopicEntry {
  readonly topic: Topic;
  /** Subscriptions once loaded (for synchronous readers). */
  readonly loadedSubscriptions: Map<string, Subscription>;
  readonly scheduler: DelayScheduler;
  readonly subscriptions: Map<string, Promise<Subscription>>;
  readonly dirty: Set<Subscription>;
  persistTimer: NodeJS.Timeout | undefined;
  persisting: Promise<void> | undefined;
  retentionTimer: NodeJS.Timeout | undefined;
  retaining: Promise<void> | undefined;
}

/** How long before a call's deadline the broker gives up waiting and answers. */
const DEADLINE_MARGIN_MS = 100;

/** Attributes a dead-lettered message carries, naming where it came from and why. */
export const DLQ_ATTRIBUTES = {
  sourceTopic: "nervebus-dlq-source-topic",
  subscription: "nervebus-dlq-subscription",
  seq: "nervebus-dlq-seq",
  attempts: "nervebus-dlq-attempts",
  reason: "nervebus-dlq-reason",
} as const;

/**
 * The broker: topics and their subscriptions over one store. The API layer calls `publish`,
 * `subscribe` and the admin methods; everything else (seq assignment, durability, leases,
 * schedules, retention, persistence) happens here.
 */
export class Broker {
  readonly #topics = new Map<string, Promise<TopicEntry>>();
  /** The same topics once loaded, for synchronous readers (gauges). */
  readonly #loaded = new Map<string, TopicEntry>();
  readonly #budget: WriteBudget;
  readonly #cachePool: TailCachePool | undefined;
  /** 64 MiB: what lagging subscriptions read ahead from the store, all together. */
  readonly #readAheadShare = new ReadAheadShare(64 << 20);
  readonly observer: BrokerObserver;
  #closing = false;
  #fenced: NerveBusError | undefined;

  constructor(
    readonly store: Store,
    readonly options: BrokerOptions,
  ) {
    this.#budget = new WriteBudget(options.writeBufferBytes);
    if ((options.tailCacheTotalBytes ?? 0) > 0)
      this.#cachePool = new TailCachePool(options.tailCacheTotalBytes!);
    this.observer = options.observer ?? NO_OBSERVER;
  }

  /** Backlog and in-flight figures of every loaded subscription (for gauges; synchronous). */
  subscriptionGauges(): {
    topic: string;
    subscription: string;
    backlog: number;
    inFlight: number;
    consumers: number;
  }[] {
    const out: {
      topic: string;
      subscription: string;
      backlog: number;
      inFlight: number;
      consumers: number;
    }[] = [];
    for (const entry of this.#loaded.values()) {
      for (const sub of entry.loadedSubscriptions.values()) {
        const s = sub.stats();
        out.push({
          topic: entry.topic.record.name,
          subscription: sub.name,
          backlog: s.backlog,
          inFlight: s.inFlight,
          consumers: s.consumers.length,
        });
      }
    }
    return out;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Bytes assigned to seqs and waiting for the store. */
  get bufferedBytes(): number {
    return this.#budget.usedBytes;
  }

  /**
   * Validates and appends a pack; resolves once durable. Delayed messages go to the topic's
   * schedule (durably) and get their seq when due. `deadline` is the call's deadline in ms
   * since epoch (Infinity for none).
   */
  async publish(
    topicName: string,
    messages: readonly NewMessage[],
    deadline: number,
  ): Promise<PublishResult> {
    validateName("topic", topicName);
    const bytes = checkPack(messages, this.options);
    this.#checkOpen();
    const entry = await this.#topic(topicName, this.options.autoCreate);
    const now = Date.now();
    const delayed: number[] = [];
    for (let i = 0; i < messages.length; i++) if (messages[i]!.deliverAt > now) delayed.push(i);
    if (delayed.length === 0) return this.#append(entry, messages, bytes, deadline);
    if (entry.topic.ephemeral) {
      throw invalidArgument(
        `messages[${delayed[0]}].deliver_at`,
        `topic ${topicName} is ephemeral and keeps no delayed messages`,
      );
    }
    const immediate = messages.filter((m) => m.deliverAt <= now);
    const appended =
      immediate.length > 0
        ? await this.#append(
            entry,
            immediate,
            immediate.reduce((n, m) => n + messageBytes(m), 0),
            deadline,
          )
        : { firstSeq: 0, lastSeq: 0, results: [] };
    const scheduledResults = await this.#schedule(
      entry,
      delayed.map((i) => messages[i]!),
    );
    const results: MessageOutcome[] = [];
    let a = 0;
    let d = 0;
    for (let i = 0; i < messages.length; i++)
      results.push(messages[i]!.deliverAt > now ? scheduledResults[d++]! : appended.results[a++]!);
    return { firstSeq: appended.firstSeq, lastSeq: appended.lastSeq, results };
  }

  async #append(
    entry: TopicEntry,
    messages: readonly NewMessage[],
    bytes: number,
    deadline: number,
    scheduleIds?: number[],
  ) {
    if (entry.topic.needsIndexes(messages, scheduleIds !== undefined)) await entry.topic.indexesReady;
    // Answer a little before the caller's deadline, so it gets our status (RESOURCE_EXHAUSTED,
    // UNAVAILABLE) rather than its own DEADLINE_EXCEEDED.
    const effectiveDeadline = Math.min(
      deadline - DEADLINE_MARGIN_MS,
      Date.now() + this.options.confirmTimeoutMs,
    );
    const wait = this.#budget.acquire(bytes, effectiveDeadline);
    if (wait !== undefined) await wait;
    return entry.topic.append(messages, bytes, effectiveDeadline, scheduleIds);
  }

  async #schedule(entry: TopicEntry, messages: NewMessage[]): Promise<MessageOutcome[]> {
    const topic = entry.topic;
    if (topic.needsIndexes(messages, false)) await topic.indexesReady;
    const now = Date.now();
    const results: MessageOutcome[] = new Array(messages.length);
    const fresh: { dueAt: number; message: NewMessage }[] = [];
    const freshIndex: number[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const original =
        m.messageId !== "" && topic.dedup.windowMs > 0 ? topic.dedup.get(m.messageId, now) : undefined;
      if (original !== undefined) {
        results[i] = {
          outcome: "duplicate",
          seq: Math.max(0, original),
          traceId: traceIdOf(m.attributes.traceparent) ?? "",
        };
        continue;
      }
      // The trace starts now, at publish, so SendPack can return it and the delivery carries it.
      const message =
        m.attributes.traceparent === undefined
          ? { ...m, attributes: { ...m.attributes, traceparent: newTraceparent() } }
          : m;
      fresh.push({ dueAt: m.deliverAt, message });
      freshIndex.push(i);
    }
    if (fresh.length > 0) await entry.scheduler.schedule(fresh);
    for (let k = 0; k < fresh.length; k++) {
      const m = fresh[k]!.message;
      if (m.messageId !== "") topic.dedup.set(m.messageId, 0, now);
      results[freshIndex[k]!] = {
        outcome: "scheduled",
        seq: 0,
        traceId: traceIdOf(m.attributes.traceparent) ?? "",
      };
    }
    return results;
  }

  /** Attaches a consumer to a subscription, creating both topic and subscription if allowed. */
  async subscribe(
    topicName: string,
    subscriptionName: string,
    options: SubscribeOptions,
    sink: ConsumerSink,
  ): Promise<Attachment> {
    validateName("subscribe.topic", topicName);
    validateName("subscribe.subscription", subscriptionName);
    checkWindow("subscribe.window", options.window, this.options.maxMessageBytes);
    this.#checkOpen();
    const entry = await this.#topic(topicName, this.options.autoCreate);
    const { subscription, created } = await this.#subscription(
      entry,
      subscriptionName,
      this.options.autoCreate ? { config: this.options.subscriptionDefaults, start: options.start } : null,
    );
    const ackDeadlineMs = options.ackDeadlineMs ?? subscription.config.ackDeadlineMs;
    const consumer = new Consumer(
      options.consumerName,
      options.window,
      ackDeadlineMs,
      options.confirmAcks,
      sink,
    );
    subscription.attach(consumer);
    return { consumer, subscription, created, ackDeadlineMs };
  }

  /**
   * Checks a window change. Unlike on subscribe, max_messages 0 is allowed here: it pauses the
   * stream (a consumer that is stopping takes no new messages while it finishes).
   */
  checkWindow(field: string, window: Window): void {
    checkWindow(field, window, this.options.maxMessageBytes, 0);
  }

  /**
   * Persists the subscription state of a topic now, delivering pending ack confirmations (a
   * consumer that half-closes gets its confirmations before the stream ends).
   */
  async flushState(topicName: string): Promise<void> {
    await this.#persistNow(topicName);
  }

  // ---- Admin ----------------------------------------------------------------------------

  /** Creates a topic; ALREADY_EXISTS when it exists. */
  async createTopic(
    name: string,
    shards: number | undefined,
    config: Partial<TopicConfig>,
  ): Promise<TopicRecord> {
    validateName("topic.name", name);
    const s = checkShards("topic.shards", shards ?? this.options.defaultShards);
    const full = checkTopicConfig({ ...this.options.topicDefaults, ...config });
    this.#checkOpen();
    const found = await this.store.ensureTopic(name, { shards: s, config: full });
    if (!found!.created) throw new NerveBusError("already_exists", `topic ${name} already exists`);
    return found!.topic;
  }

  async getTopic(name: string): Promise<TopicRecord> {
    validateName("name", name);
    return (await this.#topic(name, false)).topic.record;
  }

  listTopics(): Promise<TopicRecord[]> {
    return this.store.listTopics();
  }

  /** Changes retention and dedup settings. */
  async updateTopic(name: string, patch: Partial<TopicConfig>): Promise<TopicRecord> {
    validateName("topic.name", name);
    if (patch.ephemeral !== undefined) throw invalidArgument("update_mask", "ephemeral is fixed at creation");
    const entry = await this.#topic(name, false);
    const config = checkTopicConfig({ ...entry.topic.record.config, ...patch });
    const record = await this.store.updateTopicConfig(entry.topic.record, config);
    entry.topic.reconfigure(record);
    this.#armRetention(entry);
    return record;
  }

  /** Deletes a topic with its messages, schedule and subscriptions. */
  async deleteTopic(name: string): Promise<void> {
    validateName("name", name);
    const entry = await this.#topic(name, false);
    for (const t of await this.store.listTopics()) {
      for (const s of await this.store.listSubscriptions(t)) {
        if (s.config.deadLetterTopic === name && t.name !== name) {
          throw new NerveBusError(
            "failed_precondition",
            `topic ${name} is the dead-letter topic of subscription ${s.name} on topic ${t.name}; change that first`,
          );
        }
      }
    }
    this.#topics.delete(name);
    this.#loaded.delete(name);
    const gone = new NerveBusError("not_found", `topic ${name} was deleted`);
    for (const pending of entry.subscriptions.values()) {
      const sub = await pending.catch(() => undefined);
      sub?.failConsumers(gone);
      sub?.close();
    }
    await this.#closeEntry(entry, 5000, false);
    await this.store.deleteTopic(entry.topic.record);
  }

  /** Creates a subscription; ALREADY_EXISTS when it exists. */
  async createSubscription(
    topicName: string,
    name: string,
    config: Partial<SubscriptionConfig>,
    start: StartPosition,
  ): Promise<SubscriptionRecord> {
    validateName("subscription.topic", topicName);
    validateName("subscription.name", name);
    const full = checkSubscriptionConfig(topicName, {
      ...this.options.subscriptionDefaults,
      ...config,
      paused: false,
    });
    const entry = await this.#topic(topicName, false);
    const { subscription, created } = await this.#subscription(entry, name, { config: full, start });
    if (!created)
      throw new NerveBusError("already_exists", `subscription ${name} on topic ${topicName} already exists`);
    return subscription.record;
  }

  async getSubscription(topicName: string, name: string): Promise<Subscription> {
    validateName("topic", topicName);
    validateName("name", name);
    const entry = await this.#topic(topicName, false);
    return (await this.#subscription(entry, name, null)).subscription;
  }

  async listSubscriptions(topicName: string): Promise<SubscriptionRecord[]> {
    validateName("topic", topicName);
    const entry = await this.#topic(topicName, false);
    return this.store.listSubscriptions(entry.topic.record);
  }

  /** Changes a subscription's settings (paused included), persisted and applied at once. */
  async updateSubscription(
    topicName: string,
    name: string,
    patch: Partial<SubscriptionConfig>,
  ): Promise<SubscriptionRecord> {
    const sub = await this.getSubscription(topicName, name);
    const config = checkSubscriptionConfig(topicName, { ...sub.config, ...patch });
    await this.store.updateSubscriptionConfig(sub.topic.record, name, config);
    const record = { ...sub.record, config };
    sub.reconfigure(record);
    return record;
  }

  async deleteSubscription(topicName: string, name: string): Promise<void> {
    const sub = await this.getSubscription(topicName, name);
    const entry = await this.#topic(topicName, false);
    entry.subscriptions.delete(name);
    entry.loadedSubscriptions.delete(name);
    entry.dirty.delete(sub);
    sub.failConsumers(
      new NerveBusError("not_found", `subscription ${name} on topic ${topicName} was deleted`),
    );
    sub.close();
    await this.store.deleteSubscription(entry.topic.record, name);
  }

  /** Acks everything published so far; returns the new floor. */
  async purgeSubscription(topicName: string, name: string): Promise<number> {
    const sub = await this.getSubscription(topicName, name);
    sub.moveFloor(sub.topic.watermark);
    await this.#persistNow(topicName);
    return sub.floor;
  }

  /** Moves the subscription so the next first delivery is `target` (a seq or a time). */
  async seekSubscription(
    topicName: string,
    name: string,
    target: { seq: number } | { time: number },
  ): Promise<number> {
    const sub = await this.getSubscription(topicName, name);
    let floor: number;
    if ("seq" in target) {
      if (!Number.isSafeInteger(target.seq) || target.seq < 1)
        throw invalidArgument("seq", `must be ≥ 1, got ${target.seq}`);
      floor = Math.min(target.seq - 1, sub.topic.watermark);
    } else {
      const seq = await sub.topic.seqAtTime(target.time);
      floor = seq === 0 ? sub.topic.watermark : seq - 1;
    }
    sub.moveFloor(floor);
    await this.#persistNow(topicName);
    return floor;
  }

  /** Figures for a topic and each of its subscriptions. */
  async stats(topicName: string): Promise<{ topic: TopicStats; subscriptions: SubscriptionReport[] }> {
    validateName("topic", topicName);
    const entry = await this.#topic(topicName, false);
    const topic = entry.topic;
    const records = await this.store.listSubscriptions(topic.record);
    const subscriptions: SubscriptionReport[] = [];
    let dropped = 0;
    for (const r of records) {
      const sub = (await this.#subscription(entry, r.name, null)).subscription;
      const s = sub.stats();
      dropped += s.dropped;
      let oldestUnackedAgeMs = 0;
      if (s.oldestUnacked > 0) {
        const cached = topic.cache.get(s.oldestUnacked);
        const time =
          cached?.publishTime ??
          (await this.store.readIds(topic.record, s.oldestUnacked, s.oldestUnacked))[0]?.publishTime;
        if (time !== undefined) oldestUnackedAgeMs = Math.max(0, Date.now() - time);
      }
      subscriptions.push({ ...s, name: r.name, oldestUnackedAgeMs });
    }
    return {
      topic: {
        name: topic.record.name,
        lastSeq: topic.watermark,
        firstSeq: topic.ephemeral ? topic.cache.firstSeq : await this.store.firstSeq(topic.record),
        publishRate: topic.publishRate.rate(),
        scheduled: entry.scheduler.scheduled,
        dedupIds: topic.dedup.size,
        dropped,
        retentionDeleted: topic.retentionDeleted,
      },
      subscriptions,
    };
  }

  /** Stops accepting work, flushes writes and subscription state. */
  async close(timeoutMs = 10_000): Promise<void> {
    this.#closing = true;
    this.#budget.rejectAll(new NerveBusError("unavailable", "broker is shutting down"));
    const entries = await Promise.allSettled(this.#topics.values());
    for (const e of entries) if (e.status === "fulfilled") await this.#closeEntry(e.value, timeoutMs, true);
    await this.store.close();
  }

  async #closeEntry(entry: TopicEntry, timeoutMs: number, persist: boolean): Promise<void> {
    clearTimeout(entry.retentionTimer);
    await entry.retaining;
    await entry.scheduler.close();
    await entry.topic.close(timeoutMs);
    const subs = await Promise.allSettled(entry.subscriptions.values());
    for (const s of subs) if (s.status === "fulfilled") s.value.close();
    clearTimeout(entry.persistTimer);
    await entry.persisting;
    if (persist) await this.#persistState(entry);
  }

  #checkOpen(): void {
    if (this.#fenced) throw this.#fenced;
    if (this.#closing) throw new NerveBusError("unavailable", "broker is shutting down");
  }

  /** Set once the store reported that another broker owns it. */
  get fenced(): NerveBusError | undefined {
    return this.#fenced;
  }

  /**
   * The store is owned by another broker now: every pack waiting for its confirm fails with
   * `err` (UNAVAILABLE: its outcome is for the new owner to tell), and every later call too.
   * Nothing is persisted: this broker's writes can no longer land.
   */
  fence(err: NerveBusError): void {
    if (this.#fenced) return;
    this.#fenced = err;
    this.#budget.rejectAll(err);
    for (const entry of this.#loaded.values()) entry.topic.fail(err);
  }

  #topic(name: string, create: boolean): Promise<TopicEntry> {
    let entry = this.#topics.get(name);
    if (entry === undefined) {
      entry = this.#loadTopic(name, create);
      this.#topics.set(name, entry);
      entry.then(
        (e) => this.#loaded.set(name, e),
        () => this.#topics.delete(name),
      );
    }
    return entry;
  }

  async #loadTopic(name: string, create: boolean): Promise<TopicEntry> {
    const found = await this.store.ensureTopic(
      name,
      create ? { shards: this.options.defaultShards, config: this.options.topicDefaults } : null,
    );
    if (found === null) throw new NerveBusError("not_found", `topic ${name} does not exist`);
    const record = found.topic;
    // Before anything of the topic is read: a write of a previous owner still in flight can no
    // longer commit, so the tail read below is the whole truth.
    await this.store.claimTopic(record);
    let watermark = 0;
    let ids: IdHorizon = { lastIdSeq: undefined, persistedWatermark: 0 };
    if (!record.config.ephemeral) {
      const pointer = await this.store.loadPointer(record, "");
      const persisted = pointer?.ptr ?? 0;
      ids = { lastIdSeq: decodeWriterState(pointer?.state ?? null), persistedWatermark: persisted };
      watermark = await this.store.recoverTail(record, persisted);
      if (watermark !== persisted) {
        // The recovered rows have not been looked at: until the topic has, ids may be anywhere
        // up to the new watermark.
        const state = ids.lastIdSeq === undefined ? null : encodeWriterState(watermark);
        await this.store.savePointers(record, [{ subscription: "", ptr: watermark, state }]);
      }
    }
    const topic = new Topic(
      record,
      watermark,
      this.store,
      this.#budget,
      {
        tailCacheBytes: this.options.tailCacheBytes,
        ...(this.#cachePool === undefined ? {} : { cachePool: this.#cachePool }),
        readAheadShare: this.#readAheadShare,
        confirmTimeoutMs: this.options.confirmTimeoutMs,
        log: this.options.log,
        observer: this.observer,
      },
      ids,
    );
    if (!record.config.ephemeral)
      topic.startIndexRebuild((await this.store.scheduleSummary(record)).count > 0);
    const entry: TopicEntry = {
      topic,
      loadedSubscriptions: new Map(),
      scheduler: undefined as unknown as DelayScheduler,
      subscriptions: new Map(),
      dirty: new Set(),
      persistTimer: undefined,
      persisting: undefined,
      retentionTimer: undefined,
      retaining: undefined,
    };
    const scheduler = new DelayScheduler(
      topic,
      this.store,
      async (messages, ids) => {
        await this.#append(
          entry,
          messages,
          messages.reduce((n, m) => n + messageBytes(m), 0),
          Date.now() + this.options.confirmTimeoutMs,
          ids,
        );
      },
      this.options.log,
    );
    (entry as { scheduler: DelayScheduler }).scheduler = scheduler;
    if (!record.config.ephemeral) {
      // The scheduler moves messages only once the index of already-moved ones is rebuilt.
      void topic.indexesReady
        .then(() => scheduler.start())
        .catch((err: unknown) =>
          this.options.log("warn", "starting the delay scheduler failed", { topic: name, err: String(err) }),
        );
    }
    this.#armRetention(entry);
    if (found.created)
      this.options.log("info", "topic created", { topic: name, id: record.id, shards: record.shards });
    return entry;
  }

  #subscription(
    entry: TopicEntry,
    name: string,
    create: { config: SubscriptionConfig; start: StartPosition } | null,
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

  async #loadSubscription(
    entry: TopicEntry,
    name: string,
    create: { config: SubscriptionConfig; start: StartPosition } | null,
  ): Promise<{ subscription: Subscription; created: boolean }> {
    const topic = entry.topic;
    const found = await this.store.ensureSubscription(topic.record, name, create?.config ?? null);
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
    const subscription = new Subscription(topic, found.subscription, pointer.ptr, pointer.state, {
      dirty: (sub) => {
        if (!topic.ephemeral) this.#schedulePersist(entry, sub);
      },
      deadLetter: (sub, letters) => this.#deadLetter(sub, letters),
      error: (err) =>
        this.options.log("warn", "subscription work failed; retrying", {
          topic: topic.record.name,
          subscription: name,
          err: String(err),
        }),
    });
    return { subscription, created: found.created };
  }

  /** Publishes dead letters to the subscription's dead-letter topic (none: they are dropped). */
  async #deadLetter(sub: Subscription, letters: DeadLetter[]): Promise<void> {
    const target = sub.config.deadLetterTopic;
    if (target === "" || letters.length === 0) return;
    const messages: NewMessage[] = letters.map(({ message, attempts, reason }) => ({
      data: message.data,
      attributes: {
        ...message.attributes,
        [DLQ_ATTRIBUTES.sourceTopic]: sub.topic.record.name,
        [DLQ_ATTRIBUTES.subscription]: sub.name,
        [DLQ_ATTRIBUTES.seq]: String(message.seq),
        [DLQ_ATTRIBUTES.attempts]: String(attempts),
        [DLQ_ATTRIBUTES.reason]: reason,
      },
      orderingKey: message.orderingKey,
      messageId: "",
      deliverAt: 0,
    }));
    const entry = await this.#topic(target, this.options.autoCreate);
    await this.#append(
      entry,
      messages,
      messages.reduce((n, m) => n + messageBytes(m), 0),
      Date.now() + this.options.confirmTimeoutMs,
    );
  }

  /** The floor of a new subscription: everything at or below it counts as acked. */
  async #startFloor(topic: Topic, start: StartPosition): Promise<number> {
    switch (start.kind) {
      case "latest":
        return topic.watermark;
      case "earliest": {
        const first = topic.ephemeral ? topic.cache.firstSeq : await this.store.firstSeq(topic.record);
        return first === 0 ? topic.watermark : first - 1;
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

  #armRetention(entry: TopicEntry): void {
    clearTimeout(entry.retentionTimer);
    const c = entry.topic.record.config;
    if (c.ephemeral || (c.retentionMs === 0 && c.retentionBytes === 0) || this.#closing) return;
    entry.retentionTimer = setTimeout(() => {
      entry.retaining = this.#retain(entry)
        .catch((err: unknown) =>
          this.options.log("warn", "retention failed; will retry", {
            topic: entry.topic.record.name,
            err: String(err),
          }),
        )
        .finally(() => {
          entry.retaining = undefined;
          this.#armRetention(entry);
        });
    }, this.options.retentionIntervalMs);
    entry.retentionTimer.unref();
  }

  /**
   * Deletes messages past the topic's retention, in bounded chunks so writers are never held
   * up; subscriptions whose floor was below the cut move forward and count what they skipped.
   */
  async #retain(entry: TopicEntry): Promise<void> {
    const topic = entry.topic;
    const c = topic.record.config;
    if (c.ephemeral) return;
    const watermark = topic.watermark;
    let cutoff = 0;
    if (c.retentionMs > 0) {
      const seq = await topic.seqAtTime(Date.now() - c.retentionMs);
      cutoff = seq === 0 ? watermark : seq - 1;
    }
    if (c.retentionBytes > 0) {
      const first = await this.store.firstSeq(topic.record);
      const avg = await this.store.averageRowBytes(topic.record, 1000);
      if (first > 0 && avg > 0 && (watermark - first + 1) * avg > c.retentionBytes) {
        cutoff = Math.max(cutoff, watermark - Math.floor(c.retentionBytes / avg));
      }
    }
    cutoff = Math.min(cutoff, watermark);
    if (cutoff < 1) return;
    for (const pending of entry.subscriptions.values()) (await pending).skipThrough(cutoff);
    for (;;) {
      const n = await this.store.deleteMessagesThrough(topic.record, cutoff, 5000);
      topic.retentionDeleted += n;
      if (n === 0 || this.#closing) break;
      await new Promise((r) => setImmediate(r));
    }
  }

  async #persistNow(topicName: string): Promise<void> {
    const entry = await this.#topic(topicName, false);
    await entry.persisting;
    await this.#persistState(entry);
  }

  #schedulePersist(entry: TopicEntry, sub: Subscription): void {
    entry.dirty.add(sub);
    if (entry.persistTimer !== undefined || entry.persisting !== undefined) return;
    entry.persistTimer = setTimeout(() => {
      entry.persistTimer = undefined;
      entry.persisting = this.#persistState(entry).finally(() => {
        entry.persisting = undefined;
        const next = entry.dirty.values().next();
        if (!next.done) this.#schedulePersist(entry, next.value);
      });
    }, this.options.statePersistIntervalMs);
  }

  /** Persists every dirty subscription of a topic in one write, then confirms their acks. */
  async #persistState(entry: TopicEntry): Promise<void> {
    if (entry.dirty.size === 0) return;
    const subs = [...entry.dirty];
    entry.dirty.clear();
    const snapshots = subs.map((s) => ({ sub: s, snap: s.snapshot() }));
    try {
      await this.store.savePointers(
        entry.topic.record,
        snapshots.map(({ sub, snap }) => ({ subscription: sub.name, ptr: snap.ptr, state: snap.state })),
      );
    } catch (err) {
      this.options.log("warn", "persisting subscription state failed; retrying", {
        topic: entry.topic.record.name,
        err: String(err),
      });
      for (const { sub, snap } of snapshots) {
        entry.dirty.add(sub);
        sub.restoreConfirms(snap.confirms);
      }
      return;
    }
    for (const { snap } of snapshots) {
      for (const [consumer, list] of snap.confirms) {
        if (!consumer.detached) consumer.sink.ackResults(list.acked, list.already, list.ignored);
      }
    }
  }
}
