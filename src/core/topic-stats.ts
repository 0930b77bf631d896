import type { Store } from "./store.js";
import type { SubscriptionStats } from "./subscription.js";
import type { TopicEntry, TopicRegistry } from "./topic-registry.js";

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

/** One loaded subscription's gauges. */
export interface SubscriptionGauge {
  readonly topic: string;
  readonly subscription: string;
  readonly backlog: number;
  readonly inFlight: number;
  readonly consumers: number;
}

/**
 * Figures for a topic and each of its subscriptions (loading those not loaded yet); the age of
 * a subscription's oldest unacked message comes from the tail cache or one store read.
 */
export async function topicStats(
  entry: TopicEntry,
  registry: TopicRegistry,
  store: Store,
): Promise<{ topic: TopicStats; subscriptions: SubscriptionReport[] }> {
  const topic = entry.topic;
  const records = await store.listSubscriptions(topic.record);
  const subscriptions: SubscriptionReport[] = [];
  let dropped = 0;
  for (const r of records) {
    const sub = (await registry.subscription(entry, r.name, null)).subscription;
    const s = sub.stats();
    dropped += s.dropped;
    let oldestUnackedAgeMs = 0;
    if (s.oldestUnacked > 0) {
      const cached = topic.cache.get(s.oldestUnacked);
      const time =
        cached?.publishTime ??
        (await store.readIds(topic.record, s.oldestUnacked, s.oldestUnacked))[0]?.publishTime;
      if (time !== undefined) oldestUnackedAgeMs = Math.max(0, Date.now() - time);
    }
    subscriptions.push({ ...s, name: r.name, oldestUnackedAgeMs });
  }
  return {
    topic: {
      name: topic.record.name,
      lastSeq: topic.watermark,
      firstSeq: topic.ephemeral ? topic.cache.firstSeq : await store.firstSeq(topic.record),
      publishRate: topic.publishRate.rate(),
      scheduled: entry.scheduler.scheduled,
      dedupIds: topic.dedup.size,
      dropped,
      retentionDeleted: topic.retentionDeleted,
    },
    subscriptions,
  };
}

/** Backlog and in-flight figures of every loaded subscription (synchronous, for gauges). */
export function subscriptionGauges(entries: Iterable<TopicEntry>): SubscriptionGauge[] {
  const out: SubscriptionGauge[] = [];
  for (const entry of entries) {
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
