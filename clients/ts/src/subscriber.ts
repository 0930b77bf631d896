import { type Attributes, context } from "@opentelemetry/api";
import { NerveBusError, StatusCode } from "./errors.js";
import { Fifo } from "./fifo.js";
import type { SubscriberClient } from "./receive-codec.js";
import type { ReceivedMessage } from "./received-message.js";
import { RECEIVE_DEFAULTS, type ReceiveOptions, Receiver } from "./receiver.js";
import type { Route } from "./route.js";
import { endSpan, SpanAttributes, serverAttributes, startProcessSpan } from "./tracing.js";

/** Handles one message. Returning (or resolving) acks it; throwing (or rejecting) nacks it. */
export type MessageHandler = (message: ReceivedMessage) => void | Promise<void>;

/** Settings of subscribe(). */
export interface SubscriberOptions extends ReceiveOptions {
  /**
   * Handlers running at once; further messages wait locally, their leases kept alive.
   * Default: the window (maxMessages). Handlers of one ordering key always run one at a time,
   * in delivery order.
   */
  readonly concurrency?: number;
  /**
   * Redelivery delay (ms) after the handler threw. null uses the subscription's retry backoff.
   * Default 1000.
   */
  readonly nackDelayMs?: number | null;
  /** How long close() lets running handlers finish before nacking their messages (ms). Default 30000. */
  readonly closeTimeoutMs?: number;
  /** Aborting it closes the subscriber gracefully, as close() does. */
  readonly signal?: AbortSignal;
  /** Record a consumer span around each handler call. Default true. */
  readonly tracing?: boolean;
}

/**
 * The defaults of subscribe() beyond the stream's (RECEIVE_DEFAULTS; concurrency defaults to
 * the window), the same in the Go and Python clients (docs/clients.md).
 */
export const SUBSCRIBER_DEFAULTS = { nackDelayMs: 1000, closeTimeoutMs: 30_000 } as const;

/**
 * Runs an async handler for each message of a subscription, at most `concurrency` at a time
 * and never holding more than the window. Leases of messages waiting or being handled are
 * extended (up to maxExtensionMs). A returning handler acks its message, a throwing one nacks
 * it with nackDelayMs. The stream reconnects with backoff after retryable errors.
 */
export class Subscriber {
  /** The topic. */
  readonly topic: string;
  /** The subscription. */
  readonly subscription: string;
  readonly #handler: MessageHandler;
  readonly #receiver: Receiver;
  readonly #concurrency: number;
  readonly #nackDelayMs: number | undefined;
  readonly #closeTimeoutMs: number;
  readonly #tracing: boolean;
  readonly #server: Attributes;
  readonly #onClose: () => void;
  /** Messages waiting for a handler slot, in delivery order. */
  readonly #queue = new Fifo<ReceivedMessage>();
  /** Ordering keys with a handler running, and the messages of each waiting behind it. */
  readonly #busyKeys = new Map<string, ReceivedMessage[]>();
  readonly #running = new Set<ReceivedMessage>();
  #idleWaiters: (() => void)[] = [];
  #closing: Promise<void> | undefined;
  #failure: NerveBusError | undefined;
  readonly #done: Promise<void>;

