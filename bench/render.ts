import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { longTasks, summarize } from "./profile-summary.js";
import { writeResults } from "./report.js";
import type { SuiteResults } from "./suite.js";

/**
 * Rewrites results.md and the SVG charts of a results directory from its results.json, and
 * summarizes the CPU profiles in its profiles/ again (after a change to the report or to the
 * summary, without running the suite): `node dist/bench/render.js [bench/results]`.
 */

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dir = resolve(REPO, process.argv[2] ?? "bench/results");
const results = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as SuiteResults;

const profileOf = (name: string): string | undefined => {
  const d = join(dir, "profiles", name);
  if (!existsSync(d)) return undefined;
  const files = readdirSync(d)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort();
  return files.length > 0 ? join(d, files.at(-1)!) : undefined;
};

for (const st of results.stores) {
  for (const kind of ["publish", "drain", "e2e"] as const) {
    const file = profileOf(`${st.store}-${kind}`);
    if (file === undefined) continue;
    st.profiles[kind] = summarize(file, 30);
    if (kind === "e2e")
      st.longTasks = longTasks(file, 40)
        .filter((t) => t.startMs > 1500)
        .slice(0, 8);
  }
}

writeResults(dir, results);
process.stdout.write(`rewrote ${relative(process.cwd(), dir) || "."}/results.md and charts\n`);
