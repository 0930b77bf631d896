import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { AdminService } from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { SendPackRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { ReceiveRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import type { NerveBus } from "../../src/nervebus.js";
import { startBroker, TestClient } from "../support/broker.js";
import { prng } from "../support/prng.js";

/**
 * A few hundred malformed or mutated request frames on every RPC: each call must end with a
 * status that says what was wrong (never INTERNAL or UNKNOWN), the broker must stay up, and a
 * canary of confirmed messages must be intact. Seeded (NERVEBUS_FUZZ_SEED replays a run).
 */
const SEED = Number(process.env.NERVEBUS_FUZZ_SEED ?? 20261206);
const PER_METHOD = 200;
/** What a malformed request may get; INTERNAL and UNKNOWN would mean a failure of the broker's own. */
const CLEAN = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.OUT_OF_RANGE,
  grpc.status.DEADLINE_EXCEEDED,
]);

let bus: NerveBus;
let client: TestClient;
let raw: grpc.Client;
const canary = new Map<number, string>();

/** Random bytes, or a valid request with a few bytes flipped, cut short or extended. */
function fuzzFrame(rand: () => number, valid: Buffer): Buffer {
  const kind = Math.floor(rand() * 4);
  if (kind === 0)
    return Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
  const b = Buffer.from(valid);
  if (kind === 1) {
    for (let i = 0, n = 1 + Math.floor(rand() * 4); i < n && b.length > 0; i++)
      b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    return b;
  }
  if (kind === 2) return b.subarray(0, Math.floor(rand() * b.length));
  return Buffer.concat([b, Buffer.from([Math.floor(rand() * 256), Math.floor(rand() * 256), 0xff, 0x01])]);
}

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-grpc-fuzz-"));
  bus = await startBroker(`sqlite:${join(dir, "db")}`);
  client = new TestClient(bus.address);
  raw = new grpc.Client(bus.address, grpc.credentials.createInsecure());
  const r = await client.publish("canary", ["c1", "c2", "c3"]);
  for (const [i, p] of ["c1", "c2", "c3"].entries()) canary.set(Number(r.firstSeq) + i, p);
});

after(async () => {
  raw.close();
  client.close();
  await bus.stop();
});

async function assertAlive(what: string): Promise<void> {
  const s = client.receive("canary", `check-${Math.random().toString(36).slice(2)}`, { from: "earliest" });
  await s.until(() => s.deliveries.length >= canary.size, 20_000, `the canary after ${what}`);
  assert.deepEqual(new Map(s.deliveries.map((d) => [Number(d.seq), Buffer.from(d.data).toString()])), canary);
  await s.end();
}

function unaryRaw(path: string, body: Buffer): Promise<grpc.status> {
  return new Promise((resolve) =>
    raw.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      { deadline: Date.now() + 10_000 },
      (err) => resolve(err ? err.code : grpc.status.OK),
    ),
  );
}

test("fuzzed SendPack and Admin frames get clean statuses; the broker stays up with its canary", async () => {
  const rand = prng(SEED);
  const validPack = Buffer.from(
    toBinary(
      SendPackRequestSchema,
      create(SendPackRequestSchema, {
        topic: "fuzz",
        messages: [{ data: Buffer.from("x"), attributes: { k: "v" }, orderingKey: "o", messageId: "i" }],
      }),
    ),
  );
  const methods: [string, Buffer][] = [["/nervebus.v1.PublisherService/SendPack", validPack]];
  for (const m of Object.values(AdminService.method)) {
    // A plausible request to mutate: a topic (and subscription) name in fields 1 and 2.
    methods.push([
      `/nervebus.v1.AdminService/${m.name}`,
      Buffer.from([0x0a, 4, 0x66, 0x75, 0x7a, 0x7a, 0x12, 1, 0x73]),
    ]);
  }
  for (const [path, valid] of methods) {
    const bad = new Map<grpc.status, number>();
    for (let i = 0; i < PER_METHOD; i++) {
      const code = await unaryRaw(path, fuzzFrame(rand, valid));
      if (!CLEAN.has(code)) bad.set(code, (bad.get(code) ?? 0) + 1);
    }
    assert.deepEqual([...bad], [], `${path}: statuses that name no cause (seed ${SEED})`);
  }
  await assertAlive("unary fuzz");
});

