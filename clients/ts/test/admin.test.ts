import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { NerveBusClient, NerveBusError, type ReceivedMessage, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, delay, eventually, uniqueName, unreachableBroker } from "./support/helpers.js";

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

function hasCode(code: StatusCode) {
  return (err: unknown) => err instanceof NerveBusError && err.code === code;
}

test("topics: create, get, list, update, delete", async () => {
  const admin = client.admin;
  const name = uniqueName("topic");
  const created = await admin.createTopic(name, { shards: 2, retentionMs: 3_600_000, dedupWindowMs: 30_000 });
  assert.deepEqual(
    { ...created, createTime: undefined },
    {
      name,
      shards: 2,
      retentionMs: 3_600_000,
      retentionBytes: 0,
      dedupWindowMs: 30_000,
      ephemeral: false,
      createTime: undefined,
    },
  );
  assert.ok(Math.abs(created.createTime.getTime() - Date.now()) < 60_000);
  await assert.rejects(admin.createTopic(name), hasCode(StatusCode.ALREADY_EXISTS));

  const defaults = await admin.createTopic(uniqueName("defaults"));
  assert.equal(defaults.retentionMs, 7 * 24 * 3_600_000, "unset retention means 7 days");
  assert.equal(defaults.dedupWindowMs, 120_000, "unset dedup window means 2 minutes");

  assert.deepEqual(await admin.getTopic(name), created);
  assert.ok((await admin.listTopics()).some((t) => t.name === name));

  const updated = await admin.updateTopic(name, { retentionMs: 0, retentionBytes: 1 << 20 });
  assert.deepEqual(
    [updated.retentionMs, updated.retentionBytes, updated.dedupWindowMs],
    [0, 1 << 20, 30_000],
  );
  await assert.rejects(admin.updateTopic(name, {}), hasCode(StatusCode.INVALID_ARGUMENT));

  await admin.deleteTopic(name);
  await assert.rejects(admin.getTopic(name), hasCode(StatusCode.NOT_FOUND));
  await assert.rejects(admin.createTopic("no spaces allowed"), (err: unknown) => {
    assert.ok(err instanceof NerveBusError);
    assert.equal(err.code, StatusCode.INVALID_ARGUMENT);
    assert.match(err.details, /topic\.name/);
    return true;
  });
});

test("subscriptions: create, get, list, update, delete", async () => {
  const admin = client.admin;
  const topic = uniqueName("topic");
  await admin.createTopic(topic);
  const name = uniqueName("sub");
  const created = await admin.createSubscription(topic, name, {
    ackDeadlineMs: 10_000,
    minBackoffMs: 200,
    maxBackoffMs: 5000,
    maxDeliveryAttempts: 5,
    ordering: true,
    start: "earliest",
  });
  assert.deepEqual(
    { ...created, createTime: undefined },
    {
      topic,
      name,
      ackDeadlineMs: 10_000,
      minBackoffMs: 200,
      maxBackoffMs: 5000,
      maxDeliveryAttempts: 5,
      deadLetterTopic: "",
      ordering: true,
      paused: false,
      createTime: undefined,
    },
  );
  await assert.rejects(admin.createSubscription(topic, name), hasCode(StatusCode.ALREADY_EXISTS));
  assert.deepEqual(await admin.getSubscription(topic, name), created);
  assert.deepEqual(
    (await admin.listSubscriptions(topic)).map((s) => s.name),
    [name],
  );
  const dlq = uniqueName("dlq");
  const updated = await admin.updateSubscription(topic, name, {
    ackDeadlineMs: 20_000,
    deadLetterTopic: dlq,
  });
  assert.deepEqual(
    [updated.ackDeadlineMs, updated.deadLetterTopic, updated.minBackoffMs],
    [20_000, dlq, 200],
  );
  await assert.rejects(
    admin.updateSubscription(topic, name, { ackDeadlineMs: 50 }),
    hasCode(StatusCode.INVALID_ARGUMENT),
  );
  await admin.deleteSubscription(topic, name);
  await assert.rejects(admin.getSubscription(topic, name), hasCode(StatusCode.NOT_FOUND));
});

test("pause, resume, seek, purge and stats act on deliveries", async () => {
  const admin = client.admin;
  const topic = uniqueName("topic");
  const name = uniqueName("sub");
  await admin.createTopic(topic);
  await admin.createSubscription(topic, name, { start: "earliest" });
  for (let i = 1; i <= 5; i++) await client.publish(topic, { data: `m${i}` });

  const paused = await admin.pause(topic, name);
  assert.equal(paused.paused, true);
  const got: ReceivedMessage[] = [];
  const five = deferred();
  const sub = client.subscribe(topic, name, (m) => {
    got.push(m);
    if (got.length === 5) five.resolve();
  });
  await sub.ready;
  await delay(300);
  assert.equal(got.length, 0, "nothing delivered while paused");
  let stats = await admin.stats(topic);
  assert.equal(stats.topic.name, topic);
  assert.equal(stats.topic.lastSeq, 5);
  assert.equal(stats.topic.firstSeq, 1);
  assert.deepEqual(
    [stats.subscriptions[0]!.name, stats.subscriptions[0]!.paused, stats.subscriptions[0]!.backlog],
    [name, true, 5],
  );
  assert.equal(stats.subscriptions[0]!.consumers.length, 1);

  assert.equal((await admin.resume(topic, name)).paused, false);
  await five.promise;
  await eventually(async () => (await admin.stats(topic)).subscriptions[0]!.backlog === 0, 5000, "acks");
  stats = await admin.stats(topic);
  assert.equal(stats.subscriptions[0]!.floor, 5);

  // Seeking back to seq 3 makes 3, 4 and 5 deliverable again.
  got.length = 0;
  const floor = await admin.seek(topic, name, { seq: 3 });
  assert.equal(floor, 2);
  await eventually(() => got.length === 3, 5000, "redelivery after seek");
  assert.deepEqual(
    got.map((m) => m.seq),
    [3, 4, 5],
  );
  await sub.close();

  // Seek by time to the future: nothing is left; purge acks everything published.
  assert.equal(await admin.seek(topic, name, { time: Date.now() + 60_000 }), 5);
  for (let i = 6; i <= 8; i++) await client.publish(topic, { data: `m${i}` });
  assert.equal((await admin.stats(topic)).subscriptions[0]!.backlog, 3);
  assert.equal(await admin.purge(topic, name), 8);
  assert.equal((await admin.stats(topic)).subscriptions[0]!.backlog, 0);

  await admin.deleteTopic(topic);
  await assert.rejects(admin.stats(topic), hasCode(StatusCode.NOT_FOUND));
});

test("admin calls honour an AbortSignal and a timeout", async () => {
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await assert.rejects(client.admin.listTopics({ signal: controller.signal }), /stop/);
  const nobody = await unreachableBroker();
  const unreachable = new NerveBusClient(nobody.address, { adminTimeoutMs: 300 });
  try {
    await assert.rejects(
      unreachable.admin.listTopics(),
      (err: unknown) =>
        err instanceof NerveBusError &&
        (err.code === StatusCode.UNAVAILABLE || err.code === StatusCode.DEADLINE_EXCEEDED),
    );
  } finally {
    await unreachable.close();
    await nobody.close();
  }
});
