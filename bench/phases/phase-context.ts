import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { startTestMysql, type TestMysql } from "../../test/support/mariadb.js";
import { summarize } from "../checks.js";
import { words } from "../lib/args.js";
import { BrokerProcess } from "../lib/broker.js";
import { type CpuUse, cpuMeter, findDescendant } from "../lib/cpu.js";
import { fsyncProbe, sourceVersion, sqliteVersion } from "../lib/machine.js";
import { REPO } from "../lib/repo.js";
import { now, progress } from "../lib/stats.js";
import { selfCheck } from "../lib/wire.js";
import { type ProfileKind, profileDir, recordProfile } from "../profiles.js";
import type { Pids } from "../scenarios.js";
import type { SuiteOptions } from "../suite-options.js";
import type { StoreKind, StoreResults, SuiteResults } from "../suite-results.js";

/**
 * What the phases share. A SuiteContext holds the whole run: options, output and temp
 * directories, the results collector, MariaDB's lifetime. A PhaseContext is one store's part of
 * it: fresh store URLs, brokers started and stopped with their warnings collected, the time
 * budget, and that store's results.
 */

/** The whole run: created once, then one PhaseContext per store, then `finish`. */
export class SuiteContext {
  readonly opt: SuiteOptions;
  /** The phases `--only` selects. */
  readonly phases: Set<string>;
  readonly stores: StoreKind[];
  /** The results directory (absolute). */
  readonly out: string;
  /** Where brokers write CPU profiles: `<out>/profiles/<store>-<kind>/`. */
  readonly profilesDir: string;
  /** A temp directory for SQLite files, removed by `close`. */
  readonly work: string;
  /** When the suite started (ms, lib/stats `now`). */
  readonly started: number;
  /** Runs of the whole selection (--repeat). */
  readonly repeat: number;
  /** The run in progress (1 … repeat) and when it started: the time budget counts from there. */
  currentRepeat = 1;
  repeatStarted: number;
  readonly results: SuiteResults;
  readonly #meter: () => CpuUse;
  #mysql: TestMysql | undefined;
  #databases = 0;
  #brokers = 0;

  /**
   * Checks the stores, clears old profiles when profiling, checks the wire codec, and measures
   * the machine (SQLite version, fsync latency); throws on a bad `--stores`.
   */
  constructor(opt: SuiteOptions, args: readonly string[]) {
    this.opt = opt;
    this.stores = opt.stores();
    this.phases = opt.phases();
    this.out = resolve(REPO, opt.str("out"));
    this.profilesDir = join(this.out, "profiles");
    mkdirSync(this.out, { recursive: true });
    if (this.phases.has("profile")) rmSync(this.profilesDir, { recursive: true, force: true });
    selfCheck();
    this.started = now();
    this.repeatStarted = this.started;
    this.repeat = Math.round(opt.num("repeat"));
    this.work = mkdtempSync(join(tmpdir(), "nervebus-bench-"));
    this.results = {
      startedAt: new Date().toISOString(),
      command: ["bash bench/run.sh", ...args].join(" "),
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
      options: opt.values,
      loadavgStart: loadavg(),
      loadavgEnd: [],
      cpu: undefined,
      repeat: this.repeat,
      stores: [],
      figures: {},
      checks: [],
    };
    this.#meter = cpuMeter();
    this.results.machine.sqlite = sqliteVersion();
    this.results.machine.fsync = fsyncProbe(this.work);
  }

  /** Starts run `n` of the selection: its time budget counts from now. */
  startRepeat(n: number): void {
    this.currentRepeat = n;
    this.repeatStarted = now();
  }

  /** Starts `store`'s part of the run (and MariaDB for MySQL); its results join the collector. */
  async forStore(store: StoreKind): Promise<PhaseContext> {
    // MariaDB runs only while its store is measured: its background flushing (gigabytes
    // written by the MySQL phases) would otherwise compete with SQLite's fsyncs.
    await this.#stopMysql();
    let dbPid: number | undefined;
    if (store === "mysql") {
      progress.update("starting MariaDB…", true);
      this.#mysql = await startTestMysql();
      const url = await this.#mysql.database("bench_version");
      const rows = await this.#mysql.query<{ v: string }[]>(url, "SELECT VERSION() AS v");
      this.results.machine.mariadb = rows[0]?.v ?? "unknown";
      dbPid = findDescendant(["mariadbd", "mysqld"]);
    }
    const r: StoreResults = {
      store,
      repeat: this.currentRepeat,
      raw: [],
      rawRuns: [],
      noStore: [],
      rawLatency: [],
      rawClientCpu: [],
      publish: [],
      drain: undefined,
      drains: [],
      e2e: [],
      overload: undefined,
      profiles: {},
      longTasks: [],
      cpu: {},
      errors: [],
    };
    this.results.stores.push(r);
    const workDir = join(this.work, `run-${this.currentRepeat}-${store}`);
    mkdirSync(workDir, { recursive: true });
    return new PhaseContext(this, r, workDir, this.#mysql, dbPid);
  }

  /** A number for the next store database or file (unique across the run). */
  nextDatabase(): number {
    return ++this.#databases;
  }

  /** A number for the next broker's stdout file (unique across the run). */
  nextBroker(): number {
    return ++this.#brokers;
  }

  /** Stops MariaDB and removes the temp directory (also after a failure). */
  async close(): Promise<void> {
    if (this.#mysql !== undefined) progress.update("stopping MariaDB…", true);
    await this.#stopMysql();
    rmSync(this.work, { recursive: true, force: true });
    progress.done("");
  }

  /** Completes the results with the duration, load, CPU use, figures and checks of the whole run. */
  finish(): SuiteResults {
    this.results.durationSec = (now() - this.started) / 1000;
    this.results.loadavgEnd = loadavg();
    this.results.cpu = this.#meter();
    summarize(this.results);
    return this.results;
  }

  async #stopMysql(): Promise<void> {
    await this.#mysql?.stop();
    this.#mysql = undefined;
  }
}

/** One store's part of the run, handed to every phase in turn. */
export class PhaseContext {
  readonly suite: SuiteContext;
  readonly store: StoreKind;
  /** This store's results: each phase adds its own. */
  readonly results: StoreResults;
  /** The MariaDB server while the store is MySQL. */
  readonly mysql: TestMysql | undefined;
  /** MariaDB's pid, for its CPU use (MySQL only). */
  readonly dbPid: number | undefined;
  /** A temp directory of this store's part of this run, for the raw phases' SQLite files. */
  readonly workDir: string;
  readonly #brokers: BrokerProcess[] = [];

