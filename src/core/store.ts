import type { IndexedRun } from "../wire/index.js";
import type { Cluster } from "./cluster.js";
import type { NerveBusError } from "./errors.js";
import type {
  LogFormat,
  LoggedIds,
  LogMessage,
  NewMessage,
  PointerRecord,
  ScheduledMessage,
  SubscriptionConfig,
  SubscriptionRecord,
  TopicConfig,
  TopicRecord,
} from "./model.js";
import type { TopicSchema } from "./topic-schema.js";

/**
 * What the core needs from storage. Implementations own their connections; nothing of the
 * driver leaks out. Every method throws NerveBusError: "unavailable" for failures worth
 * retrying (connection lost, deadlock, lock wait, lease not current, ownership lost to another
 * broker), "failed_precondition" when another broker owns the database at start-up, "internal"
 * otherwise.
 */
export interface Store {
  /** Static facts about the backend, so the core never tests the kind of store. */
  readonly capabilities: StoreCapabilities;

  /** Returns the topic, creating it (and its tables) when `create` is given. */
  ensureTopic(
    name: string,
    create: { shards: number; config: TopicConfig; format?: LogFormat } | null,
  ): Promise<{ topic: TopicRecord; created: boolean } | null>;
  listTopics(): Promise<TopicRecord[]>;
  updateTopicConfig(topic: TopicRecord, config: TopicConfig): Promise<TopicRecord>;
  /** Drops the topic's tables and removes it, its subscriptions and pointers from the catalog. */
  deleteTopic(topic: TopicRecord): Promise<void>;

  /** The topic's declared payload type, or null when it is untyped. */
  loadTopicSchema(topic: TopicRecord): Promise<TopicSchema | null>;
  /** Stores the topic's payload type (null: untyped again); deleteTopic removes it too. */
  saveTopicSchema(topic: TopicRecord, schema: TopicSchema | null): Promise<void>;

  /** Returns the subscription, creating it when `create` is given. */
  ensureSubscription(
    topic: TopicRecord,
    name: string,
    create: SubscriptionConfig | null,
  ): Promise<{ subscription: SubscriptionRecord; created: boolean } | null>;
  listSubscriptions(topic: TopicRecord): Promise<SubscriptionRecord[]>;
  updateSubscriptionConfig(topic: TopicRecord, name: string, config: SubscriptionConfig): Promise<void>;
  /** Removes the subscription and its pointer. */
  deleteSubscription(topic: TopicRecord, name: string): Promise<void>;

  /**
   * Durably writes messages into one shard table, in one transaction. Format 1: one row each
   * (every seq % shards === shard). Format 2: each run of consecutive seqs among them becomes
   * one row (any shard), and each message gets its stored record (LogMessage.adoptRecord).
   * Idempotent: what exists at a seq is kept if it is the same message (a retry after a lost
   * commit); different content is an error. Resolves only once committed.
   */
  insertMessages(topic: TopicRecord, shard: number, rows: readonly LogMessage[]): Promise<void>;

  /**
   * insertMessages for runs as the broker builds them (in seq order, one shard): format 2
   * stores runs that follow one another as one row; format 1, a row per message (every seq
   * % shards === shard). The same guarantees.
   */
  insertRuns(topic: TopicRecord, shard: number, runs: readonly IndexedRun[]): Promise<void>;

