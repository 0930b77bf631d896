import { relative } from "node:path";
import { paceLoadGenerator } from "./lib/load-generator.js";
import { clusterPhase } from "./phases/cluster.js";
import { drainPhase } from "./phases/drain.js";
import { e2ePhase } from "./phases/e2e.js";
import { outboxPhase } from "./phases/outbox.js";
import { overloadPhase } from "./phases/overload.js";
import { type PhaseContext, SuiteContext } from "./phases/phase-context.js";
import { priorityPhase } from "./phases/priority.js";
import { profilePhase } from "./phases/profile.js";
import { noStorePhase, publishPhase } from "./phases/publish.js";
import { rawPhase } from "./phases/raw.js";
import { rawRunsPhase } from "./phases/raw-runs.js";
import { streamPhase } from "./phases/stream.js";
import { writeResults } from "./report.js";
import { parseSuiteOptions, usage } from "./suite-options.js";

/**
 * The NerveBus benchmark suite: raw MySQL/SQLite ceilings, publish, drain, end-to-end latency
 * and overload, on both stores, each broker a separate `nervebus serve` process on loopback.
 * Writes bench/results/results.{json,md} and SVG charts. `bash bench/run.sh --help` for flags.
 * Each phase is a module of bench/phases/; this file only runs them in order.
 */

/** The phases in the order they run on each store, and the `--only` names that select each. */
const PHASES: readonly {
  readonly only: readonly string[];
  readonly run: (ctx: PhaseContext) => Promise<void>;
}[] = [
  { only: ["raw"], run: rawPhase },
  { only: ["no-store"], run: noStorePhase },
  { only: ["publish"], run: publishPhase },
  // After publish: its rows are as long as the runs the broker stored there.
  { only: ["raw-runs"], run: rawRunsPhase },
  // The drain's backlog also serves the drain profile.
  { only: ["drain", "profile"], run: drainPhase },
  { only: ["e2e"], run: e2ePhase },
  { only: ["overload"], run: overloadPhase },
  { only: ["profile"], run: profilePhase },
  { only: ["stream"], run: streamPhase },
  { only: ["priority"], run: priorityPhase },
  { only: ["outbox"], run: outboxPhase },
  { only: ["cluster"], run: clusterPhase },
];

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const opt = parseSuiteOptions(args);
  if (opt.values.help) {
    process.stdout.write(usage());
    return 0;
  }
  const heapGrowth = paceLoadGenerator();
  const suite = new SuiteContext(opt, args);
  suite.results.machine.loadGeneratorHeapGrowth = heapGrowth;
  try {
    for (let repeat = 1; repeat <= suite.repeat; repeat++) {
      suite.startRepeat(repeat);
      for (const store of suite.stores) {
        const ctx = await suite.forStore(store);
        try {
          for (const phase of PHASES) if (phase.only.some((p) => ctx.selected(p))) await phase.run(ctx);
        } finally {
          await ctx.stopBrokers();
        }
      }
    }
  } finally {
    await suite.close();
  }
  const results = suite.finish();
  const md = writeResults(suite.out, results);
  process.stdout.write(md);
  process.stdout.write(
    `\nresults in ${relative(process.cwd(), suite.out) || "."}/ (results.json, results.md, *.svg)\n`,
  );
  const failed = results.stores.some((st) => st.errors.some((e) => !e.includes("broker logged")));
  return failed ? 1 : 0;
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
