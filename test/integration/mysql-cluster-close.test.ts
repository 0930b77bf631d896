import assert from "node:assert/strict";
import { test } from "node:test";
import mysql from "mysql2/promise";
import { loadConfig } from "../../src/config/index.js";
import { type NerveBus, startNerveBus } from "../../src/nervebus.js";
import type { Logger } from "../../src/telemetry/index.js";
import { seqsOf, TestClient, type TestStream } from "../support/broker.js";
import { liveOwners, retrying } from "../support/cluster.js";
import { useTestMysql } from "../support/mariadb.js";

const testMysql = useTestMysql();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An in-process broker of a cluster on `url` whose log lines are kept in `lines`. */
function start(url: string, lines: string[]): Promise<NerveBus> {
  const log: Logger = (level, msg, fields) => lines.push(JSON.stringify({ level, msg, ...fields }));
  return startNerveBus(
    {
      ...loadConfig({}, {}),
      listen: "127.0.0.1:0",
      httpListen: "127.0.0.1:0",
      store: url,
      shutdownGraceMs: 2000,
      cluster: true,
      leaseTtlMs: 1500,
      leaseRenewMs: 200,
    },
    log,
  );
}

// Defect: a broker closing while it took topics over logged "Pool is closed" warnings: each
// taken topic rebuilds its dedup index (and starts its delay scheduler) in the background from
// the store, and the close ended the store's pools under those reads.
test("mysql --cluster: a broker closing while it takes topics over logs no store-closed errors", async () => {
  const url = await testMysql().database("cluster_close");
  // Topics with message ids in their dedup window: taking one over reads the ids back, "big"
  // in several store reads (10 000 ids each).
  const topics = ["big", ...Array.from({ length: 20 }, (_, i) => `t${i}`)];
  const ids = (topic: string, from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ data: Buffer.from("x"), messageId: `${topic}-${from + i}` }));
  const lines: string[] = [];
  for (let round = 0; round < 3; round++) {
    // The owner of every topic: loads them all (claims their leases).
    const owner = await start(url, []);
    const client = new TestClient(owner.address);
    try {
      if (round === 0)
        for (let k = 0; k < 40; k++) await retrying(() => client.publish("big", ids("big", k * 1000, 1000)));
      for (const t of topics) await retrying(() => client.publish(t, ids(t, round * 10, 10)));
    } finally {
      client.close();
    }
    const taker = await start(url, lines);
    const seen = lines.length;
    // The owner stops and releases its leases: the taker adopts every topic at its next
    // heartbeat; it is closed as soon as the first is taken, so the rest load while it closes.
    const stopping = owner.stop();
    for (let i = 0; i < 2000 && !lines.slice(seen).some((l) => l.includes("topic lease taken")); i++)
      await sleep(5);
    assert.ok(
      lines.slice(seen).some((l) => l.includes("topic lease taken")),
      `round ${round}: a topic was taken`,
    );
    await taker.stop();
    await stopping;
  }
  const closedPool = lines.filter((l) => /pool is closed|closed state/i.test(l));
  assert.deepEqual(closedPool, [], "no store work runs after the store closed");
});

/** Polls `check` until it holds (or fails after 20 s, naming `what`). */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await sleep(20);
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** Subscribes to the topic through `client` until a stream stays open (the topic may be moving). */
async function receiving(
  client: TestClient,
  topic: string,
  subscription: string,
  n: number,
): Promise<TestStream> {
  for (;;) {
    const stream = client.receive(topic, subscription, { from: "earliest" });
    await stream.until(() => stream.deliveries.length >= n || stream.ended, 20_000, `${n} deliveries`);
    if (!stream.ended) return stream;
    assert.equal(stream.error?.code, 14, `only UNAVAILABLE is retried: ${stream.error?.details}`);
    await sleep(100);
  }
}

/**
 * Two brokers of a cluster over `databases` (one or two, `--store` with several URLs); A owns
 * topic "handed" with acks not written yet, because the topic's state writes wait on its fence
 * row, locked from a test connection: A drains, so its handover of the topic stays in progress,
 * and A is closed meanwhile. Checks that the close waits for the handover and the next owner
 * gets the topic as A left it.
 */
