import { Pack, packOf } from "../wire/index.js";
import { settleBy } from "./answer-by.js";
import { sleep } from "./backoff.js";
import { type CatalogBounds, CatalogLimits } from "./catalog-limits.js";
import { Consumer, type ConsumerSink, type Window } from "./consumer.js";
import { type DeadLetterForwarder, DeadLetterRouter } from "./dead-letter.js";
import { invalidArgument, NerveBusError, seqText } from "./errors.js";
import {
  checkPack,
  checkShards,
  checkSubscriptionConfig,
  checkTopicConfig,
  checkWindow,
  type PublishLimits,
  RESERVED_ATTRIBUTE_PREFIX,
  validateName,
} from "./limits.js";
import { browseMessages, type MessagePage, type MessageQuery } from "./message-browser.js";
import type {
  LoggedIds,
  LogMessage,
  NewMessage,
  StartPosition,
  SubscriptionConfig,
  SubscriptionRecord,
  TopicConfig,
  TopicRecord,
} from "./model.js";
import { type BrokerObserver, type LogFn, NO_OBSERVER } from "./observer.js";
import { PackAppender, type PublishResult } from "./pack-appender.js";
import type { MoveReport, Store } from "./store.js";
import type { DeliveryState, Subscription } from "./subscription.js";
import { type TopicEntry, TopicRegistry } from "./topic-registry.js";
import { MAX_DESCRIPTOR_SET_BYTES, type SchemaValidator, type TopicSchema } from "./topic-schema.js";
import {
  type SubscriptionGauge,
  type SubscriptionReport,
  subscriptionGauges,
  type TopicStats,
  topicStats,
} from "./topic-stats.js";
import { WriteBudget } from "./write-budget.js";

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
  /** What lagging subscriptions read ahead from the store, all together (default 64 MiB). */
  readonly readAheadBytes?: number;
  /** What unacked delivered messages may count for, all subscriptions together (default 24 MiB). */
  readonly leaseBytes?: number;
  /** How long a pack may wait for its confirm when the call has no deadline. */
  readonly confirmTimeoutMs: number;
  /** How often dirty subscription state is persisted (coalescing acks). */
  readonly statePersistIntervalMs: number;
  /** How often retention runs per topic. */
  readonly retentionIntervalMs: number;
  readonly topicDefaults: TopicConfig;
  readonly subscriptionDefaults: SubscriptionConfig;
  /** Topics, and subscriptions per topic, clients may create (default: no limit). */
  readonly catalog?: CatalogBounds;
  /** --cluster: sends dead letters to the broker that owns their dead-letter topic. */
  readonly forwardDeadLetters?: DeadLetterForwarder;
  readonly log: LogFn;
  /** Traces and metrics (default: none). */
  readonly observer?: BrokerObserver;
  /** Checks payloads of typed topics (default: none, and topics cannot be typed). */
  readonly schemaValidator?: SchemaValidator;
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
  /** Attach as congested: nothing is sent until the sink calls `resume` (its transport is full). */
  readonly congested?: boolean;
  /** Who subscribes, recorded on a topic or subscription it creates (per-creator limits). */
  readonly by?: string;
}

/**
 * The broker: topics and their subscriptions over one store. The API layer calls `publish`,
 * `subscribe` and the admin methods. This class checks each call and hands it on: topics and
 * subscriptions are loaded (and recovered) by the TopicRegistry, packs go through the
 * PackAppender, and each loaded topic's retention, schedule and subscription state have modules
 * of their own (retention.ts, scheduler.ts, state-persister.ts; dead letters: dead-letter.ts).
 */
export class Broker {
  readonly #budget: WriteBudget;
  readonly #appender: PackAppender;
  readonly #registry: TopicRegistry;
  readonly #limits: CatalogLimits;
  readonly observer: BrokerObserver;
  #closing = false;
  #fenced: NerveBusError | undefined;

