import type { Pack, PackMessage } from "../wire/index.js";
import type { Window } from "./consumer.js";
import { invalidArgument } from "./errors.js";
import type { SubscriptionConfig, TopicConfig } from "./model.js";

/**
 * Every limit on what clients and operators may ask for, each defined once with the check
 * that enforces it. The config table, the core and the API handlers all use these, so a
 * limit and its error message change in one place.
 */

/** A closed range of allowed values. */
export interface Bounds {
  readonly min: number;
  readonly max: number;
}

/** Names of topics and subscriptions: 1–128 characters of [A-Za-z0-9._-]. */
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;

/** Throws INVALID_ARGUMENT naming `field` unless `name` is a valid topic or subscription name. */
export function validateName(field: string, name: string): void {
  // "." and ".." would be collapsed as path segments by HTTP clients (the status page's API).
  if (name === "." || name === "..")
    throw invalidArgument(field, `${JSON.stringify(name)} is not a usable name`);
  if (NAME_PATTERN.test(name)) return;
  if (name.length === 0) throw invalidArgument(field, "must not be empty");
  if (name.length > 128) throw invalidArgument(field, `is ${name.length} characters; the limit is 128`);
  const bad = [...name].find((c) => !/[A-Za-z0-9._-]/.test(c)) ?? "";
  throw invalidArgument(field, `contains ${JSON.stringify(bad)}; allowed are A-Z a-z 0-9 . _ -`);
}

/** Size limits on what producers send, enforced before anything is buffered. */
export interface PublishLimits {
  /** Largest message: data + attribute keys and values + ordering key + message id. */
  readonly maxMessageBytes: number;
  /** Most messages in one pack. */
  readonly maxPackMessages: number;
  /** Largest pack, summed over its messages. */
  readonly maxPackBytes: number;
  /**
   * Whose limits these are when not this broker's (another broker's of the cluster, which
   * serves the topic): named in refusals after the limit.
   */
  readonly whose?: string;
}

/** Ordering keys longer than this are refused: they are kept in memory per in-flight key. */
export const MAX_ORDERING_KEY_BYTES = 1024;
/** Message ids longer than this are refused: they are indexed for deduplication. */
export const MAX_MESSAGE_ID_BYTES = 256;
/** Delays beyond this are refused (7 days, the longest schedule kept). */
export const MAX_DELAY_MS = 7 * 24 * 3600 * 1000;

/** Throws INVALID_ARGUMENT naming `field` unless a delay (nack or publish) is 0 – 7 days. */
export function checkDelay(field: string, delayMs: number): number {
  if (delayMs < 0 || delayMs > MAX_DELAY_MS) throw invalidArgument(field, "must be between 0 and 7 days");
  return delayMs;
}

/** Attribute keys with this prefix are the broker's (dead-letter metadata); producers may not set them. */
export const RESERVED_ATTRIBUTE_PREFIX = "nervebus-";

/** Bytes of `m` as the size limits count them. */
function messageBytes(m: PackMessage): number {
  let n = m.data.byteLength + Buffer.byteLength(m.orderingKey) + Buffer.byteLength(m.messageId);
  for (const k in m.attributes) n += Buffer.byteLength(k) + Buffer.byteLength(m.attributes[k] ?? "");
  return n;
}

/**
 * `messages` in packs within `limits` (the receiving broker's --max-pack-messages and
 * --max-pack-bytes), in their order (a message larger alone in its pack): dead letters and
 * outbox rows sent to another broker of the cluster. Bytes count every attribute, so a request
 * stays within the size the receiving broker's gRPC takes (a pack plus framing).
 */
export function packsWithin<T extends PackMessage>(messages: readonly T[], limits: PublishLimits): T[][] {
  const packs: T[][] = [];
  let pack: T[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = messageBytes(m);
    if (pack.length > 0 && (pack.length >= limits.maxPackMessages || bytes + size > limits.maxPackBytes)) {
      packs.push(pack);
      pack = [];
      bytes = 0;
    }
    pack.push(m);
    bytes += size;
  }
  if (pack.length > 0) packs.push(pack);
  return packs;
}

