import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type BackoffOptions, backoffDelay, type ResolvedBackoff, resolveBackoff, sleep } from "./backoff.js";
import {
  fromDuration,
  fromUint64,
  fromWirePriority,
  type StartPosition,
  toDuration,
  toUint64,
  toWireStart,
} from "./conversions.js";
import { errorFromStatus, NerveBusError, StatusCode, toNerveBusError } from "./errors.js";
import {
  type AckResults,
  ExtendDeadlineSchema,
  NackSchema,
  type ReceiveRequest,
  ReceiveRequestSchema,
  SubscribeSchema,
  WindowSchema,
} from "./gen/nervebus/v1/subscriber_pb.js";
import type { ReceiveBatch, SubscriberClient } from "./receive-codec.js";
import { type AckWaiter, ReceivedMessage, type Settlement } from "./received-message.js";
import type { Route } from "./route.js";
import { UnconfirmedSettles } from "./unconfirmed-settles.js";

/**
 * Settings of a Receive stream, common to subscribe() and messages(); the defaults are the same
 * in the Go and Python clients (docs/clients.md).
 */
export interface ReceiveOptions {
  /** The window: most messages delivered and not yet settled (1–100000). Default 1000. */
  readonly maxMessages?: number;
  /**
   * The window in bytes (data, attributes, ordering key and message id). 0 means no limit;
   * otherwise at least the broker's max message size (1 MiB by default). Default 0.
   */
  readonly maxBytes?: number;
  /** Lease length of a delivered message, in ms (1 s – 10 min). Default: the subscription's. */
  readonly ackDeadlineMs?: number;
  /**
   * Leases of messages still held are extended until this long after their delivery (ms);
   * after that they may be redelivered. Default 3600000 (1 h).
   */
  readonly maxExtensionMs?: number;
  /** Where a subscription created by this stream starts. Default "latest". */
  readonly start?: StartPosition;
  /** A name shown in the broker's stats (at most 128 bytes). */
  readonly consumerName?: string;
  /**
   * Ask the broker to confirm acks once durable: ackWithResult() then resolves on the
   * confirmation, unconfirmed acks are sent again after a reconnect, and close() waits for the
   * confirmations. Default false.
   */
  readonly confirmAcks?: boolean;
  /** Waits between reconnects: 100 ms doubling to 10 s, 50 % jitter. */
  readonly reconnectBackoff?: BackoffOptions;
  /** Stream errors that reconnect; others stop the subscriber. Default UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, INTERNAL. */
  readonly retryableCodes?: readonly StatusCode[];
  /** Reconnect when the broker sent nothing, not even a heartbeat, for this long (ms; 0: never). Default 60000. */
  readonly idleTimeoutMs?: number;
  /** Called with each stream error that leads to a reconnect (and with the final error). */
  readonly onError?: (err: NerveBusError) => void;
}

/** The default stream errors that reconnect. */
export const DEFAULT_RECONNECT_CODES: readonly StatusCode[] = [
  StatusCode.UNAVAILABLE,
  StatusCode.RESOURCE_EXHAUSTED,
  StatusCode.ABORTED,
  StatusCode.INTERNAL,
];

/**
 * The defaults of a Receive stream, the same in the Go and Python clients (docs/clients.md;
 * the conformance suite checks them).
 */
export const RECEIVE_DEFAULTS = {
  maxMessages: 1000,
  maxBytes: 0,
  maxExtensionMs: 3_600_000,
  confirmAcks: false,
  idleTimeoutMs: 60_000,
  reconnectBackoff: { initialMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0.5 },
} as const;
const MIN_DEADLINE_MS = 1000;
const MAX_DEADLINE_MS = 600_000;
/** How long stop() waits for the broker to end a half-closed stream before cancelling it. */
const END_TIMEOUT_MS = 5000;

/** What the receiver tells its consumer (the handler scheduler or the async iterator). */
export interface ReceiverHooks {
  /** A new message. */
  deliver(message: ReceivedMessage): void;
  /**
   * The stream ended: the broker redelivers what it held, so messages not yet started should be
   * dropped with release().
   */
  streamLost(): void;
  /** A message was settled (called after the settlement is queued). */
  settled?(message: ReceivedMessage, kind: Settlement): void;
  /** The receiver stopped for good with an error. */
  failed(err: NerveBusError): void;
}

