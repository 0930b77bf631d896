import { execFileSync } from "node:child_process";
import {
  closeSync,
  fdatasyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import mysql from "mysql2/promise";
import { startTestMysql, type TestMysql } from "../test/support/mariadb.js";
import { BrokerProcess } from "./lib/broker.js";
import { type CpuUse, cpuMeter, findDescendant } from "./lib/cpu.js";
import { now, percentiles, progress } from "./lib/stats.js";
import { selfCheck } from "./lib/wire.js";
import { type LongTask, longTasks, type ProfileSummary, summarize } from "./profile-summary.js";
import {
  type ClientCpuResult,
  type CommitLatencyResult,
  type RawOptions,
  type RawResult,
  rawMysql,
  rawMysqlClientCpu,
  rawMysqlCommitLatency,
  rawSqlite,
  rawSqliteCommitLatency,
} from "./raw.js";
import { ratioRows, writeResults } from "./report.js";
import {
  type DrainResult,
  type E2EResult,
  type OverloadResult,
  type PublishResult,
  preload,
  runDrain,
  runE2E,
  runOverload,
  runPublish,
} from "./scenarios.js";

/**
 * The NerveBus benchmark suite: raw MySQL/SQLite ceilings, publish, drain, end-to-end latency
 * and overload, on both stores, each broker a separate `nervebus serve` process on loopback.
 * Writes bench/results/results.{json,md} and SVG charts. `bash bench/run.sh --help` for flags.
 */

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const REPO = resolve(HERE, "..", "..");

const FLAGS = {
  stores: { type: "string", default: "mysql,sqlite", doc: "stores to run: mysql, sqlite" },
  only: {
    type: "string",
    default: "raw,publish,drain,e2e,overload,profile",
    doc: "phases: raw, publish, drain, e2e, overload, profile",
  },
  out: { type: "string", default: "bench/results", doc: "results directory (relative to the repo)" },
  shards: { type: "string", default: "1,4,8", doc: "shard counts for raw and publish" },
  sizes: { type: "string", default: "100,1024", doc: "payload sizes (bytes) for raw and publish" },
  publishers: {
    type: "string",
    default: "4",
    doc: "concurrent SendPack publishers (one pack in flight each)",
  },
  pack: { type: "string", default: "1000", doc: "messages per pack" },
  duration: { type: "string", default: "5", doc: "publish: measured seconds per configuration" },
  warmup: { type: "string", default: "1", doc: "publish/e2e: warm-up seconds, not measured" },
  "raw-duration": { type: "string", default: "3", doc: "raw INSERT: measured seconds per configuration" },
  "raw-batch": {
    type: "string",
    default: "1000",
    doc: "raw: rows per INSERT (per shard per transaction on SQLite)",
  },
  "raw-read-seconds": { type: "string", default: "2", doc: "raw SELECT: at most this many seconds" },
  backlog: {
    type: "string",
    default: "1000000",
    doc: "drain: backlog size in messages (100 B, 4 shards), less if --preload-seconds runs out",
  },
  "preload-seconds": {
    type: "string",
    default: "45",
    doc: "drain: stop publishing the backlog after this long",
  },
  "drain-window": { type: "string", default: "100000", doc: "drain: the stream's window (max messages)" },
  "drain-timeout": { type: "string", default: "60", doc: "drain: give up after this many seconds" },
  "e2e-rates": { type: "string", default: "1000,10000", doc: "end-to-end: publish rates (msg/s)" },
  "e2e-duration": { type: "string", default: "8", doc: "end-to-end: measured seconds per rate" },
  "e2e-tick": {
    type: "string",
    default: "5",
    doc: "end-to-end: ms between packs (a pack holds what fell due)",
  },
  "overload-duration": { type: "string", default: "60", doc: "overload: seconds of full-speed publishing" },
  "overload-publishers": { type: "string", default: "16", doc: "overload: publisher connections" },
  "overload-inflight": { type: "string", default: "8", doc: "overload: packs in flight per publisher" },
  "overload-bytes": { type: "string", default: "1024", doc: "overload: payload bytes (packs of --pack)" },
  "overload-deadline": { type: "string", default: "5", doc: "overload: SendPack deadline, seconds" },
  "overload-node-options": {
    type: "string",
    default: "dockerfile",
    doc: 'overload: Node options of the broker; "dockerfile" = the runtime ENV of ./Dockerfile (its heap cap and MALLOC_ARENA_MAX), "" = none',
  },
  "profile-seconds": { type: "string", default: "6", doc: "profile: seconds of each profiled load" },
  "broker-args": {
    type: "string",
    default: "",
    doc: 'extra `nervebus serve` flags for every broker, e.g. --broker-args="--state-persist-interval-ms 200"',
  },
  "broker-node-args": {
    type: "string",
    default: "",
    doc: "Node options for every broker; its stdout then goes to <out>/broker-N.stdout (e.g. --trace-gc)",
  },
  "budget-seconds": {
    type: "string",
    default: "570",
    doc: "skip the phases that would start after this many seconds (the suite must end within 10 min)",
  },
  help: { type: "boolean", default: false, doc: "show this help" },
} as const;

type Flag = keyof typeof FLAGS;

function usage(): string {
  const rows = Object.entries(FLAGS).map(
    ([k, v]) => `  --${k.padEnd(20)} ${v.doc}${v.type === "string" ? ` (default ${v.default})` : ""}`,
  );
  return `usage: bash bench/run.sh [options]\n\n${rows.join("\n")}\n`;
}

export interface StoreResults {
  store: "mysql" | "sqlite";
  raw: RawResult[];
  rawLatency: CommitLatencyResult[];
  /** MySQL only: client CPU per row, text protocol vs prepared statements (what the broker uses). */
  rawClientCpu: ClientCpuResult[];
  publish: (PublishResult & { shards: number })[];
  drain:
    | (DrainResult & {
        requestedBacklog: number;
        shards: number;
        bytes: number;
        preloadSeconds: number;
        preloadRate: number;
      })
    | undefined;
  e2e: E2EResult[];
  overload:
    | (OverloadResult & {
        verify: Verification;
        /** Node options the overload broker ran with (the container's heap cap, by default). */
        nodeOptions: string;
        shutdown: number | "killed";
      })
    | undefined;
  profiles: { publish?: ProfileSummary; drain?: ProfileSummary; e2e?: ProfileSummary };
  /** The longest event-loop stalls of the broker in the profiled end-to-end run. */
  longTasks: LongTask[];
  /** CPU used by the suite and by everything else, per phase. */
  cpu: Record<string, CpuUse>;
  errors: string[];
}

export interface SuiteResults {
  startedAt: string;
  command: string;
  durationSec: number;
  /** The broker source measured: git HEAD of the checkout (or NERVEBUS_BENCH_SOURCE). */
  source: string;
  machine: {
    nproc: number;
    cpu: string;
    memoryGiB: number;
    node: string;
    mariadb: string;
    sqlite: string;
    /** Latency of a 4 KiB write + fdatasync in the temp directory the stores use. */
    fsync: { p50Ms: number; p99Ms: number; maxMs: number } | undefined;
    platform: string;
  };
  options: Record<string, string | boolean>;
  /** 1, 5 and 15 minute load averages when the suite started and ended. */
  loadavgStart: number[];
  loadavgEnd: number[];
  cpu: CpuUse | undefined;
  stores: StoreResults[];
}

const list = (s: string) =>
  s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
const nums = (s: string) => list(s).map(Number);

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: Object.fromEntries(
      Object.entries(FLAGS).map(([k, v]) => [k, { type: v.type, default: v.default }]),
    ) as Record<Flag, { type: "string" | "boolean"; default: string | boolean }>,
    strict: true,
  });
  const opt = values as Record<Flag, string | boolean>;
  if (opt.help) {
    process.stdout.write(usage());
    return 0;
  }
  const s = (k: Flag) => String(opt[k]);
  const n = (k: Flag) => {
    const v = Number(opt[k]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number, got ${opt[k]}`);
    return v;
  };
  const stores = list(s("stores")) as ("mysql" | "sqlite")[];
  for (const st of stores) if (st !== "mysql" && st !== "sqlite") throw new Error(`unknown store ${st}`);
  const phases = new Set(list(s("only")));
  const out = resolve(REPO, s("out"));
  const profileDir = join(out, "profiles");
  mkdirSync(out, { recursive: true });
  if (phases.has("profile")) rmSync(profileDir, { recursive: true, force: true });

  selfCheck();
  const suiteStart = now();
  const work = mkdtempSync(join(tmpdir(), "nervebus-bench-"));
  let my: TestMysql | undefined;
  let dbPid: number | undefined;
  const results: SuiteResults = {
    startedAt: new Date().toISOString(),
    command: ["bash bench/run.sh", ...process.argv.slice(2)].join(" "),
    durationSec: 0,
    source: sourceVersion(),
    machine: {
      nproc: availableParallelism(),
      cpu: cpus()[0]?.model ?? "unknown",
      memoryGiB: totalmem() / 2 ** 30,
      node: process.version,
      mariadb: "not run",
      sqlite: "",
      fsync: undefined,
      platform: `${process.platform} ${process.arch}`,
    },
    options: opt,
    loadavgStart: loadavg(),
    loadavgEnd: [],
    cpu: undefined,
    stores: [],
  };
  const suiteMeter = cpuMeter();
  const mem = new Database(":memory:");
  results.machine.sqlite = (mem.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  mem.close();

  results.machine.fsync = fsyncProbe(work);
  try {
    let dbCounter = 0;
    let brokerCounter = 0;
    for (const store of stores) {
      // MariaDB runs only while its store is measured: its background flushing (gigabytes
      // written by the MySQL phases) would otherwise compete with SQLite's fsyncs.
      await my?.stop();
      my = undefined;
      dbPid = undefined;
      if (store === "mysql") {
        progress.update("starting MariaDB…", true);
        my = await startTestMysql();
        const url = await my.database("bench_version");
        const rows = await my.query<{ v: string }[]>(url, "SELECT VERSION() AS v");
        results.machine.mariadb = rows[0]?.v ?? "unknown";
        dbPid = findDescendant(["mariadbd", "mysqld"]);
      }
      const r: StoreResults = {
        store,
        raw: [],
        rawLatency: [],
        rawClientCpu: [],
        publish: [],
        drain: undefined,
        e2e: [],
        overload: undefined,
        profiles: {},
        longTasks: [],
        cpu: {},
        errors: [],
      };
      results.stores.push(r);
      /** A fresh, empty store URL for one broker (or raw run). */
      const freshStore = async (name: string): Promise<string> => {
        dbCounter++;
        if (store === "mysql") return my!.database(`bench_${dbCounter}_${name}`);
        return `sqlite:${join(work, `${dbCounter}-${name}.db`)}`;
      };
      /** Runs a phase unless its usual duration (`estimate`, s) would overrun the budget. */
      const phase = async (name: string, estimate: number, fn: () => Promise<void>) => {
        if ((now() - suiteStart) / 1000 + estimate > n("budget-seconds")) {
          r.errors.push(
            `${store} ${name}: skipped, it would end past --budget-seconds ${n("budget-seconds")} (it usually takes ${Math.round(estimate)} s)`,
          );
          progress.done(`[${store}] ${name}: skipped (time budget)`);
          return;
        }
        const meter = cpuMeter();
        try {
          await fn();
          r.cpu[name] = meter();
        } catch (err) {
          const msg = `${store} ${name}: ${(err as Error).stack ?? String(err)}`;
          r.errors.push(msg);
          progress.done(`ERROR ${msg}`);
        }
      };
      const brokers: BrokerProcess[] = [];
      const pidsOf = (b: BrokerProcess) => ({
        broker: b.pid,
        db: store === "mysql" ? dbPid : undefined,
        loadgen: process.pid,
      });
      const startBroker = async (
        storeUrl: string,
        flags: Record<string, string | number>,
        prof?: string,
        nodeOptions: string[] = [],
        env: Record<string, string> = {},
      ) => {
        const nodeArgs = [...nodeOptions, ...list(s("broker-node-args").replace(/\s+/g, ","))];
        const b = await BrokerProcess.start({
          store: storeUrl,
          flags,
          extraArgs: list(s("broker-args").replace(/\s+/g, ",")),
          nodeArgs,
          env,
          ...(s("broker-node-args") === ""
            ? {}
            : { stdoutFile: join(out, `broker-${++brokerCounter}.stdout`) }),
          ...(prof ? { cpuProfDir: join(profileDir, prof) } : {}),
        });
        brokers.push(b);
        return b;
      };
      const stopBroker = async (b: BrokerProcess, what: string) => {
        const code = await b.stop();
        brokers.splice(brokers.indexOf(b), 1);
        const warnings = b.stderr
          .split("\n")
          .filter((l) => /"level":"(warn|error)"/.test(l) && !/innodb_flush|topic created/.test(l));
        if (warnings.length > 0)
          r.errors.push(`${store} ${what}: broker logged:\n${warnings.slice(-5).join("\n")}`);
        if (code !== 0) r.errors.push(`${store} ${what}: broker exit ${code}\n${b.stderr.slice(-2000)}`);
        return code;
      };
      const latestProfile = (dir: string): string | undefined => {
        try {
          const files = readdirSync(join(profileDir, dir)).filter((f) => f.endsWith(".cpuprofile"));
          return files.length > 0 ? join(profileDir, dir, files.sort().at(-1)!) : undefined;
        } catch {
          return undefined;
        }
      };

      try {
        // 1. Raw baseline.
        if (phases.has("raw")) {
          const rawConfigs = nums(s("shards")).length * nums(s("sizes")).length;
          const rawEstimate =
            rawConfigs * (n("raw-duration") + 1.5) +
            nums(s("e2e-rates")).length * 4 +
            (store === "mysql" ? 6 : 0);
          await phase("raw", rawEstimate, async () => {
            const url = store === "mysql" ? await my!.database("bench_raw") : "";
            for (const shards of nums(s("shards"))) {
              for (const bytes of nums(s("sizes"))) {
                const o: RawOptions = {
                  shards,
                  bytes,
                  batchRows: n("raw-batch"),
                  durationMs: n("raw-duration") * 1000,
                  warmupMs: 500,
                  readRange: 5000,
                  readMs: n("raw-read-seconds") * 1000,
                };
                const label = `[${store}] raw ${shards} shards ${bytes} B`;
                const res =
                  store === "mysql" ? await rawMysql(url, o, label, dbPid) : await rawSqlite(work, o, label);
                r.raw.push(res);
                progress.done(
                  `${label}: INSERT ${Math.round(res.insertRowsPerSec)} rows/s, SELECT ${Math.round(res.selectRowsPerSec)} rows/s`,
                );
              }
            }
            if (store === "mysql") {
              for (const bytes of nums(s("sizes"))) {
                progress.update(`[mysql] client CPU per row, ${bytes} B: query() vs execute()…`, true);
                const res = await rawMysqlClientCpu(url, { bytes, rows: 1000, statements: 30 });
                r.rawClientCpu.push(res);
                progress.done(
                  `[mysql] client CPU per row, ${bytes} B: query ${res.queryMicrosPerRow.toFixed(2)} µs, execute ${res.executeMicrosPerRow.toFixed(2)} µs`,
                );
              }
            }
            for (const rate of nums(s("e2e-rates"))) {
              const o = {
                rate,
                shards: 4,
                bytes: 100,
                tickMs: n("e2e-tick"),
                durationMs: 3000,
                warmupMs: 500,
              };
              progress.update(`[${store}] raw commit latency at ${rate} rows/s…`, true);
              const res =
                store === "mysql"
                  ? await rawMysqlCommitLatency(url, o)
                  : await rawSqliteCommitLatency(work, o);
              r.rawLatency.push(res);
              progress.done(
                `[${store}] raw commit latency at ${rate} rows/s: p50 ${res.latencyMs.p50.toFixed(2)} ms, p99 ${res.latencyMs.p99.toFixed(2)} ms`,
              );
            }
          });
        }

        // 2. Publish.
        if (phases.has("publish")) {
          for (const shards of nums(s("shards"))) {
            const estimate = nums(s("sizes")).length * (n("duration") + n("warmup") + 0.5) + 2;
            await phase(`publish ${shards} shards`, estimate, async () => {
              const b = await startBroker(await freshStore(`pub${shards}`), { shards });
              try {
                for (const bytes of nums(s("sizes"))) {
                  const res = await runPublish(
                    b.address,
                    `pub-${bytes}`,
                    {
                      publishers: n("publishers"),
                      packSize: n("pack"),
                      bytes,
                      durationMs: n("duration") * 1000,
                      warmupMs: n("warmup") * 1000,
                      deadlineMs: 30_000,
                    },
                    `[${store}] publish ${shards} shards ${bytes} B`,
                    pidsOf(b),
                  );
                  r.publish.push({ ...res, shards });
                }
              } finally {
                await stopBroker(b, `publish ${shards} shards`);
              }
            });
          }
        }

        // 3. Drain (and its profile, on the same backlog).
        if (phases.has("drain") || phases.has("profile")) {
          // A million 100 B messages: ~15 s to publish, ~15 s to drain, restarts.
          const drainEstimate =
            Math.min(n("preload-seconds"), n("backlog") / 70_000) + n("backlog") / 70_000 + 5;
          await phase("drain", drainEstimate, async () => {
            const storeUrl = await freshStore("drain");
            const flags = { shards: 4, "heartbeat-ms": 200 };
            let b = await startBroker(storeUrl, flags);
            const pre = await preload(
              b.address,
              "drain",
              {
                total: n("backlog"),
                packSize: n("pack"),
                bytes: 100,
                publishers: n("publishers"),
                maxMs: n("preload-seconds") * 1000,
              },
              `[${store}] drain`,
            );
            await stopBroker(b, "drain preload");
            const backlog = pre.published;
            if (pre.lastSeq !== backlog)
              throw new Error(`preload: last seq ${pre.lastSeq}, published ${backlog}`);
            if (phases.has("drain")) {
              // A fresh process: nothing of the backlog is in the tail cache, all of it is read.
              b = await startBroker(storeUrl, flags);
              try {
                const res = await runDrain(
                  b.address,
                  "drain",
                  "drain",
                  { backlog, window: n("drain-window"), timeoutMs: n("drain-timeout") * 1000 },
                  `[${store}] drain ${backlog}`,
                  pidsOf(b),
                );
                r.drain = {
                  ...res,
                  requestedBacklog: n("backlog"),
                  shards: 4,
                  bytes: 100,
                  preloadSeconds: pre.seconds,
                  preloadRate: pre.messagesPerSec,
                };
              } finally {
                await stopBroker(b, "drain");
              }
            }
            if (phases.has("profile")) {
              b = await startBroker(storeUrl, flags, `${store}-drain`);
              try {
                await runDrain(
                  b.address,
                  "drain",
                  "drain-profile",
                  { backlog, window: n("drain-window"), timeoutMs: n("profile-seconds") * 1000 },
                  `[${store}] drain (profiled)`,
                );
              } finally {
                await stopBroker(b, "drain profile");
              }
              const file = latestProfile(`${store}-drain`);
              if (file) r.profiles.drain = summarize(file, 30);
            }
          });
        }

        // 4. End-to-end latency.
        if (phases.has("e2e")) {
          await phase(
            "e2e",
            nums(s("e2e-rates")).length * (n("e2e-duration") + n("warmup") + 1) + 1,
            async () => {
              const b = await startBroker(await freshStore("e2e"), { shards: 4 });
              try {
                for (const rate of nums(s("e2e-rates"))) {
                  r.e2e.push(
                    await runE2E(
                      b.address,
                      `e2e-${rate}`,
                      {
                        rate,
                        durationMs: n("e2e-duration") * 1000,
                        warmupMs: n("warmup") * 1000,
                        tickMs: n("e2e-tick"),
                        bytes: 100,
                        window: 10_000,
                      },
                      `[${store}] e2e ${rate} msg/s`,
                      pidsOf(b),
                    ),
                  );
                }
              } finally {
                await stopBroker(b, "e2e");
              }
            },
          );
        }

        // 5. Overload.
        if (phases.has("overload")) {
          await phase("overload", n("overload-duration") + 8, async () => {
            const storeUrl = await freshStore("overload");
            const runtime =
              s("overload-node-options") === "dockerfile"
                ? dockerfileRuntime()
                : { nodeOptions: list(s("overload-node-options").replace(/\s+/g, ",")), env: {} };
            const nodeOptions = runtime.nodeOptions;
            const b = await startBroker(storeUrl, { shards: 4 }, undefined, nodeOptions, runtime.env);
            let res: OverloadResult;
            let shutdown: number | "killed";
            try {
              res = await runOverload(
                b,
                "overload",
                {
                  publishers: n("overload-publishers"),
                  inflight: n("overload-inflight"),
                  packSize: n("pack"),
                  bytes: n("overload-bytes"),
                  durationMs: n("overload-duration") * 1000,
                  deadlineMs: n("overload-deadline") * 1000,
                  waitThresholdMs: 1000,
                },
                `[${store}] overload`,
              );
            } finally {
              shutdown = await stopBroker(b, "overload");
            }
            progress.update(`[${store}] overload: checking every confirmed seq is in the store…`, true);
            const verify = await verifyStored(storeUrl, "overload", res.confirmedRanges);
            progress.done(
              `[${store}] overload: ${verify.found} of ${verify.confirmed} confirmed messages stored`,
            );
            r.overload = {
              ...res,
              verify,
              shutdown,
              nodeOptions: [...Object.entries(runtime.env).map(([k, v]) => `${k}=${v}`), ...nodeOptions].join(
                " ",
              ),
            };
          });
        }

        // 6. Publish profile.
        if (phases.has("profile")) {
          await phase("publish profile", n("profile-seconds") + 2, async () => {
            const b = await startBroker(await freshStore("pubprof"), { shards: 4 }, `${store}-publish`);
            try {
              await runPublish(
                b.address,
                "pub-100",
                {
                  publishers: n("publishers"),
                  packSize: n("pack"),
                  bytes: 100,
                  durationMs: n("profile-seconds") * 1000,
                  warmupMs: 0,
                  deadlineMs: 30_000,
                },
                `[${store}] publish 4 shards 100 B (profiled)`,
              );
            } finally {
              await stopBroker(b, "publish profile");
            }
            const file = latestProfile(`${store}-publish`);
            if (file) r.profiles.publish = summarize(file, 30);
          });
          // 7. End-to-end profile at the highest rate: where do the long event-loop stalls come from?
          await phase("e2e profile", n("profile-seconds") + 3, async () => {
            const rate = Math.max(...nums(s("e2e-rates")));
            const b = await startBroker(await freshStore("e2eprof"), { shards: 4 }, `${store}-e2e`);
            try {
              await runE2E(
                b.address,
                "e2e-profile",
                {
                  rate,
                  durationMs: n("profile-seconds") * 1000,
                  warmupMs: 1000,
                  tickMs: n("e2e-tick"),
                  bytes: 100,
                  window: 10_000,
                },
                `[${store}] e2e ${rate} msg/s (profiled)`,
              );
            } finally {
              await stopBroker(b, "e2e profile");
            }
            const file = latestProfile(`${store}-e2e`);
            if (file) {
              r.profiles.e2e = summarize(file, 30);
              // The first second is start-up (module loading); the stalls that matter come later.
              r.longTasks = longTasks(file, 40)
                .filter((t) => t.startMs > 1500)
                .slice(0, 8);
            }
          });
        }
      } finally {
        for (const b of [...brokers]) await b.stop(5000);
      }
    }
  } finally {
    if (my !== undefined) progress.update("stopping MariaDB…", true);
    await my?.stop();
    rmSync(work, { recursive: true, force: true });
    progress.done("");
  }

  results.durationSec = (now() - suiteStart) / 1000;
  results.loadavgEnd = loadavg();
  results.cpu = suiteMeter();
  const md = writeResults(out, results);
  process.stdout.write(md);
  process.stdout.write(
    `\nresults in ${relative(process.cwd(), out) || "."}/ (results.json, results.md, *.svg)\n`,
  );
  const failed = results.stores.some((st) => st.errors.some((e) => !e.includes("broker logged")));
  const ratios = ratioRows(results);
  return failed || ratios.length === 0 ? 1 : 0;
}

/** 300 × (4 KiB write + fdatasync) into a file in `dir`: what one durable commit costs here. */
function fsyncProbe(dir: string): { p50Ms: number; p99Ms: number; maxMs: number } {
  const file = join(dir, "fsync-probe");
  const fd = openSync(file, "w");
  const block = Buffer.alloc(4096, 1);
  const times: number[] = [];
  try {
    for (let i = 0; i < 300; i++) {
      const t = now();
      writeSync(fd, block, 0, block.length, (i % 64) * 4096);
      fdatasyncSync(fd);
      times.push(now() - t);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  const p = percentiles(times);
  return { p50Ms: p.p50, p99Ms: p.p99, maxMs: p.max };
}

/** The NODE_OPTIONS the container image sets (`ENV NODE_OPTIONS="…"` in ./Dockerfile), split. */
/**
 * The runtime settings of the container image: the `ENV` lines of the Dockerfile's last stage,
 * NODE_OPTIONS as Node arguments and the others (MALLOC_ARENA_MAX, …) as environment.
 */
function dockerfileRuntime(): { nodeOptions: string[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  let nodeOptions: string[] = [];
  try {
    const text = readFileSync(join(REPO, "Dockerfile"), "utf8");
    const stages = text.split(/^FROM\s/m);
    for (const m of (stages[stages.length - 1] ?? "").matchAll(/^ENV\s+(\w+)=("([^"]*)"|(\S+))/gm)) {
      const [key, value] = [m[1]!, m[3] ?? m[4] ?? ""];
      if (key === "NODE_OPTIONS") nodeOptions = list(value.replace(/\s+/g, ","));
      else if (key !== "NODE_ENV") env[key] = value;
    }
  } catch {
    // No Dockerfile: the broker runs with the suite's environment.
  }
  return { nodeOptions, env };
}

/** Which broker source this is: NERVEBUS_BENCH_SOURCE, else `git rev-parse HEAD` (read only). */
function sourceVersion(): string {
  const given = process.env.NERVEBUS_BENCH_SOURCE;
  if (given) return given;
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd: REPO,
      encoding: "utf8",
    }).trim();
    return `git ${head} (plus any uncommitted changes in the working tree)`;
  } catch {
    return "unknown (not a git checkout)";
  }
}

/**
 * Counts the confirmed seqs present in the store (the broker must be stopped for SQLite), and
 * all rows of the topic: rows beyond the confirmed ones belong to packs whose client gave up
 * (deadline) but that were written anyway, work the broker did for nobody.
 */
async function verifyStored(
  storeUrl: string,
  topic: string,
  ranges: [number, number][],
): Promise<Verification> {
  let confirmed = 0;
  for (const [a, b] of ranges) confirmed += b - a + 1;
  let found = 0;
  let stored = 0;
  if (storeUrl.startsWith("sqlite:")) {
    const db = new Database(storeUrl.slice("sqlite:".length), { readonly: true });
    try {
      const t = db.prepare("SELECT id, shards FROM nb_topics WHERE name = ?").get(topic) as
        | { id: number; shards: number }
        | undefined;
      if (t !== undefined) {
        for (let shard = 0; shard < t.shards; shard++) {
          const stmt = db.prepare(
            `SELECT COUNT(*) AS c FROM nb_msg_${t.id}_${shard} WHERE seq BETWEEN ? AND ?`,
          );
          for (const [a, b] of ranges) found += (stmt.get(a, b) as { c: number }).c;
          stored += (db.prepare(`SELECT COUNT(*) AS c FROM nb_msg_${t.id}_${shard}`).get() as { c: number })
            .c;
        }
      }
    } finally {
      db.close();
    }
  } else {
    const conn = await mysql.createConnection({ uri: storeUrl });
    try {
      const [rows] = await conn.query<mysql.RowDataPacket[]>(
        "SELECT id, shards FROM nb_topics WHERE name = ?",
        [topic],
      );
      const t = rows[0];
      if (t !== undefined) {
        for (let shard = 0; shard < Number(t.shards); shard++) {
          for (const [a, b] of ranges) {
            const [c] = await conn.query<mysql.RowDataPacket[]>(
              `SELECT COUNT(*) AS c FROM nb_msg_${Number(t.id)}_${shard} WHERE seq BETWEEN ? AND ?`,
              [a, b],
            );
            found += Number(c[0]?.c ?? 0);
          }
          const [all] = await conn.query<mysql.RowDataPacket[]>(
            `SELECT COUNT(*) AS c FROM nb_msg_${Number(t.id)}_${shard}`,
          );
          stored += Number(all[0]?.c ?? 0);
        }
      }
    } finally {
      await conn.end();
    }
  }
  return {
    confirmed,
    found,
    missing: confirmed - found,
    storedUnconfirmed: stored - found,
    method: "COUNT(*) of each confirmed seq range in every shard table",
  };
}

/** The overload check: every confirmed message stored, and how many were stored unconfirmed. */
export interface Verification {
  confirmed: number;
  found: number;
  missing: number;
  storedUnconfirmed: number;
  method: string;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`\nbench: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