  /** Reads the messages with fromSeq ≤ seq ≤ toSeq, in seq order (missing seqs are skipped). */
  readMessages(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LogMessage[]>;

  /**
   * Format 2: the records with fromSeq ≤ seq ≤ toSeq as runs (in seq order, each holding only
   * those records, copied out of its row), so deliveries copy them without decoding. Undefined
   * for a format-1 topic (use readMessages). Optional: a store without it serves readMessages.
   */
  readRuns?(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<IndexedRun[] | undefined>;

  /** Like readMessages without the payloads: for rebuilding the deduplication index. */
  readIds(topic: TopicRecord, fromSeq: number, toSeq: number): Promise<LoggedIds[]>;

  /** The lowest retained seq, or 0 when the topic holds no message. */
  firstSeq(topic: TopicRecord): Promise<number>;

  /** Average stored bytes (payload and metadata) per message over up to `sample` recent rows. */
  averageRowBytes(topic: TopicRecord, sample: number): Promise<number>;

  /** Deletes up to `limit` rows with seq ≤ `throughSeq` from each shard; returns how many went. */
  deleteMessagesThrough(topic: TopicRecord, throughSeq: number, limit: number): Promise<number>;

  /**
   * Crash recovery of the log's tail: finds the longest run of contiguous seqs above
   * `watermark`, deletes every row above that run (packs that were never confirmed), and
   * returns the run's last seq (or `watermark` when there is none).
   */
  recoverTail(topic: TopicRecord, watermark: number): Promise<number>;

  /** Durably adds delayed messages to the topic's schedule; returns their ids in order. */
  scheduleMessages(
    topic: TopicRecord,
    entries: readonly { dueAt: number; message: NewMessage }[],
  ): Promise<number[]>;
  /** The earliest-due entries with dueAt ≤ `now`, at most `limit`, in due order. */
  dueMessages(topic: TopicRecord, now: number, limit: number): Promise<ScheduledMessage[]>;
  /**
   * The message ids of schedule entries with id > `afterId`, in id order, at most `limit`
   * entries ("" for one without a message id, or whose metadata does not decode).
   */
  scheduledIds(
    topic: TopicRecord,
    afterId: number,
    limit: number,
  ): Promise<{ id: number; messageId: string }[]>;
  /** Removes schedule entries (they are in the log now). */
  deleteScheduled(topic: TopicRecord, ids: readonly number[]): Promise<void>;
  /** How many entries wait and when the earliest is due (0 when none). */
  scheduleSummary(topic: TopicRecord): Promise<{ count: number; nextDueAt: number }>;

  loadPointer(topic: TopicRecord, subscription: string): Promise<PointerRecord | null>;
  /**
   * The lowest pointer of the topic's subscriptions, in one round trip (a topic's load needs
   * only that, not each pointer's state): 0 when it has none or one has no pointer yet.
   */
  lowestPointer(topic: TopicRecord): Promise<number>;
  /** Writes several pointers of one topic in one round trip. */
  savePointers(topic: TopicRecord, pointers: readonly PointerRecord[]): Promise<void>;

  /**
   * Makes this broker the topic's only writer; called before the topic's tail is read. After
   * it resolves, no write of an earlier owner can commit. Returns the record the topic's calls
   * carry from now on: with several brokers it names this claim (TopicRecord.tenure), so once
   * the broker loses the topic no write of this claim lands, even after a later claim. Throws
   * "unavailable" when another broker owns the store now, NotOwnerError when another broker of
   * the cluster owns the topic.
   */
  claimTopic(topic: TopicRecord): Promise<TopicRecord>;

  /**
   * Hands the topic over to the next broker that claims it (its state is persisted by then);
   * only stores shared by several brokers have it.
   */
  releaseTopic?(topic: TopicRecord): Promise<void>;

  /**
   * Whether this broker's ownership of the topic is known to be current, so it may deliver the
   * topic's messages (synchronous: asked before every dispatch). Only stores shared by several
   * brokers have it; without it a broker always may.
   */
  serves?(topic: TopicRecord): boolean;

  /** Set when several brokers share the store, each topic owned by one of them. */
  readonly cluster?: Cluster | undefined;

  /** Who owns the store and whether that ownership is current (status page, stats). */
  ownership(): OwnershipState;

  /** Resolves when the store answers and this broker owns it; throws "unavailable" otherwise. */
  ping(): Promise<void>;

  /**
   * While writes to the topic's file or database fail for lack of disk space: the error new
   * publishes are refused with (RESOURCE_EXHAUSTED, naming the place), else undefined. Set by a
   * write that failed so; cleared once messages are inserted there again, or once no write has
   * failed so for a while (see SpaceWatch). Synchronous: asked before seqs are assigned.
   * Optional: a store without it never refuses.
   */
  outOfSpace?(topic: TopicRecord): NerveBusError | undefined;

  /** Each file or database of the store and whether it is out of disk space (health, metrics). */
  spaceState?(): readonly SpaceState[];

  /**
   * Each MySQL server of the store and whether it refuses writes as read-only (health,
   * metrics). Optional: a store without servers (SQLite) has none.
   */
  readOnlyState?(): readonly ReadOnlyState[];

  /** Releases connections and the ownership lock. */
  close(): Promise<void>;

  /** Present when topics are spread over several databases (MySQL, several `--store` URLs). */
  readonly placement?: TopicPlacement;
}

/** Where topics live when a store spans several databases, and moving one. */
export interface TopicPlacement {
  /** Each database in `--store` order: its key, whether it is reachable, its topic count. */
  hosts(): Promise<HostInfo[]>;
  /**
   * Copies the topic (log, schedule, subscriptions and their state, dedup horizon) to the
   * database `host` names and switches it there without losing a confirmed message: its writes
   * wait while the tail is copied, the switch is one transaction, then they resume on the new
   * database. A crash before the switch leaves it where it was; running the move again finishes
   * it (and drops a copy a crash left behind). Throws NOT_FOUND for an unknown topic,
   * INVALID_ARGUMENT for an unknown host, UNAVAILABLE when either database is unreachable.
   * `tenure`: the claim of the topic the move is made under (TopicRecord.tenure); the move
   * switches the topic only if that claim held from its start to its seal.
   */
  moveTopic(name: string, host: string, tenure?: number): Promise<MoveReport>;
}

/** A database of a multi-database store. */
export interface HostInfo {
  /** `HOST:PORT/DATABASE`. */
  readonly key: string;
  readonly reachable: boolean;
  /** Topics placed on it (its load: new topics go to the reachable host with the fewest). */
  readonly topics: number;
}

/** What a move did. */
export interface MoveReport {
  readonly from: string;
  readonly to: string;
  /** False when the topic was already there (only a copy left by a crash was dropped). */
  readonly moved: boolean;
  /** Log runs or rows and schedule entries copied. */
  readonly rowsCopied: number;
}

/** A store's owner as the status page and stats show it. */
export interface OwnershipState {
  /** `lease`: a lease row with an epoch that every write proves (MySQL); `file-lock`: SQLite's. */
  readonly mechanism: "lease" | "file-lock";
  /** This broker's identity (host/pid/random). */
  readonly owner: string;
  /** The lease's fencing epoch (0 for a file lock). */
  readonly epoch: number;
  /** ms since the lease was last renewed (0 for a file lock). */
  readonly ageMs: number;
  /** Whether writes may start now. */
  readonly valid: boolean;
  /** Why ownership was lost, once it was. */
  readonly lost: string | undefined;
  /** `--cluster`: the topics whose lease this broker holds (in this database, in `databases`). */
  readonly topicsOwned?: number;
  /**
   * Several MySQL databases (`--store` with several URLs): each one's own, in `--store` order
   * (one out of reach fails only its own topics, so the status page shows which).
   */
  readonly databases?: readonly DatabaseOwnership[];
}

/** One database's ownership in a store over several (see OwnershipState.databases). */
export interface DatabaseOwnership extends Omit<OwnershipState, "databases"> {
  /** HOST:PORT/DATABASE, as placement rows and move-topic name it. */
  readonly key: string;
}

/** One file or database of a store and whether writes to it fail for lack of disk space. */
export interface SpaceState {
  /** The SQLite file, or HOST:PORT/DATABASE. */
  readonly place: string;
  readonly full: boolean;
  /** When writes started failing so (ms since epoch); 0 while not full. */
  readonly since: number;
  /** The last such failure, while full. */
  readonly error: string | undefined;
}

/**
 * Whose connections to a MySQL server: the store's (its databases and leases) or an outbox
 * relay's (--outbox: the application's database, which may be another server).
 */
export type ServerRole = "store" | "outbox";

/** A MySQL server and whether it refuses the broker's writes as read-only (see ServerPool). */
export interface ReadOnlyState {
  /** HOST:PORT as configured: never a URL's credentials. */
  readonly server: string;
  /** Whose writes it refuses: the store's, or an outbox relay's. */
  readonly role: ServerRole;
  /**
   * From a write refused as read-only until a write succeeds there again (the broker's
   * connections dial the server anew meanwhile, to reach a promoted primary).
   */
  readonly readOnly: boolean;
  /** When writes started being refused so (ms since epoch); 0 while not read-only. */
  readonly since: number;
  /** The last such refusal, while read-only. */
  readonly error: string | undefined;
}

/**
 * One state per server and role (databases on one server share its read-only state, and a
 * metric's labels must be unique): read-only if any of them saw it so, since the earliest.
 */
export function readOnlyPerServer(states: readonly ReadOnlyState[]): ReadOnlyState[] {
  const byServer = new Map<string, ReadOnlyState>();
  for (const s of states) {
    const key = `${s.role} ${s.server}`;
    const seen = byServer.get(key);
    if (seen === undefined || (s.readOnly && (!seen.readOnly || s.since < seen.since))) byServer.set(key, s);
  }
  return [...byServer.values()];
}

/** What differs between backends, in one place (see each store's constant). */
export interface StoreCapabilities {
  /** "none": the benchmark's no-store ceiling (bench/lib/null-store.ts), never a real store. */
  readonly kind: "sqlite" | "mysql" | "none";
  /** Rows per INSERT statement: below the server's packet limit with room for the SQL text. */
  readonly maxInsertRows: number;
  /** Bytes per INSERT statement. */
  readonly maxInsertBytes: number;
  /** Format 2: messages per INSERT (runs are one row each, so far more than maxInsertRows). */
  readonly maxRunMessages: number;
}
