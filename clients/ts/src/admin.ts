import { create, type DescMessage } from "@bufbuild/protobuf";
import { FieldMaskSchema, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  listMessagesRequest,
  type MessagePage,
  type MessageQuery,
  messagePage,
  type StoredMessage,
  storedMessage,
} from "./browse.js";
import {
  fromDuration,
  fromTimestamp,
  fromUint64,
  type StartPosition,
  toDuration,
  toTimestamp,
  toUint64,
  toWireStart,
} from "./conversions.js";
import { NerveBusError, StatusCode } from "./errors.js";
import {
  type AdminService,
  CreateSubscriptionRequestSchema,
  CreateTopicRequestSchema,
  DeleteSubscriptionRequestSchema,
  DeleteTopicRequestSchema,
  GetMessageRequestSchema,
  GetStatsRequestSchema,
  GetSubscriptionRequestSchema,
  GetTopicRequestSchema,
  GetTopicSchemaRequestSchema,
  ListSubscriptionsRequestSchema,
  ListTopicsRequestSchema,
  LocateTopicRequestSchema,
  PauseSubscriptionRequestSchema,
  PurgeSubscriptionRequestSchema,
  ResumeSubscriptionRequestSchema,
  SeekSubscriptionRequestSchema,
  SetTopicSchemaRequestSchema,
  SubscriptionSchema,
  TopicSchema,
  UpdateSubscriptionRequestSchema,
  UpdateTopicRequestSchema,
  type Subscription as WireSubscription,
  type SubscriptionStats as WireSubscriptionStats,
  type Topic as WireTopic,
} from "./gen/nervebus/v1/admin_pb.js";
import type { ServiceClient } from "./grpc-adapter.js";
import { descriptorSetOf, type TopicSchemaInfo } from "./typed.js";
import { type CallOptions, unaryCall } from "./unary-call.js";

/** A topic's settings as the broker reports them. */
export interface TopicInfo {
  readonly name: string;
  /** Shard tables of the topic's log (fixed at creation). */
  readonly shards: number;
  /** Messages older than this are deleted (ms; 0 keeps them). */
  readonly retentionMs: number;
  /** The oldest messages are deleted above about this many bytes (0: no limit). */
  readonly retentionBytes: number;
  /** A message id seen again within this window is not appended again (ms; 0: off). */
  readonly dedupWindowMs: number;
  /** Ephemeral topics store nothing and deliver only to connected consumers with room. */
  readonly ephemeral: boolean;
  readonly createTime: Date;
}

/** Settings of a topic that can change (updateTopic). Unset ones stay as they are. */
export interface TopicUpdate {
  /** Messages older than this are deleted (ms; 0 keeps them). */
  readonly retentionMs?: number;
  /** The oldest messages are deleted above about this many bytes (0: no limit). */
  readonly retentionBytes?: number;
  /** Dedup window for message ids (ms; 0: off). */
  readonly dedupWindowMs?: number;
}

/** Settings of a new topic (createTopic). Unset ones take the broker's defaults. */
export interface TopicOptions extends TopicUpdate {
  /** Shard tables of the log; default: the broker's --shards. */
  readonly shards?: number;
  /** Store nothing; deliver only to connected consumers with room. Default false. */
  readonly ephemeral?: boolean;
}

/** A subscription's settings as the broker reports them. */
export interface SubscriptionInfo {
  readonly topic: string;
  readonly name: string;
  /** Lease length of a delivered message (ms). */
  readonly ackDeadlineMs: number;
  /** Redelivery backoff bounds after a nack without delay or an expired lease (ms). */
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Deliveries before dead-lettering (0: unlimited). */
  readonly maxDeliveryAttempts: number;
  /** Where dead messages go ("" for none: they are dropped). */
  readonly deadLetterTopic: string;
  /** Messages with the same ordering key are delivered one at a time, in seq order. */
  readonly ordering: boolean;
  /** No deliveries while paused. */
  readonly paused: boolean;
  readonly createTime: Date;
}

/** Settings of a subscription that can change (updateSubscription). Unset ones stay as they are. */
export interface SubscriptionUpdate {
  /** Lease length (ms, 1 s – 10 min). */
  readonly ackDeadlineMs?: number;
  /** Redelivery backoff: min · 2^(attempt-1), capped at max, with jitter (ms). */
  readonly minBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Deliveries before dead-lettering (0: unlimited). */
  readonly maxDeliveryAttempts?: number;
  /** Where dead messages go ("" for none). */
  readonly deadLetterTopic?: string;
  /** Deliver messages with the same ordering key one at a time, in seq order. */
  readonly ordering?: boolean;
}

