import assert from "node:assert/strict";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create, toBinary } from "@bufbuild/protobuf";
import { MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import { SendPackRequestSchema } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { SqliteStore } from "../../src/store/index.js";
import { readSendPack } from "../../src/wire/index.js";
import { coreBroker } from "../support/core-broker.js";

// Defect (1 KiB publish profile: a mark-compact every ~150 ms with a 24 MB heap, each started
// by external memory): a pack read from a SendPack request kept the whole request until its
// confirm, so every pack waiting for its commit held its payloads twice, in the request and in
// the run built from it, and the requests outlived young-generation collections. The pack now
// lets go of the request once its run is built.

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const MESSAGES = 64;
const PAYLOAD = 16 << 10;

/** A SendPackRequest of MESSAGES payloads of PAYLOAD bytes, message i's bytes all `i`. */
function request(): Buffer {
  const messages = Array.from({ length: MESSAGES }, (_, i) =>
    create(MessageSchema, { data: new Uint8Array(PAYLOAD).fill(i), messageId: `id-${i}` }),
  );
  // Its own ArrayBuffer (1 MiB, not a pool slice), so the test can watch that buffer alone.
  return Buffer.from(
    toBinary(SendPackRequestSchema, create(SendPackRequestSchema, { topic: "t", messages })),
  );
}

test("a pack waiting for its commit no longer holds the request its payloads were read from", async () => {
  const store = SqliteStore.open(":memory:");
  const insertRuns = store.insertRuns.bind(store);
  let inserting: (() => void) | undefined;
  let commit: (() => void) | undefined;
  const held = new Promise<void>((r) => {
    inserting = r;
  });
  store.insertRuns = async (...args) => {
    inserting?.();
    await new Promise<void>((r) => {
      commit = r;
    });
    return insertRuns(...args);
  };
  const broker = coreBroker({ maxPackBytes: 4 << 20, maxMessageBytes: 1 << 20 }, 30_000, store);
  try {
    await broker.createTopic("t", 1, {});
    const { pack, malformed } = readSendPack(request(), "nervebus-");
    assert.equal(malformed, undefined);
    assert.equal(
      pack.src.byteLength > MESSAGES * PAYLOAD,
      true,
      "the pack reads its payloads from the request",
    );
    const requestBuffer = new WeakRef(pack.src.buffer);
    const publishing = broker.publish("t", pack, Number.POSITIVE_INFINITY);
    await held;
    // The run is built and its write is in progress; the confirm waits for it, and the caller
    // (SendPack's handler, through its call) still holds the pack.
    await new Promise((r) => setImmediate(r));
    gc();
    assert.equal(
      requestBuffer.deref(),
      undefined,
      "the request was collected while the pack awaits its confirm",
    );
    assert.throws(() => pack.message(0), /released/, "a released payload is refused, not read as empty");
    assert.equal(pack.messageId(3), "id-3", "ids stay");
    commit!();
    const result = await publishing;
    assert.deepEqual([result.firstSeq, result.lastSeq], [1, MESSAGES]);
    // What was stored came from the run's copies.
    for (const seq of [1, 17, MESSAGES]) {
      const m = await broker.getMessage("t", seq);
      assert.equal(m.data.length, PAYLOAD, `seq ${seq}'s payload length`);
      assert.ok(
        m.data.every((b) => b === seq - 1),
        `seq ${seq}'s payload bytes`,
      );
    }
  } finally {
    commit?.();
    await broker.close(1000);
  }
});
