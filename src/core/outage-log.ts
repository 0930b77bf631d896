import type { LogFn } from "./observer.js";

/**
 * How often a failure that goes on is logged again: an outage of minutes then gives a handful of
 * lines, not one per retry (a topic's state is retried every ~50 ms: thousands per topic).
 */
export const OUTAGE_REMIND_MS = 30_000;

/** The lines an OutageLog writes. */
export interface OutageMessages {
  /** `warn` when the failures start, with `err`. */
  readonly started: string;
  /** `warn` at most once per reminder interval while they go on, with `failures`, `since`, `err`. */
  readonly ongoing: string;
  /** `info` when they end, with the duration and `failures`. */
  readonly ended: string;
  /** The name of the ended line's duration field, in ms (default `failingForMs`). */
  readonly durationField?: string;
}

/**
 * A condition that makes something fail again and again (a server gone read-only, a full disk,
 * state writes refused), logged as an operator wants it: one `warn` when it starts, with the
 * error; at most one reminder per `remindMs` while it lasts, with how many failures since when
 * and the last error; one `info` when it ends, with how long it lasted and how many failures.
 * The failures in between are only counted. `fields` go on every line (what failed: a topic, a
 * server, a place).
 */
export class OutageLog {
  /** Date.now() of the first failure; 0 while nothing fails. */
  #since = 0;
  #failures = 0;
  #loggedAt = 0;

  constructor(
    private readonly log: LogFn | undefined,
    private readonly messages: OutageMessages,
    private readonly fields: Readonly<Record<string, unknown>>,
    private readonly remindMs = OUTAGE_REMIND_MS,
    /** The clock (tests). */
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the condition holds (a failure since the last recovery). */
  get failing(): boolean {
    return this.#since !== 0;
  }

  /** Date.now() when the condition started; 0 while it does not hold. */
  get since(): number {
    return this.#since;
  }

  /** One more failure with `err`: logs the start, or a reminder when one is due. */
  failed(err: unknown): void {
    const now = this.now();
    const detail = err instanceof Error ? err.message : String(err);
    this.#failures++;
    if (this.#since === 0) {
      this.#since = now;
      this.#loggedAt = now;
      this.log?.("warn", this.messages.started, { ...this.fields, err: detail });
    } else if (now - this.#loggedAt >= this.remindMs) {
      this.#loggedAt = now;
      this.log?.("warn", this.messages.ongoing, {
        ...this.fields,
        failures: this.#failures,
        since: new Date(this.#since).toISOString(),
        err: detail,
      });
    }
  }

  /** It works again: logs the end (with `extra` fields) if the condition held. */
  recovered(extra?: Readonly<Record<string, unknown>>): void {
    if (this.#since === 0) return;
    this.log?.("info", this.messages.ended, {
      ...this.fields,
      ...extra,
      [this.messages.durationField ?? "failingForMs"]: Math.max(0, this.now() - this.#since),
      failures: this.#failures,
    });
    this.#since = 0;
    this.#failures = 0;
  }
}
