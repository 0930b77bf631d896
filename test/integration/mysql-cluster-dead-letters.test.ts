import assert from "node:assert/strict";
import { test } from "node:test";
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
