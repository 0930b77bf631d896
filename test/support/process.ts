import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The compiled CLI entry point. */
export const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** A broker running as its own process, as in production. */
export interface BrokerProcess {
  readonly address: string;
  readonly child: ChildProcess;
  readonly stderr: () => string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
}

/** Starts `nervebus serve` on 127.0.0.1:0 and waits for its listening line. */
export async function spawnBroker(args: string[], env: NodeJS.ProcessEnv = {}): Promise<BrokerProcess> {
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", ...args],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    },
  );
  let stderr = "";
  let stdout = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`broker did not start in 20 s:\n${stderr}`)), 20_000);
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
      const m = /nervebus listening on (\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before listening:\n${stderr}`));
    });
  });
  return { address, child, stderr: () => stderr, exited };
}

/** Runs the CLI to completion; returns exit code and output. */
export function runCli(
  args: string[],
  input?: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

/** The HTTP port's HOST:PORT, as the broker's "nervebus serving" log line names it. */
export async function httpAddressOf(b: BrokerProcess): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    for (const line of b.stderr().split("\n")) {
      if (!line.includes('"nervebus serving"')) continue;
      const { http } = JSON.parse(line) as { http: string };
      return http;
    }
    if (Date.now() > deadline)
      throw new Error(`no "nervebus serving" line in the broker's log:\n${b.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
