import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { TestClient, type TestStream } from "./broker.js";
import { liveOwners, percentile, retrying } from "./cluster.js";
import type { TestMysql } from "./mariadb.js";
import { prng } from "./prng.js";
import { type BrokerProcess, spawnBroker } from "./process.js";
import { storedRows } from "./stored-rows.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One database of the cluster's `--store`, and the server it is on. */
export interface FaultDatabase {
  readonly server: TestMysql;
  readonly url: string;
}

/** What a cluster fault run injects, and into what. */
export interface ClusterFaultOptions {
  /** The databases of `--store`, in order (several: topics spread over them). */
  readonly databases: readonly FaultDatabase[];
  /** Broker arguments after `--store` (`--cluster`, lease timing, log level). */
  readonly brokerArgs: readonly string[];
  readonly ttlMs: number;
  /** Faults injected: each a SIGKILL (and restart) or a SIGSTOP longer than the lease. */
  readonly faults: number;
  readonly topics: readonly string[];
  readonly seed: number;
  /** Several databases: move a random topic to another database every few seconds meanwhile. */
  readonly moves?: boolean;
}

/** `HOST:PORT/DATABASE` of a database URL: how placement rows and move-topic name it. */
function keyOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port}${u.pathname}`;
}

/** The broker owning each topic now (live leases only), from every database's lease rows. */
async function leaseOwners(databases: readonly FaultDatabase[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const d of databases) for (const [t, a] of await liveOwners(d.server, d.url)) out.set(t, a);
  return out;
}

/** The database holding `topic`: the placement catalog's row (in the first), or the only one. */
async function home(databases: readonly FaultDatabase[], topic: string): Promise<FaultDatabase> {
  const first = databases[0]!;
  if (databases.length === 1) return first;
  const rows = await first.server.query<{ host: string }[]>(
    first.url,
    "SELECT host FROM nb_placement WHERE name = ?",
    [topic],
  );
  const found = databases.find((d) => keyOf(d.url) === rows[0]?.host);
  assert.ok(found, `topic ${topic} is placed on one of the databases`);
  return found;
}

/**
 * What a failed reconciliation needs to be understood: the test's timeline (faults, moves,
 * anomalies) and every broker's log, in full in a file and the moves, claims and warnings on stderr.
 */
function reportFailure(events: readonly string[], procs: readonly BrokerProcess[]): void {
  const file = join(tmpdir(), `nervebus-cluster-fault-${process.pid}-${Date.now()}.log`);
  const logs = procs.map((p) => `--- broker ${p.address} (pid ${p.child.pid})\n${p.stderr()}`);
  writeFileSync(file, `${events.join("\n")}\n${logs.join("\n")}`);
  const notable = (line: string) =>
    !line.includes("persisting") && /"level":"(warn|error)"|moved|move|claim|took|seal|recover/.test(line);
  process.stderr.write(`# cluster fault run failed; timeline and broker logs in ${file}\n`);
  process.stderr.write(`${events.slice(-150).join("\n")}\n`);
  for (const p of procs)
    process.stderr.write(
      `--- broker ${p.address}\n${p.stderr().split("\n").filter(notable).slice(-40).join("\n")}\n`,
    );
}

/** A broker slot: its process and a client of it, replaced when the process is restarted. */
interface Slot {
  proc: BrokerProcess;
  client: TestClient;
  /** Frozen (SIGSTOP) or being restarted: clients pick another one. */
  down: boolean;
}

/**
 * 3 broker processes of one cluster over `databases`, publishers and consumers on every topic,
 * a broker killed (and restarted) or frozen past its lease `faults` times; then reconciles:
 * every confirmed message is stored at its confirmed seq and was delivered, and none whose ack
 * was confirmed came again. Prints the failover times (fault → every topic of the broker owned
 * elsewhere), p50 and max.
 */
