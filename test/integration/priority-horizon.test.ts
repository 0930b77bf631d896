import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Priority } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { decodePriorityState, decodeWriterState, encodeWriterState } from "../../src/core/writer-state.js";
import { openStore } from "../../src/store/index.js";
import { quietLog, startBroker, TestClient } from "../support/broker.js";

/**
 * The priority lanes are rebuilt at start-up only from rows that can hold an urgent or bulk
 * message: up to the highest such seq persisted with the watermark (a log that never had one is
 * not read). Real broker, real SQLite, real gRPC; the pointer is rewritten between runs to show
 * which rows the rebuild trusts the horizon for.
 */
const dir = mkdtempSync(join(tmpdir(), "nb-prio-horizon-"));
const text = (d: { data: Uint8Array }) => Buffer.from(d.data).toString();

/**
 * The writer pointer of topic `t` as it was; `prio` replaces its priority horizon (null: leaves
 * it out, as a state written before it was recorded).
 */
async function writerPointer(url: string, prio?: number | null): Promise<{ ids?: number; prio?: number }> {
  const store = await openStore(url, { mysqlPoolSize: 1, mysqlAllowUnsafeDurability: false, log: quietLog });
  try {
    const topic = (await store.listTopics()).find((t) => t.name === "t")!;
    const pointer = (await store.loadPointer(topic, ""))!;
    const ids = decodeWriterState(pointer.state);
    if (prio !== undefined)
      await store.savePointers(topic, [
        {
          subscription: "",
          ptr: pointer.ptr,
          state: encodeWriterState(ids ?? pointer.ptr, prio ?? undefined),
        },
      ]);
    const out: { ids?: number; prio?: number } = {};
    if (ids !== undefined) out.ids = ids;
    const p = decodePriorityState(pointer.state);
    if (p !== undefined) out.prio = p;
    return out;
  } finally {
    await store.close();
  }
}

/** The first five first deliveries of a new subscription from the earliest message. */
async function firstFive(url: string, subscription: string): Promise<string[]> {
  const broker = await startBroker(url);
  const client = new TestClient(broker.address);
  try {
    const s = client.receive("t", subscription, { from: "earliest", maxMessages: 5 });
    await s.until(() => s.deliveries.length >= 5);
    await s.end();
    return s.deliveries.slice(0, 5).map(text);
  } finally {
    client.close();
    await broker.stop();
  }
}

test("the highest urgent or bulk seq is persisted with the watermark, and the rebuild trusts it", async () => {
  const url = `sqlite:${join(dir, "horizon.db")}`;
  const broker = await startBroker(url);
  const client = new TestClient(broker.address);
  await client.publish(
    "t",
    Array.from({ length: 50 }, (_, i) => ({ data: Buffer.from(`bulk${i}`), priority: Priority.BULK })),
  );
  await client.publish(
    "t",
    Array.from({ length: 5 }, (_, i) => ({ data: Buffer.from(`urgent${i}`), priority: Priority.URGENT })),
  );
  await client.publish(
    "t",
    Array.from({ length: 10 }, (_, i) => ({ data: Buffer.from(`normal${i}`) })),
  );
  client.close();
  await broker.stop();
  assert.equal((await writerPointer(url)).prio, 55, "the last urgent message's seq");
  assert.deepEqual(await firstFive(url, "a"), ["urgent0", "urgent1", "urgent2", "urgent3", "urgent4"]);
  // A horizon saying nothing was urgent or bulk: the backlog is not read, and goes in seq order.
  await writerPointer(url, 0);
  assert.deepEqual(await firstFive(url, "b"), ["bulk0", "bulk1", "bulk2", "bulk3", "bulk4"]);
  // No horizon (a state written before it was recorded): the backlog is read.
  await writerPointer(url, null);
  assert.deepEqual(await firstFive(url, "c"), ["urgent0", "urgent1", "urgent2", "urgent3", "urgent4"]);
});
