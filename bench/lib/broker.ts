import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../test/support/mariadb.js";

/** dist/src/cli/main.js, next to this file's compiled copy (dist/bench/lib/broker.js). */
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.js");
/** dist/bench/no-store-broker.js: `nervebus serve` on a store that keeps nothing. */
const NO_STORE_BROKER = join(dirname(fileURLToPath(import.meta.url)), "..", "no-store-broker.js");

export interface BrokerSpec {
  /** sqlite:PATH or mysql://…, or "none": the no-store ceiling's broker (no-store-broker.ts). */
  readonly store: string;
  /** Extra `serve` flags, e.g. { shards: 4, "heartbeat-ms": 200 }. */
  readonly flags?: Record<string, string | number>;
  /** Further `serve` arguments, as given. */
  readonly extraArgs?: readonly string[];
  /** Node options for the broker process (e.g. --trace-gc), before the script. */
  readonly nodeArgs?: readonly string[];
  /** Environment variables added to the suite's own for the broker process. */
  readonly env?: Readonly<Record<string, string>>;
  /** Copy the broker's stdout after the listening line here (with --trace-gc, for example). */
  readonly stdoutFile?: string;
  /** Write a V8 CPU profile into this directory on exit. */
  readonly cpuProfDir?: string;
  /** Picks the port of the broker's HTTP endpoint (default: one free now, freePort). */
  readonly httpPort?: () => Promise<number>;
}

/** How often a broker start is tried when its HTTP port was taken (BrokerProcess.start). */
const HTTP_PORT_ATTEMPTS = 3;
/** What `nervebus serve` says when its --http-listen port is in use. */
const HTTP_PORT_TAKEN = /--http-listen \S+: address already in use/;

let knownFlags: Set<string> | undefined;

/** The flags `nervebus serve --help` lists (asked once). */
function serveFlags(): Set<string> {
  if (knownFlags === undefined) {
    const help = execFileSync(process.execPath, [CLI, "serve", "--help"], { encoding: "utf8" });
    knownFlags = new Set([...help.matchAll(/^\s+--([a-z0-9-]+)/gm)].map((m) => m[1]!));
  }
  return knownFlags;
}

/** Kilobytes from a /proc/PID/status line such as `VmRSS:   12345 kB`. */
function statusKb(status: string, key: string): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
  return m ? Number(m[1]) : 0;
}

/**
 * A broker running as its own process (`nervebus serve`), driven over gRPC on loopback. Its
 * resident memory is sampled from /proc/PID/status while it runs.
 */
export class BrokerProcess {
  readonly child: ChildProcess;
  address = "";
  /** HOST:PORT of the broker's status endpoint (GET /api/status), when it has one. */
  httpAddress: string | undefined;
  #stderr = "";
  #sampler: NodeJS.Timeout | undefined;
  /** Highest VmRSS seen by the sampler, and the kernel's own peak (VmHWM), in bytes. */
  maxRssBytes = 0;
  hwmBytes = 0;
  readonly rssSamples: { t: number; rssBytes: number }[] = [];

