import { parseArgs } from "node:util";
import { list } from "./lib/args.js";
import type { StoreKind } from "./suite-results.js";

/** A string flag: its default and the line `--help` shows. */
const flag = (value: string, doc: string) => ({ type: "string", default: value, doc }) as const;

/** Every flag of the suite, with its default and help line (the `--help` text is made from it). */
export const FLAGS = {
  stores: flag("mysql,sqlite", "stores to run: mysql, sqlite"),
  only: flag(
    "raw,no-store,publish,raw-runs,drain,e2e,overload,profile",
    "phases, run in this order: raw, no-store, publish, raw-runs, drain, e2e, overload, profile; also stream (streaming publish vs SendPack), priority (urgent latency under a bulk backlog), outbox (transactional outbox relay, MySQL only), cluster (publish and drain through 1, 2, 3 brokers on one MySQL, forwarded and direct)",
  ),
  repeat: flag("3", "runs of the whole selection; results.json has each figure's mean, min, max, stdev"),
  out: flag("bench/results", "results directory (relative to the repo)"),
  shards: flag("4", "shard counts for raw, raw-runs, no-store and publish (e.g. 1,4,8)"),
  sizes: flag("100,1024", "payload sizes (bytes) for raw, raw-runs, no-store and publish"),
  publishers: flag("4", "concurrent SendPack publishers (one pack in flight each)"),
  pack: flag("1000", "messages per pack"),
  duration: flag("5", "publish: measured seconds per configuration"),
  warmup: flag("1", "publish/e2e: warm-up seconds, not measured"),
  "raw-duration": flag("3", "raw INSERT: measured seconds per configuration"),
  "raw-batch": flag("1000", "raw: rows per INSERT (per shard per transaction on SQLite)"),
  "raw-read-seconds": flag("2", "raw SELECT: at most this many seconds"),
  "run-messages": flag(
    "auto",
    "raw-runs: messages per row; auto = the mean per stored row of this run's publish at the same size and shards, else --pack",
  ),
  backlog: flag(
    "1000000",
    "drain: backlog in messages of 100 B (4 shards; other sizes: the same payload bytes), less if --preload-seconds runs out",
  ),
  "drain-sizes": flag("100,1024", "drain: payload sizes (bytes), a backlog and a fresh broker each"),
  "preload-seconds": flag("45", "drain: stop publishing the backlog after this long"),
  "drain-window": flag("100000", "drain: the stream's window (max messages)"),
  "drain-timeout": flag("60", "drain: give up after this many seconds"),
  "outbox-rows": flag("200000", "outbox: rows committed at once for the relay throughput"),
  "outbox-rate": flag("2000", "outbox: single-row transactions per second for the relay latency"),
  "outbox-duration": flag("10", "outbox: seconds of the latency run"),
  "e2e-rates": flag("1000,10000", "end-to-end: publish rates (msg/s)"),
  "e2e-duration": flag("8", "end-to-end: measured seconds per rate"),
  "e2e-tick": flag("5", "end-to-end: ms between packs (a pack holds what fell due)"),
  "overload-duration": flag("60", "overload: seconds of full-speed publishing"),
  "overload-publishers": flag("16", "overload: publisher connections"),
  "overload-inflight": flag("8", "overload: packs in flight per publisher"),
  "overload-bytes": flag("1024", "overload: payload bytes (packs of --pack)"),
  "overload-deadline": flag("5", "overload: SendPack deadline, seconds"),
  "overload-node-options": flag(
    "dockerfile",
    'overload: Node options of the broker; "dockerfile" = the runtime ENV of ./Dockerfile (its heap cap and MALLOC_ARENA_MAX), "" = none',
  ),
  "profile-seconds": flag("6", "profile: seconds of each profiled load"),
  "broker-args": flag(
    "",
    'extra `nervebus serve` flags for every broker, e.g. --broker-args="--state-persist-interval-ms 200"',
  ),
  "broker-node-args": flag(
    "",
    "Node options for every broker; its stdout then goes to <out>/broker-N.stdout (e.g. --trace-gc)",
  ),
  "budget-seconds": flag(
    "900",
    "per run (--repeat): skip the phases that would end past this many seconds into it",
  ),
  quick: {
    type: "boolean",
    default: false,
    doc: "a smoke run: a few hundred ms per phase, small backlog (proves the suite works; figures mean nothing)",
  },
  help: { type: "boolean", default: false, doc: "show this help" },
} as const;

export type Flag = keyof typeof FLAGS;

/** The `--help` text. */
export function usage(): string {
  const rows = Object.entries(FLAGS).map(
    ([k, v]) => `  --${k.padEnd(20)} ${v.doc}${v.type === "string" ? ` (default ${v.default})` : ""}`,
  );
  return `usage: bash bench/run.sh [options]\n\n${rows.join("\n")}\n`;
}

/**
 * The parsed flags. Numbers are checked where they are used, not here: a bad one in a phase's
 * time estimate ends the suite; one read while the phase runs fails only that phase.
 */
export class SuiteOptions {
  /** Every flag's value, as results.json records it under `options`. */
  readonly values: Record<Flag, string | boolean>;

  constructor(values: Record<Flag, string | boolean>) {
    this.values = values;
  }

  str(k: Flag): string {
    return String(this.values[k]);
  }

  /** A positive number; throws naming the flag otherwise. */
  num(k: Flag): number {
    const v = Number(this.values[k]);
    if (!Number.isFinite(v) || v <= 0)
      throw new Error(`--${k} must be a positive number, got ${this.values[k]}`);
    return v;
  }

  /** A comma-separated list of numbers (not checked, as before: `--shards 1,4,8`). */
  nums(k: Flag): number[] {
    return list(this.str(k)).map(Number);
  }

  /** The phases `--only` selects. */
  phases(): Set<string> {
    return new Set(list(this.str("only")));
  }

  /** The stores `--stores` names, in order; throws on an unknown one. */
  stores(): StoreKind[] {
    const stores = list(this.str("stores")) as StoreKind[];
    for (const st of stores) if (st !== "mysql" && st !== "sqlite") throw new Error(`unknown store ${st}`);
    return stores;
  }
}

/** What --quick changes, unless the flag is given too: every phase a few hundred ms. */
const QUICK: Partial<Record<Flag, string>> = {
  duration: "0.3",
  warmup: "0.1",
  "raw-duration": "0.3",
  "raw-read-seconds": "0.2",
  backlog: "20000",
  "preload-seconds": "10",
  "drain-timeout": "20",
  "e2e-duration": "0.3",
  "overload-duration": "0.5",
  "overload-publishers": "4",
  "overload-inflight": "2",
  "profile-seconds": "0.3",
};

/** Parses the suite's arguments; throws on an unknown flag (parseArgs strict mode). */
export function parseSuiteOptions(args: string[]): SuiteOptions {
  const { values, tokens } = parseArgs({
    args,
    options: Object.fromEntries(
      Object.entries(FLAGS).map(([k, v]) => [k, { type: v.type, default: v.default }]),
    ) as Record<Flag, { type: "string" | "boolean"; default: string | boolean }>,
    strict: true,
    tokens: true,
  });
  if (values.quick) {
    const given = new Set<string>(tokens.flatMap((t) => (t.kind === "option" ? [t.name] : [])));
    for (const [k, v] of Object.entries(QUICK)) if (!given.has(k)) (values as Record<string, unknown>)[k] = v;
  }
  return new SuiteOptions(values as Record<Flag, string | boolean>);
}
