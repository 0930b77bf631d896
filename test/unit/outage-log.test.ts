import assert from "node:assert/strict";
import { test } from "node:test";
import { OUTAGE_REMIND_MS, OutageLog } from "../../src/core/index.js";

const MESSAGES = { started: "writes fail", ongoing: "writes still fail", ended: "writes work again" };

test("outage log: one warning when failures start, a reminder per interval while they go on, one info line when they end", () => {
  const lines: { level: string; msg: string; [k: string]: unknown }[] = [];
  let now = Date.parse("2026-12-07T03:00:00Z");
  const outage = new OutageLog(
    (level, msg, fields) => lines.push({ level, msg, ...fields }),
    MESSAGES,
    { topic: "orders" },
    OUTAGE_REMIND_MS,
    () => now,
  );
  outage.recovered();
  assert.deepEqual(lines, [], "nothing failed: nothing to say");
  // A retry every 50 ms for 65 s: 1301 failures.
  for (let t = 0; t <= 65_000; t += 50) {
    now = Date.parse("2026-12-07T03:00:00Z") + t;
    outage.failed(new Error(`refused at ${t}`));
  }
  assert.equal(outage.failing, true);
  assert.deepEqual(lines, [
    { level: "warn", msg: "writes fail", topic: "orders", err: "refused at 0" },
    {
      level: "warn",
      msg: "writes still fail",
      topic: "orders",
      failures: 601,
      since: "2026-12-07T03:00:00.000Z",
      err: "refused at 30000",
    },
    {
      level: "warn",
      msg: "writes still fail",
      topic: "orders",
      failures: 1201,
      since: "2026-12-07T03:00:00.000Z",
      err: "refused at 60000",
    },
  ]);
  now += 1000;
  outage.recovered({ why: "a write succeeded" });
  outage.recovered();
  assert.deepEqual(lines.slice(3), [
    {
      level: "info",
      msg: "writes work again",
      topic: "orders",
      why: "a write succeeded",
      failingForMs: 66_000,
      failures: 1301,
    },
  ]);
  assert.equal(outage.failing, false);
  assert.equal(outage.since, 0);
  // The next outage starts afresh.
  outage.failed("refused again");
  assert.deepEqual(lines.slice(4), [
    { level: "warn", msg: "writes fail", topic: "orders", err: "refused again" },
  ]);
});
