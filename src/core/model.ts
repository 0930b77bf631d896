import {
  decodeMeta,
  deliveryMeta,
  encodeMeta,
  type IndexedRun,
  type MetaFields,
  metaContentBytes,
  type Priority,
  recordOf,
  traceIdOf,
} from "../wire/index.js";

export type { Priority };

/**
 * Domain types shared by the core and the stores. No protobuf types here: the API layer
 * translates wire messages into these.
 */

/** A message as a producer hands it to the broker, already validated. */
export interface NewMessage {
  readonly data: Uint8Array;
  readonly attributes: Record<string, string>;
  readonly orderingKey: string;
  readonly messageId: string;
  /** Deliver no earlier than this (ms since epoch); 0 for now. */
  readonly deliverAt: number;
  /** Undefined means normal. */
  readonly priority?: Priority;
}

/**
 * A message in a topic's log. Its metadata stays in the stored wire form (see src/wire/message-meta.ts): the
 * delivery path copies those bytes as they are, and the fields are decoded only when something
 * asks for them (ordering, dead-lettering, tracing, the admin API).
 */
export class LogMessage {
  #fields: MetaFields | undefined;
  #bytes: number;
  /**
   * Format 2: the message's stored record (its Delivery without attempt, a view into the run's
   * body), once it has one; a delivery copies it as it is.
   */
  record: Buffer | undefined;

  constructor(
    readonly seq: number,
    /** Append time, ms since epoch. */
    readonly publishTime: number,
    /** The payload (replaced by an identical view by adoptRecord). */
    public data: Uint8Array,
    /** Stored metadata (message-meta.ts format, or JSON in rows of older versions). */
    readonly meta: Buffer,
    /** Its size as messageBytes counts it, when the caller knows it already. */
    bytes = -1,
  ) {
    this.#bytes = bytes;
  }

  /** A message from its fields (tests, tools): encodes the metadata. */
  static of(
    seq: number,
    publishTime: number,
    data: Uint8Array,
    fields: {
      attributes: Record<string, string>;
      orderingKey: string;
      messageId: string;
      scheduleId?: number;
      priority?: Priority;
    },
  ): LogMessage {
    return new LogMessage(
      seq,
      publishTime,
      data,
      encodeMeta(fields, traceIdOf(fields.attributes.traceparent) ?? "", fields.scheduleId),
    );
  }

  #decoded(): MetaFields {
    if (this.#fields === undefined) this.#fields = decodeMeta(this.meta);
    return this.#fields;
  }

  get attributes(): Record<string, string> {
    return this.#decoded().attributes;
  }

  get orderingKey(): string {
    return this.#decoded().orderingKey;
  }

  get messageId(): string {
    return this.#decoded().messageId;
  }

  get priority(): Priority {
    return this.#decoded().priority;
  }

  /** Hex trace id of its traceparent, "" for none. */
  get traceId(): string {
    return this.#decoded().traceId;
  }

  /** For a delayed message: its schedule entry's id (internal; used to move it exactly once). */
  get scheduleId(): number | undefined {
    return this.#decoded().scheduleId;
  }

