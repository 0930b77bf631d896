import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { MessageSchema, Priority } from "../src/gen/nervebus/v1/message_pb.js";
import {
  PublishOpenSchema,
  PublishRequestSchema,
  SendPackRequestSchema,
} from "../src/gen/nervebus/v1/publisher_pb.js";
import { encodePublishRequest, encodeSendPackRequest } from "../src/send-pack-codec.js";

/** Messages with every field, in every form the encoder treats differently. */
function everyKindOfMessage() {
  const messages = Array.from({ length: 12 }, (_, n) =>
    create(MessageSchema, {
      data: n === 0 ? new Uint8Array(0) : Buffer.from(`payload ${n} ${"é".repeat(n * 23)}`),
      attributes:
        n % 3 === 0
          ? {}
          : {
              traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              "clé ünï": "värde ✓",
              empty: "",
              "": "no key",
              lone: "\ud800",
            },
      orderingKey: n % 4 === 1 ? `key-${n}-☃` : "",
      messageId: n % 2 === 0 ? `00000000-0000-4000-8000-00000000000${n % 10}` : "",
      deliverAt:
        n === 3
          ? timestampFromMs(1_765_000_000_123)
          : n === 4
            ? timestampFromMs(-86_400_001)
            : n === 5
              ? timestampFromMs(0)
              : undefined,
      delay: n === 6 ? durationFromMs(1500) : n === 7 ? durationFromMs(0) : undefined,
      priority: [Priority.UNSPECIFIED, Priority.URGENT, Priority.NORMAL, Priority.BULK, -2 as Priority][
        n % 5
      ]!,
    }),
  );
  // A long message: lengths past one varint byte, and past two.
  messages.push(create(MessageSchema, { data: Buffer.alloc(20_000, 7), messageId: "big" }));
  return messages;
}

test("SendPack requests written by hand read back as the request protobuf-es writes", () => {
  const messages = everyKindOfMessage();
  for (const req of [
    create(SendPackRequestSchema, { topic: "orders", messages }),
    create(SendPackRequestSchema, { topic: "", messages: [] }),
    create(SendPackRequestSchema, { topic: "t".repeat(200), messages: [create(MessageSchema, {})] }),
  ]) {
    const hand = encodeSendPackRequest(req);
    const want = fromBinary(SendPackRequestSchema, toBinary(SendPackRequestSchema, req));
    // Read from a plain Uint8Array, as the other one is: data then comes back as one too.
    assert.deepEqual(
      fromBinary(SendPackRequestSchema, new Uint8Array(hand)),
      want,
      `topic ${req.topic.slice(0, 10)}`,
    );
  }
});

test("a Publish stream's requests written by hand read back as protobuf-es writes them", () => {
  const messages = everyKindOfMessage();
  for (const req of [
    create(PublishRequestSchema, { messages }),
    create(PublishRequestSchema, { messages: [create(MessageSchema, {})] }),
    create(PublishRequestSchema, {
      open: create(PublishOpenSchema, {
        topic: "orders",
        maxMessages: 500,
        maxBytes: 1n << 40n,
        noConfirms: true,
      }),
    }),
    // Not what the client sends, but a request it could be given: both fields.
    create(PublishRequestSchema, { open: create(PublishOpenSchema, { topic: "t" }), messages }),
  ]) {
    const hand = encodePublishRequest(req);
    const want = fromBinary(PublishRequestSchema, toBinary(PublishRequestSchema, req));
    assert.deepEqual(fromBinary(PublishRequestSchema, new Uint8Array(hand)), want);
  }
});
