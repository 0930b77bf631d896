import assert from "node:assert/strict";
import { test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import type { NerveBus } from "../../src/nervebus.js";
import { startBroker, TestClient } from "../support/broker.js";
import { type TestMysql, useTestMysql } from "../support/mariadb.js";
import { spawnBroker } from "../support/process.js";
import { storedRows } from "../support/stored-rows.js";

const testMysql = useTestMysql();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every pack a publisher loop got an answer for. */
interface Ledger {
  /** seq → payload of every confirmed message. */
  readonly confirmed: Map<number, string>[];
  readonly codes: Map<number, number>;
  /** Confirms answered after `mark` was set (performance.now()). */
  okAfterMark: number;
  mark: number;
}

/**
 * Publishes packs of `size` messages `${prefix}-${n}` to `topic` from `loops` concurrent loops
 * until `stop()`; records what each confirm said and every error code.
 */
function publishLoops(address: string, topic: string, prefix: string, loops = 4, size = 20) {
  const client = new TestClient(address);
  const ledger: Ledger = { confirmed: [], codes: new Map(), okAfterMark: 0, mark: Number.POSITIVE_INFINITY };
  let running = true;
  let n = 0;
  const run = async () => {
    while (running) {
      const payloads = Array.from({ length: size }, () => `${prefix}-${n++}`);
      try {
        const res = await client.publish(topic, payloads, 2000);
        const m = new Map<number, string>();
        for (const [i, p] of payloads.entries()) m.set(Number(res.firstSeq) + i, p);
        ledger.confirmed.push(m);
        if (performance.now() > ledger.mark) ledger.okAfterMark++;
      } catch (err) {
        const code = (err as grpc.ServiceError).code;
        ledger.codes.set(code, (ledger.codes.get(code) ?? 0) + 1);
        await sleep(20);
      }
    }
  };
  const done = Promise.all(Array.from({ length: loops }, run));
  return {
    ledger,
    async stop() {
      running = false;
      await done;
      client.close();
    },
  };
}

/**
 * Every confirmed message of every ledger is stored at its confirmed seq, and no seq was
 * confirmed for two different messages. Returns how many confirmed messages were checked.
 */
function reconcile(stored: Map<number, string>, ledgers: Ledger[]): number {
  const claimed = new Map<number, string>();
  let checked = 0;
  for (const ledger of ledgers) {
    for (const pack of ledger.confirmed) {
      for (const [seq, payload] of pack) {
        const other = claimed.get(seq);
        assert.ok(other === undefined, `seq ${seq} was confirmed twice: ${other} and ${payload}`);
        claimed.set(seq, payload);
        assert.equal(stored.get(seq), payload, `confirmed message ${payload} is stored at seq ${seq}`);
        checked++;
      }
    }
  }
  return checked;
}

/** Kills every connection of `user` to the server, again and again, until stopped. */
function killConnectionsOf(server: TestMysql, adminUrl: string, user: string) {
  let running = true;
  const loop = (async () => {
    while (running) {
      const ids = await server.query<mysql.RowDataPacket[]>(
        adminUrl,
        "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
        [user],
      );
      for (const { id } of ids)
        await server.query(adminUrl, `KILL CONNECTION ${Number(id)}`).catch(() => undefined);
      await sleep(25);
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

test("mysql: a broker whose connections are cut while a second one takes over confirms nothing the second overwrites", async (t) => {
  const server = testMysql();
  if (server.asSecondUser === undefined) {
    t.skip("needs a second MySQL user (only on the test's own MariaDB)");
    return;
  }
  const urlA = await server.database("fence_cut");
  const urlB = server.asSecondUser(urlA);
  // A long renewal interval: A learns of the takeover from its renewal only seconds later, so
  // until then only the fence in its write transactions stands between its writes and B's seqs.
  const lease = { leaseTtlMs: 9000, leaseRenewMs: 3000 };
  const a = await startBroker(urlA, { ...lease, confirmTimeoutMs: 1500 });
  let b: NerveBus | undefined;
  const pubA = publishLoops(a.address, "orders", "A");
  try {
    await sleep(500);
    // A's connections are cut from the server side (a proxy restart, KILL CONNECTION) while A
    // runs; B starts on the same database 1 s later and takes it over.
    const stopKilling = killConnectionsOf(server, urlB, "nervebus");
    await sleep(1000);
    b = await startBroker(urlB, lease);
    await stopKilling();
    // Both now take publishes: A's pool reconnects at once and its writers retry.
    const pubB = publishLoops(b.address, "orders", "B");
    pubA.ledger.mark = performance.now() + 100;
    await sleep(3500);
    await pubB.stop();
    await pubA.stop();

    assert.ok(a.broker.fenced, "A noticed that it lost the store");
    const gauge = async (bus: NerveBus, name: string) => {
      const text = await (await fetch(`http://${bus.httpAddress}/metrics`)).text();
      return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1]);
    };
    assert.equal(
      await gauge(a, "nervebus_store_owner_valid"),
      0,
      "A's metrics say it does not own the store",
    );
    assert.equal(await gauge(b, "nervebus_store_owner_valid"), 1);
    assert.equal(await gauge(b, "nervebus_store_owner_epoch"), 2, "B took over at epoch 2");
    assert.match(a.broker.fenced.message, /no longer owns the store/);
    assert.ok(pubB.ledger.confirmed.length > 0, "B confirmed publishes");
    assert.ok(pubA.ledger.confirmed.length > 0, "A confirmed publishes before it was cut off");
    assert.equal(pubA.ledger.okAfterMark, 0, "A confirmed nothing once B had taken over");
    assert.ok((pubA.ledger.codes.get(grpc.status.UNAVAILABLE) ?? 0) > 0, "A's refusals are UNAVAILABLE");
    assert.deepEqual(
      [...pubA.ledger.codes.keys()].filter((c) => c !== grpc.status.UNAVAILABLE),
      [],
      "A answered only OK or UNAVAILABLE",
    );
    const checked = reconcile(await storedRows(server, urlB, "orders"), [pubA.ledger, pubB.ledger]);
    assert.ok(checked > 0);
  } finally {
    await pubA.stop().catch(() => undefined);
    await b?.stop();
    await a.stop();
  }
});

test("mysql: a frozen owner whose lease expired confirms nothing after it wakes (SIGSTOP, wait_timeout)", async (t) => {
  const server = testMysql();
  if (server.asSecondUser === undefined) {
    t.skip("needs the test's own MariaDB (sets a global wait_timeout)");
    return;
  }
  const urlA = await server.database("fence_frozen");
  const urlB = server.asSecondUser(urlA);
  // The server drops connections idle for 3 s: A's, while A is frozen.
  await server.query(urlB, "SET GLOBAL wait_timeout = 3");
  const a = await spawnBroker([
    "--store",
    urlA,
    "--lease-ttl-ms",
    "2000",
    "--lease-renew-ms",
    "500",
    "--confirm-timeout-ms",
    "30000",
  ]);
  let b: NerveBus | undefined;
  // Deadlines long enough that packs in flight at the freeze are still waiting at the wake.
  const pubA = publishLoops(a.address, "orders", "A", 4, 20);
  try {
    await sleep(700);
    a.child.kill("SIGSTOP");
    const frozenAt = performance.now();
    await sleep(4500);
    b = await startBroker(urlB, { leaseTtlMs: 2000, leaseRenewMs: 500 });
    const pubB = publishLoops(b.address, "orders", "B");
    await sleep(1000);
    pubA.ledger.mark = performance.now();
    a.child.kill("SIGCONT");
    const exit = await Promise.race([a.exited, sleep(15_000).then(() => "still running")]);
    await pubB.stop();
    await pubA.stop();
    assert.equal(exit, 3, `A exits with code 3 once it finds another owner:\n${a.stderr().slice(-2000)}`);
    assert.ok(performance.now() - frozenAt > 5000);
    const stored = await storedRows(server, urlB, "orders");
    const checked = reconcile(stored, [pubA.ledger, pubB.ledger]);
    assert.ok(checked > 0);
    assert.ok(pubB.ledger.confirmed.length > 0, "B confirmed publishes");
    // What A confirmed after waking is only what it had committed before it froze: all of it is
    // in the table at its seq (checked above), below B's first seq.
    const firstOfB = Math.min(...pubB.ledger.confirmed.flatMap((m) => [...m.keys()]));
    for (const pack of pubA.ledger.confirmed)
      for (const seq of pack.keys())
        assert.ok(seq < firstOfB, `A's seq ${seq} is below B's first ${firstOfB}`);
  } finally {
    await pubA.stop().catch(() => undefined);
    a.child.kill("SIGCONT");
    a.child.kill("SIGKILL");
    await b?.stop();
    await server.query(urlB, "SET GLOBAL wait_timeout = 28800");
  }
});
