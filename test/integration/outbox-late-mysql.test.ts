import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import mysql from "mysql2/promise";
import { writeOutbox } from "../../clients/ts/src/outbox.js";
import { startBroker, TestClient } from "../support/broker.js";
import { useTestMysql } from "../support/mariadb.js";
import { commitOne, relayedThrough } from "../support/outbox.js";
import { prng } from "../support/prng.js";
import { spawnBroker } from "../support/process.js";

/*
 * The outbox relay's gap rule under late commits (issue 16, item 1): ids are handed out at
 * INSERT, so a transaction that waits between its INSERT and its COMMIT becomes visible long
 * after higher ids did, often after the relay passed its gap (and, across a broker restart,
 * after the relay forgot which gaps it passed). Every committed row must still be delivered
 * exactly once, and leave the outbox.
 */

const db = useTestMysql();
const GAP_WAIT_MS = 50;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function relayReady(url: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await db().query(url, "SELECT 1 FROM nb_outbox_relay");
      return;
    } catch (err) {
      if (i > 200) throw err;
      await sleep(50);
    }
  }
}

/** How long a transaction holds its rows uncommitted: mostly short, often past the gap wait, sometimes far past it. */
function holdMs(random: () => number): number {
  const r = random();
  if (r < 0.5) return random() * 5;
  if (r < 0.8) return GAP_WAIT_MS * (1 + random() * 4);
  return GAP_WAIT_MS * (6 + random() * 20);
}

/**
 * One application connection's transactions on `topic` until `more()` says stop: 1–3 rows each,
 * half with an ordering key, held uncommitted per holdMs, 15% rolled back. Adds the committed
 * payloads to `committed`.
 */
async function writeLate(
  url: string,
  topic: string,
  name: string,
  random: () => number,
  more: (i: number) => boolean,
  committed: Set<string>,
): Promise<void> {
  const conn = await mysql.createConnection({ uri: url });
  try {
    for (let i = 0; more(i); i++) {
      const payloads = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, j) => `${name}-${i}-${j}`);
      const key = random() < 0.5 ? `key-${Math.floor(random() * 8)}` : "";
      const hold = holdMs(random);
      const rollback = random() < 0.15;
      await conn.beginTransaction();
      try {
        for (const data of payloads) await writeOutbox(conn, topic, { data, orderingKey: key });
      } catch (err) {
        // A new key's row can deadlock its first writers (InnoDB picks a victim): an
        // application retries; here it just counts as rolled back.
        if ((err as { code?: string }).code !== "ER_LOCK_DEADLOCK") throw err;
        await conn.rollback();
        continue;
      }
      await sleep(hold);
      if (rollback) {
        await conn.rollback();
        continue;
      }
      await conn.commit();
      for (const p of payloads) committed.add(p);
    }
  } finally {
    await conn.end();
  }
}

/** Holds one row uncommitted for `ms`, then commits it. */
async function holdOne(
  url: string,
  topic: string,
  data: string,
  ms: number,
  committed: Set<string>,
): Promise<void> {
  const conn = await mysql.createConnection({ uri: url });
  try {
    await conn.beginTransaction();
    await writeOutbox(conn, topic, { data });
    await sleep(ms);
    await conn.commit();
    committed.add(data);
  } finally {
    await conn.end();
  }
}

/**
 * Reads `topic` from the start until every `committed` payload arrived (or 60 s passed), then
 * asserts each arrived once and nothing else did, and that the outbox is empty.
 */
