import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { originalPosition } from "./lib/sourcemap.js";

/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time per function, self time per
 * category (protobuf, gRPC, SQL escaping, JSON, GC, …), and inclusive time of the broker's own
 * functions, with compiled positions mapped back to src/…/*.ts lines.
 * Run alone: `node dist/bench/profile-summary.js FILE.cpuprofile… [--top 25]`.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  readonly name: string;
  readonly where: string;
  readonly category: string;
  readonly ms: number;
  readonly pct: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly wallMs: number;
  /** Sampled time minus (idle). */
  readonly busyMs: number;
  readonly categories: { name: string; ms: number; pct: number }[];
  readonly topSelf: FunctionTime[];
  /** Inclusive time of functions in dist/src (the broker's own code). */
  readonly topInclusive: FunctionTime[];
}

/** file:///…/dist/src/core/topic.js → dist/src/core/topic.js; node_modules/x/y → x/y. */
function shortUrl(url: string): string {
  if (url === "") return "";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) return url.slice(nm + "node_modules/".length);
  const dist = url.indexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, "");
}

/** The subscription and the modules split out of it (leases, ordering, read-ahead, state). */
const SUBSCRIPTION_FILES =
  /\/dist\/src\/core\/(subscription|lease-timers|ordering-gate|read-ahead|persisted-state|pending-entry)\./;

const SOCKET_WRITES = /^(writev?|writeBuffer|writeUtf8String|writeLatin1String|writev?Generic)$/;

/**
 * The bucket a function's self time goes to, or undefined for a native function whose time
 * belongs to its caller's bucket (Buffer#hexSlice under the SQL escaper, a RegExp under
 * traceIdOf, better-sqlite3's Statement#run under the SQLite store, …).
 */
export function categorize(frame: CallFrame): string | undefined {
  const { functionName: fn, url } = frame;
  if (fn === "(garbage collector)") return "GC";
  if (fn === "(idle)") return "idle";
  if (fn === "(program)" || fn === "(root)") return "V8/native (unattributed)";
  if (url === "" && SOCKET_WRITES.test(fn)) return "socket writes (native)";
  if (url === "" && (fn === "stringify" || fn === "parse")) return "JSON (native)";
  if (url === "") return undefined;
  if (url.includes("@bufbuild/protobuf") || url.includes("/dist/clients/ts/src/gen/"))
    return "protobuf encode/decode";
  if (url.includes("@grpc/grpc-js")) return "gRPC (grpc-js)";
  if (url.includes("@opentelemetry/")) return "OpenTelemetry metrics/tracing";
  if (url.includes("/dist/src/telemetry/")) return "OpenTelemetry metrics/tracing";
  if (url.includes("sql-escaper") || url.includes("sqlstring")) return "SQL text building/escaping (mysql2)";
  if (url.includes("mysql2/lib/packets") || url.includes("mysql2/lib/parsers"))
    return "mysql2 packets/row parsing";
  if (url.includes("mysql2")) return "mysql2 (other)";
  if (url.includes("better-sqlite3")) return "SQLite transaction (better-sqlite3, incl. COMMIT fsync)";
  if (url.includes("/dist/src/store/codec")) return "meta JSON encode/decode (store/codec.ts)";
  if (url.includes("/dist/src/store/sqlite")) return "SQLite store (incl. native statement execution)";
  if (url.includes("/dist/src/store/")) return "MySQL store code";
  if (url.includes("/dist/src/wire/trace-context")) return "trace-context parsing (traceIdOf regex)";
  if (url.includes("/dist/src/wire/")) return "hand-written wire codecs (src/wire)";
  if (SUBSCRIPTION_FILES.test(url)) return "subscription dispatch/state";
  if (url.includes("/dist/src/core/")) return "core write path";
  // The grpc-js method table the broker shares with the TypeScript client (its serializers).
  if (url.includes("/dist/src/api/") || url.includes("/dist/clients/ts/src/grpc-adapter"))
    return "api handlers";
  if (url.includes("/dist/src/")) return "other NerveBus";
  if (url.startsWith("node:internal/process/task_queues")) return "promise/microtask churn";
  if (url.startsWith("node:internal/timers") || url.startsWith("node:timers")) return "timers/setImmediate";
  if (/^node:(internal\/)?(http2|net|stream)/.test(url) || url.includes("stream_base"))
    return "Node http2/net/streams";
  // Buffer and text-encoding helpers are charged to whoever called them (Buffer#toString("hex")
  // under the SQL escaper, Buffer.from under encodeMeta, TextDecoder under protobuf-es, …).
  if (/^node:(internal\/)?(buffer|encoding|util)/.test(url)) return undefined;
  if (url.startsWith("node:")) return "Node core (other)";
  return "other JS";
}

