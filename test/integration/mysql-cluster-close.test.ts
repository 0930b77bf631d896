import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../src/config/index.js";
import { type NerveBus, startNerveBus } from "../../src/nervebus.js";
import type { Logger } from "../../src/telemetry/index.js";
import { TestClient } from "../support/broker.js";
import { retrying } from "../support/cluster.js";
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
