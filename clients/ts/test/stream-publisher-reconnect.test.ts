import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { NerveBusClient, type NerveBusError, type PublishResult, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { delay, uniqueName } from "./support/helpers.js";

// Its own broker: the test kills it.
let broker: TestBroker;

before(async () => {
  broker = await TestBroker.start();
});

after(async () => {
  await broker.dispose();
});

/** Every stored message's data, read with the message browser (nothing consumed). */
async function storedData(client: NerveBusClient, topic: string): Promise<string[]> {
  const out: string[] = [];
  let fromSeq = 1;
  for (;;) {
    const page = await client.admin.listMessages(topic, { fromSeq, pageSize: 1000 });
    for (const m of page.messages) out.push(Buffer.from(m.data).toString());
    if (page.nextSeq === 0) return out;
    fromSeq = page.nextSeq;
  }
}

test("a stream publisher reopens after the broker is killed mid-stream: every confirmed batch is stored exactly once", async () => {
  const client = new NerveBusClient(broker.address);
  try {
    const topic = uniqueName("reopen");
    const stream = client.streamPublisher(topic, {
      maxMessages: 200,
      reconnectBackoff: { initialMs: 50, maxMs: 500 },
    });
    await stream.ready;
    const batches = 60;
    const size = 50;
    const sends: Promise<PublishResult[]>[] = [];
    for (let b = 0; b < batches; b++) {
      sends.push(stream.send(Array.from({ length: size }, (_, i) => ({ data: `b${b}-${i}` }))));
      if (b === 20) {
        // Batches are in flight (4 fit the credit): the broker dies under them.
        await sends[10];
        await broker.stop("SIGKILL");
        await delay(300);
        await broker.restart();
      } else if (sends.length > 4) await sends[sends.length - 4];
    }
    const results = (await Promise.all(sends)).flat();
    await stream.close();
    assert.equal(results.length, batches * size, "every batch confirmed");
    const seqs = new Set(results.map((r) => r.seq));
    assert.equal(
      seqs.size,
      batches * size,
      "each message has its own seq (duplicates point at the first append)",
    );
    const stored = await storedData(client, topic);
    const counts = new Map<string, number>();
    for (const d of stored) counts.set(d, (counts.get(d) ?? 0) + 1);
    assert.equal(stored.length, batches * size, "nothing stored twice");
    for (let b = 0; b < batches; b++)
      for (let i = 0; i < size; i++) assert.equal(counts.get(`b${b}-${i}`), 1, `b${b}-${i} stored once`);
  } finally {
    await client.close();
  }
});

test("a broken stream fails its batches only after reconnectDeadlineMs, and a non-retryable status at once", async () => {
  const client = new NerveBusClient(broker.address);
  try {
    const stream = client.streamPublisher(uniqueName("deadline"), {
      reconnectDeadlineMs: 1000,
      reconnectBackoff: { initialMs: 50, maxMs: 200 },
    });
    await stream.ready;
    await stream.send([{ data: "before" }]);
    await broker.stop("SIGKILL");
    const failed = stream.send([{ data: "while down" }]);
    await assert.rejects(failed, (err: NerveBusError) => err.code === StatusCode.UNAVAILABLE);
    await assert.rejects(
      stream.send([{ data: "after" }]),
      (err: NerveBusError) => err.code === StatusCode.UNAVAILABLE,
    );
    await broker.restart();
    const refused = client.streamPublisher("no spaces allowed");
    await assert.rejects(refused.ready, (err: NerveBusError) => err.code === StatusCode.INVALID_ARGUMENT);
  } finally {
    await client.close();
  }
});
