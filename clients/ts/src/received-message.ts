/** How a delivered message was settled. */
export type Settlement = "ack" | "nack" | "terminate";

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

  #settlement: Settlement | undefined;
  readonly #onSettle: (kind: Settlement, delayMs: number | undefined) => void;
  readonly #abort = new AbortController();

  /** @internal Messages are made by the subscriber. */
  constructor(fields: DeliveredFields, onSettle: (kind: Settlement, delayMs: number | undefined) => void) {
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
    this.#onSettle = onSettle;
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
    return this.#abort.signal;
  }

  /** Processing is done: the message is not delivered again. */
  ack(): void {
    this.#settle("ack", undefined);
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
    this.#abort.abort(reason);
  }

  #settle(kind: Settlement, delayMs: number | undefined): void {
    if (this.#settlement !== undefined) return;
    this.#settlement = kind;
    this.#onSettle(kind, delayMs);
  }
}
