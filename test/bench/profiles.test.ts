import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { latestProfile } from "../../bench/profiles.js";

test("latestProfile picks the newest run's event-loop profile, not a worker thread's that sorts after it", () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-profiles-"));
  try {
    assert.equal(latestProfile(dir), undefined);
    // What a SQLite broker leaves: its event loop (thread 0) and its checkpoint thread (1),
    // after an earlier run's.
    for (const f of [
      "CPU.20261207.005001.3600.0.001.cpuprofile",
      "CPU.20261207.005242.3716.0.001.cpuprofile",
      "CPU.20261207.005242.3716.1.002.cpuprofile",
      "notes.txt",
    ])
      writeFileSync(join(dir, f), "{}");
    assert.equal(latestProfile(dir), join(dir, "CPU.20261207.005242.3716.0.001.cpuprofile"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(latestProfile(join(dir, "gone")), undefined);
});
