import { create } from "@bufbuild/protobuf";
import { type Duration, durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type AdminService,
  ConsumerStatsSchema,
  SubscriptionSchema,
  SubscriptionStatsSchema,
  TopicSchema,
  TopicStatsSchema,
  type Subscription as WireSubscription,
  type Topic as WireTopic,
} from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { WindowSchema } from "../../clients/ts/src/gen/nervebus/v1/subscriber_pb.js";
import { EVERY_NAME, type NameScope } from "../auth/index.js";
import {
  type Broker,
  type Cluster,
  invalidArgument,
  type SubscriptionConfig,
  type SubscriptionRecord,
  type TopicConfig,
  type TopicRecord,
} from "../core/index.js";
import { type Caller, type CallGuard, guardedUnary, type Need, principalKey } from "./call-guard.js";
import { clusterAdminHandlers } from "./cluster-admin.js";
import { durationField } from "./duration-field.js";
import type { ServiceHandlers } from "./grpc-adapter.js";
import { listMessages, storedMessageToWire } from "./message-browse.js";
import { schemaToWire } from "./schema-wire.js";
import { toStartPosition } from "./start-position.js";
import { timestampField } from "./timestamp-field.js";

/**
 * The most a Duration (10 000 years) and a uint64 carry. A topic stored before retention and
 * retention_bytes were bounded may hold more, which answered every ListTopics INTERNAL: it is
 * answered as the most the field carries, so its topic can be found and updated.
 */
const WIRE_MAX_MS = 315_576_000_000_000;
const WIRE_MAX_UINT64 = 2n ** 64n - 1n;

function topicToWire(t: TopicRecord): WireTopic {
  const retentionBytes = BigInt(t.config.retentionBytes);
  return create(TopicSchema, {
    name: t.name,
    shards: t.shards,
    retention: durationFromMs(Math.min(t.config.retentionMs, WIRE_MAX_MS)),
    retentionBytes: retentionBytes > WIRE_MAX_UINT64 ? WIRE_MAX_UINT64 : retentionBytes,
    dedupWindow: durationFromMs(t.config.dedupWindowMs),
    ephemeral: t.config.ephemeral,
    createTime: timestampFromMs(t.createdAt),
  });
}

function subscriptionToWire(topic: string, s: SubscriptionRecord): WireSubscription {
  const c = s.config;
  return create(SubscriptionSchema, {
    topic,
    name: s.name,
    ackDeadline: durationFromMs(c.ackDeadlineMs),
    minBackoff: durationFromMs(c.minBackoffMs),
    maxBackoff: durationFromMs(c.maxBackoffMs),
    maxDeliveryAttempts: c.maxDeliveryAttempts,
    deadLetterTopic: c.deadLetterTopic,
    ordering: c.ordering,
    paused: c.paused,
    createTime: timestampFromMs(s.createdAt),
  });
}

function ms(field: string, d: Duration | undefined): number | undefined {
  if (d === undefined) return undefined;
  const v = durationField(field, d);
  if (v < 0) throw invalidArgument(field, "must not be negative");
  return v;
}

/**
 * The settings a create or an update applies, collected by `set`: on create (no mask) the fields
 * that are set; on update the fields the mask names, one left unset at its zero value (as
 * AIP-134 reads a mask; validation then judges it: an ack deadline of 0 is refused).
 */
function patchOf<T>(only: readonly string[] | undefined) {
  const patch: { -readonly [K in keyof T]?: T[K] } = {};
  const set = <K extends keyof T>(path: string, key: K, value: T[K] | undefined, zero: T[K]): void => {
    if (only === undefined ? value !== undefined : only.includes(path)) patch[key] = value ?? zero;
  };
  return { patch, set };
}

/** Topic settings present in a wire Topic (unset fields are left out). */
function topicPatch(t: WireTopic, only?: readonly string[]): Partial<TopicConfig> {
  const { patch, set } = patchOf<TopicConfig>(only);
  set("retention", "retentionMs", ms("topic.retention", t.retention), 0);
  set("retention_bytes", "retentionBytes", t.retentionBytes > 0n ? Number(t.retentionBytes) : undefined, 0);
  set("dedup_window", "dedupWindowMs", ms("topic.dedup_window", t.dedupWindow), 0);
  if (only === undefined) patch.ephemeral = t.ephemeral;
  return patch;
}

