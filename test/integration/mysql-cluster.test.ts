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
import { crossBrokerDeadLetters, liveOwners, retrying, untilSourceEmpty } from "../support/cluster.js";
import { type TestMysql, useTestMysql } from "../support/mariadb.js";
import { pem, TestCa } from "../support/pki.js";
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

/** The headers of a call a live broker of the cluster makes to another: its id and peer secret. */
async function peerHeaders(server: TestMysql, url: string): Promise<grpc.Metadata> {
  const [row] = await server.query<mysql.RowDataPacket[]>(
    url,
    `SELECT id, secret FROM nb_brokers WHERE expires_at > CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED) LIMIT 1`,
  );
  const md = new grpc.Metadata();
  md.set("nervebus-forwarded", String(row!.id));
  md.set("nervebus-peer-secret", String(row!.secret));
  return md;
}

/** One SendPack of one message ("x", with `attributes`) through `client`, `md` its metadata. */
function sendOne(
  client: TestClient,
  topic: string,
  md: grpc.Metadata,
  attributes: Record<string, string> = {},
) {
  return unary(
    client.publisher.sendPack.bind(client.publisher),
    create(SendPackRequestSchema, {
      topic,
      messages: [create(MessageSchema, { data: Buffer.from("x"), attributes })],
    }),
    { deadline: Date.now() + 10_000 },
    md,
  );
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
    const owned = await liveOwners(server, url);
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
    const after = await liveOwners(server, url);
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

    // The same, each broker serving the call itself (as if forwarded to it: signed with a
    // broker's peer secret, which the test reads from the database as brokers do): the catalog's
    // unique name decides, and of three brokers publishing to a new topic at once one takes its lease.
    const itself = await peerHeaders(server, url);
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
    const owned = await liveOwners(server, url);
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
    let after = await liveOwners(server, url);
    for (let i = 0; i < 100 && topics.some((t) => !after.has(t)); i++) {
      await sleep(100);
      after = await liveOwners(server, url);
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
    return sendOne(client, topic, md);
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
    // A source topic that falls to a and a dead-letter topic that falls to b, seen from a.
    const { source, dlq } = await crossBrokerDeadLetters(client, b.address, "dl");
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
      await untilSourceEmpty(work, a.broker, source);
      await work.end();
      assert.equal(work.deliveries.length, 1);
    } finally {
      bClient.close();
    }

    // A client that claims to be a broker forwarding dead letters (naming no live broker) is
    // refused: UNAVAILABLE, as a broker that started since the last heartbeat would be.
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
      (err: grpc.ServiceError) =>
        err.code === grpc.status.UNAVAILABLE && /not a live broker/.test(err.details),
    );
  } finally {
    client.close();
    await a.stop();
    await b.stop();
  }
});

test("mysql --cluster: a client naming a live broker in nervebus-forwarded is refused; only the broker's secret from the database makes a call a broker's", async () => {
  const server = testMysql();
  const url = await server.database("cluster_spoof");
  const settings = { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500 };
  const a = await startBroker(url, settings);
  const b = await startBroker(url, settings);
  const client = new TestClient(a.address);
  try {
    await sleep(1200);
    // Broker ids are public: GetCluster (and the status page) show them.
    const view = await client.adminCall("getCluster", {});
    const other = view.brokers.find((m) => m.address === b.address);
    assert.ok(other?.live, "b is a live broker of the cluster");
    const spoofed = new grpc.Metadata();
    spoofed.set("nervebus-forwarded", other.id);
    spoofed.set("nervebus-dead-letters", "1");
    const reserved = { "nervebus-dlq-reason": "forged", "nervebus-dlq-source-topic": "x" };
    const forged = (err: grpc.ServiceError) =>
      err.code === grpc.status.PERMISSION_DENIED && /without that broker's peer secret/.test(err.details);
    // Naming a live broker, without its secret or with a guessed one: PERMISSION_DENIED.
    await assert.rejects(sendOne(client, "spoof-dlq", spoofed, reserved), forged);
    const guessed = spoofed.clone();
    guessed.set("nervebus-peer-secret", randomBytes(32).toString("base64url"));
    await assert.rejects(sendOne(client, "spoof-dlq", guessed, reserved), forged);
    // Without the reserved attributes too, on any service: the header does not make a broker
    // serve a call it would forward (placement, loop prevention), nor anything else.
    let topic = "";
    for (let i = 0; i < 50 && topic === ""; i++)
      if ((await client.adminCall("locateTopic", { topic: `spoof-${i}` })).address === b.address)
        topic = `spoof-${i}`;
    assert.notEqual(topic, "", "some topic falls to b");
    await assert.rejects(sendOne(client, topic, spoofed), forged);
    await assert.rejects(
      unary(
        client.admin.createTopic.bind(client.admin),
        create(CreateTopicRequestSchema, { topic: { name: topic } }),
        { deadline: Date.now() + 10_000 },
        spoofed,
      ),
      forged,
    );
    const stream = client.subscriber.receive(spoofed);
    const ended = new Promise<grpc.ServiceError>((resolve) => stream.on("error", resolve));
    stream.on("data", () => undefined);
    assert.ok(forged(await ended), "a Receive stream is refused the same way");
    assert.equal(a.broker.store.cluster?.owns(topic), false, "a did not serve the call itself");
    assert.equal(b.broker.store.cluster?.owns(topic), false, "nor did b: the call was refused");

    // With the secret b registered in the database, the same call is b's: its dead letters keep
    // their attributes.
    const [row] = await server.query<mysql.RowDataPacket[]>(
      url,
      "SELECT secret FROM nb_brokers WHERE id = ?",
      [other.id],
    );
    const real = spoofed.clone();
    real.set("nervebus-peer-secret", String(row!.secret));
    const accepted = await sendOne(client, "spoof-dlq", real, reserved);
    assert.equal(Number(accepted.firstSeq), 1);
  } finally {
    client.close();
    await a.stop();
    await b.stop();
  }
});

