import type { IndexedRun } from "../wire/index.js";
import type { Delivery } from "./consumer.js";

/** Logging hook: the core never picks a logger. */
export type LogFn = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/** How a message left a consumer's hands. */
export type SettleOutcome = "ack" | "nack" | "expired" | "dead_letter";

/** A settled message: its seq and the trace context it was published with. */
export interface Settled {
  readonly seq: number;
  readonly traceparent: string | undefined;
}

/**
 * What the core reports as it works, for traces and metrics. The core never imports a telemetry
 * library; src/telemetry implements this. Every method must be cheap and must not throw.
 */
export interface BrokerObserver {
  /** Whether spans are made: only then does the core look up messages' trace contexts. */
  readonly tracing: boolean;
  /** A shard batch committed (runs in seq order). */
  batchPersisted(
    topic: string,
    shard: number,
    runs: readonly IndexedRun[],
    startedAt: number,
    durationMs: number,
  ): void;
  /** A store call failed (it is retried). */
  storeError(operation: string, err: unknown): void;
  /** Rows read from the store for a lagging subscription or a redelivery. */
  storeRead(topic: string, rows: number, durationMs: number): void;
  /** Messages sent to a consumer. */
  delivered(topic: string, subscription: string, deliveries: readonly Delivery[]): void;
  /**
   * `count` messages settled on a subscription; `messages` lists them with their trace context
   * when `tracing` is on (it may be empty otherwise).
   */
  settled(
    topic: string,
    subscription: string,
    outcome: SettleOutcome,
    count: number,
    messages: readonly Settled[],
  ): void;
}

/** The observer used when none is given: does nothing. */
export const NO_OBSERVER: BrokerObserver = {
  tracing: false,
  batchPersisted() {},
  storeError() {},
  storeRead() {},
  delivered() {},
  settled() {},
};
