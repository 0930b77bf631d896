import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { MessageDelivery_State } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { TestClient } from "../support/broker.js";
import { type BrokerProcess, runCli, spawnBroker } from "../support/process.js";

const dir = mkdtempSync(join(tmpdir(), "nb-cli-dead-"));
const store = ["--store", `sqlite:${join(dir, "nb.db")}`];
let broker: BrokerProcess | undefined;

async function stopBroker(): Promise<void> {
  if (broker === undefined) return;
  const b = broker;
  broker = undefined;
  b.child.kill("SIGTERM");
  assert.equal(await b.exited, 0, b.stderr());
}

after(async () => {
  await stopBroker();
  rmSync(dir, { recursive: true, force: true });
});

/** Polls GetMessage until seq is settled (acked or dead-lettered) on every subscription. */
async function settled(client: TestClient, topic: string, seq: number): Promise<void> {
  for (let tries = 0; ; tries++) {
    const r = await client.adminCall("getMessage", { topic, seq: BigInt(seq) });
    const open = r.message!.deliveries.filter(
      (d) => d.state !== MessageDelivery_State.ACKED && d.state !== MessageDelivery_State.DEAD_LETTERED,
    );
    if (open.length === 0) return;
    if (tries > 1000)
      assert.fail(`seq ${seq} never settled: ${open.map((d) => MessageDelivery_State[d.state])}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Subscriptions are listed by name (drop, w). The CLI's `message` and `messages --deliveries` must tell a dead-lettered message (and where
// it went) from an acked one, also once the broker has restarted: the state is stored.
test("message and messages --deliveries show a dead-lettered message with its dead-letter topic, apart from an acked one, also after a restart", async () => {
  broker = await spawnBroker(store);
  const s = () => ["--server", broker!.address];
  for (const args of [
    ["topic", "create", "dl"],
    // "w" gives a message two deliveries, then moves it to dl.dlq; "drop" has no dead-letter
    // topic, so a message out of its one attempt is dropped.
    [
      "sub",
      "create",
      "dl",
      "w",
      "--max-delivery-attempts",
      "2",
      "--dead-letter-topic",
      "dl.dlq",
      "--min-backoff",
      "0",
      "--max-backoff",
      "0",
      "--from",
      "earliest",
    ],
    ["sub", "create", "dl", "drop", "--max-delivery-attempts", "1", "--from", "earliest"],
  ]) {
    const r = await runCli([...args, ...s()]);
    assert.equal(r.code, 0, r.stderr);
  }
  const pub = await runCli(["publish", ...s(), "--topic", "dl"], "poison\nfine\n");
  assert.equal(pub.stdout, "published 2 messages to dl, seqs 1–2\n", pub.stderr);

  const client = new TestClient(broker.address);
  try {
    const w = client.receive("dl", "w", { maxMessages: 10 });
    await w.until(() => w.deliveries.length >= 2, 20_000, "both messages on w");
    w.ack([2n]);
    w.send({ nacks: [{ seq: 1n }] });
    await w.until(() => w.deliveries.filter((d) => d.seq === 1n).length >= 2, 20_000, "seq 1 again");
    w.send({ nacks: [{ seq: 1n }] });
    const drop = client.receive("dl", "drop", { maxMessages: 10 });
    await drop.until(() => drop.deliveries.length >= 2, 20_000, "both messages on drop");
    drop.ack([2n]);
    drop.send({ nacks: [{ seq: 1n }] });
    await settled(client, "dl", 1);
    await settled(client, "dl", 2);
    await w.end();
    await drop.end();
  } finally {
    client.close();
  }

  const check = async (when: string) => {
    const dead = await runCli(["message", ...s(), "--topic", "dl", "--seq", "1"]);
    assert.equal(dead.code, 0, dead.stderr);
    assert.match(dead.stdout, /\ndata: {9}poison \(6 bytes\)\n/, when);
    assert.match(dead.stdout, /\nsubscription: w: dead-lettered to dl\.dlq\n/, `${when}:\n${dead.stdout}`);
    assert.match(
      dead.stdout,
      /\nsubscription: drop: dead-lettered, dropped \(no dead-letter topic\)\n/,
      `${when}:\n${dead.stdout}`,
    );
    const acked = await runCli(["message", ...s(), "--topic", "dl", "--seq", "2"]);
    assert.match(
      acked.stdout,
      /\nsubscription: drop: acked\nsubscription: w: acked\n$/,
      `${when}:\n${acked.stdout}`,
    );

    const list = await runCli(["messages", ...s(), "--topic", "dl", "--deliveries"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(
      list.stdout,
      /^1\t\S+\tpoison\n\tdrop: dead-lettered, dropped \(no dead-letter topic\)\n\tw: dead-lettered to dl\.dlq\n2\t\S+\tfine\n\tdrop: acked\n\tw: acked\n$/,
      `${when}:\n${list.stdout}`,
    );

    const json = JSON.parse(
      (await runCli(["message", ...s(), "--topic", "dl", "--seq", "1", "--json"])).stdout,
    );
    assert.deepEqual(
      json.deliveries.map((d: { subscription: string; state: string; deadLetterTopic?: string }) => [
        d.subscription,
        d.state,
        d.deadLetterTopic ?? "",
      ]),
      [
        ["drop", "STATE_DEAD_LETTERED", ""],
        ["w", "STATE_DEAD_LETTERED", "dl.dlq"],
      ],
      when,
    );
  };
  await check("live");
  await stopBroker();
  broker = await spawnBroker(store);
  await check("after a restart");

  // It really went to dl.dlq: the dead-letter topic holds the poison message.
  const moved = await runCli(["messages", ...s(), "--topic", "dl.dlq"]);
  assert.match(moved.stdout, /^1\t\S+\tpoison\n$/, moved.stderr);
});
