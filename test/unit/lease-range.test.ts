import assert from "node:assert/strict";
import { test } from "node:test";
import type { Consumer } from "../../src/core/consumer.js";
import { LeaseRange } from "../../src/core/lease-range.js";

const consumer = {} as Consumer;

test("a ranged lease finds its seqs while held, consecutive or not", () => {
  for (const seqs of [[10, 11, 12, 13, 14], [10, 12, 13, 17, 30], [7]]) {
    const r = new LeaseRange(
      consumer,
      seqs,
      seqs.map(() => 3),
      0,
    );
    for (const [i, s] of seqs.entries()) assert.equal(r.indexOf(s), i, `seq ${s} of ${seqs}`);
    for (const s of [0, 9, 11.5, 15, 31, Number.MAX_SAFE_INTEGER])
      if (!seqs.includes(s)) assert.equal(r.indexOf(s), -1, `seq ${s} of ${seqs}`);
    assert.equal(r.release(0), 3);
    assert.equal(r.indexOf(seqs[0]!), -1, "released");
    assert.equal(r.open, seqs.length - 1);
  }
});

test("a ranged lease released in full keeps its bounds and holds nothing", () => {
  for (const seqs of [
    [10, 11, 12],
    [10, 12, 17],
  ]) {
    const r = new LeaseRange(consumer, seqs, [1, 2, 3], 0);
    assert.deepEqual(
      seqs.map((_, i) => r.release(i)),
      [1, 2, 3],
    );
    assert.equal(r.open, 0);
    assert.deepEqual([r.first, r.last], [10, seqs[2]]);
    assert.deepEqual(r.heldIndexes(), []);
    for (const s of [...seqs, 9, 13]) assert.equal(r.indexOf(s), -1, `seq ${s} of ${seqs}`);
  }
});
