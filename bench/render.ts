import { readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { summarize } from "./checks.js";
import { REPO } from "./lib/repo.js";
import { recordProfile } from "./profiles.js";
import { writeResults } from "./report.js";
import type { SuiteResults } from "./suite-results.js";

/**
 * Rewrites results.md and the SVG charts of a results directory from its results.json, and
 * summarizes the CPU profiles in its profiles/ again (after a change to the report or to the
 * summary, without running the suite): `node dist/bench/render.js [bench/results]`.
 */

const dir = resolve(REPO, process.argv[2] ?? "bench/results");
const results = JSON.parse(readFileSync(join(dir, "results.json"), "utf8")) as SuiteResults;

for (const st of results.stores) {
  for (const kind of ["publish", "drain", "e2e"] as const) recordProfile(st, join(dir, "profiles"), kind);
}

// Figures and checks again: the report or the targets may have changed since the run.
summarize(results);
writeResults(dir, results);
process.stdout.write(`rewrote ${relative(process.cwd(), dir) || "."}/results.md and charts\n`);
