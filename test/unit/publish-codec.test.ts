import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  PublishOpenSchema,
  PublishRequestSchema,
  PublishResponseSchema,
  SendPackResponseSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { APPENDED, Outcomes } from "../../src/core/index.js";
import {
  decodePublishRequest,
  encodePublishResponse,
  encodeSendPackResponse,
  malformedReason,
} from "../../src/wire/index.js";

test("decodePublishRequest reads batches and opens as protobuf-es does, and marks bad bytes", () => {
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
    const got = decodePublishRequest(bytes);
    assert.equal(malformedReason(got), undefined);
    assert.deepEqual(toBinary(PublishRequestSchema, got), toBinary(PublishRequestSchema, req));
  }
  assert.match(malformedReason(decodePublishRequest(Buffer.from([0x12, 0x05, 0x0a]))) ?? "", /./);
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
