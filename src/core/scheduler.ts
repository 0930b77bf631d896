import { backoffDelay } from "./backoff.js";
import { monotonicNow } from "./clock.js";
import { storeOutOfSpace } from "./errors.js";
import type { NewMessage } from "./model.js";
import type { Store } from "./store.js";
import type { Topic } from "./topic.js";

/** Due entries moved per round: one read, one append, one delete. */
const BATCH = 500;
/** Timers further out than this are re-armed on the way: clock jumps, and long timers drift. */
const MAX_TIMER_MS = 60_000;

/**
 * Moves a topic's delayed messages into its log when they fall due. The schedule lives in the
 * store (durable, unbounded in count); in memory there is one timer for the earliest due time
 * and one batch at a time, so a million pending messages cost neither a million timers nor a
 * million entries of memory. Each moved message carries its schedule id; the topic remembers
 * recent ones, so a crash between the append and the schedule delete does not append it twice.
 */
export class DelayScheduler {
  #timer: NodeJS.Timeout | undefined;
  #nextDueAt = 0;
  #running: Promise<void> | undefined;
  #failures = 0;
  #closed = false;
  /** The start's read of the schedule, while it runs. */
  #starting: Promise<void> | undefined;
  /** Entries waiting (kept up to date from the store after each round). */
  scheduled = 0;
  /**
   * Message ids of schedule writes in progress: a copy of one sent meanwhile (a producer's retry
   * racing its original) is a duplicate, but only once the original is durable.
   */
  readonly #writing = new Map<string, Promise<unknown>>();

  constructor(
    private readonly topic: Topic,
    private readonly store: Store,
    private readonly append: (messages: NewMessage[], scheduleIds: number[]) => Promise<void>,
    private readonly log: (level: "warn", msg: string, fields?: Record<string, unknown>) => void,
  ) {}

  /** Reads the schedule and arms the timer; does nothing once closed (a start may come late). */
  start(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#starting = (async () => {
      const summary = await this.store.scheduleSummary(this.topic.record);
      this.scheduled = summary.count;
      this.#nextDueAt = summary.nextDueAt;
      this.#arm();
    })();
    return this.#starting;
  }

  /**
   * Durably schedules messages; resolves once they are in the store, with their message ids in
   * the topic's dedup index (seq 0: scheduled). Until then `writing` finds the write by id.
   */
  async schedule(entries: { dueAt: number; message: NewMessage }[]): Promise<number[]> {
    const write = this.store.scheduleMessages(this.topic.record, entries);
    const messageIds = entries.map((e) => e.message.messageId).filter((id) => id !== "");
    for (const id of messageIds) this.#writing.set(id, write);
    try {
      const ids = await write;
      this.scheduled += entries.length;
      for (const e of entries)
        if (this.#nextDueAt === 0 || e.dueAt < this.#nextDueAt) this.#nextDueAt = e.dueAt;
      this.#arm();
      // Before the write is forgotten below, so no pack in between finds the id in neither.
      const now = monotonicNow();
      for (const id of messageIds) this.topic.dedup.set(id, 0, now);
      return ids;
    } finally {
      for (const id of messageIds) if (this.#writing.get(id) === write) this.#writing.delete(id);
    }
  }

  /** The schedule write in progress of a message with this id, if any (it rejects if the write fails). */
  writing(messageId: string): Promise<unknown> | undefined {
    return this.#writing.get(messageId);
  }

  /** Stops the timer; resolves once a start or round in progress (which reads the store) ended. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await Promise.allSettled([this.#starting, this.#running]);
  }

  #arm(): void {
    if (this.#closed || this.#running !== undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#nextDueAt === 0) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, this.#nextDueAt - Date.now()));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (Date.now() < this.#nextDueAt) {
        this.#arm();
        return;
      }
      this.#running = this.#run().finally(() => {
        this.#running = undefined;
        this.#arm();
      });
    }, wait);
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        if (this.#closed) return;
        const due = await this.store.dueMessages(this.topic.record, Date.now(), BATCH);
        if (due.length === 0) break;
        await this.append(
          due.map((d) => d.message),
          due.map((d) => d.id),
        );
        await this.store.deleteScheduled(
          this.topic.record,
          due.map((d) => d.id),
        );
        if (due.length < BATCH) break;
      }
      const summary = await this.store.scheduleSummary(this.topic.record);
      this.scheduled = summary.count;
      this.#nextDueAt = summary.nextDueAt;
      this.#failures = 0;
    } catch (err) {
      this.#failures++;
      if (!storeOutOfSpace(err))
        this.log("warn", "moving due messages failed; retrying", {
          topic: this.topic.record.name,
          err: String(err),
        });
      this.#nextDueAt = Date.now() + backoffDelay(this.#failures, 100, 10_000);
    }
  }
}