async function closeDuringHandover(name: string, databases: number): Promise<void> {
  const server = testMysql();
  const urls: string[] = [];
  for (let i = 0; i < databases; i++) urls.push(await server.database(`${name}_${i}`));
  const linesA: string[] = [];
  const A = await start(urls.join(","), linesA);
  const clientA = new TestClient(A.address);
  let B: NerveBus | undefined;
  let clientB: TestClient | undefined;
  let lock: mysql.Connection | undefined;
  try {
    // A is alone in the cluster: the topic is A's (with B there it might fall to B).
    const payloads = Array.from({ length: 10 }, (_, i) => `m${i + 1}`);
    const sent = await retrying(() => clientA.publish("handed", payloads));
    assert.equal(Number(sent.lastSeq), 10);
    const stream = await receiving(clientA, "handed", "s", 10);
    B = await start(urls.join(","), []);
    clientB = new TestClient(B.address);
    let url = "";
    let topic: mysql.RowDataPacket | undefined;
    for (const u of urls) {
      [topic] = await server.query<mysql.RowDataPacket[]>(
        u,
        "SELECT id FROM nb_topics WHERE name = 'handed'",
      );
      url = u;
      if (topic !== undefined) break;
    }
    // The acks below stay unwritten while the lock is held, and so does the handover that
    // writes them.
    lock = await mysql.createConnection({ uri: url });
    await lock.query("START TRANSACTION");
    await lock.query("SELECT * FROM nb_fence WHERE topic_id = ? AND slot = -1 FOR UPDATE", [topic!.id]);
    stream.ack([1, 2, 3, 4, 5]);
    await until("A has the acks", async () => {
      const stats = await clientA.adminCall("getStats", { topic: "handed" });
      return stats.subscriptions.find((x) => x.name === "s")?.floor === 5n;
    });
    await until("the state write waits for the lock", async () => {
      const waiting = await server.query<mysql.RowDataPacket[]>(
        url,
        "SELECT 1 FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'UPDATE nb_fence%'",
      );
      return waiting.length > 0;
    });
    // The drain hands the topic over: its streams end first, then its state is written.
    const draining = A.drain();
    await stream.until(() => stream.ended, 20_000, "the handover ending the stream");
    const stopping = A.stop();
    // Closing has gone as far as it goes while the handover is stuck: it waits for it (fixed),
    // or it left the cluster (the defect).
    await until("A waits for the handover or has left the cluster", async () => {
      if (linesA.some((l) => l.includes("waiting for topic handovers"))) return true;
      const rows = await server.query<mysql.RowDataPacket[]>(
        url,
        "SELECT 1 FROM nb_brokers WHERE address = ?",
        [A.address],
      );
      return rows.length === 0;
    });
    await lock.query("ROLLBACK");
    await stopping;
    await draining;
    // The next owner has the acks the handover wrote: only 6-10 are delivered again.
    const again = await receiving(clientB, "handed", "s", 5);
    assert.deepEqual(seqsOf(again.deliveries).slice(0, 5), [6, 7, 8, 9, 10]);
    const all = await receiving(clientB, "handed", "all", 10);
    assert.deepEqual(
      all.deliveries.map((d) => Buffer.from(d.data).toString()),
      payloads,
      "every confirmed message is there",
    );
    assert.equal((await liveOwners(server, url)).get("handed"), B.address);
    assert.ok(
      linesA.some((l) => l.includes("waiting for topic handovers")),
      "A's close waited for the handover",
    );
    assert.deepEqual(
      linesA.filter((l) => /"level":"(warn|error)"/.test(l)),
      [],
      "nothing failed while closing (no closed pool)",
    );
    again.cancel();
    all.cancel();
  } finally {
    await lock?.end().catch(() => undefined);
    clientA.close();
    clientB?.close();
    await A.stop();
    await B?.stop();
  }
}

// Defect: close() did not wait for a topic handover in progress (drain, rebalancing): the
// broker released the topic's lease and ended its store's pools while the handover still
// wrote the topic's state, so the write failed ("Can't add new command when connection is in
// closed state") and the next owner redelivered what had been acked.
test("mysql --cluster: a broker closed while it hands a topic over waits for the handover: the topic's state is written before its lease is released, and the next owner serves it", () =>
  closeDuringHandover("close_handover", 1));

// The same over two databases: closing detached each database before closing it, so the
// handover's state write found the topic's database gone ("not reachable (closed)").
test("mysql --cluster over two databases: a broker closed while it hands a topic over waits for the handover before it closes any database", () =>
  closeDuringHandover("close_handover_2db", 2));
