import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The broker's CLI, built by `npx tsc -p .` at the repository root. */
export const BROKER_MAIN =
  process.env.NERVEBUS_MAIN ?? fileURLToPath(new URL("../../../../../dist/src/cli/main.js", import.meta.url));

/** Broker processes still running, killed if this test process ends or is terminated first. */
const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    for (const child of live) child.kill("SIGKILL");
    process.exit(1);
  });
}

/** Flags every test broker gets: quick heartbeats and shutdowns, quiet logs. */
const BASE_FLAGS = [
  "--heartbeat-ms",
  "500",
  "--shutdown-grace-ms",
  "1000",
  "--log-level",
  "warn",
  // Not the default HTTP port 7071 (a fixed gRPC port turns the automatic choice off), which
  // another process, or this broker before its restart, may hold.
  "--http-listen",
  "127.0.0.1:0",
];

/**
 * A real broker process on 127.0.0.1 with a SQLite file in a temporary folder. restart() starts
 * it again on the same port and file, as a broker restart would.
 */
export class TestBroker {
  #child: ChildProcess | undefined;
  #stderr = "";
  #port = 0;

  private constructor(
    readonly dir: string,
    readonly flags: readonly string[],
  ) {}

  /** Starts a broker with extra serve flags. */
  static async start(flags: readonly string[] = []): Promise<TestBroker> {
    const broker = new TestBroker(mkdtempSync(join(tmpdir(), "nervebus-ts-")), flags);
    await broker.#spawn(0);
    return broker;
  }

  /** HOST:PORT the broker listens on. */
  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** The broker's process id (0 before it started). */
  get pid(): number {
    return this.#child?.pid ?? 0;
  }

  /** What the broker wrote to stderr (its log). */
  get log(): string {
    return this.#stderr;
  }

  async #spawn(port: number): Promise<void> {
    const args = [
      BROKER_MAIN,
      "serve",
      "--listen",
      `127.0.0.1:${port}`,
      "--store",
      `sqlite:${join(this.dir, "nb.db")}`,
      ...BASE_FLAGS,
      ...this.flags,
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    live.add(child);
    child.once("exit", () => live.delete(child));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-20_000);
    });
    this.#port = await new Promise<number>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`broker did not start within 20 s; stderr:\n${this.#stderr}`));
      }, 20_000);
      child.stdout!.setEncoding("utf8");
      child.stdout!.on("data", (chunk: string) => {
        out += chunk;
        const m = /nervebus listening on 127\.0\.0\.1:(\d+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`broker exited (${code ?? signal}) before listening; stderr:\n${this.#stderr}`));
      });
    });
  }

  /** Stops the broker: SIGTERM (graceful) or SIGKILL (a crash). */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Starts the broker again on the same port and SQLite file. */
  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn(this.#port);
  }

  /** Stops the broker and removes its folder. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
