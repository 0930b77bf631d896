/** What the cluster phase measures (its own file so that suite-results.ts need not import the phase). */

/** How a run's clients reach a topic's owner. */
export type Route = "forwarded" | "direct";

/** One run: `brokers` brokers on one database, every call `route`d. */
export interface ClusterRun {
  readonly brokers: number;
  /** forwarded: each topic's calls go to a broker that does not own it; direct: to its owner. */
  readonly route: Route;
  readonly topics: number;
  /** Messages confirmed durable per second, all publishers together. */
  readonly publishPerSec: number;
  /** Messages read and acked per second, draining what was published (warm-up included). */
  readonly drainPerSec: number;
  readonly messages: number;
  /** Messages not drained within --drain-timeout (0 normally). */
  readonly undrained: number;
}
