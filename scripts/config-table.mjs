// Prints the README's configuration table from the settings in src/config (run after a build):
//   node scripts/config-table.mjs --write   rewrites the table between the README's markers.
import { readFileSync, writeFileSync } from "node:fs";
import { envName, flagName, OPTIONS } from "../dist/src/config/index.js";

const MiB = 1 << 20;
function show(o) {
  if (o.kind === "bytes") return o.default === 0 ? "0" : o.default % MiB === 0 ? `${o.default / MiB} MiB` : String(o.default);
  if (o.kind === "duration") {
    const d = o.default;
    if (d % 86_400_000 === 0 && d > 0) return `${d / 86_400_000} d`;
    if (d % 60_000 === 0 && d > 0) return `${d / 60_000} min`;
    if (d % 1000 === 0 && d > 0) return `${d / 1000} s`;
    return `${d} ms`;
  }
  return o.default === "" ? "none" : `\`${o.default}\``;
}
const rows = OPTIONS.map((o) => `| \`--${flagName(o.key)}\` | \`${envName(o.key)}\` | ${show(o)} | ${o.doc} |`);
const table = ["| flag | environment | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
if (process.argv.includes("--write")) {
  const readme = readFileSync("README.md", "utf8");
  const start = "<!-- config-table:start -->";
  const end = "<!-- config-table:end -->";
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  if (i < 0 || j < 0) throw new Error("README.md lacks the config-table markers");
  writeFileSync("README.md", `${readme.slice(0, i + start.length)}\n${table}\n${readme.slice(j)}`);
} else {
  console.log(table);
}
