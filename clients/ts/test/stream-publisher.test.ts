import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { NerveBusClient, type NerveBusError, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { deferred, uniqueName } from "./support/helpers.js";

let broker: TestBroker;

before(async () => {
  broker = await TestBroker.start();
});

after(async () => {
  await broker.dispose();
});

describe("stream publisher", () => {
  test("batches sent without waiting are confirmed in order with consecutive seqs, within the credit", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("stream");
      const stream = client.streamPublisher(topic, { maxMessages: 200 });
      await stream.ready;
      assert.equal(stream.granted.messages, 200);
      const sends = Array.from({ length: 20 }, (_, b) =>
        stream.send(Array.from({ length: 50 }, (_, i) => ({ data: `b${b}-${i}` }))),
      );
      const results = await Promise.all(sends);
      assert.deepEqual(
        results.flat().map((r) => [r.seq, r.outcome]),
        Array.from({ length: 1000 }, (_, i) => [i + 1, "appended"]),
      );
      for (const r of results.flat()) assert.match(r.messageId, /^[0-9a-f-]{36}$/);
      await stream.close();
      const got: string[] = [];
      const done = deferred();
      const sub = client.subscribe(
        topic,
        "check",
        (m) => {
          got.push(Buffer.from(m.data).toString());
          m.ack();
          if (got.length === 1000) done.resolve();
        },
        { start: "earliest" },
      );
      await done.promise;
      await sub.close();
      assert.deepEqual(got.slice(0, 3), ["b0-0", "b0-1", "b0-2"]);
      assert.equal(got[999], "b19-49");
    } finally {
      await client.close();
    }
  });

  test("a batch that can never fit the credit is refused in the client; a broker refusal rejects ready and send", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const stream = client.streamPublisher(uniqueName("credit"), { maxMessages: 3 });
      await assert.rejects(
        stream.send([{ data: "1" }, { data: "2" }, { data: "3" }, { data: "4" }]),
        (err: NerveBusError) =>
          err.code === StatusCode.INVALID_ARGUMENT && /never fits the credit of 3/.test(err.details),
      );
      await stream.close();
      const bad = client.streamPublisher("no spaces");
      await assert.rejects(bad.ready, (err: NerveBusError) => err.code === StatusCode.INVALID_ARGUMENT);
      await assert.rejects(bad.send([{ data: "x" }]), (err: NerveBusError) =>
        /open\.topic/.test(err.details),
      );
    } finally {
      await client.close();
    }
  });

  test("fire and forget on an ephemeral topic: send resolves without results, connected consumers get the messages", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("live");
      await client.admin.createTopic(topic, { ephemeral: true });
      const got: string[] = [];
      const done = deferred();
      const sub = client.subscribe(topic, "live", (m) => {
        got.push(Buffer.from(m.data).toString());
        m.ack();
        if (got.length === 100) done.resolve();
      });
      await sub.ready;
      const stream = client.streamPublisher(topic, { noConfirms: true, maxMessages: 10 });
      for (let b = 0; b < 50; b++)
        assert.deepEqual(await stream.send([{ data: `${b}a` }, { data: `${b}b` }]), []);
      await stream.close();
      await done.promise;
      await sub.close();
      assert.deepEqual(got.slice(0, 4), ["0a", "0b", "1a", "1b"]);
    } finally {
      await client.close();
    }
  });
});

describe("priority", () => {
  test("urgent messages published after a bulk backlog are delivered first; a bad priority is refused", async () => {
    const client = new NerveBusClient(broker.address);
    try {
      const topic = uniqueName("priority");
      const stream = client.streamPublisher(topic);
      await stream.send(
        Array.from({ length: 30 }, (_, i) => ({ data: `bulk${i}`, priority: "bulk" as const })),
      );
      await stream.send([
        { data: "urgent0", priority: "urgent" },
        { data: "urgent1", priority: "urgent" },
      ]);
      await stream.close();
      const messages = client.messages(topic, "s", { start: "earliest", maxMessages: 5 });
      const got: string[] = [];
      for await (const m of messages) {
        got.push(m.text());
        assert.equal(m.priority, "urgent");
        m.ack();
        if (got.length === 2) break;
      }
      assert.deepEqual(got, ["urgent0", "urgent1"]);
      await assert.rejects(
        client.publish(topic, { data: "x", priority: "soon" as "urgent" }),
        (err: NerveBusError) =>
          err.code === StatusCode.INVALID_ARGUMENT && /message\.priority/.test(err.details),
      );
    } finally {
      await client.close();
    }
  });
});
