import type { LogFn } from "./observer.js";
import type { Store } from "./store.js";
import type { Subscription } from "./subscription.js";
import type { Topic } from "./topic.js";

/** Rows one DELETE removes at most: one short transaction each, so writers never wait long. */
const DELETE_CHUNK_ROWS = 5000;

export interface RetentionOptions {
  /** How often retention runs. */
  readonly intervalMs: number;
  readonly log: LogFn;
  /** True once the broker shuts down: no new run starts and a running one stops between chunks. */
  readonly closing: () => boolean;
}

/**
 * One topic's retention: every `intervalMs` it deletes the messages past the topic's retention
 * time and bytes, in bounded chunks so writers are never held up; subscriptions whose floor was
 * below the cut move forward and count what they skipped. Off for ephemeral topics and topics
 * without a retention limit; a failed run is logged and tried again at the next interval.
 */
export class RetentionJob {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly topic: Topic,
    private readonly store: Store,
    /** The topic's subscriptions (loading or loaded), moved forward past each cut. */
    private readonly subscriptions: ReadonlyMap<string, Promise<Subscription>>,
    private readonly options: RetentionOptions,
  ) {}

  /** (Re)starts the timer for the topic's current settings; call again after they change. */
  arm(): void {
    clearTimeout(this.#timer);
    const c = this.topic.record.config;
    if (c.ephemeral || (c.retentionMs === 0 && c.retentionBytes === 0)) return;
    if (this.#stopped || this.options.closing()) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#run()
        .catch((err: unknown) =>
          this.options.log("warn", "retention failed; will retry", {
            topic: this.topic.record.name,
            err: String(err),
          }),
        )
        .finally(() => {
          this.#running = undefined;
          this.arm();
        });
    }, this.options.intervalMs);
    this.#timer.unref();
  }

  /** Stops for good (the topic is closing or deleted); resolves once a running pass ends. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  async #run(): Promise<void> {
    const topic = this.topic;
    const c = topic.record.config;
    if (c.ephemeral) return;
    const watermark = topic.watermark;
    let cutoff = 0;
    if (c.retentionMs > 0) {
      const seq = await topic.seqAtTime(Date.now() - c.retentionMs);
      cutoff = seq === 0 ? watermark : seq - 1;
    }
    if (c.retentionBytes > 0) {
      const first = await this.store.firstSeq(topic.record);
      const avg = await this.store.averageRowBytes(topic.record, 1000);
      if (first > 0 && avg > 0 && (watermark - first + 1) * avg > c.retentionBytes) {
        cutoff = Math.max(cutoff, watermark - Math.floor(c.retentionBytes / avg));
      }
    }
    cutoff = Math.min(cutoff, watermark);
    if (cutoff < 1) return;
    for (const pending of this.subscriptions.values()) (await pending).skipThrough(cutoff);
    for (;;) {
      const n = await this.store.deleteMessagesThrough(topic.record, cutoff, DELETE_CHUNK_ROWS);
      topic.retentionDeleted += n;
      if (n === 0 || this.#stopped || this.options.closing()) break;
      await new Promise((r) => setImmediate(r));
    }
  }
}
