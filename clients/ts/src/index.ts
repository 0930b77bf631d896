/**
 * @nervebus/client: the TypeScript client of the NerveBus broker — a batching publisher, a
 * subscriber with flow-control windows, lease extension, acks and reconnects, an async-iterator
 * consumer, admin wrappers, and OpenTelemetry tracing.
 */

export {
  Admin,
  type ConsumerStats,
  type SeekTarget,
  type Stats,
  type SubscriptionInfo,
  type SubscriptionOptions,
  type SubscriptionStats,
  type SubscriptionUpdate,
  type TopicInfo,
  type TopicOptions,
  type TopicStats,
  type TopicUpdate,
} from "./admin.js";
export type { BackoffOptions } from "./backoff.js";
export type {
  DeliveryState,
  MessageDelivery,
  MessagePage,
  MessageQuery,
  StoredMessage,
} from "./browse.js";
export { type ClientOptions, DEFAULT_CHANNEL_OPTIONS, NerveBusClient } from "./client.js";
export type { StartPosition } from "./conversions.js";
export type { TlsOptions, TokenSource } from "./credentials.js";
export { DEFAULT_RETRYABLE_CODES, NerveBusError, StatusCode } from "./errors.js";
export { MessageStream, type MessageStreamOptions, traceContext } from "./message-stream.js";
export {
  OUTBOX_INSERT_SQL,
  OUTBOX_LOCK_KEY_SQL,
  type OutboxConnection,
  type OutboxMessage,
  writeOutbox,
} from "./outbox.js";
export {
  type MessagePriority,
  PUBLISHER_DEFAULTS,
  Publisher,
  type PublisherOptions,
  type PublishMessage,
  type PublishOptions,
  type PublishOutcome,
  type PublishResult,
  type RetryOptions,
} from "./publisher.js";
export { ReceivedMessage, type Settlement } from "./received-message.js";
export { DEFAULT_RECONNECT_CODES, RECEIVE_DEFAULTS, type ReceiveOptions } from "./receiver.js";
export { StreamPublisher, type StreamPublisherOptions } from "./stream-publisher.js";
export {
  type MessageHandler,
  SUBSCRIBER_DEFAULTS,
  Subscriber,
  type SubscriberOptions,
} from "./subscriber.js";
export { SpanAttributes, TRACER_NAME } from "./tracing.js";
export { descriptorSetOf, type TopicSchemaInfo, TypedPublisher, typedHandler } from "./typed.js";
export type { CallOptions } from "./unary-call.js";