/** src/…/x.ts:LINE for compiled NerveBus code, else the short URL and line. */
function whereOf(f: CallFrame): string {
  if (f.url === "") return "";
  const own = f.url.includes("/dist/") && !f.url.includes("/node_modules/");
  return (
    (own ? originalPosition(f.url, f.lineNumber, f.columnNumber) : undefined) ??
    `${shortUrl(f.url)}:${f.lineNumber + 1}`
  );
}

/** A function's display name; natives without one are V8/C++ builtins. */
function nameOf(f: CallFrame): string {
  return f.functionName || (f.url === "" ? "(native builtin)" : "(anonymous)");
}

interface Acc {
  readonly frame: CallFrame;
  readonly cat: string;
  us: number;
}

export function summarize(file: string, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (f: CallFrame) =>
    `${f.functionName || "(anonymous)"}\u0000${f.url}:${f.lineNumber}:${f.columnNumber}`;
  // A native frame's time goes to the category of its nearest JS caller.
  const categoryOf = new Map<number, string>();
  const nodeCategory = (id: number): string => {
    let cat = categoryOf.get(id);
    if (cat !== undefined) return cat;
    for (let p: number | undefined = id; p !== undefined && cat === undefined; p = parent.get(p))
      cat = categorize(byId.get(p)!.callFrame);
    cat ??= "native builtins (other)";
    categoryOf.set(id, cat);
    return cat;
  };
  const self = new Map<string, Acc>();
  const inclusive = new Map<string, Acc>();
  const categories = new Map<string, number>();
  let total = 0;
  let idle = 0;
  const n = profile.samples.length;
  for (let i = 0; i < n; i++) {
    // A sample lasts until the next one (the last gets the mean).
    const us =
      i + 1 < n ? profile.timeDeltas[i + 1]! : (profile.endTime - profile.startTime) / Math.max(1, n);
    if (!(us > 0)) continue;
    const node = byId.get(profile.samples[i]!);
    if (node === undefined) continue;
    total += us;
    const frame = node.callFrame;
    if (frame.functionName === "(idle)") {
      idle += us;
      continue;
    }
    const cat = nodeCategory(node.id);
    categories.set(cat, (categories.get(cat) ?? 0) + us);
    // A native is listed once per category it was called from (Buffer.byteLength under the
    // SQL packet writer and under messageBytes are different costs).
    const k = frame.url === "" ? `${keyOf(frame)}\u0000${cat}` : keyOf(frame);
    const s = self.get(k) ?? { frame, cat, us: 0 };
    s.us += us;
    self.set(k, s);
    // Inclusive: every distinct NerveBus function on the stack gets the sample once.
    const onStack = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!f.url.includes("/dist/src/")) continue;
      const key = keyOf(f);
      if (onStack.has(key)) continue;
      onStack.add(key);
      const e = inclusive.get(key) ?? { frame: f, cat: categorize(f) ?? "", us: 0 };
      e.us += us;
      inclusive.set(key, e);
    }
  }
  const busy = total - idle;
  const toRow = ({ frame, us, cat }: Acc): FunctionTime => ({
    name: nameOf(frame),
    where: whereOf(frame),
    category: cat,
    ms: us / 1000,
    pct: busy > 0 ? (100 * us) / busy : 0,
  });
  return {
    file,
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busy / 1000,
    categories: [...categories]
      .map(([name, us]) => ({ name, ms: us / 1000, pct: busy > 0 ? (100 * us) / busy : 0 }))
      .sort((a, b) => b.ms - a.ms),
    topSelf: [...self.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map(toRow),
    topInclusive: [...inclusive.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map(toRow),
  };
}

/** One uninterrupted stretch of main-thread work (no idle sample in between). */
export interface LongTask {
  readonly startMs: number;
  readonly ms: number;
  /** The heaviest stacks in it: self frame ← the NerveBus functions above it. */
  readonly top: { stack: string; ms: number }[];
}

/**
 * The longest stretches in which the event loop never went idle: what delays everything else
 * (timers, deliveries, confirms) by that long. Sampling is by wall clock, so on a shared
 * machine a stretch also includes time the process was descheduled.
 */
export function longTasks(file: string, count = 10): LongTask[] {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) byId.set(n.id, n);
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const tasks: { startMs: number; ms: number; stacks: Map<string, number> }[] = [];
  let current: { startMs: number; ms: number; stacks: Map<string, number> } | undefined;
  let t = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(profile.samples[i]!);
    if (node === undefined) continue;
    if (node.callFrame.functionName === "(idle)") {
      if (current !== undefined) tasks.push(current);
      current = undefined;
    } else {
      current ??= { startMs: t, ms: 0, stacks: new Map() };
      current.ms += ms;
      const chain: string[] = [];
      for (let id = parent.get(node.id); id !== undefined && chain.length < 3; id = parent.get(id)) {
        const f = byId.get(id)!.callFrame;
        if (f.url.includes("/dist/src/")) chain.push(f.functionName || `(anonymous) ${whereOf(f)}`);
      }
      const stack = [node.callFrame.functionName || `(anonymous) ${whereOf(node.callFrame)}`, ...chain].join(
        " ← ",
      );
      current.stacks.set(stack, (current.stacks.get(stack) ?? 0) + ms);
    }
    t += ms;
  }
  if (current !== undefined) tasks.push(current);
  return tasks
    .sort((a, b) => b.ms - a.ms)
    .slice(0, count)
    .map((x) => ({
      startMs: x.startMs,
      ms: x.ms,
      top: [...x.stacks]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 4)
        .map(([stack, ms]) => ({ stack, ms })),
    }));
}

