import { readFileSync } from "node:fs";
import { NerveBusError } from "../core/index.js";

/**
 * A file (or a set of files) whose parsed form is replaced on reload when its contents changed
 * and still parse. `read` returns the contents as a string snapshot; `parse` throws
 * NerveBusError naming the flag, the file and the line or key.
 */
export class Reloadable<T> {
  #seen: string;
  #seenBroken = false;
  value: T;

  constructor(
    readonly label: string,
    private readonly read: () => string,
    private readonly parse: (snapshot: string) => T,
  ) {
    this.#seen = read();
    this.value = parse(this.#seen);
  }

  /**
   * True when the value was replaced. Throws when new contents do not parse (the value is kept);
   * unchanged contents are parsed again only when `force` is set and they were refused before,
   * so a file still broken is reported again on SIGHUP but not at every periodic check.
   */
  reload(force: boolean): boolean {
    const snapshot = this.read();
    if (snapshot === this.#seen && !(force && this.#seenBroken)) return false;
    this.#seen = snapshot;
    this.#seenBroken = true;
    this.value = this.parse(snapshot);
    this.#seenBroken = false;
    return true;
  }
}

function readText(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new NerveBusError("invalid_argument", `--${flag} ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** A text file `--flag PATH` as a Reloadable, undefined when the path is "". */
export function textFile<T>(
  flag: string,
  path: string,
  parse: (path: string, text: string) => T,
): Reloadable<T> | undefined {
  if (path === "") return undefined;
  return new Reloadable(
    path,
    () => readText(flag, path),
    (text) => withFlag(flag, () => parse(path, text)),
  );
}

function withFlag<T>(flag: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NerveBusError)
      throw new NerveBusError(err.code, `--${flag} ${err.message}`, { cause: err });
    throw err;
  }
}
