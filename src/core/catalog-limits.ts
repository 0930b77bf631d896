import { NerveBusError } from "./errors.js";
import type { TopicRecord } from "./model.js";
import type { Store } from "./store.js";

/** How many topics, and subscriptions per topic, the catalog may hold. */
export interface CatalogBounds {
  readonly maxTopics: number;
  readonly maxSubscriptionsPerTopic: number;
  /** Topics one creator (a principal, or a client address without auth) may have made. */
  readonly maxTopicsPerPrincipal?: number;
  /** Subscriptions one creator may have made, on all topics together. */
  readonly maxSubscriptionsPerPrincipal?: number;
}

/** How many of each creator's topics or subscriptions exist. */
type Counts = Map<string, number>;

function countBy(configs: Iterable<{ createdBy?: string }>): Counts {
  const counts: Counts = new Map();
  for (const c of configs)
    if (c.createdBy !== undefined) counts.set(c.createdBy, (counts.get(c.createdBy) ?? 0) + 1);
  return counts;
}

/**
 * The limits on what clients may create: each topic costs tables in the store and memory in
 * the broker, and without a bound ~9,000 topics slowed every creation from 6 to 80 ms and
 * stalled other clients' publishes. Creation over a limit is RESOURCE_EXHAUSTED naming it;
 * topics and subscriptions that exist are never affected.
 *
 * Per creator (issue 12): each topic and subscription records who made it (`createdBy` in its
 * config), and one creator may have made at most so many. Those made before a limit was set
 * or lowered count, and are never deleted: their creator just makes no more until it is under
 * the limit again. Those made before creators were recorded count for nobody.
 */
export class CatalogLimits {
  /** Topics in the store, counted once and then kept up to date (undefined until needed). */
  #topics: number | undefined;
  /** Topics per creator, counted from the store when needed; forgotten when one is deleted. */
  #topicsBy: Counts | undefined;
  /** Subscriptions per creator, likewise. */
  #subscriptionsBy: Counts | undefined;

  constructor(
    private readonly store: Store,
    readonly bounds: CatalogBounds,
  ) {}

  /** Throws RESOURCE_EXHAUSTED when one more topic (made by `by`, if known) would pass a limit. */
  async checkNewTopic(name: string, by?: string): Promise<void> {
    if (this.#topics === undefined || (by !== undefined && this.#topicsBy === undefined)) {
      const topics = await this.store.listTopics();
      this.#topics = topics.length;
      this.#topicsBy = countBy(topics.map((t) => t.config));
    }
    if (this.#topics >= this.bounds.maxTopics)
      throw new NerveBusError(
        "resource_exhausted",
        `topic ${name} cannot be created: ${this.#topics} topics exist, the limit is ${this.bounds.maxTopics} (--max-topics); delete unused topics or raise the limit`,
      );
    const mine = by === undefined ? 0 : (this.#topicsBy?.get(by) ?? 0);
    const limit = this.bounds.maxTopicsPerPrincipal ?? Number.MAX_SAFE_INTEGER;
    if (mine >= limit)
      throw new NerveBusError(
        "resource_exhausted",
        `topic ${name} cannot be created: ${by} has made ${mine} topics, the limit is ${limit} (--max-topics-per-principal); delete some of them or raise the limit`,
      );
  }

  /** Throws RESOURCE_EXHAUSTED when one more subscription on `topic` (by `by`) would pass a limit. */
  async checkNewSubscription(topic: TopicRecord, name: string, by?: string): Promise<void> {
    const n = (await this.store.listSubscriptions(topic)).length;
    if (n >= this.bounds.maxSubscriptionsPerTopic)
      throw new NerveBusError(
        "resource_exhausted",
        `subscription ${name} cannot be created: topic ${topic.name} has ${n} subscriptions, the limit is ${this.bounds.maxSubscriptionsPerTopic} (--max-subscriptions-per-topic)`,
      );
    const limit = this.bounds.maxSubscriptionsPerPrincipal;
    if (by === undefined || limit === undefined) return;
    if (this.#subscriptionsBy === undefined) {
      const all = [];
      for (const t of await this.store.listTopics()) all.push(...(await this.store.listSubscriptions(t)));
      this.#subscriptionsBy = countBy(all.map((s) => s.config));
    }
    const mine = this.#subscriptionsBy.get(by) ?? 0;
    if (mine >= limit)
      throw new NerveBusError(
        "resource_exhausted",
        `subscription ${name} cannot be created: ${by} has made ${mine} subscriptions, the limit is ${limit} (--max-subscriptions-per-principal); delete some of them or raise the limit`,
      );
  }

  topicCreated(by?: string): void {
    if (this.#topics !== undefined) this.#topics++;
    if (by !== undefined) this.#topicsBy?.set(by, (this.#topicsBy.get(by) ?? 0) + 1);
  }

  subscriptionCreated(by?: string): void {
    if (by !== undefined) this.#subscriptionsBy?.set(by, (this.#subscriptionsBy.get(by) ?? 0) + 1);
  }

  /** A topic (and its subscriptions) was deleted: per-creator counts are taken again when needed. */
  topicDeleted(): void {
    if (this.#topics !== undefined) this.#topics = Math.max(0, this.#topics - 1);
    this.#topicsBy = undefined;
    this.#subscriptionsBy = undefined;
  }

  subscriptionDeleted(): void {
    this.#subscriptionsBy = undefined;
  }
}
