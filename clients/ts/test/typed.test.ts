import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { NerveBusClient, NerveBusError, StatusCode, TypedPublisher, typedHandler } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, uniqueName } from "./support/helpers.js";

let broker: TestBroker;
let client: NerveBusClient;

before(async () => {
  broker = await TestBroker.start();
  client = new NerveBusClient(broker.address);
});

after(async () => {
  await client.close();
  await broker.dispose();
});

test("a topic typed with a generated message takes its values, refuses other payloads, and delivers parsed values", async () => {
  // google.protobuf.Timestamp stands for the user's own generated message.
  const topic = uniqueName("typed");
  await client.admin.createTopic(topic);
  const schema = await client.admin.setTopicSchema(topic, TimestampSchema);
  assert.equal(schema.messageType, "google.protobuf.Timestamp");
  assert.ok(schema.descriptorSet.byteLength > 0 && schema.updateTime !== undefined);
  assert.equal((await client.admin.getTopicSchema(topic)).messageType, "google.protobuf.Timestamp");

  const typed = new TypedPublisher(client, topic, TimestampSchema);
  for (const seconds of [1n, 2n, 3n])
    await typed.publish(create(TimestampSchema, { seconds, nanos: 7 }), {
      attributes: { s: String(seconds) },
    });
  await assert.rejects(
    client.publish(topic, { data: new Uint8Array([0x0a, 0x05, 0x01]) }),
    (err: unknown) =>
      err instanceof NerveBusError &&
      err.code === StatusCode.INVALID_ARGUMENT &&
      /does not parse as google\.protobuf\.Timestamp/.test(err.message),
  );

  const got: bigint[] = [];
  const all = deferred();
  const sub = client.subscribe(
    topic,
    "typed",
    typedHandler(TimestampSchema, (value, message) => {
      assert.equal(value.nanos, 7);
      assert.equal(message.attributes.s, String(value.seconds));
      got.push(value.seconds);
      if (got.length === 3) all.resolve();
    }),
    { start: "earliest" },
  );
  try {
    await all.promise;
  } finally {
    await sub.close();
  }
  assert.deepEqual(got, [1n, 2n, 3n]);
  assert.equal((await client.admin.setTopicSchema(topic, null)).messageType, "");
  await client.publish(topic, { data: new Uint8Array([0x0a, 0x05, 0x01]) });
});