const TOPIC_MASK = ["retention", "retention_bytes", "dedup_window"];
const SUBSCRIPTION_MASK = [
  "ack_deadline",
  "min_backoff",
  "max_backoff",
  "max_delivery_attempts",
  "dead_letter_topic",
  "ordering",
];

function checkMask(paths: readonly string[] | undefined, allowed: readonly string[]): readonly string[] {
  if (paths === undefined || paths.length === 0)
    throw invalidArgument("update_mask", `name the fields to change: ${allowed.join(", ")}`);
  for (const p of paths) {
    if (!allowed.includes(p))
      throw invalidArgument(
        "update_mask",
        `${JSON.stringify(p)} cannot be changed; allowed: ${allowed.join(", ")}`,
      );
  }
  return paths;
}

/** Subscription settings present in a wire Subscription (unset fields are left out). */
function subscriptionPatch(s: WireSubscription, only?: readonly string[]): Partial<SubscriptionConfig> {
  const { patch, set } = patchOf<SubscriptionConfig>(only);
  set("ack_deadline", "ackDeadlineMs", ms("subscription.ack_deadline", s.ackDeadline), 0);
  set("min_backoff", "minBackoffMs", ms("subscription.min_backoff", s.minBackoff), 0);
  set("max_backoff", "maxBackoffMs", ms("subscription.max_backoff", s.maxBackoff), 0);
  const attempts = s.maxDeliveryAttempts;
  set("max_delivery_attempts", "maxDeliveryAttempts", attempts > 0 ? attempts : undefined, 0);
  set("dead_letter_topic", "deadLetterTopic", s.deadLetterTopic !== "" ? s.deadLetterTopic : undefined, "");
  set("ordering", "ordering", s.ordering ? true : undefined, false);
  return patch;
}

/** Admin right on a topic (and a subscription of it); EVERY_NAME: all its subscriptions. */
function admin(topic: string | undefined, subscription?: NameScope): Need {
  return { action: "admin", topic: topic ?? "", subscription };
}

/**
 * Dead-lettering writes into another topic: whoever points a subscription there must be
 * allowed to publish to it, or admin on one topic would be publish on any.
 */
function deadLetterNeeds(topic: string): Need[] {
  return topic === "" ? [] : [{ action: "publish", topic }];
}

/**
 * AdminService: translation between the wire and the broker's admin methods, each behind the
 * guard (admin right on the topic or subscription it touches; list and stats answers show only
 * what the caller may administer) and audited.
 */
