import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { NerveBusClient, type PublishResult } from "@nervebus/client";
import { TestCluster } from "./support/cluster.js";
import { delay, eventually, uniqueName } from "./support/helpers.js";

// Three brokers on one MariaDB database (`--cluster`); the client is given the first one.
let cluster: TestCluster;

before(async () => {
  cluster = await TestCluster.start("ts_client_direct", 3);
});

after(async () => {
  await cluster?.dispose();
});

test("directToOwner publishes and receives at the topic's owner and follows the topic when its owner is killed", async () => {
  const [home, ...others] = cluster.brokers;
  const plain = new NerveBusClient(home!.address);
  const client = new NerveBusClient(home!.address, {
    directToOwner: true,
    publisher: { retry: { totalTimeoutMs: 60_000 } },
  });
  try {
    // A topic another broker would own, so the client has somewhere to go. The brokers have
    // just started: until the first one has seen the others' heartbeats every name hashes to
    // itself, so keep trying for a while rather than a fixed number of names.
    let topic = "";
    const until = Date.now() + 30_000;
    for (let i = 1; topic === "" && Date.now() < until; i++) {
      const name = uniqueName(`direct${i}`);
      if ((await plain.admin.locateTopic(name)) !== "") topic = name;
      else if (i % 16 === 0) await delay(250);
    }
    assert.notEqual(topic, "", "no topic name fell to another broker in 30 s");

    const confirmed = new Map<number, string>();
    const publish = async (data: string) => {
      const r: PublishResult = await client.publish(topic, { data });
      confirmed.set(r.seq, data);
    };
    await publish("first");
    const owner = await eventually(
      async () => {
        const at = await plain.admin.locateTopic(topic);
        return at !== "" && client.ownerOf(topic) === at ? at : undefined;
      },
      15_000,
      "the client to learn the topic's owner",
    );
    const ownerBroker = others.find((b) => b.address === owner);
    assert.ok(ownerBroker, `owner ${owner} is none of the cluster's brokers`);

    // A consumer whose acks the broker confirms: a message whose ack was confirmed must not
    // come again, even after the owner dies.
    const received = new Map<number, string>();
    const ackConfirmed = new Set<number>();
    const againAfterAck: number[] = [];
    const sub = client.subscribe(
      topic,
      "audit",
      async (m) => {
        if (ackConfirmed.has(m.seq)) againAfterAck.push(m.seq);
        received.set(m.seq, Buffer.from(m.data).toString());
        await m.ackWithResult();
        ackConfirmed.add(m.seq);
      },
      { start: "earliest", confirmAcks: true, reconnectBackoff: { initialMs: 50, maxMs: 500 } },
    );
    await sub.ready;
    for (let i = 0; i < 20; i++) await publish(`before-${i}`);
    await eventually(() => confirmed.size > 0 && [...confirmed.keys()].every((s) => ackConfirmed.has(s)));

    // The owner dies while a publisher keeps going: its topic moves to another broker.
    await ownerBroker.stop("SIGKILL");
    for (let i = 0; i < 20; i++) await publish(`after-${i}`);
    const next = await eventually(
      async () => {
        const at = await plain.admin.locateTopic(topic);
        return at !== owner && client.ownerOf(topic) === at ? { at } : undefined;
      },
      20_000,
      "the client to follow the topic to its new owner",
    );
    assert.notEqual(next.at, owner);

    await eventually(
      () => [...confirmed.keys()].every((s) => ackConfirmed.has(s)),
      20_000,
      "every confirmed publish to be received and acked",
    );
    for (const [seq, data] of confirmed) assert.equal(received.get(seq), data, `seq ${seq}`);
    assert.deepEqual(againAfterAck, [], "messages delivered again after their ack was confirmed");
    assert.equal(confirmed.size, 41);
    await sub.close();
  } finally {
    await client.close();
    await plain.close();
  }
});