/**
 * Checks a pack against the limits; returns its size in bytes as messageBytes counts it.
 * Errors name the message by its index, and the limit (and whose it is, see `limits.whose`).
 * `deadLetters`: the pack holds dead letters another broker of the cluster forwarded, whose
 * reserved (dead-letter) attributes are let through and which, as dead letters the broker
 * writes itself, are refused for no size: a message the source's limits took moves whatever
 * this broker's are (the sender splits them by this broker's pack limits, see packsWithin).
 */
export function checkPack(pack: Pack, limits: PublishLimits, deadLetters = false): number {
  const n = pack.count;
  const whose = limits.whose === undefined ? "" : ` ${limits.whose}`;
  if (n === 0) throw invalidArgument("messages", "a pack needs at least one message");
  if (n > limits.maxPackMessages) {
    throw invalidArgument(
      "messages",
      `pack has ${n} messages; the limit is ${limits.maxPackMessages}${whose}`,
    );
  }
  let total = 0;
  const latest = Date.now() + MAX_DELAY_MS;
  const { sentBytes, keyBytes, idBytes, deliverAt } = pack;
  for (let i = 0; i < n; i++) {
    const size = sentBytes[i]!;
    if (size > limits.maxMessageBytes && !deadLetters) {
      throw invalidArgument(
        `messages[${i}]`,
        `message is ${size} bytes; the limit is ${limits.maxMessageBytes}${whose}`,
      );
    }
    if (keyBytes[i]! > MAX_ORDERING_KEY_BYTES) {
      throw invalidArgument(
        `messages[${i}].ordering_key`,
        `is ${keyBytes[i]} bytes; the limit is ${MAX_ORDERING_KEY_BYTES}`,
      );
    }
    if (idBytes[i]! > MAX_MESSAGE_ID_BYTES) {
      throw invalidArgument(
        `messages[${i}].message_id`,
        `is ${idBytes[i]} bytes; the limit is ${MAX_MESSAGE_ID_BYTES}`,
      );
    }
    if (deliverAt !== undefined && deliverAt[i]! > latest)
      throw invalidArgument(`messages[${i}].deliver_at`, "is more than 7 days ahead");
    total += size;
  }
  const reserved = pack.reservedKey;
  if (reserved !== undefined && !deadLetters)
    throw invalidArgument(
      `messages[${reserved.index}].attributes`,
      `key ${JSON.stringify(reserved.key)} uses the reserved prefix ${RESERVED_ATTRIBUTE_PREFIX}`,
    );
  if (total > limits.maxPackBytes && !deadLetters)
    throw invalidArgument("messages", `pack is ${total} bytes; the limit is ${limits.maxPackBytes}${whose}`);
  return total;
}

/** Shard tables per topic: each is a table of its own in the store. */
export const SHARDS: Bounds = { min: 1, max: 64 };

/** Throws INVALID_ARGUMENT naming `field` unless `shards` is a whole number within SHARDS. */
export function checkShards(field: string, shards: number): number {
  if (!Number.isInteger(shards) || shards < SHARDS.min || shards > SHARDS.max)
    throw invalidArgument(field, `must be ${SHARDS.min}–${SHARDS.max}, got ${shards}`);
  return shards;
}

/** Most unacked messages one stream may hold: each is a lease entry in broker memory. */
export const WINDOW_MAX_MESSAGES = 100_000;

/**
 * Throws INVALID_ARGUMENT naming `field` unless the window holds `minMessages` to
 * WINDOW_MAX_MESSAGES messages, and bytes of 0 (no limit) or room for the largest message.
 */
export function checkWindow(field: string, window: Window, maxMessageBytes: number, minMessages = 1): void {
  const n = window.maxMessages;
  if (!Number.isInteger(n) || n < minMessages || n > WINDOW_MAX_MESSAGES) {
    throw invalidArgument(`${field}.max_messages`, `must be ${minMessages}–${WINDOW_MAX_MESSAGES}, got ${n}`);
  }
  if (window.maxBytes !== 0 && window.maxBytes < maxMessageBytes) {
    throw invalidArgument(
      `${field}.max_bytes`,
      `must be 0 (no limit) or at least the max message size ${maxMessageBytes}, got ${window.maxBytes}`,
    );
  }
}

