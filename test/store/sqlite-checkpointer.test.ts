import assert from "node:assert/strict";
import { existsSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { LogMessage, type TopicConfig } from "../../src/core/index.js";
import { SqliteStore } from "../../src/store/index.js";
import { SqliteCheckpointer } from "../../src/store/sqlite/sqlite-checkpointer.js";

const CONFIG: TopicConfig = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };
const MB = 1 << 20;

const size = (path: string) => (existsSync(path) ? statSync(path).size : 0);

/** Waits (up to 20 s, then fails) until `ok` holds. */
async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `mb` megabytes of messages (64 KiB each), from seq `first`, in one shard. */
function messages(first: number, mb: number): LogMessage[] {
  const data = Buffer.alloc(64 << 10, 7);
  return Array.from({ length: mb * 16 }, (_, i) =>
    LogMessage.of(first + i, 1_000, data, { attributes: {}, orderingKey: "", messageId: "" }),
  );
}

test("sqlite store: the log is copied into the database file by the checkpoint thread, not by a commit, and then started over", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "nb-sqlite-ckpt-")), "nb.db");
  const store = SqliteStore.open(path);
  try {
    const { topic } = (await store.ensureTopic("t", { shards: 1, config: CONFIG, format: 2 }))!;
    const before = size(path);
    const done = store.checkpoints();
    await store.insertMessages(topic, 0, messages(1, 3));
    // The commit's own connection checkpoints only past 16,384 frames (64 MiB): a database file
    // that grows by the 3 MiB just written was written by the thread.
    await until("the checkpoint thread copies the log", () => store.checkpoints() > done);
    assert.ok(size(path) >= before + 3 * MB, `database file ${size(path)} bytes, was ${before}`);
    const wal = size(`${path}-wal`);
    assert.ok(wal >= 3 * MB, `the log held the write: ${wal} bytes`);
    // Everything was copied, so the next commit starts the log over instead of growing it.
    const done2 = store.checkpoints();
    await store.insertMessages(topic, 0, messages(1 + 48, 3));
    assert.ok(size(`${path}-wal`) <= wal, `log ${size(`${path}-wal`)} bytes, was ${wal}`);
    // A write of less than a megabyte is checkpointed too, a quarter second later.
    await store.insertMessages(topic, 0, messages(1 + 96, 0.25));
    await until("the later writes are copied too", () => size(path) >= before + 6.25 * MB);
    assert.ok(store.checkpoints() > done2);
    const read = await store.readMessages(topic, 1, 100);
    assert.equal(read.length, 100);
    assert.deepEqual(read[99]!.data, Buffer.alloc(64 << 10, 7));
  } finally {
    await store.close();
  }
  // Closed: the lock file is free for the next owner.
  const again = SqliteStore.open(path);
  await again.close();
});

test("sqlite checkpointer: a thread that dies is reported once, and closing afterwards still ends", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-sqlite-ckpt-die-"));
  const script = join(dir, "die.mjs");
  writeFileSync(script, "process.exit(3);\n");
  const reasons: string[] = [];
  const checkpointer = new SqliteCheckpointer(
    join(dir, "nb.db"),
    (r) => reasons.push(r),
    pathToFileURL(script),
  );
  await until("the dead thread is reported", () => reasons.length > 0);
  checkpointer.wrote(8 * MB);
  await checkpointer.close();
  assert.deepEqual(reasons, ["exited (code 3)"]);
});