/** Settings of a new subscription (createSubscription). */
export interface SubscriptionOptions extends SubscriptionUpdate {
  /** Where it starts. Default "latest". */
  readonly start?: StartPosition;
}

/** Where seek() moves a subscription: a seq, or the first message published at or after a time. */
export type SeekTarget = { readonly seq: number } | { readonly time: Date | number };

/** A topic's figures. */
export interface TopicStats {
  readonly name: string;
  /** The last durable seq (also the number of messages ever appended). */
  readonly lastSeq: number;
  /** The oldest retained seq (0 when the log is empty). */
  readonly firstSeq: number;
  /** Messages appended per second over the last 10 s. */
  readonly publishRate: number;
  /** Delayed messages waiting for their time. */
  readonly scheduled: number;
  /** Message ids remembered for deduplication. */
  readonly dedupIds: number;
  /** Ephemeral topics: messages dropped because no consumer had room. */
  readonly dropped: number;
  /** Messages deleted by retention since the broker started. */
  readonly retentionDeleted: number;
}

/** One connected Receive stream. */
export interface ConsumerStats {
  readonly name: string;
  readonly inFlight: number;
  readonly window: { readonly maxMessages: number; readonly maxBytes: number };
  readonly connectTime: Date;
}

/** A subscription's figures. */
export interface SubscriptionStats {
  readonly name: string;
  /** Every seq up to here is acked. */
  readonly floor: number;
  /** Messages published and not acked. */
  readonly backlog: number;
  /** Messages leased to consumers now. */
  readonly inFlight: number;
  /** Messages waiting for redelivery (nacked or expired). */
  readonly waitingRedelivery: number;
  /** Redeliveries since the broker started. */
  readonly redelivered: number;
  /** Messages dead-lettered (or dropped after max attempts) since the broker started. */
  readonly deadLettered: number;
  /** Messages skipped because retention deleted them before they were acked. */
  readonly skipped: number;
  /** Age of the oldest unacked message (ms; 0 when none). */
  readonly oldestUnackedAgeMs: number;
  /** Deliveries and acks per second over the last 10 s. */
  readonly deliveryRate: number;
  readonly ackRate: number;
  readonly consumers: readonly ConsumerStats[];
  /** Entries of persisted state above the floor. */
  readonly stateEntries: number;
  readonly paused: boolean;
}

/** Figures for a topic and each of its subscriptions. */
export interface Stats {
  readonly topic: TopicStats;
  readonly subscriptions: readonly SubscriptionStats[];
}

type AdminClient = ServiceClient<(typeof AdminService)["method"]>;

function schemaInfo(
  s: { messageType: string; descriptorSet: Uint8Array; updateTime?: Timestamp } | undefined,
): TopicSchemaInfo {
  return {
    messageType: s?.messageType ?? "",
    descriptorSet: s?.descriptorSet ?? new Uint8Array(),
    updateTime: s?.updateTime === undefined ? undefined : fromTimestamp(s.updateTime),
  };
}

function topicInfo(t: WireTopic | undefined): TopicInfo {
  if (t === undefined) throw new NerveBusError(StatusCode.INTERNAL, "the broker's answer has no topic");
  return {
    name: t.name,
    shards: t.shards,
    retentionMs: fromDuration(t.retention),
    retentionBytes: fromUint64(t.retentionBytes),
    dedupWindowMs: fromDuration(t.dedupWindow),
    ephemeral: t.ephemeral,
    createTime: fromTimestamp(t.createTime),
  };
}

function subscriptionInfo(s: WireSubscription | undefined): SubscriptionInfo {
  if (s === undefined)
    throw new NerveBusError(StatusCode.INTERNAL, "the broker's answer has no subscription");
  return {
    topic: s.topic,
    name: s.name,
    ackDeadlineMs: fromDuration(s.ackDeadline),
    minBackoffMs: fromDuration(s.minBackoff),
    maxBackoffMs: fromDuration(s.maxBackoff),
    maxDeliveryAttempts: s.maxDeliveryAttempts,
    deadLetterTopic: s.deadLetterTopic,
    ordering: s.ordering,
    paused: s.paused,
    createTime: fromTimestamp(s.createTime),
  };
}

