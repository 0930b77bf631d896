import assert from "node:assert/strict";
import { test } from "node:test";
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { DeliverySchema, MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  MessageResult_Outcome,
  MessageResultSchema,
  SendPackRequestSchema,
  SendPackResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import {
  NackSchema,
  ReceiveRequestSchema,
  ReceiveResponseSchema,
  WindowSchema,
} from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { LogMessage, type MessageOutcome, messageBytes, Outcomes } from "../../src/core/index.js";
import {
  ackSeqNumbers,
  decodeMeta,
  decodeReceiveRequest,
  encodeDeliveries,
  encodeMeta,
  encodeSendPackResponse,
  malformedReason,
  metaIds,
  readSendPack,
  traceIdOf,
} from "../../src/wire/index.js";

const TRACEPARENT = `00-${"4bf92f3577b34da6a3ce929d0e0e4736"}-00f067aa0ba902b7-01`;

// Strings with multi-byte characters, so byte lengths and character counts differ.
const text = fc.string({ unit: "grapheme", maxLength: 12 });
const attributes = fc.dictionary(text, text, { maxKeys: 4 });
const fields = fc.record({
  attributes,
  orderingKey: text,
  messageId: text,
  withTrace: fc.boolean(),
  scheduleId: fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }),
  priority: fc.constantFrom(undefined, "urgent" as const, "normal" as const, "bulk" as const),
});

test("property: metadata round-trips, its byte count equals messageBytes, and ids are read alone", () => {
  fc.assert(
    fc.property(fields, fc.uint8Array({ maxLength: 64 }), (f, data) => {
      const attrs = f.withTrace ? { ...f.attributes, traceparent: TRACEPARENT } : f.attributes;
      const traceId = traceIdOf(attrs.traceparent) ?? "";
      const meta = encodeMeta({ ...f, attributes: attrs }, traceId, f.scheduleId);
      const back = decodeMeta(meta);
      assert.deepEqual(back, {
        attributes: { ...attrs },
        orderingKey: f.orderingKey,
        messageId: f.messageId,
        traceId,
        scheduleId: f.scheduleId,
        priority: f.priority ?? "normal",
      });
      assert.deepEqual(metaIds(meta), { messageId: f.messageId, scheduleId: f.scheduleId });
      const m = new LogMessage(7, 1_700_000_000_123, data, meta);
      assert.equal(
        m.bytes,
        messageBytes({ data, attributes: attrs, orderingKey: f.orderingKey, messageId: f.messageId }),
      );
    }),
  );
});

test("rows stored as JSON by earlier versions still read, and deliver the same bytes", () => {
  const json = Buffer.from(
    JSON.stringify({ a: { traceparent: TRACEPARENT, k: "v" }, k: "key", i: "id-1", s: 42 }),
  );
  const legacy = new LogMessage(5, 1_000, Buffer.from("x"), json);
  assert.deepEqual(legacy.attributes, { traceparent: TRACEPARENT, k: "v" });
  assert.equal(legacy.orderingKey, "key");
  assert.equal(legacy.messageId, "id-1");
  assert.equal(legacy.scheduleId, 42);
  assert.equal(legacy.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert.deepEqual(metaIds(json), { messageId: "id-1", scheduleId: 42 });
  const current = LogMessage.of(5, 1_000, Buffer.from("x"), {
    attributes: { traceparent: TRACEPARENT, k: "v" },
    orderingKey: "key",
    messageId: "id-1",
    scheduleId: 42,
  });
  assert.equal(legacy.bytes, current.bytes);
  assert.deepEqual(
    encodeDeliveries([{ message: legacy, attempt: 1 }]),
    encodeDeliveries([{ message: current, attempt: 1 }]),
  );
});

test("property: SendPack requests decode exactly as protobuf-es decodes them", () => {
  // A traceparent attribute that is valid (the usual case, read without UTF-8 checks) or not
  // (kept as sent, no trace id); payloads on both sides of copyViews' 256 B threshold.
  const traced = fc.oneof(
    attributes,
    attributes.map((a) => ({ ...a, traceparent: TRACEPARENT })),
    fc.tuple(attributes, text).map(([a, t]) => ({ ...a, traceparent: t })),
  );
  const message = fc.record({
    data: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 250, maxLength: 300 })),
    attributes: traced,
    orderingKey: text,
    messageId: text,
    priority: fc.integer({ min: 0, max: 3 }),
    when: fc.oneof(
      fc.constant(undefined),
      fc.record({ deliverAt: fc.integer({ min: 0, max: 2 ** 41 }).map((ms) => timestampFromMs(ms)) }),
      fc.record({ delay: fc.integer({ min: -5000, max: 10 ** 9 }).map((ms) => durationFromMs(ms)) }),
    ),
  });
  fc.assert(
    fc.property(text, fc.array(message, { maxLength: 8 }), (topic, messages) => {
      const req = create(SendPackRequestSchema, {
        topic,
        messages: messages.map(({ when, ...m }) => create(MessageSchema, { ...m, ...when })),
      });
      const bytes = Buffer.from(toBinary(SendPackRequestSchema, req));
      const { topic: readTopic, pack, malformed } = readSendPack(bytes, "nervebus-");
      assert.equal(malformed, undefined);
      assert.equal(readTopic, topic);
      const theirs = fromBinary(SendPackRequestSchema, bytes).messages;
      assert.equal(pack.count, theirs.length);
      theirs.forEach((m, i) => {
        const mine = pack.message(i);
        assert.deepEqual(Buffer.from(mine.data), Buffer.from(m.data));
        const { traceparent, ...rest } = mine.attributes;
        if (m.attributes.traceparent === undefined) {
          // The broker starts a trace for a message without one.
          assert.ok(traceIdOf(traceparent) !== undefined);
          assert.deepEqual(rest, m.attributes);
          assert.equal(pack.storedBytes[i], pack.sentBytes[i]! + "traceparent".length + 55);
        } else {
          assert.deepEqual(mine.attributes, m.attributes);
          assert.equal(pack.storedBytes[i], pack.sentBytes[i]);
        }
        assert.equal(pack.traceId(i), traceIdOf(traceparent) ?? "");
        assert.equal(mine.orderingKey, m.orderingKey);
        assert.equal(mine.messageId, m.messageId);
        assert.equal(pack.messageId(i), m.messageId);
        assert.equal(pack.sentBytes[i], messageBytes(m));
        assert.equal(pack.sentDeliverAt?.[i] ?? 0, m.deliverAt === undefined ? 0 : timestampMs(m.deliverAt));
        const sentDelay = pack.sentDelay?.[i];
        assert.equal(
          sentDelay === undefined || Number.isNaN(sentDelay) ? undefined : sentDelay,
          m.delay === undefined ? undefined : durationMs(m.delay),
        );
        assert.equal(pack.priorityOf(i), m.priority === 1 ? "urgent" : m.priority === 3 ? "bulk" : undefined);
        assert.equal(mine.priority, pack.priorityOf(i));
      });
    }),
  );
});

