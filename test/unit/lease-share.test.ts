import assert from "node:assert/strict";
import { test } from "node:test";
import { LEASE_ENTRY_BYTES, LeaseShare } from "../../src/core/lease-share.js";

/** A subscription as the share sees it: its entries and how often it was woken. */
function holder(share: LeaseShare) {
  const h = {
    entries: 0,
    woken: 0,
    scheduleDispatch: () => {
      h.woken++;
    },
    take(n: number): number {
      let took = 0;
      while (took < n && share.mayTake(h, h.entries * LEASE_ENTRY_BYTES)) {
        h.entries++;
        share.resize(h, LEASE_ENTRY_BYTES, h.entries * LEASE_ENTRY_BYTES);
        took++;
      }
      return took;
    },
    settle(n: number): void {
      h.entries -= n;
      share.resize(h, -n * LEASE_ENTRY_BYTES, h.entries * LEASE_ENTRY_BYTES);
    },
  };
  return h;
}

test("over the bound a subscription takes only up to an equal share; acks wake the ones waiting", () => {
  const share = new LeaseShare(100 * LEASE_ENTRY_BYTES);
  const hostile = holder(share);
  const polite = holder(share);
  assert.equal(hostile.take(1000), 100, "up to the bound");
  assert.equal(share.usedBytes, 100 * LEASE_ENTRY_BYTES);
  assert.equal(hostile.take(1), 0, "none past it");
  // Another subscription still gets its equal share (half of the bound among two holders).
  assert.equal(polite.take(1000), 50);
  assert.equal(polite.take(1), 0);
  assert.equal(hostile.woken + polite.woken, 0);
  // Acks that bring the total back to the bound wake both; the hostile one stays at the bound.
  polite.settle(50);
  assert.deepEqual([hostile.woken, polite.woken], [1, 1]);
  assert.equal(hostile.take(1), 0);
  assert.equal(polite.take(1000), 50, "its equal share again");
  hostile.settle(1);
  assert.equal(share.usedBytes, 149 * LEASE_ENTRY_BYTES);
});

test("equal shares taken one after another stop at twice the bound", () => {
  const share = new LeaseShare(100 * LEASE_ENTRY_BYTES);
  // 100, then half, a third, a quarter… of the bound: the last ones get what is left of twice it.
  const took = Array.from({ length: 6 }, () => holder(share).take(1000));
  assert.deepEqual(took, [100, 50, 33, 17, 1, 1]);
  assert.equal(share.usedBytes, 202 * LEASE_ENTRY_BYTES, "twice the bound, plus one each past it");
});

test("a subscription holding nothing may always take one: nobody starves", () => {
  const share = new LeaseShare(10 * LEASE_ENTRY_BYTES);
  const holders = Array.from({ length: 20 }, () => holder(share));
  for (const h of holders) assert.ok(h.take(5) >= 1);
  for (const h of holders) h.settle(h.entries);
  assert.equal(share.usedBytes, 0);
});

test("bytes other than entries (messages held back behind a key) count against the same bound", () => {
  const share = new LeaseShare(100 * LEASE_ENTRY_BYTES);
  const ordered = holder(share);
  assert.equal(ordered.take(1), 1);
  // Holding back messages of 12 B each: up to the bound, not past it.
  let held = 0;
  while (share.mayTake(ordered, ordered.entries * LEASE_ENTRY_BYTES + held * 12, 12)) {
    held++;
    share.resize(ordered, 12, ordered.entries * LEASE_ENTRY_BYTES + held * 12);
  }
  assert.equal(share.usedBytes, LEASE_ENTRY_BYTES + held * 12);
  assert.ok(share.usedBytes <= share.totalBytes && share.usedBytes + 12 > share.totalBytes);
  // Another subscription still gets its equal share of first deliveries.
  const other = holder(share);
  assert.equal(other.take(1000), 50);
  // Letting go of what was held back wakes the one waiting.
  share.resize(ordered, -held * 12, ordered.entries * LEASE_ENTRY_BYTES);
  assert.equal(ordered.woken, 1);
});
