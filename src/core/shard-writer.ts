import { type IndexedRun, sliceRun } from "../wire/index.js";
import { backoffDelay, sleep } from "./backoff.js";
import type { TopicRecord } from "./model.js";
import type { BrokerObserver } from "./observer.js";
import type { Store } from "./store.js";

/** Called when a shard has committed a batch (its runs in seq order). */
export type CommittedHandler = (shard: number, batch: readonly IndexedRun[], bytes: number) => void;

/**
 * One writer per shard table, with at most one INSERT in flight: while it runs, new runs queue
 * up and go out together in the next statement (bounded by the store's messages and bytes per
 * INSERT, a run cut where it does not fit; format 2 stores runs that follow one another as one
 * row, so far more messages fit). Runs are written in seq order, so each commit covers a prefix
 * of the shard's runs.
 * A failed INSERT is retried with backoff until it succeeds: rows have seqs, and dropping them
 * would leave a gap that the watermark could never pass.
 */
export class ShardWriter {
  readonly #queue: { run: IndexedRun; bytes: number }[] = [];
  #head = 0;
  #running = false;
  #scheduled = false;
  #idleWaiters: (() => void)[] = [];
  #abandoned: Error | undefined;

  constructor(
    readonly topic: TopicRecord,
    readonly shard: number,
    private readonly store: Store,
    private readonly onCommitted: CommittedHandler,
    private readonly onError: (err: unknown, attempt: number) => void,
    private readonly observer: BrokerObserver,
  ) {}

  /** Runs waiting (a pack's messages are one run). */
  get queuedRows(): number {
    return this.#queue.length - this.#head;
  }

  /** Whether an INSERT is running or rows wait. */
  get busy(): boolean {
    return this.#running || this.#scheduled || this.queuedRows > 0;
  }

  /** Queues a run that holds `bytes` of the write budget (released once it is committed). */
  push(run: IndexedRun, bytes: number): void {
    if (this.#abandoned) return;
    this.#queue.push({ run, bytes });
    if (!this.#running && !this.#scheduled) {
      // Start on the next turn of the event loop, so every pack that arrived in this turn
      // shares the INSERT.
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        void this.#run();
      });
    }
  }

  /**
   * Gives up: the broker no longer owns the topic, so nothing queued can land. Retries stop
   * and queued rows are dropped (their packs have been failed by the topic).
   */
  abandon(err: Error): void {
    this.#abandoned = err;
    this.#queue.length = 0;
    this.#head = 0;
  }

  /** Resolves once every queued row is committed (or abandoned). */
  idle(): Promise<void> {
    if (this.#abandoned || (!this.#running && !this.#scheduled && this.queuedRows === 0))
      return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** How many of the run's first records fit in `room` bytes of body. */
  #fitting(run: IndexedRun, room: number): number {
    if (run.body.length <= room) return run.offsets.length;
    let lo = 0;
    let hi = run.offsets.length - 1;
    // The largest k with offsets[k] ≤ room: records 0…k−1 end where record k starts.
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (run.offsets[mid]! <= room) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  async #run(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const { maxInsertBytes } = this.store.capabilities;
    const maxInsertRows =
      this.topic.format === 2
        ? this.store.capabilities.maxRunMessages
        : this.store.capabilities.maxInsertRows;
    while (this.queuedRows > 0) {
      const batch: IndexedRun[] = [];
      let messages = 0;
      let size = 0;
      let bytes = 0;
      while (this.#head < this.#queue.length && messages < maxInsertRows) {
        const next = this.#queue[this.#head]!;
        const run = next.run;
        const n = run.offsets.length;
        const fits = Math.min(n, maxInsertRows - messages, this.#fitting(run, maxInsertBytes - size));
        if (fits === 0 && batch.length > 0) break;
        if (fits >= n) {
          batch.push(run);
          messages += n;
          size += run.body.length;
          bytes += next.bytes;
          this.#head++;
          continue;
        }
        // Too large for what is left of this INSERT: its head goes now, the rest next time,
        // with the budget share prorated.
        const cut = Math.max(1, fits);
        const share = Math.floor((next.bytes * cut) / n);
        batch.push(sliceRun(run, 0, cut));
        this.#queue[this.#head] = { run: sliceRun(run, cut, n), bytes: next.bytes - share };
        bytes += share;
        break;
      }
      // Rows taken must not stay referenced: each holds its pack's request bytes, and a topic
      // written once kept its last pack (~1 MiB per topic: 400 topics held 400 MiB after a GC,
      // test/integration/hostile-memory.test.ts).
      if (this.#head === this.#queue.length) {
        this.#queue.length = 0;
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      for (let attempt = 0; ; attempt++) {
        const startedAt = Date.now();
        const t0 = performance.now();
        try {
          await this.store.insertRuns(this.topic, this.shard, batch);
          this.observer.batchPersisted(this.topic.name, this.shard, batch, startedAt, performance.now() - t0);
          break;
        } catch (err) {
          this.observer.storeError("insert", err);
          if (this.#abandoned) break;
          this.onError(err, attempt);
          await sleep(backoffDelay(attempt, 20, 2000));
          if (this.#abandoned) break;
        }
      }
      if (this.#abandoned) break;
      this.onCommitted(this.shard, batch, bytes);
    }
    this.#running = false;
    for (const w of this.#idleWaiters.splice(0)) w();
  }
}
