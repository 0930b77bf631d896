import { setTimeout as sleep } from "node:timers/promises";
import { buildRun, type IndexedRun, type Pack, sliceRun } from "../wire/index.js";
import { monotonicNow } from "./clock.js";
import { CommitTracker } from "./commit-tracker.js";
import { ConfirmQueue } from "./confirm-queue.js";
import { DedupIndex } from "./dedup-index.js";
import { CorruptRowsError, NerveBusError, storeOutOfSpace } from "./errors.js";
import type { LeaseShare } from "./lease-share.js";
import type { LoggedIds, LogMessage, TopicRecord } from "./model.js";
import type { BrokerObserver, LogFn } from "./observer.js";
import { OutageLog } from "./outage-log.js";
import { APPENDED, DUPLICATE, Outcomes } from "./outcomes.js";
import { PriorityIndex } from "./priority-index.js";
import { scanPriorities } from "./priority-rebuild.js";
import { RateMeter } from "./rate-meter.js";
import type { ReadAheadShare } from "./read-ahead.js";
import { RunTracker } from "./run-tracker.js";
import { ShardWriter } from "./shard-writer.js";
import type { Store } from "./store.js";
import { TailCache } from "./tail-cache.js";
import type { TailCachePool } from "./tail-cache-pool.js";
import type { TopicSchema } from "./topic-schema.js";
import type { WriteBudget } from "./write-budget.js";
import { encodeWriterState, type IdHorizon } from "./writer-state.js";

/** What a confirmed append returns. */
export interface AppendResult {
  /** First and last seq of the messages appended now; 0 when none was. */
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly results: Outcomes;
}

/** Ids remembered per topic for deduplication, at most (see DedupIndex). */
export const MAX_DEDUP_IDS = 1_000_000;
/** How long schedule ids are remembered, so a delayed message is moved to the log once. */
const MOVED_WINDOW_MS = 10 * 60_000;

export interface TopicOptions {
  readonly tailCacheBytes: number;
  /** The bound on all topics' caches together, when there is one. */
  readonly cachePool?: TailCachePool;
  /** The bound on the read-ahead rows of all lagging subscriptions together. */
  readonly readAheadShare: ReadAheadShare;
  /** The bound on the unacked delivered messages of all subscriptions together. */
  readonly leaseShare: LeaseShare;
  readonly observer: BrokerObserver;
  readonly log: LogFn;
}

/**
 * One topic's write path: seqs are assigned in memory in arrival order (consecutive within a
 * pack), rows go to the shard writers, the commit tracker derives the writer watermark, and
 * packs are confirmed (ConfirmQueue) once the watermark covers them. Subscribers read through
 * `read` and are told about new messages through `onAdvance`.
 *
 * The watermark is persisted lazily (at most every 100 ms): on start-up the store recovers the
 * contiguous run of committed rows above the persisted value, so no confirmed pack depends on
 * that write.
 */
export class Topic {
  record: TopicRecord;
  readonly cache: TailCache;
  /** Producer message ids → seq, within the topic's dedup window. */
  readonly dedup: DedupIndex;
  /** Schedule ids already appended, so a crash between append and schedule delete is harmless. */
  readonly moved = new DedupIndex(MOVED_WINDOW_MS, MAX_DEDUP_IDS);
  readonly publishRate = new RateMeter();
  /** Seqs of urgent and normal messages, for subscriptions that hand out urgent first. */
  readonly priorities = new PriorityIndex();
  /** The declared payload type publishes are checked against, or null (untyped). */
  schema: TopicSchema | null = null;
  retentionDeleted = 0;
  readonly #tracker: CommitTracker | RunTracker;
  readonly #writers: ShardWriter[];
  /** Format 2: the writer every message of this write turn goes to (one turn, one run). */
  #turnWriter: ShardWriter | undefined;
  #nextWriter = 0;
  readonly #confirms = new ConfirmQueue(() => this.#lastStoreError);
  #watermark: number;
  #persistedWatermark: number;
  #persistTimer: NodeJS.Timeout | undefined;
  #persisting: Promise<void> | undefined;
  #lastStoreError: unknown;
  /** Failed watermark writes: one warning per outage, not one per attempt. */
  readonly #watermarkOutage: OutageLog;
  /**
   * Failed message writes of all shards: one warning per outage (a line every 10th attempt per
   * shard was still one every ~10 s per shard and topic during a store outage). It ends once
   * every shard that failed has committed (`#failingShards`), not at another shard's commit,
   * or a topic with one shard failing would log an end and a start at every other commit.
   */
  readonly #writeOutage: OutageLog;
  readonly #failingShards = new Set<number>();
  #closed = false;
  #failure: NerveBusError | undefined;
  readonly #listeners = new Set<(watermark: number) => void>();
  /** The publish time of the last run appended (see publishedThrough). */
  #lastPublishTime = 0;

