import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root: three levels above this file's compiled copy (dist/bench/lib/repo.js). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
