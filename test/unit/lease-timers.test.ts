import assert from "node:assert/strict";
import { test } from "node:test";
import { LeaseTimers } from "../../src/core/lease-timers.js";

test("due entries come out oldest first, each with the time it was set for; later ones stay", () => {
  const timers = new LeaseTimers(() => {});
  timers.retry(1, 300);
  timers.leases([2, 3], 100);
  timers.lease(4, 200);
  timers.retry(5, 900);
  const seen: string[] = [];
  timers.runDue(
    300,
    (seq, at) => seen.push(`expire ${seq}@${at}`),
    (seq, at) => seen.push(`due ${seq}@${at}`),
  );
  assert.deepEqual(seen, ["expire 2@100", "expire 3@100", "expire 4@200", "due 1@300"]);
  seen.length = 0;
  timers.runDue(
    899,
    (seq) => seen.push(`expire ${seq}`),
    (seq) => seen.push(`due ${seq}`),
  );
  assert.deepEqual(seen, []);
  timers.close();
});

/** Timers holding a delivered batch of seqs 1–10 000 and redeliveries of 20 000 and 20 001. */
function crowded(): LeaseTimers {
  const timers = new LeaseTimers(() => {});
  const batch: number[] = [];
  for (let seq = 1; seq <= 10_000; seq++) batch.push(seq);
  timers.leases(batch, 50);
  timers.retry(20_000, 60);
  timers.retry(20_001, 60);
  return timers;
}

function drain(timers: LeaseTimers): number[] {
  const out: number[] = [];
  timers.runDue(
    100,
    (seq) => out.push(seq),
    (seq) => out.push(seq),
  );
  timers.close();
  return out;
}

test("stale entries are dropped only once they outnumber live messages by far", () => {
  const current = new Set([3, 20_000]);
  const isCurrent = (_kind: "lease" | "retry", seq: number) => current.has(seq);
  // 10 002 entries (seqs of a batch counted singly) against a bound of 4 × live + 10 000.
  const kept = crowded();
  kept.compactIfStale(1, isCurrent);
  assert.equal(drain(kept).length, 10_002);
  const compacted = crowded();
  compacted.compactIfStale(0, isCurrent);
  assert.deepEqual(drain(compacted), [3, 20_000]);
});
