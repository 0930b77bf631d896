import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { DeliverySchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { LogMessage } from "../../src/core/index.js";
import {
  decodeRun,
  encodeDeliveries,
  encodeRun,
  varintSize,
  WireReader,
  writeVarint,
} from "../../src/wire/index.js";

const messageArb = fc.record({
  data: fc.uint8Array({ maxLength: 64 }),
  attributes: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
  orderingKey: fc.string({ maxLength: 8 }),
  messageId: fc.string({ maxLength: 8 }),
  scheduleId: fc.option(fc.nat(), { nil: undefined }),
  publishTime: fc.integer({ min: 0, max: 4_000_000_000_000 }),
});

test("property: a run decodes to the messages it was made of, and a record plus attempt is the Delivery protobuf-es reads", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e9 }),
      fc.array(messageArb, { minLength: 1, maxLength: 20 }),
      (first, ms) => {
        const logged = ms.map((m, i) =>
          LogMessage.of(first + i, m.publishTime, m.data, {
            attributes: m.attributes,
            orderingKey: m.orderingKey,
            messageId: m.messageId,
            ...(m.scheduleId === undefined ? {} : { scheduleId: m.scheduleId }),
          }),
        );
        const run = encodeRun(logged, 123);
        assert.equal(run.firstSeq, first);
        assert.equal(run.lastSeq, first + ms.length - 1);
        assert.equal(
          run.ids === null,
          ms.every((m) => m.scheduleId === undefined),
        );
        const back = decodeRun(run.body, run.ids);
        assert.equal(back.length, ms.length);
        for (const [i, r] of back.entries()) {
          const original = logged[i]!;
          assert.equal(r.seq, original.seq);
          assert.equal(r.publishTime, original.publishTime);
          assert.deepEqual(Buffer.from(r.data), Buffer.from(original.data));
          const again = new LogMessage(r.seq, r.publishTime, r.data, r.meta);
          assert.deepEqual(again.attributes, original.attributes);
          assert.equal(again.orderingKey, original.orderingKey);
          assert.equal(again.messageId, original.messageId);
          assert.equal(again.scheduleId, original.scheduleId);
          // The delivery cut from the record equals the one encoded field by field.
          const viaRecord = encodeDeliveries([
            { message: { ...fields(again), record: r.record }, attempt: 3 },
          ]);
          const viaFields = encodeDeliveries([{ message: fields(again), attempt: 3 }]);
          assert.deepEqual(viaRecord, viaFields);
          const reader = new WireReader(viaRecord);
          reader.tag();
          const delivery = fromBinary(DeliverySchema, reader.bytes());
          assert.equal(delivery.seq, BigInt(original.seq));
          assert.equal(delivery.attempt, 3);
          assert.deepEqual(delivery.attributes, { ...original.attributes });
        }
        // A range of a run.
        const mid = first + Math.floor(ms.length / 2);
        assert.deepEqual(
          decodeRun(run.body, run.ids, mid, mid).map((r) => r.seq),
          [mid],
        );
      },
    ),
  );
});

function fields(m: LogMessage) {
  return { seq: m.seq, publishTime: m.publishTime, data: m.data, deliveryMeta: m.deliveryMeta };
}

test("a run refuses a gap in its seqs", () => {
  const m = (seq: number) =>
    LogMessage.of(seq, 1, Buffer.from("x"), { attributes: {}, orderingKey: "", messageId: "" });
  assert.throws(() => encodeRun([m(1), m(3)], 2), /seq 3 does not follow 2/);
});

test("property: varintSize is the length writeVarint writes, for every number up to 2^53", () => {
  const buf = Buffer.alloc(16);
  const edges = [
    0,
    127,
    128,
    2 ** 14 - 1,
    2 ** 14,
    2 ** 21,
    2 ** 28 - 1,
    2 ** 28,
    2 ** 35,
    2 ** 49,
    2 ** 53 - 1,
  ];
  for (const v of edges) assert.equal(varintSize(v), writeVarint(buf, 0, v), String(v));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 53 }), fc.double({ min: 0, max: 1, noNaN: true }), (bits, f) => {
      const v = Math.floor(f * 2 ** bits);
      assert.equal(varintSize(v), writeVarint(buf, 0, v));
    }),
  );
});