/** Ack deadlines (a subscription's, a stream's, an extension): 1 s to 10 min. */
export const ACK_DEADLINE_MS: Bounds = { min: 1000, max: 600_000 };

/** Throws INVALID_ARGUMENT naming `field` unless `ms` is within ACK_DEADLINE_MS. */
export function checkAckDeadline(field: string, ms: number): number {
  // The words must say what ACK_DEADLINE_MS holds.
  if (ms < ACK_DEADLINE_MS.min || ms > ACK_DEADLINE_MS.max)
    throw invalidArgument(field, `must be 1 s – 10 min, got ${ms} ms`);
  return ms;
}

/** Redelivery backoff: up to 1 h. */
export const BACKOFF_MS: Bounds = { min: 0, max: 3_600_000 };

/** Delivery attempts before dead-lettering: 0 (unlimited) to 1000. */
export const DELIVERY_ATTEMPTS: Bounds = { min: 0, max: 1000 };

/** How long message ids are remembered for deduplication: 0 (off) to 24 h. */
export const DEDUP_WINDOW_MS: Bounds = { min: 0, max: 24 * 3600_000 };

/**
 * How long a topic keeps messages: 0 (forever) to 10 years. Bounded because a topic's settings
 * are answered back as a Duration: 2^63 - 1 s was stored, then every ListTopics failed INTERNAL.
 */
export const RETENTION_MS: Bounds = { min: 0, max: 3650 * 24 * 3_600_000 };

/**
 * A topic's size limit: 0 (none) to 2^53 - 1 bytes, what a number holds exactly. 2^64 - 1 was
 * stored rounded to 2^64, which no uint64 holds: every ListTopics failed INTERNAL after it.
 */
export const RETENTION_BYTES: Bounds = { min: 0, max: Number.MAX_SAFE_INTEGER };

/** Checks a topic's settings; returns them. */
export function checkTopicConfig(c: TopicConfig): TopicConfig {
  if (!(c.retentionMs >= RETENTION_MS.min)) throw invalidArgument("topic.retention", "must not be negative");
  if (c.retentionMs > RETENTION_MS.max)
    throw invalidArgument("topic.retention", `must be at most 3650 days, got ${c.retentionMs} ms`);
  if (!(c.retentionBytes >= RETENTION_BYTES.min))
    throw invalidArgument("topic.retention_bytes", "must not be negative");
  if (c.retentionBytes > RETENTION_BYTES.max)
    throw invalidArgument(
      "topic.retention_bytes",
      `must be at most ${RETENTION_BYTES.max} (2^53 - 1), got ${c.retentionBytes}`,
    );
  if (!(c.dedupWindowMs >= DEDUP_WINDOW_MS.min) || c.dedupWindowMs > DEDUP_WINDOW_MS.max)
    throw invalidArgument("topic.dedup_window", "must be 0 – 24 h");
  return c;
}

/** Checks a subscription's settings on topic `topicName`; returns them. */
export function checkSubscriptionConfig(topicName: string, c: SubscriptionConfig): SubscriptionConfig {
  checkAckDeadline("subscription.ack_deadline", c.ackDeadlineMs);
  if (c.minBackoffMs < BACKOFF_MS.min || c.maxBackoffMs < c.minBackoffMs || c.maxBackoffMs > BACKOFF_MS.max) {
    throw invalidArgument(
      "subscription.max_backoff",
      `must be ≥ min_backoff and ≤ 1 h (min ${c.minBackoffMs} ms, max ${c.maxBackoffMs} ms)`,
    );
  }
  const attempts = c.maxDeliveryAttempts;
  if (!Number.isInteger(attempts) || attempts < DELIVERY_ATTEMPTS.min || attempts > DELIVERY_ATTEMPTS.max) {
    throw invalidArgument(
      "subscription.max_delivery_attempts",
      `must be 0 (unlimited) – ${DELIVERY_ATTEMPTS.max}, got ${attempts}`,
    );
  }
  if (c.deadLetterTopic !== "") {
    validateName("subscription.dead_letter_topic", c.deadLetterTopic);
    if (c.deadLetterTopic === topicName)
      throw invalidArgument("subscription.dead_letter_topic", "must differ from the subscription's topic");
  }
  return c;
}
