import { type LogFn, OutageLog, OutOfSpaceError, type SpaceState } from "../core/index.js";
import { isOutOfSpace } from "./errors.js";

/**
 * How long after the last write that failed for lack of space the place counts as full, when no
 * insert has succeeded meanwhile. Longer than the shard writers' longest retry wait (2 s), so
 * while an insert is being retried it never lapses; it ends the state when the failing write
 * was a one-off (a topic creation), which nothing retries: the next publish's insert is then
 * the probe.
 */
export const SPACE_RECHECK_MS = 10_000;

/**
 * Whether one file or database of a store is out of disk space, as its writes tell: a write
 * that fails so sets it (a warning is logged, then a reminder at most every 30 s: OutageLog), an
 * insert of messages that commits clears it (an info line), and so does SPACE_RECHECK_MS without
 * such a failure. Only a message insert
 * clears it early: a small write (a pointer, a catalog row) may fit in what is left of the
 * write-ahead log while an insert does not (seen on a full tmpfs), and letting publishes in
 * on such a success would only assign seqs to packs that then wait.
 */
export class SpaceWatch {
  #error: OutOfSpaceError | undefined;
  #detail = "";
  readonly #outage: OutageLog;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    /** The SQLite file, or HOST:PORT/DATABASE (never a URL with credentials). */
    readonly place: string,
    log: LogFn | undefined,
    /** SPACE_RECHECK_MS but in tests. */
    private readonly recheckMs = SPACE_RECHECK_MS,
  ) {
    this.#outage = new OutageLog(
      log,
      {
        started: "store is out of disk space; publishes are refused until messages can be written again",
        ongoing: "store is still out of disk space; publishes are refused",
        ended: "store has disk space again; publishes are accepted",
        durationField: "fullForMs",
      },
      { place },
    );
  }

  /** A write failed with `err`: when for lack of disk space, the place is full from now on. */
  failed(err: unknown): void {
    if (!isOutOfSpace(err)) return;
    this.#detail = err instanceof Error ? err.message : String(err);
    this.#outage.failed(err);
    this.#error = new OutOfSpaceError(
      this.place,
      `store is out of disk space (${this.place}) since ${new Date(this.#outage.since).toISOString()}: new messages are refused until space is freed there; retry later`,
      { cause: err },
    );
    clearTimeout(this.#timer);
    this.#timer = setTimeout(
      () => this.#clear(`no write failed for lack of space for ${this.recheckMs / 1000} s`),
      this.recheckMs,
    );
    this.#timer.unref();
  }

  /** Messages were inserted and committed: there is room again. */
  inserted(): void {
    if (this.#error !== undefined) this.#clear("messages were written again");
  }

  /** The error to refuse a publish with while full, else undefined. */
  refusal(): OutOfSpaceError | undefined {
    return this.#error;
  }

  state(): SpaceState {
    return {
      place: this.place,
      full: this.#error !== undefined,
      since: this.#outage.since,
      error: this.#error === undefined ? undefined : this.#detail,
    };
  }

  /** Stops the timer (the store is closing). */
  close(): void {
    clearTimeout(this.#timer);
  }

  #clear(why: string): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#outage.recovered({ why });
    this.#error = undefined;
    this.#detail = "";
  }
}