async function checkDelivered(
  client: TestClient,
  url: string,
  topic: string,
  committed: Set<string>,
): Promise<void> {
  const stream = client.receive(topic, "check", { from: "earliest", maxMessages: 5000 });
  try {
    const seen = new Map<string, number>();
    let taken = 0;
    const take = () => {
      const fresh = stream.deliveries.slice(taken);
      stream.ack(fresh.map((d) => d.seq));
      taken = stream.deliveries.length;
      for (const d of fresh) {
        const p = Buffer.from(d.data).toString();
        seen.set(p, (seen.get(p) ?? 0) + 1);
      }
    };
    const missing = () => [...committed].filter((p) => !seen.has(p));
    await stream
      .until(
        () => {
          take();
          return missing().length === 0;
        },
        60_000,
        "every committed row",
      )
      .catch(() => undefined);
    const [left] = await db().query<{ n: number; lo: number | null }[]>(
      url,
      "SELECT COUNT(*) AS n, MIN(id) AS lo FROM nb_outbox",
    );
    assert.deepEqual(
      missing(),
      [],
      `committed rows never delivered (outbox rows left ${left!.n}, lowest id ${left!.lo})`,
    );
    // Anything relayed twice would arrive right behind; give it a moment.
    await sleep(500);
    take();
    const wrong = [...seen].filter(([p, n]) => n !== 1 || !committed.has(p));
    assert.deepEqual(wrong, [], "each committed row once, nothing else");
    let rows = Number(left!.n);
    for (let i = 0; i < 100 && rows > 0; i++) {
      await sleep(50);
      rows = Number((await db().query<{ n: number }[]>(url, "SELECT COUNT(*) AS n FROM nb_outbox"))[0]!.n);
    }
    assert.equal(rows, 0, "relayed rows are deleted from the outbox");
  } finally {
    stream.cancel();
  }
}

test("outbox: rows committed long after their ids were passed are each delivered once, and leave the outbox", {
  timeout: 180_000,
}, async () => {
  const store = await db().database("outbox_late_store");
  const app = await db().database("outbox_late_app");
  // Small rounds, so scans are cut by the row limit too.
  const bus = await startBroker(store, { outbox: app, outboxGapWaitMs: GAP_WAIT_MS, outboxBatchRows: 32 });
  const client = new TestClient(bus.address);
  try {
    await relayReady(app);
    const committed = new Set<string>();
    const random = prng(1616);
    await Promise.all([
      // Held across a full sweep of the relay (5 s) and more.
      holdOne(app, "late", "long-0", 1500, committed),
      holdOne(app, "late", "long-1", 6000, committed),
      ...Array.from({ length: 16 }, (_, w) =>
        writeLate(app, "late", `w${w}`, random, (i) => i < 40, committed),
      ),
    ]);
    assert.ok(committed.size > 500, `the application committed enough (${committed.size})`);
    await checkDelivered(client, app, "late", committed);
    assert.ok(bus.relays[0]!.passed > 0, "the relay passed gaps (rows did commit late)");
  } finally {
    client.close();
    await bus.stop();
  }
});

test("outbox: late commits across SIGKILLs of the broker are each delivered once", {
  timeout: 240_000,
}, async () => {
  const store = await db().database("outbox_late_kill_store");
  const app = await db().database("outbox_late_kill_app");
  // Dedup off, so a row published twice shows (see the SIGKILL test in outbox-mysql.test.ts).
  const flags = [
    "--store",
    store,
    "--outbox",
    app,
    "--outbox-gap-wait-ms",
    String(GAP_WAIT_MS),
    "--outbox-batch-rows",
    "32",
    "--dedup-window-ms",
    "0",
  ];
  let broker = await spawnBroker(flags);
  await relayReady(app);
  const committed = new Set<string>();
  const random = prng(2616);
  let stop = false;
  const writers = [
    holdOne(app, "late-kill", "long-0", 3000, committed),
    holdOne(app, "late-kill", "long-1", 7000, committed),
    ...Array.from({ length: 8 }, (_, w) =>
      writeLate(app, "late-kill", `w${w}`, random, () => !stop, committed),
    ),
  ];
  try {
    for (let kill = 0; kill < 8; kill++) {
      await sleep(300 + random() * 700);
      broker.child.kill("SIGKILL");
      await broker.exited;
      broker = await spawnBroker(flags);
    }
  } finally {
    stop = true;
    await Promise.all(writers);
  }
  const client = new TestClient(broker.address);
  try {
    assert.ok(committed.size > 200, `the application committed enough (${committed.size})`);
    await checkDelivered(client, app, "late-kill", committed);
  } finally {
    client.close();
    broker.child.kill("SIGTERM");
    await broker.exited;
  }
});