test("mysql --cluster with TLS, mTLS, tokens and a policy: forwarding over TLS, the owner authorizes the original caller, dead letters cross brokers", async () => {
  const server = testMysql();
  const url = await server.database("cluster_tls");
  const dir = mkdtempSync(join(tmpdir(), "nb-cluster-tls-"));
  const ca = TestCa.create(dir, "cluster-ca");
  const brokerCert = ca.broker("nervebus-broker");
  const alice = ca.client("alice");
  const tokens = { ops: randomBytes(32).toString("hex"), shop: randomBytes(32).toString("hex") };
  const tokensFile = join(dir, "tokens");
  writeFileSync(tokensFile, `${tokenHash(tokens.ops)} ops\n${tokenHash(tokens.shop)} shop\n`);
  const policyFile = join(dir, "policy.json");
  writeFileSync(
    policyFile,
    JSON.stringify({
      principals: {
        ops: [{ allow: ["publish", "subscribe", "admin"], topics: ["*"] }],
        shop: [{ allow: ["publish"], topics: ["orders-*"] }],
        alice: [{ allow: ["publish"], topics: ["alice-*"] }],
        // The brokers' own certificate may do everything: a forwarded call authorized as the
        // forwarding broker instead of its client would pass every check below.
        "nervebus-broker": [{ allow: ["publish", "subscribe", "admin"], topics: ["*"] }],
      },
    }),
  );
  const settings = {
    cluster: true,
    leaseTtlMs: 2000,
    leaseRenewMs: 500,
    tlsCert: brokerCert.cert,
    tlsKey: brokerCert.key,
    tlsClientCa: ca.cert,
    authTokens: tokensFile,
    authPolicy: policyFile,
    requireAuth: true,
  };
  const a = await startBroker(url, settings);
  const b = await startBroker(url, settings);
  const credentials = (token: string | undefined) => {
    // Every client of an mTLS broker has a certificate: alice's; a token, when sent, decides.
    const ssl = grpc.credentials.createSsl(pem(ca.cert), pem(alice.key), pem(alice.cert));
    if (token === undefined) return ssl;
    return grpc.credentials.combineChannelCredentials(
      ssl,
      grpc.credentials.createFromMetadataGenerator((_p, cb) => {
        const md = new grpc.Metadata();
        md.set("authorization", `Bearer ${token}`);
        cb(null, md);
      }),
    );
  };
  const ops = new TestClient(a.address, {}, credentials(tokens.ops));
  const shop = new TestClient(a.address, {}, credentials(tokens.shop));
  const asAlice = new TestClient(a.address, {}, credentials(undefined));
  try {
    await sleep(1200);
    // Names that fall to b, seen from a (whom every client calls).
    const fallingTo = async (address: string, prefix: string) => {
      for (let i = 0; i < 100; i++) {
        const name = `${prefix}${i}`;
        if ((await ops.adminCall("locateTopic", { topic: name })).address === address) return name;
      }
      throw new Error(`no ${prefix}* topic falls to ${address}`);
    };
    const ordersAtB = await fallingTo(b.address, "orders-");
    const aliceAtB = await fallingTo(b.address, "alice-");
    const denied = (principal: string) => (err: grpc.ServiceError) =>
      err.code === grpc.status.PERMISSION_DENIED && err.details.includes(`principal "${principal}"`);

    // Forwarding over TLS, authorized at the owner as the token's principal.
    const res = await retrying(() => shop.publish(ordersAtB, ["o1"]));
    assert.equal(Number(res.firstSeq), 1);
    assert.ok(b.broker.store.cluster?.owns(ordersAtB), "b owns the topic: a forwarded the call over TLS");
    assert.equal(a.broker.store.cluster?.owns(ordersAtB), false);
    await assert.rejects(shop.publish(aliceAtB, ["x"]), denied("shop"));
    // As the client certificate's principal, which a verified and b trusts from a.
    const byCert = await retrying(() => asAlice.publish(aliceAtB, ["a1"]));
    assert.equal(Number(byCert.firstSeq), 1);
    assert.ok(b.broker.store.cluster?.owns(aliceAtB));
    await assert.rejects(asAlice.publish(ordersAtB, ["x"]), denied("alice"));
    // alice naming a broker in the peer headers, with a certificate principal of her choice, is refused.
    const view = await ops.adminCall("getCluster", {});
    const forged = new grpc.Metadata();
    forged.set("nervebus-forwarded", view.brokers.find((m) => m.address === b.address)!.id);
    forged.set("nervebus-peer-secret", "guess");
    forged.set("nervebus-forwarded-certificate-bin", Buffer.from("ops"));
    await assert.rejects(
      sendOne(asAlice, ordersAtB, forged),
      (err: grpc.ServiceError) =>
        err.code === grpc.status.PERMISSION_DENIED && /peer secret/.test(err.details),
    );
    // Without naming a broker, the other peer headers are not believed either: alice stays alice,
    // whether a serves the call (a topic falling to a) or forwards it (one falling to b).
    const ordersAtA = await fallingTo("", "orders-");
    const claims = new grpc.Metadata();
    claims.set("nervebus-forwarded-certificate-bin", Buffer.from("ops"));
    claims.set("nervebus-forwarded-for", "ipv4:10.9.8.7:1");
    for (const topic of [ordersAtA, ordersAtB])
      await assert.rejects(sendOne(asAlice, topic, claims), denied("alice"));

    // Dead letters: the source topic falls to a, its dead-letter topic to b; the letter goes
    // from a to b over TLS, signed as a's, with authentication on.
    const source = await fallingTo("", "src-");
    const dlq = await fallingTo(b.address, "dlq-");
    for (const name of [source, dlq]) await retrying(() => ops.adminCall("createTopic", { topic: { name } }));
    await retrying(() =>
      ops.adminCall("createSubscription", {
        subscription: { topic: source, name: "work", deadLetterTopic: dlq },
      }),
    );
    await retrying(() => ops.publish(source, [{ data: Buffer.from("poison"), attributes: { k: "v" } }]));
    // The dead-letter topic's consumer calls a too: its Receive stream is forwarded to b over TLS.
    const dead = ops.receive(dlq, "audit");
    await dead.until(() => dead.responses.some((r) => r.subscribed !== undefined), 20_000, "subscribed");
    assert.ok(b.broker.store.cluster?.owns(dlq), "b owns the dead-letter topic");
    const work = ops.receive(source, "work");
    await work.until(() => work.deliveries.length === 1, 20_000, "the poison message");
    assert.ok(a.broker.store.cluster?.owns(source), "a owns the source topic");
    work.send({ terminateSeqs: [work.deliveries[0]!.seq] });
    await dead.until(() => dead.deliveries.length === 1, 20_000, "the dead letter");
    const letter = dead.deliveries[0]!;
    assert.equal(Buffer.from(letter.data).toString(), "poison");
    assert.equal(letter.attributes.k, "v");
    assert.equal(letter.attributes["nervebus-dlq-source-topic"], source);
    assert.equal(letter.attributes["nervebus-dlq-reason"], "terminated");
    assert.equal(a.broker.store.cluster?.owns(dlq), false, "a only forwarded");
    await untilSourceEmpty(work, a.broker, source);
    await dead.end();
    await work.end();
  } finally {
    for (const c of [ops, shop, asAlice]) c.close();
    await a.stop();
    await b.stop();
  }
});

