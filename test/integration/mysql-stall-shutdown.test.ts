import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { MysqlStore } from "../../src/store/index.js";
import { quietLog, TestClient } from "../support/broker.js";
import { openClientPorts, portOf, startProxy } from "../support/failover.js";
import { useTestMysql } from "../support/mariadb.js";
import { relayReady } from "../support/outbox.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";

// A MySQL server that answers nothing (its host died, its packets are dropped) while the
// broker stops, or after the broker gave it up: the broker must neither hang on it (SIGTERM
// exits within --shutdown-grace-ms) nor keep its connections open for ever. TCP keeps an
// unanswered connection for a quarter of an hour, and a polite close (COM_QUIT, then waiting
// for the server to hang up) waits for an answer that never comes.

const testMysql = useTestMysql();

/** Large enough that a few statements in flight leave idle connections in the pool. */
const POOL = 6;
const GRACE_MS = 2000;
/**
 * What a process needs past its grace to end: the last log lines, closing its ports, exiting.
 * Generous for a loaded machine; the defect is a broker that never exits.
 */
const EXIT_SLACK_MS = 5000;
/** How long a test waits for the exit before it calls the broker hung. */
const HUNG_MS = 30_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Frozen {
  broker: BrokerProcess;
  proxy: Awaited<ReturnType<typeof startProxy>>;
  client: TestClient;
  /** The publish sent after the freeze: its status when it ended. */
  during: Promise<string>;
  /** Connections the broker had open when the server froze (local ports). */
  openAtFreeze: Set<number>;
}

/**
 * A broker on database `name` reached through a proxy, with every pool connection opened and a
 * subscription's acks pending, whose server then freezes while a publish waits on it.
 */
async function freezeUnderBroker(name: string, flags: string[]): Promise<Frozen> {
  const url = new URL(await testMysql().database(name));
  const proxy = await startProxy(portOf(url.toString()));
  url.port = String(proxy.port);
  const broker = await spawnBroker([
    "--store",
    url.toString(),
    "--mysql-pool-size",
    String(POOL),
    "--shutdown-grace-ms",
    String(GRACE_MS),
    "--confirm-timeout-ms",
    "60000",
    ...flags,
  ]);
  const client = new TestClient(broker.address);
  await client.publish("orders", ["m1", "m2", "m3"]);
  const sub = client.receive("orders", "billing");
  await sub.until(() => sub.deliveries.length >= 3);
  for (let round = 0; round < 3; round++)
    await Promise.all(Array.from({ length: 2 * POOL }, (_, i) => client.publish(`load${i}`, ["x"])));
  // The writes after a commit (watermarks, 100 ms later) end first: the pool's connections are
  // idle when the server freezes, but for what the freeze itself catches.
  await sleep(1000);

  proxy.freeze();
  const openAtFreeze = openClientPorts(proxy.port);
  const during = client.publish("orders", ["m4"], 60_000).then(
    () => "confirmed",
    (err: grpc.ServiceError) => `${status[err.code]}: ${err.details}`,
  );
  // Subscription state to persist at the close, which the frozen server never takes.
  sub.ack([1, 2, 3]);
  await sleep(300);
  return { broker, proxy, client, during, openAtFreeze };
}

/** SIGTERM; the exit code and how long the exit took, or "hung" after HUNG_MS (then SIGKILL). */
async function terminate(broker: BrokerProcess): Promise<{ code: number | string; ms: number }> {
  const t0 = performance.now();
  broker.child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    broker.exited,
    new Promise<string>((r) => {
      timer = setTimeout(() => r("hung"), HUNG_MS);
    }),
  ]);
  clearTimeout(timer);
  const ms = Math.round(performance.now() - t0);
  if (code === "hung") {
    broker.child.kill("SIGKILL");
    await broker.exited;
  }
  return { code, ms };
}

/** Ends the broker (if still running), the client and the proxy. */
async function cleanUp(f: Frozen): Promise<void> {
  f.client.close();
  if (f.broker.child.exitCode === null && f.broker.child.signalCode === null) {
    f.broker.child.kill("SIGKILL");
    await f.broker.exited;
  }
  f.proxy.server.close();
  f.proxy.cutAll();
}

