import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import mysql from "mysql2/promise";
import { MessageSchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import {
  MessageResult_Outcome,
  PublishOpenSchema,
  type PublishRequest,
  PublishRequestSchema,
  type PublishResponse,
} from "../../clients/ts/src/gen/nervebus/v1/publisher_pb.js";
import type { NerveBus } from "../../src/nervebus.js";
import { startBroker, TestClient } from "../support/broker.js";
import { retrying } from "../support/cluster.js";
import { useTestMysql } from "../support/mariadb.js";
import { spawnBroker } from "../support/process.js";

// Defect: a SendPack waited without a bound for what comes before its confirm: the topic's
// load (an auto-created topic, or an existing one's first use after a restart) on a stalled
// store, a delayed message's schedule write, the rebuild of the topic's dedup index after a
// restart, a call forwarded to an owner that does not answer (--cluster). The producer got its
// own client's bare DEADLINE_EXCEEDED, not knowing whether to retry; a Publish stream with a
// deadline likewise. Now each wait ends before the call's deadline (as the confirm's does,
// test/integration/confirm-deadline.test.ts) with UNAVAILABLE "nothing was written" when the
// pack got no seqs yet, or "outcome unknown … retry with the same message ids" when its schedule
// write or the owner's answer is in flight.

const testMysql = useTestMysql();

/** Call deadlines tried, ms: one below twice the broker's 100 ms margin, one above. */
const DEADLINES = [150, 1000];

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh SQLite store URL in a temp dir removed after the tests. */
function sqliteStore(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `nb-${name}-`));
  dirs.push(dir);
  return `sqlite:${join(dir, "bus.db")}`;
}

/** What a SendPack of `messages` with each of DEADLINES got: the error, or OK. */
async function publishEach(
  client: TestClient,
  topic: string,
  messages: (deadlineMs: number) => Parameters<TestClient["publish"]>[1],
): Promise<{ deadlineMs: number; err: grpc.ServiceError | undefined }[]> {
  return Promise.all(
    DEADLINES.map((deadlineMs) =>
      client.publish(topic, messages(deadlineMs), deadlineMs).then(
        () => ({ deadlineMs, err: undefined }),
        (err: grpc.ServiceError) => ({ deadlineMs, err }),
      ),
    ),
  );
}

/** Asserts every answer is UNAVAILABLE with details matching `details`. */
function assertUnavailable(
  answers: { deadlineMs: number; err: grpc.ServiceError | undefined }[],
  details: RegExp,
): void {
  const wrong = answers.filter(
    (a) => a.err?.code !== grpc.status.UNAVAILABLE || !details.test(a.err.details),
  );
  assert.deepEqual(
    wrong.map(
      (a) =>
        `${a.deadlineMs} ms: ${a.err === undefined ? "OK" : `${grpc.status[a.err.code]} ${a.err.details}`}`,
    ),
    [],
    `the broker's UNAVAILABLE ${details} before each deadline`,
  );
}

const NOTHING_WRITTEN = /nothing was written/;
const OUTCOME_UNKNOWN = /outcome unknown.*retry with the same message ids/;

/** Another connection to the broker's database that locks tables (LOCK TABLES … WRITE) until unlocked. */
async function tableLocker(url: string) {
  const conn = await mysql.createConnection({ uri: url });
  return {
    async lock(like: string): Promise<void> {
      const [tables] = await conn.query<mysql.RowDataPacket[]>("SHOW TABLES LIKE ?", [like]);
      const names = tables.map((t) => String(Object.values(t)[0]));
      assert.ok(names.length > 0, `tables like ${like} exist`);
      await conn.query(`LOCK TABLES ${names.map((n) => `${mysql.escapeId(n)} WRITE`).join(", ")}`);
    },
    unlock: async () => {
      await conn.query("UNLOCK TABLES");
    },
    end: () => conn.end(),
  };
}