function subscriptionStats(s: WireSubscriptionStats): SubscriptionStats {
  return {
    name: s.name,
    floor: fromUint64(s.floor),
    backlog: fromUint64(s.backlog),
    inFlight: fromUint64(s.inFlight),
    waitingRedelivery: fromUint64(s.waitingRedelivery),
    redelivered: fromUint64(s.redelivered),
    deadLettered: fromUint64(s.deadLettered),
    skipped: fromUint64(s.skipped),
    oldestUnackedAgeMs: fromDuration(s.oldestUnackedAge),
    deliveryRate: s.deliveryRate,
    ackRate: s.ackRate,
    consumers: s.consumers.map((c) => ({
      name: c.name,
      inFlight: c.inFlight,
      window: { maxMessages: c.window?.maxMessages ?? 0, maxBytes: fromUint64(c.window?.maxBytes ?? 0n) },
      connectTime: fromTimestamp(c.connectTime),
    })),
    stateEntries: fromUint64(s.stateEntries),
    paused: s.paused,
  };
}

/** The topic wire message and update-mask paths for the settings given. */
function topicFields(name: string, o: TopicOptions): { topic: WireTopic; paths: string[] } {
  const paths: string[] = [];
  if (o.retentionMs !== undefined) paths.push("retention");
  if (o.retentionBytes !== undefined) paths.push("retention_bytes");
  if (o.dedupWindowMs !== undefined) paths.push("dedup_window");
  const topic = create(TopicSchema, {
    name,
    shards: o.shards ?? 0,
    retention: toDuration("retentionMs", o.retentionMs),
    retentionBytes: toUint64("retentionBytes", o.retentionBytes ?? 0),
    dedupWindow: toDuration("dedupWindowMs", o.dedupWindowMs),
    ephemeral: o.ephemeral ?? false,
  });
  return { topic, paths };
}

/** The subscription wire message and update-mask paths for the settings given. */
function subscriptionFields(
  topic: string,
  name: string,
  o: SubscriptionUpdate,
): { subscription: WireSubscription; paths: string[] } {
  const paths: string[] = [];
  if (o.ackDeadlineMs !== undefined) paths.push("ack_deadline");
  if (o.minBackoffMs !== undefined) paths.push("min_backoff");
  if (o.maxBackoffMs !== undefined) paths.push("max_backoff");
  if (o.maxDeliveryAttempts !== undefined) paths.push("max_delivery_attempts");
  if (o.deadLetterTopic !== undefined) paths.push("dead_letter_topic");
  if (o.ordering !== undefined) paths.push("ordering");
  const subscription = create(SubscriptionSchema, {
    topic,
    name,
    ackDeadline: toDuration("ackDeadlineMs", o.ackDeadlineMs),
    minBackoff: toDuration("minBackoffMs", o.minBackoffMs),
    maxBackoff: toDuration("maxBackoffMs", o.maxBackoffMs),
    maxDeliveryAttempts: o.maxDeliveryAttempts ?? 0,
    deadLetterTopic: o.deadLetterTopic ?? "",
    ordering: o.ordering ?? false,
  });
  return { subscription, paths };
}

/**
 * Promise wrappers for every AdminService RPC, with plain option objects (durations in ms,
 * times as Date, counters as numbers). Each method takes optional CallOptions last (signal,
 * timeoutMs; the default timeout is the client's adminTimeoutMs). Failures reject with a
 * NerveBusError: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION …
 */
export class Admin {
  readonly #client: AdminClient;
  readonly #timeoutMs: number;

  /** @internal Use NerveBusClient.admin. */
  constructor(client: AdminClient, timeoutMs: number) {
    this.#client = client;
    this.#timeoutMs = timeoutMs;
  }

  #opts(o: CallOptions | undefined): CallOptions {
    return { timeoutMs: o?.timeoutMs ?? this.#timeoutMs, signal: o?.signal };
  }

  /** Creates a topic; ALREADY_EXISTS when it exists. Returns it with defaults filled in. */
  async createTopic(name: string, options: TopicOptions = {}, call?: CallOptions): Promise<TopicInfo> {
    const { topic } = topicFields(name, options);
    const res = await unaryCall(
      this.#client,
      this.#client.createTopic,
      create(CreateTopicRequestSchema, { topic }),
      this.#opts(call),
    );
    return topicInfo(res.topic);
  }

  /** A topic's settings; NOT_FOUND when it does not exist. */
  async getTopic(name: string, call?: CallOptions): Promise<TopicInfo> {
    const res = await unaryCall(
      this.#client,
      this.#client.getTopic,
      create(GetTopicRequestSchema, { name }),
      this.#opts(call),
    );
    return topicInfo(res.topic);
  }