/** Polls until the log holds `msg`; fails after 20 s. */
async function untilLogged(broker: BrokerProcess, msg: string): Promise<void> {
  for (let i = 0; i < 200 && !broker.stderr().includes(msg); i++) await sleep(100);
  assert.ok(broker.stderr().includes(msg), `the broker logged "${msg}":\n${broker.stderr().slice(-2000)}`);
}

/** The stop of a broker whose server froze: within the grace, exit 0, the waiting publish UNAVAILABLE. */
async function assertStopsInGrace(f: Frozen): Promise<void> {
  const { code, ms } = await terminate(f.broker);
  assert.notEqual(
    code,
    "hung",
    `the broker did not exit within ${HUNG_MS} ms of SIGTERM (grace ${GRACE_MS} ms):\n${f.broker.stderr().slice(-2000)}`,
  );
  assert.equal(code, 0, f.broker.stderr().slice(-2000));
  assert.ok(ms <= GRACE_MS + EXIT_SLACK_MS, `exited ${ms} ms after SIGTERM, grace ${GRACE_MS} ms`);
  console.log(`exited ${ms} ms after SIGTERM (grace ${GRACE_MS} ms)`);
  const during = await f.during;
  assert.match(during, /^UNAVAILABLE/, `the publish waiting on the frozen server: ${during}`);
}

const FROZEN_LINE = "the MySQL server answers nothing; cutting its connections and reconnecting";

test("mysql: SIGTERM while the server answers nothing (no stall noticed yet) exits within the grace", {
  timeout: 120_000,
}, async () => {
  // A stall timeout longer than the test: nothing but the shutdown itself may give the server up.
  const f = await freezeUnderBroker("stall_stop", ["--mysql-stall-timeout-ms", "600000"]);
  try {
    assert.ok(!f.broker.stderr().includes(FROZEN_LINE), "no stall was noticed before the SIGTERM");
    await assertStopsInGrace(f);
  } finally {
    await cleanUp(f);
  }
});

test("mysql: SIGTERM after a stall was noticed (a retired pool's connections to the frozen server) exits within the grace", {
  timeout: 120_000,
}, async () => {
  const f = await freezeUnderBroker("stall_stop_recycled", ["--mysql-stall-timeout-ms", "1000"]);
  try {
    await untilLogged(f.broker, FROZEN_LINE);
    await assertStopsInGrace(f);
  } finally {
    await cleanUp(f);
  }
});

test("mysql --cluster: SIGTERM while the server answers nothing exits within the grace (topic and broker leases released or given up)", {
  timeout: 120_000,
}, async () => {
  const f = await freezeUnderBroker("stall_stop_cluster", [
    "--cluster",
    "--mysql-stall-timeout-ms",
    "600000",
  ]);
  try {
    await assertStopsInGrace(f);
  } finally {
    await cleanUp(f);
  }
});

test("mysql: the connections of a pool given up for a stall are closed, idle ones too, although the server never answers", {
  timeout: 120_000,
}, async () => {
  const STALL_MS = 1000;
  const f = await freezeUnderBroker("stall_leak", ["--mysql-stall-timeout-ms", String(STALL_MS)]);
  try {
    assert.ok(f.openAtFreeze.size >= POOL, `the pool's connections were open: ${[...f.openAtFreeze]}`);
    await untilLogged(f.broker, FROZEN_LINE);
    // The statements in flight are cut at the stall; the idle connections of the retired pool
    // must go within a bounded time too (the broker's bound is a stall timeout or so).
    const giveUpAt = performance.now() + 20 * STALL_MS;
    let left = [...f.openAtFreeze];
    while (performance.now() < giveUpAt) {
      const open = openClientPorts(f.proxy.port);
      left = [...f.openAtFreeze].filter((p) => open.has(p));
      if (left.length === 0) break;
      await sleep(100);
    }
    assert.deepEqual(left, [], `connections open at the freeze still open ${20 * STALL_MS} ms after it`);
  } finally {
    await cleanUp(f);
  }
});

/** A broker on a SQLite store of its own in `dir` relaying the outbox at `url`. */
function spawnRelay(dir: string, name: string, url: string): Promise<BrokerProcess> {
  return spawnBroker([
    "--store",
    `sqlite:${join(dir, `${name}.db`)}`,
    "--outbox",
    url,
    "--outbox-poll-ms",
    "50",
    "--shutdown-grace-ms",
    String(GRACE_MS),
    "--mysql-stall-timeout-ms",
    "600000",
  ]);
}

