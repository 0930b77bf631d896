import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type MessageDelivery, NerveBusClient } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { eventually, uniqueName } from "./support/helpers.js";

let broker: TestBroker;

before(async () => {
  broker = await TestBroker.start();
});

after(async () => {
  await broker.dispose();
});

/** Each subscription's [state, deadLetterTopic] of one message, by getMessage. */
async function states(client: NerveBusClient, topic: string, seq: number) {
  const m = await client.admin.getMessage(topic, seq);
  return Object.fromEntries(m.deliveries.map((d) => [d.subscription, [d.state, d.deadLetterTopic]]));
}

const settled = (d: MessageDelivery) => d.state === "acked" || d.state === "dead_lettered";

test("getMessage and listMessages show a dead-lettered message as dead_lettered with its dead-letter topic, an acked one as acked, also after a restart", async () => {
  const topic = uniqueName("dead");
  const dlq = `${topic}.dlq`;
  let client = new NerveBusClient(broker.address);
  try {
    await client.admin.createTopic(topic);
    // "w" delivers a message twice, then moves it to dlq; "drop" has no dead-letter topic, so
    // a message out of its one attempt is dropped.
    await client.admin.createSubscription(topic, "w", {
      maxDeliveryAttempts: 2,
      deadLetterTopic: dlq,
      minBackoffMs: 0,
      maxBackoffMs: 0,
      start: "earliest",
    });
    await client.admin.createSubscription(topic, "drop", { maxDeliveryAttempts: 1, start: "earliest" });
    await client.publish(topic, { data: "poison" });
    await client.publish(topic, { data: "fine" });

    for (const sub of ["w", "drop"]) {
      const controller = new AbortController();
      const attempts: string[] = [];
      const loop = (async () => {
        for await (const msg of client.messages(topic, sub, {
          start: "earliest",
          signal: controller.signal,
        })) {
          attempts.push(`${msg.seq}#${msg.attempt}`);
          if (msg.seq === 1) msg.nack(0);
          else msg.ack();
        }
      })();
      for (const seq of [1, 2])
        await eventually(
          async () =>
            (await client.admin.getMessage(topic, seq)).deliveries.some(
              (d) => d.subscription === sub && settled(d),
            ),
          15_000,
          `seq ${seq} settled on ${sub}`,
        );
      controller.abort();
      await loop;
      // Sorted: a due redelivery may go out before a first delivery.
      assert.deepEqual(attempts.sort(), sub === "w" ? ["1#1", "1#2", "2#1"] : ["1#1", "2#1"], sub);
    }

    const check = async (when: string) => {
      assert.deepEqual(
        await states(client, topic, 1),
        { w: ["dead_lettered", dlq], drop: ["dead_lettered", ""] },
        `${when}: seq 1`,
      );
      assert.deepEqual(
        await states(client, topic, 2),
        { w: ["acked", ""], drop: ["acked", ""] },
        `${when}: seq 2`,
      );
      const page = await client.admin.listMessages(topic, { deliveries: true });
      assert.deepEqual(
        page.messages.map((m) => [
          m.seq,
          m.deliveries.map((d) => [d.subscription, d.state, d.deadLetterTopic]),
        ]),
        [
          [
            1,
            [
              ["drop", "dead_lettered", ""],
              ["w", "dead_lettered", dlq],
            ],
          ],
          [
            2,
            [
              ["drop", "acked", ""],
              ["w", "acked", ""],
            ],
          ],
        ],
        `${when}: listMessages`,
      );
    };
    await check("live");
    await client.close();
    await broker.restart();
    client = new NerveBusClient(broker.address);
    await check("after a restart");
    const moved = await client.admin.listMessages(dlq);
    assert.deepEqual(
      moved.messages.map((m) => Buffer.from(m.data).toString()),
      ["poison"],
      "the dead-letter topic holds it",
    );
  } finally {
    await client.close();
  }
});
