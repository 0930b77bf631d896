import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { NerveBusError } from "../../src/core/index.js";
import { isOutOfSpace, mapStoreError, SqliteStore } from "../../src/store/index.js";
import { spawnBroker } from "../support/process.js";

// Each test makes better-sqlite3 produce a real error code and checks how src/store/errors.ts
// reads it (its comments name these tests).

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown }).code;
}

test("second process: a broker holding the file makes opening it FAILED_PRECONDITION, and its SQLITE_BUSY is transient", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "nb-sqlite-busy-")), "nb.db");
  const first = await spawnBroker(["--store", `sqlite:${path}`]);
  try {
    assert.throws(
      () => SqliteStore.open(path),
      (err: unknown) => {
        assert.ok(err instanceof NerveBusError);
        assert.equal(err.code, "failed_precondition");
        assert.match(err.message, /is in use by another broker process/);
        assert.equal(codeOf(err.cause), "SQLITE_BUSY");
        return true;
      },
    );
    // The owner's lock file, held exclusively, answers any other connection SQLITE_BUSY.
    const db = new Database(`${path}-lock`, { timeout: 0 });
    try {
      assert.throws(
        () => db.prepare("PRAGMA user_version").get(),
        (err: unknown) => {
          assert.equal(codeOf(err), "SQLITE_BUSY");
          const mapped = mapStoreError(err, "reading");
          assert.equal(mapped.code, "unavailable");
          assert.equal(mapped.cause, err);
          return true;
        },
      );
    } finally {
      db.close();
    }
  } finally {
    first.child.kill("SIGTERM");
    await first.exited;
  }
});

/** The error better-sqlite3 throws for `run` on a fresh in-memory database. */
function errorOf(run: (db: Database.Database) => void): unknown {
  const db = new Database(":memory:");
  try {
    run(db);
  } catch (err) {
    return err;
  } finally {
    db.close();
  }
  assert.fail("the statement did not fail");
}

test("database full: SQLITE_FULL is RESOURCE_EXHAUSTED naming the file (space may be freed)", () => {
  const err = errorOf((db) => {
    db.exec("CREATE TABLE t (b BLOB)");
    // A file that may not grow past a few pages stands for a full disk (a real one:
    // test/integration/disk-full-sqlite.test.ts).
    db.pragma("max_page_count = 8");
    db.prepare("INSERT INTO t VALUES (?)").run(Buffer.alloc(64 << 10));
  });
  assert.equal(codeOf(err), "SQLITE_FULL");
  assert.equal(isOutOfSpace(err), true);
  const mapped = mapStoreError(err, "inserting", "/data/nb.db");
  assert.equal(mapped.code, "resource_exhausted");
  assert.match(
    mapped.message,
    /^store is out of disk space \(\/data\/nb\.db\) while inserting: database or disk is full/,
  );
});

test("an error that is not transient (a constraint) is INTERNAL", () => {
  const err = errorOf((db) =>
    db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (1)"),
  );
  assert.match(String(codeOf(err)), /^SQLITE_CONSTRAINT/);
  const mapped = mapStoreError(err, "inserting");
  assert.equal(mapped.code, "internal");
  assert.match(mapped.message, /store failed while inserting/);
});