  /** @internal Use NerveBusClient.subscribe(). */
  constructor(
    route: Route<SubscriberClient>,
    topic: string,
    subscription: string,
    handler: MessageHandler,
    options: SubscriberOptions = {},
    onClose: () => void = () => {},
    address = "",
  ) {
    this.#server = serverAttributes(address);
    this.topic = topic;
    this.subscription = subscription;
    this.#handler = handler;
    this.#onClose = onClose;
    this.#concurrency = options.concurrency ?? options.maxMessages ?? RECEIVE_DEFAULTS.maxMessages;
    if (!Number.isInteger(this.#concurrency) || this.#concurrency < 1)
      throw new RangeError(`concurrency must be a positive integer, got ${this.#concurrency}`);
    this.#nackDelayMs =
      options.nackDelayMs === null ? undefined : (options.nackDelayMs ?? SUBSCRIBER_DEFAULTS.nackDelayMs);
    if (this.#nackDelayMs !== undefined && !(this.#nackDelayMs >= 0 && Number.isFinite(this.#nackDelayMs)))
      throw new RangeError(`nackDelayMs must be ≥ 0 or null, got ${this.#nackDelayMs}`);
    this.#closeTimeoutMs = options.closeTimeoutMs ?? SUBSCRIBER_DEFAULTS.closeTimeoutMs;
    if (!(this.#closeTimeoutMs >= 0))
      throw new RangeError(`closeTimeoutMs must be ≥ 0, got ${this.#closeTimeoutMs}`);
    this.#tracing = options.tracing ?? true;
    this.#receiver = new Receiver(route, topic, subscription, options, {
      deliver: (m) => this.#deliver(m),
      streamLost: () => this.#streamLost(),
      failed: (err) => this.#failed(err),
    });
    this.#done = this.#receiver.start();
    this.#done.catch(() => {});
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) void this.close();
      else signal.addEventListener("abort", () => void this.close(), { once: true });
    }
  }

  /** Resolves once the stream is subscribed; rejects if the subscriber fails or closes first. */
  get ready(): Promise<void> {
    return this.#receiver.ready;
  }

  /**
   * Settles when the subscriber has stopped: resolves after close(), rejects with a
   * NerveBusError when a non-retryable stream error (e.g. NOT_FOUND, INVALID_ARGUMENT) stopped it.
   */
  get done(): Promise<void> {
    return this.#closing === undefined ? this.#done : this.#closing.then(() => this.#done);
  }

  /** Handlers running now. */
  get running(): number {
    return this.#running.size;
  }

  /** Messages delivered and not yet settled: running, or waiting for a handler slot. */
  get held(): number {
    return this.#receiver.held;
  }

  /**
   * Stops gracefully: no new handlers start (waiting messages are nacked for immediate
   * redelivery), running handlers get `timeoutMs` (default closeTimeoutMs) to finish, after which
   * their messages are nacked and their signals aborted; then the stream ends.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#close(options.timeoutMs ?? this.#closeTimeoutMs);
    return this.#closing;
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#onClose();
    this.#receiver.drain();
    for (const m of this.#takeWaiting()) m.nack(0);
    if (this.#running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      });
      const idle = new Promise<boolean>((resolve) => this.#idleWaiters.push(() => resolve(false)));
      const late = await Promise.race([idle, timedOut]);
      clearTimeout(timer);
      if (late) {
        const reason = new NerveBusError(
          StatusCode.CANCELLED,
          "subscriber closed before the handler finished",
        );
        for (const m of this.#running) {
          m.nack(0);
          m.abandon(reason);
        }
      }
    }
    await this.#receiver.stop();
  }

  #deliver(message: ReceivedMessage): void {
    if (this.#closing !== undefined || this.#failure !== undefined) {
      message.nack(0);
      return;
    }
    this.#queue.push(message);
    this.#pump();
  }

  #streamLost(): void {
    // The broker redelivers what this stream held: drop what has not started.
    for (const m of this.#takeWaiting()) this.#receiver.release(m);
  }

  #failed(err: NerveBusError): void {
    this.#failure = err;
    this.#takeWaiting();
    for (const m of this.#running) m.abandon(err);
  }

  /** Takes every message not started: those waiting for a slot, then those behind a busy key. */
  #takeWaiting(): ReceivedMessage[] {
    const waiting = this.#queue.drain();
    for (const behind of this.#busyKeys.values()) waiting.push(...behind.splice(0));
    return waiting;
  }

  #pump(): void {
    while (this.#running.size < this.#concurrency && this.#queue.length > 0) {
      const message = this.#queue.shift()!;
      const behind = message.orderingKey === "" ? undefined : this.#busyKeys.get(message.orderingKey);
      if (behind !== undefined) behind.push(message);
      else this.#start(message);
    }
  }

  #start(message: ReceivedMessage): void {
    const key = message.orderingKey;
    if (key !== "" && !this.#busyKeys.has(key)) this.#busyKeys.set(key, []);
    this.#running.add(message);
    void this.#run(message);
  }

  /** A handler of `key` returned: the next message of the key starts (in the freed slot), or the key is free. */
  #releaseKey(key: string): void {
    const behind = this.#busyKeys.get(key);
    const next = behind?.shift();
    if (next === undefined || this.#closing !== undefined) this.#busyKeys.delete(key);
    else this.#start(next);
  }

  async #run(message: ReceivedMessage): Promise<void> {
    const traced = this.#tracing
      ? startProcessSpan({
          topic: message.topic,
          subscription: message.subscription,
          seq: message.seq,
          attempt: message.attempt,
          messageId: message.messageId,
          orderingKey: message.orderingKey,
          bodySize: message.data.byteLength,
          attributes: message.attributes,
          server: this.#server,
        })
      : undefined;
    let failure: unknown;
    try {
      if (traced === undefined) await this.#handler(message);
      else await context.with(traced.context, () => this.#handler(message));
      message.ack();
    } catch (err) {
      failure = err;
      if (message.settlement === undefined) message.nack(this.#nackDelayMs);
    } finally {
      if (traced !== undefined) {
        traced.span.setAttribute(SpanAttributes.SETTLEMENT, message.settlement ?? "none");
        endSpan(traced.span, failure);
      }
      this.#running.delete(message);
      if (message.orderingKey !== "") this.#releaseKey(message.orderingKey);
      if (this.#running.size === 0) for (const w of this.#idleWaiters.splice(0)) w();
      if (this.#closing === undefined) this.#pump();
    }
  }
}