  constructor(
    record: TopicRecord,
    watermark: number,
    private readonly store: Store,
    private readonly budget: WriteBudget,
    readonly options: TopicOptions,
    ids: IdHorizon = { lastIdSeq: undefined, persistedWatermark: 0 },
  ) {
    this.record = record;
    this.#idHorizon = ids;
    this.#idSeq =
      ids.lastIdSeq === undefined
        ? watermark
        : Math.max(ids.lastIdSeq, watermark > ids.persistedWatermark ? watermark : 0);
    // Unknown, or rows recovered above the persisted watermark: anything up to the watermark.
    this.#prioritySeq =
      ids.lastPrioritySeq === undefined
        ? watermark
        : Math.max(ids.lastPrioritySeq, watermark > ids.persistedWatermark ? watermark : 0);
    this.dedup = new DedupIndex(record.config.dedupWindowMs, MAX_DEDUP_IDS);
    this.#watermarkOutage = new OutageLog(
      options.log,
      {
        started: "persisting the watermark failed; retrying with the next commit",
        ongoing: "persisting the watermark still fails; retrying",
        ended: "the watermark is written again",
      },
      { topic: record.name },
    );
    this.#writeOutage = new OutageLog(
      options.log,
      {
        started: "writing messages failed; retrying until they are written",
        ongoing: "writing messages still fails; retrying",
        ended: "messages are written again",
      },
      { topic: record.name },
    );
    this.#watermark = watermark;
    this.#persistedWatermark = watermark;
    this.cache = new TailCache(options.tailCacheBytes, options.cachePool);
    this.#tracker =
      record.format === 2 ? new RunTracker(watermark) : new CommitTracker(record.shards, watermark);
    this.#writers = Array.from(
      { length: record.shards },
      (_, shard) =>
        new ShardWriter(
          record,
          shard,
          store,
          (s, batch, bytes) => this.#committed(s, batch, bytes),
          (err) => {
            this.#lastStoreError = err;
            if (storeOutOfSpace(err)) return;
            this.#failingShards.add(shard);
            this.#writeOutage.failed(err);
          },
          options.observer,
        ),
    );
  }

  /**
   * Whether this broker may serve the topic now: its ownership is known to be current (always
   * so unless several brokers share the store; see Store.serves).
   */
  servable(): boolean {
    return this.store.serves?.(this.record) ?? true;
  }

  /**
   * While the store cannot take this topic's messages for lack of disk space: the error a new
   * publish is refused with (RESOURCE_EXHAUSTED, naming the place), before seqs are assigned,
   * so the full disk leaves no gap and holds no more packs than those already queued. Never for
   * an ephemeral topic, which stores nothing.
   */
  outOfSpace(): NerveBusError | undefined {
    return this.ephemeral ? undefined : this.store.outOfSpace?.(this.record);
  }

  /**
   * Publish times never go back within a topic, whatever the wall clock does (stepped back by
   * NTP, another broker's clock after a takeover): a seek by time finds its seq by their order.
   * `time` is the last stored message's, when the topic is loaded.
   */
  publishedThrough(time: number): void {
    if (time > this.#lastPublishTime) this.#lastPublishTime = time;
  }

  /** The publish time of a run appended now: the wall clock's, or the last one's if later. */
  #publishTime(now: number): number {
    if (now > this.#lastPublishTime) this.#lastPublishTime = now;
    return this.#lastPublishTime;
  }

  /** Every seq ≤ watermark is durable and visible to subscribers. */
  get watermark(): number {
    return this.#watermark;
  }

  /** The highest seq assigned so far; equal to the watermark once everything is durable. */
  get lastAssigned(): number {
    return this.#tracker.lastAssigned;
  }

  get ephemeral(): boolean {
    return this.record.config.ephemeral;
  }

  /** Set once the topic is closing or failed: it takes no new consumer (see Broker.subscribe). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Applies changed settings (retention, dedup window). */
  reconfigure(record: TopicRecord): void {
    this.record = record;
    this.dedup.windowMs = record.config.dedupWindowMs;
  }

  /** Calls `listener` whenever the watermark advances. Returns the unsubscribe function. */
  onAdvance(listener: (watermark: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Appends validated messages that already hold `bytes` of the write budget (messages that are
   * duplicates give their share back). Resolves with each message's outcome once the watermark
   * covers every seq involved; rejects with UNAVAILABLE when that does not happen by `deadline`,
   * in which case the messages may still become durable later, and with RESOURCE_EXHAUSTED
   * (nothing appended) while the store is out of disk space.
   */
  append(
    pack: Pack,
    bytes: number,
    deadline: number,
    scheduleIds?: readonly number[],
  ): Promise<AppendResult> {
    if (this.#closed) {
      this.budget.release(bytes);
      return Promise.reject(this.#failure ?? new NerveBusError("unavailable", "broker is shutting down"));
    }
    const full = this.outOfSpace();
    if (full !== undefined) {
      this.budget.release(bytes);
      return Promise.reject(full);
    }
    const now = Date.now();
    // Ids are remembered for the dedup window as the monotonic clock counts it: a wall clock
    // stepped forward must not forget them all at once.
    const seen = monotonicNow();
    const n = pack.count;
    const results = new Outcomes(n, pack);
    const ids = pack.messageIds;
    const dedupOn = this.dedup.windowMs > 0;
    // Without ids there is nothing to look up: every message is fresh (the common case).
    let fresh: number[] | undefined;
    let waitFor = 0;
    let released = 0;
    if (scheduleIds !== undefined || (dedupOn && ids !== undefined)) {
      fresh = [];
      for (let i = 0; i < n; i++) {
        const scheduleId = scheduleIds?.[i];
        const messageId = ids?.[i] ?? "";
        const original =
          scheduleId !== undefined
            ? this.moved.get(String(scheduleId), seen)
            : dedupOn && messageId !== ""
              ? this.dedup.get(messageId, seen)
              : undefined;
        if (original !== undefined) {
          // The original's trace id while it is cached, else the retry's own (a client's retry
          // carries the same attributes).
          results.set(i, DUPLICATE, original, this.cache.get(original)?.traceId ?? pack.traceId(i));
          waitFor = Math.max(waitFor, original);
          released += pack.sentBytes[i]!;
          continue;
        }
        fresh.push(i);
        // Reserve the id now, so a duplicate later in the same pack finds it.
        if (dedupOn && messageId !== "") this.dedup.set(messageId, -1, seen);
      }
    }
    if (released > 0) this.budget.release(released);
    const count = fresh === undefined ? n : fresh.length;
    let firstSeq = 0;
    let lastSeq = 0;
    if (count > 0) {
      firstSeq = this.#tracker.assign(count);
      lastSeq = firstSeq + count - 1;
      const run = buildRun(pack, fresh, firstSeq, this.#publishTime(now), scheduleIds);
      // The run holds copies of the payloads: the request they were read from can go before
      // the confirm does (the caller keeps the pack until then).
      pack.releasePayloads();
      this.cache.appendRun(run);
      let sentBytes = 0;
      for (let k = 0; k < count; k++) {
        const i = fresh === undefined ? k : fresh[k]!;
        const seq = firstSeq + k;
        sentBytes += pack.sentBytes[i]!;
        results.set(i, APPENDED, seq);
        const messageId = ids?.[i] ?? "";
        const scheduleId = scheduleIds?.[i];
        const priority = pack.priorityOf(i);
        this.priorities.note(seq, priority);
        if (priority !== undefined && priority !== "normal") {
          this.#appendedPrioritySeq = seq;
          if (seq > this.#prioritySeq) this.#prioritySeq = seq;
        }
        if (dedupOn && messageId !== "") this.dedup.set(messageId, seq, seen);
        if (scheduleId !== undefined) this.moved.set(String(scheduleId), seq, seen);
        if (scheduleId !== undefined || messageId !== "") {
          this.#appendedIdSeq = seq;
          if (seq > this.#idSeq) this.#idSeq = seq;
        }
      }
      // The budget was taken for the messages as sent (before a traceparent was added).
      if (!this.ephemeral) this.#write(run, sentBytes);
      this.publishRate.mark(count);
      waitFor = Math.max(waitFor, lastSeq);
    }
    // Duplicates within the pack point at the seq their first copy got just now.
    for (let i = 0; i < n; i++) {
      if (results.kind[i] === DUPLICATE && results.seq[i] === -1) {
        const seq = this.dedup.get(ids![i]!, seen) ?? 0;
        results.set(i, DUPLICATE, seq, this.cache.get(seq)?.traceId ?? "");
      }
    }
    const result: AppendResult = { firstSeq, lastSeq, results };
    if (this.ephemeral) {
      // Never stored: visible at once, and only to consumers connected now.
      const appendedBytes = bytes - released;
      this.budget.release(appendedBytes);
      if (lastSeq > 0) this.#advance(lastSeq);
      return Promise.resolve(result);
    }
    if (waitFor <= this.#watermark) return Promise.resolve(result);
    return this.#confirms.wait(waitFor, deadline, result);
  }

  /**
   * Hands a run to the shard writers: format 2, all of it to this write turn's writer; format
   * 1 (a row per message, each shard its seqs), message by message.
   */
  #write(run: IndexedRun, sentBytes: number): void {
    if (this.record.format === 2) {
      this.#writerOfTurn().push(run, sentBytes);
      return;
    }
    const n = run.offsets.length;
    const shards = this.record.shards;
    for (let k = 0; k < n; k++) {
      // The budget share of one message: the run's, prorated (released once all are written).
      const share = Math.floor(sentBytes / n) + (k < sentBytes % n ? 1 : 0);
      this.#writers[(run.firstSeq + k) % shards]!.push(sliceRun(run, k, k + 1), share);
    }
  }

  /**
   * The lowest seq published at or after `time`, or 0 when none is: a binary search over the
   * log (publish times rise with seqs), a few point reads instead of a scan.
   */
  async seqAtTime(time: number): Promise<number> {
    let lo = this.ephemeral ? this.cache.firstSeq : await this.store.firstSeq(this.record);
    let hi = this.#watermark;
    if (lo === 0 || hi < lo) return 0;
    const timeOf = async (seq: number): Promise<{ seq: number; time: number } | undefined> => {
      const cached = this.cache.get(seq);
      if (cached !== undefined) return { seq, time: cached.publishTime };
      const rows = await this.#idsPastCorruptRows(seq, Math.min(hi, seq + 63));
      return rows[0] === undefined ? undefined : { seq: rows[0].seq, time: rows[0].publishTime };
    };
    const last = await timeOf(hi);
    if (last === undefined || last.time < time) return 0;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const probe = await timeOf(mid);
      if (probe === undefined || probe.time < time) lo = (probe?.seq ?? mid) + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Resolves once the dedup and moved-schedule indexes are rebuilt (see rebuildIndexes). */
  indexesReady: Promise<void> = Promise.resolve();
  readonly #idHorizon: IdHorizon;
  /** No seq above this carries a message id or schedule id (persisted with the watermark). */
  #idSeq: number;
  /** The last seq appended in this process that carries one. */
  #appendedIdSeq = 0;
  /** No seq above this has a priority other than normal (persisted with the watermark). */
  #prioritySeq: number;
  /** The last seq appended in this process with a priority other than normal. */
  #appendedPrioritySeq = 0;
  #indexesBuilt = true;
  /**
   * Store reads started in the background (index and priority rebuilds): close waits for them,
   * so none runs on after the store it reads from is closed.
   */
  readonly #background = new Set<Promise<unknown>>();
  /** Cuts a rebuild's wait before its next try short when the topic closes. */
  readonly #closing = new AbortController();

  /** Whether appending messages that carry ids (message or schedule ids) must wait for the index rebuild. */
  needsIndexes(withIds: boolean): boolean {
    return withIds && !this.#indexesBuilt;
  }

  /**
   * Rebuilds the dedup and moved-schedule indexes from the recent log, in the background:
   * deliveries and publishes without ids go on meanwhile; publishes with ids (and the
   * scheduler) wait for `indexesReady`. Store errors are retried until the topic closes.
   */
  startIndexRebuild(hasSchedule: boolean): void {
    this.#indexesBuilt = false;
    this.indexesReady = this.#inBackground(
      (async () => {
        await this.#retrying("rebuilding the dedup index", async () => {
          await this.#rebuildIndexes(hasSchedule);
          if (hasSchedule) await this.#rememberScheduledIds();
        });
        this.#indexesBuilt = true;
      })(),
    );
  }

  /** Tracks a background job until it settles (see #background). */
  #inBackground<T>(job: Promise<T>): Promise<T> {
    this.#background.add(job);
    const forget = () => this.#background.delete(job);
    job.then(forget, forget);
    return job;
  }

  /**
   * Rebuilds the priority lanes from the stored messages above `floor` (the lowest floor of the
   * topic's subscriptions), in the background: the priority of a backlog from before a restart
   * is in its stored records, and first deliveries wait until the lanes hold it
   * (PriorityIndex.loading). Store errors are retried until the topic closes.
   */
  startPriorityRebuild(floor: number): void {
    const to = this.#watermark;
    const { lastPrioritySeq, persistedWatermark } = this.#idHorizon;
    // Known: nothing above the floor is urgent or bulk (a log that never had either is not read).
    if (lastPrioritySeq !== undefined && lastPrioritySeq <= floor && persistedWatermark >= to) return;
    if (to <= floor) return;
    // Seqs known to be normal are not read: above the recorded horizon, up to the watermark it was persisted with.
    const normal: [number, number] | undefined =
      lastPrioritySeq === undefined ? undefined : [lastPrioritySeq + 1, persistedWatermark];
    const scan = this.#inBackground(
      this.#retrying("rebuilding the priority lanes", () =>
        scanPriorities(this, floor + 1, to, normal, (err) =>
          this.options.log(
            "error",
            "stored messages are corrupt; the priority lanes are rebuilt above them",
            {
              topic: this.record.name,
              err: err.message,
            },
          ),
        ),
      ),
    ).then((found) => {
      if (found === undefined) return { urgent: [], normal: [], mixed: false, lastOther: 0, from: to + 1 };
      // Below a scan cut short, what was not read may still hold urgent or bulk messages.
      const below = found.from > floor + 1 ? Math.min(found.from - 1, lastPrioritySeq ?? found.from - 1) : 0;
      this.#prioritySeq = Math.max(found.lastOther, below, this.#appendedPrioritySeq);
      return found;
    });
    this.priorities.rebuild(scan);
  }

  /**
   * Runs `job` until it succeeds or the topic closes (then undefined), with backoff between
   * tries; a failure once the topic is closing is the closing's, not worth a warning.
   */
  async #retrying<T>(what: string, job: () => Promise<T>): Promise<T | undefined> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        return await job();
      } catch (err) {
        if (this.#closed) break;
        this.options.log("warn", `${what} failed; retrying`, { topic: this.record.name, err: String(err) });
        await sleep(Math.min(5000, 100 * 2 ** attempt), undefined, { signal: this.#closing.signal }).catch(
          () => undefined,
        );
      }
    }
    return undefined;
  }

  async #rebuildIndexes(hasSchedule: boolean): Promise<void> {
    const now = Date.now();
    const seen = monotonicNow();
    // Schedule ids matter only while the schedule holds entries that may already be in the log.
    const window = hasSchedule ? Math.max(this.dedup.windowMs, MOVED_WINDOW_MS) : this.dedup.windowMs;
    if (window <= 0) return;
    const end = this.#watermark;
    // Rows up to the watermark persisted last carry ids only up to the seq persisted with it;
    // rows above it (recovered at start-up) are all read.
    const { lastIdSeq, persistedWatermark } = this.#idHorizon;
    // No row can carry an id: nothing to read, nor to look up where the window starts (each
    // step of that search reads a stored run, ~40 ms of the event loop for a 100 MB backlog
    // of 1 KiB messages, on the way to a restarted broker's first delivery).
    if (lastIdSeq === 0 && persistedWatermark >= end) return;
    const from = await this.seqAtTime(now - window);
    if (from === 0) return;
    const ranges: [number, number][] =
      lastIdSeq === undefined
        ? [[from, end]]
        : [
            [from, Math.min(lastIdSeq, persistedWatermark, end)],
            [Math.max(from, persistedWatermark + 1), end],
          ];
    let found = 0;
    for (const [lo, hi] of ranges) {
      for (let seq = lo; seq <= hi; seq += 10_000) {
        // Closing: the index is not needed any more, and the store is about to close.
        if (this.#closed) return;
        const ids = await this.#idsPastCorruptRows(seq, Math.min(hi, seq + 9_999));
        for (const r of ids) {
          // Seen as long ago as it was published, on the clock the indexes count by.
          const at = seen - (now - r.publishTime);
          if (r.messageId !== "" && r.publishTime >= now - this.dedup.windowMs)
            this.dedup.set(r.messageId, r.seq, at);
          if (r.scheduleId !== undefined) this.moved.set(String(r.scheduleId), r.seq, at);
          if (r.messageId !== "" || r.scheduleId !== undefined) found = Math.max(found, r.seq);
        }
        // Let deliveries and publishes run between chunks (SQLite reads block the event loop).
        await new Promise((r) => setImmediate(r));
      }
    }
    // Everything up to `end` has been looked at: the bound persisted from now on is exact.
    if (lastIdSeq !== undefined) this.#idSeq = Math.max(lastIdSeq, found, this.#appendedIdSeq);
  }

  /**
   * Puts the message ids of delayed messages still in the schedule into the dedup index (seq
   * 0), so a producer's retry after a restart is a duplicate as it was before: the log holds
   * them only once they fall due. When they were scheduled is not stored, so they count as
   * seen at start-up (remembered for up to one window more than without the restart).
   */
  async #rememberScheduledIds(): Promise<void> {
    if (this.dedup.windowMs <= 0) return;
    const now = monotonicNow();
    const page = 10_000;
    let after = 0;
    // The index holds at most MAX_DEDUP_IDS ids: reading more would only evict them again.
    for (let read = 0; read < MAX_DEDUP_IDS && !this.#closed; read += page) {
      const entries = await this.store.scheduledIds(this.record, after, page);
      for (const { messageId } of entries) {
        // One already in the log (moved before a crash deleted its entry) keeps its seq.
        if (messageId !== "" && this.dedup.get(messageId, now) === undefined)
          this.dedup.set(messageId, 0, now);
      }
      if (entries.length < page) return;
      after = entries[entries.length - 1]!.id;
      await new Promise((r) => setImmediate(r));
    }
  }

  /**
   * The ids of the stored messages in [from, to], leaving out the seqs of corrupt rows (logged
   * as errors): an index rebuild (and the search by time it starts with) goes on without them
   * instead of retrying for ever, which would keep every publish with a message id waiting
   * (test/integration/corrupt-run-sqlite.test.ts).
   */
  async #idsPastCorruptRows(from: number, to: number): Promise<LoggedIds[]> {
    const out: LoggedIds[] = [];
    let lo = from;
    while (lo <= to) {
      try {
        out.push(...(await this.store.readIds(this.record, lo, to)));
        break;
      } catch (err) {
        if (!(err instanceof CorruptRowsError)) throw err;
        this.options.log("error", "stored messages are corrupt; the dedup index goes on without their ids", {
          topic: this.record.name,
          err: err.message,
        });
        // Rows are read in seq order: the first corrupt one found is the lowest.
        if (err.firstSeq > lo) out.push(...(await this.store.readIds(this.record, lo, err.firstSeq - 1)));
        lo = err.lastSeq + 1;
      }
    }
    return out;
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
    const t0 = performance.now();
    let rows: LogMessage[];
    try {
      rows = await this.store.readMessages(this.record, seq, to);
    } catch (err) {
      this.options.observer.storeError("read", err);
      throw err;
    }
    this.options.observer.storeRead(this.record.name, rows.length, performance.now() - t0);
    return out.length === 0 ? rows : [...out, ...rows];
  }

  /**
   * Durable records in [fromSeq, toSeq] (clamped to the watermark) as runs read from the store,
   * each holding only those records; undefined when the store gives no runs (format 1).
   */
  async readRuns(fromSeq: number, toSeq: number): Promise<IndexedRun[] | undefined> {
    const to = Math.min(toSeq, this.#watermark);
    if (to < fromSeq) return [];
    if (this.store.readRuns === undefined) return undefined;
    const t0 = performance.now();
    let runs: IndexedRun[] | undefined;
    try {
      runs = await this.store.readRuns(this.record, fromSeq, to);
    } catch (err) {
      this.options.observer.storeError("read", err);
      throw err;
    }
    if (runs === undefined) return undefined;
    let n = 0;
    for (const r of runs) n += r.offsets.length;
    this.options.observer.storeRead(this.record.name, n, performance.now() - t0);
    return runs;
  }

  /**
   * Stops the topic at once when the broker lost ownership: packs waiting for a confirm and
   * every later append fail with `err`; queued writes are abandoned (they cannot land).
   */
  fail(err: NerveBusError): void {
    this.#closed = true;
    this.#closing.abort();
    this.#failure = err;
    clearTimeout(this.#persistTimer);
    this.#confirms.failAll(err);
    for (const w of this.#writers) w.abandon(err);
  }

  /** Finishes every queued write, persists the watermark, and fails packs that still wait. */
  async close(timeoutMs: number): Promise<void> {
    this.#closed = true;
    this.#closing.abort();
    const flushed = Promise.all(this.#writers.map((w) => w.idle()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([flushed, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    clearTimeout(this.#persistTimer);
    const unconfirmed = new NerveBusError(
      "unavailable",
      "broker shut down before the pack was confirmed; outcome unknown",
    );
    this.#confirms.failAll(unconfirmed);
    // Writes not done in time stop retrying: the store is closing under them, and a retry's
    // timer would keep the process alive.
    for (const w of this.#writers) w.abandon(unconfirmed);
    await this.#persisting;
    await this.#persistWatermark();
    // The dedup rebuild stops at its next chunk and a retry at once (see #retrying); a priority
    // scan reads at most MAX_REBUILD_BYTES (about a second).
    await Promise.allSettled(this.#background);
    this.options.cachePool?.remove(this.cache);
  }

  /**
   * Format 2: the shard writer for this turn of the event loop, chosen at its first append: an
   * idle one (round robin), else the one with the fewest rows waiting. Every append of the turn
   * goes there, so a turn's messages are one run: one row, one INSERT, one commit.
   */
  #writerOfTurn(): ShardWriter {
    if (this.#turnWriter !== undefined) return this.#turnWriter;
    const n = this.#writers.length;
    let pick: ShardWriter | undefined;
    for (let k = 0; k < n && pick === undefined; k++) {
      const w = this.#writers[(this.#nextWriter + k) % n]!;
      if (!w.busy) pick = w;
    }
    if (pick === undefined) {
      pick = this.#writers[0]!;
      for (const w of this.#writers) if (w.queuedRows < pick.queuedRows) pick = w;
    }
    this.#nextWriter = (pick.shard + 1) % n;
    this.#turnWriter = pick;
    setImmediate(() => {
      this.#turnWriter = undefined;
    });
    return pick;
  }

  #committed(shard: number, batch: readonly IndexedRun[], bytes: number): void {
    this.budget.release(bytes);
    if (this.#failingShards.delete(shard) && this.#failingShards.size === 0) this.#writeOutage.recovered();
    const tracker = this.#tracker;
    if (tracker instanceof RunTracker) {
      for (const run of batch) tracker.commit(run.firstSeq, run.lastSeq);
    } else {
      tracker.commit(shard, batch[batch.length - 1]!.lastSeq);
    }
    const watermark = this.#tracker.watermark;
    if (watermark === this.#watermark) return;
    this.#lastStoreError = undefined;
    this.#advance(watermark);
    if (this.#persistTimer === undefined) {
      this.#persistTimer = setTimeout(() => {
        this.#persistTimer = undefined;
        this.#persisting = this.#persistWatermark();
      }, 100);
    }
  }

  #advance(watermark: number): void {
    this.#watermark = watermark;
    this.#confirms.settle(watermark);
    for (const listener of this.#listeners) listener(watermark);
  }

  async #persistWatermark(): Promise<void> {
    const watermark = this.#watermark;
    if (watermark === this.#persistedWatermark || this.ephemeral || this.#failure) return;
    try {
      await this.store.savePointers(this.record, [
        { subscription: "", ptr: watermark, state: encodeWriterState(this.#idSeq, this.#prioritySeq) },
      ]);
      this.#persistedWatermark = Math.max(this.#persistedWatermark, watermark);
    } catch (err) {
      // Not fatal: recovery at start-up scans from the last persisted value. Tried again after
      // the next commit, up to ~10 times a second while messages commit.
      if (!storeOutOfSpace(err)) this.#watermarkOutage.failed(err);
      return;
    }
    this.#watermarkOutage.recovered();
  }
}
