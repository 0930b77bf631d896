import assert from "node:assert/strict";
import { test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import { type LogLine, startBroker, startLoggingBroker, TestClient } from "../support/broker.js";
import { crossBrokerDeadLetters, retrying, untilSourceEmpty } from "../support/cluster.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();

const KiB = 1024;
const CLUSTER = { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500 };
/** The owner's limits, smaller than the defaults the broker the client calls runs with. */
const OWNER_LIMITS = { maxMessageBytes: 16 * KiB, maxPackMessages: 10, maxPackBytes: 64 * KiB };

/** A topic of `prefix-N` that falls to the broker at `address`, as `client`'s broker sees it. */
async function topicAt(client: TestClient, address: string, prefix: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const topic = `${prefix}-${i}`;
    if ((await client.adminCall("locateTopic", { topic })).address === address) return topic;
  }
  assert.fail(`no topic of ${prefix} falls to ${address}`);
}

/** The status of a refused call: its code and details. */
async function refusal(call: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await call;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
  assert.fail("the call succeeded");
}

/**
 * Brokers of one cluster with different --max-pack-messages, --max-pack-bytes or
 * --max-message-bytes: the limits that apply to a topic are its owner's. A pack sent to
 * another broker is refused at once with INVALID_ARGUMENT naming the field, the owner's limit
 * and the owner, or stored whole (consecutive seqs); before, a pack over the owner's request
 * size came back as RESOURCE_EXHAUSTED "Received message larger than max" from the owner's
 * transport, naming no field and no limit the client can set.
 */
test("mysql --cluster: a pack sent to a broker with larger limits than the topic's owner is refused at once by the owner's limits, naming them; a pack within them is stored whole", async () => {
  const url = await testMysql().database("cluster_limits_publish");
  const lines: LogLine[] = [];
  const entry = await startLoggingBroker(url, lines, CLUSTER);
  const owner = await startBroker(url, { ...CLUSTER, ...OWNER_LIMITS });
  const client = new TestClient(entry.address);
  try {
    // Both brokers have heartbeated: topics fall to either.
    await new Promise((r) => setTimeout(r, 1200));
    const topic = await topicAt(client, owner.address, "limited");
    const cases: [string, Buffer[], RegExp][] = [
      [
        "more messages",
        Array.from({ length: 11 }, () => Buffer.from("x")),
        /^messages: pack has 11 messages; the limit is 10 /,
      ],
      [
        "a larger message",
        [Buffer.alloc(20 * KiB)],
        /^messages\[0\]: message is 20480 bytes; the limit is 16384 /,
      ],
      [
        "a larger pack",
        Array.from({ length: 9 }, () => Buffer.alloc(15 * KiB)),
        /^messages: pack is 138240 bytes; the limit is 65536 /,
      ],
      // Larger than the owner's gRPC takes in one request (its pack limit plus framing and 1 MiB).
      [
        "a pack past the owner's request size",
        [Buffer.alloc(1024 * KiB), Buffer.alloc(1024 * KiB)],
        /^messages\[0\]: message is 1048576 bytes; the limit is 16384 /,
      ],
    ];
    for (const [what, data, expected] of cases) {
      const { code, details } = await refusal(
        retrying(() =>
          client.publish(
            topic,
            data.map((d) => ({ data: d })),
          ),
        ),
      );
      assert.equal(code, 3, `${what}: INVALID_ARGUMENT (${details})`);
      assert.match(details, expected, what);
      assert.ok(details.includes(`broker ${owner.address}`), `${what}: names the owner (${details})`);
    }
    // Nothing of them was stored: a pack at the owner's limits gets seqs 1..10, whole.
    const sent = Array.from({ length: 10 }, (_, i) => `m${i}`);
    const ok = await retrying(() => client.publish(topic, sent));
    assert.deepEqual([Number(ok.firstSeq), Number(ok.lastSeq)], [1, 10]);
    assert.ok(owner.broker.store.cluster?.owns(topic), "the owner stored it");
    // The operator is told once that the brokers' limits differ.
    assert.deepEqual(
      lines
        .filter(
          (l) => l.msg === "a broker of the cluster runs with other pack limits; its topics' apply to them",
        )
        .map((l) => [l.address, l.limits]),
      [[owner.address, { maxMessageBytes: 16 * KiB, maxPackMessages: 10, maxPackBytes: 64 * KiB }]],
    );
  } finally {
    client.close();
    await entry.stop();
    await owner.stop();
  }
});

/**
 * Dead letters forwarded to the dead-letter topic's owner were split by the sending broker's
 * pack limits: an owner with a smaller --max-pack-messages refused each pack, and the
 * subscription retried the terminate forever; a letter over the owner's --max-message-bytes
 * (accepted by the source's) was refused forever too. They are now split by the owner's
 * limits, and like dead letters a broker writes itself, none is refused for its size.
 */
test("mysql --cluster: dead letters forwarded to an owner with smaller pack limits arrive, all of them, in order", async () => {
  const url = await testMysql().database("cluster_limits_dead_letters");
  const a = await startBroker(url, CLUSTER);
  const b = await startBroker(url, { ...CLUSTER, ...OWNER_LIMITS });
  const client = new TestClient(a.address);
  const bClient = new TestClient(b.address);
  try {
    const { source, dlq } = await crossBrokerDeadLetters(client, b.address, "dlim");
    const dead = bClient.receive(dlq, "audit");
    await dead.until(() => dead.responses.some((r) => r.subscribed !== undefined), 20_000, "subscribed");
    const texts = Array.from({ length: 25 }, (_, i) => `m${i}`);
    // One letter larger than the owner's --max-message-bytes, accepted by the source's.
    const large = Buffer.alloc(20 * KiB, 7);
    await retrying(() => client.publish(source, [...texts, { data: large }]));
    const work = client.receive(source, "work", { maxMessages: 100 });
    await work.until(() => work.deliveries.length === 26, 20_000, "the batch to terminate");
    work.send({ terminateSeqs: work.deliveries.map((d) => d.seq) });
    await dead.until(() => dead.deliveries.length === 26, 30_000, "every dead letter");
    assert.deepEqual(
      dead.deliveries.slice(0, 25).map((d) => Buffer.from(d.data).toString()),
      texts,
    );
    assert.deepEqual(Buffer.from(dead.deliveries[25]!.data), large);
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
