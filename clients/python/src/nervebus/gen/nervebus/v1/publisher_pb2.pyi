from nervebus.gen.nervebus.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SendPackRequest(_message.Message):
    __slots__ = ("topic", "messages")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    topic: str
    messages: _containers.RepeatedCompositeFieldContainer[_message_pb2.Message]
    def __init__(self, topic: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_message_pb2.Message, _Mapping]]] = ...) -> None: ...

class SendPackResponse(_message.Message):
    __slots__ = ("first_seq", "last_seq", "results")
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    first_seq: int
    last_seq: int
    results: _containers.RepeatedCompositeFieldContainer[MessageResult]
    def __init__(self, first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., results: _Optional[_Iterable[_Union[MessageResult, _Mapping]]] = ...) -> None: ...

class MessageResult(_message.Message):
    __slots__ = ("outcome", "seq", "trace_id")
    class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OUTCOME_UNSPECIFIED: _ClassVar[MessageResult.Outcome]
        OUTCOME_APPENDED: _ClassVar[MessageResult.Outcome]
        OUTCOME_DUPLICATE: _ClassVar[MessageResult.Outcome]
        OUTCOME_SCHEDULED: _ClassVar[MessageResult.Outcome]
    OUTCOME_UNSPECIFIED: MessageResult.Outcome
    OUTCOME_APPENDED: MessageResult.Outcome
    OUTCOME_DUPLICATE: MessageResult.Outcome
    OUTCOME_SCHEDULED: MessageResult.Outcome
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: MessageResult.Outcome
    seq: int
    trace_id: str
    def __init__(self, outcome: _Optional[_Union[MessageResult.Outcome, str]] = ..., seq: _Optional[int] = ..., trace_id: _Optional[str] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("open", "messages")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    open: PublishOpen
    messages: _containers.RepeatedCompositeFieldContainer[_message_pb2.Message]
    def __init__(self, open: _Optional[_Union[PublishOpen, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_message_pb2.Message, _Mapping]]] = ...) -> None: ...

class PublishOpen(_message.Message):
    __slots__ = ("topic", "max_messages", "max_bytes", "no_confirms")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    NO_CONFIRMS_FIELD_NUMBER: _ClassVar[int]
    topic: str
    max_messages: int
    max_bytes: int
    no_confirms: bool
    def __init__(self, topic: _Optional[str] = ..., max_messages: _Optional[int] = ..., max_bytes: _Optional[int] = ..., no_confirms: _Optional[bool] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("opened", "confirms", "credit")
    OPENED_FIELD_NUMBER: _ClassVar[int]
    CONFIRMS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    opened: PublishCredit
    confirms: _containers.RepeatedCompositeFieldContainer[BatchConfirm]
    credit: PublishCredit
    def __init__(self, opened: _Optional[_Union[PublishCredit, _Mapping]] = ..., confirms: _Optional[_Iterable[_Union[BatchConfirm, _Mapping]]] = ..., credit: _Optional[_Union[PublishCredit, _Mapping]] = ...) -> None: ...

class PublishCredit(_message.Message):
    __slots__ = ("messages", "bytes")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    messages: int
    bytes: int
    def __init__(self, messages: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class BatchConfirm(_message.Message):
    __slots__ = ("batch", "result")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    batch: int
    result: SendPackResponse
    def __init__(self, batch: _Optional[int] = ..., result: _Optional[_Union[SendPackResponse, _Mapping]] = ...) -> None: ...
