import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { CommitTracker } from "../../src/core/index.js";

test("watermark stays below the lowest uncommitted seq of any shard", () => {
  const t = new CommitTracker(4, 0);
  assert.equal(t.assign(10), 1);
  assert.equal(t.watermark, 0);
  t.commit(1, 9); // shard 1 holds 1, 5, 9
  assert.equal(t.watermark, 1);
  t.commit(2, 10);
  t.commit(3, 7);
  assert.equal(t.watermark, 3);
  t.commit(0, 8);
  assert.equal(t.watermark, 10);
});

test("commit of a seq in another shard is refused", () => {
  const t = new CommitTracker(3, 0);
  t.assign(6);
  assert.throws(() => t.commit(0, 4), /not in shard 0/);
});

test("property: the watermark is the end of the contiguous committed prefix", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 0, max: 1000 }),
      fc.array(
        fc.oneof(
          fc.record({ assign: fc.integer({ min: 1, max: 20 }) }),
          fc.record({ shard: fc.nat(), take: fc.nat({ max: 10 }) }),
        ),
        {
          maxLength: 200,
        },
      ),
      (shards, start, ops) => {
        const t = new CommitTracker(shards, start);
        const committed = new Set<number>();
        // What each shard writer has queued, in seq order (the real writers flush FIFO).
        const queues: number[][] = Array.from({ length: shards }, () => []);
        for (const op of ops) {
          if ("assign" in op) {
            const first = t.assign(op.assign);
            for (let s = first; s < first + op.assign; s++) queues[s % shards]!.push(s);
          } else {
            const shard = op.shard % shards;
            const batch = queues[shard]!.splice(0, op.take);
            if (batch.length === 0) continue;
            for (const s of batch) committed.add(s);
            t.commit(shard, batch[batch.length - 1]!);
          }
          let expected = start;
          while (committed.has(expected + 1)) expected++;
          assert.equal(t.watermark, expected);
        }
      },
    ),
    { numRuns: 300 },
  );
});