/** SIGTERM: the broker exits 0 within its grace. */
async function assertExitsInGrace(broker: BrokerProcess): Promise<void> {
  const { code, ms } = await terminate(broker);
  assert.notEqual(
    code,
    "hung",
    `the broker did not exit within ${HUNG_MS} ms of SIGTERM (grace ${GRACE_MS} ms):\n${broker.stderr().slice(-2000)}`,
  );
  assert.equal(code, 0, broker.stderr().slice(-2000));
  assert.ok(ms <= GRACE_MS + EXIT_SLACK_MS, `exited ${ms} ms after SIGTERM, grace ${GRACE_MS} ms`);
}

/** Kills the brokers still running, closes the proxy, removes `dir`. */
async function cleanUpRelays(brokers: BrokerProcess[], proxy: Frozen["proxy"], dir: string): Promise<void> {
  for (const b of brokers) {
    if (b.child.exitCode !== null || b.child.signalCode !== null) continue;
    b.child.kill("SIGKILL");
    await b.exited;
  }
  proxy.server.close();
  proxy.cutAll();
  rmSync(dir, { recursive: true, force: true });
}

test("outbox: SIGTERM while the outbox's server answers nothing exits within the grace", {
  timeout: 120_000,
}, async () => {
  const url = new URL(await testMysql().database("stall_stop_outbox"));
  const proxy = await startProxy(portOf(url.toString()));
  url.port = String(proxy.port);
  const dir = mkdtempSync(join(tmpdir(), "nb-stall-outbox-"));
  const broker = await spawnRelay(dir, "relay", url.toString());
  try {
    await relayReady(testMysql(), url.toString());
    await sleep(500);
    // The relay's next poll, and its lock's connection, wait on a server that answers nothing.
    proxy.freeze();
    await sleep(500);
    await assertExitsInGrace(broker);
  } finally {
    await cleanUpRelays([broker], proxy, dir);
  }
});

test("outbox: SIGTERM of a relay waiting for the outbox's lock while that server answers nothing exits within the grace", {
  timeout: 120_000,
}, async () => {
  const url = new URL(await testMysql().database("stall_stop_outbox_wait"));
  const proxy = await startProxy(portOf(url.toString()));
  url.port = String(proxy.port);
  const dir = mkdtempSync(join(tmpdir(), "nb-stall-outbox-wait-"));
  const holder = await spawnRelay(dir, "holder", url.toString());
  const brokers = [holder];
  try {
    await relayReady(testMysql(), url.toString());
    const waiter = await spawnRelay(dir, "waiter", url.toString());
    brokers.push(waiter);
    await untilLogged(waiter, "another relay holds this outbox; waiting");
    // The waiter's next GET_LOCK goes to a server that answers nothing.
    proxy.freeze();
    await sleep(1500);
    await assertExitsInGrace(waiter);
  } finally {
    await cleanUpRelays(brokers, proxy, dir);
  }
});

test("mysql: a store closed without a broker (a tool's, a failed start's) while its server answers nothing ends within the stall timeout, its connections closed", {
  timeout: 60_000,
}, async () => {
  const STALL_MS = 1000;
  const url = new URL(await testMysql().database("stall_store_close"));
  const proxy = await startProxy(portOf(url.toString()));
  url.port = String(proxy.port);
  const store = await MysqlStore.open({
    url: url.toString(),
    poolSize: 4,
    stallMs: STALL_MS,
    allowUnsafeDurability: false,
    log: quietLog,
  });
  try {
    await Promise.all(Array.from({ length: 4 }, () => store.ping()));
    proxy.freeze();
    const open = openClientPorts(proxy.port);
    assert.ok(open.size >= 2, `the store's connections were open: ${[...open]}`);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      store.close().then(() => "closed"),
      new Promise<string>((r) => {
        timer = setTimeout(() => r("hung"), 20 * STALL_MS);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(outcome, "closed", `store.close() still waiting ${20 * STALL_MS} ms after it began`);
    const left = [...open].filter((p) => openClientPorts(proxy.port).has(p));
    assert.deepEqual(left, [], "the store's connections are closed once close() returns");
  } finally {
    proxy.server.close();
    proxy.cutAll();
  }
});