test("mysql --cluster: a forwarded call counts against its client's connection at the owner, not the connection between the brokers", async () => {
  const server = testMysql();
  const url = await server.database("cluster_admission");
  // One SendPack or Publish stream in progress per connection: two clients publishing through
  // one broker to a topic another owns share that broker's connection to the owner.
  const settings = { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500, maxPacksPerConnection: 1 };
  const a = await startBroker(url, settings);
  const b = await startBroker(url, settings);
  // Two connections: grpc-js shares one between channels to one address unless told not to.
  const clients = [0, 1].map(() => new TestClient(a.address, { "grpc.use_local_subchannel_pool": 1 }));
  try {
    await sleep(1200);
    let topic = "";
    for (let i = 0; i < 50 && topic === ""; i++)
      if ((await clients[0]!.adminCall("locateTopic", { topic: `adm-${i}` })).address === b.address)
        topic = `adm-${i}`;
    assert.notEqual(topic, "", "some topic falls to b");
    await retrying(() => clients[0]!.adminCall("createTopic", { topic: { name: topic } }));
    // Each client keeps a Publish stream open (one pack in progress on its connection) and gets
    // a batch confirmed on it, both at once.
    const streams = clients.map((c) => c.publisher.publish());
    const confirmed = streams.map(
      (stream) =>
        new Promise<BatchConfirm>((resolve, reject) => {
          stream.on("data", (r: PublishResponse) => {
            if (r.confirms.length > 0) resolve(r.confirms[0]!);
          });
          stream.on("error", reject);
        }),
    );
    for (const stream of streams) {
      stream.write(create(PublishRequestSchema, { open: create(PublishOpenSchema, { topic }) }));
      stream.write(
        create(PublishRequestSchema, { messages: [create(MessageSchema, { data: Buffer.from("m") })] }),
      );
    }
    const results = await Promise.all(confirmed);
    assert.deepEqual(
      results.map((r) => Number(r.result?.firstSeq)).sort(),
      [1, 2],
      "both streams, open at once through a, were admitted by b",
    );
    assert.ok(b.broker.store.cluster?.owns(topic));
    for (const stream of streams) stream.end();
  } finally {
    for (const c of clients) c.close();
    await a.stop();
    await b.stop();
  }
});

