import type { LogMessage, PointerRecord, SubscriptionRecord, TopicRecord } from "./model.js";

/**
 * What the core needs from storage. Implementations own their connections; nothing of the
 * driver leaks out. Every method throws NerveBusError: "unavailable" for failures worth
 * retrying (connection lost, deadlock, lock wait), "failed_precondition" when another broker
 * owns the database, "internal" otherwise.
 */
export interface Store {
  /** Static facts about the backend, so the core never tests the kind of store. */
  readonly capabilities: StoreCapabilities;

  /** Returns the topic, creating it (and its shard tables) when `create` allows. */
  ensureTopic(
    name: string,
    create: { shards: number } | null,
  ): Promise<{ topic: TopicRecord; created: boolean } | null>;
  listTopics(): Promise<TopicRecord[]>;

  /** Returns the subscription, creating it when `create` is true. */
  ensureSubscription(
    topic: TopicRecord,
    name: string,
    create: boolean,
  ): Promise<{ subscription: SubscriptionRecord; created: boolean } | null>;
  listSubscriptions(topic: TopicRecord): Promise<SubscriptionRecord[]>;

  /**
   * Durably writes rows into one shard (every row's seq % shards === shard). Idempotent: a row
   * whose seq exists is overwritten with the same content, so a retry after an unknown outcome
   * is safe. Resolves only once committed.
   */
  insertMessages(topic: TopicRecord, shard: number, rows: readonly LogMessage[]): Promise<void>;

  /** Reads the messages with fromSeq ≤ seq ≤ toSeq, in seq order (missing seqs are skipped). */
  readMessages(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LogMessage[]>;

  /** The lowest retained seq, or 0 when the topic holds no message. */
  firstSeq(topic: TopicRecord): Promise<number>;

  /** The lowest seq published at or after `time` (ms since epoch), or 0 when none is. */
  seqAtTime(topic: TopicRecord, time: number): Promise<number>;

  /**
   * Crash recovery of the log's tail: finds the longest run of contiguous seqs above
   * `watermark`, deletes every row above that run (packs that were never confirmed), and
   * returns the run's last seq (or `watermark` when there is none).
   */
  recoverTail(topic: TopicRecord, watermark: number): Promise<number>;

  loadPointer(topic: TopicRecord, subscription: string): Promise<PointerRecord | null>;
  /** Writes several pointers of one topic in one round trip. */
  savePointers(topic: TopicRecord, pointers: readonly PointerRecord[]): Promise<void>;

  /** Releases connections and the ownership lock. */
  close(): Promise<void>;
}

/** What differs between backends, in one place (see each store's constant). */
export interface StoreCapabilities {
  readonly kind: "sqlite" | "mysql";
  /** Rows per INSERT statement: below the server's packet limit with room for the SQL text. */
  readonly maxInsertRows: number;
  /** Bytes per INSERT statement. */
  readonly maxInsertBytes: number;
}
