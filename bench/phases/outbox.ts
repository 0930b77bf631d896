import mysql from "mysql2/promise";
import { writeOutbox } from "../../clients/ts/src/outbox.js";
import { TestClient } from "../../test/support/broker.js";
import { percentiles, progress, sleep } from "../lib/stats.js";
import { runE2E } from "../scenarios.js";
import type { OutboxResult } from "./outbox-result.js";
import type { PhaseContext } from "./phase-context.js";

const BYTES = 100;

/**
 * Phase "outbox" (MySQL only, `--only outbox`): the transactional outbox relay (issue 16). The
 * application's database is a second database on the same MariaDB; the broker runs with
 * `--outbox` naming it. Targets: throughput ≥ 50k msg/s, latency p99 ≤ 50 ms.
 */
export async function outboxPhase(ctx: PhaseContext): Promise<void> {
  if (ctx.mysql === undefined) return;
  const { opt } = ctx;
  const rows = opt.num("outbox-rows");
  const rate = opt.num("outbox-rate");
  const seconds = opt.num("outbox-duration");
  await ctx.phase("outbox", seconds + 40, async () => {
    const app = await ctx.freshStore("outbox_app");
    const b = await ctx.startBroker(await ctx.freshStore("outbox"), { shards: 4, outbox: app });
    const client = new TestClient(b.address);
    const conns = await Promise.all(Array.from({ length: 4 }, () => mysql.createConnection({ uri: app })));
    try {
      await relayReady(conns[0]!);
      const throughput = {
        ...(await measureThroughput(client, conns[0]!, rows)),
        baselineMsgPerSec: await measureBaseline(client, rows),
      };
      const latency = {
        ...(await measureLatency(client, conns, rate, seconds * 1000)),
        sendPackMs: (
          await runE2E(
            b.address,
            "outbox-e2e-baseline",
            {
              rate,
              durationMs: seconds * 1000,
              warmupMs: 1000,
              tickMs: opt.num("e2e-tick"),
              bytes: BYTES,
              window: 10_000,
            },
            `[${ctx.store}] outbox baseline e2e ${rate} msg/s`,
            ctx.pidsOf(b),
          )
        ).latencyMs,
      };
      const result: OutboxResult = { throughput, latency };
      ctx.results.outbox = result;
      progress.done(
        `[${ctx.store}] outbox: ${Math.round(throughput.msgPerSec)} msg/s relayed (SendPack ${Math.round(throughput.baselineMsgPerSec)}), p99 ${latency.ms.p99.toFixed(1)} ms (SendPack ${latency.sendPackMs.p99.toFixed(1)}) at ${rate} msg/s`,
      );
      process.stdout.write(`${JSON.stringify({ outbox: result })}\n`);
    } finally {
      client.close();
      await Promise.all(conns.map((c) => c.end()));
      await ctx.stopBroker(b, "outbox");
    }
  });
}

async function relayReady(conn: mysql.Connection): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await conn.query("SELECT 1 FROM nb_outbox_relay");
      return;
    } catch (err) {
      if (i > 200) throw err;
      await sleep(50);
    }
  }
}

/** Commits `rows` outbox rows in one transaction and times the relay until a subscriber has the last. */
async function measureThroughput(
  client: TestClient,
  conn: mysql.Connection,
  rows: number,
): Promise<Omit<OutboxResult["throughput"], "baselineMsgPerSec">> {
  const data = Buffer.alloc(BYTES, 120);
  await conn.beginTransaction();
  for (let i = 0; i < rows; i += 5000) {
    const values = Array.from({ length: Math.min(5000, rows - i) }, () => [
      "outbox-throughput",
      "",
      null,
      data,
    ]);
    await conn.query("INSERT INTO nb_outbox (topic, ordering_key, attributes, data) VALUES ?", [values]);
  }
  const stream = client.receive("outbox-throughput", "bench", { from: "earliest", maxMessages: 50_000 });
  const committed = performance.now();
  await conn.commit();
  let count = 0;
  await stream.until(
    () => {
      // Deliveries are acked and dropped: the count is what matters.
      const fresh = stream.deliveries.splice(0);
      stream.ack(fresh.map((d) => d.seq));
      count += fresh.length;
      return count >= rows;
    },
    300_000,
    "relayed rows",
  );
  const s = (performance.now() - committed) / 1000;
  stream.cancel();
  return { rows, bytes: BYTES, seconds: s, msgPerSec: rows / s };
}

/** The same rows through SendPack, one pack of 10,000 at a time: msg/s until the last confirm. */
async function measureBaseline(client: TestClient, rows: number): Promise<number> {
  const data = Buffer.alloc(BYTES, 120);
  const started = performance.now();
  for (let i = 0; i < rows; i += 10_000) {
    const n = Math.min(10_000, rows - i);
    await client.publish(
      "outbox-baseline",
      Array.from({ length: n }, (_, j) => ({ data, messageId: `baseline/${i + j}` })),
    );
  }
  return rows / ((performance.now() - started) / 1000);
}
/** Single-row transactions at `rate` msg/s over the connections; latency COMMIT sent → delivered. */
async function measureLatency(
  client: TestClient,
  conns: mysql.Connection[],
  rate: number,
  durationMs: number,
): Promise<Omit<OutboxResult["latency"], "sendPackMs">> {
  const committedAt = new Map<string, number>();
  const latencies: number[] = [];
  const commits: number[] = [];
  const stream = client.receive("outbox-latency", "bench", { from: "earliest", maxMessages: 10_000 });
  stream.call.on("data", (r: { deliveries: { seq: bigint; data: Uint8Array }[] }) => {
    const t = performance.now();
    for (const d of r.deliveries) {
      const at = committedAt.get(Buffer.from(d.data).toString());
      latencies.push(at === undefined ? 0 : Math.max(0, t - at));
    }
    stream.ack(r.deliveries.map((d) => d.seq));
  });
  const started = performance.now();
  const perConn = rate / conns.length;
  let n = 0;
  await Promise.all(
    conns.map(async (conn, c) => {
      for (let i = 0; ; i++) {
        const due = started + (i * 1000) / perConn;
        if (due - started > durationMs) return;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const payload = `c${c}-${i}`;
        await conn.beginTransaction();
        await writeOutbox(conn, "outbox-latency", { data: payload });
        const sent = performance.now();
        await conn.commit();
        const done = performance.now();
        commits.push(done - sent);
        committedAt.set(payload, done);
        n++;
      }
    }),
  );
  try {
    await stream.until(() => latencies.length >= n, 30_000, "latency deliveries");
  } catch (err) {
    const [[left]] = await conns[0]!.query<mysql.RowDataPacket[]>(
      "SELECT COUNT(*) AS n, MIN(id) AS lo FROM nb_outbox",
    );
    throw new Error(
      `${(err as Error).message}; ${n} committed, ${latencies.length} delivered, outbox rows left ${left?.n} (lowest id ${left?.lo})`,
    );
  }
  stream.cancel();
  return { rate, messages: n, ms: percentiles(latencies), commitMs: percentiles(commits) };
}
