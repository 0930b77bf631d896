import { AckRanges } from "./ack-ranges.js";
import { backoffDelay } from "./backoff.js";
import type { Consumer, Delivered } from "./consumer.js";
import { invalidArgument, type NerveBusError } from "./errors.js";
import { MinHeap } from "./min-heap.js";
import type { LogMessage, SubscriptionConfig, SubscriptionRecord } from "./model.js";
import type { BrokerObserver, Settled } from "./observer.js";
import { RateMeter } from "./rate-meter.js";
import type { Topic } from "./topic.js";

/** Persisted state above the floor, with a cap so one pointer row stays small. */
interface PersistedState {
  /** Acked ranges above the floor. */
  a: [number, number][];
  /** Messages delivered but not acked: [seq, attempts so far, not-before ms, ordering key?]. */
  p: ([number, number, number] | [number, number, number, string])[];
}

/**
 * Beyond this many ranges or pending entries the persisted state is truncated (the lost part
 * means some messages are delivered again after a restart, never that one is lost).
 */
export const MAX_PERSISTED_ENTRIES = 50_000;
/**
 * With ordering on, messages held back behind a busy key, at most; past it the subscription
 * stops reading ahead until keys free up.
 */
export const MAX_BLOCKED = 100_000;

/** Why a message leaves the subscription without an ack. */
export type DeadLetterReason = "max_delivery_attempts" | "terminated";

/** A message to move to the dead-letter topic. */
export interface DeadLetter {
  readonly message: LogMessage;
  readonly attempts: number;
  readonly reason: DeadLetterReason;
}

/** A message delivered at least once (or released from an ordering key) and not acked yet. */
interface Pending {
  attempts: number;
  /** The consumer holding the message now (its lease), or undefined. */
  consumer: Consumer | undefined;
  /** While leased: when the lease expires (ms since epoch). */
  deadline: number;
  /** While leased: the bytes it counts against the consumer's window. */
  leaseBytes: number;
  /** When not leased: redeliver no earlier than this. */
  notBefore: number;
  message: LogMessage | undefined;
  /** Ordering key, when the subscription orders (kept so a restart knows busy keys). */
  key: string;
  /** Being moved to the dead-letter topic: not deliverable. */
  dead: boolean;
  /** The message's trace context, for settle spans. */
  traceparent: string | undefined;
}

/**
 * Due times: a lease extended or a redelivery (one seq), or the leases of one delivered batch
 * (one entry for the batch: they share the deadline).
 */
type TimerEntry =
  | { readonly seq: number; readonly kind: "lease" | "retry" }
  | { readonly seqs: number[]; readonly kind: "leases" };

/** Figures for heartbeats and stats. */
export interface SubscriptionStats {
  readonly floor: number;
  readonly backlog: number;
  readonly inFlight: number;
  readonly waitingRedelivery: number;
  readonly redelivered: number;
  readonly deadLettered: number;
  readonly skipped: number;
  readonly dropped: number;
  readonly deliveryRate: number;
  readonly ackRate: number;
  readonly stateEntries: number;
  readonly paused: boolean;
  /** The lowest unacked seq, or 0 when everything is acked. */
  readonly oldestUnacked: number;
  readonly consumers: readonly Consumer[];
}

/** Callbacks into the broker. */
export interface SubscriptionHooks {
  /** Asks for the state to be persisted soon. */
  readonly dirty: (sub: Subscription) => void;
  /** Publishes dead letters (or drops them when there is no dead-letter topic). */
  readonly deadLetter: (sub: Subscription, letters: DeadLetter[]) => Promise<void>;
  readonly error: (err: unknown) => void;
}

/**
 * A named cursor on a topic, shared by the consumers attached to it. It leases each message to
 * one consumer at a time within that consumer's window, takes it back when the lease expires,
 * is nacked or the consumer goes away, and keeps acks as a floor plus ranges above it.
 *
 * First deliveries go out in seq order: from the topic's tail cache when the subscription keeps
 * up, from store reads of bounded ranges when it lags. Redeliveries go first when due. With
 * ordering on, a message waits while an earlier one with the same key is unacked.
 */
