import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { AckRanges } from "../../src/core/index.js";

test("out-of-order acks raise the floor once the gap closes", () => {
  const r = new AckRanges(10);
  assert.equal(r.add(12), true);
  assert.equal(r.add(13), true);
  assert.equal(r.floor, 10);
  assert.deepEqual(r.ranges(), [[12, 13]]);
  assert.equal(r.add(11), true);
  assert.equal(r.floor, 13);
  assert.deepEqual(r.ranges(), []);
  assert.equal(r.add(5), false, "below the floor is already acked");
  assert.equal(r.add(13), false);
});

test("state restored from ranges answers the same", () => {
  const r = new AckRanges(0, [
    [3, 4],
    [8, 8],
  ]);
  assert.equal(r.has(3) && r.has(4) && r.has(8), true);
  assert.equal(r.has(5), false);
  assert.equal(r.nextMissing(2), 5);
  assert.equal(r.countAboveFloor, 3);
});

test("raiseFloor drops ranges below and absorbs contiguous ones", () => {
  const r = new AckRanges(0, [
    [3, 4],
    [6, 9],
  ]);
  r.raiseFloor(5);
  assert.equal(r.floor, 9);
  assert.deepEqual(r.ranges(), []);
});

test("property: matches a set model; ranges sorted, disjoint, non-adjacent, above floor+1", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 50 }),
      fc.array(fc.integer({ min: 0, max: 120 }), { maxLength: 300 }),
      (floor, seqs) => {
        const r = new AckRanges(floor);
        const model = new Set<number>();
        for (const s of seqs) {
          const fresh = s > floor && !model.has(s);
          assert.equal(r.add(s), fresh);
          if (s > floor) model.add(s);
        }
        let expectedFloor = floor;
        while (model.has(expectedFloor + 1)) expectedFloor++;
        assert.equal(r.floor, expectedFloor);
        for (let s = 0; s <= 125; s++) assert.equal(r.has(s), s <= floor || model.has(s), `has(${s})`);
        let prevEnd = r.floor + 1;
        for (const [a, b] of r.ranges()) {
          assert.ok(a <= b);
          assert.ok(a > prevEnd, "ranges are disjoint, non-adjacent, and start above floor + 1");
          prevEnd = b + 1;
        }
        const missing = r.nextMissing(floor);
        assert.equal(r.has(missing), false);
        for (let s = floor + 1; s < missing; s++) assert.equal(r.has(s), true);
      },
    ),
    { numRuns: 300 },
  );
});
