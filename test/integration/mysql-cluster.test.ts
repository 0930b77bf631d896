import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import {
  CreateTopicRequestSchema,
  LocateTopicRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  type BatchConfirm,
  PublishOpenSchema,
  PublishRequestSchema,
  type PublishResponse,
  SendPackRequestSchema,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { unary } from "../../src/api/index.js";
import { tokenHash } from "../../src/auth/index.js";
import { seqsOf, startBroker, TestClient } from "../support/broker.js";
import { type TestMysql, useTestMysql } from "../support/mariadb.js";
import { type BrokerProcess, runCli, spawnBroker } from "../support/process.js";
import { storedRows } from "../support/stored-rows.js";

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

    // A Publish stream through a broker that does not own its topic is forwarded too.
    const streamTopic = topics[1]!;
    const notOwner = clients[brokers.findIndex((b) => b.address !== owned.get(streamTopic))]!;
    const stream = notOwner.publisher.publish();
    const confirms: BatchConfirm[] = [];
    const confirmed = new Promise<void>((resolve, reject) => {
      stream.on("data", (r: PublishResponse) => {
        confirms.push(...r.confirms);
        if (confirms.length > 0) resolve();
      });
      stream.on("error", reject);
    });
    stream.write(create(PublishRequestSchema, { open: create(PublishOpenSchema, { topic: streamTopic }) }));
    stream.write(
      create(PublishRequestSchema, {
        messages: ["s1", "s2"].map((d) => create(MessageSchema, { data: Buffer.from(d) })),
      }),
    );
    await confirmed;
    stream.end();
    assert.equal(
      Number(confirms[0]!.result?.firstSeq),
      3,
      "the stream's batch follows the topic's two messages",
    );

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

test("mysql --cluster: drain-broker hands a broker's topics over while clients publish; concurrent creates; locate, cluster view and metrics", async () => {
  const server = testMysql();
  const url = await server.database("cluster_drain");
  const brokers: BrokerProcess[] = [];
  const clients: TestClient[] = [];
  let publishing = true;
  try {
    for (let i = 0; i < 3; i++) brokers.push(await spawnBroker(["--store", url, ...CLUSTER_ARGS]));
    await sleep(1500);
    for (const b of brokers) clients.push(new TestClient(b.address));

    // Two brokers creating the same topic at once: one creates it, the others are told it exists.
    const creates = await Promise.allSettled(
      clients.map((c) => c.adminCall("createTopic", { topic: { name: "made-once" } })),
    );
    assert.equal(creates.filter((r) => r.status === "fulfilled").length, 1, "exactly one create succeeds");
    for (const r of creates)
      if (r.status === "rejected") assert.equal((r.reason as grpc.ServiceError).code, 6, "ALREADY_EXISTS");

    // The same, each broker serving the call itself (as if forwarded to it): the catalog's unique
    // name decides, and of three brokers publishing to a new topic at once one takes its lease.
    const itself = new grpc.Metadata();
    itself.set("nervebus-forwarded", "test");
    const racing = await Promise.allSettled(
      clients.map((c) =>
        unary(
          c.admin.createTopic.bind(c.admin),
          create(CreateTopicRequestSchema, { topic: { name: "made-here" } }),
          { deadline: Date.now() + 10_000 },
          itself,
        ),
      ),
    );
    assert.equal(racing.filter((r) => r.status === "fulfilled").length, 1, "one broker creates it");
    const racingPacks = await Promise.allSettled(
      clients.map((c) =>
        unary(
          c.publisher.sendPack.bind(c.publisher),
          create(SendPackRequestSchema, {
            topic: "raced",
            messages: [create(MessageSchema, { data: Buffer.from("r") })],
          }),
          { deadline: Date.now() + 10_000 },
          itself,
        ),
      ),
    );
    const won = racingPacks.flatMap((r) => (r.status === "fulfilled" ? [Number(r.value.firstSeq)] : []));
    assert.deepEqual(won, [1], "exactly one broker took the topic and appended");
    for (const r of racingPacks)
      if (r.status === "rejected") {
        const err = r.reason as grpc.ServiceError;
        assert.equal(err.code, grpc.status.UNAVAILABLE, err.details);
      }

    const topics = Array.from({ length: 6 }, (_, i) => `drain-${i}`);
    for (const topic of topics) await retrying(() => clients[0]!.publish(topic, ["first"]));
    const owned = await owners(server, url);
    // The broker owning the most topics is drained.
    const counts = brokers.map((b) => [...owned.values()].filter((a) => a === b.address).length);
    const victim = counts.indexOf(Math.max(...counts));
    const victimAddress = brokers[victim]!.address;
    const located = await runCli([
      "locate",
      topics.find((t) => owned.get(t) === victimAddress)!,
      "--server",
      brokers[(victim + 1) % 3]!.address,
    ]);
    assert.equal(located.stdout.trim(), victimAddress, `locate names the owner: ${located.stderr}`);

    // Publishers through the other brokers keep going during the drain; each confirm is recorded.
    const confirmed = new Map<string, Map<number, string>>(topics.map((t) => [t, new Map()]));
    const codes = new Map<number, number>();
    const front = clients.filter((_, i) => i !== victim);
    const loops = topics.map(async (topic, i) => {
      let n = 0;
      while (publishing) {
        const payload = `${topic}-${n++}`;
        try {
          const res = await front[i % front.length]!.publish(
            topic,
            [{ data: Buffer.from(payload), messageId: payload }],
            5000,
          );
          confirmed.get(topic)!.set(Number(res.results[0]!.seq), payload);
        } catch (err) {
          const code = (err as grpc.ServiceError).code;
          codes.set(code, (codes.get(code) ?? 0) + 1);
          n--;
          await sleep(20);
        }
      }
    });
    await sleep(500);
    const drained = await runCli(["drain-broker", "--server", victimAddress]);
    assert.equal(drained.code, 0, drained.stderr);
    // Rebalancing may have moved a topic since `owned` was read: the count is the broker's own.
    const handed = Number(/: (\d+) topics handed over/.exec(drained.stdout)?.[1]);
    assert.ok(handed >= 1, drained.stdout);
    await sleep(500);
    publishing = false;
    await Promise.all(loops);

    // The broker each topic falls to takes it at its next heartbeat (or at the next call).
    let after = await owners(server, url);
    for (let i = 0; i < 100 && topics.some((t) => !after.has(t)); i++) {
      await sleep(100);
      after = await owners(server, url);
    }
    for (const topic of topics) {
      assert.ok(after.has(topic), `${topic} has a live owner after the drain`);
      assert.notEqual(after.get(topic), victimAddress, `${topic} left the drained broker`);
    }
    assert.equal(brokers[victim]!.child.exitCode, null, "the drained broker keeps running (and forwarding)");
    assert.deepEqual(
      [...codes.keys()].filter((c) => c !== 14),
      [],
      "clients saw at most UNAVAILABLE, retried",
    );
    let total = 0;
    for (const topic of topics) {
      const stored = await storedRows(server, url, topic);
      for (const [seq, payload] of confirmed.get(topic)!) {
        assert.equal(stored.get(seq), payload, `confirmed ${payload} is stored at seq ${seq}`);
        total++;
      }
    }
    assert.ok(total > 0);

    // The cluster as each broker shows it: Admin, /api/status, /metrics.
    await sleep(700);
    const view = await clients[0]!.adminCall("getCluster", {});
    assert.equal(view.brokers.filter((b) => b.live).length, 3);
    const drainedView = view.brokers.find((b) => b.address === victimAddress)!;
    assert.equal(drainedView.draining, true);
    assert.equal(drainedView.topics.length, 0);
    assert.equal(
      view.brokers.reduce((n, b) => n + b.topics.length, 0),
      topics.length + 1,
      "every topic used is owned once (raced too; the made-* ones were never used: no lease yet)",
    );
    const shown = await runCli(["cluster", "--server", brokers[(victim + 1) % 3]!.address]);
    assert.equal(shown.code, 0, shown.stderr);
    const cli = JSON.parse(shown.stdout) as { brokers: { address: string; draining?: boolean }[] };
    assert.equal(
      cli.brokers.find((b) => b.address === victimAddress)?.draining,
      true,
      "nervebus cluster shows the drain",
    );
    const handovers = await Promise.all(
      clients.map(async (c) => Number((await c.adminCall("getCluster", {})).handovers)),
    );
    assert.ok(
      handovers.reduce((a, b) => a + b, 0) >= handed,
      "each topic handed over is counted by the broker that took it",
    );

    // A fourth broker, in process, shows the cluster on its status API and metrics.
    const fourth = await startBroker(url, { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500 });
    try {
      const status = (await (await fetch(`http://${fourth.httpAddress}/api/status`)).json()) as {
        broker: { cluster: { members: { address: string; live: boolean; topics: unknown[] }[] } };
      };
      const members = status.broker.cluster.members.filter((m) => m.live);
      assert.equal(members.length, 4, "the status API lists the four live brokers");
      assert.equal(
        members.reduce((n, m) => n + m.topics.length, 0),
        topics.length + 1,
      );
      const metrics = await (await fetch(`http://${fourth.httpAddress}/metrics`)).text();
      assert.match(metrics, /^nervebus_cluster_brokers(?:\{[^}]*\})? 4$/m);
      assert.match(metrics, /^nervebus_cluster_topics_owned\{[^}]*\} \d+$/m);
    } finally {
      await fourth.stop();
    }
  } finally {
    publishing = false;
    for (const c of clients) c.close();
    for (const b of brokers) b.child.kill("SIGKILL");
    await Promise.all(brokers.map((b) => b.exited));
  }
});