export class Subscription {
  record: SubscriptionRecord;
  readonly #acked: AckRanges;
  /** The next seq never delivered on this subscription (in this process). */
  #cursor: number;
  readonly #pending = new Map<number, Pending>();
  readonly #timers = new MinHeap<TimerEntry>();
  /** Seqs held by "leases" timer entries (stale ones included), for compaction. */
  #batchLeaseSeqs = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = 0;
  readonly #consumers: Consumer[] = [];
  #rotate = 0;
  /** Messages read from the store ahead of the cursor, for a lagging subscription. */
  readonly #readAhead = new ReadAhead();
  #reading = false;
  #readRows = 64;
  /** Seqs whose redelivery fell due, in due order (entries may be stale; checked on use). */
  #ready: number[] = [];
  #readyHead = 0;
  #fetching = false;
  #dispatchScheduled = false;
  #dirty = false;
  /** Acks waiting for the next persisted state, per consumer that asked for confirmations. */
  #unconfirmed = new Map<Consumer, { acked: number[]; already: number[] }>();
  /** Ordering: unacked messages per key, and seqs held back behind each busy key. */
  readonly #keyPending = new Map<string, number>();
  readonly #blocked = new Map<string, number[]>();
  #blockedCount = 0;
  readonly #unlisten: () => void;
  #closed = false;
  redelivered = 0;
  deadLettered = 0;
  skipped = 0;
  dropped = 0;
  readonly deliveryRate = new RateMeter();
  readonly ackRate = new RateMeter();

