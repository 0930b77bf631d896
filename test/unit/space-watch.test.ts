import assert from "node:assert/strict";
import { test } from "node:test";
import { NerveBusError } from "../../src/core/index.js";
import { mapStoreError } from "../../src/store/index.js";
import { SpaceWatch } from "../../src/store/space-watch.js";

/** A store error as SQLite's full disk makes it (src/store/errors.ts). */
function diskFull(): NerveBusError {
  return mapStoreError(
    Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }),
    "inserting",
    "/d/nb.db",
  );
}

function recorder(): {
  lines: [string, string][];
  log: (level: "info" | "warn" | "error", msg: string) => void;
} {
  const lines: [string, string][] = [];
  return { lines, log: (level, msg) => lines.push([level, msg]) };
}

test("space watch: full from the first failure for lack of space until messages are inserted; one warning and one info line however many failures", () => {
  const { lines, log } = recorder();
  const watch = new SpaceWatch("/d/nb.db", log);
  try {
    assert.equal(watch.refusal(), undefined);
    // Other failures (a lost connection) say nothing about space.
    watch.failed(new NerveBusError("unavailable", "store unavailable", { cause: { code: "ECONNRESET" } }));
    assert.equal(watch.refusal(), undefined);
    for (let i = 0; i < 5; i++) watch.failed(diskFull());
    const refusal = watch.refusal();
    assert.ok(refusal !== undefined);
    assert.equal(refusal.code, "resource_exhausted");
    assert.match(refusal.message, /^store is out of disk space \(\/d\/nb\.db\) since .*; retry later$/);
    const state = watch.state();
    assert.equal(state.full, true);
    assert.ok(state.since > 0);
    assert.match(state.error ?? "", /database or disk is full/);
    watch.inserted();
    assert.equal(watch.refusal(), undefined);
    assert.deepEqual(watch.state(), { place: "/d/nb.db", full: false, since: 0, error: undefined });
    // Messages inserted while not full change nothing and say nothing.
    watch.inserted();
    assert.deepEqual(
      lines.map(([level]) => level),
      ["warn", "info"],
    );
  } finally {
    watch.close();
  }
});

test("space watch: a full state that nothing retries lapses once no write has failed for the recheck time", async () => {
  const { lines, log } = recorder();
  const watch = new SpaceWatch("/d/nb.db", log, 50);
  try {
    watch.failed(diskFull());
    assert.ok(watch.refusal() !== undefined);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(watch.refusal(), undefined, "the next publish's insert is the probe");
    assert.deepEqual(
      lines.map(([level]) => level),
      ["warn", "info"],
    );
  } finally {
    watch.close();
  }
});
