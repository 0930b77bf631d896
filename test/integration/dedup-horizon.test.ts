import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { MessageResult_Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { LogMessage } from "../../src/core/index.js";
import { encodeWriterState } from "../../src/core/writer-state.js";
import { openStore } from "../../src/store/index.js";
import { quietLog, startBroker, TestClient } from "../support/broker.js";

/**
 * The dedup index is rebuilt at start-up from the rows that can carry ids: those up to the
 * highest id seq persisted with the watermark, and every row above the persisted watermark
 * (recovered after a crash). Rows are written straight into the store to set up each case.
 */
const dir = mkdtempSync(join(tmpdir(), "nb-horizon-"));
const CONFIG = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 600_000, ephemeral: false };

async function prepare(
  name: string,
  ids: Record<number, string>,
  rows: number,
  pointer: { ptr: number; lastIdSeq: number | undefined },
): Promise<string> {
  const url = `sqlite:${join(dir, `${name}.db`)}`;
  const store = await openStore(url, { mysqlPoolSize: 1, mysqlAllowUnsafeDurability: false, log: quietLog });
  try {
    const { topic } = (await store.ensureTopic("t", { shards: 2, config: CONFIG }))!;
    const now = Date.now();
    for (let shard = 0; shard < 2; shard++) {
      const shardRows: LogMessage[] = [];
      for (let seq = 1; seq <= rows; seq++) {
        if (seq % 2 !== shard) continue;
        shardRows.push(
          LogMessage.of(seq, now, Buffer.from(`m${seq}`), {
            attributes: {},
            orderingKey: "",
            messageId: ids[seq] ?? "",
          }),
        );
      }
      await store.insertMessages(topic, shard, shardRows);
    }
    const state = pointer.lastIdSeq === undefined ? null : encodeWriterState(pointer.lastIdSeq);
    await store.savePointers(topic, [{ subscription: "", ptr: pointer.ptr, state }]);
  } finally {
    await store.close();
  }
  return url;
}

async function outcomes(url: string, messageIds: string[]): Promise<[MessageResult_Outcome, number][]> {
  const broker = await startBroker(url);
  const client = new TestClient(broker.address);
  try {
    const res = await client.publish(
      "t",
      messageIds.map((messageId) => ({ data: Buffer.from("retry"), messageId })),
    );
    return res.results.map((r) => [r.outcome, Number(r.seq)]);
  } finally {
    client.close();
    await broker.stop();
  }
}

test("ids at or below the recorded id horizon are found again after a restart", async () => {
  const url = await prepare("below", { 3: "a", 7: "b" }, 100, { ptr: 100, lastIdSeq: 7 });
  assert.deepEqual(await outcomes(url, ["a", "b", "c"]), [
    [MessageResult_Outcome.DUPLICATE, 3],
    [MessageResult_Outcome.DUPLICATE, 7],
    [MessageResult_Outcome.APPENDED, 101],
  ]);
});

test("ids in rows above the persisted watermark (a crash's recovered tail) are found", async () => {
  const url = await prepare("tail", { 60: "x", 99: "y" }, 100, { ptr: 50, lastIdSeq: 0 });
  assert.deepEqual(await outcomes(url, ["x", "y"]), [
    [MessageResult_Outcome.DUPLICATE, 60],
    [MessageResult_Outcome.DUPLICATE, 99],
  ]);
});

test("rows between the id horizon and the persisted watermark are not read", async () => {
  // Seq 40 carries an id the horizon (20) says cannot be there: proof that the rebuild skips
  // rows that cannot hold ids instead of reading the whole recent log.
  const url = await prepare("skip", { 10: "p", 40: "q" }, 100, { ptr: 100, lastIdSeq: 20 });
  assert.deepEqual(await outcomes(url, ["p", "q"]), [
    [MessageResult_Outcome.DUPLICATE, 10],
    [MessageResult_Outcome.APPENDED, 101],
  ]);
});

test("a log written before the horizon was recorded is read in full", async () => {
  const url = await prepare("legacy", { 5: "old", 90: "older" }, 100, { ptr: 100, lastIdSeq: undefined });
  assert.deepEqual(await outcomes(url, ["old", "older"]), [
    [MessageResult_Outcome.DUPLICATE, 5],
    [MessageResult_Outcome.DUPLICATE, 90],
  ]);
});

test("the horizon persisted by a running broker brings ids back after a graceful restart", async () => {
  const url = await prepare("live", {}, 0, { ptr: 0, lastIdSeq: undefined });
  const first = await startBroker(url);
  const client = new TestClient(first.address);
  await client.publish("t", [{ data: Buffer.from("1"), messageId: "k1" }]);
  await client.publish(
    "t",
    Array.from({ length: 50 }, (_, i) => `plain-${i}`),
  );
  client.close();
  await first.stop();
  assert.deepEqual(await outcomes(url, ["k1"]), [[MessageResult_Outcome.DUPLICATE, 1]]);
});

test("an unreadable writer state means a full read, not a failed topic", async () => {
  const url = await prepare("garbled", { 8: "g" }, 30, { ptr: 30, lastIdSeq: 0 });
  const store = await openStore(url, { mysqlPoolSize: 1, mysqlAllowUnsafeDurability: false, log: quietLog });
  try {
    const topic = (await store.listTopics())[0]!;
    await store.savePointers(topic, [{ subscription: "", ptr: 30, state: Buffer.from("{not json") }]);
  } finally {
    await store.close();
  }
  assert.deepEqual(await outcomes(url, ["g"]), [[MessageResult_Outcome.DUPLICATE, 8]]);
});

test("a log whose rows carry no ids is not read at all when the broker restarts", async () => {
  // Before, the rebuild first searched the log for where the dedup window starts, reading a
  // stored run per step of the search (~40 ms of the event loop for a 100 MB backlog of 1 KiB
  // messages), to then read nothing.
  const url = await prepare("none", {}, 100, { ptr: 100, lastIdSeq: 0 });
  const broker = await startBroker(url);
  const store = broker.broker.store;
  const read = store.readIds.bind(store);
  const reads: [number, number][] = [];
  store.readIds = async (topic, from, to) => {
    reads.push([from, to]);
    return read(topic, from, to);
  };
  const client = new TestClient(broker.address);
  try {
    // A pack with an id waits for the index: the rebuild is over when it is answered.
    const res = await client.publish("t", [{ data: Buffer.from("new"), messageId: "n" }]);
    assert.equal(res.results[0]?.outcome, MessageResult_Outcome.APPENDED);
    assert.equal(res.results[0]?.seq, 101n);
    // What is read is the last message's publish time (the topic's clock), nothing else.
    assert.deepEqual(
      reads.filter(([from, to]) => from !== 100 || to !== 100),
      [],
      "message ids read from the store",
    );
  } finally {
    client.close();
    await broker.stop();
  }
});