/** A broker on `store` and its client, stopped by `stop`. */
async function brokerOn(
  store: string,
): Promise<{ bus: NerveBus; client: TestClient; stop(): Promise<void> }> {
  const bus = await startBroker(store);
  const client = new TestClient(bus.address);
  return {
    bus,
    client,
    async stop() {
      client.close();
      await bus.stop();
    },
  };
}

test("mysql: a SendPack that creates its topic while the catalog is locked gets UNAVAILABLE nothing written before its deadline; the topic then takes it", async () => {
  const url = await testMysql().database("wait_create");
  const b = await brokerOn(url);
  const locker = await tableLocker(url);
  try {
    await b.client.publish("other", ["x"]);
    await locker.lock("nb\\_topics");
    assertUnavailable(await publishEach(b.client, "fresh", () => ["m"]), NOTHING_WRITTEN);
    await locker.unlock();
    // The load finished late, answered by nobody, and the topic is as the retry expects it.
    const r = await b.client.publish("fresh", ["after"]);
    assert.equal(r.firstSeq, 1n, "nothing of the refused packs was written");
  } finally {
    await locker.end();
    await b.stop();
  }
});

test("mysql: the first SendPack to an existing topic after a restart, while its log is locked, gets UNAVAILABLE nothing written before its deadline", async () => {
  const url = await testMysql().database("wait_load");
  let b = await brokerOn(url);
  const locker = await tableLocker(url);
  try {
    await b.client.publish("orders", ["before"]);
    await b.stop();
    b = await brokerOn(url);
    // Recovering the log tail reads the run tables.
    await locker.lock("nb\\_run\\_%");
    assertUnavailable(await publishEach(b.client, "orders", () => ["m"]), NOTHING_WRITTEN);
    await locker.unlock();
    const r = await b.client.publish("orders", ["after"]);
    assert.equal(r.firstSeq, 2n, "nothing of the refused packs was written");
  } finally {
    await locker.end();
    await b.stop();
  }
});

test("mysql: a delayed message whose schedule write stalls gets UNAVAILABLE outcome unknown before its deadline; a retry with its id is a duplicate", async () => {
  const url = await testMysql().database("wait_schedule");
  const b = await brokerOn(url);
  const locker = await tableLocker(url);
  try {
    await b.client.publish("later", ["loaded"]);
    await locker.lock("nb\\_sched\\_%");
    const deliverAt = timestampFromMs(Date.now() + 3_600_000);
    assertUnavailable(
      await publishEach(b.client, "later", (deadlineMs) => [
        { data: Buffer.from("d"), messageId: `d-${deadlineMs}`, deliverAt },
      ]),
      OUTCOME_UNKNOWN,
    );
    await locker.unlock();
    // The writes went on after the answer: the producer's retries find them.
    for (const deadlineMs of DEADLINES) {
      const r = await b.client.publish("later", [
        { data: Buffer.from("d"), messageId: `d-${deadlineMs}`, deliverAt },
      ]);
      assert.equal(r.results[0]?.outcome, MessageResult_Outcome.DUPLICATE, `retry of d-${deadlineMs}`);
    }
  } finally {
    await locker.end();
    await b.stop();
  }
});

test("mysql: a Publish stream's batch waiting for its topic's load on a locked catalog ends the stream with UNAVAILABLE nothing written before the call's deadline", async () => {
  const url = await testMysql().database("wait_stream");
  const b = await brokerOn(url);
  const locker = await tableLocker(url);
  try {
    await b.client.publish("other", ["x"]);
    await locker.lock("nb\\_topics");
    const err = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      const call: grpc.ClientDuplexStream<PublishRequest, PublishResponse> = b.client.publisher.publish(
        new grpc.Metadata(),
        {
          deadline: Date.now() + 1000,
        },
      );
      call.on("data", () => {});
      call.on("error", resolve);
      call.on("status", () => resolve(undefined));
      call.write(create(PublishRequestSchema, { open: create(PublishOpenSchema, { topic: "streamed" }) }));
      call.write(
        create(PublishRequestSchema, { messages: [create(MessageSchema, { data: Buffer.from("m") })] }),
      );
    });
    assert.equal(
      err?.code,
      grpc.status.UNAVAILABLE,
      `${err === undefined ? "OK" : grpc.status[err.code]} ${err?.details}`,
    );
    assert.match(err.details, /^batch 1: .*nothing was written/);
    await locker.unlock();
    const r = await b.client.publish("streamed", ["after"]);
    assert.equal(r.firstSeq, 1n, "nothing of the batch was written");
  } finally {
    await locker.end();
    await b.stop();
  }
});

