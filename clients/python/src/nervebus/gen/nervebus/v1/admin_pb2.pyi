import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from nervebus.gen.nervebus.v1 import message_pb2 as _message_pb2
from nervebus.gen.nervebus.v1 import subscriber_pb2 as _subscriber_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Topic(_message.Message):
    __slots__ = ("name", "shards", "retention", "retention_bytes", "dedup_window", "ephemeral", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    RETENTION_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEDUP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    shards: int
    retention: _duration_pb2.Duration
    retention_bytes: int
    dedup_window: _duration_pb2.Duration
    ephemeral: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., shards: _Optional[int] = ..., retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retention_bytes: _Optional[int] = ..., dedup_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., ephemeral: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("topic", "name", "ack_deadline", "min_backoff", "max_backoff", "max_delivery_attempts", "dead_letter_topic", "ordering", "paused", "create_time")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    MIN_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_FIELD_NUMBER: _ClassVar[int]
    MAX_DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_TOPIC_FIELD_NUMBER: _ClassVar[int]
    ORDERING_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    name: str
    ack_deadline: _duration_pb2.Duration
    min_backoff: _duration_pb2.Duration
    max_backoff: _duration_pb2.Duration
    max_delivery_attempts: int
    dead_letter_topic: str
    ordering: bool
    paused: bool
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, topic: _Optional[str] = ..., name: _Optional[str] = ..., ack_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., min_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_backoff: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delivery_attempts: _Optional[int] = ..., dead_letter_topic: _Optional[str] = ..., ordering: _Optional[bool] = ..., paused: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTopicRequest(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ...) -> None: ...

class CreateTopicResponse(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ...) -> None: ...

class GetTopicRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTopicResponse(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ...) -> None: ...

class ListTopicsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTopicsResponse(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedCompositeFieldContainer[Topic]
    def __init__(self, topics: _Optional[_Iterable[_Union[Topic, _Mapping]]] = ...) -> None: ...

class UpdateTopicRequest(_message.Message):
    __slots__ = ("topic", "update_mask")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateTopicResponse(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: Topic
    def __init__(self, topic: _Optional[_Union[Topic, _Mapping]] = ...) -> None: ...

class DeleteTopicRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTopicResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateSubscriptionRequest(_message.Message):
    __slots__ = ("subscription", "start_point", "start_seq", "start_time")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    START_POINT_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    start_point: _subscriber_pb2.StartPoint
    start_seq: int
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., start_point: _Optional[_Union[_subscriber_pb2.StartPoint, str]] = ..., start_seq: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class GetSubscriptionRequest(_message.Message):
    __slots__ = ("topic", "name")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    name: str
    def __init__(self, topic: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class GetSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ListSubscriptionsRequest(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class ListSubscriptionsResponse(_message.Message):
    __slots__ = ("subscriptions",)
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ...) -> None: ...

class UpdateSubscriptionRequest(_message.Message):
    __slots__ = ("subscription", "update_mask")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class DeleteSubscriptionRequest(_message.Message):
    __slots__ = ("topic", "name")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    name: str
    def __init__(self, topic: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteSubscriptionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PauseSubscriptionRequest(_message.Message):
    __slots__ = ("topic", "name")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    name: str
    def __init__(self, topic: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PauseSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ResumeSubscriptionRequest(_message.Message):
    __slots__ = ("topic", "name")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    name: str
    def __init__(self, topic: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ResumeSubscriptionResponse(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class PurgeSubscriptionRequest(_message.Message):
    __slots__ = ("topic", "name")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    name: str
    def __init__(self, topic: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PurgeSubscriptionResponse(_message.Message):
    __slots__ = ("floor",)
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    floor: int
    def __init__(self, floor: _Optional[int] = ...) -> None: ...

class SeekSubscriptionRequest(_message.Message):
    __slots__ = ("topic", "name", "seq", "time")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    name: str
    seq: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, topic: _Optional[str] = ..., name: _Optional[str] = ..., seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SeekSubscriptionResponse(_message.Message):
    __slots__ = ("floor",)
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    floor: int
    def __init__(self, floor: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("topic", "subscriptions")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    topic: TopicStats
    subscriptions: _containers.RepeatedCompositeFieldContainer[SubscriptionStats]
    def __init__(self, topic: _Optional[_Union[TopicStats, _Mapping]] = ..., subscriptions: _Optional[_Iterable[_Union[SubscriptionStats, _Mapping]]] = ...) -> None: ...

class TopicStats(_message.Message):
    __slots__ = ("name", "last_seq", "first_seq", "publish_rate", "scheduled", "dedup_ids", "dropped", "retention_deleted")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_RATE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    DEDUP_IDS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DELETED_FIELD_NUMBER: _ClassVar[int]
    name: str
    last_seq: int
    first_seq: int
    publish_rate: float
    scheduled: int
    dedup_ids: int
    dropped: int
    retention_deleted: int
    def __init__(self, name: _Optional[str] = ..., last_seq: _Optional[int] = ..., first_seq: _Optional[int] = ..., publish_rate: _Optional[float] = ..., scheduled: _Optional[int] = ..., dedup_ids: _Optional[int] = ..., dropped: _Optional[int] = ..., retention_deleted: _Optional[int] = ...) -> None: ...

class SubscriptionStats(_message.Message):
    __slots__ = ("name", "floor", "backlog", "in_flight", "waiting_redelivery", "redelivered", "dead_lettered", "skipped", "oldest_unacked_age", "delivery_rate", "ack_rate", "consumers", "state_entries", "paused")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    WAITING_REDELIVERY_FIELD_NUMBER: _ClassVar[int]
    REDELIVERED_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    OLDEST_UNACKED_AGE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_RATE_FIELD_NUMBER: _ClassVar[int]
    ACK_RATE_FIELD_NUMBER: _ClassVar[int]
    CONSUMERS_FIELD_NUMBER: _ClassVar[int]
    STATE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    name: str
    floor: int
    backlog: int
    in_flight: int
    waiting_redelivery: int
    redelivered: int
    dead_lettered: int
    skipped: int
    oldest_unacked_age: _duration_pb2.Duration
    delivery_rate: float
    ack_rate: float
    consumers: _containers.RepeatedCompositeFieldContainer[ConsumerStats]
    state_entries: int
    paused: bool
    def __init__(self, name: _Optional[str] = ..., floor: _Optional[int] = ..., backlog: _Optional[int] = ..., in_flight: _Optional[int] = ..., waiting_redelivery: _Optional[int] = ..., redelivered: _Optional[int] = ..., dead_lettered: _Optional[int] = ..., skipped: _Optional[int] = ..., oldest_unacked_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., delivery_rate: _Optional[float] = ..., ack_rate: _Optional[float] = ..., consumers: _Optional[_Iterable[_Union[ConsumerStats, _Mapping]]] = ..., state_entries: _Optional[int] = ..., paused: _Optional[bool] = ...) -> None: ...

class ConsumerStats(_message.Message):
    __slots__ = ("name", "in_flight", "window", "connect_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    in_flight: int
    window: _subscriber_pb2.Window
    connect_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., in_flight: _Optional[int] = ..., window: _Optional[_Union[_subscriber_pb2.Window, _Mapping]] = ..., connect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("topic", "from_seq", "to_seq", "from_time", "to_time", "ordering_key", "message_id", "trace_id", "attributes", "page_size", "scan_limit", "include_deliveries")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    ORDERING_KEY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SCAN_LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    topic: str
    from_seq: int
    to_seq: int
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    ordering_key: str
    message_id: str
    trace_id: str
    attributes: _containers.ScalarMap[str, str]
    page_size: int
    scan_limit: int
    include_deliveries: bool
    def __init__(self, topic: _Optional[str] = ..., from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ordering_key: _Optional[str] = ..., message_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., page_size: _Optional[int] = ..., scan_limit: _Optional[int] = ..., include_deliveries: _Optional[bool] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_seq", "scanned_through")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_SEQ_FIELD_NUMBER: _ClassVar[int]
    SCANNED_THROUGH_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[StoredMessage]
    next_seq: int
    scanned_through: int
    def __init__(self, messages: _Optional[_Iterable[_Union[StoredMessage, _Mapping]]] = ..., next_seq: _Optional[int] = ..., scanned_through: _Optional[int] = ...) -> None: ...

class GetMessageRequest(_message.Message):
    __slots__ = ("topic", "seq")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    topic: str
    seq: int
    def __init__(self, topic: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class GetMessageResponse(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: StoredMessage
    def __init__(self, message: _Optional[_Union[StoredMessage, _Mapping]] = ...) -> None: ...

class StoredMessage(_message.Message):
    __slots__ = ("message", "deliveries")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    message: _message_pb2.Delivery
    deliveries: _containers.RepeatedCompositeFieldContainer[MessageDelivery]
    def __init__(self, message: _Optional[_Union[_message_pb2.Delivery, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[MessageDelivery, _Mapping]]] = ...) -> None: ...

class MessageDelivery(_message.Message):
    __slots__ = ("subscription", "state", "attempts", "consumer", "lease_deadline", "not_before", "dead_letter_topic")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[MessageDelivery.State]
        STATE_NOT_DELIVERED: _ClassVar[MessageDelivery.State]
        STATE_LEASED: _ClassVar[MessageDelivery.State]
        STATE_WAITING_REDELIVERY: _ClassVar[MessageDelivery.State]
        STATE_ACKED: _ClassVar[MessageDelivery.State]
        STATE_HELD: _ClassVar[MessageDelivery.State]
        STATE_DEAD_LETTERING: _ClassVar[MessageDelivery.State]
        STATE_DEAD_LETTERED: _ClassVar[MessageDelivery.State]
    STATE_UNSPECIFIED: MessageDelivery.State
    STATE_NOT_DELIVERED: MessageDelivery.State
    STATE_LEASED: MessageDelivery.State
    STATE_WAITING_REDELIVERY: MessageDelivery.State
    STATE_ACKED: MessageDelivery.State
    STATE_HELD: MessageDelivery.State
    STATE_DEAD_LETTERING: MessageDelivery.State
    STATE_DEAD_LETTERED: MessageDelivery.State
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    LEASE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_TOPIC_FIELD_NUMBER: _ClassVar[int]
    subscription: str
    state: MessageDelivery.State
    attempts: int
    consumer: str
    lease_deadline: _timestamp_pb2.Timestamp
    not_before: _timestamp_pb2.Timestamp
    dead_letter_topic: str
    def __init__(self, subscription: _Optional[str] = ..., state: _Optional[_Union[MessageDelivery.State, str]] = ..., attempts: _Optional[int] = ..., consumer: _Optional[str] = ..., lease_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_letter_topic: _Optional[str] = ...) -> None: ...

class PayloadSchema(_message.Message):
    __slots__ = ("message_type", "descriptor_set", "update_time")
    MESSAGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    message_type: str
    descriptor_set: bytes
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, message_type: _Optional[str] = ..., descriptor_set: _Optional[bytes] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetTopicSchemaRequest(_message.Message):
    __slots__ = ("topic", "schema")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    topic: str
    schema: PayloadSchema
    def __init__(self, topic: _Optional[str] = ..., schema: _Optional[_Union[PayloadSchema, _Mapping]] = ...) -> None: ...

class SetTopicSchemaResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: PayloadSchema
    def __init__(self, schema: _Optional[_Union[PayloadSchema, _Mapping]] = ...) -> None: ...

class GetTopicSchemaRequest(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class GetTopicSchemaResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: PayloadSchema
    def __init__(self, schema: _Optional[_Union[PayloadSchema, _Mapping]] = ...) -> None: ...

class LocateTopicRequest(_message.Message):
    __slots__ = ("topic",)
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    topic: str
    def __init__(self, topic: _Optional[str] = ...) -> None: ...

class LocateTopicResponse(_message.Message):
    __slots__ = ("address",)
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    address: str
    def __init__(self, address: _Optional[str] = ...) -> None: ...

class DrainBrokerRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DrainBrokerResponse(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: int
    def __init__(self, topics: _Optional[int] = ...) -> None: ...

class GetClusterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterResponse(_message.Message):
    __slots__ = ("self", "brokers", "failovers", "handovers")
    SELF_FIELD_NUMBER: _ClassVar[int]
    BROKERS_FIELD_NUMBER: _ClassVar[int]
    FAILOVERS_FIELD_NUMBER: _ClassVar[int]
    HANDOVERS_FIELD_NUMBER: _ClassVar[int]
    self: str
    brokers: _containers.RepeatedCompositeFieldContainer[ClusterBroker]
    failovers: int
    handovers: int
    def __init__(self_, self: _Optional[str] = ..., brokers: _Optional[_Iterable[_Union[ClusterBroker, _Mapping]]] = ..., failovers: _Optional[int] = ..., handovers: _Optional[int] = ...) -> None: ...

class ClusterBroker(_message.Message):
    __slots__ = ("id", "address", "live", "draining", "heartbeat_age", "topics")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AGE_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    live: bool
    draining: bool
    heartbeat_age: _duration_pb2.Duration
    topics: _containers.RepeatedCompositeFieldContainer[OwnedTopic]
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., live: _Optional[bool] = ..., draining: _Optional[bool] = ..., heartbeat_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., topics: _Optional[_Iterable[_Union[OwnedTopic, _Mapping]]] = ...) -> None: ...

class OwnedTopic(_message.Message):
    __slots__ = ("name", "epoch", "lease_age")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LEASE_AGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    epoch: int
    lease_age: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., epoch: _Optional[int] = ..., lease_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class MoveTopicRequest(_message.Message):
    __slots__ = ("topic", "to_host")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    TO_HOST_FIELD_NUMBER: _ClassVar[int]
    topic: str
    to_host: str
    def __init__(self, topic: _Optional[str] = ..., to_host: _Optional[str] = ...) -> None: ...

class MoveTopicResponse(_message.Message):
    __slots__ = ("from_host", "to_host", "moved", "rows_copied")
    FROM_HOST_FIELD_NUMBER: _ClassVar[int]
    TO_HOST_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    ROWS_COPIED_FIELD_NUMBER: _ClassVar[int]
    from_host: str
    to_host: str
    moved: bool
    rows_copied: int
    def __init__(self, from_host: _Optional[str] = ..., to_host: _Optional[str] = ..., moved: _Optional[bool] = ..., rows_copied: _Optional[int] = ...) -> None: ...
