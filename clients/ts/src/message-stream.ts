import type { Attributes, Context, Span } from "@opentelemetry/api";
import type { NerveBusError } from "./errors.js";
import type { SubscriberClient } from "./receive-codec.js";
import type { ReceivedMessage } from "./received-message.js";
import { type ReceiveOptions, Receiver } from "./receiver.js";
import type { Route } from "./route.js";
import { endSpan, SpanAttributes, serverAttributes, startProcessSpan } from "./tracing.js";

/** Settings of messages(). */
export interface MessageStreamOptions extends ReceiveOptions {
  /** Aborting it ends the iteration (as close() does). */
  readonly signal?: AbortSignal;
  /**
   * Record a consumer span per message, from when it is yielded until it is settled; its
   * context is available through traceContext(message). Default true.
   */
  readonly tracing?: boolean;
}

const spans = new WeakMap<ReceivedMessage, { span: Span; context: Context }>();

/**
 * The OpenTelemetry context of a message yielded by messages() (its consumer span, child of the
 * producer's), to run processing in: `context.with(traceContext(msg), () => …)`. Undefined when
 * tracing is off or the message came from subscribe() (whose handler already runs in it).
 */
export function traceContext(message: ReceivedMessage): Context | undefined {
  return spans.get(message)?.context;
}

/**
 * Messages of a subscription as an async iterator: `for await (const msg of stream) { …;
 * msg.ack() }`. Each message must be settled (ack, nack or terminate); unsettled messages
 * count against the window (maxMessages), so at most that many can be held at once, and their
 * leases are extended meanwhile. Leaving the loop (break, return, throw) or close() ends the
 * stream: messages received but not yet yielded are nacked for immediate redelivery, and
 * pending acks are sent first. The stream connects on the first next().
 */
export class MessageStream implements AsyncIterableIterator<ReceivedMessage> {
  readonly #receiver: Receiver;
  readonly #tracing: boolean;
  readonly #server: Attributes;
  readonly #onClose: () => void;
  readonly #buffer: ReceivedMessage[] = [];
  #waiter:
    | { resolve: (r: IteratorResult<ReceivedMessage>) => void; reject: (err: unknown) => void }
    | undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  #failure: NerveBusError | undefined;

  /** @internal Use NerveBusClient.messages(). */
  constructor(
    route: Route<SubscriberClient>,
    topic: string,
    subscription: string,
    options: MessageStreamOptions = {},
    onClose: () => void = () => {},
    address = "",
  ) {
    this.#tracing = options.tracing ?? true;
    this.#server = serverAttributes(address);
    this.#onClose = onClose;
    this.#receiver = new Receiver(route, topic, subscription, options, {
      deliver: (m) => this.#deliver(m),
      streamLost: () => {
        for (const m of this.#buffer.splice(0)) this.#receiver.release(m);
      },
      settled: (m, kind) => {
        const traced = spans.get(m);
        if (traced === undefined) return;
        traced.span.setAttribute(SpanAttributes.SETTLEMENT, kind);
        endSpan(traced.span);
      },
      failed: (err) => {
        this.#failure = err;
        this.#buffer.splice(0);
        this.#wake();
      },
    });
    const signal = options.signal;
    if (signal !== undefined) {
      if (signal.aborted) void this.close();
      else signal.addEventListener("abort", () => void this.close(), { once: true });
    }
  }

  /** Resolves once the stream is subscribed (connecting if no next() did yet). */
  get ready(): Promise<void> {
    this.#startOnce();
    return this.#receiver.ready;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next message; done once closed; rejects with a NerveBusError after a non-retryable error. */
  next(): Promise<IteratorResult<ReceivedMessage>> {
    this.#startOnce();
    const m = this.#buffer.shift();
    if (m !== undefined) return Promise.resolve({ value: this.#yield(m), done: false });
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    if (this.#waiter !== undefined)
      return Promise.reject(new Error("next() called while another next() is pending"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** Ends the iteration (called by `break`), closing the stream. */
  async return(): Promise<IteratorResult<ReceivedMessage>> {
    await this.close();
    return { value: undefined, done: true };
  }

  /**
   * Ends the stream: a pending next() resolves as done, messages not yet yielded are nacked,
   * queued acks are sent, then the stream is half-closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#onClose();
      this.#wake();
      this.#receiver.drain();
      for (const m of this.#buffer.splice(0)) m.nack(0);
      await this.#receiver.stop();
    })();
    return this.#closing;
  }

  #startOnce(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#receiver.start().catch(() => {});
  }

  #deliver(message: ReceivedMessage): void {
    if (this.#closed) {
      message.nack(0);
      return;
    }
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve({ value: this.#yield(message), done: false });
    } else {
      this.#buffer.push(message);
    }
  }

  #yield(message: ReceivedMessage): ReceivedMessage {
    if (this.#tracing)
      spans.set(
        message,
        startProcessSpan({
          topic: message.topic,
          subscription: message.subscription,
          seq: message.seq,
          attempt: message.attempt,
          messageId: message.messageId,
          orderingKey: message.orderingKey,
          bodySize: message.data.byteLength,
          attributes: message.attributes,
          server: this.#server,
        }),
      );
    return message;
  }

  #wake(): void {
    const waiter = this.#waiter;
    if (waiter === undefined) return;
    this.#waiter = undefined;
    if (this.#failure !== undefined) waiter.reject(this.#failure);
    else waiter.resolve({ value: undefined, done: true });
  }
}
