import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type Attributes, type Context, context, type Span } from "@opentelemetry/api";
import { type BackoffOptions, backoffDelay, type ResolvedBackoff, resolveBackoff, sleep } from "./backoff.js";
import {
  fromUint64,
  invalidArgument,
  type MessagePriority,
  toDuration,
  toTimestamp,
  toWirePriority,
} from "./conversions.js";
import { DEFAULT_RETRYABLE_CODES, NerveBusError, StatusCode, toNerveBusError } from "./errors.js";
import { Fifo } from "./fifo.js";
import { MessageSchema, type Message as WireMessage } from "./gen/nervebus/v1/message_pb.js";
import {
  type MessageResult,
  MessageResult_Outcome,
  type PublisherService,
  SendPackRequestSchema,
} from "./gen/nervebus/v1/publisher_pb.js";
import type { ServiceClient } from "./grpc-adapter.js";
import type { Route } from "./route.js";
import { endSpan, SpanAttributes, serverAttributes, startPublishSpan } from "./tracing.js";
import { unaryCall } from "./unary-call.js";

/** One message to publish. */
export interface PublishMessage {
  /** The payload; a string is sent as UTF-8. */
  readonly data?: Uint8Array | string;
  /** Free-form metadata. Keys starting with `nervebus-` are reserved for the broker. */
  readonly attributes?: Readonly<Record<string, string>>;
  /**
   * Messages with the same ordering key are appended in publish() call order, and delivered in
   * that order on subscriptions with ordering enabled.
   */
  readonly orderingKey?: string;
  /**
   * Makes the message idempotent: the broker ignores an id it saw on the topic within the
   * topic's dedup window. When omitted the publisher assigns a random one (see
   * `autoMessageId`), so its own retries never append a message twice.
   */
  readonly messageId?: string;
  /** Deliver no earlier than this time (a Date or ms since the epoch). Excludes `delay`. */
  readonly deliverAt?: Date | number;
  /** Deliver no earlier than this many ms after the broker receives it. Excludes `deliverAt`. */
  readonly delay?: number;
  /**
   * How soon subscribers get it: urgent messages fill windows first, then normal, while bulk
   * keeps a share of 1 in 10 first deliveries. Default "normal".
   */
  readonly priority?: MessagePriority;
}

export type { MessagePriority };

/** Per-call options of publish(). */
export interface PublishOptions {
  /**
   * Aborting while the message waits for room (flow control) or before its batch is sent
   * withdraws it; aborting later only stops waiting (the message may still be published). The
   * promise rejects with the reason.
   */
  readonly signal?: AbortSignal;
}

/** What the broker did with a message. */
export type PublishOutcome = "appended" | "duplicate" | "scheduled";

/** The result of one publish(). */
export interface PublishResult {
  /** The message's seq in its topic; for a duplicate the original's; 0 when scheduled. */
  readonly seq: number;
  /** The W3C trace id of the message's end-to-end trace. */
  readonly traceId: string;
  /** Appended now, a duplicate of an earlier message with the same id, or held until its time. */
  readonly outcome: PublishOutcome;
  /** The message id sent (the caller's, or the one the publisher assigned; "" when none). */
  readonly messageId: string;
}

/** Retry settings of the publisher. */
export interface RetryOptions extends BackoffOptions {
  /** Give up when the next retry would start this long after the first attempt (ms). */
  readonly totalTimeoutMs?: number;
  /** Status codes that are retried. */
  readonly retryableCodes?: readonly StatusCode[];
}