  constructor(
    readonly store: Store,
    readonly options: BrokerOptions,
  ) {
    this.#budget = new WriteBudget(options.writeBufferBytes);
    this.observer = options.observer ?? NO_OBSERVER;
    this.#appender = new PackAppender(this.#budget, options.confirmTimeoutMs);
    const deadLetters = new DeadLetterRouter(
      async (name) => (await this.#registry.topic(name, options.autoCreate)).topic,
      (topic, messages) => this.#appender.appendNow(topic, messages),
      options.forwardDeadLetters,
    );
    this.#limits = new CatalogLimits(
      store,
      options.catalog ?? {
        maxTopics: Number.MAX_SAFE_INTEGER,
        maxSubscriptionsPerTopic: Number.MAX_SAFE_INTEGER,
      },
    );
    this.#registry = new TopicRegistry(
      store,
      this.#budget,
      this.#appender,
      { ...options, observer: this.observer, limits: this.#limits },
      {
        deadLetter: (sub, letters) => deadLetters.route(sub, letters),
        closing: () => this.#closing,
      },
    );
  }

  /** Backlog and in-flight figures of every loaded subscription (for gauges; synchronous). */
  subscriptionGauges(): SubscriptionGauge[] {
    return subscriptionGauges(this.#registry.loaded());
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Bytes assigned to seqs and waiting for the store. */
  get bufferedBytes(): number {
    return this.#budget.usedBytes;
  }

  /** Bytes held by the tail caches of all loaded topics. */
  get tailCacheBytes(): number {
    let bytes = 0;
    for (const entry of this.#registry.loaded()) bytes += entry.topic.cache.bytes;
    return bytes;
  }

  /** Bytes of rows read ahead for lagging subscriptions and not delivered yet. */
  get readAheadBytes(): number {
    return this.#registry.readAheadShare.usedBytes;
  }

  /** Bytes the unacked delivered messages of all subscriptions count for (see LeaseShare). */
  get leaseBytes(): number {
    return this.#registry.leaseShare.usedBytes;
  }

  /**
   * Validates and appends a pack; resolves once durable. Delayed messages go to the topic's
   * schedule (durably) and get their seq when due. `deadline` is the call's deadline in ms
   * since epoch (Infinity for none). `deadLetters`: the pack holds dead letters another broker
   * of the cluster forwarded, which carry the reserved dead-letter attributes.
   */
  async publish(
    topicName: string,
    messages: Pack | readonly NewMessage[],
    deadline: number,
    by?: string,
    deadLetters = false,
  ): Promise<PublishResult> {
    validateName("topic", topicName);
    const pack = messages instanceof Pack ? messages : packOf(messages, RESERVED_ATTRIBUTE_PREFIX);
    const bytes = checkPack(pack, this.options, deadLetters);
    this.#checkOpen();
    const entry =
      this.#registry.loadedTopic(topicName) ??
      (await settleBy(
        this.#topic(topicName, this.options.autoCreate, by),
        this.#appender.answerAt(deadline, Date.now()),
        () => notLoaded(topicName),
      ));
    const schema = entry.topic.schema;
    // Typed topics parse every payload anyway: the messages' objects cost little beside that.
    if (schema !== null)
      this.#validator().check(
        schema,
        Array.from({ length: pack.count }, (_, i) => pack.message(i)),
      );
    return this.#appender.publish(entry.topic, entry.scheduler, pack, bytes, deadline);
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
    const entry = await this.#topic(topicName, this.options.autoCreate, options.by);
    const { subscription, created } = await this.#registry.subscription(
      entry,
      subscriptionName,
      this.options.autoCreate
        ? { config: this.options.subscriptionDefaults, start: options.start, by: options.by }
        : null,
    );
    const ackDeadlineMs = options.ackDeadlineMs ?? subscription.config.ackDeadlineMs;
    const consumer = new Consumer(
      options.consumerName,
      options.window,
      ackDeadlineMs,
      options.confirmAcks,
      sink,
    );
    // The topic was unloaded meanwhile (lost or handed to another broker): a consumer attached
    // now would wait on a subscription nothing feeds any more.
    if (entry.topic.closed) throw new NerveBusError("unavailable", `topic ${topicName} moved; reconnect`);
    consumer.congested = options.congested ?? false;
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
    await (await this.#topic(topicName, false)).state.flush();
  }

  // ---- Admin ----------------------------------------------------------------------------

  /** Creates a topic; ALREADY_EXISTS when it exists. */
  async createTopic(
    name: string,
    shards: number | undefined,
    config: Partial<TopicConfig>,
    by?: string,
  ): Promise<TopicRecord> {
    validateName("topic.name", name);
    const s = checkShards("topic.shards", shards ?? this.options.defaultShards);
    const full = checkTopicConfig({ ...this.options.topicDefaults, ...config, createdBy: by });
    this.#checkOpen();
    if ((await this.store.ensureTopic(name, null)) !== null)
      throw new NerveBusError("already_exists", `topic ${name} already exists`);
    await this.#limits.checkNewTopic(name, by);
    const found = await this.store.ensureTopic(name, { shards: s, config: full });
    if (!found!.created) throw new NerveBusError("already_exists", `topic ${name} already exists`);
    this.#limits.topicCreated(by);
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
    entry.retention.arm();
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
    this.#registry.forget(name);
    const gone = new NerveBusError("not_found", `topic ${name} was deleted`);
    for (const pending of entry.subscriptions.values()) {
      const sub = await pending.catch(() => undefined);
      sub?.failConsumers(gone);
      sub?.close();
    }
    await this.#registry.unload(entry, 5000, false);
    await this.store.deleteTopic(entry.topic.record);
    this.#limits.topicDeleted();
  }

  /** Creates a subscription; ALREADY_EXISTS when it exists. */
  async createSubscription(
    topicName: string,
    name: string,
    config: Partial<SubscriptionConfig>,
    start: StartPosition,
    by?: string,
  ): Promise<SubscriptionRecord> {
    validateName("subscription.topic", topicName);
    validateName("subscription.name", name);
    const full = checkSubscriptionConfig(topicName, {
      ...this.options.subscriptionDefaults,
      ...config,
      paused: false,
    });
    const entry = await this.#topic(topicName, false);
    await this.#checkDeadLetterTopic(full.deadLetterTopic);
    const { subscription, created } = await this.#registry.subscription(entry, name, {
      config: full,
      start,
      by,
    });
    if (!created)
      throw new NerveBusError("already_exists", `subscription ${name} on topic ${topicName} already exists`);
    return subscription.record;
  }

