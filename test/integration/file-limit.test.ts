import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CLI } from "../support/process.js";

/**
 * A broker whose connection caps do not fit in its open-file limit says so at start (a flood of
 * connections would otherwise leave its store no descriptor): prlimit gives the process 2,000.
 */
async function startupLog(extra: string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "nb-fdlimit-"));
  const child = spawn(
    "prlimit",
    [
      "--nofile=2000:2000",
      process.execPath,
      CLI,
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--http-listen",
      "127.0.0.1:0",
      "--store",
      `sqlite:${join(dir, "db.sqlite")}`,
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  try {
    const deadline = Date.now() + 20_000;
    while (!stderr.includes("nervebus serving")) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`the broker did not start:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return stderr;
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a broker whose connection caps exceed its open-file limit warns at start, naming the flags and what fits", async () => {
  const warned = await startupLog([]);
  assert.match(warned, /--max-open-connections \(10000\) plus --http-max-connections \(256\)/);
  assert.match(warned, /open-file limit \(2000\)/);
  const fits = await startupLog(["--max-open-connections", "1000"]);
  assert.doesNotMatch(fits, /open-file limit/);
});