test("mysql --cluster: a forwarded call carries the caller's token; the owner authenticates it", async () => {
  const server = testMysql();
  const url = await server.database("cluster_auth");
  const dir = mkdtempSync(join(tmpdir(), "nb-cluster-auth-"));
  const token = randomBytes(32).toString("hex");
  const tokens = join(dir, "tokens");
  writeFileSync(tokens, `${tokenHash(token)} publisher\n`);
  const settings = { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500, authTokens: tokens };
  const a = await startBroker(url, settings);
  const b = await startBroker(url, settings);
  const client = new TestClient(a.address);
  const send = (topic: string, withToken: boolean) => {
    const md = new grpc.Metadata();
    if (withToken) md.set("authorization", `Bearer ${token}`);
    md.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    return unary(
      client.publisher.sendPack.bind(client.publisher),
      create(SendPackRequestSchema, { topic, messages: [create(MessageSchema, { data: Buffer.from("x") })] }),
      { deadline: Date.now() + 10_000 },
      md,
    );
  };
  try {
    await sleep(1200);
    // A topic that falls to broker b, seen from a.
    let topic = "";
    for (let i = 0; i < 50 && topic === ""; i++) {
      const located = await unary(
        client.admin.locateTopic.bind(client.admin),
        create(LocateTopicRequestSchema, { topic: `auth-${i}` }),
        {},
        (() => {
          const md = new grpc.Metadata();
          md.set("authorization", `Bearer ${token}`);
          return md;
        })(),
      );
      if (located.address === b.address) topic = `auth-${i}`;
    }
    assert.notEqual(topic, "", "some topic falls to the other broker");
    await assert.rejects(
      send(topic, false),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED,
    );
    const res = await send(topic, true);
    assert.equal(Number(res.firstSeq), 1);
    assert.ok(b.broker.store.cluster?.owns(topic), "the topic was created on the broker it falls to");
    assert.equal(a.broker.store.cluster?.owns(topic), false, "the broker called only forwarded");
  } finally {
    client.close();
    await a.stop();
    await b.stop();
  }
});