  async getSubscription(topicName: string, name: string): Promise<Subscription> {
    validateName("topic", topicName);
    validateName("name", name);
    const entry = await this.#topic(topicName, false);
    return (await this.#registry.subscription(entry, name, null)).subscription;
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
    if (config.deadLetterTopic !== sub.config.deadLetterTopic)
      await this.#checkDeadLetterTopic(config.deadLetterTopic);
    await this.store.updateSubscriptionConfig(sub.topic.record, name, config);
    const record = { ...sub.record, config };
    sub.reconfigure(record);
    return record;
  }

  /**
   * NOT_FOUND for a dead-letter topic that does not exist on a broker that does not create
   * topics: its dead letters could never be written, so each would go back to the consumers
   * that terminated it, again and again, with a warning each time.
   */
  async #checkDeadLetterTopic(name: string): Promise<void> {
    if (name === "" || this.options.autoCreate) return;
    if ((await this.store.ensureTopic(name, null)) !== null) return;
    throw new NerveBusError(
      "not_found",
      `subscription.dead_letter_topic: topic ${name} does not exist, and this broker does not create topics on first use (--no-auto-create): create it first`,
    );
  }

  async deleteSubscription(topicName: string, name: string): Promise<void> {
    const sub = await this.getSubscription(topicName, name);
    const entry = await this.#topic(topicName, false);
    this.#registry.forgetSubscription(entry, sub);
    sub.failConsumers(
      new NerveBusError("not_found", `subscription ${name} on topic ${topicName} was deleted`),
    );
    sub.close();
    await this.store.deleteSubscription(entry.topic.record, name);
    this.#limits.subscriptionDeleted();
  }

