/** The core: topics, the write pipeline, subscriptions. No protobuf, no driver types. */
export { AckRanges } from "./ack-ranges.js";
export { answerBy } from "./answer-by.js";
export { backoffDelay, sleep } from "./backoff.js";
export { type Attachment, Broker, type BrokerOptions, type SubscribeOptions } from "./broker.js";
export { monotonicNow } from "./clock.js";
export {
  type Cluster,
  type ClusterHooks,
  type ClusterMember,
  type ClusterView,
  NotOwnerError,
  type OwnedTopic,
} from "./cluster.js";
export { CommitTracker } from "./commit-tracker.js";
export { Consumer, type ConsumerSink, type Delivered, type Delivery, type Window } from "./consumer.js";
export type { DeadLetterForwarder } from "./dead-letter.js";
export {
  asNerveBusError,
  CorruptRowsError,
  corruptRows,
  type ErrorCode,
  invalidArgument,
  NerveBusError,
  OutOfSpaceError,
  storeOutOfSpace,
} from "./errors.js";
export {
  ACK_DEADLINE_MS,
  BACKOFF_MS,
  checkAckDeadline,
  checkDelay,
  checkPack,
  DEDUP_WINDOW_MS,
  DELIVERY_ATTEMPTS,
  type PublishLimits,
  packsWithin,
  RESERVED_ATTRIBUTE_PREFIX,
  RETENTION_BYTES,
  RETENTION_MS,
  SHARDS,
  validateName,
} from "./limits.js";
export type { MessagePage, MessageQuery } from "./message-browser.js";
export {
  type LogFormat,
  type LoggedIds,
  LogMessage,
  messageBytes,
  type NewMessage,
  type PointerRecord,
  type Priority,
  type ScheduledMessage,
  type StartPosition,
  type SubscriptionConfig,
  type SubscriptionRecord,
  type TopicConfig,
  type TopicRecord,
  withTenure,
} from "./model.js";
export {
  type BrokerObserver,
  type LogFn,
  NO_OBSERVER,
  type Settled,
  type SettleOutcome,
} from "./observer.js";
export { OUTAGE_REMIND_MS, OutageLog, type OutageMessages } from "./outage-log.js";
export { OutboxGate } from "./outbox-gate.js";
export { OutboxRelay, type OutboxRelayOptions, type RelayTarget } from "./outbox-relay.js";
export {
  type OutboxRow,
  type OutboxSource,
  outboxMessageId,
  type PassedGap,
  type RelayState,
} from "./outbox-source.js";
export { APPENDED, type MessageOutcome, Outcomes } from "./outcomes.js";
export type { PublishResult } from "./pack-appender.js";
export {
  type DatabaseOwnership,
  type HostInfo,
  type MoveReport,
  type OwnershipState,
  type ReadOnlyState,
  readOnlyPerServer,
  type ServerRole,
  type SpaceState,
  type Store,
  type StoreCapabilities,
  type TopicPlacement,
} from "./store.js";
export {
  type DeadLetter,
  type DeliveryState,
  Subscription,
  type SubscriptionStats,
} from "./subscription.js";
export { MAX_DESCRIPTOR_SET_BYTES, type SchemaValidator, type TopicSchema } from "./topic-schema.js";
export type { SubscriptionGauge } from "./topic-stats.js";