export async function runClusterFaultTest(o: ClusterFaultOptions): Promise<void> {
  const TOPICS = o.topics;
  const FAULTS = o.faults;
  const TTL_MS = o.ttlMs;
  const store = o.databases.map((d) => d.url).join(",");
  const CLUSTER_ARGS = [...o.brokerArgs];

  const random = prng(o.seed);
  const slots: Slot[] = [];
  const pick = () => {
    const up = slots.filter((s) => !s.down);
    return (up.length > 0 ? up : slots)[Math.floor(random() * (up.length || slots.length))]!;
  };
  /** topic → seq → payload of every confirmed message. */
  const confirmed = new Map(TOPICS.map((t) => [t, new Map<number, string>()]));
  /** topic → payloads delivered at least once. */
  const delivered = new Map(TOPICS.map((t) => [t, new Set<string>()]));
  /** topic → seq → when and by which broker its ack was confirmed durable. */
  const ackConfirmed = new Map(TOPICS.map((t) => [t, new Map<number, string>()]));
  const redeliveredAfterAck: string[] = [];
  /** Faults, moves and anomalies with their times, and every broker process started: read on failure. */
  const events: string[] = [];
  const note = (what: string) => events.push(`${new Date().toISOString()} ${what}`);
  const procs: BrokerProcess[] = [];
  const spawn = async () => {
    const proc = await spawnBroker(["--store", store, ...CLUSTER_ARGS]);
    procs.push(proc);
    note(`broker ${proc.address} started (pid ${proc.child.pid})`);
    return proc;
  };
  let running = true;
  let consuming = true;
  const errors = new Map<number, number>();
  try {
    for (let i = 0; i < 3; i++) {
      const proc = await spawn();
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
        const via = pick();
        const address = via.proc.address;
        const s: TestStream = via.client.receive(topic, "all", {
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
            const acked = ackConfirmed.get(topic)!.get(seq);
            if (acked !== undefined) {
              redeliveredAfterAck.push(`${topic}@${seq}`);
              note(`${topic}@${seq} delivered again by ${address}; its ack was confirmed ${acked}`);
            }
            delivered.get(topic)!.add(Buffer.from(d.data).toString());
          }
          const acks = s.responses.slice(confirmedSeen);
          confirmedSeen = s.responses.length;
          for (const r of acks)
            for (const a of r.ackResults?.ackedSeqs ?? [])
              ackConfirmed.get(topic)!.set(Number(a), `${new Date().toISOString()} by ${address}`);
          if (!s.ended) s.ack(fresh.map((d) => d.seq));
        }
        s.cancel();
        await sleep(50);
      }
    };

    // Created one after the other, so that they spread over every database (by topic count).
    for (const t of TOPICS)
      await retrying(() => slots[0]!.client.adminCall("createTopic", { topic: { name: t } }));
    const homes = await Promise.all(TOPICS.map((t) => home(o.databases, t)));
    for (const d of o.databases) assert.ok(homes.includes(d), `${d.url}: holds some of the topics`);
    const moveRandom = prng(o.seed + 1);
    const moveErrors = new Map<number, number>();
    let moves = 0;
    // Moves go through any broker (forwarded to the topic's owner), faults or not.
    const mover = async () => {
      while (running && o.moves) {
        await sleep(3000 + moveRandom() * 2000);
        const topic = TOPICS[Math.floor(moveRandom() * TOPICS.length)]!;
        const from = await home(o.databases, topic);
        const to = o.databases.find((d) => d !== from)!;
        try {
          const via = pick();
          note(`move ${topic} to ${keyOf(to.url)} asked of ${via.proc.address}`);
          const res = await via.client.adminCall("moveTopic", { topic, toHost: keyOf(to.url) });
          note(`move ${topic} to ${keyOf(to.url)}: ${res.moved ? "moved" : "not moved"}`);
          if (res.moved) moves++;
        } catch (err) {
          const code = (err as grpc.ServiceError).code;
          note(`move ${topic} to ${keyOf(to.url)} failed: ${code} ${(err as Error).message}`);
          moveErrors.set(code, (moveErrors.get(code) ?? 0) + 1);
          if (process.env.NERVEBUS_FAULT_VERBOSE)
            process.stderr.write(`# move ${topic}: ${(err as Error).message}\n`);
          assert.ok([4, 9, 14].includes(code), `move failed with ${code}: ${(err as Error).message}`);
        }
      }
    };
    const work = [...TOPICS.map(publisher), mover(), ...TOPICS.map(consumer)];
    await sleep(2000);

    const failovers: number[] = [];
    const started = performance.now();
    for (let i = 0; i < FAULTS; i++) {
      const slot = slots[Math.floor(random() * slots.length)]!;
      const owned = [...(await leaseOwners(o.databases))]
        .filter(([, a]) => a === slot.proc.address)
        .map(([t]) => t);
      const kill = i % 2 === 0;
      slot.down = true;
      const at = performance.now();
      slot.proc.child.kill(kill ? "SIGKILL" : "SIGSTOP");
      note(`fault ${i}: ${kill ? "SIGKILL" : "SIGSTOP"} of ${slot.proc.address} owning ${owned.join(",")}`);
      // Failover: every topic the broker owned has a live owner elsewhere.
      for (;;) {
        const now = await leaseOwners(o.databases);
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
        slot.proc = await spawn();
        slot.client = new TestClient(slot.proc.address);
      } else {
        slot.proc.child.kill("SIGCONT");
        note(`SIGCONT of ${slot.proc.address}`);
      }
      slot.down = false;
      // Let the cluster settle and work go on before the next fault.
      await sleep(1000 + random() * 1000);
    }
    const chaosMs = performance.now() - started;
    running = false;
    await Promise.all(work.slice(0, TOPICS.length + 1));
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
    await Promise.all(work.slice(TOPICS.length + 1));

    let total = 0;
    try {
      for (const topic of TOPICS) {
        const h = await home(o.databases, topic);
        const stored = await storedRows(h.server, h.url, topic);
        for (const [seq, payload] of confirmed.get(topic)!) {
          assert.equal(stored.get(seq), payload, `confirmed ${payload} is stored at its seq ${seq}`);
          assert.ok(delivered.get(topic)!.has(payload), `confirmed ${payload} was delivered`);
          total++;
        }
      }
      assert.deepEqual(redeliveredAfterAck, [], "no message whose ack was confirmed came again");
    } catch (err) {
      reportFailure(events, procs);
      throw err;
    }
    for (const s of slots)
      assert.equal(s.proc.child.exitCode, null, "every broker still runs (frozen ones too)");
    failovers.sort((a, b) => a - b);
    process.stderr.write(
      `# ${o.databases.length} database(s), ${FAULTS} faults in ${Math.round(chaosMs / 1000)} s; ${total} confirmed messages reconciled; ` +
        `failover (topics of the faulty broker owned elsewhere) p50 ${Math.round(percentile(failovers, 0.5))} ms, ` +
        `max ${Math.round(failovers.at(-1) ?? 0)} ms over ${failovers.length} failovers (lease ttl ${TTL_MS} ms); ` +
        `publish errors ${JSON.stringify(Object.fromEntries(errors))}` +
        (o.moves
          ? `; ${moves} topics moved between databases, move errors ${JSON.stringify(Object.fromEntries(moveErrors))}`
          : "") +
        "\n",
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
}
