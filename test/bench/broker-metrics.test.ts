import assert from "node:assert/strict";
import { test } from "node:test";
import { histogramOf, observedAbove, stallsBetween } from "../../bench/lib/broker-metrics.js";

/** A /metrics text with the two histograms the suite reads, store calls in two operations. */
function exposition(loop: number[], insert: number[], read: number[]): string {
  const bounds = ["0.01", "0.025", "0.1", "+Inf"];
  const lines = [
    "# HELP nervebus_event_loop_delay_seconds x",
    "# TYPE nervebus_event_loop_delay_seconds histogram",
  ];
  bounds.forEach((le, i) => {
    lines.push(`nervebus_event_loop_delay_seconds_bucket{le="${le}"} ${loop[i]}`);
  });
  lines.push(
    `nervebus_event_loop_delay_seconds_sum 1.5`,
    `nervebus_event_loop_delay_seconds_count ${loop[3]}`,
  );
  for (const [op, counts] of [
    ["insert", insert],
    ["read", read],
  ] as const) {
    bounds.forEach((le, i) => {
      lines.push(`nervebus_store_seconds_bucket{operation="${op}",le="${le}"} ${counts[i]}`);
    });
    lines.push(`nervebus_store_seconds_count{operation="${op}"} ${counts[3]}`);
  }
  return `${lines.join("\n")}\n`;
}

test("a histogram is read summed over its label sets, by cumulative bucket", () => {
  const h = histogramOf(exposition([5, 7, 9, 10], [1, 2, 3, 4], [10, 20, 30, 40]), "nervebus_store_seconds");
  assert.equal(h.count, 44);
  assert.equal(h.buckets.get(0.025), 22);
  assert.equal(h.buckets.get(Number.POSITIVE_INFINITY), 44);
  assert.equal(histogramOf("", "nervebus_store_seconds").count, 0);
});

test("observations above a bound are counted between two scrapes; an unknown bound is undefined", () => {
  const before = histogramOf(
    exposition([5, 7, 9, 10], [1, 2, 3, 4], [0, 0, 0, 0]),
    "nervebus_event_loop_delay_seconds",
  );
  // 12 more samples: 3 of them over 25 ms, 1 of those over 100 ms.
  const after = histogramOf(
    exposition([12, 16, 20, 22], [1, 2, 3, 4], [0, 0, 0, 0]),
    "nervebus_event_loop_delay_seconds",
  );
  assert.equal(observedAbove(before, after, 0.025), 3);
  assert.equal(observedAbove(before, after, 0.1), 1);
  assert.equal(observedAbove(before, after, 0.05), undefined);
});

test("stalls between two scrapes; none when a scrape or the loop histogram is missing", () => {
  const before = exposition([5, 7, 9, 10], [1, 2, 3, 4], [10, 20, 30, 40]);
  // Loop: 4 more samples, 2 over 25 ms, none over 100; store: insert 2 over 25 (1 over 100),
  // read 1 over 25 (and over 100).
  const after = exposition([7, 9, 13, 14], [1, 2, 4, 6], [11, 21, 31, 42]);
  const loadgen = { over25ms: 5, over100ms: 1 };
  assert.deepEqual(stallsBetween(before, after, loadgen, { before: 1_000, after: 251_000 }), {
    loopOver25ms: 2,
    loopOver100ms: 0,
    storeOver25ms: 3,
    storeOver100ms: 2,
    loadgenOver25ms: 5,
    loadgenOver100ms: 1,
    ioFullStallMs: 250,
  });
  assert.equal(stallsBetween(before, after, loadgen)?.ioFullStallMs, undefined, "no pressure figures");
  assert.equal(stallsBetween(undefined, after, loadgen), undefined);
  assert.equal(stallsBetween("", "", loadgen), undefined);
});
