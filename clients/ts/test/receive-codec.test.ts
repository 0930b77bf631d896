import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { DeliverySchema, Priority } from "../src/gen/nervebus/v1/message_pb.js";
import {
  AckResultsSchema,
  HeartbeatSchema,
  type ReceiveResponse,
  ReceiveResponseSchema,
  SubscribedSchema,
} from "../src/gen/nervebus/v1/subscriber_pb.js";
import { decodeReceiveResponse } from "../src/receive-codec.js";

/** Asserts that the hand-written decoder reads `bytes` as protobuf-es does (or both refuse them). */
function sameAsProtobufEs(bytes: Uint8Array, what: string): void {
  const buf = Buffer.from(bytes);
  let want: ReceiveResponse;
  try {
    want = fromBinary(ReceiveResponseSchema, bytes);
  } catch {
    assert.throws(() => decodeReceiveResponse(buf), `${what}: protobuf-es refuses these bytes`);
    return;
  }
  const got = decodeReceiveResponse(buf);
  assert.deepEqual(got.subscribed, want.subscribed, `${what}: subscribed`);
  assert.deepEqual(got.ackResults, want.ackResults, `${what}: ackResults`);
  assert.deepEqual(got.heartbeat, want.heartbeat, `${what}: heartbeat`);
  assert.equal(got.deliveries.length, want.deliveries.length, `${what}: deliveries`);
  want.deliveries.forEach((d, i) => {
    const g = got.deliveries[i]!;
    const at = `${what}: deliveries[${i}]`;
    assert.equal(g.seq, Number(d.seq), `${at}.seq`);
    assert.deepEqual(Buffer.from(g.data), Buffer.from(d.data), `${at}.data`);
    assert.ok(g.data instanceof Uint8Array);
    assert.deepEqual({ ...g.attributes }, { ...d.attributes }, `${at}.attributes`);
    assert.equal(g.orderingKey, d.orderingKey, `${at}.orderingKey`);
    assert.equal(g.messageId, d.messageId, `${at}.messageId`);
    assert.equal(
      g.publishTimeMs,
      d.publishTime === undefined ? 0 : timestampMs(d.publishTime),
      `${at}.publishTime`,
    );
    assert.equal(g.attempt, d.attempt, `${at}.attempt`);
    assert.equal(g.traceId, d.traceId, `${at}.traceId`);
    assert.equal(g.priority, d.priority, `${at}.priority`);
  });
}

function delivery(n: number) {
  return create(DeliverySchema, {
    seq: BigInt(n === 3 ? Number.MAX_SAFE_INTEGER : n + 1),
    data: Buffer.from(`payload ${n} ${"x".repeat(n * 37)}`),
    attributes:
      n % 2 === 0
        ? {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "clé ünï": "värde ✓",
            empty: "",
          }
        : {},
    orderingKey: n % 3 === 0 ? `key-${n}` : "",
    messageId: n % 4 === 1 ? `id-${n}-☃` : "",
    publishTime: n === 5 ? undefined : timestampFromMs(1_765_000_000_123 + n * 1001),
    attempt: n === 2 ? 4_000_000_000 : n + 1,
    traceId: n === 6 ? "" : "4bf92f3577b34da6a3ce929d0e0e4736",
    priority: [Priority.UNSPECIFIED, Priority.URGENT, Priority.BULK, Priority.NORMAL, -1 as Priority][n % 5]!,
  });
}

const subscribed = create(SubscribedSchema, {
  created: true,
  floor: 41n,
  lastSeq: 99n,
  ackDeadline: durationFromMs(30_000),
});
const ackResults = create(AckResultsSchema, {
  ackedSeqs: [1n, 2n, 7n],
  alreadyAckedSeqs: [3n],
  ignoredSeqs: [],
});
const heartbeat = create(HeartbeatSchema, { lastSeq: 1234n, floor: 1200n });

