import assert from "node:assert/strict";
import { test } from "node:test";
import type * as grpc from "@grpc/grpc-js";
import type mysql from "mysql2/promise";
import { TestClient, type TestStream } from "../support/broker.js";
import { type TestMysql, useTestMysql } from "../support/mariadb.js";
import { prng } from "../support/prng.js";
import { type BrokerProcess, spawnBroker } from "../support/process.js";
import { storedRows } from "../support/stored-rows.js";

const testMysql = useTestMysql();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const TTL_MS = 2000;
const CLUSTER_ARGS = [
  "--cluster",
  "--lease-ttl-ms",
  String(TTL_MS),
  "--lease-renew-ms",
  "500",
  "--log-level",
  "info",
];
/** Faults injected: each a SIGKILL (and restart) or a SIGSTOP longer than the lease. */
const FAULTS = Number(process.env.NERVEBUS_CLUSTER_FAULTS ?? 20);
const TOPICS = ["f0", "f1", "f2", "f3", "f4", "f5"];

/** The broker id owning each topic now (live leases only). */
async function leaseOwners(server: TestMysql, url: string): Promise<Map<string, string>> {
  const rows = await server.query<mysql.RowDataPacket[]>(
    url,
    `SELECT t.name, b.address FROM nb_lease l JOIN nb_topics t ON l.unit = CONCAT('topic:', t.id)
       JOIN nb_brokers b ON b.id = l.owner
       WHERE l.expires_at > CAST(ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS SIGNED)`,
  );
  return new Map(rows.map((r) => [String(r.name), String(r.address)]));
}