test("a SendPack with a reserved attribute key or bytes that are not UTF-8 is read as such", () => {
  const req = create(SendPackRequestSchema, {
    topic: "t",
    messages: [
      create(MessageSchema, { attributes: { a: "1" } }),
      create(MessageSchema, { attributes: { "nervebus-x": "1" } }),
    ],
  });
  const { pack } = readSendPack(Buffer.from(toBinary(SendPackRequestSchema, req)), "nervebus-");
  assert.deepEqual(pack.reservedKey, { index: 1, key: "nervebus-x" });
  // Message 0: priority (field 7) 9, which is none.
  const { pack: badPriority } = readSendPack(Buffer.from([0x12, 2, 0x38, 9]), "nervebus-");
  assert.deepEqual(badPriority.badPriority, { index: 0, value: 9 });
  // Message 0: ordering_key (field 3) holding 0xff.
  const bad = Buffer.from([0x12, 3, 0x1a, 1, 0xff]);
  assert.match(readSendPack(bad, "nervebus-").malformed ?? "", /ordering_key is not valid UTF-8/);
});

test("property: SendPack responses encode exactly as protobuf-es encodes them", () => {
  const outcome = fc.record({
    outcome: fc.constantFrom("appended", "duplicate", "scheduled") as fc.Arbitrary<MessageOutcome["outcome"]>,
    seq: fc.integer({ min: 0, max: 2 ** 53 - 1 }),
    traceId: fc.constantFrom("", "4bf92f3577b34da6a3ce929d0e0e4736"),
  });
  const codes = {
    appended: MessageResult_Outcome.APPENDED,
    duplicate: MessageResult_Outcome.DUPLICATE,
    scheduled: MessageResult_Outcome.SCHEDULED,
  };
  fc.assert(
    fc.property(fc.nat(), fc.nat(), fc.array(outcome, { maxLength: 10 }), (first, last, results) => {
      const columns = new Outcomes(results.length, undefined);
      for (const [i, r] of results.entries()) columns.set(i, codes[r.outcome], r.seq, r.traceId);
      const ours = encodeSendPackResponse(first, last, columns);
      const expected = create(SendPackResponseSchema, {
        firstSeq: BigInt(first),
        lastSeq: BigInt(last),
        results: results.map((r) =>
          create(MessageResultSchema, { outcome: codes[r.outcome], seq: BigInt(r.seq), traceId: r.traceId }),
        ),
      });
      assert.deepEqual(ours, Buffer.from(toBinary(SendPackResponseSchema, expected)));
    }),
  );
});