  /** Acks everything published so far; returns the new floor. */
  async purgeSubscription(topicName: string, name: string): Promise<number> {
    const sub = await this.getSubscription(topicName, name);
    sub.moveFloor(sub.topic.watermark);
    await this.flushState(topicName);
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
      // A uint64 past 2^53 arrives rounded, yet still past the end: it goes there, as any
      // seq past the end does, rather than being called "less than 1".
      if (!Number.isInteger(target.seq) || target.seq < 1)
        throw invalidArgument("seq", `must be ≥ 1, got ${target.seq}`);
      floor = Math.min(target.seq - 1, sub.topic.watermark);
    } else {
      const seq = await sub.topic.seqAtTime(target.time);
      floor = seq === 0 ? sub.topic.watermark : seq - 1;
    }
    sub.moveFloor(floor);
    await this.flushState(topicName);
    return floor;
  }

  /** Figures for a topic and each of its subscriptions. */
  async stats(topicName: string): Promise<{ topic: TopicStats; subscriptions: SubscriptionReport[] }> {
    validateName("topic", topicName);
    return topicStats(await this.#topic(topicName, false), this.#registry, this.store);
  }

  /** Searches a topic's stored messages without consuming them (see message-browser.ts). */
  async browseMessages(topicName: string, query: MessageQuery): Promise<MessagePage> {
    validateName("topic", topicName);
    const entry = await this.#topic(topicName, false);
    return browseMessages(entry.topic, this.store, query);
  }

  /** The stored message at `seq`; NOT_FOUND when it was never published or is gone. */
  async getMessage(topicName: string, seq: number): Promise<LogMessage> {
    validateName("topic", topicName);
    // Past 2^53 (rounded from a uint64) is past the end: NOT_FOUND below, as for any later seq.
    if (!Number.isInteger(seq) || seq < 1) throw invalidArgument("seq", `must be ≥ 1, got ${seq}`);
    const entry = await this.#topic(topicName, false);
    if (entry.topic.ephemeral)
      throw new NerveBusError(
        "failed_precondition",
        `topic ${topicName} is ephemeral: it stores no messages`,
      );
    const [found] = seq <= entry.topic.watermark ? await entry.topic.read(seq, seq) : [];
    if (found === undefined)
      throw new NerveBusError(
        "not_found",
        `seq ${seqText(seq)} of topic ${topicName} ${seq > entry.topic.watermark ? `was never published (last seq ${entry.topic.watermark})` : "is no longer stored (retention or purge)"}`,
      );
    return found;
  }

  /**
   * What each subscription (those `visible` admits, by name) did with each of `seqs`, from the
   * subscriptions' live state (loading them when needed).
   */
  async deliveries(
    topicName: string,
    seqs: readonly number[],
    visible: (subscription: string) => boolean,
  ): Promise<Map<number, (DeliveryState & { subscription: string })[]>> {
    const entry = await this.#topic(topicName, false);
    const out = new Map<number, (DeliveryState & { subscription: string })[]>(seqs.map((s) => [s, []]));
    for (const record of await this.store.listSubscriptions(entry.topic.record)) {
      if (!visible(record.name)) continue;
      const { subscription } = await this.#registry.subscription(entry, record.name, null);
      for (const seq of seqs)
        out.get(seq)!.push({ subscription: record.name, ...subscription.deliveryOf(seq) });
    }
    return out;
  }

  /**
   * Declares the protobuf type of a topic's payloads (an empty messageType clears it); later
   * publishes are checked against it. INVALID_ARGUMENT when the descriptor set is unusable.
   */
  async setTopicSchema(
    topicName: string,
    schema: { messageType: string; descriptorSet: Uint8Array },
  ): Promise<TopicSchema | null> {
    validateName("topic", topicName);
    const entry = await this.#topic(topicName, false);
    if (schema.messageType === "") {
      await this.store.saveTopicSchema(entry.topic.record, null);
      entry.topic.schema = null;
      return null;
    }
    if (schema.descriptorSet.byteLength > MAX_DESCRIPTOR_SET_BYTES)
      throw invalidArgument(
        "schema.descriptor_set",
        `is ${schema.descriptorSet.byteLength} bytes, at most ${MAX_DESCRIPTOR_SET_BYTES}`,
      );
    const stored: TopicSchema = { ...schema, updatedAt: Date.now() };
    this.#validator().prepare(stored);
    await this.store.saveTopicSchema(entry.topic.record, stored);
    entry.topic.schema = stored;
    return stored;
  }

  /** A topic's declared payload type, or null when untyped. */
  async getTopicSchema(topicName: string): Promise<TopicSchema | null> {
    validateName("topic", topicName);
    return (await this.#topic(topicName, false)).topic.schema;
  }

  #validator(): SchemaValidator {
    const v = this.options.schemaValidator;
    if (v === undefined)
      throw new NerveBusError("failed_precondition", "this broker was built without a schema validator");
    return v;
  }

  /**
   * Moves a topic to another database of a store that spans several (see TopicPlacement). The
   * topic is loaded first, so its tail is recovered and nothing below the copy changes after.
   * FAILED_PRECONDITION when the store is one database.
   */
  async moveTopic(name: string, host: string): Promise<MoveReport> {
    validateName("topic", name);
    if (host === "") throw invalidArgument("to_host", "is required");
    this.#checkOpen();
    const placement = this.store.placement;
    if (placement === undefined)
      throw new NerveBusError(
        "failed_precondition",
        "the store is one database: moving topics needs --store with several MySQL URLs",
      );
    const entry = await this.#topic(name, false);
    return placement.moveTopic(name, host, entry.topic.record.tenure);
  }

  /**
   * Stops accepting work, flushes writes and subscription state. Writes still waiting after
   * `timeoutMs` (for every topic together) are given up, their packs failed as outcome unknown.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    this.#closing = true;
    this.#budget.rejectAll(new NerveBusError("unavailable", "broker is shutting down"));
    const closeBy = performance.now() + timeoutMs;
    for (const entry of await this.#registry.settled())
      await this.#registry.unload(entry, Math.max(0, closeBy - performance.now()), true);
    await this.store.close();
  }

  // ---- Outbox relay (RelayTarget) ------------------------------------------------------

  /** A seq no publish to the topic that starts after this call can be below (1 for a missing topic). */
  async nextSeq(topicName: string): Promise<number> {
    this.#checkOpen();
    const entry = await this.#topic(topicName, this.options.autoCreate).catch(() => undefined);
    return (entry?.topic.lastAssigned ?? 0) + 1;
  }

  /**
   * The message ids stored in a topic from `fromSeq` to its end, read once every seq assigned
   * so far is durable (a pack whose confirm failed has landed by then, or never will): what the
   * outbox relay needs to tell which of its rows are published. A missing topic holds none.
   * UNAVAILABLE if the writes do not become durable within the confirm timeout.
   */
  async durableIds(topicName: string, fromSeq: number): Promise<{ through: number; ids: LoggedIds[] }> {
    this.#checkOpen();
    let entry: TopicEntry;
    try {
      entry = await this.#topic(topicName, false);
    } catch (err) {
      if (err instanceof NerveBusError && err.code === "not_found") return { through: fromSeq - 1, ids: [] };
      throw err;
    }
    const topic = entry.topic;
    const target = topic.lastAssigned;
    const until = Date.now() + this.options.confirmTimeoutMs;
    while (topic.watermark < target) {
      this.#checkOpen();
      if (Date.now() > until)
        throw new NerveBusError("unavailable", `topic ${topicName}: writes are not durable yet`);
      await sleep(20);
    }
    const through = topic.watermark;
    const ids: LoggedIds[] = [];
    for (let seq = Math.max(1, fromSeq); seq <= through; seq += 10_000)
      ids.push(...(await this.store.readIds(topic.record, seq, Math.min(through, seq + 9_999))));
    return { through, ids };
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
    for (const entry of this.#registry.loaded()) entry.topic.fail(err);
  }

  // ---- Cluster (several brokers on one store, see Cluster) -------------------------------------

  /**
   * A topic whose owner is gone falls to this broker: loads it now (claiming it, recovering its
   * tail and subscription state), so its redeliveries and delayed messages go on before any
   * client calls. A failure is logged; the cluster offers the topic again later.
   */
  adoptTopic(name: string): void {
    if (this.#closing || this.#fenced) return;
    const failed = (err: unknown) =>
      this.options.log("info", "adopting a topic failed; it is offered again", {
        topic: name,
        err: String(err),
      });
    void this.#registry.topic(name, false).catch(failed);
  }

  /**
   * Another broker took the topic: packs waiting for their confirm fail with `err`
   * (UNAVAILABLE, never OK), its Receive streams end with it, nothing of it is written (those
   * writes could not land). The broker goes on serving its other topics; the next call for
   * this one loads it again, which sends it to the new owner.
   */
  loseTopic(name: string, err: NerveBusError): void {
    const loading = this.#registry.peek(name);
    this.#registry.forget(name);
    void loading
      ?.then(async (entry) => {
        entry.topic.fail(err);
        for (const sub of entry.loadedSubscriptions.values()) sub.failConsumers(err);
        await this.#registry.unload(entry, 0, false);
        // Subscriptions whose load finished meanwhile.
        for (const sub of entry.loadedSubscriptions.values()) sub.failConsumers(err);
      })
      .catch(() => undefined);
  }

  /**
   * Hands the topic over (drain, rebalancing): new calls for it are sent elsewhere at once,
   * packs already taken are written and confirmed (those not done within the confirm timeout
   * get UNAVAILABLE, outcome unknown), its Receive streams end with UNAVAILABLE so consumers
   * reconnect (their acks so far are kept), its state is persisted, then its lease is released
   * for the next owner.
   */
  async releaseTopic(name: string): Promise<void> {
    const loading = this.#registry.peek(name);
    this.#registry.forget(name);
    const entry = await loading?.catch(() => undefined);
    if (entry === undefined) return;
    const moved = new NerveBusError("unavailable", `topic ${name} is moving to another broker; reconnect`);
    for (const sub of entry.loadedSubscriptions.values()) sub.failConsumers(moved);
    await this.#registry.unload(entry, this.options.confirmTimeoutMs, true);
    // Consumers that attached before the topic closed, and subscriptions loaded meanwhile.
    for (const sub of entry.loadedSubscriptions.values()) sub.failConsumers(moved);
    await this.store.releaseTopic?.(entry.topic.record);
  }

  #topic(name: string, create: boolean, by?: string): Promise<TopicEntry> {
    return this.#registry.topic(name, create, by);
  }
}

/**
 * The answer to a pack whose topic was not loaded (or created) by the call's deadline: the
 * store is slow or unreachable, and the pack never got seqs.
 */
function notLoaded(topic: string): NerveBusError {
  return new NerveBusError(
    "unavailable",
    `topic ${topic} could not be loaded from the store before the call's deadline; nothing was written: retry`,
  );
}
