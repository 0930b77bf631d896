import { Consumer, type ConsumerSink, type Window } from "./consumer.js";
import { invalidArgument, NerveBusError } from "./errors.js";
import {
  MAX_DELAY_MS,
  MAX_MESSAGE_ID_BYTES,
  MAX_ORDERING_KEY_BYTES,
  type PublishLimits,
  validateName,
} from "./limits.js";
import type { NewMessage, StartPosition } from "./model.js";
import { messageBytes } from "./model.js";
import type { Store } from "./store.js";
import { Subscription, type SubscriptionSettings } from "./subscription.js";
import { type AppendResult, Topic } from "./topic.js";
import { traceIdOf } from "./trace-context.js";
import { WriteBudget } from "./write-budget.js";

/** Logging hook: the core never picks a logger. */
export type LogFn = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface BrokerOptions extends PublishLimits {
  /** Shards of a topic created on first use. */
  readonly defaultShards: number;
  /** Create topics and subscriptions on first use. */
  readonly autoCreate: boolean;
  /** Bytes the write path may buffer before SendPack waits (then RESOURCE_EXHAUSTED). */
  readonly writeBufferBytes: number;
  /** Bytes of recent messages kept in memory per topic for subscribers that keep up. */
  readonly tailCacheBytes: number;
  /** How long a pack may wait for its confirm when the call has no deadline. */
  readonly confirmTimeoutMs: number;
  /** How often dirty subscription state is persisted (coalescing acks). */
  readonly statePersistIntervalMs: number;
  readonly subscriptionDefaults: SubscriptionSettings;
  readonly log: LogFn;
}

/** The answer to a SendPack. */
export interface PublishResult extends AppendResult {
  /** Per message, in pack order. */
  readonly results: readonly { readonly seq: number; readonly traceId: string }[];
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

interface TopicEntry {
  readonly topic: Topic;
  readonly subscriptions: Map<string, Promise<Subscription>>;
  readonly dirty: Set<Subscription>;
  persistTimer: NodeJS.Timeout | undefined;
  persisting: Promise<void> | undefined;
}

/**
 * The broker: topics and their subscriptions over one store. The API layer calls `publish` and
 * `subscribe`; everything else (seq assignment, durability, leases, persistence) happens here.
 */
export class Broker {
  readonly #topics = new Map<string, Promise<TopicEntry>>();
  readonly #budget: WriteBudget;
  #closing = false;

  constructor(
    readonly store: Store,
    readonly options: BrokerOptions,
  ) {
    this.#budget = new WriteBudget(options.writeBufferBytes);
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Bytes assigned to seqs and waiting for the store. */
  get bufferedBytes(): number {
    return this.#budget.usedBytes;
  }

  /**
   * Validates and appends a pack; resolves once durable. `deadline` is the call's deadline in
   * ms since epoch (Infinity for none).
   */
  async publish(
    topicName: string,
    messages: readonly NewMessage[],
    deadline: number,
  ): Promise<PublishResult> {
    validateName("topic", topicName);
    const bytes = this.#validatePack(messages);
    this.#checkOpen();
    const entry = await this.#topic(topicName, this.options.autoCreate);
    const effectiveDeadline = Math.min(deadline, Date.now() + this.options.confirmTimeoutMs);
    const wait = this.#budget.acquire(bytes, effectiveDeadline);
    if (wait !== undefined) await wait;
    const appended = await entry.topic.append(messages, bytes, effectiveDeadline);
    const results = [];
    for (let i = 0; i < messages.length; i++) {
      const seq = appended.firstSeq + i;
      const row = entry.topic.cache.get(seq);
      results.push({
        seq,
        traceId: traceIdOf(row?.attributes.traceparent ?? messages[i]!.attributes.traceparent) ?? "",
      });
    }
    return { ...appended, results };
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
    this.#checkWindow("subscribe.window", options.window);
    this.#checkOpen();
    const entry = await this.#topic(topicName, this.options.autoCreate);
    let created = false;
    let pending = entry.subscriptions.get(subscriptionName);
    if (pending === undefined) {
      pending = this.#loadSubscription(entry, subscriptionName, options.start).then((r) => {
        created = r.created;
        return r.subscription;
      });
      entry.subscriptions.set(subscriptionName, pending);
      pending.catch(() => entry.subscriptions.delete(subscriptionName));
    }
    const subscription = await pending;
    const ackDeadlineMs = options.ackDeadlineMs ?? subscription.settings.ackDeadlineMs;
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

  /** Checks a window against the limits (used on subscribe and on window changes). */
  checkWindow(field: string, window: Window): void {
    this.#checkWindow(field, window);
  }

  /** Stops accepting work, flushes writes and subscription state. */
  async close(timeoutMs = 10_000): Promise<void> {
    this.#closing = true;
    this.#budget.rejectAll(new NerveBusError("unavailable", "broker is shutting down"));
    const entries = await Promise.allSettled(this.#topics.values());
    for (const e of entries) {
      if (e.status !== "fulfilled") continue;
      const entry = e.value;
      await entry.topic.close(timeoutMs);
      const subs = await Promise.allSettled(entry.subscriptions.values());
      for (const s of subs) if (s.status === "fulfilled") s.value.close();
      clearTimeout(entry.persistTimer);
      await entry.persisting;
      await this.#persistState(entry);
    }
    await this.store.close();
  }

  #checkOpen(): void {
    if (this.#closing) throw new NerveBusError("unavailable", "broker is shutting down");
  }

  #checkWindow(field: string, window: Window): void {
    if (!Number.isInteger(window.maxMessages) || window.maxMessages < 1 || window.maxMessages > 100_000) {
      throw invalidArgument(`${field}.max_messages`, `must be 1–100000, got ${window.maxMessages}`);
    }
    if (window.maxBytes !== 0 && window.maxBytes < this.options.maxMessageBytes) {
      throw invalidArgument(
        `${field}.max_bytes`,
        `must be 0 (no limit) or at least the max message size ${this.options.maxMessageBytes}, got ${window.maxBytes}`,
      );
    }
  }

