import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type ListMessagesRequest,
  type ListMessagesResponse,
  MessageDelivery_State,
  MessageDeliverySchema,
  type StoredMessage,
  StoredMessageSchema,
} from "../../clients/ts/src/gen/nervebus/v1/admin_pb.js";
import { DeliverySchema } from "../../clients/ts/src/gen/nervebus/v1/message_pb.js";
import type { Broker, DeliveryState, LogMessage, MessageQuery } from "../core/index.js";
import { timestampField } from "./timestamp-field.js";

/** A request's filters as the core's query (empty strings and unset times mean "any"). */
export function queryFromWire(req: ListMessagesRequest): MessageQuery {
  const text = (v: string) => (v === "" ? undefined : v);
  return {
    fromSeq: Number(req.fromSeq),
    toSeq: Number(req.toSeq),
    fromTime: req.fromTime === undefined ? undefined : timestampField("from_time", req.fromTime),
    toTime: req.toTime === undefined ? undefined : timestampField("to_time", req.toTime),
    orderingKey: text(req.orderingKey),
    messageId: text(req.messageId),
    // Dashboards show trace ids in either case; the log stores them lowercase.
    traceId: text(req.traceId.toLowerCase()),
    attributes: req.attributes,
    pageSize: req.pageSize,
    scanLimit: req.scanLimit,
  };
}

const STATES: Record<DeliveryState["state"], MessageDelivery_State> = {
  not_delivered: MessageDelivery_State.NOT_DELIVERED,
  leased: MessageDelivery_State.LEASED,
  waiting_redelivery: MessageDelivery_State.WAITING_REDELIVERY,
  acked: MessageDelivery_State.ACKED,
  held: MessageDelivery_State.HELD,
  dead_lettering: MessageDelivery_State.DEAD_LETTERING,
  dead_lettered: MessageDelivery_State.DEAD_LETTERED,
};

/** A logged message (attempt 0: nothing is delivered) and its deliveries, as the wire has them. */
export function storedMessageToWire(
  m: LogMessage,
  deliveries: readonly (DeliveryState & { subscription: string })[],
): StoredMessage {
  return create(StoredMessageSchema, {
    message: create(DeliverySchema, {
      seq: BigInt(m.seq),
      data: m.data,
      attributes: m.attributes,
      orderingKey: m.orderingKey,
      messageId: m.messageId,
      publishTime: timestampFromMs(m.publishTime),
      attempt: 0,
      traceId: m.traceId,
    }),
    deliveries: deliveries.map((d) =>
      create(MessageDeliverySchema, {
        subscription: d.subscription,
        state: STATES[d.state],
        attempts: d.attempts,
        consumer: d.consumer,
        leaseDeadline: d.leaseDeadline > 0 ? timestampFromMs(d.leaseDeadline) : undefined,
        notBefore: d.notBefore > 0 ? timestampFromMs(d.notBefore) : undefined,
        deadLetterTopic: d.deadLetterTopic,
      }),
    ),
  });
}

/** ListMessages: one page of the search, with deliveries when asked for. */
export async function listMessages(
  broker: Broker,
  req: ListMessagesRequest,
  visible: (subscription: string) => boolean,
): Promise<ListMessagesResponse> {
  const page = await broker.browseMessages(req.topic, queryFromWire(req));
  const seqs = page.messages.map((m) => m.seq);
  const deliveries = req.includeDeliveries ? await broker.deliveries(req.topic, seqs, visible) : undefined;
  return {
    $typeName: "nervebus.v1.ListMessagesResponse",
    messages: page.messages.map((m) => storedMessageToWire(m, deliveries?.get(m.seq) ?? [])),
    nextSeq: BigInt(page.nextSeq),
    scannedThrough: BigInt(page.scannedThrough),
  };
}