/** Publisher settings; the defaults are the same in the Go and Python clients (docs/clients.md). */
export interface PublisherOptions {
  /** Most messages per SendPack (the broker's default limit is 10000). Default 1000. */
  readonly maxBatchMessages?: number;
  /**
   * Most bytes per SendPack, counted over data, attributes, ordering key and message id
   * (the broker's default limit is 16 MiB). A larger message goes alone. Default 1 MiB.
   */
  readonly maxBatchBytes?: number;
  /** How long a batch waits for more messages before it is sent, in ms. Default 5. */
  readonly lingerMs?: number;
  /** SendPack calls in flight per topic. Default 4. */
  readonly maxInflightBatches?: number;
  /**
   * Flow control: the most messages published and not yet settled. A publish() beyond it
   * waits (its promise stays pending, in call order) until room frees up; its message is not
   * buffered meanwhile. Default 10000.
   */
  readonly maxOutstandingMessages?: number;
  /** Flow control: the most bytes of messages published and not yet settled. Default 64 MiB. */
  readonly maxOutstandingBytes?: number;
  /**
   * Deadline of one SendPack attempt, in ms. An attempt that runs out of it is retried (with
   * the same message ids) while retry.totalTimeoutMs allows. Default 30000.
   */
  readonly callTimeoutMs?: number;
  /**
   * Retries of UNAVAILABLE and RESOURCE_EXHAUSTED (and of an attempt's own deadline): 100 ms
   * doubling to 5 s, 50 % jitter, for at most 60 s in all. A CANCELLED the publisher did not
   * cause counts as UNAVAILABLE, and so does INTERNAL (a connection reset under the call): both
   * leave the outcome unknown, and a retry with the same ids settles it.
   */
  readonly retry?: RetryOptions;
  /** Give messages without a messageId a random UUID, so retries are deduplicated. Default true. */
  readonly autoMessageId?: boolean;
  /** Record producer spans and inject trace context into attributes. Default true. */
  readonly tracing?: boolean;
}

/**
 * The publisher's defaults, the same in the Go and Python clients (docs/clients.md; the
 * conformance suite checks them).
 */
export const PUBLISHER_DEFAULTS = {
  maxBatchMessages: 1000,
  maxBatchBytes: 1 << 20,
  lingerMs: 5,
  maxInflightBatches: 4,
  maxOutstandingMessages: 10_000,
  maxOutstandingBytes: 64 << 20,
  callTimeoutMs: 30_000,
  retry: { initialMs: 100, maxMs: 5000, multiplier: 2, jitter: 0.5, totalTimeoutMs: 60_000 },
} as const;

const OUTCOMES: Record<number, PublishOutcome> = {
  [MessageResult_Outcome.APPENDED]: "appended",
  [MessageResult_Outcome.DUPLICATE]: "duplicate",
  [MessageResult_Outcome.SCHEDULED]: "scheduled",
};

/** A broker error about one message of a pack names it as messages[i]. */
const MESSAGE_INDEX = /^messages\[(\d+)\]/;

/**
 * One message waiting for its result. While it waits for room it holds only the caller's
 * message; its wire form and span are made once it is admitted, so that publishes waiting
 * behind the flow control cost little memory.
 */
class Pending {
  /** The caller's message, until admitted. */
  message: PublishMessage | undefined;
  /** The message as sent, once admitted. */
  wire: WireMessage | undefined;
  span: Span | undefined;
  /**
   * "waiting": for room (flow control); "queued": in a batch not yet sent; "sent": part of a
   * SendPack; "done": settled.
   */
  state: "waiting" | "queued" | "sent" | "done" = "waiting";
  /** Whether it holds room in the flow control (from admission until settled). */
  admitted = false;
  batch: Batch | undefined;
  onAbort: (() => void) | undefined;
  readonly promise: Promise<PublishResult>;
  #resolve!: (r: PublishResult) => void;
  #reject!: (err: unknown) => void;

