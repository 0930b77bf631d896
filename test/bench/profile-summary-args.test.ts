import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { profileSummaryArgs } from "../../bench/profile-summary.js";

const CLI = fileURLToPath(new URL("../../bench/profile-summary.js", import.meta.url));

test("profile-summary's arguments: --help is help, not a file; a bad count or flag is named", () => {
  assert.deepEqual(profileSummaryArgs(["--help"]), { files: [], top: 0, long: 0, help: true });
  assert.deepEqual(profileSummaryArgs(["a.cpuprofile", "--top", "5", "--long-tasks", "3"]), {
    files: ["a.cpuprofile"],
    top: 5,
    long: 3,
    help: false,
  });
  assert.deepEqual(profileSummaryArgs(["a.cpuprofile"]), {
    files: ["a.cpuprofile"],
    top: 25,
    long: 0,
    help: false,
  });
  const bad = (argv: string[], named: RegExp) => {
    const r = profileSummaryArgs(argv);
    assert.ok("error" in r, `${argv.join(" ")} must be refused`);
    assert.match(r.error, named);
    assert.match(r.error, /usage:/);
  };
  bad(["a.cpuprofile", "--top", "x"], /--top: a positive whole number, got "x"/);
  bad(["a.cpuprofile", "--long-tasks", "-1"], /--long-tasks/);
  bad(["a.cpuprofile", "--bogus"], /--bogus/);
  bad([], /no profile given/);
});

test("profile-summary run alone: --help exits 0, an unreadable profile is named with exit 1, the others still summarized", () => {
  const help = spawnSync(process.execPath, [CLI, "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /usage: node dist\/bench\/profile-summary\.js/);
  const dir = mkdtempSync(join(tmpdir(), "nb-profile-summary-"));
  try {
    const good = join(dir, "ok.cpuprofile");
    // One sample of 1 ms in a function of the broker's.
    writeFileSync(
      good,
      JSON.stringify({
        nodes: [
          {
            id: 1,
            callFrame: { functionName: "(root)", url: "", lineNumber: -1, columnNumber: -1 },
            children: [2],
          },
          { id: 2, callFrame: { functionName: "work", url: "", lineNumber: 0, columnNumber: 0 } },
        ],
        startTime: 0,
        endTime: 1000,
        samples: [2],
        timeDeltas: [1000],
      }),
    );
    const missing = join(dir, "gone.cpuprofile");
    const r = spawnSync(process.execPath, [CLI, missing, good], { encoding: "utf8" });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /gone\.cpuprofile: ENOENT/);
    assert.match(r.stdout, /#### .*ok\.cpuprofile/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
