import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_nervebus_v1_message, MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { startBroker, TestClient } from "../support/broker.js";
import { crossBrokerDeadLetters, retrying, untilSourceEmpty } from "../support/cluster.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

/** Small limits, so a message at the limit and a terminate past the pack limit are cheap. */
const MAX_MESSAGE_BYTES = 1024;
const MAX_PACK_MESSAGES = 10;

/**
 * Dead letters whose dead-letter topic another broker owns are forwarded to it as a SendPack,
 * which the owner checked against its limits with the dead-letter attributes the sending broker
 * added, and as one pack however many letters: a message at --max-message-bytes, or a
 * terminate of more than --max-pack-messages, was refused (INVALID_ARGUMENT) and retried
 * forever, so the letters never moved. The single-broker path appends them whatever their
 * size; both now take them.
 */
test("mysql --cluster: dead letters forwarded to the dead-letter topic's owner arrive at the size limit and past the pack limit", async () => {
  const server = testMysql();
  const url = await server.database("cluster_dead_letter_limits");
  const settings = {
    cluster: true,
    leaseTtlMs: 2000,
    leaseRenewMs: 500,
    maxMessageBytes: MAX_MESSAGE_BYTES,
    maxPackMessages: MAX_PACK_MESSAGES,
  };
  const a = await startBroker(url, settings);
  const b = await startBroker(url, settings);
  const client = new TestClient(a.address);
  const bClient = new TestClient(b.address);
  try {
    // A source topic that falls to a and a dead-letter topic that falls to b, seen from a.
    const { source, dlq } = await crossBrokerDeadLetters(client, b.address, "dll");
    const dead = bClient.receive(dlq, "audit");
    await dead.until(() => dead.responses.some((r) => r.subscribed !== undefined), 20_000, "subscribed");
    assert.ok(b.broker.store.cluster?.owns(dlq), "b owns the dead-letter topic");

    // One message exactly at the size limit: accepted, so its dead letter must be too.
    const full = Buffer.alloc(MAX_MESSAGE_BYTES, 7);
    await retrying(() => client.publish(source, [{ data: full }]));
    assert.ok(a.broker.store.cluster?.owns(source), "a owns the source topic");
    const work = client.receive(source, "work", { maxMessages: 100 });
    await work.until(() => work.deliveries.length === 1, 20_000, "the message at the limit");
    work.send({ terminateSeqs: [work.deliveries[0]!.seq] });
    await dead.until(
      () => dead.deliveries.length === 1,
      20_000,
      "the dead letter of the message at the limit",
    );
    assert.deepEqual(Buffer.from(dead.deliveries[0]!.data), full);
    assert.equal(dead.deliveries[0]!.attributes["nervebus-dlq-reason"], "terminated");

    // Two and a half packs' worth terminated at once: they arrive, all of them, in their order.
    const count = MAX_PACK_MESSAGES * 2 + MAX_PACK_MESSAGES / 2;
    for (let i = 0; i < count; i += MAX_PACK_MESSAGES / 2)
      await client.publish(
        source,
        Array.from({ length: MAX_PACK_MESSAGES / 2 }, (_, j) => `m${i + j}`),
      );
    await work.until(() => work.deliveries.length === 1 + count, 20_000, "the batch to terminate");
    work.send({ terminateSeqs: work.deliveries.slice(1).map((d) => d.seq) });
    await dead.until(() => dead.deliveries.length === 1 + count, 20_000, "every dead letter of the batch");
    assert.deepEqual(
      dead.deliveries.slice(1).map((d) => Buffer.from(d.data).toString()),
      Array.from({ length: count }, (_, i) => `m${i}`),
    );
    // Acked at the source once durable at b: the subscription's backlog is empty.
    await untilSourceEmpty(work, a.broker, source);
    await work.end();
    await dead.end();
  } finally {
    client.close();
    bClient.close();
    await a.stop();
    await b.stop();
  }
});

/**
 * The user's type of the dead-letter topic: nervebus.v1.Message (its generated file), so a
 * payload that does not parse refuses the pack of letters it is in, and clearing the type
 * lets the pack through.
 */
