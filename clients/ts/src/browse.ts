import { create } from "@bufbuild/protobuf";
import { fromTimestamp, fromUint64, toTimestamp, toUint64 } from "./conversions.js";
import { NerveBusError, StatusCode } from "./errors.js";
import {
  type ListMessagesRequest,
  ListMessagesRequestSchema,
  type ListMessagesResponse,
  MessageDelivery_State,
  type StoredMessage as WireStoredMessage,
} from "./gen/nervebus/v1/admin_pb.js";

/** Filters of Admin.listMessages: every one given must match; none lists the topic from its start. */
export interface MessageQuery {
  /** First and last seq examined (default: the oldest retained, the last durable). Page on with nextSeq. */
  readonly fromSeq?: number;
  readonly toSeq?: number;
  /** Publish time bounds. */
  readonly since?: Date | number;
  readonly until?: Date | number;
  readonly orderingKey?: string;
  readonly messageId?: string;
  /** 32 hex digits, as a tracing dashboard shows it. */
  readonly traceId?: string;
  /** Each must be present with exactly this value. */
  readonly attributes?: Readonly<Record<string, string>>;
  /** Most messages returned, 1–1000 (default 100). */
  readonly pageSize?: number;
  /** Most messages one call examines, 1–100000 (default 10000). */
  readonly scanLimit?: number;
  /** Also return each message's state on each subscription. */
  readonly deliveries?: boolean;
}

/** Where a message stands on one subscription. */
export type DeliveryState =
  | "not_delivered"
  | "leased"
  | "waiting_redelivery"
  | "acked"
  | "held"
  | "dead_lettering"
  | "dead_lettered"
  | "unspecified";

/** What one subscription has done with a message (attempts of acked messages read 0). */
export interface MessageDelivery {
  readonly subscription: string;
  readonly state: DeliveryState;
  readonly attempts: number;
  /** leased: the consumer holding it. */
  readonly consumer: string;
  /** leased: when its lease ends. */
  readonly leaseDeadline: Date | undefined;
  /** waiting_redelivery: when it is delivered again. */
  readonly notBefore: Date | undefined;
  /** dead_lettered: the topic it was moved to ("": dropped, the subscription had none). */
  readonly deadLetterTopic: string;
}

/** A message as the topic's log holds it. */
export interface StoredMessage {
  readonly seq: number;
  readonly data: Uint8Array;
  readonly attributes: Readonly<Record<string, string>>;
  readonly orderingKey: string;
  readonly messageId: string;
  readonly publishTime: Date;
  readonly traceId: string;
  /** Its state on each subscription the caller may administer (when asked for). */
  readonly deliveries: readonly MessageDelivery[];
}

/** One page of Admin.listMessages: `nextSeq` is where to go on (as fromSeq), 0 when done. */
export interface MessagePage {
  readonly messages: readonly StoredMessage[];
  readonly nextSeq: number;
  readonly scannedThrough: number;
}

const STATES: Record<MessageDelivery_State, DeliveryState> = {
  [MessageDelivery_State.UNSPECIFIED]: "unspecified",
  [MessageDelivery_State.NOT_DELIVERED]: "not_delivered",
  [MessageDelivery_State.LEASED]: "leased",
  [MessageDelivery_State.WAITING_REDELIVERY]: "waiting_redelivery",
  [MessageDelivery_State.ACKED]: "acked",
  [MessageDelivery_State.HELD]: "held",
  [MessageDelivery_State.DEAD_LETTERING]: "dead_lettering",
  [MessageDelivery_State.DEAD_LETTERED]: "dead_lettered",
};

/** @internal The ListMessagesRequest of a query. */
export function listMessagesRequest(topic: string, q: MessageQuery): ListMessagesRequest {
  return create(ListMessagesRequestSchema, {
    topic,
    fromSeq: toUint64("fromSeq", q.fromSeq ?? 0),
    toSeq: toUint64("toSeq", q.toSeq ?? 0),
    fromTime: q.since === undefined ? undefined : toTimestamp("since", q.since),
    toTime: q.until === undefined ? undefined : toTimestamp("until", q.until),
    orderingKey: q.orderingKey ?? "",
    messageId: q.messageId ?? "",
    traceId: q.traceId ?? "",
    attributes: { ...q.attributes },
    pageSize: Number(toUint64("pageSize", q.pageSize ?? 0)),
    scanLimit: Number(toUint64("scanLimit", q.scanLimit ?? 0)),
    includeDeliveries: q.deliveries ?? false,
  });
}

/** @internal A StoredMessage from its wire form. */
export function storedMessage(m: WireStoredMessage | undefined): StoredMessage {
  const d = m?.message;
  if (m === undefined || d === undefined)
    throw new NerveBusError(StatusCode.INTERNAL, "the broker's answer has no message");
  return {
    seq: fromUint64(d.seq),
    data: d.data,
    attributes: d.attributes,
    orderingKey: d.orderingKey,
    messageId: d.messageId,
    publishTime: fromTimestamp(d.publishTime),
    traceId: d.traceId,
    deliveries: m.deliveries.map((x) => ({
      subscription: x.subscription,
      state: STATES[x.state] ?? "unspecified",
      attempts: x.attempts,
      consumer: x.consumer,
      leaseDeadline: x.leaseDeadline === undefined ? undefined : fromTimestamp(x.leaseDeadline),
      notBefore: x.notBefore === undefined ? undefined : fromTimestamp(x.notBefore),
      deadLetterTopic: x.deadLetterTopic,
    })),
  };
}

/** @internal A MessagePage from its wire form. */
export function messagePage(res: ListMessagesResponse): MessagePage {
  return {
    messages: res.messages.map(storedMessage),
    nextSeq: fromUint64(res.nextSeq),
    scannedThrough: fromUint64(res.scannedThrough),
  };
}