  /** All topics, by name. */
  async listTopics(call?: CallOptions): Promise<TopicInfo[]> {
    const res = await unaryCall(
      this.#client,
      this.#client.listTopics,
      create(ListTopicsRequestSchema),
      this.#opts(call),
    );
    return res.topics.map(topicInfo);
  }

  /** Changes the settings given (retention, size limit, dedup window); returns the topic. */
  async updateTopic(name: string, update: TopicUpdate, call?: CallOptions): Promise<TopicInfo> {
    const { topic, paths } = topicFields(name, update);
    const res = await unaryCall(
      this.#client,
      this.#client.updateTopic,
      create(UpdateTopicRequestSchema, { topic, updateMask: create(FieldMaskSchema, { paths }) }),
      this.#opts(call),
    );
    return topicInfo(res.topic);
  }

  /** Deletes a topic with its messages and subscriptions; connected streams end with NOT_FOUND. */
  async deleteTopic(name: string, call?: CallOptions): Promise<void> {
    await unaryCall(
      this.#client,
      this.#client.deleteTopic,
      create(DeleteTopicRequestSchema, { name }),
      this.#opts(call),
    );
  }

  /** Creates a subscription; ALREADY_EXISTS when it exists. */
  async createSubscription(
    topic: string,
    name: string,
    options: SubscriptionOptions = {},
    call?: CallOptions,
  ): Promise<SubscriptionInfo> {
    const { subscription } = subscriptionFields(topic, name, options);
    const res = await unaryCall(
      this.#client,
      this.#client.createSubscription,
      create(CreateSubscriptionRequestSchema, { subscription, start: toWireStart("start", options.start) }),
      this.#opts(call),
    );
    return subscriptionInfo(res.subscription);
  }

  /** A subscription's settings; NOT_FOUND when it does not exist. */
  async getSubscription(topic: string, name: string, call?: CallOptions): Promise<SubscriptionInfo> {
    const res = await unaryCall(
      this.#client,
      this.#client.getSubscription,
      create(GetSubscriptionRequestSchema, { topic, name }),
      this.#opts(call),
    );
    return subscriptionInfo(res.subscription);
  }

  /** A topic's subscriptions, by name. */
  async listSubscriptions(topic: string, call?: CallOptions): Promise<SubscriptionInfo[]> {
    const res = await unaryCall(
      this.#client,
      this.#client.listSubscriptions,
      create(ListSubscriptionsRequestSchema, { topic }),
      this.#opts(call),
    );
    return res.subscriptions.map(subscriptionInfo);
  }

  /** Changes the settings given; returns the subscription. */
  async updateSubscription(
    topic: string,
    name: string,
    update: SubscriptionUpdate,
    call?: CallOptions,
  ): Promise<SubscriptionInfo> {
    const { subscription, paths } = subscriptionFields(topic, name, update);
    const res = await unaryCall(
      this.#client,
      this.#client.updateSubscription,
      create(UpdateSubscriptionRequestSchema, {
        subscription,
        updateMask: create(FieldMaskSchema, { paths }),
      }),
      this.#opts(call),
    );
    return subscriptionInfo(res.subscription);
  }

  /** Deletes a subscription and its state; connected streams end with NOT_FOUND. */
  async deleteSubscription(topic: string, name: string, call?: CallOptions): Promise<void> {
    await unaryCall(
      this.#client,
      this.#client.deleteSubscription,
      create(DeleteSubscriptionRequestSchema, { topic, name }),
      this.#opts(call),
    );
  }

  /** Stops deliveries on a subscription (messages keep arriving and wait). */
  async pause(topic: string, name: string, call?: CallOptions): Promise<SubscriptionInfo> {
    const res = await unaryCall(
      this.#client,
      this.#client.pauseSubscription,
      create(PauseSubscriptionRequestSchema, { topic, name }),
      this.#opts(call),
    );
    return subscriptionInfo(res.subscription);
  }

  /** Restarts deliveries on a paused subscription. */
  async resume(topic: string, name: string, call?: CallOptions): Promise<SubscriptionInfo> {
    const res = await unaryCall(
      this.#client,
      this.#client.resumeSubscription,
      create(ResumeSubscriptionRequestSchema, { topic, name }),
      this.#opts(call),
    );
    return subscriptionInfo(res.subscription);
  }

  /** Acks every message published so far; returns the new floor (every seq up to it is acked). */
  async purge(topic: string, name: string, call?: CallOptions): Promise<number> {
    const res = await unaryCall(
      this.#client,
      this.#client.purgeSubscription,
      create(PurgeSubscriptionRequestSchema, { topic, name }),
      this.#opts(call),
    );
    return fromUint64(res.floor);
  }

