/**
 * Span attribute names, in one place. They follow the OpenTelemetry messaging semantic
 * conventions; NerveBus's own are under `messaging.nervebus.`, message-level ones under
 * `messaging.nervebus.message.` (as `messaging.gcp_pubsub.message.*` are). The three clients
 * use the same names (docs/clients.md, "Tracing"); test/cross-language/check.py checks them
 * on the spans of the broker and of every client.
 */
export const ATTR = {
  system: "messaging.system",
  destination: "messaging.destination.name",
  subscription: "messaging.destination.subscription.name",
  consumerGroup: "messaging.consumer.group.name",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  batchCount: "messaging.batch.message_count",
  messageId: "messaging.message.id",
  bodySize: "messaging.message.body.size",
  seq: "messaging.nervebus.message.seq",
  deliveryAttempt: "messaging.nervebus.message.delivery_attempt",
  settlement: "messaging.nervebus.settlement",
  firstSeq: "messaging.nervebus.first_seq",
  lastSeq: "messaging.nervebus.last_seq",
  shard: "messaging.nervebus.shard",
  dbSystem: "db.system.name",
} as const;

/** The value of messaging.system. */
export const SYSTEM = "nervebus";
