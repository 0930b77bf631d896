import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { NerveBusClient, type PublishResult, StatusCode } from "@nervebus/client";
import { TestBroker } from "./support/broker.js";
import { delay, packRecorder, uniqueName } from "./support/helpers.js";

let broker: TestBroker;

before(async () => {
  broker = await TestBroker.start();
});

after(async () => {
  await broker.dispose();
});

/** How many times each data string is stored on `topic`, read through `client`. */
async function storedCounts(client: NerveBusClient, topic: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let fromSeq = 1;
  for (;;) {
    const page = await client.admin.listMessages(topic, { fromSeq, pageSize: 1000 });
    for (const m of page.messages) {
      const d = Buffer.from(m.data).toString();
      counts.set(d, (counts.get(d) ?? 0) + 1);
    }
    if (page.nextSeq === 0) return counts;
    fromSeq = page.nextSeq;
  }
}

/**
 * Resets `count` SendPack calls on `client`'s connection, all at once: a publisher whose every
 * attempt runs out of a 1 ms deadline, so grpc-js cancels each started call with RST_STREAM.
 * Past about 1000 resets in a burst the broker's HTTP/2 layer (nghttp2's rapid-reset
 * protection) closes the connection.
 */
async function resetStorm(client: NerveBusClient, count: number): Promise<void> {
  const resetter = client.publisher({
    maxBatchMessages: 1,
    maxInflightBatches: count,
    maxOutstandingMessages: count,
    callTimeoutMs: 1,
    retry: { totalTimeoutMs: 0 },
    tracing: false,
  });
  const topic = uniqueName("resets");
  await Promise.allSettled(
    Array.from({ length: count }, (_, i) => resetter.publish(topic, { data: `r${i}` })),
  );
  await resetter.close();
}

test("a publisher's packs in flight when the broker closes the connection for rapid resets are retried: every message stored once", async () => {
  const packs = packRecorder();
  const client = new NerveBusClient(broker.address, { interceptors: [packs.interceptor] });
  const reader = new NerveBusClient(broker.address);
  try {
    const topic = uniqueName("rapid-reset");
    await client.publish(topic, { data: "warm-up" });
    const publisher = client.publisher({ maxBatchMessages: 10, lingerMs: 1 });
    const results: Promise<PublishResult>[] = [];
    let stormOver = false;
    const storm = resetStorm(client, 2000).finally(() => {
      stormOver = true;
    });
    // Packs in flight on the same connection for as long as the storm lasts.
    let n = 0;
    while (!stormOver || n < 2000) {
      for (let i = 0; i < 10; i++) {
        const result = publisher.publish(topic, { data: `m${n++}` });
        result.catch(() => {}); // read by allSettled below
        results.push(result);
      }
      await delay(1);
    }
    await storm;
    const settled = await Promise.allSettled(results);
    await publisher.close();
    const failed = settled.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []));
    assert.ok(
      packs.calls.some((c) => c.topic === topic && c.code === StatusCode.INTERNAL),
      "the broker closed the connection under the publisher's packs",
    );
    assert.deepEqual(failed.slice(0, 3), [], `no publish fails (${failed.length} of ${n} did)`);
    const counts = await storedCounts(reader, topic);
    for (let i = 0; i < n; i++) assert.equal(counts.get(`m${i}`), 1, `m${i} stored once`);
  } finally {
    await client.close();
    await reader.close();
  }
});

/** A grpc-js interceptor recording how each Publish stream ended. */
function publishStreamEnds(): { interceptor: grpc.Interceptor; codes: grpc.status[] } {
  const codes: grpc.status[] = [];
  const interceptor: grpc.Interceptor = (options, next) => {
    if (!options.method_definition.path.endsWith("/Publish")) return new grpc.InterceptingCall(next(options));
    return new grpc.InterceptingCall(next(options), {
      start(metadata, _listener, nextStart) {
        nextStart(metadata, {
          onReceiveStatus(status, nextStatus) {
            codes.push(status.code);
            nextStatus(status);
          },
        });
      },
    });
  };
  return { interceptor, codes };
}

test("a stream publisher whose stream the broker closes for rapid resets reopens it: every batch stored once", async () => {
  const ends = publishStreamEnds();
  const client = new NerveBusClient(broker.address, { interceptors: [ends.interceptor] });
  const reader = new NerveBusClient(broker.address);
  try {
    const topic = uniqueName("rapid-reset-stream");
    const stream = client.streamPublisher(topic, { reconnectBackoff: { initialMs: 10, maxMs: 100 } });
    await stream.ready;
    const sends: Promise<PublishResult[]>[] = [];
    let stormOver = false;
    const storm = resetStorm(client, 2000).finally(() => {
      stormOver = true;
    });
    // Batches in flight on the same connection for as long as the storm lasts.
    let b = 0;
    while (!stormOver || b < 200) {
      const send = stream.send(Array.from({ length: 10 }, (_, i) => ({ data: `b${b}-${i}` })));
      send.catch(() => {}); // read by allSettled below
      sends.push(send);
      b++;
      await delay(1);
    }
    await storm;
    const settled = await Promise.allSettled(sends);
    await stream.close();
    const failed = settled.flatMap((s) => (s.status === "rejected" ? [String(s.reason)] : []));
    assert.ok(ends.codes.includes(StatusCode.INTERNAL), "the broker closed the connection under the stream");
    assert.deepEqual(failed.slice(0, 3), [], `no batch fails (${failed.length} of ${b} did)`);
    const counts = await storedCounts(reader, topic);
    for (let j = 0; j < b; j++)
      for (let i = 0; i < 10; i++) assert.equal(counts.get(`b${j}-${i}`), 1, `b${j}-${i} stored once`);
  } finally {
    await client.close();
    await reader.close();
  }
});
