import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { messageBytes } from "../../src/core/index.js";
import { LogMessage } from "../../src/core/model.js";
import {
  buildRun,
  copyStoredRange,
  encodeDeliveries,
  packOf,
  recordInfo,
  recordOf,
  recordTime,
} from "../../src/wire/index.js";

const messageArb = fc.record({
  data: fc.uint8Array({ maxLength: 300 }),
  attributes: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 200 }), { maxKeys: 3 }),
  orderingKey: fc.string({ maxLength: 8 }),
  messageId: fc.string({ maxLength: 8 }),
  deliverAt: fc.constant(0),
});

test("property: a span of stored records encodes as the same deliveries decoded (attempt 1), and recordInfo gives each message's window size and whether it has an ordering key", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e12 }),
      fc.array(messageArb, { minLength: 1, maxLength: 20 }),
      fc.nat(),
      fc.nat(),
      (first, ms, a, b) => {
        const run = buildRun(packOf(ms), undefined, first, 1_700_000_000_123);
        const from = a % ms.length;
        const to = from + 1 + (b % (ms.length - from));
        const decoded = [];
        for (let k = from; k < to; k++) {
          const r = recordOf(run, first + k);
          const m = new LogMessage(r.seq, r.publishTime, r.data, r.meta);
          decoded.push({ message: m, attempt: 1 });
        }
        assert.deepEqual(encodeDeliveries([{ run, from, to }]), encodeDeliveries(decoded));
        for (let k = 0; k < ms.length; k++) {
          // What the message path counts: the stored message (with the traceparent the broker
          // added), decoded.
          const r = recordOf(run, first + k);
          const stored = new LogMessage(r.seq, r.publishTime, r.data, r.meta);
          const info = recordInfo(run, k);
          assert.equal(Math.floor(info / 2), stored.bytes);
          assert.equal(Math.floor(info / 2), messageBytes(stored));
          assert.equal(info % 2, ms[k]!.orderingKey === "" ? 0 : 1);
        }
      },
    ),
  );
});

test("spans and single deliveries keep their order in one response", () => {
  const ms = [0, 1, 2].map((i) => ({
    data: Buffer.from(`m${i}`),
    attributes: {},
    orderingKey: "",
    messageId: "",
    deliverAt: 0,
  }));
  const run = buildRun(packOf(ms), undefined, 10, 1_700_000_000_000);
  const single = (k: number, attempt: number) => {
    const r = recordOf(run, 10 + k);
    return { message: new LogMessage(r.seq, r.publishTime, r.data, r.meta), attempt };
  };
  assert.deepEqual(
    encodeDeliveries([single(2, 3), { run, from: 0, to: 2 }]),
    encodeDeliveries([single(2, 3), single(0, 1), single(1, 1)]),
  );
});

test("property: a range copied out of a stored run holds just its records, with its own body, and agrees with the run", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e9 }),
      fc.array(messageArb, { minLength: 1, maxLength: 30 }),
      fc.nat(),
      fc.nat(),
      (first, ms, a, b) => {
        const run = buildRun(packOf(ms), undefined, first, 1_700_000_000_123, [undefined, 7]);
        const from = first + (a % ms.length);
        const to = from + (b % (first + ms.length - from));
        const copy = copyStoredRange(run.firstSeq, run.body, run.ids, from, to + 5);
        assert.ok(copy !== undefined);
        assert.equal(copy.firstSeq, from);
        assert.equal(copy.lastSeq, Math.min(to + 5, run.lastSeq));
        const cut = copyStoredRange(run.firstSeq, run.body, run.ids, from, to)!;
        assert.equal(cut.lastSeq, to);
        // Only the range's bytes are held, in a buffer of their own.
        const start = run.offsets[from - first]!;
        const end = to - first + 1 < run.offsets.length ? run.offsets[to - first + 1]! : run.body.length;
        assert.equal(cut.body.length, end - start);
        for (let seq = from; seq <= to; seq++) {
          const x = recordOf(cut, seq);
          const y = recordOf(run, seq);
          assert.deepEqual(x.record, y.record);
          assert.deepEqual(x.meta, y.meta);
          assert.equal(recordTime(cut, seq - from), 1_700_000_000_123);
        }
        assert.equal(
          copyStoredRange(run.firstSeq, run.body, run.ids, run.lastSeq + 1, run.lastSeq + 9),
          undefined,
        );
        if (
          from === run.firstSeq &&
          to === run.lastSeq &&
          run.body.byteLength * 2 >= run.body.buffer.byteLength
        ) {
          // The whole row, which is its own memory: kept as it is (a copy would hold the same bytes).
          assert.equal(cut.body, run.body);
        } else {
          // A copy, not a view: the row it came from can go.
          const before = Buffer.from(run.body);
          cut.body.fill(0);
          assert.deepEqual(run.body, before);
        }
      },
    ),
  );
});

test("a whole stored run that is a view into a larger buffer (a driver's network chunk holding other rows) is copied", () => {
  const ms = ["a", "b", "c"].map((d) => ({
    data: Buffer.from(d),
    attributes: {},
    orderingKey: "",
    messageId: "",
    deliverAt: 0,
  }));
  const run = buildRun(packOf(ms), undefined, 10, 1_700_000_000_123);
  const chunk = Buffer.alloc(run.body.length * 8, 0xee);
  run.body.copy(chunk, 100);
  const view = chunk.subarray(100, 100 + run.body.length);
  const whole = copyStoredRange(10, view, null, 10, 12)!;
  assert.equal(whole.lastSeq, 12);
  assert.notEqual(whole.body.buffer, chunk.buffer);
  assert.deepEqual(whole.body, run.body);
  // And a body that is its own memory is kept as it is when the read wants all of it.
  const own = Buffer.alloc(run.body.length); // not from Node's shared pool: its own memory
  run.body.copy(own);
  assert.equal(copyStoredRange(10, own, null, 1, 99)!.body, own);
  assert.notEqual(copyStoredRange(10, own, null, 11, 12)!.body.buffer, own.buffer);
});
