import assert from "node:assert/strict";
import { test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { file_nervebus_v1_admin } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { file_nervebus_v1_message, MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { type FreshStore, withBroker } from "../support/broker.js";

const code = (c: grpc.status, detail: RegExp) => (err: grpc.ServiceError) =>
  err.code === c && detail.test(err.details);

/**
 * The user's type in these tests: nervebus.v1.Message, from its generated file. Its imports
 * (google/protobuf/timestamp.proto, duration.proto) are left out, as protoc writes a set
 * without --include_imports: the broker knows the well-known files itself.
 */
const DESCRIPTOR_SET = toBinary(
  FileDescriptorSetSchema,
  create(FileDescriptorSetSchema, { file: [file_nervebus_v1_message.proto] }),
);
const TYPE = "nervebus.v1.Message";

/** A payload of the type, as a user's generated code serializes it. */
const valid = (text: string) =>
  toBinary(
    MessageSchema,
    create(MessageSchema, { data: Buffer.from(text), orderingKey: "k", attributes: { a: "b" } }),
  );
/** Field 1 (bytes) says 5 bytes follow, and 1 does: no parser accepts it. */
const TRUNCATED = new Uint8Array([0x0a, 0x05, 0x01]);
/** Field 3 (string ordering_key) sent as a varint: the wrong wire type for the field. */
const WRONG_WIRE_TYPE = new Uint8Array([0x18, 0x01]);

/** Typed topics through real gRPC: the schema is checked on upload, publishes against it, on both stores. */
export function typedTopicsSuite(kind: string, fresh: FreshStore): void {
  test(`${kind}: a typed topic refuses payloads that do not parse as its type, durably, until the type is cleared`, () =>
    withBroker(fresh, `${kind}_typed`, {}, async (ctx) => {
      const set = (messageType: string, descriptorSet: Uint8Array) =>
        ctx.client.adminCall("setTopicSchema", { topic: "orders", schema: { messageType, descriptorSet } });
      await ctx.client.adminCall("createTopic", { topic: { name: "orders" } });
      const empty = await ctx.client.adminCall("getTopicSchema", { topic: "orders" });
      assert.equal(empty.schema?.messageType, "", "untyped at first");

      // Bad schemas are refused, naming what is wrong.
      await assert.rejects(
        set(TYPE, new Uint8Array([0xff, 0xff, 0xff])),
        code(grpc.status.INVALID_ARGUMENT, /schema\.descriptor_set: is not a serialized FileDescriptorSet/),
      );
      await assert.rejects(
        set("shop.v1.Order", DESCRIPTOR_SET),
        code(
          grpc.status.INVALID_ARGUMENT,
          /schema\.message_type: "shop\.v1\.Order" is not a message type of the descriptor set \(its files: .*nervebus\/v1\/message\.proto/,
        ),
      );
      const lacksImports = toBinary(
        FileDescriptorSetSchema,
        create(FileDescriptorSetSchema, { file: [file_nervebus_v1_admin.proto] }),
      );
      await assert.rejects(
        set("nervebus.v1.Topic", lacksImports),
        code(
          grpc.status.INVALID_ARGUMENT,
          /schema\.descriptor_set: .*nervebus\/v1\/(message|subscriber)\.proto.*--include_imports/,
        ),
      );
      await assert.rejects(
        ctx.client.adminCall("setTopicSchema", {
          topic: "nope",
          schema: { messageType: TYPE, descriptorSet: DESCRIPTOR_SET },
        }),
        code(grpc.status.NOT_FOUND, /topic nope does not exist/),
      );

      const stored = await set(TYPE, DESCRIPTOR_SET);
      assert.equal(stored.schema?.messageType, TYPE);
      assert.ok(stored.schema?.updateTime !== undefined);

      const ok = await ctx.client.publish("orders", [{ data: valid("one") }, { data: valid("two") }]);
      assert.deepEqual([ok.firstSeq, ok.lastSeq], [1n, 2n]);
      // One bad message refuses the whole pack, naming its index and the parse error.
      await assert.rejects(
        ctx.client.publish("orders", [
          { data: valid("three") },
          { data: valid("four") },
          { data: TRUNCATED },
        ]),
        code(
          grpc.status.INVALID_ARGUMENT,
          /^messages\[2\]\.data: does not parse as nervebus\.v1\.Message: .+/,
        ),
      );
      await assert.rejects(
        ctx.client.publish("orders", [{ data: WRONG_WIRE_TYPE }]),
        code(
          grpc.status.INVALID_ARGUMENT,
          /^messages\[0\]\.data: does not parse as nervebus\.v1\.Message: .+/,
        ),
      );
      // Delayed messages are checked when published, not when due.
      await assert.rejects(
        ctx.client.publish("orders", [{ data: TRUNCATED, delay: { seconds: 60n, nanos: 0 } }]),
        code(grpc.status.INVALID_ARGUMENT, /messages\[0\]\.data/),
      );
      const stats = await ctx.client.adminCall("getStats", { topic: "orders" });
      assert.equal(stats.topic?.lastSeq, 2n, "nothing of a refused pack was appended");
      assert.equal(stats.topic?.scheduled, 0n);

      // The schema is in the catalog: a restarted broker keeps checking.
      await ctx.restart();
      const after = await ctx.client.adminCall("getTopicSchema", { topic: "orders" });
      assert.equal(after.schema?.messageType, TYPE);
      assert.deepEqual(Buffer.from(after.schema!.descriptorSet), Buffer.from(DESCRIPTOR_SET));
      await assert.rejects(
        ctx.client.publish("orders", [{ data: TRUNCATED }]),
        code(grpc.status.INVALID_ARGUMENT, /messages\[0\]\.data: does not parse/),
      );
      // Other topics are untyped.
      await ctx.client.publish("other", [{ data: TRUNCATED }]);

      // Cleared: anything goes again, also after a restart.
      const cleared = await set("", new Uint8Array());
      assert.equal(cleared.schema?.messageType, "");
      await ctx.restart();
      const r = await ctx.client.publish("orders", [{ data: TRUNCATED }]);
      assert.equal(r.firstSeq, 3n);
    }));
}
