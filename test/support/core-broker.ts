import { Broker, type BrokerOptions, type Store } from "../../src/core/index.js";
import { SqliteStore } from "../../src/store/index.js";

/** Settings of a subscription with no backoff, no attempt limit and no dead-letter topic. */
export const PLAIN_SUBSCRIPTION = {
  ackDeadlineMs: 30_000,
  minBackoffMs: 0,
  maxBackoffMs: 0,
  maxDeliveryAttempts: 0,
  deadLetterTopic: "",
  ordering: false,
  paused: false,
};

/** Settings of a topic that keeps everything and deduplicates nothing. */
export const PLAIN_TOPIC = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };

/**
 * The core Broker alone, on an in-memory SQLite store (no gRPC), for tests of its state
 * machines; `overrides` changes any setting, `ackDeadlineMs` the subscriptions' default, `store`
 * the store (a wrapped one, to hold a call at a chosen moment).
 */
export function coreBroker(
  overrides: Partial<BrokerOptions> = {},
  ackDeadlineMs = 30_000,
  store: Store = SqliteStore.open(":memory:"),
): Broker {
  return new Broker(store, {
    defaultShards: 1,
    autoCreate: true,
    maxMessageBytes: 1 << 20,
    maxPackMessages: 1000,
    maxPackBytes: 1 << 24,
    writeBufferBytes: 1 << 26,
    tailCacheBytes: 1 << 20,
    confirmTimeoutMs: 10_000,
    statePersistIntervalMs: 50,
    retentionIntervalMs: 60_000,
    topicDefaults: PLAIN_TOPIC,
    subscriptionDefaults: { ...PLAIN_SUBSCRIPTION, ackDeadlineMs },
    log: () => {},
    ...overrides,
  });
}
