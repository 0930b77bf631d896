import { CommitTracker } from "./commit-tracker.js";
import { NerveBusError } from "./errors.js";
import type { LogMessage, NewMessage, TopicRecord } from "./model.js";
import { messageBytes } from "./model.js";
import { ShardWriter } from "./shard-writer.js";
import type { Store } from "./store.js";
import { TailCache } from "./tail-cache.js";
import { newTraceparent } from "./trace-context.js";
import type { WriteBudget } from "./write-budget.js";

/** What a confirmed append returns. */
export interface AppendResult {
  readonly firstSeq: number;
  readonly lastSeq: number;
}

interface PendingConfirm {
  readonly lastSeq: number;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export interface TopicOptions {
  readonly tailCacheBytes: number;
  /** How long a pack may wait for its confirm when its call has no deadline. */
  readonly confirmTimeoutMs: number;
  readonly log: (level: "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * One topic's write path: seqs are assigned in memory in arrival order (consecutive within a
 * pack), rows go to the shard writers, the commit tracker derives the writer watermark, and
 * packs are confirmed once the watermark covers them. Subscribers read through `read` and are
 * told about new messages through `onAdvance`.
 *
 * The watermark is persisted lazily (at most every 100 ms): on start-up the store recovers the
 * contiguous run of committed rows above the persisted value, so no confirmed pack depends on
 * that write.
 */
export class Topic {
  readonly record: TopicRecord;
  readonly cache: TailCache;
  readonly #tracker: CommitTracker;
  readonly #writers: ShardWriter[];
  readonly #confirms: PendingConfirm[] = [];
  #confirmHead = 0;
  #watermark: number;
  #persistedWatermark: number;
  #persistTimer: NodeJS.Timeout | undefined;
  #persisting: Promise<void> | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #lastStoreError: unknown;
  #closed = false;
  readonly #listeners = new Set<(watermark: number) => void>();

  constructor(
    record: TopicRecord,
    watermark: number,
    private readonly store: Store,
    private readonly budget: WriteBudget,
    private readonly options: TopicOptions,
  ) {
    this.record = record;
    this.#watermark = watermark;
    this.#persistedWatermark = watermark;
    this.cache = new TailCache(options.tailCacheBytes);
    this.#tracker = new CommitTracker(record.shards, watermark);
    this.#writers = Array.from(
      { length: record.shards },
      (_, shard) =>
        new ShardWriter(
          record,
          shard,
          store,
          (s, through, bytes) => this.#committed(s, through, bytes),
          (err, attempt) => {
            this.#lastStoreError = err;
            if (attempt % 10 === 0) {
              options.log("warn", "shard write failed; retrying", {
                topic: record.name,
                shard,
                attempt,
                err: String(err),
              });
            }
          },
        ),
    );
  }

  /** Every seq ≤ watermark is durable and visible to subscribers. */
  get watermark(): number {
    return this.#watermark;
  }

  get lastAssigned(): number {
    return this.#tracker.lastAssigned;
  }

  /** Calls `listener` whenever the watermark advances. Returns the unsubscribe function. */
  onAdvance(listener: (watermark: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Appends validated messages that already hold `bytes` of the write budget. Resolves with
   * their seqs once the watermark covers them; rejects with UNAVAILABLE when that does not
   * happen by `deadline`, in which case the messages may still become durable later.
   */
  append(messages: readonly NewMessage[], bytes: number, deadline: number): Promise<AppendResult> {
    if (this.#closed) {
      this.budget.release(bytes);
      return Promise.reject(new NerveBusError("unavailable", "broker is shutting down"));
    }
    const now = Date.now();
    const firstSeq = this.#tracker.assign(messages.length);
    const shards = this.record.shards;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      const seq = firstSeq + i;
      const attributes =
        m.attributes.traceparent === undefined
          ? { ...m.attributes, traceparent: newTraceparent() }
          : m.attributes;
      const row: LogMessage = {
        seq,
        publishTime: now,
        data: m.data,
        attributes,
        orderingKey: m.orderingKey,
        messageId: m.messageId,
      };
      this.cache.append(row);
      this.#writers[seq % shards]!.push(row, messageBytes(row));
    }
    const lastSeq = firstSeq + messages.length - 1;
    return new Promise<AppendResult>((resolve, reject) => {
      this.#confirms.push({ lastSeq, deadline, resolve: () => resolve({ firstSeq, lastSeq }), reject });
      this.#armSweep();
    });
  }

  /** Reads durable messages in [fromSeq, toSeq] (toSeq is clamped to the watermark). */
  async read(fromSeq: number, toSeq: number): Promise<LogMessage[]> {
    const to = Math.min(toSeq, this.#watermark);
    if (to < fromSeq) return [];
    const out: LogMessage[] = [];
    let seq = fromSeq;
    for (; seq <= to; seq++) {
      const m = this.cache.get(seq);
      if (m === undefined) break;
      out.push(m);
    }
    if (seq > to) return out;
    return [...out, ...(await this.store.readMessages(this.record, seq, to))];
  }

  /** Finishes every queued write, persists the watermark, and fails packs that still wait. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    const flushed = Promise.all(this.#writers.map((w) => w.idle()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([flushed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    clearTimeout(this.#persistTimer);
    clearTimeout(this.#sweepTimer);
    const err = new NerveBusError(
      "unavailable",
      "broker shut down before the pack was confirmed; outcome unknown",
    );
    for (let i = this.#confirmHead; i < this.#confirms.length; i++) this.#confirms[i]!.reject(err);
    this.#confirms.length = 0;
    this.#confirmHead = 0;
    await this.#persisting;
    await this.#persistWatermark();
  }

  #committed(shard: number, throughSeq: number, bytes: number): void {
    this.budget.release(bytes);
    this.#tracker.commit(shard, throughSeq);
    const watermark = this.#tracker.watermark;
    if (watermark === this.#watermark) return;
    this.#watermark = watermark;
    this.#lastStoreError = undefined;
    while (
      this.#confirmHead < this.#confirms.length &&
      this.#confirms[this.#confirmHead]!.lastSeq <= watermark
    ) {
      this.#confirms[this.#confirmHead++]!.resolve();
    }
    if (this.#confirmHead > 1024 && this.#confirmHead * 2 > this.#confirms.length) {
      this.#confirms.splice(0, this.#confirmHead);
      this.#confirmHead = 0;
    }
    for (const listener of this.#listeners) listener(watermark);
    if (this.#persistTimer === undefined) {
      this.#persistTimer = setTimeout(() => {
        this.#persistTimer = undefined;
        this.#persisting = this.#persistWatermark();
      }, 100);
    }
  }

  async #persistWatermark(): Promise<void> {
    const watermark = this.#watermark;
    if (watermark === this.#persistedWatermark) return;
    try {
      await this.store.savePointers(this.record, [{ subscription: "", ptr: watermark, state: null }]);
      this.#persistedWatermark = Math.max(this.#persistedWatermark, watermark);
    } catch (err) {
      // Not fatal: recovery at start-up scans from the last persisted value.
      this.options.log("warn", "persisting the watermark failed", {
        topic: this.record.name,
        err: String(err),
      });
    }
  }

  /** Fails packs whose deadline passed while the store could not keep up. */
  #armSweep(): void {
    if (this.#sweepTimer !== undefined) return;
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined;
      const now = Date.now();
      let kept = this.#confirmHead;
      for (let i = this.#confirmHead; i < this.#confirms.length; i++) {
        const c = this.#confirms[i]!;
        if (c.deadline <= now) {
          const cause = this.#lastStoreError === undefined ? "" : `: ${String(this.#lastStoreError)}`;
          c.reject(
            new NerveBusError(
              "unavailable",
              `pack not durable before its deadline; outcome unknown${cause}`,
              {
                cause: this.#lastStoreError,
              },
            ),
          );
        } else {
          this.#confirms[kept++] = c;
        }
      }
      this.#confirms.length = kept;
      if (this.#confirms.length > this.#confirmHead) this.#armSweep();
    }, 250);
    this.#sweepTimer.unref();
  }
}