test("fuzzed Receive frames end the stream with a clean status; the broker stays up with its canary", async () => {
  const rand = prng(SEED + 1);
  const subscribe = Buffer.from(
    toBinary(
      ReceiveRequestSchema,
      create(ReceiveRequestSchema, {
        subscribe: { topic: "canary", subscription: "fuzz", window: { maxMessages: 10, maxBytes: 0n } },
      }),
    ),
  );
  const ack = Buffer.from(
    toBinary(ReceiveRequestSchema, create(ReceiveRequestSchema, { ackSeqs: [1n, 2n] })),
  );
  const bad = new Map<grpc.status, number>();
  for (let i = 0; i < PER_METHOD; i++) {
    const call = raw.makeBidiStreamRequest(
      "/nervebus.v1.SubscriberService/Receive",
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const ended = new Promise<grpc.status>((resolve) => {
      call.on("status", (s: grpc.StatusObject) => resolve(s.code));
      call.on("error", () => undefined);
    });
    call.on("data", () => undefined);
    // Sometimes a valid subscribe first, then fuzzed frames; then half-close.
    if (rand() < 0.5) call.write(subscribe);
    for (let k = 0, n = 1 + Math.floor(rand() * 3); k < n; k++)
      call.write(fuzzFrame(rand, rand() < 0.5 ? subscribe : ack));
    call.end();
    const code = await Promise.race([
      ended,
      new Promise<grpc.status>((r) => setTimeout(() => r(grpc.status.OK), 3000)),
    ]);
    call.cancel();
    if (!CLEAN.has(code)) bad.set(code, (bad.get(code) ?? 0) + 1);
  }
  assert.deepEqual([...bad], [], `Receive: statuses that name no cause (seed ${SEED})`);
  await assertAlive("stream fuzz");
});

/**
 * One raw HTTP/2 gRPC call with the given extra headers and request frame; resolves with the
 * status and message of its trailers (or trailers-only answer).
 */
async function rawCall(
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ code: number; message: string }> {
  const session = http2.connect(`http://${bus.address}`);
  session.on("error", () => undefined);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    stream.on("data", () => undefined);
    const status = new Promise<http2.IncomingHttpHeaders>((resolve) => {
      stream.once("response", (h) => {
        if (h["grpc-status"] !== undefined) resolve(h);
      });
      stream.once("trailers", resolve);
    });
    stream.end(body);
    const h = await status;
    return { code: Number(h["grpc-status"]), message: decodeURIComponent(String(h["grpc-message"] ?? "")) };
  } finally {
    session.close();
  }
}

/** A gRPC message frame: compressed flag, big-endian length, bytes. */
function grpcFrame(bytes: Uint8Array, compressed: boolean): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(compressed ? 1 : 0, 0);
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

test("a garbage gzip body and a bad grpc-timeout get INVALID_ARGUMENT saying what was wrong", async () => {
  const pack = toBinary(
    SendPackRequestSchema,
    create(SendPackRequestSchema, { topic: "fuzz", messages: [{ data: Buffer.from("x") }] }),
  );
  const paths = ["/nervebus.v1.PublisherService/SendPack", "/nervebus.v1.SubscriberService/Receive"];
  for (const path of paths) {
    for (const encoding of ["gzip", "deflate"]) {
      const r = await rawCall(
        path,
        { "grpc-encoding": encoding },
        grpcFrame(Buffer.from("not compressed"), true),
      );
      assert.equal(r.code, grpc.status.INVALID_ARGUMENT, `${path} ${encoding}: ${r.message}`);
      assert.match(r.message, /does not decompress with its grpc-encoding/);
    }
    for (const timeout of ["soon", "", "5x", "S5"]) {
      const r = await rawCall(path, { "grpc-timeout": timeout }, grpcFrame(pack, false));
      assert.equal(
        r.code,
        grpc.status.INVALID_ARGUMENT,
        `${path} grpc-timeout ${JSON.stringify(timeout)}: ${r.message}`,
      );
      assert.match(r.message, /grpc-timeout header .* is not a timeout/);
    }
  }
  // A body that is compressed for real still works, so the rewrite touches only refusals.
  const ok = await rawCall(paths[0]!, { "grpc-encoding": "gzip" }, grpcFrame(gzipSync(pack), true));
  assert.equal(ok.code, grpc.status.OK, ok.message);
  await assertAlive("bad encodings and timeouts");
});
