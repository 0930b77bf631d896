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

/**
 * `node --cpu-prof` names a profile CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile, one per
 * thread: the broker's event loop is thread 0; a SQLite broker's checkpoint or writer thread
 * writes one of its own, which sorts after it.
 */
const MAIN_THREAD_PROFILE = /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/;

/**
 * The newest event-loop (main thread) .cpuprofile in `dir`, or undefined when there is none (or
 * no such directory). Worker threads' profiles are passed over: picking the newest file of all
 * summarized a SQLite broker's checkpoint thread instead of its event loop.
 */
export function latestProfile(dir: string): string | undefined {
  try {
    const files = readdirSync(dir).filter((f) => MAIN_THREAD_PROFILE.test(f));
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
