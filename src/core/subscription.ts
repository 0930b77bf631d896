import { recordInfo } from "../wire/index.js";
import { AckRanges } from "./ack-ranges.js";
import { backoffDelay } from "./backoff.js";
import { monotonicNow } from "./clock.js";
import type { Consumer, Delivered, Delivery } from "./consumer.js";
import { DeadLetterLog } from "./dead-letter-log.js";
import { CorruptRowsError, corruptRows, invalidArgument, type NerveBusError, seqText } from "./errors.js";
import { LeaseRange } from "./lease-range.js";
import { LEASE_ENTRY_BYTES, type LeaseShare } from "./lease-share.js";
import { LeaseTimers } from "./lease-timers.js";
import type { LogMessage, PointerRecord, SubscriptionConfig, SubscriptionRecord } from "./model.js";
import type { BrokerObserver, Settled } from "./observer.js";
import { OrderingGate } from "./ordering-gate.js";
import { type PendingEntry, pendingEntry } from "./pending-entry.js";
import { decodePersistedState, encodePersistedState } from "./persisted-state.js";
import { type Lane, PriorityPicker } from "./priority-picker.js";
import { RateMeter } from "./rate-meter.js";
import { ReadAhead } from "./read-ahead.js";
import type { Topic } from "./topic.js";

/**
 * Seqs of a priority lane one store read brings (when the lane's messages are not cached), and
 * the bytes of them kept until delivered: enough for a few windows of small messages, little
 * memory per subscription with large ones (those past the bytes are read again when reached).
 */
const LANE_READ = 256;
const LANE_READ_BYTES = 4 << 20;
/** Lane seqs at most this far apart are read in one range (the seqs between are read and dropped). */
const LANE_GAP = 64;

/** Why a message leaves the subscription without an ack. */
export type DeadLetterReason = "max_delivery_attempts" | "terminated";

/** A message to move to the dead-letter topic. */
export interface DeadLetter {
  readonly message: LogMessage;
  readonly attempts: number;
  readonly reason: DeadLetterReason;
}

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

/** One message's state on one subscription (see Subscription.deliveryOf). */
export interface DeliveryState {
  readonly state:
    | "not_delivered"
    | "leased"
    | "waiting_redelivery"
    | "acked"
    | "held"
    | "dead_lettering"
    | "dead_lettered";
  /** Deliveries so far; 0 when not delivered or settled (attempts of settled messages are not kept). */
  readonly attempts: number;
  /** leased: the consumer holding it. */
  readonly consumer: string;
  /** leased: when the lease ends (ms since epoch). */
  readonly leaseDeadline: number;
  /** waiting_redelivery: redelivered no earlier than this (ms since epoch). */
  readonly notBefore: number;
  /** dead_lettered: the topic it went to ("" when the subscription had none: it was dropped). */
  readonly deadLetterTopic: string;
}

/** Callbacks into the broker. */
export interface SubscriptionHooks {
  /** Asks for the state to be persisted soon. */
  readonly dirty: (sub: Subscription) => void;
  /** Publishes dead letters (or drops them when there is no dead-letter topic). */
  readonly deadLetter: (sub: Subscription, letters: DeadLetter[]) => Promise<void>;
  /** Reading stored messages or dead-lettering failed (it is tried again). */
  readonly error: (err: unknown) => void;
  /** A read of stored messages or a dead-lettering succeeded (after failures, they ended). */
  readonly recovered?: () => void;
}

/**
 * A named cursor on a topic, shared by the consumers attached to it. It leases each message to
 * one consumer at a time within that consumer's window, takes it back when the lease expires,
 * is nacked or the consumer goes away, and keeps acks as a floor plus ranges above it.
 *
 * First deliveries go out in seq order: from the topic's tail cache when the subscription keeps
 * up, from store reads of bounded ranges when it lags. Redeliveries go first when due. With
 * ordering on, a message waits while an earlier one with the same key is unacked.
 *
 * This file keeps the lease life cycle (deliver, ack, nack, expire, dead-letter, seek), whose
 * steps all change the pending entries, the cursor and the acked ranges together; the parts
 * with state of their own live beside it: lease-timers.ts, ordering-gate.ts, read-ahead.ts,
 * persisted-state.ts and pending-entry.ts.
 */