  #validatePack(messages: readonly NewMessage[]): number {
    const o = this.options;
    if (messages.length === 0) throw invalidArgument("messages", "a pack needs at least one message");
    if (messages.length > o.maxPackMessages) {
      throw invalidArgument(
        "messages",
        `pack has ${messages.length} messages; the limit is ${o.maxPackMessages}`,
      );
    }
    let total = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const size = messageBytes(m);
      if (size > o.maxMessageBytes) {
        throw invalidArgument(
          `messages[${i}]`,
          `message is ${size} bytes; the limit is ${o.maxMessageBytes}`,
        );
      }
      if (m.orderingKey.length > MAX_ORDERING_KEY_BYTES) {
        throw invalidArgument(
          `messages[${i}].ordering_key`,
          `is ${m.orderingKey.length} bytes; the limit is ${MAX_ORDERING_KEY_BYTES}`,
        );
      }
      if (m.messageId.length > MAX_MESSAGE_ID_BYTES) {
        throw invalidArgument(
          `messages[${i}].message_id`,
          `is ${m.messageId.length} bytes; the limit is ${MAX_MESSAGE_ID_BYTES}`,
        );
      }
      if (m.deliverAt > Date.now() + MAX_DELAY_MS) {
        throw invalidArgument(`messages[${i}].deliver_at`, "is more than 7 days ahead");
      }
      total += size;
    }
    if (total > o.maxPackBytes)
      throw invalidArgument("messages", `pack is ${total} bytes; the limit is ${o.maxPackBytes}`);
    return total;
  }

  #topic(name: string, create: boolean): Promise<TopicEntry> {
    let entry = this.#topics.get(name);
    if (entry === undefined) {
      entry = this.#loadTopic(name, create);
      this.#topics.set(name, entry);
      entry.catch(() => this.#topics.delete(name));
    }
    return entry;
  }

  async #loadTopic(name: string, create: boolean): Promise<TopicEntry> {
    const found = await this.store.ensureTopic(name, create ? { shards: this.options.defaultShards } : null);
    if (found === null)
      throw new NerveBusError("not_found", `topic ${name} does not exist (auto-create is off)`);
    const record = found.topic;
    const pointer = await this.store.loadPointer(record, "");
    const persisted = pointer?.ptr ?? 0;
    const watermark = await this.store.recoverTail(record, persisted);
    if (watermark !== persisted)
      await this.store.savePointers(record, [{ subscription: "", ptr: watermark, state: null }]);
    const topic = new Topic(record, watermark, this.store, this.#budget, {
      tailCacheBytes: this.options.tailCacheBytes,
      confirmTimeoutMs: this.options.confirmTimeoutMs,
      log: this.options.log,
    });
    if (found.created)
      this.options.log("info", "topic created", { topic: name, id: record.id, shards: record.shards });
    return {
      topic,
      subscriptions: new Map(),
      dirty: new Set(),
      persistTimer: undefined,
      persisting: undefined,
    };
  }

  async #loadSubscription(
    entry: TopicEntry,
    name: string,
    start: StartPosition,
  ): Promise<{ subscription: Subscription; created: boolean }> {
    const topic = entry.topic;
    const found = await this.store.ensureSubscription(topic.record, name, this.options.autoCreate);
    if (found === null) {
      throw new NerveBusError(
        "not_found",
        `subscription ${name} on topic ${topic.record.name} does not exist (auto-create is off)`,
      );
    }
    let pointer = await this.store.loadPointer(topic.record, name);
    if (pointer === null) {
      const floor = await this.#startFloor(topic, start);
      pointer = { subscription: name, ptr: floor, state: null };
      await this.store.savePointers(topic.record, [pointer]);
    }
    const subscription = new Subscription(
      topic,
      found.subscription,
      pointer.ptr,
      pointer.state,
      this.options.subscriptionDefaults,
      (sub) => this.#schedulePersist(entry, sub),
      (err) =>
        this.options.log("warn", "subscription read failed; retrying", {
          topic: topic.record.name,
          subscription: name,
          err: String(err),
        }),
    );
    return { subscription, created: found.created };
  }

  /** The floor of a new subscription: everything at or below it counts as acked. */
  async #startFloor(topic: Topic, start: StartPosition): Promise<number> {
    switch (start.kind) {
      case "latest":
        return topic.watermark;
      case "earliest": {
        const first = await this.store.firstSeq(topic.record);
        return first === 0 ? topic.watermark : first - 1;
      }
      case "seq":
        if (start.seq < 1) throw invalidArgument("subscribe.start_seq", "must be ≥ 1");
        return start.seq - 1;
      case "time": {
        const seq = await this.store.seqAtTime(topic.record, start.time);
        return seq === 0 ? topic.watermark : seq - 1;
      }
    }
  }

  #schedulePersist(entry: TopicEntry, sub: Subscription): void {
    entry.dirty.add(sub);
    if (entry.persistTimer !== undefined || entry.persisting !== undefined) return;
    entry.persistTimer = setTimeout(() => {
      entry.persistTimer = undefined;
      entry.persisting = this.#persistState(entry).finally(() => {
        entry.persisting = undefined;
        if (entry.dirty.size > 0) this.#schedulePersist(entry, [...entry.dirty][0]!);
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
        if (!consumer.detached) consumer.sink.ackResults(list.acked, list.already);
      }
    }
  }
}