test("mysql --cluster: a nb_brokers table made by a version without peer secrets gets the column; such a broker's row verifies nobody", async () => {
  const server = testMysql();
  const url = await server.database("cluster_secret_column");
  // The other tables made first, by a broker alone (concurrent first starts on an empty database
  // race in the catalog's own migrations, which is another matter).
  await (await startBroker(url)).stop();
  // The table as the previous version made it, with a live row of an old broker.
  await server.query(
    url,
    `CREATE TABLE nb_brokers (
       id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
       address VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
       expires_at BIGINT NOT NULL, started_at BIGINT NOT NULL,
       draining TINYINT NOT NULL DEFAULT 0) ENGINE=InnoDB`,
  );
  await server.query(
    url,
    `INSERT INTO nb_brokers (id, address, expires_at, started_at)
       VALUES ('old/1/x', '127.0.0.1:1', CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED) + 3600000, 0)`,
  );
  const settings = { cluster: true, leaseTtlMs: 2000, leaseRenewMs: 500 };
  // Two brokers joining at once both look for the column; one adds it.
  const [a, b] = await Promise.all([startBroker(url, settings), startBroker(url, settings)]);
  const client = new TestClient(a.address);
  try {
    await sleep(1200);
    const rows = await server.query<mysql.RowDataPacket[]>(
      url,
      "SELECT id, secret FROM nb_brokers ORDER BY id",
    );
    const secrets = new Map(rows.map((r) => [String(r.id), String(r.secret)]));
    assert.equal(secrets.get("old/1/x"), "", "the old broker's row has no secret");
    for (const bus of [a, b])
      assert.match(secrets.get(bus.broker.store.cluster!.self) ?? "", /^[\w-]{43}$/, "256 bits, base64url");
    assert.equal(a.broker.store.cluster?.verifyPeer("old/1/x", ""), false, "an empty secret verifies nobody");
    const bId = b.broker.store.cluster!.self;
    assert.equal(a.broker.store.cluster?.verifyPeer(bId, secrets.get(bId)!), true);
    assert.equal(a.broker.store.cluster?.verifyPeer(bId, `${secrets.get(bId)!}x`), false);
    // A call that names the old broker (live, without a secret) is refused as one from a broker
    // that cannot be verified: UNAVAILABLE (README: upgrade a cluster's brokers together).
    const md = new grpc.Metadata();
    md.set("nervebus-forwarded", "old/1/x");
    md.set("nervebus-peer-secret", "");
    await assert.rejects(
      sendOne(client, "t", md),
      (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE,
    );
  } finally {
    client.close();
    await a.stop();
    await b.stop();
  }
});
