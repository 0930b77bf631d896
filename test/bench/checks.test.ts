import assert from "node:assert/strict";
import { test } from "node:test";
import { summarize } from "../../bench/checks.js";
import type { StoreResults, SuiteResults } from "../../bench/suite-results.js";

/**
 * bench/checks.ts on made-up results: ratios are taken within each run and then averaged, the
 * spread is the sample standard deviation, and bounds that must hold in every run read the
 * worst one. (The suite itself is exercised by suite-quick.test.ts.)
 */

const cpu = { broker: 5, db: 1, loadgen: 2 };

/** One store's run with a publish, its two ceilings, and an overload; the rest empty. */
function run(
  repeat: number,
  publish: number,
  rawInsert: number,
  noStore: number,
  rssMb: number,
): StoreResults {
  const pub = {
    shards: 4,
    bytes: 100,
    messagesPerSec: publish,
    confirmLatencyMs: { p99: 1 },
    cpuMicrosPerMessage: cpu,
  };
  return {
    store: "sqlite",
    repeat,
    raw: [
      { shards: 4, bytes: 100, insertRowsPerSec: rawInsert, selectRowsPerSec: 1, insertCpuMicrosPerRow: {} },
    ],
    rawRuns: [],
    noStore: [{ ...pub, messagesPerSec: noStore }],
    publish: [pub],
    drain: undefined,
    drains: [],
    e2e: [],
    overload: {
      maxRssBytes: rssMb * 1e6,
      messagesPerSec: 1000,
      verify: { missing: 0 },
      cpuMicrosPerMessage: cpu,
    },
  } as unknown as StoreResults;
}

function results(stores: StoreResults[]): SuiteResults {
  return { repeat: 2, options: { sizes: "100", "drain-sizes": "100" }, stores } as unknown as SuiteResults;
}

test("ratios within each run, then mean, min, max and relative stdev over the runs", () => {
  const r = results([run(1, 80, 100, 100, 200), run(2, 60, 50, 120, 350)]);
  summarize(r);
  const ratio = r.figures["sqlite: publish 100 B 4 shards / raw per-row INSERT"]!;
  // 0.8 and 1.2, not 140 / 150.
  assert.deepEqual(ratio.values, [0.8, 1.2]);
  assert.ok(Math.abs(ratio.mean - 1) < 1e-12);
  assert.equal(ratio.min, 0.8);
  assert.equal(ratio.max, 1.2);
  // Sample stdev of 0.8 and 1.2 is 0.2828…, over a mean of 1.
  assert.ok(Math.abs(ratio.relStdev - Math.SQRT2 / 5) < 1e-12);

  const byTarget = new Map(r.checks.map((c) => [c.target, c]));
  const insert = byTarget.get("publish ≥ 0.75 × raw per-row INSERT (100 B 4 shards)")!;
  assert.equal(insert.pass, true);
  assert.equal(insert.runs, 2);
  // 0.8 and 0.5: a mean of 0.65 fails 0.7.
  const noStore = byTarget.get("publish ≥ 0.7 × no-store ceiling (100 B 4 shards)")!;
  assert.ok(Math.abs(noStore.measured! - 0.65) < 1e-12);
  assert.equal(noStore.pass, false);
  // 200 and 350 MB: the mean (275) would pass, the worst run does not.
  const rss = byTarget.get("overload max RSS ≤ 300 MB (defaults), every run")!;
  assert.equal(rss.statistic, "highest run");
  assert.equal(rss.measured, 350);
  assert.equal(rss.pass, false);
  // Nothing measured: no verdict, and it says so.
  const drain = byTarget.get("drain with per-message acks ≥ 1.2 × raw per-row SELECT (100 B 4 shards)")!;
  assert.equal(drain.measured, null);
  assert.equal(drain.pass, null);
  assert.equal(drain.detail, "not measured");
  // A figure asked for without a target has no verdict either.
  assert.equal(byTarget.get("publish broker CPU µs/msg (100 B 4 shards), reported")?.pass, null);
});

test("a figure one run lacks counts only the runs that have it", () => {
  const second = run(2, 60, 50, 0, 200);
  second.noStore = [];
  const r = results([run(1, 80, 100, 100, 200), second]);
  summarize(r);
  const f = r.figures["sqlite: publish 100 B 4 shards / no-store"]!;
  assert.deepEqual(f.values, [0.8, null]);
  assert.equal(f.mean, 0.8);
  assert.equal(f.relStdev, 0);
});
