import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { NerveBusClient, NerveBusError, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { uniqueName } from "./support/helpers.js";

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

function hasCode(code: StatusCode, words: RegExp) {
  return (err: unknown) => err instanceof NerveBusError && err.code === code && words.test(err.message);
}

test("listMessages and getMessage browse stored messages and their deliveries without consuming them", async () => {
  const admin = client.admin;
  const topic = uniqueName("browse");
  await admin.createTopic(topic);
  await admin.createSubscription(topic, "audit", { start: "earliest" });
  const traces: string[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await client.publish(topic, {
      data: `m${i + 1}`,
      attributes: { even: String(i % 2 === 1) },
      orderingKey: `k${i % 3}`,
    });
    traces.push(r.traceId);
  }
  const page = await admin.listMessages(topic, { attributes: { even: "true" }, pageSize: 3 });
  assert.deepEqual(
    page.messages.map((m) => m.seq),
    [2, 4, 6],
  );
  assert.equal(page.nextSeq, 7);
  const rest = await admin.listMessages(topic, { attributes: { even: "true" }, fromSeq: page.nextSeq });
  assert.deepEqual(
    rest.messages.map((m) => m.seq),
    [8, 10],
  );
  assert.equal(rest.nextSeq, 0);

  const byTrace = await admin.listMessages(topic, { traceId: traces[4]!, deliveries: true });
  assert.equal(byTrace.messages.length, 1);
  const m = byTrace.messages[0]!;
  assert.equal(m.seq, 5);
  assert.equal(Buffer.from(m.data).toString(), "m5");
  assert.equal(m.orderingKey, "k1");
  assert.deepEqual(
    m.deliveries.map((d) => [d.subscription, d.state]),
    [["audit", "not_delivered"]],
  );
  const one = await admin.getMessage(topic, 10);
  assert.equal(Buffer.from(one.data).toString(), "m10");
  await assert.rejects(admin.getMessage(topic, 11), hasCode(StatusCode.NOT_FOUND, /never published/));
  await assert.rejects(
    admin.listMessages(topic, { scanLimit: 1_000_000 }),
    hasCode(StatusCode.INVALID_ARGUMENT, /scan_limit/),
  );
  const stats = await admin.stats(topic);
  assert.equal(stats.subscriptions.find((s) => s.name === "audit")?.backlog, 10, "browsing consumed nothing");
});