export function adminHandlers(
  broker: Broker,
  guard: CallGuard,
  cluster?: Cluster,
): ServiceHandlers<(typeof AdminService)["method"]> {
  const handle = <Req, Res>(
    method: string,
    needs: (req: Req) => readonly Need[],
    run: (req: Req, caller: Caller) => Promise<Res>,
  ) => guardedUnary(guard, method, needs, run);
  /** CreateSubscription and UpdateSubscription: a subscription is required; the stored one answers. */
  const writeSubscription = async <T extends string>(
    $typeName: T,
    s: WireSubscription | undefined,
    write: (s: WireSubscription) => Promise<SubscriptionRecord>,
  ) => {
    if (s === undefined) throw invalidArgument("subscription", "is required");
    return { $typeName, subscription: subscriptionToWire(s.topic, await write(s)) };
  };
  /** PauseSubscription and ResumeSubscription: one setting written, the subscription answered. */
  const setPaused = <V extends "Pause" | "Resume">(verb: V) =>
    handle(
      `${verb}Subscription`,
      (req: { topic: string; name: string }) => [admin(req.topic, req.name)],
      async (req) => ({
        $typeName: `nervebus.v1.${verb}SubscriptionResponse` as const,
        subscription: subscriptionToWire(
          req.topic,
          await broker.updateSubscription(req.topic, req.name, { paused: verb === "Pause" }),
        ),
      }),
    );
  return {
    createTopic: handle(
      "CreateTopic",
      (req) => [admin(req.topic?.name, EVERY_NAME)],
      async (req, caller) => {
        if (req.topic === undefined) throw invalidArgument("topic", "is required");
        const t = req.topic;
        const shards = t.shards === 0 ? undefined : t.shards;
        const record = await broker.createTopic(t.name, shards, topicPatch(t), principalKey(caller));
        return { $typeName: "nervebus.v1.CreateTopicResponse", topic: topicToWire(record) };
      },
    ),
    getTopic: handle(
      "GetTopic",
      (req) => [admin(req.name)],
      async (req) => ({
        $typeName: "nervebus.v1.GetTopicResponse",
        topic: topicToWire(await broker.getTopic(req.name)),
      }),
    ),
    listTopics: handle(
      "ListTopics",
      () => [{ action: "admin" }],
      async (_req, caller) => ({
        $typeName: "nervebus.v1.ListTopicsResponse",
        topics: (await broker.listTopics()).filter((t) => guard.may(caller, admin(t.name))).map(topicToWire),
      }),
    ),
    updateTopic: handle(
      "UpdateTopic",
      (req) => [admin(req.topic?.name, EVERY_NAME)],
      async (req) => {
        if (req.topic === undefined) throw invalidArgument("topic", "is required");
        const paths = checkMask(req.updateMask?.paths, TOPIC_MASK);
        const record = await broker.updateTopic(req.topic.name, topicPatch(req.topic, paths));
        return { $typeName: "nervebus.v1.UpdateTopicResponse", topic: topicToWire(record) };
      },
    ),
    deleteTopic: handle(
      "DeleteTopic",
      (req) => [admin(req.name, EVERY_NAME)],
      async (req) => {
        await broker.deleteTopic(req.name);
        return { $typeName: "nervebus.v1.DeleteTopicResponse" };
      },
    ),
    createSubscription: handle(
      "CreateSubscription",
      (req) => [
        admin(req.subscription?.topic, req.subscription?.name ?? ""),
        ...deadLetterNeeds(req.subscription?.deadLetterTopic ?? ""),
      ],
      (req, caller) =>
        writeSubscription("nervebus.v1.CreateSubscriptionResponse", req.subscription, (s) => {
          const start = toStartPosition(req.start, "");
          return broker.createSubscription(
            s.topic,
            s.name,
            subscriptionPatch(s),
            start,
            principalKey(caller),
          );
        }),
    ),
    getSubscription: handle(
      "GetSubscription",
      (req) => [admin(req.topic, req.name)],
      async (req) => ({
        $typeName: "nervebus.v1.GetSubscriptionResponse",
        subscription: subscriptionToWire(
          req.topic,
          (await broker.getSubscription(req.topic, req.name)).record,
        ),
      }),
    ),
    listSubscriptions: handle(
      "ListSubscriptions",
      (req) => [admin(req.topic)],
      async (req, caller) => ({
        $typeName: "nervebus.v1.ListSubscriptionsResponse",
        subscriptions: (await broker.listSubscriptions(req.topic))
          .filter((s) => guard.may(caller, admin(req.topic, s.name)))
          .map((s) => subscriptionToWire(req.topic, s)),
      }),
    ),
    updateSubscription: handle(
      "UpdateSubscription",
      (req) => [
        admin(req.subscription?.topic, req.subscription?.name ?? ""),
        ...(req.updateMask?.paths.includes("dead_letter_topic")
          ? deadLetterNeeds(req.subscription?.deadLetterTopic ?? "")
          : []),
      ],
      (req) =>
        writeSubscription("nervebus.v1.UpdateSubscriptionResponse", req.subscription, (s) => {
          const paths = checkMask(req.updateMask?.paths, SUBSCRIPTION_MASK);
          return broker.updateSubscription(s.topic, s.name, subscriptionPatch(s, paths));
        }),
    ),
    deleteSubscription: handle(
      "DeleteSubscription",
      (req) => [admin(req.topic, req.name)],
      async (req) => {
        await broker.deleteSubscription(req.topic, req.name);
        return { $typeName: "nervebus.v1.DeleteSubscriptionResponse" };
      },
    ),
    pauseSubscription: setPaused("Pause"),
    resumeSubscription: setPaused("Resume"),
    purgeSubscription: handle(
      "PurgeSubscription",
      (req) => [admin(req.topic, req.name)],
      async (req) => ({
        $typeName: "nervebus.v1.PurgeSubscriptionResponse",
        floor: BigInt(await broker.purgeSubscription(req.topic, req.name)),
      }),
    ),
    seekSubscription: handle(
      "SeekSubscription",
      (req) => [admin(req.topic, req.name)],
      async (req) => {
        let target: { seq: number } | { time: number };
        if (req.target.case === "seq") target = { seq: Number(req.target.value) };
        else if (req.target.case === "time") target = { time: timestampField("time", req.target.value) };
        else throw invalidArgument("target", "give a seq or a time");
        return {
          $typeName: "nervebus.v1.SeekSubscriptionResponse",
          floor: BigInt(await broker.seekSubscription(req.topic, req.name, target)),
        };
      },
    ),
    // Browsing reads payloads, so it wants admin on the topic; deliveries show only the
    // subscriptions the caller may administer.
    listMessages: handle(
      "ListMessages",
      (req) => [admin(req.topic)],
      (req, caller) => listMessages(broker, req, (sub) => guard.may(caller, admin(req.topic, sub))),
    ),
    getMessage: handle(
      "GetMessage",
      (req) => [admin(req.topic)],
      async (req, caller) => {
        const m = await broker.getMessage(req.topic, Number(req.seq));
        const visible = (sub: string) => guard.may(caller, admin(req.topic, sub));
        const deliveries = await broker.deliveries(req.topic, [m.seq], visible);
        return {
          $typeName: "nervebus.v1.GetMessageResponse",
          message: storedMessageToWire(m, deliveries.get(m.seq) ?? []),
        };
      },
    ),
    // Setting a schema changes what may be published to every subscription's topic.
    setTopicSchema: handle(
      "SetTopicSchema",
      (req) => [admin(req.topic, EVERY_NAME)],
      async (req) => ({
        $typeName: "nervebus.v1.SetTopicSchemaResponse",
        schema: schemaToWire(
          await broker.setTopicSchema(req.topic, {
            messageType: req.schema?.messageType ?? "",
            descriptorSet: req.schema?.descriptorSet ?? new Uint8Array(),
          }),
        ),
      }),
    ),
    getTopicSchema: handle(
      "GetTopicSchema",
      (req) => [admin(req.topic)],
      async (req) => ({
        $typeName: "nervebus.v1.GetTopicSchemaResponse",
        schema: schemaToWire(await broker.getTopicSchema(req.topic)),
      }),
    ),
    getStats: handle(
      "GetStats",
      (req) => [admin(req.topic)],
      async (req, caller) => {
        const stats = await broker.stats(req.topic);
        const { topic } = stats;
        const subscriptions = stats.subscriptions.filter((s) => guard.may(caller, admin(req.topic, s.name)));
        return {
          $typeName: "nervebus.v1.GetStatsResponse",
          topic: create(TopicStatsSchema, {
            name: topic.name,
            lastSeq: BigInt(topic.lastSeq),
            firstSeq: BigInt(topic.firstSeq),
            publishRate: topic.publishRate,
            scheduled: BigInt(topic.scheduled),
            dedupIds: BigInt(topic.dedupIds),
            dropped: BigInt(topic.dropped),
            retentionDeleted: BigInt(topic.retentionDeleted),
          }),
          subscriptions: subscriptions.map((s) =>
            create(SubscriptionStatsSchema, {
              name: s.name,
              floor: BigInt(s.floor),
              backlog: BigInt(s.backlog),
              inFlight: BigInt(s.inFlight),
              waitingRedelivery: BigInt(s.waitingRedelivery),
              redelivered: BigInt(s.redelivered),
              deadLettered: BigInt(s.deadLettered),
              skipped: BigInt(s.skipped),
              oldestUnackedAge: durationFromMs(s.oldestUnackedAgeMs),
              deliveryRate: s.deliveryRate,
              ackRate: s.ackRate,
              stateEntries: BigInt(s.stateEntries),
              paused: s.paused,
              consumers: s.consumers.map((c) =>
                create(ConsumerStatsSchema, {
                  name: c.name,
                  inFlight: c.inFlight,
                  window: create(WindowSchema, {
                    maxMessages: c.window.maxMessages,
                    maxBytes: BigInt(c.window.maxBytes),
                  }),
                  connectTime: timestampFromMs(c.connectedAt),
                }),
              ),
            }),
          ),
        };
      },
    ),
    ...clusterAdminHandlers(guard, cluster),
    moveTopic: handle(
      "MoveTopic",
      (req) => [admin(req.topic)],
      async (req) => {
        const report = await broker.moveTopic(req.topic, req.toHost);
        return {
          $typeName: "nervebus.v1.MoveTopicResponse",
          fromHost: report.from,
          toHost: report.to,
          moved: report.moved,
          rowsCopied: BigInt(report.rowsCopied),
        };
      },
    ),
  };
}
