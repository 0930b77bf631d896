import type { NerveBusError, TopicRecord } from "../../core/index.js";

/** What the status page and stats show about ownership. */
export interface LeaseState {
  readonly owner: string;
  readonly epoch: number;
  /** ms since the last successful renewal. */
  readonly ageMs: number;
  readonly valid: boolean;
  readonly lost: string | undefined;
  /** Leases of topics held (one lease per topic: ClusterLease only). */
  readonly topicsOwned?: number;
}

/**
 * What a fenced write asks of ownership: which epoch a topic's writes carry and which lease row
 * holds it. One broker per database (Lease: one row, every topic) and several brokers sharing
 * it (ClusterLease: one row per topic) both answer it, so FencedPool works the same for both.
 */
export interface WriteGuard {
  /** This broker's identity in lease rows. */
  readonly owner: string;
  /**
   * Throws unless a write of `topic` (or, without one, any write) may start now: UNAVAILABLE
   * while the lease is not known to be valid, the lost-ownership error once it is gone, and
   * UNAVAILABLE for a write of a claim that has ended (`topic.tenure`).
   */
  check(topic?: TopicRecord): void;
  /** The epoch `topic`'s fence rows must hold for this broker's writes to commit (0: none may). */
  epochOf(topic: TopicRecord): number;
  /** The `nb_lease` row whose epoch a claim of `topic` checks under lock. */
  unitOf(topic: TopicRecord): string;
  /**
   * Makes this broker the topic's lease holder (before its fence rows are raised). Returns the
   * claim's tenure (TopicRecord.tenure) where topics are claimed one by one, else undefined;
   * `tenure` continues one this broker holds elsewhere (a move's copy on its new database).
   */
  claim(topic: TopicRecord, tenure?: number): Promise<number | undefined>;
  /**
   * Records that a newer owner exists, of `topic` or (undefined) of the whole store; returns
   * the error writes fail with from now on.
   */
  markLost(topic: TopicRecord | undefined, detail: string): NerveBusError;
  state(): LeaseState;
  /** Stops renewing and lets other brokers take over at once. */
  release(): Promise<void>;
}
