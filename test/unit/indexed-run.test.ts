import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  buildRun,
  decodeMeta,
  decodeRun,
  encodeRun,
  type IndexedRun,
  joinRuns,
  type PackMessage,
  packOf,
  recordOf,
  sliceRun,
} from "../../src/wire/index.js";

const messageArb = fc.record({
  // Both sides of copyViews' 256 B threshold (four bytes a step, then `set`), odd tails included.
  data: fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.uint8Array({ minLength: 250, maxLength: 300 })),
  attributes: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
  orderingKey: fc.string({ maxLength: 8 }),
  messageId: fc.string({ maxLength: 8 }),
  deliverAt: fc.constant(0),
});

/** A pack's messages cut into runs at `cuts`, built from the pack, with schedule ids where given. */
function runsOf(
  ms: PackMessage[],
  first: number,
  ids: (number | undefined)[],
): { runs: IndexedRun[]; time: number } {
  const pack = packOf(ms);
  const time = 1_700_000_000_123;
  const runs: IndexedRun[] = [];
  const half = Math.floor(ms.length / 2);
  const parts =
    half === 0
      ? [[0, ms.length]]
      : [
          [0, half],
          [half, ms.length],
        ];
  for (const [a, b] of parts) {
    const indices = Array.from({ length: b! - a! }, (_, k) => a! + k);
    runs.push(buildRun(pack, indices, first + a!, time, ids));
  }
  return { runs, time };
}

test("property: runs built from a pack hold the pack's messages; joined, cut and looked up they agree with encodeRun and decodeRun", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e9 }),
      fc.array(fc.tuple(messageArb, fc.option(fc.nat(), { nil: undefined })), {
        minLength: 1,
        maxLength: 20,
      }),
      (first, items) => {
        const ms = items.map(([m]) => m);
        const ids = items.map(([, id]) => id);
        const { runs, time } = runsOf(ms, first, ids);
        const [row] = joinRuns(runs);
        assert.equal(joinRuns(runs).length, 1, "runs that follow one another are one row");
        assert.equal(row!.firstSeq, first);
        assert.equal(row!.lastSeq, first + ms.length - 1);
        const back = decodeRun(row!.body, row!.ids);
        assert.equal(back.length, ms.length);
        back.forEach((r, i) => {
          const m = ms[i]!;
          const meta = decodeMeta(r.meta);
          assert.equal(r.seq, first + i);
          assert.equal(r.publishTime, time);
          assert.deepEqual(Buffer.from(r.data), Buffer.from(m.data));
          assert.equal(meta.orderingKey, m.orderingKey);
          assert.equal(meta.messageId, m.messageId);
          assert.equal(meta.scheduleId, ids[i]);
          const { traceparent, ...rest } = meta.attributes;
          assert.ok(traceparent === m.attributes.traceparent || m.attributes.traceparent === undefined);
          if (m.attributes.traceparent === undefined) assert.deepEqual(rest, { ...m.attributes });
          // The same record found by seq in the run that holds it, and as encodeRun writes it.
          const run = runs.find((x) => x.firstSeq <= r.seq && r.seq <= x.lastSeq)!;
          const found = recordOf(run, r.seq);
          assert.deepEqual(found.record, r.record);
          assert.deepEqual(found.meta, r.meta);
        });
        const again = encodeRun(back, row!.bytes);
        assert.deepEqual(again.body, row!.body);
        // Any cut of a run is the records it covers.
        const run = runs[runs.length - 1]!;
        const n = run.lastSeq - run.firstSeq + 1;
        for (let cut = 1; cut < n; cut++) {
          const [head, tail] = [sliceRun(run, 0, cut), sliceRun(run, cut, n)];
          const joined = joinRuns([head, tail]);
          assert.equal(joined.length, 1);
          assert.deepEqual(joined[0]!.body, run.body);
          assert.deepEqual(joined[0]!.ids ?? Buffer.alloc(0), run.ids ?? Buffer.alloc(0));
          assert.equal(head.payloadBytes + tail.payloadBytes, run.payloadBytes);
        }
      },
    ),
  );
});