/** The varint of `n`. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** A field number no Delivery or ReceiveResponse has, of every wire type, as raw bytes. */
const UNKNOWN = Buffer.from([
  ...varint((15 << 3) | 0),
  ...varint(150),
  ...varint((16 << 3) | 2),
  ...[3, 0x61, 0x62, 0x63],
  ...varint((17 << 3) | 5),
  ...[1, 2, 3, 4],
  ...varint((18 << 3) | 1),
  ...[1, 2, 3, 4, 5, 6, 7, 8],
  ...varint((19 << 3) | 3),
  ...[(1 << 3) | 0, 5],
  ...varint((19 << 3) | 4),
]);

/** A length-delimited field `field` holding `inner`. */
function lenField(field: number, inner: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([...varint((field << 3) | 2), ...varint(inner.length)]), inner]);
}

test("Receive responses read by hand are what protobuf-es reads, field by field", () => {
  const deliveries = Array.from({ length: 8 }, (_, n) => delivery(n));
  const responses: [string, ReceiveResponse][] = [
    ["empty", create(ReceiveResponseSchema, {})],
    ["deliveries", create(ReceiveResponseSchema, { deliveries })],
    ["heartbeat", create(ReceiveResponseSchema, { heartbeat })],
    ["subscribed", create(ReceiveResponseSchema, { subscribed })],
    ["everything", create(ReceiveResponseSchema, { subscribed, deliveries, ackResults, heartbeat })],
    ["an empty delivery", create(ReceiveResponseSchema, { deliveries: [create(DeliverySchema, {})] })],
  ];
  for (const [what, r] of responses) sameAsProtobufEs(toBinary(ReceiveResponseSchema, r), what);

  const one = toBinary(DeliverySchema, deliveries[0]!);
  const hb = toBinary(HeartbeatSchema, heartbeat);
  const acks = toBinary(AckResultsSchema, ackResults);
  // Fields interleaved and repeated, unknown fields at both levels, a map key given twice (the
  // later value wins), a timestamp given in two parts (protobuf merges them), a negative nanos.
  const twice = Buffer.concat([
    one,
    lenField(3, Buffer.concat([lenField(1, Buffer.from("k")), lenField(2, Buffer.from("first"))])),
    lenField(3, Buffer.concat([lenField(1, Buffer.from("k")), lenField(2, Buffer.from("second"))])),
    lenField(3, lenField(2, Buffer.from("no key"))),
    lenField(6, Buffer.from([(1 << 3) | 0, 100])),
    lenField(6, Buffer.from([(2 << 3) | 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])),
    UNKNOWN,
  ]);
  const crafted = Buffer.concat([
    lenField(4, hb),
    lenField(2, twice),
    UNKNOWN,
    lenField(3, acks),
    lenField(2, one),
    lenField(4, toBinary(HeartbeatSchema, create(HeartbeatSchema, { floor: 1300n }))),
  ]);
  sameAsProtobufEs(crafted, "crafted");
  // A key that a plain assignment would take for the object's prototype.
  const proto = lenField(
    2,
    lenField(3, Buffer.concat([lenField(1, Buffer.from("__proto__")), lenField(2, Buffer.from("p"))])),
  );
  sameAsProtobufEs(proto, "__proto__ key");
  assert.deepEqual(Object.keys(decodeReceiveResponse(proto).deliveries[0]!.attributes), ["__proto__"]);
  assert.equal(decodeReceiveResponse(crafted).deliveries[0]!.attributes.k, "second");

  // Every truncation of a whole response: read alike, or refused by both.
  const whole = toBinary(ReceiveResponseSchema, responses[4]![1]);
  for (let cut = 0; cut < whole.length; cut += 7) sameAsProtobufEs(whole.subarray(0, cut), `cut at ${cut}`);
  for (let cut = 0; cut < crafted.length; cut++)
    sameAsProtobufEs(crafted.subarray(0, cut), `crafted cut at ${cut}`);
});
