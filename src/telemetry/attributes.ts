/**
 * Span and metric attribute names, in one place. Names follow the OpenTelemetry messaging
 * semantic conventions where they exist; the rest are under `nervebus.`.
 */
export const ATTR = {
  system: "messaging.system",
  destination: "messaging.destination.name",
  operationType: "messaging.operation.type",
  operationName: "messaging.operation.name",
  batchCount: "messaging.batch.message_count",
  messageId: "messaging.message.id",
  consumerGroup: "messaging.consumer.group.name",
  bodySize: "messaging.message.body.size",
  deliveryAttempt: "nervebus.delivery.attempt",
  seq: "nervebus.seq",
  firstSeq: "nervebus.first_seq",
  lastSeq: "nervebus.last_seq",
  shard: "nervebus.shard",
  settleOutcome: "nervebus.settle.outcome",
  dbSystem: "db.system.name",
  rows: "nervebus.rows",
} as const;

/** The value of messaging.system. */
export const SYSTEM = "nervebus";