  /** Payload plus metadata bytes, as messageBytes counts them. */
  get bytes(): number {
    if (this.#bytes < 0) this.#bytes = this.data.byteLength + metaContentBytes(this.meta);
    return this.#bytes;
  }

  /**
   * Takes the record the run body holds for this message, and that body's copy of the payload
   * (so the request buffer it came in can go).
   */
  adoptRecord(record: Buffer, data: Buffer): void {
    this.record = record;
    this.data = data;
  }

  /** The metadata as Delivery fields, to copy into a delivery as it is. */
  get deliveryMeta(): Buffer {
    return deliveryMeta(this.meta);
  }
}

/** The ids of a logged message, for rebuilding the deduplication index. */
export interface LoggedIds {
  readonly seq: number;
  readonly publishTime: number;
  readonly messageId: string;
  readonly scheduleId: number | undefined;
}

/** A delayed message waiting in a topic's schedule. */
export interface ScheduledMessage {
  readonly id: number;
  readonly dueAt: number;
  readonly message: NewMessage;
}

/** Message `seq` of a run, decoded now (its record kept, so a delivery copies it). */
export function messageOfRun(run: IndexedRun, seq: number): LogMessage {
  const r = recordOf(run, seq);
  const m = new LogMessage(r.seq, r.publishTime, r.data, r.meta);
  m.record = r.record;
  return m;
}

/**
 * A message's size in bytes as limits and windows count it: payload plus the UTF-8 bytes of
 * attribute keys and values, ordering key and message id.
 */
export function messageBytes(m: {
  data: Uint8Array;
  attributes: Record<string, string>;
  orderingKey: string;
  messageId: string;
}): number {
  let n = m.data.byteLength + Buffer.byteLength(m.orderingKey) + Buffer.byteLength(m.messageId);
  for (const k in m.attributes) n += Buffer.byteLength(k) + Buffer.byteLength(m.attributes[k] ?? "");
  return n;
}

/** Where a new subscription starts. */
export type StartPosition =
  | { readonly kind: "earliest" }
  | { readonly kind: "latest" }
  | { readonly kind: "seq"; readonly seq: number }
  | { readonly kind: "time"; readonly time: number };

/** A topic's changeable settings. */
export interface TopicConfig {
  /** Delete messages older than this; 0 keeps them. */
  readonly retentionMs: number;
  /** Delete the oldest messages while the log is larger than this (approximate); 0: no limit. */
  readonly retentionBytes: number;
  /** Remember message ids this long; 0 disables deduplication. */
  readonly dedupWindowMs: number;
  /** Never stored: delivered to connected consumers with room, dropped otherwise. */
  readonly ephemeral: boolean;
  /** Who made it (a principal, or a client address without auth), for per-creator limits. */
  readonly createdBy?: string;
}

/** A subscription's settings. */
export interface SubscriptionConfig {
  readonly ackDeadlineMs: number;
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  /** 0 for unlimited. */
  readonly maxDeliveryAttempts: number;
  /** Empty for none. */
  readonly deadLetterTopic: string;
  readonly ordering: boolean;
  readonly paused: boolean;
  /** Who made it (a principal, or a client address without auth), for per-creator limits. */
  readonly createdBy?: string;
}

/**
 * How a topic's log is stored: 1, a row per message (topics made before format 2); 2, a row
 * per run of consecutive messages (DESIGN §3a). New topics are format 2.
 */
export type LogFormat = 1 | 2;

/** A topic as the catalog stores it. Table names derive from `id`, never from `name`. */
export interface TopicRecord {
  readonly id: number;
  readonly name: string;
  readonly shards: number;
  readonly format: LogFormat;
  readonly createdAt: number;
  readonly config: TopicConfig;
  /**
   * Which claim of the topic by this broker the record's writes belong to, when the store is
   * shared by several brokers (set by Store.claimTopic). A write of an ended claim is refused
   * even once this broker has claimed the topic again: what it carries (a subscription's acks,
   * a run at seqs it assigned) is older than what the owners in between wrote. Undefined: the
   * claim this broker holds when the write starts (catalog calls that begin and end at once).
   */
  readonly tenure?: number;
}

/** `topic` as the calls of the claim `tenure` carry it (see TopicRecord.tenure). */
export function withTenure(topic: TopicRecord, tenure: number | undefined): TopicRecord {
  if (tenure === topic.tenure) return topic;
  const { tenure: _, ...rest } = topic;
  return tenure === undefined ? rest : { ...rest, tenure };
}

/** A subscription as the catalog stores it. */
export interface SubscriptionRecord {
  readonly topicId: number;
  readonly name: string;
  readonly createdAt: number;
  readonly config: SubscriptionConfig;
}

/**
 * A persisted pointer: `ptr` plus an opaque state blob. The subscription "" of a topic is its
 * writer watermark; any other is a subscription's floor and state.
 */
export interface PointerRecord {
  readonly subscription: string;
  readonly ptr: number;
  readonly state: Uint8Array | null;
  /**
   * Subscriptions: which seqs were dead-lettered, and where (see DeadLetterLog). Saving without
   * it leaves the stored one as it is; it is rewritten only when it changed.
   */
  readonly deadLetters?: Uint8Array;
}
