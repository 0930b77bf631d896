import assert from "node:assert/strict";
import { test } from "node:test";
import type { Delivered } from "../../src/core/index.js";
import { SqliteStore } from "../../src/store/index.js";
import { coreBroker } from "../support/core-broker.js";

test("a subscription created from earliest while the topic's first pack commits gets that pack", async () => {
  // The cluster fault test found it: the floor was taken from the watermark after the store was
  // asked for the first seq, so a pack committed during the question was skipped.
  const store = SqliteStore.open(":memory:");
  const firstSeq = store.firstSeq.bind(store);
  let answer: (() => void) | undefined;
  const asked = new Promise<void>((resolveAsked) => {
    store.firstSeq = async (topic) => {
      const seq = await firstSeq(topic);
      resolveAsked();
      await new Promise<void>((r) => {
        answer = r;
      });
      return seq;
    };
  });
  const broker = coreBroker({}, 30_000, store);
  try {
    await broker.createTopic("t", 1, {});
    const got: number[] = [];
    const attaching = broker.subscribe(
      "t",
      "s",
      {
        window: { maxMessages: 100, maxBytes: 0 },
        ackDeadlineMs: undefined,
        start: { kind: "earliest" },
        confirmAcks: false,
        consumerName: "c",
      },
      {
        send: (batch: readonly Delivered[]) => {
          for (const d of batch) got.push(d.message.seq);
          return true;
        },
        ackResults: () => undefined,
        fail: () => undefined,
      },
    );
    await asked;
    const published = await broker.publish(
      "t",
      [1, 2, 3].map((n) => ({
        data: Buffer.from(`m${n}`),
        attributes: {},
        orderingKey: "",
        messageId: "",
        deliverAt: 0,
      })),
      Number.POSITIVE_INFINITY,
    );
    assert.equal(published.lastSeq, 3);
    answer!();
    await attaching;
    for (let i = 0; i < 100 && got.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(got, [1, 2, 3]);
  } finally {
    await broker.close(1000);
  }
});