  private constructor(child: ChildProcess) {
    this.child = child;
    child.stderr?.on("data", (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-8000);
    });
  }

  /**
   * Starts a broker. Its HTTP port is picked free before the broker binds it, so another socket
   * of this machine (an outgoing connection's ephemeral port) may take it in between: the
   * broker then exits at start-up naming --http-listen, and is started again on another port.
   */
  static async start(spec: BrokerSpec): Promise<BrokerProcess> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await BrokerProcess.#start(spec);
      } catch (err) {
        if (attempt >= HTTP_PORT_ATTEMPTS || !HTTP_PORT_TAKEN.test((err as Error).message)) throw err;
      }
    }
  }

  static async #start(spec: BrokerSpec): Promise<BrokerProcess> {
    const args: string[] = [...(spec.nodeArgs ?? [])];
    if (spec.cpuProfDir !== undefined) args.push("--cpu-prof", `--cpu-prof-dir=${spec.cpuProfDir}`);
    if (spec.store === "none") args.push(NO_STORE_BROKER, "--listen", "127.0.0.1:0", "--log-level", "warn");
    else args.push(CLI, "serve", "--listen", "127.0.0.1:0", "--store", spec.store, "--log-level", "warn");
    // The status/metrics HTTP endpoint stays on (as in production), on a free port.
    let http: string | undefined;
    if (serveFlags().has("http-listen")) {
      http = `127.0.0.1:${await (spec.httpPort ?? freePort)()}`;
      args.push("--http-listen", http);
    }
    for (const [k, v] of Object.entries(spec.flags ?? {})) args.push(`--${k}`, String(v));
    args.push(...(spec.extraArgs ?? []));
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...spec.env },
    });
    const broker = new BrokerProcess(child);
    broker.address = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => fail(new Error("broker did not start within 30 s")), 30_000);
      const fail = (err: Error) => {
        clearTimeout(timer);
        child.kill("SIGKILL");
        reject(new Error(`${err.message}\n${broker.#stderr}`));
      };
      child.once("exit", (code) => fail(new Error(`broker exited with ${code} during start-up`)));
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = /nervebus listening on (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          child.removeAllListeners("exit");
          child.stdout?.off("data", onData);
          if (spec.stdoutFile !== undefined) child.stdout?.pipe(createWriteStream(spec.stdoutFile));
          else child.stdout?.resume();
          resolve(m[1]!);
        }
      };
      child.stdout?.on("data", onData);
    });
    broker.httpAddress = http;
    broker.#sample();
    broker.#sampler = setInterval(() => broker.#sample(), 100);
    return broker;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The broker's last stderr lines (its warnings and errors). */
  get stderr(): string {
    return this.#stderr;
  }

  /** The broker's own view of its memory (process.memoryUsage() in GET /api/status). */
  async memoryUsage(): Promise<{ memory: NodeJS.MemoryUsage; bufferedBytes: number } | undefined> {
    if (this.httpAddress === undefined) return undefined;
    try {
      const res = await fetch(`http://${this.httpAddress}/api/status`, { signal: AbortSignal.timeout(2000) });
      const body = (await res.json()) as { broker?: { memory?: NodeJS.MemoryUsage; bufferedBytes?: number } };
      const memory = body.broker?.memory;
      return memory === undefined ? undefined : { memory, bufferedBytes: body.broker?.bufferedBytes ?? 0 };
    } catch {
      return undefined;
    }
  }

  /** Forgets the memory peak so far (the sampler's; the kernel's VmHWM cannot be reset). */
  resetRss(): void {
    this.maxRssBytes = 0;
    this.rssSamples.length = 0;
  }

  #sample(): void {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
      const rss = statusKb(status, "VmRSS") * 1024;
      this.hwmBytes = Math.max(this.hwmBytes, statusKb(status, "VmHWM") * 1024);
      this.maxRssBytes = Math.max(this.maxRssBytes, rss);
      this.rssSamples.push({ t: Date.now(), rssBytes: rss });
    } catch {
      // The process is gone.
    }
  }

  /**
   * SIGTERM and wait for a graceful exit (SIGKILL after `timeoutMs`). Returns the exit code, or
   * "killed" when it had to be killed; a CPU profile is only written on a graceful exit.
   */
  async stop(timeoutMs = 20_000): Promise<number | "killed"> {
    this.#sample();
    clearInterval(this.#sampler);
    // Already gone (crashed: an exit code, or a signal such as SIGABRT on heap exhaustion).
    if (this.child.exitCode !== null) return this.child.exitCode;
    if (this.child.signalCode !== null) return -1;
    const exited = new Promise<number | null>((resolve) => this.child.once("exit", (code) => resolve(code)));
    this.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      exited,
      new Promise<"killed">((resolve) => {
        timer = setTimeout(() => resolve("killed"), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (result === "killed") {
      this.child.kill("SIGKILL");
      await exited;
      return "killed";
    }
    return result ?? -1;
  }
}