test("property: deliveries encode to what protobuf-es reads as the same Delivery, without internal fields", () => {
  const delivery = fc.record({
    seq: fc.integer({ min: 1, max: 2 ** 53 - 1 }),
    publishTime: fc.integer({ min: 0, max: 2 ** 42 }),
    data: fc.uint8Array({ maxLength: 300 }),
    f: fields,
    attempt: fc.integer({ min: 1, max: 10_000 }),
  });
  fc.assert(
    fc.property(fc.array(delivery, { maxLength: 6 }), (ds) => {
      const delivered = ds.map((d) => {
        const attrs = d.f.withTrace ? { ...d.f.attributes, traceparent: TRACEPARENT } : d.f.attributes;
        return {
          message: LogMessage.of(d.seq, d.publishTime, d.data, { ...d.f, attributes: attrs }),
          attempt: d.attempt,
        };
      });
      const decoded = fromBinary(ReceiveResponseSchema, encodeDeliveries(delivered));
      const expected = create(ReceiveResponseSchema, {
        deliveries: ds.map((d) => {
          const attrs = d.f.withTrace ? { ...d.f.attributes, traceparent: TRACEPARENT } : d.f.attributes;
          return create(DeliverySchema, {
            seq: BigInt(d.seq),
            data: d.data,
            attributes: attrs,
            orderingKey: d.f.orderingKey,
            messageId: d.f.messageId,
            publishTime: timestampFromMs(d.publishTime),
            attempt: d.attempt,
            traceId: traceIdOf(attrs.traceparent) ?? "",
            // Stored and delivered for urgent and bulk only; normal is the default.
            priority: d.f.priority === "urgent" ? 1 : d.f.priority === "bulk" ? 3 : 0,
          });
        }),
      });
      assert.ok(equals(ReceiveResponseSchema, decoded, expected));
      // Nothing beyond Delivery's own fields (the schedule id stays inside the broker).
      for (const d of decoded.deliveries) assert.equal(d.$unknown, undefined);
    }),
  );
});

test("Receive requests: ack-only ones take the fast path, others match protobuf-es", () => {
  const requests = [
    create(ReceiveRequestSchema, { ackSeqs: [1n, 2n, 300n, 2n ** 50n] }),
    create(ReceiveRequestSchema, {}),
    create(ReceiveRequestSchema, {
      ackSeqs: [5n],
      nacks: [create(NackSchema, { seq: 9n, delay: durationFromMs(1500) })],
      window: create(WindowSchema, { maxMessages: 10, maxBytes: 1000n }),
      terminateSeqs: [7n],
    }),
  ];
  for (const req of requests) {
    const bytes = Buffer.from(toBinary(ReceiveRequestSchema, req));
    const read = decodeReceiveRequest(bytes);
    assert.ok(equals(ReceiveRequestSchema, read, req));
    // The broker reads the acks as numbers (no BigInt each on the fast path): the same seqs.
    assert.deepEqual(ackSeqNumbers(read), req.ackSeqs.map(Number));
  }
  // Unpacked repeated encoding (allowed by the spec) reads the same.
  const unpacked = Buffer.from([0x10, 0x03, 0x10, 0x04]);
  assert.deepEqual(decodeReceiveRequest(unpacked).ackSeqs, [3n, 4n]);
  assert.deepEqual(ackSeqNumbers(decodeReceiveRequest(unpacked)), [3, 4]);
});

test("a Receive request naming more than 500000 seqs is malformed before they are decoded, on either path", () => {
  // A regression: every seq was decoded first, at up to a hundred bytes each; 9 MB of packed
  // acks (8.8 KB gzipped) took the broker 245 MB.
  const packed = (field: number, count: number) =>
    Buffer.concat([Buffer.from([(field << 3) | 2]), varint(count), Buffer.alloc(count, 1)]);
  const varint = (n: number) => {
    const out: number[] = [];
    for (; n > 127; n = Math.floor(n / 128)) out.push((n & 127) | 128);
    out.push(n);
    return Buffer.from(out);
  };
  const at = 500_000;
  assert.equal(malformedReason(decodeReceiveRequest(packed(2, at))), undefined, "acks at the limit");
  assert.equal(ackSeqNumbers(decodeReceiveRequest(packed(2, at))).length, at);
  const nack = Buffer.from([0x1a, 0x02, 0x08, 0x01]);
  const over: [string, Buffer][] = [
    ["acks", packed(2, at + 1)],
    ["acks in two fields", Buffer.concat([packed(2, at), packed(2, 1)])],
    ["terminations", packed(5, at + 1)],
    ["acks and terminations", Buffer.concat([packed(2, at), packed(5, 1)])],
    ["nacks", Buffer.concat(Array.from({ length: at + 1 }, () => nack))],
    ["extensions", Buffer.concat([Buffer.from([0x22]), varint(packed(1, at + 1).length), packed(1, at + 1)])],
  ];
  for (const [what, bytes] of over)
    assert.match(malformedReason(decodeReceiveRequest(bytes)) ?? "", /names more than 500000 seqs/, what);
  assert.equal(malformedReason(decodeReceiveRequest(packed(5, at))), undefined, "terminations at the limit");
});
