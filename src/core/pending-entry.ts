import type { Consumer } from "./consumer.js";
import type { LogMessage } from "./model.js";

/** A message delivered at least once (or released from an ordering key) and not acked yet. */
export interface PendingEntry {
  attempts: number;
  /** The consumer holding the message now (its lease), or undefined. */
  consumer: Consumer | undefined;
  /** While leased: when the lease expires (ms since epoch). */
  deadline: number;
  /**
   * While leased: the due time of the one timer entry that looks at this lease. An extension
   * to a later deadline adds no entry: that one re-arms itself for the new deadline when it
   * falls due, so however often a lease is extended it holds one entry.
   */
  armedAt: number;
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
 * A pending entry that nobody holds yet: `attempts` made so far, deliverable from `notBefore`,
 * `key` its ordering key ("" for none). Every field is set, so all entries share one shape.
 */
export function pendingEntry(attempts: number, notBefore: number, key: string): PendingEntry {
  return {
    attempts,
    consumer: undefined,
    deadline: 0,
    armedAt: 0,
    leaseBytes: 0,
    notBefore,
    message: undefined,
    key,
    dead: false,
    traceparent: undefined,
  };
}
