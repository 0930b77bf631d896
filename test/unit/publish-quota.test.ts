import assert from "node:assert/strict";
import { test } from "node:test";
import { PublishQuota } from "../../src/api/publish-quota.js";
import type { NerveBusError } from "../../src/core/index.js";

test("a quota admits a second's worth, refuses while in debt with the wait named, refills at its rate, per principal", () => {
  const q = new PublishQuota({ messagesPerSecond: 100, bytesPerSecond: 0 });
  q.take('principal "a"', 60, 0, 0);
  q.take('principal "a"', 60, 0, 0); // a pack is never split: the bucket goes to -20
  assert.throws(
    () => q.take('principal "a"', 1, 0, 0),
    (err: NerveBusError) => {
      assert.equal(err.code, "resource_exhausted");
      assert.match(err.message, /principal "a" is over its publish quota \(100 msg\/s\); retry after 210 ms/);
      assert.equal(err.retryAfterMs, 210);
      return true;
    },
  );
  q.take('principal "b"', 100, 0, 0); // another principal has its own bucket
  assert.throws(() => q.take('principal "a"', 1, 0, 200), /retry after 10 ms/);
  q.take('principal "a"', 1, 0, 215);
  // Idle time refills at most one second's worth.
  q.take('principal "a"', 100, 0, 5000);
  assert.throws(() => q.take('principal "a"', 1, 0, 5000), /over its publish quota/);
});

test("a byte quota works the same, and no quota admits everything", () => {
  const q = new PublishQuota({ messagesPerSecond: 0, bytesPerSecond: 1000 });
  q.take("client 127.0.0.1", 5, 1500, 0);
  assert.throws(() => q.take("client 127.0.0.1", 1, 1, 100), /\(1000 bytes\/s\); retry after 401 ms/);
  const none = new PublishQuota({ messagesPerSecond: 0, bytesPerSecond: 0 });
  assert.equal(none.enabled, false);
  for (let i = 0; i < 1000; i++) none.take("x", 1_000_000, 1 << 30, 0);
});
