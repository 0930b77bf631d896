import assert from "node:assert/strict";
import { test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import { seqsOf, TestClient } from "../support/broker.js";
import { type TestMysql, useTestMysql } from "../support/mariadb.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

const testMysql = useTestMysql();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Short leases, so a dead broker's topics move within a couple of seconds. */
const CLUSTER_ARGS = [
  "--cluster",
  "--lease-ttl-ms",
  "2000",
  "--lease-renew-ms",
  "500",
  "--log-level",
  "warn",
];

/** The advertised address of each topic's live owner, read from the lease and broker tables. */
async function owners(server: TestMysql, url: string): Promise<Map<string, string>> {
  const rows = await server.query<mysql.RowDataPacket[]>(
    url,
    `SELECT t.name, b.address FROM nb_lease l JOIN nb_topics t ON l.unit = CONCAT('topic:', t.id)
       JOIN nb_brokers b ON b.id = l.owner
       WHERE l.expires_at > CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)`,
  );
  return new Map(rows.map((r) => [String(r.name), String(r.address)]));
}

/** Retries `fn` on UNAVAILABLE (what clients do) until it succeeds or `ms` pass. */
async function retrying<T>(fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const until = performance.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if ((err as grpc.ServiceError).code !== 14 || performance.now() > until) throw err;
      await sleep(100);
    }
  }
}

test("mysql --cluster: topics spread over three brokers, any broker answers, a killed owner's topics move with their state", async () => {
  const server = testMysql();
  const url = await server.database("cluster_basic");
  const brokers: BrokerProcess[] = [];
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 3; i++) brokers.push(await spawnBroker(["--store", url, ...CLUSTER_ARGS]));
    // Every broker has seen the others' heartbeats.
    await sleep(1500);
    for (const b of brokers) clients.push(new TestClient(b.address));
    const topics = Array.from({ length: 8 }, (_, i) => `spread-${i}`);
    // Each topic's first publish goes through broker 0, which forwards it to the broker the topic
    // falls to (and creates it there).
    for (const topic of topics) {
      const res = await retrying(() => clients[0]!.publish(topic, ["a", "b"]));
      assert.equal(Number(res.firstSeq), 1, `${topic}: first seq`);
    }
    const owned = await owners(server, url);
    assert.equal(owned.size, topics.length, "every topic has a live owner");
    const used = new Set(owned.values());
    assert.ok(used.size >= 2, `topics spread over several brokers: ${[...used].join(", ")}`);
    for (const address of used)
      assert.ok(
        brokers.some((b) => b.address === address),
        `owner ${address} is one of the brokers`,
      );

    // Any broker answers: publishes through each broker land in one log per topic.
    const topic = topics[0]!;
    const ownerIndex = brokers.findIndex((b) => b.address === owned.get(topic));
    const other = (ownerIndex + 1) % 3;
    for (const c of clients) await c.publish(topic, ["x"]);
    const stats = await clients[other]!.adminCall("getStats", { topic });
    assert.equal(Number(stats.topic?.lastSeq), 5, "GetStats through a non-owner sees every publish");

    // A consumer on a non-owner: its stream is forwarded; its acks are confirmed by the owner.
    const s = clients[other]!.receive(topic, "sub", { from: "earliest", confirmAcks: true });
    await s.until(() => s.deliveries.length >= 5, 20_000, "five deliveries through a forwarded stream");
    assert.deepEqual(seqsOf(s.deliveries), [1, 2, 3, 4, 5]);
    s.ack([1, 2, 3]);
    await s.until(
      () => s.responses.flatMap((r) => r.ackResults?.ackedSeqs ?? []).length >= 3,
      20_000,
      "ack confirmations",
    );

    // The owner dies: the stream ends with UNAVAILABLE, another broker takes the topic within the
    // lease time, recovering the log and the subscription's floor.
    brokers[ownerIndex]!.child.kill("SIGKILL");
    await s.until(() => s.ended, 20_000, "the forwarded stream to end");
    assert.equal(s.error?.code, 14, "a forwarded stream whose owner died ends with UNAVAILABLE");
    const survivor = clients[other]!;
    const killedAt = performance.now();
    const res = await retrying(() => survivor.publish(topic, ["after"]));
    const moveMs = performance.now() - killedAt;
    assert.equal(Number(res.firstSeq), 6, "the new owner continues after the recovered tail");
    const again = survivor.receive(topic, "sub", { from: "earliest" });
    await again.until(() => again.deliveries.length >= 3, 20_000, "redeliveries on the new owner");
    assert.deepEqual(seqsOf(again.deliveries), [4, 5, 6], "acked messages are not delivered again");
    again.cancel();
    const after = await owners(server, url);
    assert.notEqual(after.get(topic), brokers[ownerIndex]!.address, "a live broker owns the topic now");
    process.stderr.write(`# topic moved in ${Math.round(moveMs)} ms after SIGKILL\n`);
  } finally {
    for (const c of clients) c.close();
    for (const b of brokers) b.child.kill("SIGKILL");
    await Promise.all(brokers.map((b) => b.exited));
  }
});
