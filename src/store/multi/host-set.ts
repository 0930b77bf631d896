import { type DatabaseOwnership, NerveBusError, type OwnershipState } from "../../core/index.js";
import { mapStoreError } from "../errors.js";
import { MysqlStore } from "../mysql/mysql-store.js";
import type { MysqlStoreOptions } from "../mysql/open-pool.js";
import type { HostSlot } from "./placed-topic.js";
import type { HostUrl } from "./store-urls.js";

/** 2 s between attempts to open an unreachable database: a restarted server is back in use soon, and the log gets one line per failure only. */
const RETRY_MS = 2000;

/** How each database of the set is opened (MysqlStoreOptions without the URL). */
export type HostOptions = Omit<MysqlStoreOptions, "url">;

/**
 * The databases of a multi-host store, each a MysqlStore with its own lease, opened in `--store`
 * order (so two brokers starting together queue on the first database rather than each taking
 * some). The first must open, as must any that another broker owns (FAILED_PRECONDITION, as with
 * one database); one that cannot be reached is left down and retried in the background, its
 * topics failing with UNAVAILABLE meanwhile, the others served.
 */
export class HostSet {
  /** Told of each database opened after start (it was unreachable then). */
  onLateOpen: ((store: MysqlStore) => Promise<void>) | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  #opening = new Map<HostSlot, Promise<void>>();

  private constructor(
    readonly slots: readonly HostSlot[],
    private readonly options: HostOptions,
  ) {}

  static async open(urls: readonly HostUrl[], options: HostOptions): Promise<HostSet> {
    const set = new HostSet(
      urls.map((u, index) => ({ ...u, index, store: undefined, down: "not opened yet" })),
      options,
    );
    try {
      for (const slot of set.slots) {
        try {
          await set.#open(slot);
        } catch (err) {
          const mapped = mapStoreError(err, `opening ${slot.key}`);
          if (slot.index === 0 || mapped.code !== "unavailable") throw mapped;
          options.log(
            "warn",
            "MySQL host unreachable at start; its topics get UNAVAILABLE until it is back",
            {
              host: slot.key,
              err: mapped.message,
            },
          );
        }
      }
    } catch (err) {
      await set.close();
      throw err;
    }
    set.#scheduleRetry();
    return set;
  }

  /** The slot a placement key names, or undefined. */
  slot(key: string): HostSlot | undefined {
    return this.slots.find((s) => s.key === key);
  }

  /** The slot's store; UNAVAILABLE while it is down. */
  store(slot: HostSlot): MysqlStore {
    if (slot.store === undefined)
      throw new NerveBusError(
        "unavailable",
        `MySQL host ${slot.key} is not reachable (${slot.down}); retrying`,
      );
    return slot.store;
  }

  /**
   * Ownership as one: the first database's lease, valid only while every open database's is,
   * aged as the oldest renewal; lost once any is. `databases` has each one's own, a database
   * not open (yet or any more) not valid, with why.
   */
  ownership(): OwnershipState {
    const states = this.slots.flatMap((s) => (s.store ? [s.store.ownership()] : []));
    const databases = this.slots.map(
      (s): DatabaseOwnership =>
        s.store
          ? { key: s.key, ...s.store.ownership() }
          : {
              key: s.key,
              mechanism: "lease",
              owner: "",
              epoch: 0,
              ageMs: 0,
              valid: false,
              lost: s.down,
              // Not open: this broker holds none of its topics.
              ...(this.options.cluster ? { topicsOwned: 0 } : {}),
            },
    );
    const first = states[0];
    if (first === undefined)
      return { mechanism: "lease", owner: "", epoch: 0, ageMs: 0, valid: false, lost: "closed", databases };
    return {
      ...first,
      ageMs: Math.max(...states.map((s) => s.ageMs)),
      valid: states.every((s) => s.valid),
      lost: states.find((s) => s.lost !== undefined)?.lost,
      databases,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    await Promise.allSettled(this.#opening.values());
    for (const slot of this.slots) {
      const store = slot.store;
      slot.store = undefined;
      slot.down = "closed";
      await store?.close();
    }
  }

  async #open(slot: HostSlot): Promise<void> {
    const store = await MysqlStore.open({ ...this.options, url: slot.url });
    if (this.#closed) {
      await store.close();
      return;
    }
    slot.store = store;
    slot.down = undefined;
    await this.onLateOpen?.(store);
  }

  #scheduleRetry(): void {
    if (this.#closed || this.slots.every((s) => s.store !== undefined)) return;
    this.#retry = setTimeout(() => void this.#retryDown(), RETRY_MS);
    this.#retry.unref();
  }

  async #retryDown(): Promise<void> {
    for (const slot of this.slots) {
      if (slot.store !== undefined || this.#closed) continue;
      const opening = this.#open(slot).then(
        () =>
          this.options.log("info", "MySQL host reachable again; its topics are served", { host: slot.key }),
        (err: unknown) => {
          slot.down = mapStoreError(err, `opening ${slot.key}`).message;
        },
      );
      this.#opening.set(slot, opening);
      await opening;
      this.#opening.delete(slot);
    }
    this.#scheduleRetry();
  }
}
