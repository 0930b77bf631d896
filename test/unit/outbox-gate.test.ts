import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { OutboxGate } from "../../src/core/outbox-gate.js";
import type { OutboxRow } from "../../src/core/outbox-source.js";

const row = (id: number): OutboxRow => ({
  id,
  topic: "t",
  orderingKey: "",
  attributes: {},
  data: new Uint8Array(),
  ageMs: 0,
  readAt: 0,
});

test("rows wait behind a missing lower id until it appears or the row has waited gapWaitMs", () => {
  const gate = new OutboxGate(0, 100);
  // 1 and 2 visible, 3 missing, 4 visible: 4 waits.
  let r = gate.admit([row(1), row(2), row(4)], 1000);
  assert.deepEqual(
    r.ready.map((x) => x.id),
    [1, 2],
  );
  gate.advance(r.cursor, r.gaps);
  assert.equal(gate.cursor, 2);
  assert.equal(gate.nextRelease(1050), 50);
  // Still missing 50 ms later: still waits.
  r = gate.admit([row(4)], 1050);
  assert.deepEqual(r.ready, []);
  // 3 committed meanwhile: both go, in id order.
  r = gate.admit([row(3), row(4)], 1060);
  assert.deepEqual(
    r.ready.map((x) => x.id),
    [3, 4],
  );
  assert.equal(r.gaps, 0);
});

test("a gap is passed once the row above it has been visible for gapWaitMs, and counted", () => {
  const gate = new OutboxGate(10, 100);
  assert.deepEqual(gate.admit([row(13)], 0).ready, []);
  const r = gate.admit([row(13), row(14)], 100);
  assert.deepEqual(
    r.ready.map((x) => x.id),
    [13, 14],
  );
  assert.equal(r.gaps, 2);
  gate.advance(r.cursor, r.gaps);
  assert.equal(gate.cursor, 14);
  assert.equal(gate.passed, 2);
  assert.equal(gate.nextRelease(100), undefined, "nothing waits any more");
  // Where late rows can still appear: the passed gap, until the horizon forgets it.
  gate.advance(20, 5, [[15, 19]], 200);
  assert.deepEqual(gate.recentGaps(300, 1000, 10), [[15, 19]]);
  assert.deepEqual(
    gate.recentGaps(300, 1000, 0),
    [[15, 20]],
    "too many ranges: one from the oldest to the cursor",
  );
  assert.deepEqual(gate.recentGaps(1300, 1000, 10), []);
});

test("passed gaps carry their age: a new gate inherits them (up to its cursor) and forgets them when its predecessor would have", () => {
  const gate = new OutboxGate(0, 0);
  gate.advance(20, 5, [[5, 7]], 1000);
  gate.advance(30, 5, [[25, 29]], 1500);
  assert.deepEqual(gate.passedGaps(2000, 60_000, 10), [
    { lo: 5, hi: 7, ageMs: 1000 },
    { lo: 25, hi: 29, ageMs: 500 },
  ]);
  assert.deepEqual(
    gate.passedGaps(2000, 60_000, 1),
    [{ lo: 5, hi: 30, ageMs: 500 }],
    "merged: from the oldest to the cursor, as old as its newest part",
  );
  // A relay after a restart, its cursor recovered at 27: what lies above it is fetched above.
  const next = new OutboxGate(27, 0);
  next.inherit([...gate.passedGaps(2000, 60_000, 10), { lo: 5, hi: 7, ageMs: 1000 }], 10_000);
  assert.deepEqual(next.recentGaps(10_000, 60_000, 10), [
    [5, 7],
    [25, 27],
  ]);
  assert.deepEqual(next.recentGaps(69_100, 60_000, 10), [[25, 27]], "the older one passed 60 s ago");
  assert.deepEqual(next.recentGaps(69_600, 60_000, 10), []);
});

test("property: admitted rows are in id order, never skip a visible row, and wait only for gaps younger than gapWaitMs", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ id: fc.integer({ min: 1, max: 60 }), at: fc.integer({ min: 0, max: 500 }) }), {
        maxLength: 40,
      }),
      fc.integer({ min: 0, max: 200 }),
      (commits, gapWait) => {
        // Each id becomes visible at its time; the relay looks every 10 ms and relays what it may.
        const visibleAt = new Map<number, number>();
        for (const c of commits) if (!visibleAt.has(c.id)) visibleAt.set(c.id, c.at);
        const gate = new OutboxGate(0, gapWait);
        const relayed: number[] = [];
        for (let now = 0; now <= 1000; now += 10) {
          const above = [...visibleAt]
            .filter(([id, at]) => at <= now && id > gate.cursor)
            .map(([id]) => id)
            .sort((a, b) => a - b);
          const r = gate.admit(above.map(row), now);
          for (let i = 1; i < r.ready.length; i++) assert.ok(r.ready[i]!.id > r.ready[i - 1]!.id);
          // A prefix of what is visible, nothing skipped.
          assert.deepEqual(
            r.ready.map((x) => x.id),
            above.slice(0, r.ready.length),
          );
          relayed.push(...r.ready.map((x) => x.id));
          gate.advance(r.cursor, r.gaps);
        }
        // Long after the last commit, everything visible above the cursor went out, each once
        // (rows of passed gaps are the late sweep's, not the gate's).
        assert.equal(new Set(relayed).size, relayed.length);
        const late = [...visibleAt.keys()].filter((id) => !relayed.includes(id));
        for (const id of late)
          assert.ok(id < gate.cursor, `row ${id} was passed as a gap, so the late sweep has it`);
      },
    ),
  );
});
