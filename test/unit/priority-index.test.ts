import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type LaneSeqs, MAX_LANE_ENTRIES, PriorityIndex, SeqLane } from "../../src/core/priority-index.js";
import { PRIORITY_CYCLE, PriorityPicker } from "../../src/core/priority-picker.js";

test("property: firstAtLeast finds the first kept seq at or above any seq", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { maxLength: 200 }),
      fc.integer({ min: 0, max: 10_001 }),
      (raw, probe) => {
        const seqs = [...raw].sort((a, b) => a - b);
        const lane = new SeqLane();
        for (const s of seqs) lane.push(s);
        const want = seqs.find((s) => s >= probe);
        assert.equal(lane.at(lane.firstAtLeast(probe)), want);
      },
    ),
  );
});

test("a lane forgets its oldest entries past MAX_LANE_ENTRIES and stays searchable", () => {
  const lane = new SeqLane();
  const n = MAX_LANE_ENTRIES + 10_000;
  for (let s = 1; s <= n; s++) lane.push(s);
  assert.equal(lane.size, MAX_LANE_ENTRIES);
  assert.equal(lane.at(lane.firstAtLeast(1)), n - MAX_LANE_ENTRIES + 1, "the forgotten ones are not found");
  assert.equal(lane.at(lane.firstAtLeast(n)), n);
  assert.equal(lane.at(lane.firstAtLeast(n + 1)), undefined);
});

test("the index keeps nothing until a message is not normal, then urgent and normal seqs", () => {
  const index = new PriorityIndex();
  index.note(1, undefined);
  index.note(2, "normal");
  assert.equal(index.mixed, false);
  assert.equal(index.normal.size, 0);
  index.note(3, "bulk");
  index.note(4, "urgent");
  index.note(5, undefined);
  assert.equal(index.mixed, true);
  assert.deepEqual([index.urgent.at(index.urgent.firstAtLeast(0)), index.urgent.size], [4, 1]);
  assert.deepEqual([index.normal.at(index.normal.firstAtLeast(0)), index.normal.size], [5, 1]);
});

test("a rebuild puts the stored backlog's seqs in front of those noted while it ran", async () => {
  const index = new PriorityIndex();
  let finish!: (found: LaneSeqs) => void;
  index.rebuild(new Promise((r) => (finish = r)));
  assert.equal(index.loading, true);
  index.note(11, undefined);
  index.note(12, "urgent");
  finish({ urgent: [3, 7], normal: [1, 2, 4], mixed: true, lastOther: 7, from: 1 });
  await index.ready;
  assert.equal(index.loading, false);
  assert.equal(index.mixed, true);
  const all = (lane: SeqLane) =>
    Array.from({ length: lane.size }, (_, i) => lane.at(lane.firstAtLeast(0) + i));
  assert.deepEqual(all(index.urgent), [3, 7, 12]);
  assert.deepEqual(all(index.normal), [1, 2, 4, 11]);
});

test("a rebuild that finds only normal messages keeps nothing; a failed one leaves appends' lanes", async () => {
  const plain = new PriorityIndex();
  plain.rebuild(Promise.resolve({ urgent: [], normal: [1, 2], mixed: false, lastOther: 0, from: 1 }));
  plain.note(3, undefined);
  await plain.ready;
  assert.deepEqual([plain.mixed, plain.normal.size, plain.loading], [false, 0, false]);
  const failed = new PriorityIndex();
  failed.rebuild(Promise.reject(new Error("store down")));
  failed.note(5, "urgent");
  await failed.ready;
  assert.deepEqual([failed.mixed, failed.urgent.size, failed.loading], [true, 1, false]);
});

test("the picker's cycle: 8 urgent-first slots, 1 normal-first, 1 oldest-first", () => {
  const picker = new PriorityPicker();
  const firsts: string[] = [];
  for (let i = 0; i < 2 * PRIORITY_CYCLE; i++) {
    firsts.push(picker.order()[0]!);
    picker.delivered();
  }
  const cycle = [...Array(8).fill("urgent"), "normal", "oldest"];
  assert.deepEqual(firsts, [...cycle, ...cycle]);
  for (let i = 0; i < PRIORITY_CYCLE; i++) {
    assert.equal(new Set(picker.order()).size, 3, "every lane is tried in every slot");
    picker.delivered();
  }
});
