import assert from "node:assert/strict";
import { test } from "node:test";
import { scanPriorities } from "../../src/core/priority-rebuild.js";
import { buildRun, type IndexedRun, type Priority, packOf, sliceRun } from "../../src/wire/index.js";

/** Message `seq`'s priority in the test log: urgent every 997th, bulk every 7th, else normal. */
const priorityOf = (seq: number): Priority =>
  seq % 997 === 0 ? "urgent" : seq % 7 === 0 ? "bulk" : "normal";

/** A stored log of `last` messages in runs of 300, read back as a store's readRuns gives them. */
function log(last: number) {
  const runs: IndexedRun[] = [];
  for (let first = 1; first <= last; first += 300) {
    const n = Math.min(300, last - first + 1);
    const pack = packOf(
      Array.from({ length: n }, (_, k) => ({
        data: Buffer.from(`m${first + k}`),
        attributes: { kind: "x" },
        orderingKey: (first + k) % 2 === 0 ? "key" : "",
        messageId: `id-${first + k}`,
        priority: priorityOf(first + k),
        deliverAt: 0,
      })),
    );
    runs.push(buildRun(pack, undefined, first, Date.now()));
  }
  const reads: [number, number][] = [];
  return {
    reads,
    async readRuns(from: number, to: number) {
      reads.push([from, to]);
      // Only the records in [from, to], as a store's readRuns gives them.
      return runs
        .filter((r) => r.lastSeq >= from && r.firstSeq <= to)
        .map((r) =>
          sliceRun(r, Math.max(from, r.firstSeq) - r.firstSeq, Math.min(to, r.lastSeq) - r.firstSeq + 1),
        );
    },
    async read(): Promise<never> {
      throw new Error("format 2: runs only");
    },
  };
}

test("the scan finds every urgent and normal seq of stored runs in rising order, reading newest first", async () => {
  const reader = log(25_000);
  const found = await scanPriorities(reader, 101, 25_000);
  const want = (p: Priority) =>
    Array.from({ length: 25_000 }, (_, i) => i + 1).filter((s) => s >= 101 && priorityOf(s) === p);
  assert.equal(found.mixed, true);
  assert.deepEqual(found.urgent, want("urgent"));
  assert.deepEqual(found.normal, want("normal"));
  assert.deepEqual(reader.reads[0], [15_001, 25_000], "the newest chunk first");
  assert.deepEqual(reader.reads.at(-1), [101, 5_000]);
  assert.equal(found.lastOther, 24_997, "the highest urgent or bulk seq");
  assert.equal(found.from, 101);
});

test("seqs known to be normal are not read, and count as normal", async () => {
  const reader = log(25_000);
  // Recorded: nothing urgent or bulk above 12,000 up to 20,000; above that, recovered rows.
  const found = await scanPriorities(reader, 1, 25_000, [12_001, 20_000]);
  assert.deepEqual(reader.reads, [
    [20_001, 25_000],
    [2_001, 12_000],
    [1, 2_000],
  ]);
  const inRange = (s: number) => s >= 12_001 && s <= 20_000;
  assert.deepEqual(
    found.normal,
    Array.from({ length: 25_000 }, (_, i) => i + 1).filter((s) => inRange(s) || priorityOf(s) === "normal"),
  );
  assert.deepEqual(
    found.urgent,
    Array.from({ length: 25_000 }, (_, i) => i + 1).filter((s) => !inRange(s) && priorityOf(s) === "urgent"),
  );
});

test("a log of normal messages only is not mixed", async () => {
  const plain = {
    readRuns: async () => [
      buildRun(
        packOf([{ data: Buffer.from("a"), attributes: {}, orderingKey: "", messageId: "", deliverAt: 0 }]),
        undefined,
        1,
        Date.now(),
      ),
    ],
    read: async () => [],
  };
  const found = await scanPriorities(plain, 1, 1);
  assert.deepEqual(found, { urgent: [], normal: [1], mixed: false, lastOther: 0, from: 1 });
});
