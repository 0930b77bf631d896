import type { Percentiles } from "../lib/stats.js";

/** What the outbox phase measures (results.json → stores[].outbox). */
export interface OutboxResult {
  /**
   * Rows committed in one transaction, then relayed: rows / (last delivered − commit).
   * `baselineMsgPerSec`: the same rows sent by SendPack in sequential packs of 10,000 to the
   * same broker in the same run (the relay also has one pack in flight), for a ratio that the
   * machine's load does not change much.
   */
  readonly throughput: {
    rows: number;
    bytes: number;
    seconds: number;
    msgPerSec: number;
    baselineMsgPerSec: number;
  };
  /**
   * Single-row transactions at a steady rate: COMMIT returned → delivered to a subscriber
   * (`ms`; clamped at 0: InnoDB makes a commit visible before its log flush returns), and the
   * COMMIT's own duration (`commitMs`, the database's fsync under the machine's load).
   */
  readonly latency: {
    rate: number;
    messages: number;
    ms: Percentiles;
    commitMs: Percentiles;
    /** The broker's own end-to-end latency at the same rate in the same run (SendPack → delivery, bench e2e). */
    sendPackMs: Percentiles;
  };
}
