import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { SendPackRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import type { NerveBus } from "../../src/nervebus.js";
import { startBroker, TestClient } from "../support/broker.js";

/**
 * The one memory budget (issue 12): SendPacks are admitted by bytes, a pack that does not fit is
 * refused with RESOURCE_EXHAUSTED and a retry delay before its body is held, and the status page
 * and /metrics show what each part of the budget holds.
 */
const MiB = 1 << 20;
let bus: NerveBus;
let client: TestClient;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-memory-budget-"));
  bus = await startBroker(`sqlite:${join(dir, "db")}`, {
    maxPackBytes: 2 * MiB,
    maxMessageBytes: 2 * MiB,
    packBytesInProgress: 1.5 * MiB,
  });
  client = new TestClient(bus.address);
});

after(async () => {
  client.close();
  await bus.stop();
});

interface BudgetPart {
  part: string;
  limitBytes: number;
  usedBytes: number;
}

async function budgetUse(): Promise<{ budgetBytes: number; parts: BudgetPart[] }> {
  const res = await fetch(`http://${bus.httpAddress}/api/status?limit=1`);
  return ((await res.json()) as { broker: { memoryBudget: { budgetBytes: number; parts: BudgetPart[] } } })
    .broker.memoryBudget;
}

function onePack(topic: string, bytes: number): Buffer {
  return Buffer.from(
    toBinary(
      SendPackRequestSchema,
      create(SendPackRequestSchema, { topic, messages: [{ data: Buffer.alloc(bytes, 0x61) }] }),
    ),
  );
}

/** A ~1 MiB pack of `topic` framed as a gRPC message (its prefix declares its length). */
function bigFramedPack(topic: string): Buffer {
  const big = onePack(topic, MiB);
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), big]);
  framed.writeUInt32BE(big.length, 1);
  return framed;
}

/** A raw SendPack on `session` whose first 64 KiB of body are sent; the rest is up to the test. */
function startedPack(
  session: http2.ClientHttp2Session,
  framed: Buffer,
): { stream: http2.ClientHttp2Stream; status: Promise<string> } {
  const stream = session.request({
    ":method": "POST",
    ":path": "/nervebus.v1.PublisherService/SendPack",
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("data", () => undefined);
  stream.on("error", () => undefined);
  const status = new Promise<string>((resolve) => {
    stream.once("trailers", (h) => resolve(String(h["grpc-status"])));
    stream.once("response", (h) => {
      if (h["grpc-status"] !== undefined) resolve(String(h["grpc-status"]));
    });
  });
  stream.write(framed.subarray(0, 64 * 1024));
  return { stream, status };
}

/** Waits until admission counts at least `bytes` of requests in progress; returns that part. */
async function requestsHeld(bytes: number): Promise<BudgetPart> {
  let requests: BudgetPart | undefined;
  for (let i = 0; i < 100 && (requests?.usedBytes ?? 0) < bytes; i++) {
    await new Promise((r) => setTimeout(r, 20));
    requests = (await budgetUse()).parts.find((p) => p.part === "requests");
  }
  assert.ok(requests !== undefined && requests.usedBytes >= bytes, `requests held: ${requests?.usedBytes}`);
  return requests;
}

test("SendPacks are admitted by bytes: one that does not fit is refused at once, with a retry delay", async () => {
  // A pack of ~1 MiB whose body has started but not finished: its prefix declares its length.
  const framed = bigFramedPack("budget");
  const session = http2.connect(`http://${bus.address}`);
  session.on("error", () => undefined);
  try {
    const { stream: slow, status: slowStatus } = startedPack(session, framed);
    // The started pack counts its declared length.
    const requests = await requestsHeld(framed.length - 5);
    assert.equal(requests.limitBytes, 1.5 * MiB);

    // A second ~1 MiB pack does not fit next to it: refused before its body is held.
    const refused = await client.publish("budget", [{ data: Buffer.alloc(MiB, 0x62) }]).then(
      () => undefined,
      (err: grpc.ServiceError) => err,
    );
    assert.equal(refused?.code, 8, `RESOURCE_EXHAUSTED, got ${refused?.code} ${refused?.details}`);
    assert.match(refused!.details, /--pack-bytes-in-progress/);
    assert.ok(
      Number(refused!.metadata.get("nervebus-retry-after-ms")[0]) > 0,
      "a retry delay in the trailer",
    );
    // A small one fits beside it: admission counts bytes, not calls.
    const small = await client.publish("budget", ["small"]);
    assert.ok(Number(small.firstSeq) >= 1);

    // The big pack finishes; its bytes are returned and the refused one goes through on retry.
    slow.end(framed.subarray(64 * 1024));
    assert.equal(await slowStatus, "0");
    const retried = await client.publish("budget", [{ data: Buffer.alloc(MiB, 0x62) }]);
    assert.ok(Number(retried.firstSeq) >= 1);
  } finally {
    session.close();
  }
  const after = await budgetUse();
  assert.equal(
    after.parts.find((p) => p.part === "requests")?.usedBytes,
    0,
    "no request bytes held when idle",
  );
});

test("a refused SendPack's stream is reset once its answer is out: the rest of its body is never read", {
  // Without the reset the stream stays open for a body the client never finishes: fail, not hang.
  timeout: 20_000,
}, async () => {
  // Before: grpc-js went on reading, joining and decoding the body of every refused pack, which
  // under overload took most of the broker's CPU and memory.
  const framed = bigFramedPack("budget-reset");
  const session = http2.connect(`http://${bus.address}`);
  session.on("error", () => undefined);
  try {
    const held = startedPack(session, framed);
    await requestsHeld(framed.length - 5);
    // Admitted at its headers (a typical pack fits), refused at its declared length.
    const refused = startedPack(session, framed);
    assert.equal(await refused.status, "8");
    // The client never ends its request: only the broker's RST_STREAM (NO_ERROR) closes it.
    await once(refused.stream, "close");
    assert.equal(refused.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR);
    held.stream.end(framed.subarray(64 * 1024));
    assert.equal(await held.status, "0");
  } finally {
    session.close();
  }
});

test("the status page and /metrics show the budget's parts, their shares and what they hold", async () => {
  await client.publish("budget-status", ["a", "b"]);
  const use = await budgetUse();
  assert.equal(use.budgetBytes, 192 * MiB, "the default budget");
  assert.deepEqual(
    use.parts.map((p) => p.part),
    ["requests", "write_buffer", "tail_caches", "read_ahead", "leases", "stream_buffers"],
  );
  const tail = use.parts.find((p) => p.part === "tail_caches")!;
  assert.ok(tail.usedBytes > 0 && tail.usedBytes <= tail.limitBytes, "the tail caches hold the messages");
  const text = await (await fetch(`http://${bus.httpAddress}/metrics`)).text();
  for (const part of ["requests", "write_buffer", "tail_caches", "read_ahead", "leases", "stream_buffers"]) {
    assert.match(text, new RegExp(`nervebus_memory_budget_bytes\\{part="${part}"[^}]*\\} \\d+`));
    assert.match(text, new RegExp(`nervebus_memory_used_bytes\\{part="${part}"[^}]*\\} \\d+`));
  }
});
