import assert from "node:assert/strict";
import { test } from "node:test";
import { answerBy, settleBy } from "../../src/core/answer-by.js";

test("answerBy: 100 ms before the deadline, halfway to it when less than 200 ms are left", () => {
  assert.equal(answerBy(10_000, 0), 9_900);
  assert.equal(answerBy(150, 0), 75);
  assert.equal(answerBy(Number.POSITIVE_INFINITY, 0), Number.POSITIVE_INFINITY);
});

test("settleBy: the wait's result when it comes first; the late error at its time, and nothing of the wait after that", async () => {
  assert.equal(await settleBy(Promise.resolve(7), Date.now() + 60_000, () => new Error("late")), 7);
  await assert.rejects(
    settleBy(Promise.reject(new Error("store")), Date.now() + 60_000, () => new Error("late")),
    /store/,
  );

  // Waits that end after the answer: a failure must not surface as an unhandled rejection
  // (the process would end), a success must not answer twice.
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on("unhandledRejection", onUnhandled);
  // settleBy's timers do not hold the process open (a pending call does, in the broker).
  const keepAlive = setInterval(() => {}, 1000);
  try {
    let fail!: (err: Error) => void;
    let succeed!: (v: number) => void;
    const failing = settleBy(
      new Promise<number>((_, reject) => {
        fail = reject;
      }),
      Date.now() + 20,
      () => new Error("late 1"),
    );
    const succeeding = settleBy(
      new Promise<number>((resolve) => {
        succeed = resolve;
      }),
      Date.now() + 20,
      () => new Error("late 2"),
    );
    await assert.rejects(failing, /late 1/);
    await assert.rejects(succeeding, /late 2/);
    fail(new Error("store, later"));
    succeed(1);
    // Unhandled rejections are reported after the microtasks of a macrotask.
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(unhandled, []);
    await assert.rejects(succeeding, /late 2/, "still the first answer");
  } finally {
    clearInterval(keepAlive);
    process.off("unhandledRejection", onUnhandled);
  }
});
