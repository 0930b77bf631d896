import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from nervebus.gen.nervebus.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StartPoint(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    START_POINT_UNSPECIFIED: _ClassVar[StartPoint]
    START_POINT_EARLIEST: _ClassVar[StartPoint]
    START_POINT_LATEST: _ClassVar[StartPoint]
START_POINT_UNSPECIFIED: StartPoint
START_POINT_EARLIEST: StartPoint
START_POINT_LATEST: StartPoint

class ReceiveRequest(_message.Message):
    __slots__ = ("subscribe", "ack_seqs", "nacks", "extend_deadlines", "terminate_seqs", "window")
    SUBSCRIBE_FIELD_NUMBER: _ClassVar[int]
    ACK_SEQS_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    EXTEND_DEADLINES_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_SEQS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    subscribe: Subscribe
    ack_seqs: _containers.RepeatedScalarFieldContainer[int]
    nacks: _containers.RepeatedCompositeFieldContainer[Nack]
    extend_deadlines: _containers.RepeatedCompositeFieldContainer[ExtendDeadline]
    terminate_seqs: _containers.RepeatedScalarFieldContainer[int]
    window: Window
    def __init__(self, subscribe: _Optional[_Union[Subscribe, _Mapping]] = ..., ack_seqs: _Optional[_Iterable[int]] = ..., nacks: _Optional[_Iterable[_Union[Nack, _Mapping]]] = ..., extend_deadlines: _Optional[_Iterable[_Union[ExtendDeadline, _Mapping]]] = ..., terminate_seqs: _Optional[_Iterable[int]] = ..., window: _Optional[_Union[Window, _Mapping]] = ...) -> None: ...

class Subscribe(_message.Message):
    __slots__ = ("topic", "subscription", "window", "ack_deadline", "start_point", "start_seq", "start_time", "confirm_acks", "consumer_name")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    START_POINT_FIELD_NUMBER: _ClassVar[int]
    START_SEQ_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_ACKS_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_NAME_FIELD_NUMBER: _ClassVar[int]
    topic: str
    subscription: str
    window: Window
    ack_deadline: _duration_pb2.Duration
    start_point: StartPoint
    start_seq: int
    start_time: _timestamp_pb2.Timestamp
    confirm_acks: bool
    consumer_name: str
    def __init__(self, topic: _Optional[str] = ..., subscription: _Optional[str] = ..., window: _Optional[_Union[Window, _Mapping]] = ..., ack_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., start_point: _Optional[_Union[StartPoint, str]] = ..., start_seq: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confirm_acks: _Optional[bool] = ..., consumer_name: _Optional[str] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ("max_messages", "max_bytes")
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_messages: int
    max_bytes: int
    def __init__(self, max_messages: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("seq", "delay")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    seq: int
    delay: _duration_pb2.Duration
    def __init__(self, seq: _Optional[int] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ExtendDeadline(_message.Message):
    __slots__ = ("seqs", "deadline")
    SEQS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    seqs: _containers.RepeatedScalarFieldContainer[int]
    deadline: _duration_pb2.Duration
    def __init__(self, seqs: _Optional[_Iterable[int]] = ..., deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReceiveResponse(_message.Message):
    __slots__ = ("subscribed", "deliveries", "ack_results", "heartbeat")
    SUBSCRIBED_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    ACK_RESULTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    subscribed: Subscribed
    deliveries: _containers.RepeatedCompositeFieldContainer[_message_pb2.Delivery]
    ack_results: AckResults
    heartbeat: Heartbeat
    def __init__(self, subscribed: _Optional[_Union[Subscribed, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[_message_pb2.Delivery, _Mapping]]] = ..., ack_results: _Optional[_Union[AckResults, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Subscribed(_message.Message):
    __slots__ = ("created", "floor", "last_seq", "ack_deadline")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ACK_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    created: bool
    floor: int
    last_seq: int
    ack_deadline: _duration_pb2.Duration
    def __init__(self, created: _Optional[bool] = ..., floor: _Optional[int] = ..., last_seq: _Optional[int] = ..., ack_deadline: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AckResults(_message.Message):
    __slots__ = ("acked_seqs", "already_acked_seqs", "ignored_seqs")
    ACKED_SEQS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ACKED_SEQS_FIELD_NUMBER: _ClassVar[int]
    IGNORED_SEQS_FIELD_NUMBER: _ClassVar[int]
    acked_seqs: _containers.RepeatedScalarFieldContainer[int]
    already_acked_seqs: _containers.RepeatedScalarFieldContainer[int]
    ignored_seqs: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, acked_seqs: _Optional[_Iterable[int]] = ..., already_acked_seqs: _Optional[_Iterable[int]] = ..., ignored_seqs: _Optional[_Iterable[int]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("last_seq", "floor", "backlog", "in_flight")
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    FLOOR_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    last_seq: int
    floor: int
    backlog: int
    in_flight: int
    def __init__(self, last_seq: _Optional[int] = ..., floor: _Optional[int] = ..., backlog: _Optional[int] = ..., in_flight: _Optional[int] = ...) -> None: ...
