import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import Database from "better-sqlite3";
import { MessageResult_Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { startBroker, TestClient } from "../support/broker.js";

// Defect: packs waiting for their confirm were failed by a sweep every 250 ms, so a pack whose
// deadline (100 ms before the call's) fell between two sweeps was still waiting when the
// call's own deadline passed: grpc-js answered DEADLINE_EXCEEDED, and the producer never got
// the broker's UNAVAILABLE "outcome unknown" (retry with the same message ids). Now a timer
// at the earliest deadline in the queue answers each pack before its call's deadline.

/** Call deadlines tried, ms: short (below the broker's 100 ms margin) to long. */
const DEADLINES = [60, 300, 1000, 2000];
/** Calls per deadline: the old sweep missed a deadline by chance, so many calls. */
const CALLS = 8;

test("sqlite: while the store stalls writes, every SendPack gets UNAVAILABLE outcome unknown before its deadline, never DEADLINE_EXCEEDED", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nb-confirm-deadline-"));
  const path = join(dir, "bus.db");
  const bus = await startBroker(`sqlite:${path}`);
  const client = new TestClient(bus.address);
  // Another connection holding the database's write lock: the broker's INSERTs get SQLITE_BUSY
  // and are retried, so no pack is confirmed while it is held.
  const locker = new Database(path, { timeout: 0 });
  try {
    await client.publish("orders", ["before"]);
    locker.exec("BEGIN IMMEDIATE");
    const calls: Promise<{ deadlineMs: number; err: grpc.ServiceError | undefined }>[] = [];
    for (let i = 0; i < CALLS; i++) {
      for (const deadlineMs of DEADLINES) {
        calls.push(
          client
            .publish(
              "orders",
              [{ data: Buffer.from(`m${i}`), messageId: `id-${deadlineMs}-${i}` }],
              deadlineMs,
            )
            .then(
              () => ({ deadlineMs, err: undefined }),
              (err: grpc.ServiceError) => ({ deadlineMs, err }),
            ),
        );
      }
      // Spread the calls over a few hundred ms, so their deadlines fall at every point between
      // two of the old sweeps.
      await new Promise((r) => setTimeout(r, 37));
    }
    const answers = await Promise.all(calls);
    const wrong = answers.filter(
      (a) => a.err?.code !== grpc.status.UNAVAILABLE || !/outcome unknown/.test(a.err.details),
    );
    assert.deepEqual(
      wrong.map(
        (a) =>
          `${a.deadlineMs} ms: ${a.err === undefined ? "OK" : `${grpc.status[a.err.code]} ${a.err.details}`}`,
      ),
      [],
      `${wrong.length} of ${answers.length} calls did not get the broker's answer`,
    );

    // The packs were not refused: once the lock is released they are written, and a retry with
    // the same message ids gets their seqs instead of storing copies.
    locker.exec("COMMIT");
    const retry = await client.publish("orders", [{ data: Buffer.from("m0"), messageId: "id-2000-0" }]);
    assert.equal(retry.results[0]?.outcome, MessageResult_Outcome.DUPLICATE, "the retry finds the original");
    assert.ok(Number(retry.results[0]?.seq) > 1, `the original's seq: ${retry.results[0]?.seq}`);
    const all = await client.publish("orders", ["after"]);
    assert.equal(
      Number(all.firstSeq),
      2 + DEADLINES.length * CALLS,
      "every stalled pack got its seq and was written",
    );
  } finally {
    if (locker.inTransaction) locker.exec("ROLLBACK");
    locker.close();
    client.close();
    await bus.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