/** The summary as Markdown tables. */
export function summaryMarkdown(title: string, s: ProfileSummary, top = 15): string {
  const lines = [
    `#### ${title}`,
    "",
    `Profile \`${s.file}\`: ${(s.wallMs / 1000).toFixed(1)} s wall, ${(s.busyMs / 1000).toFixed(1)} s on CPU (the rest idle). Native functions count in their JS caller's category.`,
    "",
    "| category (self time) | ms | % of busy |",
    "|---|---:|---:|",
    ...s.categories.map((c) => `| ${c.name} | ${c.ms.toFixed(0)} | ${c.pct.toFixed(1)} |`),
    "",
    "| top self time | where | category | ms | % |",
    "|---|---|---|---:|---:|",
    ...s.topSelf
      .slice(0, top)
      .map(
        (f) =>
          `| \`${f.name.replace(/\|/g, "\\|")}\` | ${f.where || "(native)"} | ${f.category} | ${f.ms.toFixed(0)} | ${f.pct.toFixed(1)} |`,
      ),
    "",
    "| NerveBus function (inclusive) | where | ms | % |",
    "|---|---|---:|---:|",
    ...s.topInclusive
      .slice(0, top)
      .map((f) => `| \`${f.name}\` | ${f.where} | ${f.ms.toFixed(0)} | ${f.pct.toFixed(1)} |`),
    "",
  ];
  return lines.join("\n");
}

const USAGE = "usage: node dist/bench/profile-summary.js FILE.cpuprofile… [--top N] [--long-tasks N]\n";

/**
 * The command line: the profiles to summarize and the two counts, or the message (usage
 * included) that says which argument is wrong.
 */
export function profileSummaryArgs(
  argv: readonly string[],
): { files: string[]; top: number; long: number; help: boolean } | { error: string } {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return { error: `${(err as Error).message}\n${USAGE}` };
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { files: [], top: 0, long: 0, help: true };
  const count = (flag: string, value: string | undefined, fallback: number): number | string => {
    if (value === undefined) return fallback;
    const n = Number(value);
    return /^\d+$/.test(value) && n > 0 ? n : `--${flag}: a positive whole number, got "${value}"`;
  };
  const top = count("top", values.top, 25);
  const long = count("long-tasks", values["long-tasks"], 0);
  for (const v of [top, long]) if (typeof v === "string") return { error: `${v}\n${USAGE}` };
  if (positionals.length === 0) return { error: `no profile given\n${USAGE}` };
  return { files: positionals, top: top as number, long: long as number, help: false };
}

const OPTIONS = {
  top: { type: "string" },
  "long-tasks": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = profileSummaryArgs(process.argv.slice(2));
  if ("error" in args) {
    process.stderr.write(`profile-summary: ${args.error}`);
    process.exitCode = 2;
  } else if (args.help) process.stdout.write(USAGE);
  else {
    const { top, long } = args;
    for (const file of args.files) {
      let summary: ProfileSummary;
      try {
        summary = summarize(file, top);
      } catch (err) {
        process.stderr.write(`profile-summary: ${file}: ${(err as Error).message}\n`);
        process.exitCode = 1;
        continue;
      }
      process.stdout.write(`${summaryMarkdown(file, summary, top)}\n`);
      if (long > 0) {
        process.stdout.write("| longest busy stretch | at | heaviest stacks (ms) |\n|---:|---:|---|\n");
        for (const task of longTasks(file, long)) {
          const stacks = task.top.map((x) => `${x.ms.toFixed(1)} \`${x.stack}\``).join("<br>");
          process.stdout.write(
            `| ${task.ms.toFixed(1)} ms | ${(task.startMs / 1000).toFixed(2)} s | ${stacks} |\n`,
          );
        }
        process.stdout.write("\n");
      }
    }
  }
}
