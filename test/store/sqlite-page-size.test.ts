import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { LogMessage } from "../../src/core/index.js";
import { SQLITE_PAGE_SIZE, SqliteStore } from "../../src/store/index.js";

/**
 * A database the store creates has SQLITE_PAGE_SIZE pages (a run's overflow chain is shorter:
 * less CPU per write and checkpoint); one made before, with SQLite's default 4 KiB pages, keeps
 * its page size and works as before.
 */
const topicConfig = { retentionMs: 0, retentionBytes: 0, dedupWindowMs: 0, ephemeral: false };

function pageSizeOf(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.pragma("page_size", { simple: true }) as number;
  } finally {
    db.close();
  }
}

/** Writes 3 runs of 200 messages of 1 KiB into a new topic and reads them back. */
async function roundTrip(store: SqliteStore): Promise<void> {
  const { topic } = (await store.ensureTopic("t", { shards: 2, config: topicConfig, format: 2 }))!;
  const data = Buffer.alloc(1024, 7);
  let seq = 1;
  for (let run = 0; run < 3; run++) {
    const rows = Array.from({ length: 200 }, () =>
      LogMessage.of(seq++, 1, data, { attributes: {}, orderingKey: "", messageId: "" }),
    );
    await store.insertMessages(topic, run % 2, rows);
  }
  const read = await store.readMessages(topic, 1, 600);
  assert.deepEqual(
    read.map((m) => m.seq),
    Array.from({ length: 600 }, (_, i) => i + 1),
  );
  assert.ok(read.every((m) => Buffer.from(m.data).equals(data)));
}

test("sqlite: a new database gets SQLITE_PAGE_SIZE pages; one with 4 KiB pages keeps them and works", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-sqlite-page-"));
  try {
    const fresh = join(dir, "fresh.db");
    const a = SqliteStore.open(fresh);
    try {
      await roundTrip(a);
    } finally {
      await a.close();
    }
    assert.equal(SQLITE_PAGE_SIZE, 16384);
    assert.equal(pageSizeOf(fresh), SQLITE_PAGE_SIZE);

    // What earlier brokers made: SQLite's default page size, in WAL mode, with a table in it.
    const old = join(dir, "old.db");
    const made = new Database(old);
    made.pragma("page_size = 4096");
    made.pragma("journal_mode = WAL");
    made.exec("CREATE TABLE before_upgrade (x INTEGER)");
    made.close();
    const b = SqliteStore.open(old);
    try {
      await roundTrip(b);
    } finally {
      await b.close();
    }
    assert.equal(pageSizeOf(old), 4096, "an existing database keeps its page size");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
