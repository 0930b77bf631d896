import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { CorruptRowsError } from "../../src/core/index.js";
import { messageOfRun } from "../../src/core/model.js";
import { indexedRunsOf, messagesOfRuns, type StoredRun } from "../../src/store/codec.js";
import { buildRun, decodeMeta, packOf, recordInfo, recordOf } from "../../src/wire/index.js";
import { WireError } from "../../src/wire/wire-format.js";

const messageArb = fc.record({
  data: fc.uint8Array({ maxLength: 40 }),
  attributes: fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
  orderingKey: fc.string({ maxLength: 4 }),
  messageId: fc.string({ maxLength: 4 }),
  deliverAt: fc.constant(0),
});

/** A change to a stored body: one byte set to a value, or the body cut at a point. */
const damageArb = fc.oneof(
  fc.record({ kind: fc.constant("byte" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }),
);

/**
 * Whatever a damaged body holds, reading it as a store does gives either CorruptRowsError or
 * records that every later reader parses without throwing: the window size of a first delivery
 * (recordInfo), the message cut from the run, its metadata (whose strings' UTF-8 only decoding
 * checks), and messages read as messages, decoded. Before, some damage threw out of a delivery
 * (test/integration/corrupt-run-sqlite.test.ts).
 */
test("property: a damaged stored run is CorruptRowsError or records that parse everywhere", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e6 }),
      fc.array(messageArb, { minLength: 1, maxLength: 8 }),
      damageArb,
      (first, ms, damage) => {
        const run = buildRun(packOf(ms), undefined, first, 1_700_000_000_000);
        const body = Buffer.from(run.body);
        const at = damage.at % body.length;
        if (damage.kind === "byte") body[at] = damage.value;
        const damaged = damage.kind === "byte" ? body : body.subarray(0, at);
        const stored: StoredRun = { firstSeq: first, lastSeq: run.lastSeq, body: damaged, ids: null };
        const topic = { name: "t" };
        try {
          for (const r of indexedRunsOf(topic, [stored], first, run.lastSeq)) {
            for (let k = 0; k < r.offsets.length; k++) {
              assert.ok(recordInfo(r, k) >= 0);
              const m = messageOfRun(r, r.firstSeq + k);
              assert.equal(m.seq, r.firstSeq + k);
              void m.bytes;
              // Strings are checked where they are decoded (a subscription turns this error
              // into the run's DATA_LOSS): nothing else may be thrown.
              try {
                decodeMeta(recordOf(r, r.firstSeq + k).meta);
              } catch (err) {
                assert.ok(err instanceof WireError && /UTF-8/.test(err.message), String(err));
              }
            }
          }
        } catch (err) {
          if (!(err instanceof CorruptRowsError)) throw err;
          assert.equal(err.code, "data_loss");
          assert.equal(err.firstSeq, first);
          assert.equal(err.lastSeq, run.lastSeq);
        }
        try {
          for (const m of messagesOfRuns(topic, [stored], first, run.lastSeq)) {
            void m.attributes;
            void m.bytes;
          }
        } catch (err) {
          if (!(err instanceof CorruptRowsError)) throw err;
        }
      },
    ),
    { numRuns: 3000 },
  );
});

test("an undamaged run reads back whole, and a body shorter than its row's seqs is corrupt", () => {
  const ms = Array.from({ length: 5 }, (_, i) => ({
    data: Buffer.from(`m${i}`),
    attributes: {},
    orderingKey: "",
    messageId: "",
    deliverAt: 0,
  }));
  const run = buildRun(packOf(ms), undefined, 10, 1_700_000_000_000);
  const stored: StoredRun = { firstSeq: 10, lastSeq: 14, body: run.body, ids: null };
  assert.deepEqual(
    messagesOfRuns({ name: "t" }, [stored], 10, 14).map((m) => m.seq),
    [10, 11, 12, 13, 14],
  );
  // Whole records dropped from the end: every record left is well formed, but seqs are missing.
  const short = { ...stored, body: run.body.subarray(0, run.offsets[3]!) };
  assert.throws(
    () => indexedRunsOf({ name: "t" }, [short], 10, 14),
    (err: unknown) => err instanceof CorruptRowsError && /holds 3 of the 5 records/.test(err.message),
  );
  assert.throws(() => messagesOfRuns({ name: "t" }, [short], 12, 14), CorruptRowsError);
});
