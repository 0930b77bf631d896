import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { SuiteResults } from "../../bench/suite-results.js";

/**
 * The benchmark suite in its quickest mode (--quick: a few hundred ms per phase), SQLite only,
 * twice (--repeat 2): every phase leaves its results, every target of issue 14 is a check, and
 * the figures are summarized over both runs. Speeds are never asserted (they belong to bench/).
 */

const run = promisify(execFile);
const SUITE = fileURLToPath(new URL("../../bench/suite.js", import.meta.url));
const NO_STORE_BROKER = fileURLToPath(new URL("../../bench/no-store-broker.js", import.meta.url));

test("--quick --stores sqlite --repeat 2 writes every phase, figure summary and check", async () => {
  const out = mkdtempSync(join(tmpdir(), "nb-bench-quick-"));
  try {
    await run(process.execPath, [SUITE, "--quick", "--stores", "sqlite", "--repeat", "2", "--out", out], {
      maxBuffer: 64 << 20,
    });
    const r = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as SuiteResults;
    assert.equal(r.repeat, 2);
    // The load generator's heap growth (node was started without one) is the broker's own.
    assert.equal(r.machine.loadGeneratorHeapGrowth, "--heap-growing-percent=200 (the broker's own)");
    assert.deepEqual(
      r.stores.map((st) => [st.store, st.repeat]),
      [
        ["sqlite", 1],
        ["sqlite", 2],
      ],
    );
    for (const st of r.stores) {
      // Broker warnings are reported, not failures (the suite exits non-zero on a failed phase).
      assert.deepEqual(
        st.errors.filter((e) => !e.includes("broker logged")),
        [],
        `run ${st.repeat}`,
      );
      assert.deepEqual(
        Object.keys(st.cpu),
        [
          "raw",
          "no-store 4 shards",
          "publish 4 shards",
          "raw-runs",
          "drain",
          "drain 1024 B",
          "e2e",
          "overload",
          ...(st.repeat === 2 ? ["publish profile", "e2e profile"] : []),
        ],
        `phases of run ${st.repeat}`,
      );
      for (const list of [st.raw, st.rawRuns, st.noStore, st.publish])
        assert.deepEqual(
          list.map((x) => x.bytes),
          [100, 1024],
        );
      assert.deepEqual(
        st.drains.map((d) => d.bytes),
        [100, 1024],
      );
      assert.ok(st.drain !== undefined && st.overload !== undefined);
      assert.deepEqual(
        st.e2e.map((e) => e.targetRate),
        [1000, 10_000],
      );
      // What held the broker up, from its /metrics around each measured window.
      for (const e of st.e2e) {
        assert.equal(e.confirmedUndelivered, 0, `e2e ${e.targetRate}: confirmed messages never delivered`);
        const s = e.stalls;
        assert.ok(s !== undefined, `e2e ${e.targetRate}: stalls scraped`);
        assert.ok(s.loopOver25ms >= s.loopOver100ms && s.loopOver100ms >= 0, JSON.stringify(s));
        assert.ok(s.storeOver25ms >= s.storeOver100ms && s.storeOver100ms >= 0, JSON.stringify(s));
      }
      // CPU per message of broker, database (in the broker on SQLite) and load generator.
      for (const p of [...st.noStore, ...st.publish, ...st.drains, ...st.e2e, st.overload])
        assert.deepEqual(Object.keys(p.cpuMicrosPerMessage), ["broker", "db", "loadgen"]);
      // How the broker cut its runs; the run-row ceiling writes rows as long (--run-messages auto).
      for (const p of st.publish) {
        assert.ok(p.messagesPerRun !== undefined && p.messagesPerRun >= 1);
        const ceiling = st.rawRuns.find((x) => x.bytes === p.bytes);
        assert.equal(ceiling?.runMessages, Math.round(p.messagesPerRun));
      }
      // Profiles come from the last run only.
      assert.equal(st.profiles.publish !== undefined, st.repeat === 2);
    }
    for (const key of [
      "raw per-row INSERT 100 B 4 shards: rows/s",
      "raw per-row SELECT 100 B 4 shards: rows/s",
      "raw run-row INSERT 1024 B 4 shards: msg/s",
      "raw run-row SELECT 100 B 4 shards: msg/s",
      "no-store 1024 B 4 shards: msg/s",
      "publish 100 B 4 shards: msg/s",
      "drain 100 B 4 shards: msg/s",
      "drain 1024 B 4 shards: msg/s",
      "e2e 10000 msg/s: undelivered",
      "e2e 1000 msg/s: event-loop delays > 25 ms",
      "e2e 1000 msg/s: store calls > 100 ms",
      "overload: max RSS MB",
      "overload: confirmed messages missing",
    ]) {
      const f = r.figures[`sqlite: ${key}`];
      assert.ok(f !== undefined, key);
      assert.equal(f.values.length, 2, key);
      assert.ok(f.min <= f.mean && f.mean <= f.max && f.relStdev >= 0, key);
    }
    const targets = r.checks.map((c) => c.target);
    for (const bytes of [100, 1024]) {
      for (const t of [
        `publish ≥ 0.75 × raw per-row INSERT (${bytes} B 4 shards)`,
        `publish ≥ 0.7 × no-store ceiling (${bytes} B 4 shards)`,
        `publish / raw run-row INSERT (${bytes} B 4 shards), reported`,
      ])
        assert.ok(targets.includes(t), t);
    }
    for (const t of [
      "drain with per-message acks ≥ 1.2 × raw per-row SELECT (100 B 4 shards)",
      "drain with per-message acks ≥ 1.2 × raw per-row SELECT (1024 B 4 shards)",
      "drain / raw run-row SELECT (100 B 4 shards), reported",
      "e2e p99 ≤ 10 ms at 1,000 msg/s",
      "e2e p99 ≤ 10 ms at 10,000 msg/s",
      "overload max RSS ≤ 300 MB (defaults), every run",
      "overload: messages confirmed (goodput > 0), every run",
      "overload: zero confirmed messages missing, every run",
    ])
      assert.ok(targets.includes(t), t);
    for (const c of r.checks) {
      assert.equal(c.store, "sqlite");
      // A target with a threshold passes or fails once measured; a reported figure has no verdict.
      if (c.measured !== null) assert.equal(c.pass === null, c.target.endsWith("reported"), c.target);
    }
    assert.match(
      readFileSync(join(out, "results.md"), "utf8"),
      /## Targets \(issues 14 and 16\)[\s\S]*## Run-to-run variance/,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("the no-store broker refuses a non-loopback address and a --store", async () => {
  for (const args of [
    ["--listen", "0.0.0.0:0"],
    ["--listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0"],
    ["--listen", "127.0.0.1:0", "--store", "sqlite:/tmp/never.db"],
  ]) {
    await assert.rejects(
      run(process.execPath, [NO_STORE_BROKER, ...args]),
      (err: { code?: number; stderr?: string }) => {
        assert.equal(err.code, 2, args.join(" "));
        assert.match(err.stderr ?? "", /benchmark only/);
        return true;
      },
    );
  }
});