  /**
   * Moves the subscription so the next first delivery is the given seq, or the first message
   * published at or after the given time; seeking back makes acked messages deliverable again.
   * Returns the new floor (the next first delivery is floor + 1).
   */
  async seek(topic: string, name: string, target: SeekTarget, call?: CallOptions): Promise<number> {
    const wireTarget =
      "seq" in target
        ? { case: "seq" as const, value: toUint64("target.seq", target.seq) }
        : { case: "time" as const, value: toTimestamp("target.time", target.time) };
    const res = await unaryCall(
      this.#client,
      this.#client.seekSubscription,
      create(SeekSubscriptionRequestSchema, { topic, name, target: wireTarget }),
      this.#opts(call),
    );
    return fromUint64(res.floor);
  }

  /**
   * Searches a topic's stored messages without consuming them. One call examines at most
   * `scanLimit` messages and returns at most `pageSize`; page on with `fromSeq: page.nextSeq`.
   * INVALID_ARGUMENT for bounds over their maximum or a bad trace id, NOT_FOUND for a missing
   * topic, FAILED_PRECONDITION for an ephemeral one.
   */
  async listMessages(topic: string, query: MessageQuery = {}, call?: CallOptions): Promise<MessagePage> {
    const res = await unaryCall(
      this.#client,
      this.#client.listMessages,
      listMessagesRequest(topic, query),
      this.#opts(call),
    );
    return messagePage(res);
  }

  /** The stored message at `seq` with its state on each subscription; NOT_FOUND when gone. */
  async getMessage(topic: string, seq: number, call?: CallOptions): Promise<StoredMessage> {
    const res = await unaryCall(
      this.#client,
      this.#client.getMessage,
      create(GetMessageRequestSchema, { topic, seq: toUint64("seq", seq) }),
      this.#opts(call),
    );
    return storedMessage(res.message);
  }

  /**
   * Makes a topic typed: its payloads must parse as `schema`, a generated message of yours (the
   * descriptor set is built from it); null makes it untyped again. INVALID_ARGUMENT when the
   * broker cannot use the descriptor set.
   */
  async setTopicSchema(
    topic: string,
    schema: DescMessage | null,
    call?: CallOptions,
  ): Promise<TopicSchemaInfo> {
    const res = await unaryCall(
      this.#client,
      this.#client.setTopicSchema,
      create(SetTopicSchemaRequestSchema, {
        topic,
        schema:
          schema === null ? {} : { messageType: schema.typeName, descriptorSet: descriptorSetOf(schema) },
      }),
      this.#opts(call),
    );
    return schemaInfo(res.schema);
  }

  /** A topic's message type (`messageType` empty when untyped). */
  async getTopicSchema(topic: string, call?: CallOptions): Promise<TopicSchemaInfo> {
    const res = await unaryCall(
      this.#client,
      this.#client.getTopicSchema,
      create(GetTopicSchemaRequestSchema, { topic }),
      this.#opts(call),
    );
    return schemaInfo(res.schema);
  }

  /**
   * HOST:PORT of the broker that serves `topic` when several share a database (`--cluster`),
   * or "" when it is the broker called (always so without --cluster).
   */
  async locateTopic(topic: string, call?: CallOptions): Promise<string> {
    const res = await unaryCall(
      this.#client,
      this.#client.locateTopic,
      create(LocateTopicRequestSchema, { topic }),
      this.#opts(call),
    );
    return res.address;
  }

  /** Figures for a topic and each of its subscriptions. */
  async stats(topic: string, call?: CallOptions): Promise<Stats> {
    const res = await unaryCall(
      this.#client,
      this.#client.getStats,
      create(GetStatsRequestSchema, { topic }),
      this.#opts(call),
    );
    const t = res.topic;
    return {
      topic: {
        name: t?.name ?? topic,
        lastSeq: fromUint64(t?.lastSeq ?? 0n),
        firstSeq: fromUint64(t?.firstSeq ?? 0n),
        publishRate: t?.publishRate ?? 0,
        scheduled: fromUint64(t?.scheduled ?? 0n),
        dedupIds: fromUint64(t?.dedupIds ?? 0n),
        dropped: fromUint64(t?.dropped ?? 0n),
        retentionDeleted: fromUint64(t?.retentionDeleted ?? 0n),
      },
      subscriptions: res.subscriptions.map(subscriptionStats),
    };
  }
}
