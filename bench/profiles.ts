import { readdirSync } from "node:fs";
import { join } from "node:path";
import { longTasks, summarize } from "./profile-summary.js";
import type { StoreResults } from "./suite-results.js";

/** The profiled loads whose summaries results.json keeps, one directory `<store>-<kind>` each. */
export type ProfileKind = keyof StoreResults["profiles"];

/** Where a broker writes `store`'s `kind` profile: `<profilesDir>/<store>-<kind>/`. */
export function profileDir(profilesDir: string, store: string, kind: ProfileKind): string {
  return join(profilesDir, `${store}-${kind}`);
}

/** The newest .cpuprofile in `dir`, or undefined when there is none (or no such directory). */
export function latestProfile(dir: string): string | undefined {
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile"));
    return files.length > 0 ? join(dir, files.sort().at(-1)!) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Puts the summary of `store`'s newest `kind` profile under `profilesDir` into its results (and,
 * for the end-to-end one, the longest event-loop stalls); leaves them as they are without one.
 */
export function recordProfile(st: StoreResults, profilesDir: string, kind: ProfileKind): void {
  const file = latestProfile(profileDir(profilesDir, st.store, kind));
  if (file === undefined) return;
  st.profiles[kind] = summarize(file, 30);
  // The first second is start-up (module loading); the stalls that matter come later.
  if (kind === "e2e")
    st.longTasks = longTasks(file, 40)
      .filter((t) => t.startMs > 1500)
      .slice(0, 8);
}
