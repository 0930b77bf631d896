import type { MessagePriority } from "./conversions.js";
import { NerveBusError, StatusCode } from "./errors.js";

/** How a delivered message was settled. */
export type Settlement = "ack" | "nack" | "terminate";

/** What a message asks of the stream it came on. @internal */
export interface MessageHooks {
  /** Queues a settlement; `result` (acks only) learns whether the broker applied it. */
  settle(kind: Settlement, delayMs: number | undefined, result?: AckWaiter): void;
  /** Queues a lease extension to `deadlineMs` from now (undefined: the ack deadline). */
  extend(deadlineMs: number | undefined): void;
}

/** Who waits for an ack's result. @internal */
export interface AckWaiter {
  resolve(): void;
  reject(err: NerveBusError): void;
}

/** The fields of a delivered message. */
export interface DeliveredFields {
  readonly topic: string;
  readonly subscription: string;
  readonly seq: number;
  readonly data: Uint8Array;
  readonly attributes: Readonly<Record<string, string>>;
  readonly orderingKey: string;
  readonly messageId: string;
  readonly publishTime: Date;
  readonly attempt: number;
  readonly traceId: string;
  readonly priority: MessagePriority;
}

/**
 * One message delivered to a subscriber. Settle it once with ack(), nack() or terminate();
 * later calls are ignored. With subscribe(), returning from the handler acks it and throwing
 * nacks it, unless the handler settled it itself.
 */
export class ReceivedMessage implements DeliveredFields {
  readonly topic: string;
  readonly subscription: string;
  /** Position in the topic (1, 2, 3 …); acks name messages by seq. */
  readonly seq: number;
  /** The payload as published. */
  readonly data: Uint8Array;
  /** The attributes as published, including traceparent / tracestate. */
  readonly attributes: Readonly<Record<string, string>>;
  /** The ordering key; "" when none. */
  readonly orderingKey: string;
  /** The producer's message id; "" when none. */
  readonly messageId: string;
  /** When the broker appended the message. */
  readonly publishTime: Date;
  /** 1 for the first delivery on this subscription, 2 for the first redelivery, … */
  readonly attempt: number;
  /** The W3C trace id of the message's end-to-end trace. */
  readonly traceId: string;
  /** Urgent, normal or bulk, as published. */
  readonly priority: MessagePriority;

  #settlement: Settlement | undefined;
  readonly #hooks: MessageHooks;
  /** Made when `signal` is first asked for: most handlers never look at it. */
  #abort: AbortController | undefined;
  /** Why the message was abandoned before anyone asked for its signal. */
  #abandoned: { reason: unknown } | undefined;

  /** @internal Messages are made by the subscriber. */
  constructor(fields: DeliveredFields, hooks: MessageHooks) {
    this.topic = fields.topic;
    this.subscription = fields.subscription;
    this.seq = fields.seq;
    this.data = fields.data;
    this.attributes = fields.attributes;
    this.orderingKey = fields.orderingKey;
    this.messageId = fields.messageId;
    this.publishTime = fields.publishTime;
    this.attempt = fields.attempt;
    this.traceId = fields.traceId;
    this.priority = fields.priority;
    this.#hooks = hooks;
  }

  /** The payload decoded as UTF-8. */
  text(): string {
    return Buffer.from(this.data.buffer, this.data.byteOffset, this.data.byteLength).toString("utf8");
  }

  /** How the message was settled, or undefined while it is not. */
  get settlement(): Settlement | undefined {
    return this.#settlement;
  }

  /**
   * Aborts when the subscriber gives up on the message: it is closing and the close timeout
   * passed (the message was nacked), or it stopped with an error.
   */
  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController();
      if (this.#abandoned !== undefined) this.#abort.abort(this.#abandoned.reason);
    }
    return this.#abort.signal;
  }

  /** Processing is done: the message is not delivered again. */
  ack(): void {
    this.#settle("ack", undefined);
  }

  /**
   * Acks the message and resolves once the broker applied the ack: once it is durable with
   * the `confirmAcks` option, once it was written to the stream without. Rejects with a
   * NerveBusError: FAILED_PRECONDITION when the message was settled before, UNAVAILABLE when
   * the subscriber stopped before the confirmation (the ack may still have been applied) or
   * the broker ignored the ack.
   */
  ackWithResult(): Promise<void> {
    if (this.#settlement !== undefined)
      return Promise.reject(
        new NerveBusError(StatusCode.FAILED_PRECONDITION, `message seq ${this.seq} was already settled`),
      );
    return new Promise<void>((resolve, reject) => {
      this.#settlement = "ack";
      this.#hooks.settle("ack", undefined, { resolve, reject });
    });
  }

  /**
   * Tells the broker the message is still being processed ("in progress"): its lease is
   * extended to `deadlineMs` from now (1 s – 10 min; default: the stream's ack deadline), at
   * once, also past maxExtensionMs. Does nothing once the message is settled, or when its
   * stream has ended (the broker redelivers it then).
   */
  extendDeadline(deadlineMs?: number): void {
    if (deadlineMs !== undefined && !(deadlineMs >= 1000 && deadlineMs <= 600_000))
      throw new RangeError(`extendDeadline takes 1000–600000 ms, got ${deadlineMs}`);
    if (this.#settlement === undefined) this.#hooks.extend(deadlineMs);
  }

  /**
   * Processing failed: deliver the message again after `delayMs` (undefined: the
   * subscription's retry backoff).
   */
  nack(delayMs?: number): void {
    if (delayMs !== undefined && !(delayMs >= 0 && Number.isFinite(delayMs)))
      throw new RangeError(`nack delay must be ≥ 0 ms, got ${delayMs}`);
    this.#settle("nack", delayMs);
  }

  /** Dead-letters the message now, without further attempts (drops it when no dead-letter topic is set). */
  terminate(): void {
    this.#settle("terminate", undefined);
  }

  /** @internal Aborts the message's signal. */
  abandon(reason: unknown): void {
    if (this.#abort !== undefined) this.#abort.abort(reason);
    else this.#abandoned ??= { reason };
  }

  #settle(kind: Settlement, delayMs: number | undefined): void {
    if (this.#settlement !== undefined) return;
    this.#settlement = kind;
    this.#hooks.settle(kind, delayMs);
  }
}
