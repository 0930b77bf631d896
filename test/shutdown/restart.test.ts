import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { TestClient } from "../support/broker.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

/*
 * A broker on SQLite, a real process, is stopped with SIGTERM and started again on the same
 * address and store RESTARTS times while a Go, a Python and a TypeScript publisher (go/main.go,
 * publish.py, publish.ts beside this file: each its client's publisher, with message ids and
 * retries) publish without pause. Every publish must end confirmed, directly or through retries
 * (the clients retry UNAVAILABLE, and a CANCELLED they did not cause, with the same ids), and the
 * log must hold each message exactly once. Before the broker answered every call before closing
 * its connections, a SIGTERM now and then cut an answer off (RST_STREAM CANCEL), and a Go or
 * TypeScript publish failed with CANCELLED: in about one run of this test in two, with the
 * clients of then.
 */

const RESTARTS = 20;
const TOPIC = "shutdown";
const here = fileURLToPath(new URL(".", import.meta.url));
const repo = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);

/** Builds or finds what the three publishers need; returns the command of each. */
async function preparePublishers(work: string): Promise<Record<string, string[]>> {
  const python = join(repo, "clients/python/.venv/bin/python");
  if (!existsSync(python)) {
    await run("bash", [join(repo, "clients/python/scripts/setup.sh")], { timeout: 180_000 });
  }
  if (!existsSync(join(repo, "clients/ts/dist/index.js"))) {
    await run("npx", ["--no-install", "tsc", "-p", join(repo, "clients/ts")], {
      cwd: repo,
      timeout: 120_000,
    });
  }
  const go = join(work, "publish-go");
  await run("go", ["build", "-o", go, "."], { cwd: join(repo, "test/shutdown/go"), timeout: 180_000 });
  return {
    go: [go, "--prefix", "go"],
    python: [python, join(repo, "test/shutdown/publish.py"), "--prefix", "python"],
    ts: [process.execPath, join(here, "publish.js"), "--prefix", "ts"],
  };
}

/** One publisher program: its progress ("answered N" lines) and its final summary line. */
class Publisher {
  answered = 0;
  summary: { published: number; failed: number; duplicates: number; errors: string[] } | undefined;
  stderr = "";
  readonly exited: Promise<number | string>;
  readonly #child: ChildProcess;

  constructor(
    readonly lang: string,
    command: string[],
    address: string,
  ) {
    const [file, ...args] = command;
    // Go's flag package takes --name as well as -name.
    this.#child = spawn(file!, [...args, "--addr", address, "--topic", TOPIC], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let pending = "";
    this.#child.stdout!.on("data", (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith("answered ")) this.answered = Number(line.slice(9));
        else if (line.startsWith("{")) this.summary = JSON.parse(line);
      }
    });
    this.#child.stderr!.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.#child.on("error", (err) => {
      this.stderr += `${err}\n`;
    });
    this.exited = new Promise((resolve) =>
      this.#child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
    );
  }

  /** Asks the program to finish: it stops publishing, waits for its answers, prints its summary. */
  finish(): void {
    this.#child.stdin!.end();
  }

  kill(): void {
    this.#child.kill("SIGKILL");
  }
}

/**
 * Starts the broker again on `address`, retrying for a few seconds while the port is taken:
 * between two brokers, another process on the machine may have been given it.
 */
async function restartOn(address: string, store: string): Promise<BrokerProcess> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await spawnBroker(["--store", store, "--listen", address]);
    } catch (err) {
      if (!/address already in use/.test(String(err)) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Resolves once `check` holds, polling; rejects with `what` after `timeoutMs`. */
async function waitFor(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test(`${RESTARTS} SIGTERM restarts under Go, Python and TypeScript publishers: no publish fails, each message is in the log once`, {
  timeout: 280_000,
}, async (t) => {
  const work = mkdtempSync(join(tmpdir(), "nb-shutdown-"));
  const commands = await preparePublishers(work);
  const store = `sqlite:${join(work, "nb.db")}`;
  let broker: BrokerProcess = await spawnBroker(["--store", store]);
  const address = broker.address;
  const publishers = Object.entries(commands).map(([lang, command]) => new Publisher(lang, command, address));
  const progress = () => publishers.map((p) => `${p.lang} ${p.answered}`).join(", ");
  try {
    for (let i = 0; i < RESTARTS; i++) {
      // Every other SIGTERM comes once each publisher has had answers from this broker and
      // goes on publishing, so packs of all three are in flight; the others come at once,
      // while the publishers are still reconnecting to the new broker.
      if (i % 2 === 0) {
        const before = publishers.map((p) => p.answered);
        await waitFor(
          () => publishers.every((p, j) => p.answered > before[j]!),
          60_000,
          () => `progress after restart ${i} (${progress()}):\n${publishers.map((p) => p.stderr).join("")}`,
        );
      }
      // At a varying moment within the publishers' stream of packs.
      await new Promise((r) => setTimeout(r, Math.random() * 1000));
      broker.child.kill("SIGTERM");
      assert.equal(await broker.exited, 0, `restart ${i + 1}: graceful shutdown exits 0\n${broker.stderr()}`);
      broker = await restartOn(address, store);
    }
    for (const p of publishers) p.finish();
    for (const p of publishers) assert.equal(await p.exited, 0, `${p.lang} publisher exit\n${p.stderr}`);

    let total = 0;
    for (const p of publishers) {
      const s = p.summary;
      assert.ok(s, `${p.lang} printed its summary`);
      assert.deepEqual(
        { failed: s.failed, errors: s.errors },
        { failed: 0, errors: [] },
        `${p.lang}: every publish confirmed`,
      );
      assert.ok(s.published > 0, `${p.lang} published`);
      total += s.published;
      t.diagnostic(
        `${p.lang}: ${s.published} published, ${s.duplicates} answered as duplicates of an earlier attempt`,
      );
    }
    const count = await countLog(broker.address);
    assert.equal(
      [...count.values()].reduce((a, b) => a + b, 0),
      total,
      "the log holds as many messages as were published",
    );
    for (const p of publishers) {
      for (let i = 0; i < p.summary!.published; i++) {
        const n = count.get(`${p.lang}-${i}`);
        if (n !== 1) assert.fail(`${p.lang}-${i} is in the log ${n ?? 0} times`);
      }
    }
    broker.child.kill("SIGTERM");
    assert.equal(await broker.exited, 0);
  } finally {
    for (const p of publishers) p.kill();
    if (broker.child.exitCode === null && broker.child.signalCode === null) broker.child.kill("SIGKILL");
  }
});

/** Reads the topic's whole log with a new subscription: how often each message id is in it. */
async function countLog(address: string): Promise<Map<string, number>> {
  const client = new TestClient(address);
  try {
    const stats = await client.adminCall("getStats", { topic: TOPIC });
    const lastSeq = Number(stats.topic!.lastSeq);
    const count = new Map<string, number>();
    let read = 0;
    const stream = client.receive(TOPIC, "verify", { from: "earliest", maxMessages: 10_000 });
    await stream.until(
      () => {
        // Counted and dropped as they come, so that memory stays small.
        const batch = stream.deliveries.splice(0);
        stream.responses.length = 0;
        for (const d of batch) {
          assert.equal(Buffer.from(d.data).toString(), d.messageId, `seq ${d.seq}: payload is its id`);
          count.set(d.messageId, (count.get(d.messageId) ?? 0) + 1);
        }
        read += batch.length;
        stream.ack(batch.map((d) => d.seq));
        return read >= lastSeq;
      },
      120_000,
      "the whole log",
    );
    await stream.end();
    return count;
  } finally {
    client.close();
  }
}
