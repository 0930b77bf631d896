import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LogMessage, NerveBusError } from "../../src/core/index.js";
import { SqliteStore, SqliteThreadedStore } from "../../src/store/index.js";
import { storeConformance } from "./conformance.js";

const CONFIG = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };
const dir = mkdtempSync(join(tmpdir(), "nb-sqlite-wt-conf-"));
storeConformance("sqlite-writer-thread", {
  fresh: async (name) => `sqlite:${join(dir, `${name.replace(/\W/g, "_")}.db`)}`,
  open: async (url) => SqliteThreadedStore.open(url.slice("sqlite:".length)),
});

function inUse(err: unknown): boolean {
  assert.ok(err instanceof NerveBusError);
  assert.equal(err.code, "failed_precondition");
  assert.match(err.message, /is in use by another broker process/);
  assert.equal((err.cause as { code?: unknown }).code, "SQLITE_BUSY");
  return true;
}

test("sqlite-writer-thread: a second store on the same file fails FAILED_PRECONDITION, threaded or not", async () => {
  const path = join(dir, "second.db");
  const first = await SqliteThreadedStore.open(path);
  try {
    await assert.rejects(SqliteThreadedStore.open(path), inUse);
    assert.throws(() => SqliteStore.open(path), inUse);
  } finally {
    await first.close();
  }
  // Closed: the file is free again.
  await (await SqliteThreadedStore.open(path)).close();
});

test("sqlite-writer-thread: a write confirmed before close is read back after reopening", async () => {
  const path = join(dir, "reopen.db");
  const store = await SqliteThreadedStore.open(path);
  const { topic } = (await store.ensureTopic("t", {
    shards: 1,
    config: CONFIG,
    format: 1,
  }))!;
  // Issued, not awaited, then close: close commits it first.
  const inserted = store.insertMessages(topic, 0, [new LogMessage(1, 5, Buffer.from("x"), Buffer.alloc(0))]);
  await store.close();
  await inserted;
  const again = await SqliteThreadedStore.open(path);
  try {
    const [read] = await again.readMessages(topic, 1, 1);
    assert.equal(Buffer.from(read!.data).toString(), "x");
  } finally {
    await again.close();
  }
});

test("sqlite-writer-thread: a crashed writer thread fails pending and later writes INTERNAL and the ping, instead of hanging", async () => {
  const path = join(dir, "crash.db");
  const dying = new URL("../support/dying-sqlite-writer.js", import.meta.url);
  const store = await SqliteThreadedStore.open(path, dying);
  const failed = (err: unknown) => {
    assert.ok(err instanceof NerveBusError);
    assert.equal(err.code, "internal");
    assert.match(err.message, /SQLite writer thread exited/);
    return true;
  };
  await assert.rejects(store.ensureTopic("t", { shards: 1, config: CONFIG, format: 2 }), failed);
  await assert.rejects(store.ensureTopic("u", { shards: 1, config: CONFIG, format: 2 }), failed);
  await assert.rejects(store.ping(), failed);
  await store.close();
});
