import type { TopicRecord } from "../../core/index.js";
import type { MysqlStore } from "../mysql/mysql-store.js";
import type { HostUrl } from "./store-urls.js";

/** One database of a multi-host store: open, or not reachable yet (its topics get UNAVAILABLE). */
export interface HostSlot extends HostUrl {
  /** Position in `--store`; the first holds the placement catalog. */
  readonly index: number;
  store: MysqlStore | undefined;
  /** Why it is not open, while it is not. */
  down: string | undefined;
}

/**
 * A topic where the placement catalog says it lives, with the calls in progress on that copy. A
 * move waits for the writes in progress to end before it copies the tail (new ones wait at the
 * move's gate), and for every call in progress before it drops the old copy.
 */
export class PlacedTopic {
  #writes = 0;
  #calls = 0;
  #idle: (() => void)[] = [];

  constructor(
    /** The id the core sees (the placement row's). */
    readonly id: number,
    readonly host: HostSlot,
    /** The topic as its host's store knows it (the host's own id). */
    public local: TopicRecord,
  ) {}

  /** The record the core sees: the host's, under the placement id. */
  get record(): TopicRecord {
    return { ...this.local, id: this.id };
  }

  /** Counts a call from now until it settles. */
  async track<T>(write: boolean, call: () => Promise<T>): Promise<T> {
    this.#calls++;
    if (write) this.#writes++;
    try {
      return await call();
    } finally {
      this.#calls--;
      if (write) this.#writes--;
      const waiting = this.#idle;
      this.#idle = [];
      for (const wake of waiting) wake();
    }
  }

  /** Resolves once no write (or, with `calls`, no call at all) is in progress. */
  async idle(what: "writes" | "calls"): Promise<void> {
    while ((what === "writes" ? this.#writes : this.#calls) > 0)
      await new Promise<void>((r) => this.#idle.push(r));
  }
}
