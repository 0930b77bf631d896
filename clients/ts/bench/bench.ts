/**
 * The TypeScript client's own benchmark: publish N messages through a Publisher, then receive
 * and ack them with a Subscriber, against a broker on SQLite it starts the way the client's
 * tests do (test/support/broker.ts). Prints one JSON object: msg/s, the client's CPU µs per
 * message (all its threads, process.cpuUsage) and the broker's (/proc), the client's peak RSS.
 *
 * `--api stream` publishes through a StreamPublisher instead, in batches of --batch messages.
 *
 *   bash clients/ts/scripts/bench.sh [--messages N] [--bytes B] [--window W] [--concurrency C]
 *                                    [--api publish|waitForRoom|stream] [--batch B]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { NerveBusClient, type PublishResult } from "../src/index.js";
import { TestBroker } from "../test/support/broker.js";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "200000" },
    bytes: { type: "string", default: "100" },
    window: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "100" },
    api: { type: "string", default: "waitForRoom" },
    batch: { type: "string", default: "100" },
    help: { type: "boolean", default: false },
  },
  strict: true,
});

const USAGE =
  "usage: bash clients/ts/scripts/bench.sh [--messages N] [--bytes B] [--window W] [--concurrency C] [--api publish|waitForRoom|stream] [--batch B]\n";

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!/^\d+$/.test(value ?? "") || n < 1) {
    process.stderr.write(`bench: --${name}: a positive whole number, got "${value}"\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const total = positive("messages", values.messages);
const bytes = positive("bytes", values.bytes);
const window = positive("window", values.window);
const concurrency = positive("concurrency", values.concurrency);
const batch = positive("batch", values.batch);
if (values.api !== "publish" && values.api !== "waitForRoom" && values.api !== "stream") {
  process.stderr.write(`bench: --api: publish, waitForRoom or stream, got "${values.api}"\n${USAGE}`);
  process.exit(2);
}

/** CPU seconds of process `pid` so far (user + system), from /proc/PID/stat. */
function cpuSecondsOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of this process, every thread. */
function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function measure<T>(
  brokerPid: number,
  messages: number,
  fn: () => Promise<T>,
): Promise<{ msgPerSec: number; clientCpuUsPerMsg: number; brokerCpuUsPerMsg: number; seconds: number }> {
  const c0 = ownCpuSeconds();
  const b0 = cpuSecondsOf(brokerPid);
  const t0 = performance.now();
  await fn();
  const seconds = (performance.now() - t0) / 1000;
  return {
    msgPerSec: Math.round(messages / seconds),
    clientCpuUsPerMsg: Number((((ownCpuSeconds() - c0) * 1e6) / messages).toFixed(2)),
    brokerCpuUsPerMsg: Number((((cpuSecondsOf(brokerPid) - b0) * 1e6) / messages).toFixed(2)),
    seconds: Number(seconds.toFixed(2)),
  };
}

const broker = await TestBroker.start();
const client = new NerveBusClient(broker.address);
try {
  const data = Buffer.alloc(bytes, 120);
  const topic = "bench";
  const publish = await measure(broker.pid, total, async () => {
    if (values.api === "stream") {
      // Batches queue in the stream publisher until the broker's credit lets them out.
      const stream = client.streamPublisher(topic);
      const sent: Promise<PublishResult[]>[] = [];
      for (let i = 0; i < total; i += batch)
        sent.push(stream.send(Array.from({ length: Math.min(batch, total - i) }, () => ({ data }))));
      await Promise.all(sent);
      await stream.close();
      return;
    }
    const publisher = client.publisher();
    const results: Promise<PublishResult>[] = [];
    for (let i = 0; i < total; i++) {
      // waitForRoom: the publisher's flow control paces the loop (no pending calls pile up).
      if (values.api === "waitForRoom") await publisher.waitForRoom();
      results.push(publisher.publish(topic, { data }));
    }
    await Promise.all(results);
    await publisher.close();
  });
  let received = 0;
  let finish: () => void = () => undefined;
  const allReceived = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const receive = await measure(broker.pid, total, async () => {
    const subscriber = client.subscribe(
      topic,
      "bench",
      async () => {
        if (++received === total) finish();
      },
      { start: "earliest", maxMessages: window, concurrency },
    );
    await allReceived;
    await subscriber.close();
  });
  process.stdout.write(
    `${JSON.stringify({
      messages: total,
      bytes,
      api: values.api,
      ...(values.api === "stream" ? { batch } : {}),
      window,
      concurrency,
      publish,
      receiveAck: receive,
      clientPeakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      node: process.version,
    })}\n`,
  );
} finally {
  await client.close();
  await broker.dispose();
}
