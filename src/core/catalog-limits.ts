import { NerveBusError } from "./errors.js";
import type { TopicRecord } from "./model.js";
import type { Store } from "./store.js";

/** How many topics, and subscriptions per topic, the catalog may hold. */
export interface CatalogBounds {
  readonly maxTopics: number;
  readonly maxSubscriptionsPerTopic: number;
}

/**
 * The limits on what clients may create: each topic costs tables in the store and memory in
 * the broker, and without a bound ~9,000 topics slowed every creation from 6 to 80 ms and
 * stalled other clients' publishes. Creation over a limit is RESOURCE_EXHAUSTED naming it;
 * topics and subscriptions that exist are never affected.
 */
export class CatalogLimits {
  /** Topics in the store, counted once and then kept up to date (undefined until needed). */
  #topics: number | undefined;

  constructor(
    private readonly store: Store,
    readonly bounds: CatalogBounds,
  ) {}

  /** Throws RESOURCE_EXHAUSTED when one more topic would pass the limit. */
  async checkNewTopic(name: string): Promise<void> {
    this.#topics ??= (await this.store.listTopics()).length;
    if (this.#topics >= this.bounds.maxTopics)
      throw new NerveBusError(
        "resource_exhausted",
        `topic ${name} cannot be created: ${this.#topics} topics exist, the limit is ${this.bounds.maxTopics} (--max-topics); delete unused topics or raise the limit`,
      );
  }

  /** Throws RESOURCE_EXHAUSTED when one more subscription on `topic` would pass the limit. */
  async checkNewSubscription(topic: TopicRecord, name: string): Promise<void> {
    const n = (await this.store.listSubscriptions(topic)).length;
    if (n >= this.bounds.maxSubscriptionsPerTopic)
      throw new NerveBusError(
        "resource_exhausted",
        `subscription ${name} cannot be created: topic ${topic.name} has ${n} subscriptions, the limit is ${this.bounds.maxSubscriptionsPerTopic} (--max-subscriptions-per-topic)`,
      );
  }

  topicCreated(): void {
    if (this.#topics !== undefined) this.#topics++;
  }

  topicDeleted(): void {
    if (this.#topics !== undefined) this.#topics = Math.max(0, this.#topics - 1);
  }
}