const DESCRIPTOR_SET = toBinary(
  FileDescriptorSetSchema,
  create(FileDescriptorSetSchema, { file: [file_nervebus_v1_message.proto] }),
);
const typed = (text: string) => toBinary(MessageSchema, create(MessageSchema, { data: Buffer.from(text) }));
/** Field 1 (bytes) says 5 bytes follow, and 1 does: no parser accepts it. */
const TRUNCATED = new Uint8Array([0x0a, 0x05, 0x01]);
const textOf = (data: Uint8Array) =>
  Buffer.from(data).equals(TRUNCATED)
    ? "truncated"
    : Buffer.from(fromBinary(MessageSchema, data).data).toString();

/**
 * Dead letters forwarded in several packs, one of which the owner refuses: the packs before it
 * were stored, the subscription retried the letters (delivering them again, terminated again),
 * and each retry stored those packs again, so the dead-letter topic held copies. Each letter
 * now has a message id made from its subscription and seq, which the dead-letter topic's dedup
 * window answers with the first copy's seq.
 */
test("mysql --cluster: dead letters forwarded in several packs are stored once when a later pack fails and they are sent again", async () => {
  const server = testMysql();
  const url = await server.database("cluster_dead_letter_once");
  const settings = { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500 };
  const a = await startBroker(url, settings);
  const b = await startBroker(url, { ...settings, maxPackMessages: MAX_PACK_MESSAGES });
  const client = new TestClient(a.address);
  const bClient = new TestClient(b.address);
  const schema = (messageType: string, descriptorSet: Uint8Array) =>
    retrying(() =>
      bClient.adminCall("setTopicSchema", { topic: dlq, schema: { messageType, descriptorSet } }),
    );
  let dlq = "";
  try {
    const topics = await crossBrokerDeadLetters(client, b.address, "dlo");
    dlq = topics.dlq;
    await schema("nervebus.v1.Message", DESCRIPTOR_SET);
    // 25 letters: packs of 10 at b; the second holds the one that does not parse.
    const count = 25;
    await retrying(() =>
      client.publish(
        topics.source,
        Array.from({ length: count }, (_, i) => ({ data: i === 15 ? TRUNCATED : typed(`m${i}`) })),
      ),
    );
    const work = client.receive(topics.source, "work", { maxMessages: 100 });
    let terminated = 0;
    const terminateNew = () => {
      const fresh = work.deliveries.slice(terminated);
      terminated = work.deliveries.length;
      if (fresh.length > 0) work.send({ terminateSeqs: fresh.map((d) => d.seq) });
    };
    // Terminated, refused part way, delivered again: three times.
    await work.until(
      () => {
        terminateNew();
        return work.deliveries.length >= 3 * count;
      },
      30_000,
      "the letters delivered again after forwards that failed part way",
    );
    await schema("", new Uint8Array());
    await work.until(
      () => {
        terminateNew();
        const g = a.broker.subscriptionGauges().find((s) => s.topic === topics.source);
        return g !== undefined && g.backlog === 0 && g.inFlight === 0;
      },
      30_000,
      "the letters moved once the dead-letter topic takes them",
    );
    await work.end();
    // Everything the dead-letter topic holds, up to a marker published after the letters.
    await retrying(() => client.publish(dlq, [{ data: typed("end") }]));
    const dead = bClient.receive(dlq, "audit");
    await dead.until(() => dead.deliveries.some((d) => textOf(d.data) === "end"), 20_000, "the marker");
    const texts = dead.deliveries.map((d) => textOf(d.data)).filter((t) => t !== "end");
    assert.deepEqual(
      [...texts].sort(),
      Array.from({ length: count }, (_, i) => (i === 15 ? "truncated" : `m${i}`)).sort(),
      `each letter once: ${texts.join(" ")}`,
    );
    await dead.end();
  } finally {
    client.close();
    bClient.close();
    await a.stop();
    await b.stop();
  }
});