  constructor(
    suite: SuiteContext,
    results: StoreResults,
    workDir: string,
    mysql: TestMysql | undefined,
    dbPid?: number,
  ) {
    this.suite = suite;
    this.store = results.store;
    this.results = results;
    this.workDir = workDir;
    this.mysql = mysql;
    this.dbPid = dbPid;
  }

  /** The store, and which run of the selection when there are several: for errors. */
  get label(): string {
    return this.suite.repeat > 1 ? `${this.store} (run ${this.results.repeat})` : this.store;
  }

  get opt(): SuiteOptions {
    return this.suite.opt;
  }

  /** Whether `--only` names `phase`; profiles are taken in the last run (--repeat) only. */
  selected(phase: string): boolean {
    if (phase === "profile" && this.suite.currentRepeat < this.suite.repeat) return false;
    return this.suite.phases.has(phase);
  }

  /** A fresh, empty store URL for one broker (or raw run). */
  async freshStore(name: string): Promise<string> {
    const n = this.suite.nextDatabase();
    if (this.mysql !== undefined) return this.mysql.database(`bench_${n}_${name}`);
    return `sqlite:${join(this.suite.work, `${n}-${name}.db`)}`;
  }

  /**
   * Runs a phase unless its usual duration (`estimate`, s) would carry this run (--repeat) past
   * --budget-seconds (then a note in the errors). Records its CPU use; an error it throws is recorded, not rethrown.
   */
  async phase(name: string, estimate: number, fn: () => Promise<void>): Promise<void> {
    const r = this.results;
    const budget = this.opt.num("budget-seconds");
    if ((now() - this.suite.repeatStarted) / 1000 + estimate > budget) {
      r.errors.push(
        `${this.label} ${name}: skipped, it would end past --budget-seconds ${budget} (it usually takes ${Math.round(estimate)} s)`,
      );
      progress.done(`[${this.store}] ${name}: skipped (time budget)`);
      return;
    }
    const meter = cpuMeter();
    try {
      await fn();
      r.cpu[name] = meter();
    } catch (err) {
      const msg = `${this.label} ${name}: ${(err as Error).stack ?? String(err)}`;
      r.errors.push(msg);
      progress.done(`ERROR ${msg}`);
    }
  }

  /** The processes whose CPU a scenario measures: broker, database (MySQL), load generator. */
  pidsOf(b: BrokerProcess): Pids {
    return { broker: b.pid, db: this.dbPid, loadgen: process.pid };
  }

  /**
   * Starts a broker on `storeUrl` with --broker-args and --broker-node-args added; with
   * `profile`, it writes a CPU profile for `recordProfile`.
   */
  async startBroker(
    storeUrl: string,
    flags: Record<string, string | number>,
    profile?: ProfileKind,
    nodeOptions: string[] = [],
    env: Record<string, string> = {},
  ): Promise<BrokerProcess> {
    const brokerNodeArgs = this.opt.str("broker-node-args");
    const b = await BrokerProcess.start({
      store: storeUrl,
      flags,
      extraArgs: words(this.opt.str("broker-args")),
      nodeArgs: [...nodeOptions, ...words(brokerNodeArgs)],
      env,
      ...(brokerNodeArgs === ""
        ? {}
        : { stdoutFile: join(this.suite.out, `broker-${this.suite.nextBroker()}.stdout`) }),
      ...(profile ? { cpuProfDir: profileDir(this.suite.profilesDir, this.store, profile) } : {}),
    });
    this.#brokers.push(b);
    return b;
  }

  /**
   * Stops a broker; its warnings and a non-zero exit go into the errors, under `what`.
   * Returns its exit code ("killed" when it had to be).
   */
  async stopBroker(b: BrokerProcess, what: string): Promise<number | "killed"> {
    const code = await b.stop();
    this.#brokers.splice(this.#brokers.indexOf(b), 1);
    const warnings = b.stderr
      .split("\n")
      .filter((l) => /"level":"(warn|error)"/.test(l) && !/innodb_flush|topic created/.test(l));
    if (warnings.length > 0)
      this.results.errors.push(`${this.label} ${what}: broker logged:\n${warnings.slice(-5).join("\n")}`);
    if (code !== 0)
      this.results.errors.push(`${this.label} ${what}: broker exit ${code}\n${b.stderr.slice(-2000)}`);
    return code;
  }

  /** Summarizes the newest `kind` profile of this store into its results (see recordProfile). */
  recordProfile(kind: ProfileKind): void {
    recordProfile(this.results, this.suite.profilesDir, kind);
  }

  /** Stops the brokers a failed phase left running. */
  async stopBrokers(): Promise<void> {
    for (const b of [...this.#brokers]) await b.stop(5000);
  }
}
