import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  PublishOpenSchema,
  PublishRequestSchema,
  PublishResponseSchema,
  SendPackRequestSchema,
  SendPackResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { APPENDED, Outcomes } from "../../src/core/index.js";
import {
  encodePublishResponse,
  encodeSendPackResponse,
  readPublishRequest,
  readSendPack,
} from "../../src/wire/index.js";

test("readPublishRequest reads opens as protobuf-es does and batches as readSendPack reads SendPack's, and marks bad bytes", () => {
  const messages = [
    create(MessageSchema, {
      data: Buffer.from("a"),
      attributes: { k: "v" },
      orderingKey: "o",
      messageId: "id",
    }),
    create(MessageSchema, { data: Buffer.from("b"), delay: { seconds: 3n, nanos: 0 } }),
  ];
  for (const req of [
    create(PublishRequestSchema, { messages }),
    create(PublishRequestSchema, {
      open: create(PublishOpenSchema, { topic: "t", maxMessages: 5, noConfirms: true }),
    }),
    create(PublishRequestSchema, { open: create(PublishOpenSchema, { topic: "t" }), messages }),
  ]) {
    const bytes = Buffer.from(toBinary(PublishRequestSchema, req));
    const got = readPublishRequest(bytes, "nervebus.");
    assert.equal(got.malformed, undefined);
    assert.deepEqual(got.open, req.open);
    // The batch's messages: what SendPack (field 2 the same) makes of them.
    const sendPack = readSendPack(
      Buffer.from(toBinary(SendPackRequestSchema, create(SendPackRequestSchema, { messages: req.messages }))),
      "nervebus.",
    ).pack;
    assert.equal(got.pack.count, req.messages.length);
    for (let i = 0; i < got.pack.count; i++) {
      const [a, b] = [got.pack.message(i), sendPack.message(i)];
      assert.deepEqual(a.data, b.data);
      assert.equal(a.orderingKey, b.orderingKey);
      assert.equal(a.messageId, b.messageId);
      assert.equal(a.attributes.k, b.attributes.k);
      assert.equal(got.pack.sentDelay?.[i], sendPack.sentDelay?.[i]);
      assert.equal(got.pack.sentBytes[i], sendPack.sentBytes[i]);
    }
  }
  assert.match(readPublishRequest(Buffer.from([0x12, 0x05, 0x0a]), "nervebus.").malformed ?? "", /./);
  assert.match(readPublishRequest(Buffer.from([0x0a, 0x05, 0x0a]), "nervebus.").malformed ?? "", /./);
});

test("encodePublishResponse is the PublishResponse protobuf-es reads, confirms carrying SendPack's bytes", () => {
  const outcomes = new Outcomes(2, undefined);
  outcomes.set(0, APPENDED, 7, "0".repeat(32));
  outcomes.set(1, APPENDED, 8, "1".repeat(32));
  const result = encodeSendPackResponse(7, 8, outcomes);
  const bytes = encodePublishResponse({ messages: 10, bytes: 1 << 24 }, [{ batch: 3, result }], {
    messages: 2,
    bytes: 0,
  });
  const r = fromBinary(PublishResponseSchema, bytes);
  assert.deepEqual([r.opened?.messages, r.opened?.bytes], [10, 1n << 24n]);
  assert.deepEqual([r.credit?.messages, r.credit?.bytes], [2, 0n]);
  assert.equal(r.confirms.length, 1);
  assert.equal(r.confirms[0]!.batch, 3n);
  assert.deepEqual(r.confirms[0]!.result, fromBinary(SendPackResponseSchema, result));
  const empty = fromBinary(PublishResponseSchema, encodePublishResponse(undefined, [], undefined));
  assert.deepEqual([empty.opened, empty.credit, empty.confirms.length], [undefined, undefined, 0]);
});

test("Outcomes.slice encodes as the same messages' outcomes copied one by one (a stream batch's confirm)", () => {
  const messages = ["a", "b", "c", "d"].map((d) => create(MessageSchema, { data: Buffer.from(d) }));
  const { pack } = readSendPack(
    Buffer.from(toBinary(SendPackRequestSchema, create(SendPackRequestSchema, { topic: "t", messages }))),
    "nervebus.",
  );
  const all = new Outcomes(4, pack);
  for (let i = 0; i < 4; i++) all.set(i, APPENDED, 10 + i);
  // A duplicate answers with its original's trace id, set as a string.
  all.set(2, 2, 5, "f".repeat(32));
  const one = new Outcomes(2, undefined);
  for (let i = 0; i < 2; i++) one.copy(i, all, i + 1);
  const got = fromBinary(SendPackResponseSchema, encodeSendPackResponse(11, 13, all.slice(1, 3)));
  assert.deepEqual(got, fromBinary(SendPackResponseSchema, encodeSendPackResponse(11, 13, one)));
  assert.deepEqual(
    got.results.map((r) => [r.seq, r.traceId]),
    [
      [11n, all.traceId(1)],
      [5n, "f".repeat(32)],
    ],
  );
  assert.equal(all.traceId(1).length, 32);
});