test("outbox: an application server whose sessions start with autocommit off does not hide later commits from the relay", {
  timeout: 120_000,
}, async () => {
  const app = await db().database("outbox_autocommit_app");
  // The broker's own store on SQLite: only the application's server has autocommit off here.
  const dir = mkdtempSync(join(tmpdir(), "nb-outbox-autocommit-"));
  await db().query(app, "SET GLOBAL autocommit = 0");
  try {
    const bus = await startBroker(`sqlite:${join(dir, "store.db")}`, {
      outbox: app,
      outboxGapWaitMs: GAP_WAIT_MS,
    });
    const client = new TestClient(bus.address);
    try {
      await relayReady(app);
      // Let the relay poll an empty outbox for a while. Before the fix, each of its SELECTs
      // opened a transaction whose snapshot every later poll on that connection reused: none of
      // the rows below became visible to it.
      await sleep(500);
      const committed = new Set<string>();
      const random = prng(3616);
      await Promise.all(
        Array.from({ length: 4 }, (_, w) =>
          writeLate(app, "autocommit", `w${w}`, random, (i) => i < 10, committed),
        ),
      );
      assert.ok(committed.size > 0);
      await checkDelivered(client, app, "autocommit", committed);
    } finally {
      client.close();
      await bus.stop();
    }
  } finally {
    await db().query(app, "SET GLOBAL autocommit = 1");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("outbox: a transaction open across a broker restart, in a gap the old relay passed, still goes before its key's next one", {
  timeout: 120_000,
}, async () => {
  // The relay passes the gap of an open transaction (key k) and moves on; the broker restarts;
  // the new relay's first round sweeps below its cursor and finds nothing there yet. Then the
  // transaction commits, and right after it the key's next one. Before the relay kept its passed
  // gaps in the outbox database, the new relay did not know that gap: it published the key's
  // next row at once and the late one at its next full sweep (5 s later), out of key order.
  const store = await db().database("outbox_gap_restart_store");
  const app = await db().database("outbox_gap_restart_app");
  const options = { outbox: app, outboxGapWaitMs: GAP_WAIT_MS };
  let bus = await startBroker(store, options);
  const held = await mysql.createConnection({ uri: app });
  const other = await mysql.createConnection({ uri: app });
  let client: TestClient | undefined;
  try {
    await relayReady(app);
    await held.beginTransaction();
    await writeOutbox(held, "gap-restart", { data: "k:1", orderingKey: "k" });
    // Above the open row: the relay waits GAP_WAIT_MS for it, then passes its gap.
    await relayedThrough(db(), app, await commitOne(other, "gap-restart", "x:1", "x"));
    assert.equal(bus.relays[0]!.passed, 1, "the relay passed the open transaction's id");
    await bus.stop();
    bus = await startBroker(store, options);
    // Once this row is relayed, the new relay has made its first round, a full sweep.
    await relayedThrough(db(), app, await commitOne(other, "gap-restart", "y:1", "y"));
    await held.commit();
    await commitOne(other, "gap-restart", "k:2", "k");
    client = new TestClient(bus.address);
    const stream = client.receive("gap-restart", "check", { from: "earliest" });
    await stream.until(() => stream.deliveries.length >= 4, 30_000, "every row");
    const texts = stream.deliveries.map((d) => Buffer.from(d.data).toString());
    stream.cancel();
    assert.deepEqual(
      texts.filter((t) => t.startsWith("k:")),
      ["k:1", "k:2"],
      `key k in commit order (log: ${texts.join(", ")})`,
    );
  } finally {
    client?.close();
    await held.end().catch(() => undefined);
    await other.end();
    await bus.stop();
  }
});
