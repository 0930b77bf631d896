"""Typed topics: publish and receive your own generated protobuf types.

A topic made typed with :meth:`nervebus.Admin.set_topic_schema` refuses payloads that do not
parse as its type. These thin wrappers serialize values with your generated class and parse
them on receipt::

    await client.admin.set_topic_schema("orders", shop_pb2.Order)
    orders = nervebus.TypedPublisher(client.publisher("orders"), shop_pb2.Order)
    await orders.publish(shop_pb2.Order(id="o-1"), ordering_key="customer-42")

    async def handle(order: shop_pb2.Order, message: nervebus.ReceivedMessage) -> None: ...
    client.subscriber("orders", "billing", nervebus.typed_handler(shop_pb2.Order, handle))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError, Message

from .publisher import Publisher
from .subscriber import Handler
from .types import PublishResult, ReceivedMessage

__all__ = ["TopicSchema", "TypedPublisher", "descriptor_set_of", "typed_handler"]

T = TypeVar("T", bound=Message)


@dataclass(frozen=True)
class TopicSchema:
    """A topic's protobuf message type (``message_type`` empty when the topic is untyped)."""

    message_type: str
    descriptor_set: bytes
    update_time: datetime | None


def descriptor_set_of(message_class: type[Message]) -> bytes:
    """The serialized FileDescriptorSet of ``message_class``'s file and every file it imports."""
    out = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(f: Any) -> None:  # a FileDescriptor (pure-Python or upb)
        if f.name in seen:
            return
        seen.add(f.name)
        for dep in f.dependencies:
            add(dep)
        f.CopyToProto(out.file.add())

    add(message_class.DESCRIPTOR.file)
    return out.SerializeToString()


class TypedPublisher(Generic[T]):
    """Publishes values of one generated protobuf class through a :class:`Publisher`."""

    def __init__(self, publisher: Publisher, message_class: type[T]) -> None:
        self.publisher = publisher
        self.message_class = message_class

    async def publish(
        self,
        value: T,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str = "",
        message_id: str = "",
        deliver_at: datetime | None = None,
        delay: float | timedelta | None = None,
    ) -> PublishResult:
        """Serializes ``value`` and publishes it; see :meth:`Publisher.publish`.

        Raises:
            TypeError: ``value`` is not an instance of the publisher's class.
        """
        if not isinstance(value, self.message_class):
            raise TypeError(f"expected a {self.message_class.__name__}, got {type(value).__name__}")
        return await self.publisher.publish(
            value.SerializeToString(),
            attributes=attributes,
            ordering_key=ordering_key,
            message_id=message_id,
            deliver_at=deliver_at,
            delay=delay,
        )


def typed_handler(message_class: type[T], handler: Callable[[T, ReceivedMessage], Awaitable[Any]]) -> Handler:
    """A :class:`Subscriber` handler that parses each payload as ``message_class`` first.

    A payload that does not parse is terminated (dead-lettered, or dropped without a
    dead-letter topic) and never reaches ``handler``: redelivering it cannot help.
    """

    async def run(message: ReceivedMessage) -> Any:
        value = message_class()
        try:
            value.ParseFromString(message.data)
        except DecodeError:
            message.terminate()
            return None
        return await handler(value, message)

    return run
