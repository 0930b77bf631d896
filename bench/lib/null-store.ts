import type {
  LogFormat,
  LoggedIds,
  LogMessage,
  OwnershipState,
  PointerRecord,
  ScheduledMessage,
  Store,
  StoreCapabilities,
  SubscriptionConfig,
  SubscriptionRecord,
  TopicConfig,
  TopicRecord,
  TopicSchema,
} from "../../src/core/index.js";
import type { IndexedRun } from "../../src/wire/index.js";

/**
 * The store of the benchmark's no-store ceiling: it confirms every write at once and keeps no
 * message, so a broker on it measures what gRPC, protobuf and the broker's own request handling
 * cost, nothing of the database. The catalog (topics, subscriptions, pointers) lives in memory so
 * the broker runs as usual; reads of messages find nothing.
 *
 * It exists only here, in bench/: no store URL names it, `nervebus serve` cannot start it, the
 * container image holds no bench code, and bench/no-store-broker.ts (its only user) refuses
 * anything but a loopback address and says on stderr what it is.
 */
export class NullStore implements Store {
  /** The limits of the SQLite store, so the broker batches as it would there. */
  readonly capabilities: StoreCapabilities = {
    kind: "none",
    maxInsertRows: 5000,
    maxInsertBytes: 8 << 20,
    maxRunMessages: 50_000,
  };
  readonly #topics = new Map<string, TopicRecord>();
  readonly #subscriptions = new Map<number, Map<string, SubscriptionRecord>>();
  readonly #pointers = new Map<string, PointerRecord>();
  readonly #schemas = new Map<number, TopicSchema>();
  #nextId = 1;

  async ensureTopic(
    name: string,
    create: { shards: number; config: TopicConfig; format?: LogFormat } | null,
  ): Promise<{ topic: TopicRecord; created: boolean } | null> {
    const found = this.#topics.get(name);
    if (found !== undefined) return { topic: found, created: false };
    if (create === null) return null;
    const topic: TopicRecord = {
      id: this.#nextId++,
      name,
      shards: create.shards,
      format: create.format ?? 2,
      createdAt: Date.now(),
      config: create.config,
    };
    this.#topics.set(name, topic);
    this.#subscriptions.set(topic.id, new Map());
    return { topic, created: true };
  }

  async listTopics(): Promise<TopicRecord[]> {
    return [...this.#topics.values()];
  }

  async updateTopicConfig(topic: TopicRecord, config: TopicConfig): Promise<TopicRecord> {
    const updated = { ...topic, config };
    this.#topics.set(topic.name, updated);
    return updated;
  }

  async deleteTopic(topic: TopicRecord): Promise<void> {
    this.#topics.delete(topic.name);
    this.#subscriptions.delete(topic.id);
    this.#schemas.delete(topic.id);
  }

  async loadTopicSchema(topic: TopicRecord): Promise<TopicSchema | null> {
    return this.#schemas.get(topic.id) ?? null;
  }

  async saveTopicSchema(topic: TopicRecord, schema: TopicSchema | null): Promise<void> {
    if (schema === null) this.#schemas.delete(topic.id);
    else this.#schemas.set(topic.id, schema);
  }

  async ensureSubscription(
    topic: TopicRecord,
    name: string,
    create: SubscriptionConfig | null,
  ): Promise<{ subscription: SubscriptionRecord; created: boolean } | null> {
    const subs = this.#subscriptions.get(topic.id) ?? new Map<string, SubscriptionRecord>();
    this.#subscriptions.set(topic.id, subs);
    const found = subs.get(name);
    if (found !== undefined) return { subscription: found, created: false };
    if (create === null) return null;
    const subscription = { topicId: topic.id, name, createdAt: Date.now(), config: create };
    subs.set(name, subscription);
    return { subscription, created: true };
  }

  async listSubscriptions(topic: TopicRecord): Promise<SubscriptionRecord[]> {
    return [...(this.#subscriptions.get(topic.id)?.values() ?? [])];
  }

  async updateSubscriptionConfig(
    topic: TopicRecord,
    name: string,
    config: SubscriptionConfig,
  ): Promise<void> {
    const subs = this.#subscriptions.get(topic.id);
    const found = subs?.get(name);
    if (found !== undefined) subs!.set(name, { ...found, config });
  }

  async deleteSubscription(topic: TopicRecord, name: string): Promise<void> {
    this.#subscriptions.get(topic.id)?.delete(name);
    this.#pointers.delete(`${topic.id}/${name}`);
  }

  /** Confirms at once and keeps nothing: the whole point of this store. */
  insertMessages(_topic: TopicRecord, _shard: number, _rows: readonly LogMessage[]): Promise<void> {
    return Promise.resolve();
  }

  /** Confirms at once and keeps nothing, like insertMessages. */
  insertRuns(_topic: TopicRecord, _shard: number, _runs: readonly IndexedRun[]): Promise<void> {
    return Promise.resolve();
  }

  async readMessages(): Promise<LogMessage[]> {
    return [];
  }

  async readIds(): Promise<LoggedIds[]> {
    return [];
  }

  async firstSeq(): Promise<number> {
    return 0;
  }

  async averageRowBytes(): Promise<number> {
    return 0;
  }

  async deleteMessagesThrough(): Promise<number> {
    return 0;
  }

  async recoverTail(_topic: TopicRecord, watermark: number): Promise<number> {
    return watermark;
  }

  async scheduleMessages(_topic: TopicRecord, entries: readonly unknown[]): Promise<number[]> {
    return entries.map(() => this.#nextId++);
  }

  async dueMessages(): Promise<ScheduledMessage[]> {
    return [];
  }

  async scheduledIds(): Promise<{ id: number; messageId: string }[]> {
    return [];
  }

  async deleteScheduled(): Promise<void> {}

  async scheduleSummary(): Promise<{ count: number; nextDueAt: number }> {
    return { count: 0, nextDueAt: 0 };
  }

  async lowestPointer(topic: TopicRecord): Promise<number> {
    let lowest = Number.POSITIVE_INFINITY;
    for (const name of this.#subscriptions.get(topic.id)?.keys() ?? [])
      lowest = Math.min(lowest, this.#pointers.get(`${topic.id}/${name}`)?.ptr ?? 0);
    return lowest === Number.POSITIVE_INFINITY ? 0 : lowest;
  }

  async loadPointer(topic: TopicRecord, subscription: string): Promise<PointerRecord | null> {
    return this.#pointers.get(`${topic.id}/${subscription}`) ?? null;
  }

  async savePointers(topic: TopicRecord, pointers: readonly PointerRecord[]): Promise<void> {
    for (const p of pointers) this.#pointers.set(`${topic.id}/${p.subscription}`, p);
  }

  async claimTopic(topic: TopicRecord): Promise<TopicRecord> {
    return topic;
  }

  ownership(): OwnershipState {
    return {
      mechanism: "file-lock",
      owner: `no-store benchmark broker ${process.pid}`,
      epoch: 0,
      ageMs: 0,
      valid: true,
      lost: undefined,
    };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}
