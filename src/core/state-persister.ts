import { storeOutOfSpace } from "./errors.js";
import type { LogFn } from "./observer.js";
import { OutageLog } from "./outage-log.js";
import type { Store } from "./store.js";
import type { Subscription } from "./subscription.js";
import type { Topic } from "./topic.js";

export interface StatePersisterOptions {
  /** How long acks are gathered before the state is written (coalescing). */
  readonly intervalMs: number;
  readonly log: LogFn;
}

/**
 * Persists the state (floor, acked ranges, redelivery entries) of a topic's subscriptions:
 * subscriptions that changed are gathered for `intervalMs` and written in one store call, then
 * the acks they carried are confirmed to the consumers that asked. A failed write is retried with
 * the next one; its confirmations wait for it. While writes fail, the log has one warning when
 * they start, a reminder at most every 30 s and one info line when they succeed again (OutageLog);
 * a full disk is the store's SpaceWatch's to log.
 */
export class StatePersister {
  readonly #dirty = new Set<Subscription>();
  #timer: NodeJS.Timeout | undefined;
  #persisting: Promise<void> | undefined;
  /** Set by close(): nothing is scheduled after it, not even the retry of a write in progress. */
  #closed = false;
  readonly #outage: OutageLog;

  constructor(
    private readonly topic: Topic,
    private readonly store: Store,
    private readonly options: StatePersisterOptions,
  ) {
    this.#outage = new OutageLog(
      options.log,
      {
        started: "persisting subscription state failed; retrying until it is written",
        ongoing: "persisting subscription state still fails; retrying",
        ended: "subscription state is written again",
      },
      { topic: topic.record.name },
    );
  }

  /** Asks for `sub`'s state to be written with the next batch. */
  markDirty(sub: Subscription): void {
    this.#dirty.add(sub);
    if (this.#closed || this.#timer !== undefined || this.#persisting !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#persisting = this.#persist().finally(() => {
        this.#persisting = undefined;
        const next = this.#dirty.values().next();
        if (!next.done) this.markDirty(next.value);
      });
    }, this.options.intervalMs);
  }

  /** Drops a deleted subscription's pending write. */
  forget(sub: Subscription): void {
    this.#dirty.delete(sub);
  }

  /** Writes now (after a write in progress), delivering the confirmations it carries. */
  async flush(): Promise<void> {
    await this.#persisting;
    await this.#persist();
  }

  /** Stops the timer; with `persist`, writes what is pending (shutdown), else drops it (deletion). */
  async close(persist: boolean): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#persisting;
    if (persist) await this.#persist();
  }

  /** Persists every dirty subscription in one write, then confirms their acks. */
  async #persist(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const subs = [...this.#dirty];
    this.#dirty.clear();
    const snapshots = subs.map((s) => ({ sub: s, snap: s.snapshot() }));
    try {
      await this.store.savePointers(
        this.topic.record,
        snapshots.map(({ sub, snap }) =>
          snap.deadLetters === undefined
            ? { subscription: sub.name, ptr: snap.ptr, state: snap.state }
            : { subscription: sub.name, ptr: snap.ptr, state: snap.state, deadLetters: snap.deadLetters },
        ),
      );
    } catch (err) {
      if (!storeOutOfSpace(err)) this.#outage.failed(err);
      for (const { sub, snap } of snapshots) {
        this.#dirty.add(sub);
        sub.restoreConfirms(snap.confirms);
      }
      return;
    }
    this.#outage.recovered();
    for (const { snap } of snapshots) {
      for (const [consumer, list] of snap.confirms) {
        if (!consumer.detached) consumer.sink.ackResults(list.acked, list.already, list.ignored);
      }
    }
  }
}
