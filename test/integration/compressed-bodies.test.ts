import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { createGzip } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { TestClient } from "../support/broker.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

/**
 * A compressed SendPack body declares its compressed length, yet grpc-js inflates it (up to
 * the max receive length, ~10 MiB here) before any handler runs. Admission counted it at its
 * declared length: 64 gzip bodies of 0.5 MiB each held ~640 MiB inflated at once, peak RSS
 * 760–870 MB against a 192 MiB budget. It now counts a compressed body at the most it may
 * inflate to until it is decoded, so the request bytes held stay within their budget.
 */
const MiB = 1 << 20;
const BUDGET_MB = 64;
/** The Node runtime and what grpc-js holds beside the counted bytes (as in hostile-memory). */
const RUNTIME_MB = 250;
const CALLS = 64;

let broker: BrokerProcess;
const dir = mkdtempSync(join(tmpdir(), "nb-compressed-"));

before(async () => {
  broker = await spawnBroker([
    "--store",
    `sqlite:${join(dir, "db")}`,
    "--memory-budget",
    `${BUDGET_MB}MiB`,
    "--max-packs-in-progress",
    String(CALLS),
    "--max-packs-per-connection",
    String(CALLS),
    "--max-packs-per-principal",
    String(CALLS),
  ]);
});

after(async () => {
  broker.child.kill("SIGKILL");
  await broker.exited;
  rmSync(dir, { recursive: true, force: true });
});

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** SendPackRequest.topic = "b", before the messages. */
const TOPIC_B = Buffer.from([0x0a, 0x01, 0x62]);

/**
 * A gzip frame of `before` then one message of `size` zero bytes (SendPackRequest and
 * PublishRequest both carry messages as field 2): a few hundred KiB on the wire.
 */
async function gzipBomb(size: number, before = TOPIC_B): Promise<Buffer> {
  const data = Buffer.concat([Buffer.from([0x0a]), varint(size)]);
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on("data", (c: Buffer) => chunks.push(c));
  const ended = new Promise((r) => gzip.on("end", r));
  // before, then messages[0] = { data: size zeros }
  gzip.write(Buffer.concat([before, Buffer.from([0x12]), varint(data.length + size), data]));
  const zeros = Buffer.alloc(MiB);
  for (let i = 0; i < size / MiB; i++) gzip.write(zeros);
  gzip.end();
  await ended;
  const body = Buffer.concat(chunks);
  const head = Buffer.from([1, 0, 0, 0, 0]);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** One raw gzip call on a connection of its own; resolves with its status code and message. */
async function send(frame: Buffer, method = "SendPack"): Promise<[number, string]> {
  const session = http2.connect(`http://${broker.address}`);
  session.on("error", () => undefined);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": `/nervebus.v1.PublisherService/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-encoding": "gzip",
    });
    stream.on("data", () => undefined);
    stream.on("error", () => undefined);
    const answered = new Promise<http2.IncomingHttpHeaders>((resolve) => {
      stream.once("response", (r) => {
        if (r["grpc-status"] !== undefined) resolve(r);
      });
      stream.once("trailers", resolve);
      stream.once("close", () => resolve({}));
    });
    stream.end(frame);
    const h = await answered;
    return [Number(h["grpc-status"]), decodeURIComponent(String(h["grpc-message"] ?? ""))];
  } finally {
    session.close();
  }
}

test("64 gzip bodies that inflate past the size limit at once: the inflated bytes stay within the budget", async () => {
  const frame = await gzipBomb(64 * MiB);
  assert.ok(frame.length < MiB, `the bomb is ${frame.length} bytes on the wire`);
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(Array.from({ length: CALLS }, () => send(frame)));
    for (const [code, message] of answers)
      assert.equal(code, grpc.status.RESOURCE_EXHAUSTED, `round ${round}: ${code} ${message}`);
  }
  await assertWithinBudget("after-packs");
});

/** The broker is alive, publishes, and its peak RSS stayed within the budget and the runtime. */
async function assertWithinBudget(topic: string): Promise<void> {
  assert.equal(broker.child.exitCode, null, "the broker is alive");
  const client = new TestClient(broker.address);
  try {
    assert.equal((await client.publish(topic, ["x"])).firstSeq, 1n);
  } finally {
    client.close();
  }
  const peak = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${broker.child.pid}/status`, "utf8"));
  const peakMb = Number(peak![1]) / 1024;
  assert.ok(
    peakMb < BUDGET_MB + RUNTIME_MB,
    `peak RSS ${Math.round(peakMb)} MB (bound ${BUDGET_MB + RUNTIME_MB} MB)`,
  );
}

/**
 * The same through Publish streams: each message of a stream is inflated by grpc-js before
 * the stream's handler reads it, and they were not counted at all (32 streams per client of
 * ~10 MiB batches took peak RSS to ~500 MB against a 192 MiB budget).
 */
test("64 Publish streams whose gzip batches inflate past the size limit at once: within the budget", async () => {
  // PublishRequest{ open: { topic: "b" } }, uncompressed, then a gzip batch of 64 MiB inflated.
  const open = Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x03, 0x0a, 0x01, 0x62]);
  const frame = Buffer.concat([open, await gzipBomb(64 * MiB, Buffer.alloc(0))]);
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(Array.from({ length: CALLS }, () => send(frame, "Publish")));
    for (const [code, message] of answers)
      assert.equal(code, grpc.status.RESOURCE_EXHAUSTED, `round ${round}: ${code} ${message}`);
  }
  await assertWithinBudget("after-streams");
});
