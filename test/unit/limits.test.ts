import assert from "node:assert/strict";
import { test } from "node:test";
import { OPTIONS } from "../../src/config/index.js";
import {
  ACK_DEADLINE_MS,
  BACKOFF_MS,
  type Bounds,
  checkAckDeadline,
  checkDelay,
  checkShards,
  checkSubscriptionConfig,
  checkTopicConfig,
  checkWindow,
  DEDUP_WINDOW_MS,
  DELIVERY_ATTEMPTS,
  MAX_DELAY_MS,
  SHARDS,
  WINDOW_MAX_MESSAGES,
} from "../../src/core/limits.js";
import { PLAIN_SUBSCRIPTION, PLAIN_TOPIC } from "../support/core-broker.js";

const subscription = PLAIN_SUBSCRIPTION;
const topic = PLAIN_TOPIC;

test("each bound lets its ends through and refuses one past them", () => {
  const ends = (b: Bounds, check: (v: number) => unknown) => {
    check(b.min);
    check(b.max);
    assert.throws(() => check(b.min - 1));
    assert.throws(() => check(b.max + 1));
  };
  ends(ACK_DEADLINE_MS, (ms) => checkAckDeadline("f", ms));
  ends(SHARDS, (n) => checkShards("f", n));
  ends({ min: 0, max: MAX_DELAY_MS }, (ms) => checkDelay("f", ms));
  ends({ min: 1, max: WINDOW_MAX_MESSAGES }, (n) => checkWindow("w", { maxMessages: n, maxBytes: 0 }, 1024));
  ends(BACKOFF_MS, (ms) =>
    checkSubscriptionConfig("t", { ...subscription, minBackoffMs: 0, maxBackoffMs: ms }),
  );
  ends(DELIVERY_ATTEMPTS, (n) => checkSubscriptionConfig("t", { ...subscription, maxDeliveryAttempts: n }));
  ends(DEDUP_WINDOW_MS, (ms) => checkTopicConfig({ ...topic, dedupWindowMs: ms }));
});

test("the config table takes its ranges from the same limits", () => {
  const range = (key: string) => {
    const o = OPTIONS.find((x) => x.key === key)!;
    return { min: o.min, max: o.max };
  };
  assert.deepEqual(range("shards"), SHARDS);
  assert.deepEqual(range("ackDeadlineMs"), ACK_DEADLINE_MS);
  assert.deepEqual(range("maxBackoffMs"), BACKOFF_MS);
  assert.deepEqual(range("maxDeliveryAttempts"), DELIVERY_ATTEMPTS);
  assert.deepEqual(range("dedupWindowMs"), DEDUP_WINDOW_MS);
});

test("messages keep their words", () => {
  assert.throws(() => checkAckDeadline("subscribe.ack_deadline", 500), {
    message: "subscribe.ack_deadline: must be 1 s – 10 min, got 500 ms",
  });
  assert.throws(() => checkShards("topic.shards", 65), { message: "topic.shards: must be 1–64, got 65" });
  assert.throws(() => checkDelay("nacks[0].delay", -1), {
    message: "nacks[0].delay: must be between 0 and 7 days",
  });
  assert.throws(() => checkWindow("window", { maxMessages: 1, maxBytes: 100 }, 4096, 0), {
    message: "window.max_bytes: must be 0 (no limit) or at least the max message size 4096, got 100",
  });
});
