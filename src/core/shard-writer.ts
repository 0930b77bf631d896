import { backoffDelay, sleep } from "./backoff.js";
import type { LogMessage, TopicRecord } from "./model.js";
import type { BrokerObserver } from "./observer.js";
import type { Store } from "./store.js";

/** Called when a shard has committed a batch (its messages in seq order). */
export type CommittedHandler = (shard: number, batch: readonly LogMessage[], bytes: number) => void;

/**
 * One writer per shard table, with at most one INSERT in flight: while it runs, new rows queue
 * up and go out together in the next statement (bounded by the store's rows and bytes per
 * INSERT; format 2 writes each run of consecutive seqs as one row, so far more messages fit).
 * Rows are written in seq order, so each commit covers a prefix of the shard's rows.
 * A failed INSERT is retried with backoff until it succeeds: rows have seqs, and dropping them
 * would leave a gap that the watermark could never pass.
 */
export class ShardWriter {
  readonly #queue: { row: LogMessage; bytes: number }[] = [];
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

  get queuedRows(): number {
    return this.#queue.length - this.#head;
  }

  /** Whether an INSERT is running or rows wait. */
  get busy(): boolean {
    return this.#running || this.#scheduled || this.queuedRows > 0;
  }

  push(row: LogMessage, bytes: number): void {
    if (this.#abandoned) return;
    this.#queue.push({ row, bytes });
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

  async #run(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    const { maxInsertBytes } = this.store.capabilities;
    const maxInsertRows =
      this.topic.format === 2
        ? this.store.capabilities.maxRunMessages
        : this.store.capabilities.maxInsertRows;
    while (this.queuedRows > 0) {
      const batch: LogMessage[] = [];
      let bytes = 0;
      while (this.#head < this.#queue.length && batch.length < maxInsertRows) {
        const next = this.#queue[this.#head]!;
        if (batch.length > 0 && bytes + next.bytes > maxInsertBytes) break;
        batch.push(next.row);
        bytes += next.bytes;
        this.#head++;
      }
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue.splice(0, this.#head);
        this.#head = 0;
      }
      for (let attempt = 0; ; attempt++) {
        const startedAt = Date.now();
        const t0 = performance.now();
        try {
          await this.store.insertMessages(this.topic, this.shard, batch);
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
