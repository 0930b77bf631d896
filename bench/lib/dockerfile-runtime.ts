import { readFileSync } from "node:fs";
import { join } from "node:path";
import { words } from "./args.js";
import { REPO } from "./repo.js";

/**
 * The runtime settings of the container image: the `ENV` lines of the Dockerfile's last stage,
 * NODE_OPTIONS as Node arguments and the others (MALLOC_ARENA_MAX, …) as environment. Without a
 * Dockerfile, none: the broker runs with the suite's environment.
 */
export function dockerfileRuntime(): { nodeOptions: string[]; env: Record<string, string> } {
  const env: Record<string, string> = {};
  let nodeOptions: string[] = [];
  try {
    const text = readFileSync(join(REPO, "Dockerfile"), "utf8");
    const stages = text.split(/^FROM\s/m);
    for (const m of (stages[stages.length - 1] ?? "").matchAll(/^ENV\s+(\w+)=("([^"]*)"|(\S+))/gm)) {
      const [key, value] = [m[1]!, m[3] ?? m[4] ?? ""];
      if (key === "NODE_OPTIONS") nodeOptions = words(value);
      else if (key !== "NODE_ENV") env[key] = value;
    }
  } catch {
    // No Dockerfile: the broker runs with the suite's environment.
  }
  return { nodeOptions, env };
}
