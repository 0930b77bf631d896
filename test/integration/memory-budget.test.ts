import assert from "node:assert/strict";
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

test("SendPacks are admitted by bytes: one that does not fit is refused at once, with a retry delay", async () => {
  // A pack of ~1 MiB whose body has started but not finished: its prefix declares its length.
  const big = onePack("budget", MiB);
  const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), big]);
  framed.writeUInt32BE(big.length, 1);
  const session = http2.connect(`http://${bus.address}`);
  session.on("error", () => undefined);
  try {
    const slow = session.request({
      ":method": "POST",
      ":path": "/nervebus.v1.PublisherService/SendPack",
      "content-type": "application/grpc",
      te: "trailers",
    });
    slow.on("data", () => undefined);
    const slowStatus = new Promise<string>((resolve) => {
      slow.once("trailers", (h) => resolve(String(h["grpc-status"])));
      slow.once("response", (h) => {
        if (h["grpc-status"] !== undefined) resolve(String(h["grpc-status"]));
      });
    });
    slow.write(framed.subarray(0, 64 * 1024));
    let requests: BudgetPart | undefined;
    for (let i = 0; i < 100 && (requests?.usedBytes ?? 0) < big.length; i++) {
      await new Promise((r) => setTimeout(r, 20));
      requests = (await budgetUse()).parts.find((p) => p.part === "requests");
    }
    assert.equal(requests?.limitBytes, 1.5 * MiB);
    assert.ok(
      requests!.usedBytes >= big.length,
      `the started pack counts its declared length: ${requests!.usedBytes}`,
    );

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

test("the status page and /metrics show the budget's parts, their shares and what they hold", async () => {
  await client.publish("budget-status", ["a", "b"]);
  const use = await budgetUse();
  assert.equal(use.budgetBytes, 192 * MiB, "the default budget");
  assert.deepEqual(
    use.parts.map((p) => p.part),
    ["requests", "write_buffer", "tail_caches", "read_ahead", "stream_buffers"],
  );
  const tail = use.parts.find((p) => p.part === "tail_caches")!;
  assert.ok(tail.usedBytes > 0 && tail.usedBytes <= tail.limitBytes, "the tail caches hold the messages");
  const text = await (await fetch(`http://${bus.httpAddress}/metrics`)).text();
  for (const part of ["requests", "write_buffer", "tail_caches", "read_ahead", "stream_buffers"]) {
    assert.match(text, new RegExp(`nervebus_memory_budget_bytes\\{part="${part}"[^}]*\\} \\d+`));
    assert.match(text, new RegExp(`nervebus_memory_used_bytes\\{part="${part}"[^}]*\\} \\d+`));
  }
});
