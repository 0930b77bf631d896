import type { RecordSpan } from "../wire/index.js";
import type { LogMessage } from "./model.js";

/** One message handed to a consumer. */
export interface Delivered {
  readonly message: LogMessage;
  readonly attempt: number;
}

/**
 * What a batch holds: single deliveries, and first deliveries copied from stored records (one
 * span per run, no message object each), in delivery order.
 */
export type Delivery = Delivered | RecordSpan;

/** How a subscription talks back to one Receive stream. */
export interface ConsumerSink {
  /** Sends a batch; returns false when the transport is congested (call `resume` once it drains). */
  send(deliveries: readonly Delivered[]): boolean;
  /**
   * Sends a batch that may hold record spans (like send otherwise). A sink that has it gets
   * first deliveries as spans of stored records; one that has not gets messages.
   */
  sendSpans?(deliveries: readonly Delivery[]): boolean;
  /**
   * Reports acks once durable (only for consumers that asked for confirmations); `ignored` are
   * acks of seqs never delivered on the subscription.
   */
  ackResults(acked: readonly number[], alreadyAcked: readonly number[], ignored: readonly number[]): void;
  /** Ends the stream with an error (its subscription or topic was deleted). */
  fail(err: Error): void;
}

/** A flow-control window: the most unacked messages and bytes a consumer may hold. */
export interface Window {
  readonly maxMessages: number;
  /** 0 for no byte limit. */
  readonly maxBytes: number;
}

/**
 * One attached Receive stream: its window, ack deadline and what it holds. The subscription
 * keeps the counters; the window is never exceeded, not even by one message.
 */
export class Consumer {
  window: Window;
  inFlight = 0;
  inFlightBytes = 0;
  congested = false;
  detached = false;
  readonly connectedAt = Date.now();

  constructor(
    readonly name: string,
    window: Window,
    readonly ackDeadlineMs: number,
    readonly confirmAcks: boolean,
    readonly sink: ConsumerSink,
  ) {
    this.window = window;
  }

  /** Whether one more message of `bytes` fits in the window. */
  fits(bytes: number): boolean {
    if (this.inFlight >= this.window.maxMessages) return false;
    return this.window.maxBytes === 0 || this.inFlightBytes + bytes <= this.window.maxBytes;
  }

  get hasCredit(): boolean {
    return !this.detached && !this.congested && this.inFlight < this.window.maxMessages;
  }
}