/**
 * A message held by this client, with its lease as the client estimates it. Times are
 * performance.now()'s, as are all this client's intervals: a wall clock stepped back an hour
 * must not stop lease extensions for that hour (the broker would hand the message to another
 * consumer while the handler still works on it), nor one stepped forward end a stream as idle.
 */
interface Lease {
  readonly message: ReceivedMessage;
  readonly receivedAt: number;
  expiresAt: number;
  /** The message came on a stream that has ended since: the broker no longer counts it as ours. */
  orphan: boolean;
}

type ReceiveCall = grpc.ClientDuplexStream<ReceiveRequest, ReceiveBatch>;

/**
 * One consumer's Receive stream on a subscription, kept alive across reconnects: subscribes,
 * tracks leases of held messages and extends them, batches acks, nacks and terminations into
 * requests, and keeps the window. Messages still held when a stream ends are "orphans": the
 * window of the next stream is shrunk by their number (and grows back as they are settled),
 * so the client never holds more than maxMessages, and an orphan redelivered to the new stream
 * is adopted instead of being handed out twice. Settlements are kept until the broker is known
 * to have them (UnconfirmedSettles): a message settled and redelivered because its stream
 * ended before the broker read the settlement gets the settlement again, not a second handler.
 */
export class Receiver {
  readonly #route: Route<SubscriberClient>;
  readonly #topic: string;
  readonly #subscription: string;
  readonly #hooks: ReceiverHooks;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #ackDeadlineOption: number | undefined;
  readonly #maxExtensionMs: number;
  readonly #start: StartPosition | undefined;
  readonly #consumerName: string;
  readonly #confirmAcks: boolean;
  readonly #reconnect: ResolvedBackoff;
  readonly #retryable: ReadonlySet<StatusCode>;
  readonly #idleTimeoutMs: number;
  readonly #onError: ((err: NerveBusError) => void) | undefined;

  readonly #leases = new Map<number, Lease>();
  #orphans = 0;
  #call: ReceiveCall | undefined;
  #subscribed = false;
  #ackDeadlineMs = 30_000;
  #windowSent = 0;
  #lastHeard = 0;
  #idleTimedOut = false;
  #draining = false;
  #stopping = false;
  readonly #stopController = new AbortController();
  #roomWaiter: (() => void) | undefined;
  #tick: NodeJS.Timeout | undefined;

  /** Acks to send, by seq (a set: an ack sent again on a new stream may still be queued). */
  readonly #acks = new Set<number>();
  #nacks: { seq: bigint; delayMs: number | undefined }[] = [];
  #terminates: bigint[] = [];
  /** Lease extensions asked for with extendDeadline(), by deadline (ms). */
  #extends = new Map<number, bigint[]>();
  /** Settlements the broker may not have yet: sent again on the next stream or redelivery. */
  readonly #unconfirmed: UnconfirmedSettles;
  /** ackWithResult() calls waiting for their ack to be written or confirmed, by seq. */
  readonly #ackWaiters = new Map<number, AckWaiter[]>();
  #flushScheduled = false;

  #loop: Promise<void> | undefined;
  #readyResolve!: () => void;
  #readyReject!: (err: unknown) => void;
  /** Resolves once the first stream is subscribed. */
  readonly ready: Promise<void>;