export class Subscription {
  record: SubscriptionRecord;
  readonly #acked: AckRanges;
  /** Which acked seqs were in fact dead-lettered (and where). */
  readonly #deadLetters: DeadLetterLog;
  /** The next seq never delivered on this subscription (in this process). */
  #cursor: number;
  /** The highest seq ever delivered on this subscription (not lowered by seeks). */
  #highestDelivered = 0;
  readonly #pending = new Map<number, PendingEntry>();
  /**
   * Ranged leases of first deliveries, by first seq (their seqs never interleave: first
   * deliveries go out in seq order, and a seek back gives every range's seqs pending entries).
   * A seq held by one has no pending entry.
   */
  #ranges: LeaseRange[] = [];
  readonly #timers = new LeaseTimers(() => this.scheduleDispatch());
  /**
   * What this subscription counts in the leases' share of the memory budget: its seqs with a
   * pending entry or held by a ranged lease at LEASE_ENTRY_BYTES each, and what its ordering
   * gate holds (the keys of unacked messages, the messages held back behind them) (first deliveries and holding back wait while the share is full; see
   * LeaseShare).
   */
  #leaseBytes = 0;
  /** The gate's bytes as counted in #leaseBytes. */
  #gateBytes = 0;
  readonly #leaseShare: LeaseShare;
  readonly #consumers: Consumer[] = [];
  #rotate = 0;
  /** Messages read from the store ahead of the cursor, for a lagging subscription. */
  readonly #readAhead: ReadAhead;
  /** Seqs whose redelivery fell due, in due order (entries may be stale; checked on use). */
  #ready: number[] = [];
  #readyHead = 0;
  #fetching = false;
  /** A stored message met in this dispatch that does not decode: the streams end with it. */
  #corrupt: CorruptRowsError | undefined;
  /** No read-ahead starts before this time (ms; 0: none pending): the last store read failed (#readFailed). */
  #readsPausedUntil = 0;
  #readsResume: NodeJS.Timeout | undefined;
  #dispatchScheduled = false;
  #dirty = false;
  /** Acks waiting for the next persisted state, per consumer that asked for confirmations. */
  #unconfirmed = new Map<Consumer, { acked: number[]; already: number[]; ignored: number[] }>();
  /** Ordering: which keys are busy, and what waits behind them. */
  readonly #gate = new OrderingGate();
  /** Priorities: which lane the next first delivery comes from. */
  readonly #picker = new PriorityPicker();
  /**
   * Lane messages read from the store (null: the store no longer has it), for a lane whose
   * messages are not in the tail cache (a backlog from before a restart). At most one read's
   * worth (LANE_READ seqs, messages of about LANE_READ_BYTES); replaced by the next read.
   */
  #laneRead = new Map<number, LogMessage | null>();
  #laneReading = false;
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
    pointer: Pick<PointerRecord, "ptr" | "state" | "deadLetters">,
    private readonly hooks: SubscriptionHooks,
  ) {
    this.record = record;
    this.#readAhead = new ReadAhead(topic.options.readAheadShare);
    this.#leaseShare = topic.options.leaseShare;
    const parsed = decodePersistedState(pointer.state);
    this.#acked = new AckRanges(pointer.ptr, parsed.a);
    this.#deadLetters = DeadLetterLog.decode(pointer.deadLetters);
    const now = monotonicNow();
    for (const [seq, attempts, notBefore, key] of parsed.p) {
      if (this.#acked.has(seq)) continue;
      const due = Math.max(notBefore, now);
      this.#pending.set(seq, pendingEntry(attempts, due, key ?? ""));
      this.#count(1);
      if (key) this.#gate.take(key);
      this.#timers.retry(seq, due);
    }
    this.#countGate();
    this.#cursor = this.#acked.floor + 1;
    // What may have been delivered before the restart: acks of it still count, also when
    // they come before its redelivery.
    const ranges = this.#acked.ranges();
    this.#highestDelivered = Math.max(
      parsed.h ?? 0,
      this.#acked.floor,
      ranges.length === 0 ? 0 : ranges[ranges.length - 1]![1],
      ...parsed.p.map(([seq]) => seq),
    );
    this.#unlisten = topic.onAdvance(() => this.scheduleDispatch());
    // First deliveries wait for the priority lanes of a backlog from before a restart.
    if (topic.priorities.loading) void topic.priorities.ready.then(() => this.scheduleDispatch());
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

  /**
   * Applies changed settings; a resumed subscription delivers again at once, and with ordering
   * turned off every message held back behind its key goes out as any other.
   */
  reconfigure(record: SubscriptionRecord): void {
    const unordered = this.config.ordering && !record.config.ordering;
    this.record = record;
    if (unordered) {
      // Held back, they would otherwise still go out one per ack of their key's messages
      // (a backlog behind a stuck key stayed stuck after ordering was turned off).
      for (const p of this.#pending.values()) p.key = "";
      this.#rewind();
      this.#markDirty();
    }
    this.scheduleDispatch();
  }

  stats(): SubscriptionStats {
    const watermark = this.topic.watermark;
    let leased = 0;
    for (const p of this.#pending.values()) if (p.consumer) leased++;
    let inFlight = leased;
    for (const r of this.#ranges) inFlight += r.open;
    const floor = this.#acked.floor;
    const oldest = this.#acked.nextMissing(floor);
    return {
      floor,
      backlog: Math.max(0, watermark - floor - this.#acked.countThrough(watermark)),
      inFlight,
      waitingRedelivery: this.#pending.size - leased,
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

  /**
   * Where message `seq` stands on this subscription, from the live state (what the broker also
   * persists): acked, dead-lettered, leased, waiting for redelivery, held behind its ordering
   * key, or not delivered. Attempts of settled messages are not kept, so they read 0.
   */
  deliveryOf(seq: number): DeliveryState {
    const p = this.#pending.get(seq);
    const none = { attempts: 0, consumer: "", leaseDeadline: 0, notBefore: 0, deadLetterTopic: "" };
    if (this.#acked.has(seq)) {
      const deadLetterTopic = this.#deadLetters.topicOf(seq);
      return deadLetterTopic === undefined
        ? { ...none, state: "acked" }
        : { ...none, state: "dead_lettered", deadLetterTopic };
    }
    const range = p === undefined ? this.#rangeOf(seq) : undefined;
    if (range !== undefined)
      return {
        ...none,
        state: "leased",
        attempts: 1,
        consumer: range.consumer.name,
        leaseDeadline: range.deadline,
      };
    if (p === undefined) {
      // Passed by the cursor yet neither pending nor acked: held back behind its key.
      const held = this.config.ordering && seq < this.#cursor;
      return { ...none, state: held ? "held" : "not_delivered" };
    }
    if (p.dead) return { ...none, attempts: p.attempts, state: "dead_lettering" };
    if (p.consumer !== undefined)
      return {
        ...none,
        state: "leased",
        attempts: p.attempts,
        consumer: p.consumer.name,
        leaseDeadline: p.deadline,
      };
    // Released from its ordering key and next to go out: not delivered yet.
    if (p.attempts === 0) return { ...none, state: "not_delivered" };
    return { ...none, state: "waiting_redelivery", attempts: p.attempts, notBefore: p.notBefore };
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
    this.#splitRanges((r) => r.consumer === consumer);
    const now = monotonicNow();
    for (const [seq, p] of this.#pending) {
      if (p.consumer !== consumer) continue;
      p.consumer = undefined;
      p.notBefore = now;
      this.#timers.retry(seq, now);
    }
    consumer.inFlight = 0;
    consumer.inFlightBytes = 0;
    // Rows read ahead for nobody: the last consumer gone, they would stay in memory (with the
    // run bodies they are cut from) until another came; they are read again then.
    if (this.#consumers.length === 0) this.#readAhead.clear();
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
      // A consumer acks what it was given: a seq never delivered here (above everything
      // delivered so far, or held back behind its ordering key) is not acked, or it would be
      // lost to every consumer of the subscription.
      if (
        seq > this.#highestDelivered ||
        this.#pending.get(seq)?.attempts === 0 ||
        // Urgent messages went out ahead of the cursor: the seqs between were not delivered.
        (seq >= this.#cursor && this.topic.priorities.mixed && !this.#isOut(seq))
      ) {
        confirm?.ignored.push(seq);
        continue;
      }
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
    const p = this.#entry(seq);
    if (p === undefined || p.consumer !== consumer) return;
    this.#release(p);
    this.#observer.settled(this.topic.record.name, this.name, "nack", 1, [
      { seq, traceparent: p.traceparent },
    ]);
    this.#retryOrDeadLetter(seq, p, monotonicNow(), delayMs);
    this.#timers.arm();
    this.#markDirty();
    this.scheduleDispatch();
  }

  /** Dead-letters messages now, without further attempts (drops them without a dead-letter topic). */
  terminate(consumer: Consumer, seqs: readonly number[]): void {
    this.#checkSeqs("terminate_seqs", seqs);
    const letters: number[] = [];
    for (const seq of seqs) {
      const p = this.#entry(seq);
      if (p === undefined || p.consumer !== consumer || p.dead) continue;
      this.#release(p);
      letters.push(seq);
    }
    this.#deadLetter(letters, "terminated");
  }

  /** Ack confirmations of `consumer` waiting for the next state write (seqs in all lists). */
  unconfirmed(consumer: Consumer): number {
    const list = this.#unconfirmed.get(consumer);
    return list === undefined ? 0 : list.acked.length + list.already.length + list.ignored.length;
  }

  /** Timer entries held (leases, redeliveries; stale ones included until compacted). */
  get timerEntries(): number {
    return this.#timers.size;
  }

  /** Extends the leases of messages this consumer holds to `deadlineMs` from now. */
  extend(consumer: Consumer, seqs: readonly number[], deadlineMs: number): void {
    this.#checkSeqs("extend_deadlines.seqs", seqs);
    const deadline = monotonicNow() + deadlineMs;
    for (const seq of seqs) {
      const p = this.#entry(seq);
      if (p === undefined || p.consumer !== consumer) continue;
      p.deadline = deadline;
      if (deadline < p.armedAt) {
        p.armedAt = deadline;
        this.#timers.lease(seq, deadline);
      }
    }
    this.#timers.arm();
  }

  /**
   * Sets the floor (purge, seek): everything ≤ floor counts as acked, and seeking back forgets
   * acks above it so those messages are delivered again.
   */
  moveFloor(floor: number): void {
    if (floor >= this.#acked.floor) {
      this.#acked.raiseFloor(floor);
      for (const seq of [...this.#pending.keys()]) if (seq <= floor) this.#settle(seq);
      for (const r of this.#ranges) {
        if (r.first > floor) break;
        for (const i of r.heldIndexes()) if (r.seqs[i]! <= floor) this.#settleRanged(r, i);
      }
      this.#dropSettledRanges();
    } else {
      this.#splitRanges(() => true);
      this.#acked.reset(floor);
      // Delivered again, so no longer dead-lettered (the dead-letter topic keeps its copies).
      this.#deadLetters.forgetFrom(floor + 1);
      // Seeking back replays from the floor in seq order: messages waiting for redelivery go
      // back to the log's order instead of jumping the queue. Leased ones stay with their
      // consumers until acked or expired.
      for (const [seq, p] of [...this.#pending])
        if (p.consumer === undefined) {
          this.#pending.delete(seq);
          this.#count(-1);
        }
    }
    this.#rewind();
    this.#markDirty();
    this.scheduleDispatch();
  }

  /**
   * Meets the log again from the floor: held-back messages are met again, busy keys are those
   * still pending; what is acked or out is passed over.
   */
  #rewind(): void {
    this.#readAhead.clear();
    this.#gate.reset(Array.from(this.#pending.values(), (p) => p.key));
    this.#countGate();
    this.#picker.reset();
    this.#laneRead.clear();
    this.#cursor = this.#acked.floor + 1;
  }

  /** Retention deleted every seq ≤ `seq`: what was unacked there is skipped and counted. */
  skipThrough(seq: number): void {
    if (this.#deadLetters.forgetThrough(seq)) this.#markDirty();
    if (seq <= this.#acked.floor) return;
    const unacked = seq - this.#acked.floor - this.#acked.countThrough(seq);
    this.skipped += unacked;
    this.moveFloor(seq);
  }

  /** The pointer to persist: floor plus the state above it. */
  snapshot(): {
    ptr: number;
    state: Uint8Array;
    /** Only when it changed since the last snapshot (see PointerRecord.deadLetters). */
    deadLetters: Uint8Array | undefined;
    confirms: Map<Consumer, { acked: number[]; already: number[]; ignored: number[] }>;
  } {
    this.#dirty = false;
    const state = encodePersistedState(
      this.#acked.ranges(),
      this.#pending,
      monotonicNow(),
      this.#highestDelivered,
    );
    const confirms = this.#unconfirmed;
    this.#unconfirmed = new Map();
    return { ptr: this.#acked.floor, state, deadLetters: this.#deadLetters.take(), confirms };
  }

  /**
   * Puts back what a snapshot whose write failed carried: its confirmations go out with the
   * next one, which also stores the dead letters again.
   */
  restoreConfirms(confirms: Map<Consumer, { acked: number[]; already: number[]; ignored: number[] }>): void {
    this.#deadLetters.untake();
    for (const [consumer, list] of confirms) {
      if (consumer.detached) continue;
      const current = this.#confirmList(consumer);
      current.acked.push(...list.acked);
      current.already.push(...list.already);
      current.ignored.push(...list.ignored);
    }
  }

  close(): void {
    this.#share(-this.#leaseBytes);
    this.#closed = true;
    this.#unlisten();
    this.#timers.close();
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
    if (!this.topic.servable()) {
      // This broker's lease of the topic is not current (it was frozen, or cannot reach the
      // database): another broker may own the topic now, with acks this state lacks. Nothing is
      // delivered until the lease is renewed (or lost, which closes the subscription).
      setTimeout(() => this.scheduleDispatch(), 100).unref();
      return;
    }
    const now = monotonicNow();
    this.#runTimers(now);
    if (this.config.paused) {
      this.#timers.arm();
      return;
    }
    const n = this.#consumers.length;
    const start = n === 0 ? 0 : this.#rotate++ % n;
    let starved = false;
    for (let k = 0; k < n && !starved; k++) {
      const consumer = this.#consumers[(start + k) % n]!;
      if (!consumer.hasCredit) continue;
      const batch: Delivery[] = [];
      const leased: number[] = [];
      // First deliveries without an ordering key share one ranged lease (no entry each); with
      // tracing on each gets its entry, which keeps its trace context for the settle span.
      const rangeSeqs: number[] = [];
      const rangeSizes: number[] = [];
      // Priority lanes hand out messages ahead of the cursor: ranges (which must not interleave)
      // only while the topic's messages are all of one priority.
      const ranged = !this.#observer.tracing && !this.topic.priorities.mixed;
      // Ranged first deliveries from the tail cache go out as spans of stored records when the
      // sink takes them: no message is decoded, nothing is allocated per message.
      const spans = ranged && consumer.sink.sendSpans !== undefined;
      let batchBytes = 0;
      // One response carries at most ~1 MiB of payload (plus at most one message), well under
      // the 4 MiB default receive limit of gRPC clients.
      while (consumer.hasCredit && batchBytes < 1 << 20) {
        let seq: number;
        let message: LogMessage | undefined;
        let p: PendingEntry | undefined;
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
          // Due redeliveries go first (README, Priorities): while their messages are read from
          // the store, first deliveries wait too (dispatched again when the read is back).
          // Otherwise, after a restart (an empty tail cache) the urgent lane's read could come
          // back first and the urgent backlog went out before the redelivery
          // (test/integration/priority-redelivery-sqlite.test.ts).
          if (this.#fetching && this.#readyHead < this.#ready.length) break;
          if (this.topic.priorities.loading) break; // dispatched again once the lanes are built
          // The leases' share of the memory budget is full: what is out is redelivered and
          // acked, nothing new goes out until acks make room (dispatched again then).
          if (!this.#leaseShare.mayTake(this, this.#leaseBytes)) break;
          if (spans && this.#cursor <= this.topic.watermark) {
            const took = this.#takeRecord(consumer, batch, rangeSeqs, rangeSizes);
            if (took === 0) break; // does not fit the window
            if (took > 0) {
              batchBytes += took - 1;
              continue;
            }
          }
          const fresh = this.#nextByPriority();
          if (fresh === undefined) {
            starved = true;
            break;
          }
          seq = fresh.seq;
          message = fresh;
        }
        const bytes = message.bytes;
        if (!consumer.fits(bytes)) break;
        if (p === undefined && ranged && !(this.config.ordering && message.orderingKey !== "")) {
          this.#cursor = seq + 1;
          this.#picker.delivered();
          if (seq > this.#highestDelivered) this.#highestDelivered = seq;
          rangeSeqs.push(seq);
          rangeSizes.push(bytes);
          this.#count(1);
          consumer.inFlight++;
          consumer.inFlightBytes += bytes;
          batch.push({ message, attempt: 1 });
          batchBytes += bytes;
          continue;
        }
        if (p === undefined) {
          p = pendingEntry(0, 0, "");
          this.#pending.set(seq, p);
          this.#count(1);
          // A message taken from a priority lane may lie ahead of the cursor; the seqs between
          // are still to come.
          if (seq === this.#cursor) this.#cursor = seq + 1;
          this.#picker.delivered();
          if (this.config.ordering && message.orderingKey !== "") {
            p.key = message.orderingKey;
            this.#gate.take(p.key);
            this.#countGate();
          }
        } else {
          this.#readyHead++;
          if (p.attempts > 0) this.redelivered++;
        }
        p.attempts++;
        // Here, not only for fresh messages: one held behind its ordering key goes out later
        // through the ready queue, possibly above every seq delivered fresh.
        if (seq > this.#highestDelivered) this.#highestDelivered = seq;
        p.message = undefined;
        if (this.#observer.tracing) p.traceparent = message.attributes.traceparent;
        const deadline = now + consumer.ackDeadlineMs;
        p.consumer = consumer;
        p.deadline = deadline;
        p.armedAt = deadline;
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
      if (leased.length > 0) this.#timers.leases(leased, now + consumer.ackDeadlineMs);
      if (rangeSeqs.length > 0) {
        const range = new LeaseRange(consumer, rangeSeqs, rangeSizes, now + consumer.ackDeadlineMs);
        this.#ranges.push(range);
        this.#timers.range(range);
      }
      if (batch.length > 0) {
        this.deliveryRate.mark(batch.length);
        this.#observer.delivered(this.topic.record.name, this.name, batch);
        const sink = consumer.sink;
        const open = sink.sendSpans !== undefined ? sink.sendSpans(batch) : sink.send(batch as Delivered[]);
        if (!open) consumer.congested = true;
        this.#markDirty();
        // A full batch may leave credit: come back for the rest on the next turn.
        if (consumer.hasCredit && batchBytes >= 1 << 20) this.scheduleDispatch();
      }
    }
    if (this.topic.ephemeral) this.#dropUndeliverable();
    this.#timers.arm();
    const corrupt = this.#corrupt;
    if (corrupt !== undefined) {
      // Not delivered, and the cursor stays at it: each consumer is told, as by a failed read.
      this.#corrupt = undefined;
      this.#readFailed(corrupt);
    }
  }

  /**
   * The first delivery of the seq at the cursor as a span of its cached record (joined to the
   * batch's last span when it follows it), leased in the batch's range. Returns its size as
   * windows count it plus 1, 0 when it does not fit the consumer's window, or −1 when it must
   * take the message path: not cached, acked or out already, or held by an ordering key.
   */
  #takeRecord(consumer: Consumer, batch: Delivery[], rangeSeqs: number[], rangeSizes: number[]): number {
    const seq = this.#cursor;
    if (this.#acked.has(seq) || this.#isOut(seq)) return -1;
    let run = this.topic.cache.runOf(seq);
    if (run === undefined) {
      run = this.#readAhead.runOf(seq);
      if (run === undefined) return -1;
      this.#prefetch(seq);
    }
    const k = seq - run.firstSeq;
    const info = recordInfo(run, k);
    if (info % 2 === 1 && this.config.ordering) return -1;
    const bytes = Math.floor(info / 2);
    if (!consumer.fits(bytes)) return 0;
    this.#cursor = seq + 1;
    this.#picker.delivered();
    if (seq > this.#highestDelivered) this.#highestDelivered = seq;
    rangeSeqs.push(seq);
    rangeSizes.push(bytes);
    this.#count(1);
    consumer.inFlight++;
    consumer.inFlightBytes += bytes;
    const last = batch[batch.length - 1];
    if (last !== undefined && "run" in last && last.run === run && last.to === k) last.to++;
    else batch.push({ run, from: k, to: k + 1 });
    return bytes + 1;
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

  /**
   * The next first delivery: in seq order, unless the topic has messages of mixed priority;
   * then from the lanes in the order of the picker's cycle (see PriorityPicker).
   */
  #nextByPriority(): LogMessage | undefined {
    if (!this.topic.priorities.mixed || this.topic.ephemeral) return this.#nextFresh();
    for (const lane of this.#picker.order()) {
      const message = lane === "oldest" ? this.#nextFresh() : this.#nextInLane(lane);
      // null: the lane's next message is being read; it goes first once it is there.
      if (message === null) return undefined;
      if (message !== undefined) return message;
      // The oldest message is being read from the store: its slot waits for it too, or a
      // lagging subscription's lanes would take every slot until the read is back (bulk's share).
      if (lane === "oldest" && this.#readAhead.reading) return undefined;
    }
    return undefined;
  }

  /**
   * The lowest undelivered message of a priority lane, at or above the cursor and within the
   * watermark: from the tail cache, else read from the store (a backlog from before a restart,
   * or one the cache no longer holds; the lane waits for that read, `null` meanwhile). Skipped
   * for good (left to seq order): with ordering on, messages with an ordering key (priority
   * never breaks a key's order), and messages the store no longer has.
   */
  #nextInLane(lane: Exclude<Lane, "oldest">): LogMessage | undefined | null {
    const seqs = this.topic.priorities[lane];
    const watermark = this.topic.watermark;
    for (let pos = seqs.firstAtLeast(Math.max(this.#picker.from[lane], this.#cursor)); ; pos++) {
      const seq = seqs.at(pos);
      if (seq === undefined || seq > watermark) return undefined;
      this.#picker.from[lane] = seq;
      if (this.#isOut(seq) || this.#acked.has(seq)) continue;
      const message = this.topic.cache.get(seq) ?? this.#laneRead.get(seq);
      if (message === undefined) {
        this.#readLane(lane, pos);
        return null;
      }
      if (message === null) continue;
      if (this.config.ordering && message.orderingKey !== "") continue;
      return message;
    }
  }

  /**
   * Reads from the store the next LANE_READ undelivered seqs of a lane from position `pos` on,
   * as few range reads as their gaps allow, then dispatches again (one read at a time).
   */
  #readLane(lane: Exclude<Lane, "oldest">, pos: number): void {
    if (this.#laneReading) return;
    this.#laneReading = true;
    const seqs = this.topic.priorities[lane];
    const watermark = this.topic.watermark;
    const wanted: number[] = [];
    for (let p = pos; wanted.length < LANE_READ; p++) {
      const seq = seqs.at(p);
      if (seq === undefined || seq > watermark) break;
      if (!this.#isOut(seq) && !this.#acked.has(seq)) wanted.push(seq);
    }
    // Seqs less than LANE_GAP apart share a read: a pack's messages lie next to each other.
    const ranges: [number, number][] = [];
    for (const seq of wanted) {
      const last = ranges[ranges.length - 1];
      if (last !== undefined && seq - last[1] <= LANE_GAP) last[1] = seq;
      else ranges.push([seq, seq]);
    }
    Promise.all(ranges.map(([lo, hi]) => this.topic.read(lo, hi)))
      .then((parts) => {
        const found = new Map<number, LogMessage>();
        for (const rows of parts) for (const m of rows) found.set(m.seq, m);
        // In lane order: what the store lacks is null (skipped), what is past the bytes kept is
        // left out (read again when the lane gets there).
        const read = new Map<number, LogMessage | null>();
        let bytes = 0;
        for (const seq of wanted) {
          const m = found.get(seq);
          if (m === undefined) read.set(seq, null);
          else if (bytes < LANE_READ_BYTES) {
            read.set(seq, m);
            bytes += m.bytes;
          }
        }
        this.#laneRead = read;
      })
      .catch((err: unknown) => {
        this.#readFailed(err);
        return new Promise((r) => setTimeout(r, 100)); // not at once against a failing store
      })
      .finally(() => {
        this.#laneReading = false;
        this.scheduleDispatch();
      });
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
      if (this.#isOut(seq)) {
        this.#cursor++;
        continue;
      }
      let message = this.topic.cache.get(seq);
      if (message === undefined) {
        message = this.#readAhead.take(seq);
        if (message === undefined) {
          this.#startRead(seq, watermark);
          return undefined;
        }
        // Read back from the store: its strings are checked where they are decoded, here.
        try {
          void message.attributes;
        } catch (err) {
          this.#corrupt = corruptRows(this.topic.record.name, seq, seq, err);
          return undefined;
        }
        this.#prefetch(seq);
      }
      if (this.config.ordering && message.orderingKey !== "" && this.#gate.isBusy(message.orderingKey)) {
        // An earlier message with this key is unacked: hold this one back, behind it, if the
        // leases' share has room (before, 1,000 subscriptions could each hold 100,000: 1.2 GB).
        const cost = this.#gate.holdCost(message.orderingKey);
        if (!this.#leaseShare.mayTake(this, this.#leaseBytes, cost)) return undefined;
        if (!this.#gate.hold(message.orderingKey, seq)) return undefined;
        this.#countGate();
        this.#cursor++;
        continue;
      }
      return message;
    }
    return undefined;
  }

  /**
   * Whether reads pause after a failure; if so, a dispatch is due when the pause ends. Its own
   * timer: the one #readFailed set may fire a few ms before the clock passes the pause (timers
   * run on the event loop's cached clock), and a dispatch then would find reads paused with
   * nothing to wake it.
   */
  #readsPaused(): boolean {
    const left = this.#readsPausedUntil - monotonicNow();
    if (left <= 0) return false;
    if (this.#readsResume === undefined) {
      this.#readsResume = setTimeout(() => {
        this.#readsResume = undefined;
        this.scheduleDispatch();
      }, left + 1);
      this.#readsResume.unref();
    }
    return true;
  }

  /**
   * Reads a bounded range ahead of the cursor from the store (one read at a time); none while
   * reads pause after a failure (dispatched again when the pause ends). Without that check a
   * failing store was read again at every dispatch, the failed read's own among them: ~500
   * failed reads (and log lines) a second per subscription on a missing table.
   */
  #startRead(from: number, watermark: number): void {
    if (this.#readsPaused()) return;
    const to = this.#readAhead.begin(from, watermark);
    if (to !== undefined) this.#read(from, to);
  }

  /**
   * Reads the range after the read-ahead's runs while the cursor (at `seq`) is still in them,
   * once the deliveries of this turn are on their way: the embedded store reads on the event
   * loop, and HTTP/2 writes out what a turn wrote only in a later phase of the loop, so a read
   * started now held this turn's responses back for as long as it took (17–21 ms for 4 MiB of
   * 1 KiB messages, the consumer idle meanwhile).
   */
  #prefetch(seq: number): void {
    // Called for every message taken from the read-ahead: the clock only while reads pause
    // (reading it per message was 6 % of a drain's CPU).
    if (this.#readsPausedUntil !== 0) {
      if (monotonicNow() < this.#readsPausedUntil) return;
      this.#readsPausedUntil = 0;
    }
    const range = this.#readAhead.prefetchFrom(seq, this.topic.watermark);
    if (range === undefined) return;
    setImmediate(() => {
      if (this.#closed) this.#readAhead.end();
      else this.#read(range[0], range[1]);
    });
  }

  /**
   * A read of stored messages failed. Rows that are corrupt (DATA_LOSS) stay corrupt however
   * often they are read: every stream ends with the error, which names their seqs and how to
   * seek past them, as does the stream of each consumer that comes back while the subscription
   * has not moved past them. Read-ahead pauses a second after any failure, so that neither a
   * failing store nor reconnecting consumers get a read per turn of the event loop.
   */
  #readFailed(err: unknown): void {
    this.hooks.error(err);
    this.#readsPausedUntil = monotonicNow() + 1000;
    setTimeout(() => this.scheduleDispatch(), 1000).unref();
    if (err instanceof CorruptRowsError) this.failConsumers(err);
  }

  /** Reads [from, to] (begun in the read-ahead) and counts what the store no longer has. */
  #read(from: number, to: number): void {
    this.#readRange(from, to)
      .then(({ count, end }) => {
        // Seqs below the watermark that the store no longer has were removed (retention,
        // purge): nothing can deliver them, so they count as acked.
        let skipped = 0;
        if (count < end - from + 1) {
          for (let seq = from; seq <= end; seq++) {
            if (!this.#readAhead.has(seq) && !this.#isOut(seq) && this.#acked.add(seq)) skipped++;
          }
        }
        if (skipped > 0) {
          if (this.topic.ephemeral) this.dropped += skipped;
          else this.skipped += skipped;
          this.#markDirty();
        }
        this.hooks.recovered?.();
      })
      .catch((err: unknown) => this.#readFailed(err))
      .finally(() => {
        this.#readAhead.end();
        this.scheduleDispatch();
      });
  }

  /**
   * Reads [from, to] into the read-ahead: as runs of stored records when the store gives them
   * (format 2), else as messages. Resolves to the number of messages read and the last seq the
   * read covers: `to`, or the seq before corrupt rows, so that the messages before them are
   * delivered first; the read that starts at them fails (#readFailed).
   */
  async #readRange(from: number, to: number): Promise<{ count: number; end: number }> {
    try {
      const runs = await this.topic.readRuns(from, to);
      if (runs !== undefined) {
        this.#readAhead.fillRuns(from, to, runs);
        let n = 0;
        for (const r of runs) n += r.offsets.length;
        return { count: n, end: to };
      }
      const rows = await this.topic.read(from, to);
      this.#readAhead.fill(from, rows);
      return { count: rows.length, end: to };
    } catch (err) {
      if (!(err instanceof CorruptRowsError) || err.firstSeq <= from) throw err;
      return this.#readRange(from, err.firstSeq - 1);
    }
  }

  /** Loads the messages of due redeliveries that are no longer cached. */
  #fetchPending(seqs: readonly number[]): void {
    if (this.#fetching) return;
    this.#fetching = true;
    // Reads pause after a failure (see #startRead): the pause stands in for the fetch.
    const paused = this.#readsPausedUntil - monotonicNow();
    if (paused > 0) {
      setTimeout(() => {
        this.#fetching = false;
        this.scheduleDispatch();
      }, paused).unref();
      return;
    }
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
      .catch((err: unknown) => this.#readFailed(err))
      .finally(() => {
        this.#fetching = false;
        this.scheduleDispatch();
      });
  }

  /**
   * Expires leases whose deadline passed and moves redeliveries that fell due to the ready
   * queue. A stale timer entry (the lease was extended or settled) no longer matches its
   * message and is skipped here.
   */
  #runTimers(now: number): void {
    this.#timers.runDue(
      now,
      (seq, at) => this.#expire(seq, at, now),
      (seq, at) => {
        const p = this.#pending.get(seq);
        if (p !== undefined && p.consumer === undefined && !p.dead && p.notBefore === at)
          this.#ready.push(seq);
      },
      (range) => {
        // Each seq still held gets its entry, leased until the range's deadline, and expires.
        for (const i of range.heldIndexes()) {
          const seq = range.seqs[i]!;
          // No timer entry: it expires right here.
          this.#splitOut(range, i, false);
          this.#expire(seq, range.deadline, now);
        }
        this.#dropSettledRanges();
      },
    );
  }

  /** Takes a message back if its lease still ends `at`; re-arms for an extended lease. */
  #expire(seq: number, at: number, now: number): void {
    const p = this.#pending.get(seq);
    if (p?.consumer === undefined || p.armedAt !== at) return;
    if (p.deadline > at) {
      p.armedAt = p.deadline;
      this.#timers.lease(seq, p.deadline);
      return;
    }
    this.#release(p);
    this.#observer.settled(this.topic.record.name, this.name, "expired", 1, [
      { seq, traceparent: p.traceparent },
    ]);
    this.#retryOrDeadLetter(seq, p, now, undefined);
    this.#markDirty();
  }

  /** After a failed attempt: back off and retry, or dead-letter once attempts run out. */
  #retryOrDeadLetter(seq: number, p: PendingEntry, now: number, delayMs: number | undefined): void {
    const max = this.config.maxDeliveryAttempts;
    if (max > 0 && p.attempts >= max) {
      this.#deadLetter([seq], "max_delivery_attempts");
      return;
    }
    const delay = delayMs ?? backoffDelay(p.attempts - 1, this.config.minBackoffMs, this.config.maxBackoffMs);
    p.notBefore = now + delay;
    this.#timers.retry(seq, p.notBefore);
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
    // Where the letters went: the topic the router sends them to ("" drops them).
    let target = "";
    void load
      .then(() => {
        target = this.config.deadLetterTopic;
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
              this.#deadLetters.add(seq, target);
              settled.push({ seq, traceparent: this.#pending.get(seq)?.traceparent });
            }
            this.#settle(seq);
          }
          this.#observer.settled(this.topic.record.name, this.name, "dead_letter", settled.length, settled);
          this.#markDirty();
          this.scheduleDispatch();
          this.hooks.recovered?.();
        },
        (err: unknown) => {
          // Try again later; the messages stay unacked meanwhile, so nothing is lost.
          this.hooks.error(err);
          const retryAt = monotonicNow() + Math.max(1000, this.config.minBackoffMs);
          for (const seq of seqs) {
            const p = this.#pending.get(seq);
            if (p === undefined) continue;
            p.dead = false;
            p.notBefore = retryAt;
            this.#timers.retry(seq, retryAt);
          }
          this.#timers.arm();
        },
      );
  }

  /** Forgets a message that is now acked, returning its lease's credit and freeing its key. */
  #settle(seq: number): void {
    const p = this.#pending.get(seq);
    if (p === undefined) {
      const r = this.#rangeOf(seq);
      if (r !== undefined) this.#settleRanged(r, r.indexOf(seq));
      return;
    }
    this.#release(p);
    this.#pending.delete(seq);
    this.#count(-1);
    if (p.key !== "") this.#freeKey(p.key);
    // Timer entries of settled messages are dropped lazily when they fall due.
    this.#timers.compactIfStale(this.#pending.size, this.#timerIsCurrent);
  }

  /**
   * Whether `seq` has a pending entry or a ranged lease holds it. Ranged leases are above the
   * cursor only after the floor was raised past the cursor (purge, retention, seek forward).
   */
  #isOut(seq: number): boolean {
    if (this.#pending.has(seq)) return true;
    const n = this.#ranges.length;
    return n > 0 && seq <= this.#ranges[n - 1]!.last && this.#rangeOf(seq) !== undefined;
  }

  /** The ranged lease holding `seq`, if one does. */
  #rangeOf(seq: number): LeaseRange | undefined {
    const ranges = this.#ranges;
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = ranges[mid]!;
      if (seq < r.first) hi = mid - 1;
      else if (seq > r.last) lo = mid + 1;
      else return r.indexOf(seq) >= 0 ? r : undefined;
    }
    return undefined;
  }

  /** An acked seq leaves its ranged lease, giving its credit back. */
  #settleRanged(range: LeaseRange, i: number): void {
    const bytes = range.release(i);
    this.#count(-1);
    const consumer = range.consumer;
    if (!consumer.detached) {
      consumer.inFlight--;
      consumer.inFlightBytes -= bytes;
    }
    if (range.open === 0 && this.#ranges.length > 64) this.#dropSettledRanges();
  }

  /**
   * Gives seqs[i] of a ranged lease a pending entry of its own, leased to the same consumer
   * until the same deadline, with a timer entry of its own (nack, extension, terminate,
   * expiry and detach work on entries).
   */
  #splitOut(range: LeaseRange, i: number, timer = true): PendingEntry {
    const seq = range.seqs[i]!;
    const p = pendingEntry(1, 0, "");
    p.consumer = range.consumer;
    p.deadline = range.deadline;
    p.armedAt = range.deadline;
    p.leaseBytes = range.release(i);
    this.#pending.set(seq, p);
    if (timer) this.#timers.lease(seq, range.deadline);
    return p;
  }

  /** Every seq held by the ranged leases `which` selects gets its own entry. */
  #splitRanges(which: (r: LeaseRange) => boolean): void {
    for (const r of this.#ranges) if (which(r)) for (const i of r.heldIndexes()) this.#splitOut(r, i);
    this.#dropSettledRanges();
  }

  #dropSettledRanges(): void {
    if (this.#ranges.some((r) => r.open === 0)) this.#ranges = this.#ranges.filter((r) => r.open > 0);
  }

  /** The pending entry of `seq`, split out of its ranged lease when one holds it. */
  #entry(seq: number): PendingEntry | undefined {
    const p = this.#pending.get(seq);
    if (p !== undefined) return p;
    const r = this.#rangeOf(seq);
    return r === undefined ? undefined : this.#splitOut(r, r.indexOf(seq));
  }

  /** Whether a timer entry still matches its message (see LeaseTimers). */
  readonly #timerIsCurrent = (kind: "lease" | "retry", seq: number, at: number): boolean => {
    const p = this.#pending.get(seq);
    if (kind === "lease") return p?.consumer !== undefined && p.armedAt === at;
    return p !== undefined && p.consumer === undefined && p.notBefore === at;
  };

  /** One fewer unacked message with this key; the next one held back behind it may go. */
  #freeKey(key: string): void {
    const seq = this.#gate.release(key, (s) => this.#acked.has(s));
    this.#countGate();
    if (seq === undefined) return;
    // It becomes pending (attempt 0) and goes out first, like a due redelivery.
    const now = monotonicNow();
    this.#pending.set(seq, pendingEntry(0, now, key));
    this.#count(1);
    this.#timers.retry(seq, now);
  }

  /** `delta` more (or fewer) seqs with entries or ranged leases, counted in the leases' share. */
  #count(delta: number): void {
    this.#share(delta * LEASE_ENTRY_BYTES);
  }

  /** Counts what the ordering gate holds now in the leases' share. */
  #countGate(): void {
    const now = this.#gate.bytes;
    this.#share(now - this.#gateBytes);
    this.#gateBytes = now;
  }

  /** `delta` more (or fewer) bytes in the leases' share. */
  #share(delta: number): void {
    if (this.#closed || delta === 0) return;
    this.#leaseBytes += delta;
    this.#leaseShare.resize(this, delta, this.#leaseBytes);
  }

  #release(p: PendingEntry): void {
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
          `seq ${seqText(seq)} was never published on topic ${this.topic.record.name} (last seq ${watermark})`,
        );
      }
    }
  }

  #confirmList(consumer: Consumer): { acked: number[]; already: number[]; ignored: number[] } {
    let list = this.#unconfirmed.get(consumer);
    if (list === undefined) {
      list = { acked: [], already: [], ignored: [] };
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
