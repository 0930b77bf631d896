import assert from "node:assert/strict";
import { test } from "node:test";
import { LogMessage } from "../../src/core/index.js";
import { TailCache } from "../../src/core/tail-cache.js";
import { TailCachePool } from "../../src/core/tail-cache-pool.js";

const message = (seq: number, bytes: number) =>
  LogMessage.of(seq, 1, Buffer.alloc(bytes), { attributes: {}, orderingKey: "", messageId: "" });

test("the pool bounds all caches together: the least recently written topics' caches go first", () => {
  const pool = new TailCachePool(100_000);
  const caches = Array.from({ length: 5 }, () => new TailCache(1 << 20, pool));
  // Each cache gets 40 kB: 200 kB in all, twice the pool.
  caches.forEach((cache, i) => {
    for (let seq = 1; seq <= 4; seq++) cache.append(message(seq, 10_000 - i));
  });
  assert.ok(pool.usedBytes <= 100_000, `pool holds ${pool.usedBytes}`);
  assert.equal(
    pool.usedBytes,
    caches.reduce((n, c) => n + c.bytes, 0),
    "the pool counts exactly what the caches hold",
  );
  assert.equal(caches[0]!.bytes, 0, "the least recently written cache was emptied");
  assert.equal(caches[0]!.get(1), undefined);
  assert.ok(caches[4]!.get(4), "the most recent topic keeps its newest messages");
  // Writing to an emptied cache again makes it the newest: another one goes.
  caches[0]!.append(message(5, 1000));
  assert.ok(caches[0]!.get(5));
  assert.ok(pool.usedBytes <= 100_000);
  pool.remove(caches[4]!);
  assert.equal(caches[4]!.bytes, 0);
  assert.equal(
    pool.usedBytes,
    caches.reduce((n, c) => n + c.bytes, 0),
  );
});

test("one topic larger than the pool is trimmed to the pool, keeping its newest message", () => {
  const pool = new TailCachePool(50_000);
  const cache = new TailCache(1 << 20, pool);
  for (let seq = 1; seq <= 20; seq++) cache.append(message(seq, 10_000));
  assert.ok(pool.usedBytes <= 50_000);
  assert.ok(cache.get(20));
  assert.equal(cache.get(1), undefined);
});
