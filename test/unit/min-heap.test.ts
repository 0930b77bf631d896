import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { MinHeap } from "../../src/core/min-heap.js";

test("property: pops come out in key order; retain keeps exactly the accepted entries", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 300 }),
      fc.integer({ min: 2, max: 5 }),
      (keys, mod) => {
        const heap = new MinHeap<number>();
        for (let i = 0; i < keys.length; i++) heap.push(keys[i]!, i);
        heap.retain((k) => k % mod !== 0);
        const expected = keys.filter((k) => k % mod !== 0).sort((a, b) => a - b);
        assert.equal(heap.size, expected.length);
        const popped: number[] = [];
        while (heap.size > 0) {
          popped.push(heap.peekKey()!);
          heap.pop();
        }
        assert.deepEqual(popped, expected);
      },
    ),
  );
});
