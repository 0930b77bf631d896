import { parseArgs } from "node:util";
import { envName, flagName, loadConfig, OPTIONS } from "../config/index.js";
import { type StartOptions, startNerveBus } from "../nervebus.js";
import { jsonLogger } from "../telemetry/index.js";
import { paceFullCollections } from "./heap-growth.js";

function help(): string {
  const rows = OPTIONS.map(
    (o) =>
      `  --${flagName(o.key).padEnd(32)} ${o.doc}\n  ${"".padEnd(34)} default ${JSON.stringify(o.default)}, env ${envName(o.key)}`,
  );
  return `usage: nervebus serve [--config FILE.json] [options]\n\nsettings (defaults < --config file < environment < flags):\n${rows.join("\n")}\n`;
}

/**
 * Boolean settings take `--flag` (true), `--no-flag` (false) or `--flag=true|false`; parseArgs on
 * Node 20 has no negated flags, so they are rewritten to the `=` form first.
 */
function expandBooleanFlags(args: string[]): string[] {
  const booleans = new Set(OPTIONS.filter((o) => o.kind === "bool").map((o) => flagName(o.key)));
  return args.map((arg) => {
    const name = arg.slice(2);
    if (!arg.startsWith("--") || arg.includes("=")) return arg;
    if (booleans.has(name)) return `--${name}=true`;
    if (name.startsWith("no-") && booleans.has(name.slice(3))) return `--${name.slice(3)}=false`;
    return arg;
  });
}

/**
 * `nervebus serve`: runs the broker until SIGTERM or SIGINT, then stops gracefully. `start` is
 * for the benchmark's no-store broker (bench/no-store-broker.ts); the CLI never passes it.
 */
export async function serveCommand(args: string[], start: StartOptions = {}): Promise<number> {
  const options: Record<string, { type: "string" | "boolean" }> = {
    config: { type: "string" },
    help: { type: "boolean" },
  };
  for (const o of OPTIONS) options[flagName(o.key)] = { type: "string" };
  const { values } = parseArgs({
    args: expandBooleanFlags(args),
    options,
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(help());
    return 0;
  }
  const config = loadConfig(values, process.env, values.config as string | undefined);
  const log = jsonLogger(config.logLevel);
  const bus = await startNerveBus(config, log, start);
  const stopPacing = paceFullCollections(config.memoryBudget);
  // The one line scripts and tests wait for.
  process.stdout.write(`nervebus listening on ${bus.address}\n`);
  let exitCode = 0;
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log("info", "shutting down", { signal });
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
      process.off("SIGHUP", onHup);
      stopPacing();
      bus.stop().then(resolve, (err: unknown) => {
        log("error", "shutdown failed", { err: String(err) });
        resolve();
      });
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    // SIGHUP re-reads certificates, tokens, JWKS and policy without dropping a connection.
    const onHup = () => {
      log("info", "reloading security files", { signal: "SIGHUP" });
      bus.reloadSecurity();
    };
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onInt);
    process.on("SIGHUP", onHup);
    // Another broker owns the store now: exit non-zero, so a supervisor starts this one again,
    // as a broker that waits for the lease.
    void bus.fenced.then(() => {
      exitCode = 3;
      stop("ownership lost");
    });
  });
  return exitCode;
}