/**
 * Holds the store's reads of message ids (what the dedup index is rebuilt from after a
 * restart) until the returned function is called; the reads then run against the real store.
 */
function holdIdReads(bus: NerveBus): () => void {
  const store = bus.broker.store;
  const read = store.readIds.bind(store);
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  store.readIds = async (...args) => {
    await released;
    return read(...args);
  };
  return release;
}

for (const kind of ["sqlite", "mysql"] as const) {
  test(`${kind}: a SendPack with message ids while the topic's dedup index is rebuilt after a restart gets UNAVAILABLE nothing written before its deadline`, async () => {
    const store = kind === "sqlite" ? sqliteStore("wait-index") : await testMysql().database("wait_index");
    let b = await brokerOn(store);
    // The broker's stop waits for the rebuild: released however the test ends.
    let release = () => {};
    try {
      await b.client.publish("ids", [{ data: Buffer.from("a"), messageId: "a" }]);
      await b.stop();
      b = await brokerOn(store);
      release = holdIdReads(b.bus);
      assertUnavailable(
        await publishEach(b.client, "ids", (deadlineMs) => [
          { data: Buffer.from("b"), messageId: `b-${deadlineMs}` },
        ]),
        NOTHING_WRITTEN,
      );
      release();
      const r = await b.client.publish("ids", [
        { data: Buffer.from("a"), messageId: "a" },
        { data: Buffer.from("c"), messageId: "c" },
      ]);
      assert.equal(r.results[0]?.outcome, MessageResult_Outcome.DUPLICATE, "the index holds a");
      assert.equal(r.results[1]?.seq, 2n, "nothing of the refused packs was written");
    } finally {
      release();
      await b.stop();
    }
  });
}

test("mysql --cluster: a SendPack forwarded to its topic's owner that does not answer (frozen) gets UNAVAILABLE outcome unknown from the broker called, before its deadline", async () => {
  const url = await testMysql().database("wait_forward");
  // Leases outlive the freeze: the topic stays the frozen broker's.
  const lease = { leaseTtlMs: 20_000, leaseRenewMs: 500 };
  const owner = await spawnBroker([
    "--store",
    url,
    "--cluster",
    "--lease-ttl-ms",
    String(lease.leaseTtlMs),
    "--lease-renew-ms",
    String(lease.leaseRenewMs),
  ]);
  const ownerClient = new TestClient(owner.address);
  let frozen = false;
  const relay = await startBroker(url, { cluster: true, ...lease });
  const client = new TestClient(relay.address);
  try {
    await ownerClient.publish("owned", ["a"]);
    // Through the other broker: forwarded to the owner (once it knows the owner).
    await retrying(() => client.publish("owned", ["b"]));
    owner.child.kill("SIGSTOP");
    frozen = true;
    assertUnavailable(
      await publishEach(client, "owned", (deadlineMs) => [
        { data: Buffer.from("f"), messageId: `f-${deadlineMs}` },
      ]),
      OUTCOME_UNKNOWN,
    );
  } finally {
    if (frozen) owner.child.kill("SIGCONT");
    client.close();
    ownerClient.close();
    await relay.stop();
    owner.child.kill("SIGTERM");
    await owner.exited;
  }
});
