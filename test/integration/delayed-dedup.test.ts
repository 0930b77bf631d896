import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MessageResult_Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import type { NerveBus } from "../../src/nervebus.js";
import { type MessageInit, startBroker, TestClient } from "../support/broker.js";

/**
 * Message ids deduplicate delayed messages as they do immediate ones. Before, the id of a
 * delayed message was remembered only after its schedule write, so a copy later in the same
 * pack, or in a pack sent while the write was in progress (a producer's retry racing its
 * original), was scheduled again and delivered twice. The writer thread makes the schedule
 * write asynchronous, as it is on MySQL.
 */
const dir = mkdtempSync(join(tmpdir(), "nb-delayed-dedup-"));
let bus: NerveBus;
let client: TestClient;
before(async () => {
  bus = await startBroker(`sqlite:${join(dir, "nb.db")}`, { sqliteWriterThread: true });
  client = new TestClient(bus.address);
});
after(async () => {
  client.close();
  await bus.stop();
  rmSync(dir, { recursive: true, force: true });
});

const delayed = (data: string, messageId: string): MessageInit => ({
  data: Buffer.from(data),
  messageId,
  delay: { seconds: 1n, nanos: 0 },
});

/** Every payload delivered on a new subscription once the delayed messages fell due. */
async function delivered(topic: string, count: number): Promise<string[]> {
  const s = client.receive(topic, "r", { from: "earliest" });
  await s.until(() => s.deliveries.length >= count, 10_000, `${count} deliveries`);
  // Room for a copy that should not be there to arrive too.
  await sleep(1500);
  await s.end();
  return s.deliveries.map((d) => Buffer.from(d.data).toString());
}

test("a delayed message repeated in one pack is scheduled once; the copies are duplicates", async () => {
  const res = await client.publish("in-pack", [
    delayed("first", "id-1"),
    delayed("copy", "id-1"),
    delayed("other", "id-2"),
    delayed("copy again", "id-1"),
  ]);
  assert.deepEqual(
    res.results.map((r) => r.outcome),
    [
      MessageResult_Outcome.SCHEDULED,
      MessageResult_Outcome.DUPLICATE,
      MessageResult_Outcome.SCHEDULED,
      MessageResult_Outcome.DUPLICATE,
    ],
  );
  assert.equal(res.results[1]!.traceId, res.results[0]!.traceId, "a copy answers with the original's trace");
  assert.deepEqual(await delivered("in-pack", 2), ["first", "other"]);
});

test("packs sent at once with the same delayed message id schedule it once", async () => {
  const results = await Promise.all(
    Array.from({ length: 5 }, (_, i) => client.publish("racing", [delayed(`try ${i}`, "order-7")])),
  );
  const outcomes = results.map((r) => r.results[0]!.outcome);
  assert.equal(outcomes.filter((o) => o === MessageResult_Outcome.SCHEDULED).length, 1, String(outcomes));
  assert.equal(outcomes.filter((o) => o === MessageResult_Outcome.DUPLICATE).length, 4, String(outcomes));
  const got = await delivered("racing", 1);
  assert.equal(got.length, 1, `delivered ${JSON.stringify(got)}`);
});

test("a retry after a restart finds its delayed original still in the schedule: a duplicate, delivered once", async () => {
  // A regression: the dedup index was rebuilt from the log only, where a delayed message is
  // not until it falls due, so the retry was scheduled again and both were delivered.
  const url = `sqlite:${join(dir, "restart.db")}`;
  let broker = await startBroker(url);
  let c = new TestClient(broker.address);
  const later = (data: string): MessageInit => ({
    data: Buffer.from(data),
    messageId: "pay-1",
    delay: { seconds: 2n, nanos: 0 },
  });
  try {
    const first = await c.publish("restart", [
      later("original"),
      { data: Buffer.from("now"), messageId: "n-1" },
    ]);
    assert.equal(first.results[0]!.outcome, MessageResult_Outcome.SCHEDULED);
    c.close();
    await broker.stop();
    broker = await startBroker(url);
    c = new TestClient(broker.address);
    const retry = await c.publish("restart", [later("retry")]);
    assert.equal(retry.results[0]!.outcome, MessageResult_Outcome.DUPLICATE);
    assert.equal(retry.results[0]!.seq, 0n, "the original is still scheduled");
    const s = c.receive("restart", "r", { from: "earliest" });
    await s.until(() => s.deliveries.length >= 2, 10_000, "the delayed message");
    await sleep(1500);
    await s.end();
    assert.deepEqual(
      s.deliveries.map((d) => Buffer.from(d.data).toString()),
      ["now", "original"],
    );
  } finally {
    c.close();
    await broker.stop();
  }
});
