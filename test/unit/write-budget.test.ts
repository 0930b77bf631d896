import assert from "node:assert/strict";
import { test } from "node:test";
import { NerveBusError } from "../../src/core/index.js";
import { WriteBudget } from "../../src/core/write-budget.js";

const exhausted = (err: unknown) => err instanceof NerveBusError && err.code === "resource_exhausted";

test("packs wait in order for room, are refused when the wait queue is full, and give up at their deadline", async () => {
  const budget = new WriteBudget(100);
  assert.equal(budget.acquire(60, Date.now() + 1000), undefined, "fits at once");
  const order: string[] = [];
  const a = budget.acquire(50, Date.now() + 5000)!.then(() => order.push("a"));
  const b = budget.acquire(40, Date.now() + 5000)!.then(() => order.push("b"));
  await assert.rejects(
    budget.acquire(20, Date.now() + 5000)!,
    exhausted,
    "waiting bytes would exceed the budget",
  );
  const late = budget.acquire(5, Date.now() + 50)!;
  await assert.rejects(late, exhausted, "gave up at its deadline");
  budget.release(60);
  await Promise.all([a, b]);
  assert.deepEqual(order, ["a", "b"], "first come, first served");
  assert.equal(budget.usedBytes, 90);
  await assert.rejects(
    budget.acquire(20, Date.now() - 1)!,
    exhausted,
    "a deadline already past fails at once",
  );
});

test("a pack larger than the whole budget passes alone", () => {
  const budget = new WriteBudget(100);
  assert.equal(budget.acquire(500, Date.now() + 1000), undefined);
  assert.equal(budget.usedBytes, 500);
});
