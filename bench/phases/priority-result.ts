import type { Percentiles } from "../lib/stats.js";

/** One run of the priority phase: stamped messages of one priority under a bulk backlog. */
export interface PriorityPhaseResult {
  /** "urgent": urgent messages under a bulk backlog; "normal": all normal (the baseline). */
  readonly priority: "urgent" | "normal";
  /** Bulk messages waiting when the consumer started. */
  readonly backlog: number;
  /** Stamped messages published during the run, and how many were delivered within it. */
  readonly sent: number;
  readonly delivered: number;
  /** Of the delivered stamped messages: from send to delivery. */
  readonly latencyMs: Percentiles;
  /** Backlog messages delivered per second meanwhile (bulk's share). */
  readonly bulkDeliveredPerSec: number;
}