  constructor(
    readonly topic: string,
    readonly key: string,
    /** Size as the pack limits count it: an estimate until admitted, then exact. */
    public bytes: number,
    message: PublishMessage,
    /** The context publish() was called in: the parent of the producer span. */
    readonly parent: Context,
    readonly signal: AbortSignal | undefined,
    readonly onDone: (p: Pending) => void,
  ) {
    this.message = message;
    this.promise = new Promise<PublishResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  resolve(r: PublishResult): void {
    if (!this.#finish()) return;
    if (this.span !== undefined) {
      if (r.seq > 0) this.span.setAttribute(SpanAttributes.SEQ, r.seq);
      this.span.setAttribute(SpanAttributes.OUTCOME, r.outcome);
      endSpan(this.span);
    }
    this.#resolve(r);
  }

  reject(err: unknown): void {
    if (!this.#finish()) return;
    if (this.span !== undefined) endSpan(this.span, err);
    this.#reject(err);
  }

  /** Marks it settled (false if it was already) and tells the publisher. */
  #finish(): boolean {
    if (this.state === "done") return false;
    this.state = "done";
    if (this.onAbort !== undefined) this.signal?.removeEventListener("abort", this.onAbort);
    this.onDone(this);
    return true;
  }
}

/** Messages that go out together in one SendPack. */
class Batch {
  readonly items: Pending[] = [];
  bytes = 0;
  /** Ordering keys in the batch, with their message counts. */
  readonly keys = new Map<string, number>();
  timer: NodeJS.Timeout | undefined;

  constructor(readonly lane: TopicLane) {}

  add(p: Pending): void {
    this.items.push(p);
    this.bytes += p.bytes;
    if (p.key !== "") this.keys.set(p.key, (this.keys.get(p.key) ?? 0) + 1);
    p.batch = this;
  }

  remove(p: Pending): void {
    const i = this.items.indexOf(p);
    if (i < 0) return;
    this.items.splice(i, 1);
    this.bytes -= p.bytes;
    if (p.key !== "") {
      const n = (this.keys.get(p.key) ?? 1) - 1;
      if (n === 0) this.keys.delete(p.key);
      else this.keys.set(p.key, n);
    }
    p.batch = undefined;
  }
}

/** Per-topic state: the batch being filled, sealed batches waiting, calls in flight. */
class TopicLane {
  open: Batch | undefined;
  readonly queued: Batch[] = [];
  inflight = 0;
  /** Ordering keys of batches in flight, with batch counts. */
  readonly busyKeys = new Map<string, number>();
  /** Ordering keys whose publishing stopped after a failure, with that failure. */
  readonly failedKeys = new Map<string, NerveBusError>();

  constructor(readonly topic: string) {}
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Size of a message as the pack limits count it (an upper bound of the broker's figure). */
function messageBytes(m: WireMessage): number {
  let n = m.data.byteLength + utf8Length(m.orderingKey) + utf8Length(m.messageId);
  for (const [k, v] of Object.entries(m.attributes)) n += utf8Length(k) + utf8Length(v);
  return n;
}

function closedError(): NerveBusError {
  return new NerveBusError(StatusCode.FAILED_PRECONDITION, "publisher is closed");
}

type PublisherClient = ServiceClient<(typeof PublisherService)["method"]>;

/**
 * Publishes messages to any topic, batching them per topic into SendPack calls by count, bytes
 * and linger time. Retries retryable failures with exponential backoff and jitter, keeping
 * message ids stable so retries are idempotent. Messages sharing an ordering key are appended
 * in call order: a batch holding a key goes out only after every earlier batch holding that key
 * has settled. When a key's batch finally fails, later messages with that key are refused
 * until resumeOrderingKey() is called, so a failure never leaves a gap that later messages
 * silently skip over.
 */
export class Publisher {
  readonly #route: Route<PublisherClient>;
  readonly #lanes = new Map<string, TopicLane>();
  readonly #outstanding = new Set<Pending>();
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  readonly #lingerMs: number;
  readonly #maxInflight: number;
  readonly #maxOutstandingMessages: number;
  readonly #maxOutstandingBytes: number;
  /** Room taken by admitted messages not settled yet. */
  #heldMessages = 0;
  #heldBytes = 0;
  /** publish() calls waiting for room, first come first served. */
  readonly #waiting = new Fifo<Pending>();
  /** waitForRoom() calls to wake once there is room. */
  readonly #roomWaiters: (() => void)[] = [];
  /** flush() calls in progress: messages admitted meanwhile go out at once. */
  #flushing = 0;
  readonly #callTimeoutMs: number;
  readonly #retry: ResolvedBackoff;
  readonly #totalTimeoutMs: number;
  readonly #retryable: ReadonlySet<StatusCode>;
  readonly #autoMessageId: boolean;
  readonly #tracing: boolean;
  readonly #server: Attributes;
  readonly #onClose: () => void;
  #closed = false;
  /** Aborts retry waits on close({ cancel: true }). */
  readonly #cancel = new AbortController();

  /** @internal Use NerveBusClient.publisher(). */
  constructor(
    route: Route<PublisherClient>,
    options: PublisherOptions = {},
    onClose: () => void = () => {},
    address = "",
  ) {
    this.#route = route;
    this.#server = serverAttributes(address);
    this.#onClose = onClose;
    const d = PUBLISHER_DEFAULTS;
    this.#maxMessages = positiveInt("maxBatchMessages", options.maxBatchMessages ?? d.maxBatchMessages);
    this.#maxBytes = positiveInt("maxBatchBytes", options.maxBatchBytes ?? d.maxBatchBytes);
    this.#lingerMs = nonNegative("lingerMs", options.lingerMs ?? d.lingerMs);
    this.#maxInflight = positiveInt("maxInflightBatches", options.maxInflightBatches ?? d.maxInflightBatches);
    this.#maxOutstandingMessages = positiveInt(
      "maxOutstandingMessages",
      options.maxOutstandingMessages ?? d.maxOutstandingMessages,
    );
    this.#maxOutstandingBytes = positiveInt(
      "maxOutstandingBytes",
      options.maxOutstandingBytes ?? d.maxOutstandingBytes,
    );
    this.#callTimeoutMs = positiveInt("callTimeoutMs", options.callTimeoutMs ?? d.callTimeoutMs);
    this.#retry = resolveBackoff(options.retry, d.retry);
    this.#totalTimeoutMs = nonNegative(
      "retry.totalTimeoutMs",
      options.retry?.totalTimeoutMs ?? d.retry.totalTimeoutMs,
    );
    this.#retryable = new Set(options.retry?.retryableCodes ?? DEFAULT_RETRYABLE_CODES);
    this.#autoMessageId = options.autoMessageId ?? true;
    this.#tracing = options.tracing ?? true;
  }

  /** Messages published and not yet settled (those waiting for room included). */
  get pending(): number {
    return this.#outstanding.size;
  }

  /**
   * Resolves once publish() would take a message without waiting for room: at once while
   * the publisher holds fewer than maxOutstandingMessages (and maxOutstandingBytes). A loop
   * that publishes without awaiting each result awaits this first, so that it waits while
   * the publisher is full instead of piling up pending publish() calls:
   * `await publisher.waitForRoom(); results.push(publisher.publish(topic, message));`
   */
  waitForRoom(): Promise<void> {
    if (this.#hasRoom() || this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
  }

  /**
   * Queues one message for `topic` and resolves once the broker has made it durable (or
   * scheduled it, or recognised it as a duplicate). While maxOutstandingMessages or
   * maxOutstandingBytes are reached, the message waits for room first. Rejects with a
   * NerveBusError when the broker refuses it, retries are exhausted or its ordering key is
   * paused (FAILED_PRECONDITION), or with the signal's reason when aborted.
   */
  publish(topic: string, message: PublishMessage, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.#closed) return Promise.reject(closedError());
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    let bytes: number;
    try {
      bytes = this.#check(message);
    } catch (err) {
      return Promise.reject(err);
    }
    const key = message.orderingKey ?? "";
    const failed = key === "" ? undefined : this.#lanes.get(topic)?.failedKeys.get(key);
    if (failed !== undefined) return Promise.reject(keyPausedError(key, failed));

    const pending = new Pending(topic, key, bytes, message, context.active(), signal, this.#settled);
    this.#outstanding.add(pending);
    if (signal !== undefined) {
      pending.onAbort = () => this.#abort(pending, signal.reason);
      signal.addEventListener("abort", pending.onAbort, { once: true });
    }
    if (this.#waiting.length === 0 && this.#fits(pending.bytes)) this.#admit(pending);
    else this.#waiting.push(pending);
    return pending.promise;
  }

  /** Called once per message when it settles: gives back its room. */
  readonly #settled = (p: Pending): void => {
    this.#outstanding.delete(p);
    this.#release(p);
  };

  /**
   * Sends every buffered message now and resolves once all messages published so far are
   * settled (those waiting for room are sent as soon as they get it).
   */
  async flush(): Promise<void> {
    const snapshot = [...this.#outstanding].map((p) => p.promise);
    this.#flushing++;
    try {
      for (const lane of this.#lanes.values()) this.#seal(lane);
      await Promise.allSettled(snapshot);
    } finally {
      this.#flushing--;
    }
  }

  /**
   * Refuses further publish() calls, sends everything buffered and waits for it. With
   * `cancel: true`, retries stop at once and what is not settled yet fails with CANCELLED.
   */
  async close(options: { cancel?: boolean } = {}): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#onClose();
    }
    if (options.cancel) {
      const reason = new NerveBusError(StatusCode.CANCELLED, "publisher closed");
      this.#cancel.abort(reason);
      for (const p of this.#waiting.drain()) p.reject(reason);
    }
    await this.flush();
  }

  /**
   * Lets messages with `orderingKey` on `topic` be published again after a failure stopped
   * them. Messages published meanwhile were refused and must be published again by the caller.
   */
  resumeOrderingKey(topic: string, orderingKey: string): void {
    this.#lanes.get(topic)?.failedKeys.delete(orderingKey);
  }

  /**
   * Checks a message as publish() is called (throws what toWire would) and returns its size as
   * the pack limits count it, counting a message id still to be assigned.
   */
  #check(m: PublishMessage): number {
    if (m.deliverAt !== undefined && m.delay !== undefined)
      throw invalidArgument("message", "give deliverAt or delay, not both");
    if (m.data !== undefined && typeof m.data !== "string" && !(m.data instanceof Uint8Array))
      throw invalidArgument("message.data", "must be a Uint8Array or a string");
    if (m.deliverAt !== undefined) toTimestamp("message.deliverAt", m.deliverAt);
    toDuration("message.delay", m.delay);
    toWirePriority(m.priority);
    let n = m.data === undefined ? 0 : typeof m.data === "string" ? utf8Length(m.data) : m.data.byteLength;
    n += utf8Length(m.orderingKey ?? "");
    n += m.messageId ? utf8Length(m.messageId) : this.#autoMessageId ? 36 : 0;
    for (const [k, v] of Object.entries(m.attributes ?? {})) n += utf8Length(k) + utf8Length(v);
    return n;
  }

  /** The wire form of a message #check accepted. */
  #toWire(m: PublishMessage): WireMessage {
    return toWireMessage(m, this.#autoMessageId);
  }

  /** Whether a message of `bytes` fits the flow control now; a big one fits when nothing is held. */
  #fits(bytes: number): boolean {
    return (
      this.#heldMessages < this.#maxOutstandingMessages &&
      (this.#heldBytes + bytes <= this.#maxOutstandingBytes || this.#heldBytes === 0)
    );
  }

  /**
   * Takes room for a message, makes its wire form and producer span, and puts it in its
   * topic's batch (unless its key got paused meanwhile).
   */
  #admit(p: Pending): void {
    // Looked up again: an idle lane is forgotten while its messages wait for room.
    const lane = this.#lane(p.topic);
    const failed = p.key === "" ? undefined : lane.failedKeys.get(p.key);
    if (failed !== undefined) {
      p.reject(keyPausedError(p.key, failed));
      return;
    }
    const wire = this.#toWire(p.message!);
    p.message = undefined;
    p.wire = wire;
    p.bytes = messageBytes(wire);
    if (this.#tracing)
      p.span = startPublishSpan(p.topic, wire.attributes, {
        messageId: wire.messageId,
        orderingKey: wire.orderingKey,
        bodySize: wire.data.byteLength,
        server: this.#server,
        parent: p.parent,
      });
    p.admitted = true;
    this.#heldMessages++;
    this.#heldBytes += p.bytes;
    p.state = "queued";
    this.#enqueue(lane, p);
    if (this.#flushing > 0) this.#seal(lane);
  }

  /** Gives back a settled message's room and admits the messages waiting for it, in order. */
  #release(p: Pending): void {
    if (!p.admitted) {
      this.#waiting.remove(p);
      return;
    }
    p.admitted = false;
    this.#heldMessages--;
    this.#heldBytes -= p.bytes;
    for (
      let next = this.#waiting.peek();
      next !== undefined && this.#fits(next.bytes);
      next = this.#waiting.peek()
    )
      this.#admit(this.#waiting.shift()!);
    if (this.#roomWaiters.length > 0 && this.#hasRoom())
      for (const wake of this.#roomWaiters.splice(0)) wake();
  }

  /** Whether a small message would be admitted without waiting. */
  #hasRoom(): boolean {
    return this.#waiting.length === 0 && this.#fits(0) && this.#heldBytes < this.#maxOutstandingBytes;
  }

  #lane(topic: string): TopicLane {
    let lane = this.#lanes.get(topic);
    if (lane === undefined) {
      lane = new TopicLane(topic);
      this.#lanes.set(topic, lane);
    }
    return lane;
  }

  #enqueue(lane: TopicLane, p: Pending): void {
    let batch = lane.open;
    if (
      batch !== undefined &&
      (batch.items.length >= this.#maxMessages || batch.bytes + p.bytes > this.#maxBytes)
    ) {
      this.#seal(lane);
      batch = undefined;
    }
    if (batch === undefined) {
      batch = new Batch(lane);
      lane.open = batch;
      batch.timer = setTimeout(() => this.#seal(lane), this.#lingerMs);
    }
    batch.add(p);
    if (batch.items.length >= this.#maxMessages || batch.bytes >= this.#maxBytes) this.#seal(lane);
  }

  /** Closes the batch being filled and queues it for sending. */
  #seal(lane: TopicLane): void {
    const batch = lane.open;
    if (batch === undefined) return;
    clearTimeout(batch.timer);
    lane.open = undefined;
    if (batch.items.length > 0) lane.queued.push(batch);
    this.#pump(lane);
  }

  /**
   * Starts queued batches, in order, while fewer than maxInflightBatches are in flight. A batch
   * sharing an ordering key with a batch in flight, or with an earlier batch still waiting,
   * waits too: a key's batches go out one at a time, in order.
   */
  #pump(lane: TopicLane): void {
    const blocked = new Set(lane.busyKeys.keys());
    let i = 0;
    while (i < lane.queued.length && lane.inflight < this.#maxInflight) {
      const batch = lane.queued[i]!;
      for (const p of [...batch.items]) {
        const failed = p.key === "" ? undefined : lane.failedKeys.get(p.key);
        if (failed !== undefined) {
          batch.remove(p);
          p.reject(keyPausedError(p.key, failed));
        }
      }
      if (batch.items.length === 0) {
        lane.queued.splice(i, 1);
        continue;
      }
      const keys = [...batch.keys.keys()];
      if (keys.some((k) => blocked.has(k))) {
        for (const k of keys) blocked.add(k);
        i++;
        continue;
      }
      lane.queued.splice(i, 1);
      for (const k of keys) blocked.add(k);
      void this.#send(lane, batch);
    }
  }

  async #send(lane: TopicLane, batch: Batch): Promise<void> {
    const keys = [...batch.keys.keys()];
    lane.inflight++;
    for (const k of keys) lane.busyKeys.set(k, (lane.busyKeys.get(k) ?? 0) + 1);
    for (const p of batch.items) p.state = p.state === "queued" ? "sent" : p.state;
    const items = [...batch.items];
    const started = performance.now();
    let attempt = 0;
    try {
      for (;;) {
        let err: NerveBusError;
        try {
          const remaining = this.#totalTimeoutMs - (performance.now() - started);
          const client = this.#route.pick(lane.topic);
          const response = await unaryCall(
            client,
            client.sendPack,
            create(SendPackRequestSchema, { topic: lane.topic, messages: items.map((p) => p.wire!) }),
            { timeoutMs: Math.max(1, Math.min(this.#callTimeoutMs, remaining)), signal: this.#cancel.signal },
          );
          if (response.results.length !== items.length)
            throw new NerveBusError(
              StatusCode.INTERNAL,
              `SendPack answered ${response.results.length} results for ${items.length} messages`,
            );
          for (let i = 0; i < items.length; i++) {
            items[i]!.resolve(toResult(response.results[i]!, items[i]!.wire!.messageId));
          }
          return;
        } catch (e) {
          err = toNerveBusError(e);
        }
        this.#route.failed(lane.topic, err);
        if (err.code === StatusCode.CANCELLED && !this.#cancel.signal.aborted) err = cancelledByPeer(err);
        err = internalOutcomeUnknown(err);
        // One bad message fails the whole pack: refuse that one and send the others again.
        const bad = MESSAGE_INDEX.exec(err.details);
        if (err.code === StatusCode.INVALID_ARGUMENT && bad !== null) {
          const index = Number(bad[1]);
          if (index < items.length) {
            const p = items.splice(index, 1)[0]!;
            const own = new NerveBusError(err.code, err.details.replace(MESSAGE_INDEX, "message"), {
              cause: err,
              metadata: err.metadata,
            });
            p.reject(own);
            if (p.key !== "") {
              // Later messages with the key must not overtake the refused one.
              lane.failedKeys.set(p.key, own);
              for (let j = items.length - 1; j >= index; j--) {
                if (items[j]!.key !== p.key) continue;
                items.splice(j, 1)[0]!.reject(keyPausedError(p.key, own));
              }
            }
            if (items.length === 0) return;
            continue;
          }
        }
        const delay = backoffDelay(this.#retry, attempt++);
        const elapsed = performance.now() - started;
        // An attempt that ran out of its own deadline has an unknown outcome, like UNAVAILABLE:
        // retried with the same message ids while the total timeout allows.
        if (
          !(this.#retryable.has(err.code) || err.code === StatusCode.DEADLINE_EXCEEDED) ||
          this.#cancel.signal.aborted ||
          elapsed + delay >= this.#totalTimeoutMs
        ) {
          for (const p of items) p.reject(err);
          for (const k of keys) lane.failedKeys.set(k, err);
          return;
        }
        try {
          await sleep(delay, this.#cancel.signal);
        } catch (reason) {
          for (const p of items) p.reject(reason);
          for (const k of keys) lane.failedKeys.set(k, toNerveBusError(reason));
          return;
        }
      }
    } finally {
      lane.inflight--;
      for (const k of keys) {
        const n = (lane.busyKeys.get(k) ?? 1) - 1;
        if (n === 0) lane.busyKeys.delete(k);
        else lane.busyKeys.set(k, n);
      }
      this.#pump(lane);
      // Forget idle topics, so publishing to many topics over time does not accumulate state.
      if (
        lane.inflight === 0 &&
        lane.open === undefined &&
        lane.queued.length === 0 &&
        lane.failedKeys.size === 0 &&
        this.#lanes.get(lane.topic) === lane
      )
        this.#lanes.delete(lane.topic);
    }
  }

  #abort(p: Pending, reason: unknown): void {
    if (p.state === "queued" && p.batch !== undefined) {
      const batch = p.batch;
      batch.remove(p);
      if (batch.items.length === 0 && batch.lane.open === batch) {
        clearTimeout(batch.timer);
        batch.lane.open = undefined;
      }
    }
    p.reject(reason);
  }
}

/**
 * A CANCELLED the publisher did not cause (only close({ cancel: true }) cancels its calls) is the
 * broker or the network cutting the call, e.g. an RST_STREAM during a broker restart: the outcome
 * is unknown, so it is handled and reported as UNAVAILABLE, and retried with the same ids.
 */
function cancelledByPeer(err: NerveBusError): NerveBusError {
  return new NerveBusError(
    StatusCode.UNAVAILABLE,
    `call cancelled by the broker or the network, outcome unknown: ${err.details}`,
    { cause: err, metadata: err.metadata },
  );
}

/**
 * An INTERNAL is, for a publish, most often the connection reset under the call: the broker's
 * HTTP/2 layer closes a connection whose client resets streams too fast (nghttp2's rapid-reset
 * protection), failing every call on it with "RST_STREAM with code 2" / "Session closed". It
 * may also be the broker failing mid-append. Either way the pack may be stored: the outcome is
 * unknown, so it is handled and reported as UNAVAILABLE and retried with the same ids, which
 * the broker's dedup makes safe. Every INTERNAL, not only the transport's wording, which
 * differs between grpc-js, grpc-go and gRPC C-core (the same rule in the three clients).
 */
export function internalOutcomeUnknown(err: NerveBusError): NerveBusError {
  if (err.code !== StatusCode.INTERNAL) return err;
  return new NerveBusError(StatusCode.UNAVAILABLE, `call failed INTERNAL, outcome unknown: ${err.details}`, {
    cause: err,
    metadata: err.metadata,
  });
}

function toResult(r: MessageResult, messageId: string): PublishResult {
  return {
    seq: fromUint64(r.seq),
    traceId: r.traceId,
    outcome: OUTCOMES[r.outcome] ?? "appended",
    messageId,
  };
}

function keyPausedError(key: string, cause: NerveBusError): NerveBusError {
  return new NerveBusError(
    StatusCode.FAILED_PRECONDITION,
    `ordering key ${JSON.stringify(key)} is paused after a failed publish (${cause.message}); call resumeOrderingKey() to publish it again`,
    { cause },
  );
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

function nonNegative(name: string, v: number): number {
  if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be ≥ 0, got ${v}`);
  return v;
}

/**
 * The wire form of a message, shared by the batching and the streaming publisher: data as bytes,
 * a copy of the attributes (trace context is injected into it; the caller's object stays as it
 * was), a new message id when `autoMessageId` and none was given. Throws INVALID_ARGUMENT naming
 * the field for a bad time, delay or priority.
 */
export function toWireMessage(m: PublishMessage, autoMessageId: boolean): WireMessage {
  if (m.deliverAt !== undefined && m.delay !== undefined)
    throw invalidArgument("message", "give deliverAt or delay, not both");
  const data =
    m.data === undefined ? new Uint8Array(0) : typeof m.data === "string" ? Buffer.from(m.data) : m.data;
  let messageId = m.messageId ?? "";
  if (messageId === "" && autoMessageId) messageId = randomUUID();
  return create(MessageSchema, {
    data,
    attributes: { ...(m.attributes ?? {}) },
    orderingKey: m.orderingKey ?? "",
    messageId,
    deliverAt: m.deliverAt === undefined ? undefined : toTimestamp("message.deliverAt", m.deliverAt),
    delay: toDuration("message.delay", m.delay),
    priority: toWirePriority(m.priority),
  });
}