test("mysql --cluster: dead letters go to the broker that owns the dead-letter topic; only a live broker of the cluster may forward the reserved attributes", async () => {
  const server = testMysql();
  const url = await server.database("cluster_dead_letters");
  const settings = { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500 };
  const a = await startBroker(url, settings);
  const b = await startBroker(url, settings);
  const client = new TestClient(a.address);
  try {
    await sleep(1200);
    // A source topic that falls to a and a dead-letter topic that falls to b, seen from a.
    const locate = async (topic: string) => (await client.adminCall("locateTopic", { topic })).address;
    let source = "";
    let dlq = "";
    for (let i = 0; i < 50 && (source === "" || dlq === ""); i++) {
      const at = await locate(`dl-${i}`);
      if (at === "" && source === "") source = `dl-${i}`;
      if (at === b.address && dlq === "") dlq = `dl-${i}`;
    }
    assert.ok(source !== "" && dlq !== "", "topics fall to both brokers");
    for (const name of [source, dlq])
      await retrying(() => client.adminCall("createTopic", { topic: { name } }));
    await retrying(() =>
      client.adminCall("createSubscription", {
        subscription: { topic: source, name: "work", deadLetterTopic: dlq },
      }),
    );
    await retrying(() => client.publish(source, [{ data: Buffer.from("poison"), attributes: { k: "v" } }]));
    assert.ok(a.broker.store.cluster?.owns(source), "a owns the source topic");

    // A consumer of the dead-letter topic on b: b loads the topic and holds its lease.
    const bClient = new TestClient(b.address);
    try {
      const dead = bClient.receive(dlq, "audit");
      await dead.until(() => dead.responses.some((r) => r.subscribed !== undefined), 20_000, "subscribed");
      assert.ok(b.broker.store.cluster?.owns(dlq), "b owns the dead-letter topic");

      const work = client.receive(source, "work");
      await work.until(() => work.deliveries.length === 1, 20_000, "the poison message");
      work.send({ terminateSeqs: [work.deliveries[0]!.seq] });
      // a forwards the letter to b; it arrives with its attributes.
      await dead.until(() => dead.deliveries.length === 1, 20_000, "the dead letter");
      const letter = dead.deliveries[0]!;
      assert.equal(Buffer.from(letter.data).toString(), "poison");
      assert.equal(letter.attributes.k, "v");
      assert.equal(letter.attributes["nervebus-dlq-source-topic"], source);
      assert.equal(letter.attributes["nervebus-dlq-subscription"], "work");
      assert.equal(letter.attributes["nervebus-dlq-reason"], "terminated");
      assert.ok(b.broker.store.cluster?.owns(dlq), "b owns the dead-letter topic");
      assert.equal(a.broker.store.cluster?.owns(dlq), false, "a only forwarded");
      await dead.end();
      // Acked at the source once durable at b: nothing comes again.
      await work.until(
        () => {
          const g = a.broker.subscriptionGauges().find((s) => s.topic === source);
          return g !== undefined && g.backlog === 0 && g.inFlight === 0;
        },
        20_000,
        "the source backlog to empty",
      );
      await work.end();
      assert.equal(work.deliveries.length, 1);
    } finally {
      bClient.close();
    }

    // A client that claims to be a broker forwarding dead letters (without being a live one)
    // is refused the reserved attributes.
    const md = new grpc.Metadata();
    md.set("nervebus-forwarded", "someone");
    md.set("nervebus-dead-letters", "1");
    await assert.rejects(
      unary(
        client.publisher.sendPack.bind(client.publisher),
        create(SendPackRequestSchema, {
          topic: dlq,
          messages: [
            create(MessageSchema, { data: Buffer.from("x"), attributes: { "nervebus-dlq-reason": "x" } }),
          ],
        }),
        { deadline: Date.now() + 10_000 },
        md,
      ),
      (err: grpc.ServiceError) => err.code === grpc.status.INVALID_ARGUMENT,
    );
  } finally {
    client.close();
    await a.stop();
    await b.stop();
  }
});