/** A broker slot: its process and a client of it, replaced when the process is restarted. */
interface Slot {
  proc: BrokerProcess;
  client: TestClient;
  /** Frozen (SIGSTOP) or being restarted: clients pick another one. */
  down: boolean;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

test(`mysql --cluster fault test: 3 brokers, publishers and consumers running, a broker killed or frozen ${FAULTS} times; every confirmed message at its seq, delivered, and never again once its ack was confirmed`, async () => {
  const server = testMysql();
  const url = await server.database("cluster_fault");
  const random = prng(20261206);
  const slots: Slot[] = [];
  const pick = () => {
    const up = slots.filter((s) => !s.down);
    return (up.length > 0 ? up : slots)[Math.floor(random() * (up.length || slots.length))]!;
  };
  /** topic → seq → payload of every confirmed message. */
  const confirmed = new Map(TOPICS.map((t) => [t, new Map<number, string>()]));
  /** topic → payloads delivered at least once. */
  const delivered = new Map(TOPICS.map((t) => [t, new Set<string>()]));
  /** topic → seqs whose ack was confirmed durable. */
  const ackConfirmed = new Map(TOPICS.map((t) => [t, new Set<number>()]));
  const redeliveredAfterAck: string[] = [];
  let running = true;
  let consuming = true;
  const errors = new Map<number, number>();
  try {
    for (let i = 0; i < 3; i++) {
      const proc = await spawnBroker(["--store", url, ...CLUSTER_ARGS]);
      slots.push({ proc, client: new TestClient(proc.address), down: false });
    }
    await sleep(1500);

    const publisher = async (topic: string) => {
      let n = 0;
      while (running) {
        const payloads = Array.from({ length: 5 }, () => `${topic}-${n++}`);
        // A pack whose outcome is unknown is sent again with the same message ids (dedup).
        for (;;) {
          try {
            const res = await pick().client.publish(
              topic,
              payloads.map((p) => ({ data: Buffer.from(p), messageId: p })),
              4000,
            );
            for (const [i, p] of payloads.entries()) {
              const seq = Number(res.results[i]?.seq ?? 0n) || Number(res.firstSeq) + i;
              confirmed.get(topic)!.set(seq, p);
            }
            break;
          } catch (err) {
            if (!running) return;
            const code = (err as grpc.ServiceError).code;
            errors.set(code, (errors.get(code) ?? 0) + 1);
            assert.ok([4, 14].includes(code), `publish failed with ${code}: ${(err as Error).message}`);
            await sleep(50);
          }
        }
      }
    };

    const consumer = async (topic: string) => {
      while (consuming) {
        const s: TestStream = pick().client.receive(topic, "all", {
          from: "earliest",
          confirmAcks: true,
          maxMessages: 200,
        });
        let seen = 0;
        let confirmedSeen = 0;
        while (!s.ended && consuming) {
          await s
            .until(() => s.deliveries.length > seen || s.ended || !consuming, 3000)
            .catch(() => undefined);
          const fresh = s.deliveries.slice(seen);
          seen = s.deliveries.length;
          for (const d of fresh) {
            const seq = Number(d.seq);
            if (ackConfirmed.get(topic)!.has(seq)) redeliveredAfterAck.push(`${topic}@${seq}`);
            delivered.get(topic)!.add(Buffer.from(d.data).toString());
          }
          const acks = s.responses.slice(confirmedSeen);
          confirmedSeen = s.responses.length;
          for (const r of acks)
            for (const a of r.ackResults?.ackedSeqs ?? []) ackConfirmed.get(topic)!.add(Number(a));
          if (!s.ended) s.ack(fresh.map((d) => d.seq));
        }
        s.cancel();
        await sleep(50);
      }
    };

    const work = [...TOPICS.map(publisher), ...TOPICS.map(consumer)];
    await sleep(2000);

    const failovers: number[] = [];
    const started = performance.now();
    for (let i = 0; i < FAULTS; i++) {
      const slot = slots[Math.floor(random() * slots.length)]!;
      const owned = [...(await leaseOwners(server, url))]
        .filter(([, a]) => a === slot.proc.address)
        .map(([t]) => t);
      const kill = i % 2 === 0;
      slot.down = true;
      const at = performance.now();
      slot.proc.child.kill(kill ? "SIGKILL" : "SIGSTOP");
      // Failover: every topic the broker owned has a live owner elsewhere.
      for (;;) {
        const now = await leaseOwners(server, url);
        if (owned.every((t) => now.has(t) && now.get(t) !== slot.proc.address)) break;
        if (performance.now() - at > 30_000) {
          for (const s of slots)
            process.stderr.write(`--- ${s.proc.address}\n${s.proc.stderr().slice(-6000)}\n`);
          assert.fail(
            `fault ${i} (${kill ? "SIGKILL" : "SIGSTOP"} of ${slot.proc.address}): topics ${owned.join(", ")} did not move in 30 s`,
          );
        }
        await sleep(50);
      }
      if (owned.length > 0) failovers.push(performance.now() - at);
      if (kill) {
        await slot.proc.exited;
        slot.client.close();
        slot.proc = await spawnBroker(["--store", url, ...CLUSTER_ARGS]);
        slot.client = new TestClient(slot.proc.address);
      } else {
        slot.proc.child.kill("SIGCONT");
      }
      slot.down = false;
      // Let the cluster settle and work go on before the next fault.
      await sleep(1000 + random() * 1000);
    }
    const chaosMs = performance.now() - started;
    running = false;
    await Promise.all(work.slice(0, TOPICS.length));
    // Every confirmed message is delivered at least once.
    const until = performance.now() + 60_000;
    for (const topic of TOPICS) {
      const want = [...confirmed.get(topic)!.values()];
      while (want.some((p) => !delivered.get(topic)!.has(p)) && performance.now() < until) await sleep(200);
      const missing = want.filter((p) => !delivered.get(topic)!.has(p));
      if (missing.length > 0) {
        process.stderr.write(
          `# ${topic}: ${missing.length} confirmed not delivered, e.g. ${missing.slice(0, 5).join(" ")}\n`,
        );
        for (const s of slots)
          process.stderr.write(
            `--- ${s.proc.address}\n${s.proc
              .stderr()
              .split("\n")
              .filter((l) => l.includes(topic) && !l.includes("persisting"))
              .slice(-40)
              .join("\n")}\n`,
          );
      }
    }
    consuming = false;
    await Promise.all(work.slice(TOPICS.length));

    let total = 0;
    for (const topic of TOPICS) {
      const stored = await storedRows(server, url, topic);
      for (const [seq, payload] of confirmed.get(topic)!) {
        assert.equal(stored.get(seq), payload, `confirmed ${payload} is stored at its seq ${seq}`);
        assert.ok(delivered.get(topic)!.has(payload), `confirmed ${payload} was delivered`);
        total++;
      }
    }
    assert.deepEqual(redeliveredAfterAck, [], "no message whose ack was confirmed came again");
    for (const s of slots)
      assert.equal(s.proc.child.exitCode, null, "every broker still runs (frozen ones too)");
    failovers.sort((a, b) => a - b);
    process.stderr.write(
      `# ${FAULTS} faults in ${Math.round(chaosMs / 1000)} s; ${total} confirmed messages reconciled; ` +
        `failover (topics of the faulty broker owned elsewhere) p50 ${Math.round(percentile(failovers, 0.5))} ms, ` +
        `max ${Math.round(failovers.at(-1) ?? 0)} ms over ${failovers.length} failovers (lease ttl ${TTL_MS} ms); ` +
        `publish errors ${JSON.stringify(Object.fromEntries(errors))}\n`,
    );
    assert.ok(total > 0);
  } finally {
    running = false;
    consuming = false;
    for (const s of slots) {
      s.client.close();
      s.proc.child.kill("SIGCONT");
      s.proc.child.kill("SIGKILL");
    }
    await Promise.all(slots.map((s) => s.proc.exited));
  }
});