  constructor(
    route: Route<SubscriberClient>,
    topic: string,
    subscription: string,
    options: ReceiveOptions,
    hooks: ReceiverHooks,
  ) {
    this.#route = route;
    this.#topic = topic;
    this.#subscription = subscription;
    this.#hooks = hooks;
    this.#maxMessages = options.maxMessages ?? RECEIVE_DEFAULTS.maxMessages;
    if (!Number.isInteger(this.#maxMessages) || this.#maxMessages < 1 || this.#maxMessages > 100_000)
      throw new RangeError(`maxMessages must be 1–100000, got ${this.#maxMessages}`);
    this.#maxBytes = options.maxBytes ?? RECEIVE_DEFAULTS.maxBytes;
    if (!Number.isSafeInteger(this.#maxBytes) || this.#maxBytes < 0)
      throw new RangeError(`maxBytes must be a non-negative integer, got ${this.#maxBytes}`);
    this.#ackDeadlineOption = options.ackDeadlineMs;
    this.#maxExtensionMs = options.maxExtensionMs ?? RECEIVE_DEFAULTS.maxExtensionMs;
    this.#start = options.start;
    this.#consumerName = options.consumerName ?? "";
    this.#confirmAcks = options.confirmAcks ?? RECEIVE_DEFAULTS.confirmAcks;
    this.#reconnect = resolveBackoff(options.reconnectBackoff, RECEIVE_DEFAULTS.reconnectBackoff);
    this.#retryable = new Set(options.retryableCodes ?? DEFAULT_RECONNECT_CODES);
    this.#idleTimeoutMs = options.idleTimeoutMs ?? RECEIVE_DEFAULTS.idleTimeoutMs;
    this.#onError = options.onError;
    // 2 × the window: a stream has at most a window of messages unacked, so at most that many
    // of its acks can be unread by the broker when it ends; the messages still held from the
    // stream before (settled later, on this one) are at most as many again.
    this.#unconfirmed = new UnconfirmedSettles(2 * this.#maxMessages);
    // Validate what goes on the wire now, so bad options throw from the caller's call.
    toWireStart("start", this.#start);
    toDuration("ackDeadlineMs", this.#ackDeadlineOption);
    this.ready = new Promise<void>((resolve, reject) => {
      this.#readyResolve = resolve;
      this.#readyReject = reject;
    });
    this.ready.catch(() => {});
  }

  /** Messages held: delivered, not settled nor released (orphans included). */
  get held(): number {
    return this.#leases.size;
  }

  /** Starts connecting; returns the loop's promise (resolves on stop, rejects on a fatal error). */
  start(): Promise<void> {
    this.#loop ??= this.#run();
    return this.#loop;
  }

  /**
   * Stops asking for more: the window shrinks to what is held (at least 1) and keeps
   * shrinking as messages are settled. Deliveries that still arrive are the consumer's to nack.
   */
  drain(): void {
    this.#draining = true;
    this.#scheduleFlush();
  }

  /**
   * Ends the stream: sends what is queued, half-closes, waits for the broker to end it (or
   * cancels after a few seconds), and stops reconnecting. Held messages are redelivered.
   */
  async stop(): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#flush();
      const call = this.#call;
      if (call !== undefined) {
        const timer = setTimeout(() => call.cancel(), END_TIMEOUT_MS);
        call.once("status", () => clearTimeout(timer));
        call.end();
      }
      this.#stopController.abort(new NerveBusError(StatusCode.CANCELLED, "subscriber stopped"));
      if (this.#loop === undefined)
        this.#readyReject(new NerveBusError(StatusCode.CANCELLED, "stopped before starting"));
    }
    await this.#loop?.catch(() => {});
  }

  /** Forgets a message without settling it (it was never started and will be redelivered). */
  release(message: ReceivedMessage): void {
    const lease = this.#leases.get(message.seq);
    if (lease?.message !== message) return;
    this.#removeLease(lease);
  }

  async #run(): Promise<void> {
    let attempt = 0;
    this.#tick = setInterval(() => this.#onTick(), this.#tickMs());
    this.#tick.unref();
    try {
      while (!this.#stopping) {
        await this.#roomForWindow();
        if (this.#stopping) break;
        let outcome: { status: grpc.StatusObject; subscribed: boolean };
        try {
          outcome = await this.#runStream();
        } catch (e) {
          // The call could not even start (e.g. the channel was closed): nothing to retry.
          const err = toNerveBusError(e);
          this.#readyReject(err);
          this.#hooks.failed(err);
          throw err;
        }
        const { status, subscribed } = outcome;
        if (this.#stopping) break;
        if (subscribed) attempt = 0;
        const err =
          status.code === StatusCode.OK
            ? new NerveBusError(StatusCode.UNAVAILABLE, "the broker ended the stream")
            : this.#idleTimedOut
              ? new NerveBusError(
                  StatusCode.UNAVAILABLE,
                  `nothing heard from the broker for ${this.#idleTimeoutMs} ms; reconnecting`,
                )
              : errorFromStatus(status);
        this.#route.failed(this.#topic, err);
        const retryable =
          status.code === StatusCode.OK || this.#idleTimedOut || this.#retryable.has(err.code);
        try {
          this.#onError?.(err);
        } catch {
          // A throwing onError callback must not stop the subscriber.
        }
        if (!retryable) {
          this.#readyReject(err);
          this.#hooks.failed(err);
          throw err;
        }
        await sleep(backoffDelay(this.#reconnect, attempt++), this.#stopController.signal).catch(() => {});
      }
      this.#readyReject(new NerveBusError(StatusCode.CANCELLED, "stopped before subscribing"));
    } finally {
      clearInterval(this.#tick);
      this.#settleAckWaiters(
        this.#ackWaiters.keys(),
        new NerveBusError(StatusCode.UNAVAILABLE, "the subscriber stopped before the ack was confirmed"),
      );
    }
  }

  /** Resolves (err undefined) or rejects the ackWithResult() calls of `seqs`. */
  #settleAckWaiters(seqs: Iterable<number>, err?: NerveBusError): void {
    if (this.#ackWaiters.size === 0) return;
    for (const seq of [...seqs]) {
      const waiters = this.#ackWaiters.get(seq);
      if (waiters === undefined) continue;
      this.#ackWaiters.delete(seq);
      for (const w of waiters) {
        if (err === undefined) w.resolve();
        else w.reject(err);
      }
    }
  }

  /** Waits until the orphans leave room for a window of at least one message. */
  async #roomForWindow(): Promise<void> {
    while (!this.#stopping && this.#maxMessages - this.#orphans < 1) {
      await new Promise<void>((resolve) => {
        const signal = this.#stopController.signal;
        const wake = () => {
          signal.removeEventListener("abort", wake);
          this.#roomWaiter = undefined;
          resolve();
        };
        this.#roomWaiter = wake;
        signal.addEventListener("abort", wake, { once: true });
      });
    }
  }

  /** One stream, from subscribe to its status. */
  #runStream(): Promise<{ status: grpc.StatusObject; subscribed: boolean }> {
    return new Promise((resolve) => {
      const call = this.#route.pick(this.#topic).receive(new grpc.Metadata(), {});
      this.#call = call;
      this.#subscribed = false;
      this.#idleTimedOut = false;
      this.#lastHeard = performance.now();
      let wasSubscribed = false;
      call.on("data", (res: ReceiveBatch) => {
        if (this.#call !== call) return;
        if (res.subscribed !== undefined) wasSubscribed = true;
        this.#onResponse(res);
      });
      call.on("error", () => {}); // The status event reports it.
      call.on("status", (status: grpc.StatusObject) => {
        // Let responses still buffered in the stream be seen first.
        setImmediate(() => {
          if (this.#call === call) this.#streamEnded();
          resolve({ status, subscribed: wasSubscribed });
        });
      });
      const window = this.#desiredWindow();
      this.#windowSent = window;
      call.write(
        create(ReceiveRequestSchema, {
          subscribe: create(SubscribeSchema, {
            topic: this.#topic,
            subscription: this.#subscription,
            window: create(WindowSchema, { maxMessages: window, maxBytes: BigInt(this.#maxBytes) }),
            ackDeadline: toDuration("ackDeadlineMs", this.#ackDeadlineOption),
            start: toWireStart("start", this.#start),
            consumerName: this.#consumerName,
            confirmAcks: this.#confirmAcks,
          }),
        }),
      );
      if (this.#stopping) call.end();
    });
  }

  #onResponse(res: ReceiveBatch): void {
    this.#lastHeard = performance.now();
    if (res.subscribed !== undefined) {
      this.#subscribed = true;
      const deadline = fromDuration(res.subscribed.ackDeadline);
      if (deadline > 0) this.#ackDeadlineMs = deadline;
      this.#restartTick();
      this.#readyResolve();
      // Acks the broker may not have read (the stream they went on ended) are sent again: an
      // ack counts on any stream.
      this.#unconfirmed.floor(fromUint64(res.subscribed.floor));
      for (const seq of this.#unconfirmed.acks()) this.#acks.add(seq);
      this.#flush();
    }
    if (res.heartbeat !== undefined) this.#unconfirmed.floor(fromUint64(res.heartbeat.floor));
    if (res.ackResults !== undefined) this.#onAckResults(res.ackResults);
    if (res.deliveries.length === 0) return;
    const now = performance.now();
    let adopted = false;
    for (const d of res.deliveries) {
      const seq = d.seq;
      const existing = this.#leases.get(seq);
      if (existing?.orphan) {
        // Redelivered to us while still held from an earlier stream: keep the copy in hand.
        existing.orphan = false;
        existing.expiresAt = now + this.#ackDeadlineMs;
        this.#orphans--;
        adopted = true;
        continue;
      }
      const settled = existing === undefined ? this.#unconfirmed.redelivered(seq, d.attempt) : undefined;
      if (settled !== undefined) {
        // Settled already, and the broker had not read the settlement when it leased the
        // message again (its stream ended first): the settlement applies to this lease too.
        this.#queueSettlement(seq, settled.kind, settled.delayMs);
        adopted = true;
        continue;
      }
      const message: ReceivedMessage = new ReceivedMessage(
        {
          topic: this.#topic,
          subscription: this.#subscription,
          seq,
          data: d.data,
          attributes: d.attributes,
          orderingKey: d.orderingKey,
          messageId: d.messageId,
          publishTime: new Date(d.publishTimeMs),
          attempt: d.attempt,
          traceId: d.traceId,
          priority: fromWirePriority(d.priority),
        },
        {
          settle: (kind, delayMs, result) => this.#settle(message, kind, delayMs, result),
          extend: (deadlineMs) => this.#extend(message, deadlineMs),
        },
      );
      // A same-stream redelivery (the lease ran out) replaces the earlier copy.
      this.#leases.set(seq, {
        message,
        receivedAt: now,
        expiresAt: now + this.#ackDeadlineMs,
        orphan: false,
      });
      this.#hooks.deliver(message);
    }
    if (adopted) this.#scheduleFlush();
  }

  #streamEnded(): void {
    this.#call = undefined;
    this.#subscribed = false;
    for (const lease of this.#leases.values()) {
      if (!lease.orphan) {
        lease.orphan = true;
        this.#orphans++;
      }
    }
    // Nacks, terminations and extensions name leases the broker has released; acks still
    // count later.
    this.#nacks = [];
    this.#terminates = [];
    this.#extends.clear();
    this.#hooks.streamLost();
  }

  #settle(message: ReceivedMessage, kind: Settlement, delayMs: number | undefined, result?: AckWaiter): void {
    const lease = this.#leases.get(message.seq);
    const current = lease?.message === message;
    const live = current && !lease.orphan;
    if (current) this.#removeLease(lease);
    const seq = message.seq;
    // Kept until the broker has it. Nacks and terminations only matter for a lease the stream
    // holds: an orphan's wait for its redelivery to this stream.
    this.#unconfirmed.add(seq, message.attempt, kind, delayMs);
    if (kind === "ack" || live) this.#queueSettlement(seq, kind, delayMs);
    if (kind === "ack") {
      if (result !== undefined) {
        if (this.#stopping && this.#call === undefined)
          result.reject(
            new NerveBusError(StatusCode.UNAVAILABLE, "the subscriber stopped before the ack was sent"),
          );
        else {
          const waiters = this.#ackWaiters.get(message.seq);
          if (waiters === undefined) this.#ackWaiters.set(message.seq, [result]);
          else waiters.push(result);
        }
      }
    }
    this.#scheduleFlush();
    this.#hooks.settled?.(message, kind);
  }

  /** Queues a settlement request for the current stream (a late ack still counts). */
  #queueSettlement(seq: number, kind: Settlement, delayMs: number | undefined): void {
    if (kind === "ack") this.#acks.add(seq);
    else if (kind === "nack") this.#nacks.push({ seq: BigInt(seq), delayMs });
    else this.#terminates.push(BigInt(seq));
  }

  /** Queues an extension of a held message's lease, asked for by the application. */
  #extend(message: ReceivedMessage, deadlineMs: number | undefined): void {
    const lease = this.#leases.get(message.seq);
    // An orphan's lease is gone: the broker redelivers the message to the current stream.
    if (lease?.message !== message || lease.orphan || this.#call === undefined) return;
    const deadline = Math.max(MIN_DEADLINE_MS, Math.min(MAX_DEADLINE_MS, deadlineMs ?? this.#ackDeadlineMs));
    lease.expiresAt = performance.now() + deadline;
    const seqs = this.#extends.get(deadline);
    if (seqs === undefined) this.#extends.set(deadline, [BigInt(message.seq)]);
    else seqs.push(BigInt(message.seq));
    this.#scheduleFlush();
  }

  #onAckResults(results: AckResults): void {
    const seqs = (list: bigint[]) => list.map((s) => fromUint64(s));
    const done = [...seqs(results.ackedSeqs), ...seqs(results.alreadyAckedSeqs)];
    const ignored = seqs(results.ignoredSeqs);
    for (const seq of [...done, ...ignored]) this.#unconfirmed.delete(seq);
    this.#settleAckWaiters(done);
    this.#settleAckWaiters(
      ignored,
      new NerveBusError(
        StatusCode.UNAVAILABLE,
        "the broker ignored the ack: it had not delivered the message",
      ),
    );
  }

  #removeLease(lease: Lease): void {
    this.#leases.delete(lease.message.seq);
    if (lease.orphan) {
      this.#orphans--;
      this.#roomWaiter?.();
      this.#scheduleFlush();
    }
  }

  /** The window the stream should have now. */
  #desiredWindow(): number {
    if (this.#draining) return Math.max(1, this.#leases.size - this.#orphans);
    return Math.max(1, this.#maxMessages - this.#orphans);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Sends queued acks, nacks, terminations and a window change on the subscribed stream. */
  #flush(): void {
    const call = this.#call;
    if (call === undefined || !this.#subscribed || call.writableEnded) return;
    const window = this.#desiredWindow();
    const changeWindow = window !== this.#windowSent;
    if (
      this.#acks.size === 0 &&
      this.#nacks.length === 0 &&
      this.#terminates.length === 0 &&
      this.#extends.size === 0 &&
      !changeWindow
    )
      return;
    const acked = [...this.#acks];
    const request = create(ReceiveRequestSchema, {
      ackSeqs: acked.map((s) => BigInt(s)),
      nacks: this.#nacks.map((n) =>
        create(NackSchema, { seq: n.seq, delay: toDuration("delay", n.delayMs) }),
      ),
      terminateSeqs: this.#terminates,
      extendDeadlines: [...this.#extends].map(([deadline, seqs]) =>
        create(ExtendDeadlineSchema, { seqs, deadline: toDuration("deadline", deadline) }),
      ),
    });
    if (changeWindow) {
      request.window = create(WindowSchema, { maxMessages: window, maxBytes: BigInt(this.#maxBytes) });
      this.#windowSent = window;
    }
    // A written nack is forgotten: the redelivery it asks for goes to the application.
    for (const n of this.#nacks) {
      const seq = fromUint64(n.seq);
      if (this.#unconfirmed.kindOf(seq) === "nack") this.#unconfirmed.delete(seq);
    }
    this.#acks.clear();
    this.#nacks = [];
    this.#terminates = [];
    this.#extends.clear();
    call.write(request);
    if (!this.#confirmAcks) this.#settleAckWaiters(acked);
  }

  /** Lease checks run 4 times per ack deadline; a silent broker is noticed within 1.5 × idleTimeoutMs. */
  #tickMs(): number {
    let ms = Math.min(5000, this.#ackDeadlineMs / 4);
    if (this.#idleTimeoutMs > 0) ms = Math.min(ms, this.#idleTimeoutMs / 2);
    return Math.max(100, Math.floor(ms));
  }

  #restartTick(): void {
    clearInterval(this.#tick);
    this.#tick = setInterval(() => this.#onTick(), this.#tickMs());
    this.#tick.unref();
  }

  /** Extends leases that are past half their deadline; detects a silent broker. */
  #onTick(): void {
    const call = this.#call;
    if (call === undefined) return;
    const now = performance.now();
    if (this.#idleTimeoutMs > 0 && now - this.#lastHeard > this.#idleTimeoutMs) {
      this.#idleTimedOut = true;
      call.cancel();
      return;
    }
    if (!this.#subscribed || call.writableEnded) return;
    const byDeadline = new Map<number, bigint[]>();
    for (const lease of this.#leases.values()) {
      if (lease.orphan || lease.expiresAt - now > this.#ackDeadlineMs / 2) continue;
      const left = lease.receivedAt + this.#maxExtensionMs - now;
      if (left <= 0) continue;
      const deadline = Math.max(
        MIN_DEADLINE_MS,
        Math.min(MAX_DEADLINE_MS, this.#ackDeadlineMs, Math.ceil(left)),
      );
      lease.expiresAt = now + deadline;
      let seqs = byDeadline.get(deadline);
      if (seqs === undefined) {
        seqs = [];
        byDeadline.set(deadline, seqs);
      }
      seqs.push(toUint64("seq", lease.message.seq));
    }
    if (byDeadline.size === 0) return;
    call.write(
      create(ReceiveRequestSchema, {
        extendDeadlines: [...byDeadline].map(([deadline, seqs]) =>
          create(ExtendDeadlineSchema, { seqs, deadline: toDuration("deadline", deadline) }),
        ),
      }),
    );
  }
}