  constructor(
    readonly topic: Topic,
    record: SubscriptionRecord,
    floor: number,
    state: Uint8Array | null,
    private readonly hooks: SubscriptionHooks,
  ) {
    this.record = record;
    const parsed = decodeState(state);
    this.#acked = new AckRanges(floor, parsed.a);
    const now = Date.now();
    for (const [seq, attempts, notBefore, key] of parsed.p) {
      if (this.#acked.has(seq)) continue;
      const due = Math.max(notBefore, now);
      this.#pending.set(seq, {
        attempts,
        consumer: undefined,
        deadline: 0,
        leaseBytes: 0,
        notBefore: due,
        message: undefined,
        key: key ?? "",
        dead: false,
        traceparent: undefined,
      });
      if (key) this.#keyPending.set(key, (this.#keyPending.get(key) ?? 0) + 1);
      this.#timers.push(due, { seq, kind: "retry" });
    }
    this.#cursor = this.#acked.floor + 1;
    this.#unlisten = topic.onAdvance(() => this.scheduleDispatch());
  }

  get name(): string {
    return this.record.name;
  }

  get #observer(): BrokerObserver {
    return this.topic.options.observer;
  }

  get config(): SubscriptionConfig {
    return this.record.config;
  }

  get floor(): number {
    return this.#acked.floor;
  }

  /** Applies changed settings; a resumed subscription delivers again at once. */
  reconfigure(record: SubscriptionRecord): void {
    this.record = record;
    this.scheduleDispatch();
  }

  stats(): SubscriptionStats {
    const watermark = this.topic.watermark;
    let inFlight = 0;
    for (const p of this.#pending.values()) if (p.consumer) inFlight++;
    const floor = this.#acked.floor;
    const oldest = this.#acked.nextMissing(floor);
    return {
      floor,
      backlog: Math.max(0, watermark - floor - this.#acked.countThrough(watermark)),
      inFlight,
      waitingRedelivery: this.#pending.size - inFlight,
      redelivered: this.redelivered,
      deadLettered: this.deadLettered,
      skipped: this.skipped,
      dropped: this.dropped,
      deliveryRate: this.deliveryRate.rate(),
      ackRate: this.ackRate.rate(),
      stateEntries: this.#acked.rangeCount + this.#pending.size,
      paused: this.config.paused,
      oldestUnacked: oldest <= watermark ? oldest : 0,
      consumers: [...this.#consumers],
    };
  }

  attach(consumer: Consumer): void {
    this.#consumers.push(consumer);
    this.scheduleDispatch();
  }

  /** Detaches a consumer; what it held is redelivered right away. */
  detach(consumer: Consumer): void {
    consumer.detached = true;
    const i = this.#consumers.indexOf(consumer);
    if (i >= 0) this.#consumers.splice(i, 1);
    this.#unconfirmed.delete(consumer);
    const now = Date.now();
    for (const [seq, p] of this.#pending) {
      if (p.consumer !== consumer) continue;
      p.consumer = undefined;
      p.notBefore = now;
      this.#timers.push(now, { seq, kind: "retry" });
    }
    consumer.inFlight = 0;
    consumer.inFlightBytes = 0;
    this.#markDirty();
    this.scheduleDispatch();
  }

  /** Ends every consumer's stream with `err` (the subscription or topic is going away). */
  failConsumers(err: NerveBusError): void {
    for (const c of [...this.#consumers]) {
      this.detach(c);
      c.sink.fail(err);
    }
  }

  /** Changes a consumer's window; messages already out stay out. */
  setWindow(consumer: Consumer, window: Consumer["window"]): void {
    consumer.window = window;
    this.scheduleDispatch();
  }

  /** The consumer's transport drained: deliver again. */
  resume(consumer: Consumer): void {
    consumer.congested = false;
    this.scheduleDispatch();
  }

  /**
   * Acks seqs. A seq beyond the watermark was never published: INVALID_ARGUMENT. A seq acked
   * already is reported back when the consumer asked for confirmations. A late ack (the lease
   * expired, or the message is leased to another consumer now) still counts.
   */
  ack(consumer: Consumer, seqs: readonly number[]): void {
    this.#checkSeqs("ack_seqs", seqs);
    const confirm = consumer.confirmAcks ? this.#confirmList(consumer) : undefined;
    const tracing = this.#observer.tracing;
    const settled: Settled[] = [];
    let count = 0;
    for (const seq of seqs) {
      if (!this.#acked.add(seq)) {
        confirm?.already.push(seq);
        continue;
      }
      confirm?.acked.push(seq);
      count++;
      if (tracing) settled.push({ seq, traceparent: this.#pending.get(seq)?.traceparent });
      this.#settle(seq);
    }
    this.ackRate.mark(count);
    this.#observer.settled(this.topic.record.name, this.name, "ack", count, settled);
    this.#markDirty();
    this.scheduleDispatch();
  }

  /** Returns a message for redelivery after `delayMs` (undefined: the retry backoff). */
  nack(consumer: Consumer, seq: number, delayMs: number | undefined): void {
    this.#checkSeqs("nacks.seq", [seq]);
    const p = this.#pending.get(seq);
    if (p === undefined || p.consumer !== consumer) return;
    this.#release(p);
    this.#observer.settled(this.topic.record.name, this.name, "nack", 1, [
      { seq, traceparent: p.traceparent },
    ]);
    this.#retryOrDeadLetter(seq, p, Date.now(), delayMs);
    this.#armTimer();
    this.#markDirty();
    this.scheduleDispatch();
  }

  /** Dead-letters messages now, without further attempts (drops them without a dead-letter topic). */
  terminate(consumer: Consumer, seqs: readonly number[]): void {
    this.#checkSeqs("terminate_seqs", seqs);
    const letters: number[] = [];
    for (const seq of seqs) {
      const p = this.#pending.get(seq);
      if (p === undefined || p.consumer !== consumer || p.dead) continue;
      this.#release(p);
      letters.push(seq);
    }
    this.#deadLetter(letters, "terminated");
  }

  /** Extends the leases of messages this consumer holds to `deadlineMs` from now. */
  extend(consumer: Consumer, seqs: readonly number[], deadlineMs: number): void {
    this.#checkSeqs("extend_deadlines.seqs", seqs);
    const deadline = Date.now() + deadlineMs;
    for (const seq of seqs) {
      const p = this.#pending.get(seq);
      if (p === undefined || p.consumer !== consumer) continue;
      p.deadline = deadline;
      this.#timers.push(deadline, { seq, kind: "lease" });
    }
    this.#armTimer();
  }

  /**
   * Sets the floor (purge, seek): everything ≤ floor counts as acked, and seeking back forgets
   * acks above it so those messages are delivered again.
   */
  moveFloor(floor: number): void {
    if (floor >= this.#acked.floor) {
      this.#acked.raiseFloor(floor);
      for (const seq of [...this.#pending.keys()]) if (seq <= floor) this.#settle(seq);
    } else {
      this.#acked.reset(floor);
      // Seeking back replays from the floor in seq order: messages waiting for redelivery go
      // back to the log's order instead of jumping the queue. Leased ones stay with their
      // consumers until acked or expired.
      for (const [seq, p] of [...this.#pending]) if (p.consumer === undefined) this.#pending.delete(seq);
    }
    this.#readAhead.clear();
    // Held-back messages are met again from the new cursor; busy keys are those still pending.
    this.#blocked.clear();
    this.#blockedCount = 0;
    this.#keyPending.clear();
    for (const p of this.#pending.values())
      if (p.key !== "") this.#keyPending.set(p.key, (this.#keyPending.get(p.key) ?? 0) + 1);
    this.#cursor = this.#acked.floor + 1;
    this.#markDirty();
    this.scheduleDispatch();
  }

  /** Retention deleted every seq ≤ `seq`: what was unacked there is skipped and counted. */
  skipThrough(seq: number): void {
    if (seq <= this.#acked.floor) return;
    const unacked = seq - this.#acked.floor - this.#acked.countThrough(seq);
    this.skipped += unacked;
    this.moveFloor(seq);
  }

  /** The pointer to persist: floor plus the state above it. */
  snapshot(): {
    ptr: number;
    state: Uint8Array;
    confirms: Map<Consumer, { acked: number[]; already: number[] }>;
  } {
    this.#dirty = false;
    const ranges = this.#acked.ranges();
    const pending: PersistedState["p"] = [];
    const now = Date.now();
    for (const [seq, p] of this.#pending) {
      if (pending.length >= MAX_PERSISTED_ENTRIES) break;
      const notBefore = p.consumer ? 0 : p.notBefore;
      // A message out on its first attempt, with no delay and no ordering key, needs no entry:
      // after a restart it is simply delivered again from the floor. Leaving those out keeps
      // the state (written every few ms under load) small even with windows of 100 000.
      if (p.attempts <= 1 && notBefore <= now && p.key === "") continue;
      pending.push(p.key === "" ? [seq, p.attempts, notBefore] : [seq, p.attempts, notBefore, p.key]);
    }
    const state: PersistedState = { a: ranges.slice(0, MAX_PERSISTED_ENTRIES), p: pending };
    const confirms = this.#unconfirmed;
    this.#unconfirmed = new Map();
    return { ptr: this.#acked.floor, state: Buffer.from(JSON.stringify(state)), confirms };
  }

  /** Puts back confirmations of a snapshot whose write failed; they go out with the next one. */
  restoreConfirms(confirms: Map<Consumer, { acked: number[]; already: number[] }>): void {
    for (const [consumer, list] of confirms) {
      if (consumer.detached) continue;
      const current = this.#confirmList(consumer);
      current.acked.push(...list.acked);
      current.already.push(...list.already);
    }
  }

  get dirty(): boolean {
    return this.#dirty;
  }

  close(): void {
    this.#closed = true;
    this.#unlisten();
    clearTimeout(this.#timer);
  }

  scheduleDispatch(): void {
    if (this.#dispatchScheduled || this.#closed) return;
    this.#dispatchScheduled = true;
    setImmediate(() => {
      this.#dispatchScheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    if (this.#closed) return;
    const now = Date.now();
    this.#runTimers(now);
    if (this.config.paused) {
      this.#armTimer();
      return;
    }
    const n = this.#consumers.length;
    const start = n === 0 ? 0 : this.#rotate++ % n;
    let starved = false;
    for (let k = 0; k < n && !starved; k++) {
      const consumer = this.#consumers[(start + k) % n]!;
      if (!consumer.hasCredit) continue;
      const batch: Delivered[] = [];
      const leased: number[] = [];
      let batchBytes = 0;
      // One response carries at most ~1 MiB of payload (plus at most one message), well under
      // the 4 MiB default receive limit of gRPC clients.
      while (consumer.hasCredit && batchBytes < 1 << 20) {
        let seq: number;
        let message: LogMessage | undefined;
        let p: Pending | undefined;
        if (this.#readyHead < this.#ready.length && !this.#fetching) {
          seq = this.#ready[this.#readyHead]!;
          p = this.#pending.get(seq);
          if (p === undefined || p.consumer !== undefined || p.dead) {
            this.#readyHead++; // acked, leased or dead-lettered since it fell due
            continue;
          }
          message = p.message ?? this.topic.cache.get(seq);
          if (message === undefined) {
            this.#fetchPending(this.#ready.slice(this.#readyHead));
            continue;
          }
        } else {
          const fresh = this.#nextFresh();
          if (fresh === undefined) {
            starved = true;
            break;
          }
          seq = fresh.seq;
          message = fresh;
        }
        const bytes = message.bytes;
        if (!consumer.fits(bytes)) break;
        if (p === undefined) {
          p = {
            attempts: 0,
            consumer: undefined,
            deadline: 0,
            leaseBytes: 0,
            notBefore: 0,
            message: undefined,
            key: "",
            dead: false,
            traceparent: undefined,
          };
          this.#pending.set(seq, p);
          this.#cursor = seq + 1;
          if (this.config.ordering && message.orderingKey !== "") {
            p.key = message.orderingKey;
            this.#keyPending.set(p.key, (this.#keyPending.get(p.key) ?? 0) + 1);
          }
        } else {
          this.#readyHead++;
          if (p.attempts > 0) this.redelivered++;
        }
        p.attempts++;
        p.message = undefined;
        if (this.#observer.tracing) p.traceparent = message.attributes.traceparent;
        const deadline = now + consumer.ackDeadlineMs;
        p.consumer = consumer;
        p.deadline = deadline;
        p.leaseBytes = bytes;
        consumer.inFlight++;
        consumer.inFlightBytes += bytes;
        leased.push(seq);
        batch.push({ message, attempt: p.attempts });
        batchBytes += bytes;
      }
      if (this.#readyHead > 0 && this.#readyHead === this.#ready.length) {
        this.#ready = [];
        this.#readyHead = 0;
      }
      if (leased.length > 0) {
        this.#timers.push(now + consumer.ackDeadlineMs, { seqs: leased, kind: "leases" });
        this.#batchLeaseSeqs += leased.length;
      }
      if (batch.length > 0) {
        this.deliveryRate.mark(batch.length);
        this.#observer.delivered(this.topic.record.name, this.name, batch);
        if (!consumer.sink.send(batch)) consumer.congested = true;
        this.#markDirty();
        // A full batch may leave credit: come back for the rest on the next turn.
        if (consumer.hasCredit && batchBytes >= 1 << 20) this.scheduleDispatch();
      }
    }
    if (this.topic.ephemeral) this.#dropUndeliverable();
    this.#armTimer();
  }

  /**
   * Ephemeral topics keep nothing for later: what no connected consumer had room for is dropped
   * and counted.
   */
  #dropUndeliverable(): void {
    const watermark = this.topic.watermark;
    if (this.#cursor > watermark) return;
    this.dropped += this.#acked.addRange(this.#cursor, watermark);
    this.#cursor = watermark + 1;
  }

  /** The next never-delivered message, or undefined when none is available right now. */
  #nextFresh(): LogMessage | undefined {
    const watermark = this.topic.watermark;
    while (this.#cursor <= watermark) {
      const seq = this.#cursor;
      if (this.#acked.has(seq)) {
        this.#cursor = this.#acked.nextMissing(seq - 1);
        continue;
      }
      if (this.#pending.has(seq)) {
        this.#cursor++;
        continue;
      }
      const message = this.topic.cache.get(seq) ?? this.#readAhead.take(seq);
      if (message === undefined) {
        this.#startRead(seq, watermark);
        return undefined;
      }
      if (
        this.config.ordering &&
        message.orderingKey !== "" &&
        (this.#keyPending.get(message.orderingKey) ?? 0) > 0
      ) {
        // An earlier message with this key is unacked: hold this one back, behind it.
        if (this.#blockedCount >= MAX_BLOCKED) return undefined;
        const queue = this.#blocked.get(message.orderingKey);
        if (queue === undefined) this.#blocked.set(message.orderingKey, [seq]);
        else queue.push(seq);
        this.#blockedCount++;
        this.#cursor++;
        continue;
      }
      return message;
    }
    return undefined;
  }

  /** Reads a bounded range ahead of the cursor from the store (one read at a time). */
  #startRead(from: number, watermark: number): void {
    if (this.#reading) return;
    this.#reading = true;
    const to = Math.min(watermark, from + this.#readRows - 1);
    this.topic
      .read(from, to)
      .then((rows) => {
        let bytes = 0;
        for (const row of rows) bytes += row.bytes;
        this.#readAhead.fill(from, rows);
        // Aim for ~4 MiB per read: small messages come in large ranges, large ones in few.
        const avg = rows.length > 0 ? bytes / rows.length : 1024;
        this.#readRows = Math.max(1, Math.min(5000, Math.floor((4 << 20) / Math.max(avg, 1))));
        // Seqs below the watermark that the store no longer has were removed (retention,
        // purge): nothing can deliver them, so they count as acked.
        let skipped = 0;
        if (rows.length < to - from + 1) {
          for (let seq = from; seq <= to; seq++) {
            if (!this.#readAhead.has(seq) && !this.#pending.has(seq) && this.#acked.add(seq)) skipped++;
          }
        }
        if (skipped > 0) {
          if (this.topic.ephemeral) this.dropped += skipped;
          else this.skipped += skipped;
          this.#markDirty();
        }
      })
      .catch((err: unknown) => this.hooks.error(err))
      .finally(() => {
        this.#reading = false;
        this.scheduleDispatch();
      });
  }

  /** Loads the messages of due redeliveries that are no longer cached. */
  #fetchPending(seqs: readonly number[]): void {
    if (this.#fetching) return;
    this.#fetching = true;
    let first = Number.POSITIVE_INFINITY;
    for (const s of seqs) if (s < first) first = s;
    // One bounded range read; seqs beyond it wait for the next fetch.
    const wanted = seqs.filter((s) => s - first < 5000);
    let last = first;
    for (const s of wanted) if (s > last) last = s;
    this.topic
      .read(first, last)
      .then((rows) => {
        const bySeq = new Map(rows.map((r) => [r.seq, r]));
        for (const seq of wanted) {
          const p = this.#pending.get(seq);
          if (p === undefined) continue;
          const row = bySeq.get(seq);
          if (row !== undefined) p.message = row;
          else if (!p.consumer && !p.dead) {
            // Removed from the store (retention): nothing left to deliver.
            this.#acked.add(seq);
            this.skipped++;
            this.#settle(seq);
            this.#markDirty();
          }
        }
      })
      .catch((err: unknown) => this.hooks.error(err))
      .finally(() => {
        this.#fetching = false;
        this.scheduleDispatch();
      });
  }

  /**
   * Expires leases whose deadline passed and moves redeliveries that fell due to the ready
   * queue. Timer entries are never removed early; a stale one (the lease was extended or
   * settled) no longer matches its message and is skipped here.
   */
  #runTimers(now: number): void {
    while ((this.#timers.peekKey() ?? Number.POSITIVE_INFINITY) <= now) {
      const at = this.#timers.peekKey()!;
      const entry = this.#timers.pop()!;
      if (entry.kind === "leases") {
        this.#batchLeaseSeqs -= entry.seqs.length;
        for (const seq of entry.seqs) this.#expire(seq, at, now);
      } else if (entry.kind === "lease") {
        this.#expire(entry.seq, at, now);
      } else {
        const p = this.#pending.get(entry.seq);
        if (p !== undefined && p.consumer === undefined && !p.dead && p.notBefore === at)
          this.#ready.push(entry.seq);
      }
    }
  }

  /** Takes a message back if its lease still ends `at`. */
  #expire(seq: number, at: number, now: number): void {
    const p = this.#pending.get(seq);
    if (p?.consumer === undefined || p.deadline !== at) return;
    this.#release(p);
    this.#observer.settled(this.topic.record.name, this.name, "expired", 1, [
      { seq, traceparent: p.traceparent },
    ]);
    this.#retryOrDeadLetter(seq, p, now, undefined);
    this.#markDirty();
  }

  /** After a failed attempt: back off and retry, or dead-letter once attempts run out. */
  #retryOrDeadLetter(seq: number, p: Pending, now: number, delayMs: number | undefined): void {
    const max = this.config.maxDeliveryAttempts;
    if (max > 0 && p.attempts >= max) {
      this.#deadLetter([seq], "max_delivery_attempts");
      return;
    }
    const delay = delayMs ?? backoffDelay(p.attempts - 1, this.config.minBackoffMs, this.config.maxBackoffMs);
    p.notBefore = now + delay;
    this.#timers.push(p.notBefore, { seq, kind: "retry" });
  }

  /** Moves messages to the dead-letter topic (through the broker), then acks them here. */
  #deadLetter(seqs: number[], reason: DeadLetterReason): void {
    if (seqs.length === 0) return;
    for (const seq of seqs) this.#pending.get(seq)!.dead = true;
    const missing = seqs.filter(
      (s) => (this.#pending.get(s)?.message ?? this.topic.cache.get(s)) === undefined,
    );
    const load =
      missing.length === 0
        ? Promise.resolve()
        : this.topic.read(Math.min(...missing), Math.max(...missing)).then((rows) => {
            for (const r of rows) {
              const p = this.#pending.get(r.seq);
              if (p !== undefined) p.message = r;
            }
          });
    void load
      .then(() => {
        const letters: DeadLetter[] = [];
        for (const seq of seqs) {
          const p = this.#pending.get(seq);
          const message = p?.message ?? this.topic.cache.get(seq);
          if (p !== undefined && message !== undefined)
            letters.push({ message, attempts: p.attempts, reason });
        }
        return this.hooks.deadLetter(this, letters);
      })
      .then(
        () => {
          const settled: Settled[] = [];
          for (const seq of seqs) {
            if (this.#acked.add(seq)) {
              this.deadLettered++;
              settled.push({ seq, traceparent: this.#pending.get(seq)?.traceparent });
            }
            this.#settle(seq);
          }
          this.#observer.settled(this.topic.record.name, this.name, "dead_letter", settled.length, settled);
          this.#markDirty();
          this.scheduleDispatch();
        },
        (err: unknown) => {
          // Try again later; the messages stay unacked meanwhile, so nothing is lost.
          this.hooks.error(err);
          const retryAt = Date.now() + Math.max(1000, this.config.minBackoffMs);
          for (const seq of seqs) {
            const p = this.#pending.get(seq);
            if (p === undefined) continue;
            p.dead = false;
            p.notBefore = retryAt;
            this.#timers.push(retryAt, { seq, kind: "retry" });
          }
          this.#armTimer();
        },
      );
  }

  #armTimer(): void {
    const next = this.#timers.peekKey();
    if (next === undefined || this.#closed) return;
    if (this.#timer !== undefined && this.#timerAt <= next) return;
    clearTimeout(this.#timer);
    this.#timerAt = next;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = 0;
        this.scheduleDispatch();
      },
      Math.max(0, next - Date.now()) + 1,
    );
  }

  /** Forgets a message that is now acked, returning its lease's credit and freeing its key. */
  #settle(seq: number): void {
    const p = this.#pending.get(seq);
    if (p === undefined) return;
    this.#release(p);
    this.#pending.delete(seq);
    if (p.key !== "") this.#freeKey(p.key);
    // Timer entries of settled messages are dropped lazily when they fall due; a fast consumer
    // with a long ack deadline would pile up millions of them, so compact when most are stale.
    if (this.#timers.size + this.#batchLeaseSeqs > 4 * this.#pending.size + 10_000) this.#compactTimers();
  }

  #compactTimers(): void {
    const leasedUntil = (seq: number, at: number) => {
      const p = this.#pending.get(seq);
      return p?.consumer !== undefined && p.deadline === at;
    };
    this.#batchLeaseSeqs = 0;
    this.#timers.retain((at, e) => {
      if (e.kind === "leases") {
        let kept = 0;
        for (const seq of e.seqs) if (leasedUntil(seq, at)) e.seqs[kept++] = seq;
        e.seqs.length = kept;
        this.#batchLeaseSeqs += kept;
        return kept > 0;
      }
      if (e.kind === "lease") return leasedUntil(e.seq, at);
      const p = this.#pending.get(e.seq);
      return p !== undefined && p.consumer === undefined && p.notBefore === at;
    });
  }

  /** One fewer unacked message with this key; the next one held back behind it may go. */
  #freeKey(key: string): void {
    const left = (this.#keyPending.get(key) ?? 1) - 1;
    if (left > 0) {
      this.#keyPending.set(key, left);
      return;
    }
    this.#keyPending.delete(key);
    const queue = this.#blocked.get(key);
    if (queue === undefined) return;
    const seq = queue.shift()!;
    this.#blockedCount--;
    if (queue.length === 0) this.#blocked.delete(key);
    if (this.#acked.has(seq)) {
      this.#freeKey(key);
      return;
    }
    // It becomes pending (attempt 0) and goes out first, like a due redelivery.
    this.#keyPending.set(key, 1);
    const now = Date.now();
    this.#pending.set(seq, {
      attempts: 0,
      consumer: undefined,
      deadline: 0,
      leaseBytes: 0,
      notBefore: now,
      message: undefined,
      key,
      dead: false,
      traceparent: undefined,
    });
    this.#timers.push(now, { seq, kind: "retry" });
  }

  #release(p: Pending): void {
    const consumer = p.consumer;
    if (consumer === undefined) return;
    p.consumer = undefined;
    if (!consumer.detached) {
      consumer.inFlight--;
      consumer.inFlightBytes -= p.leaseBytes;
    }
  }

  #checkSeqs(field: string, seqs: readonly number[]): void {
    const watermark = this.topic.watermark;
    for (const seq of seqs) {
      if (!Number.isSafeInteger(seq) || seq < 1 || seq > watermark) {
        throw invalidArgument(
          field,
          `seq ${seq} was never published on topic ${this.topic.record.name} (last seq ${watermark})`,
        );
      }
    }
  }

  #confirmList(consumer: Consumer): { acked: number[]; already: number[] } {
    let list = this.#unconfirmed.get(consumer);
    if (list === undefined) {
      list = { acked: [], already: [] };
      this.#unconfirmed.set(consumer, list);
    }
    return list;
  }

  #markDirty(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    this.hooks.dirty(this);
  }
}

/**
 * Messages read from the store ahead of a lagging subscription's cursor: the rows of the last
 * range read, by seq (holes where the store had none), each handed out once.
 */
class ReadAhead {
  #from = 0;
  #rows: (LogMessage | undefined)[] = [];

  /** Replaces the contents with the rows (in seq order) of a range starting at `from`. */
  fill(from: number, rows: readonly LogMessage[]): void {
    this.#from = from;
    const last = rows.length > 0 ? rows[rows.length - 1]!.seq : from - 1;
    const slots = new Array<LogMessage | undefined>(last - from + 1);
    for (const row of rows) slots[row.seq - from] = row;
    this.#rows = slots;
  }

  has(seq: number): boolean {
    return this.#rows[seq - this.#from] !== undefined;
  }

  /** The message with this seq, if read and not taken yet; it is taken. */
  take(seq: number): LogMessage | undefined {
    const i = seq - this.#from;
    if (i < 0 || i >= this.#rows.length) return undefined;
    const row = this.#rows[i];
    this.#rows[i] = undefined;
    return row;
  }

  clear(): void {
    this.#rows = [];
  }
}

function decodeState(state: Uint8Array | null): PersistedState {
  if (state === null || state.byteLength === 0) return { a: [], p: [] };
  const parsed = JSON.parse(Buffer.from(state).toString("utf8")) as Partial<PersistedState>;
  return { a: parsed.a ?? [], p: parsed.p ?? [] };
}
