import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import { MessageResult_Outcome } from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import { startBroker, TestClient } from "../support/broker.js";
import { useTestMysql } from "../support/mariadb.js";
import { withSqliteSide } from "../support/sqlite-side.js";

// Defect (SQLite with its write lock held, MariaDB with the shard tables locked: 19 to 20 of 32
// calls): packs waiting for their confirm were failed by a sweep every 250 ms, so a pack whose
// deadline (100 ms before the call's) fell between two sweeps was still waiting when the
// call's own deadline passed: grpc-js answered DEADLINE_EXCEEDED, and the producer never got
// the broker's UNAVAILABLE "outcome unknown" (retry with the same message ids). Now a timer
// at the earliest deadline in the queue answers each pack before its call's deadline.

const testMysql = useTestMysql();

/** Call deadlines tried, ms: short (below the broker's 100 ms margin) to long. */
const DEADLINES = [60, 300, 1000, 2000];
/** Calls per deadline: the old sweep missed a deadline by chance, so many calls. */
const CALLS = 8;

/** Takes and gives back what stalls the store's writes (a lock held by another connection). */
interface Stall {
  hold(): Promise<void> | void;
  release(): Promise<void> | void;
}

/**
 * Publishes "before", stalls writes, sends CALLS SendPacks of each deadline in DEADLINES and
 * checks that each gets the broker's UNAVAILABLE "outcome unknown"; then releases the stall and
 * checks that the packs were written and a retry with the same message id is a duplicate.
 */
async function stalledPublishes(client: TestClient, stall: Stall): Promise<void> {
  await client.publish("orders", ["before"]);
  await stall.hold();
  const calls: Promise<{ deadlineMs: number; err: grpc.ServiceError | undefined }>[] = [];
  for (let i = 0; i < CALLS; i++) {
    for (const deadlineMs of DEADLINES) {
      calls.push(
        client
          .publish("orders", [{ data: Buffer.from(`m${i}`), messageId: `id-${deadlineMs}-${i}` }], deadlineMs)
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
  await stall.release();
  const retry = await client.publish("orders", [{ data: Buffer.from("m0"), messageId: "id-2000-0" }]);
  assert.equal(retry.results[0]?.outcome, MessageResult_Outcome.DUPLICATE, "the retry finds the original");
  assert.ok(Number(retry.results[0]?.seq) > 1, `the original's seq: ${retry.results[0]?.seq}`);
  const all = await client.publish("orders", ["after"]);
  assert.equal(
    Number(all.firstSeq),
    2 + DEADLINES.length * CALLS,
    "every stalled pack got its seq and was written",
  );
}

test("sqlite: while the store stalls writes, every SendPack gets UNAVAILABLE outcome unknown before its deadline, never DEADLINE_EXCEEDED", () =>
  // Another connection holding the database's write lock: the broker's INSERTs get SQLITE_BUSY
  // and are retried, so no pack is confirmed while it is held.
  withSqliteSide("confirm-deadline", ({ client, other }) =>
    stalledPublishes(client, {
      hold: () => {
        other.exec("BEGIN IMMEDIATE");
      },
      release: () => {
        other.exec("COMMIT");
      },
    }),
  ));

test("mysql: while the shard tables are locked (LOCK TABLES … WRITE from another connection), every SendPack gets UNAVAILABLE outcome unknown before its deadline, never DEADLINE_EXCEEDED", async () => {
  const url = await testMysql().database("confirm_deadline");
  const bus = await startBroker(url);
  const client = new TestClient(bus.address);
  // The INSERTs wait for the lock (no error): the packs are simply not confirmed.
  const locker = await mysql.createConnection({ uri: url });
  try {
    await stalledPublishes(client, {
      hold: async () => {
        const [tables] = await locker.query<mysql.RowDataPacket[]>("SHOW TABLES LIKE 'nb\\_run\\_%'");
        const names = tables.map((t) => String(Object.values(t)[0]));
        assert.ok(names.length > 0, "the topic has shard tables");
        await locker.query(`LOCK TABLES ${names.map((n) => `${mysql.escapeId(n)} WRITE`).join(", ")}`);
      },
      release: async () => {
        await locker.query("UNLOCK TABLES");
      },
    });
  } finally {
    await locker.end();
    client.close();
    await bus.stop();
  }
});
