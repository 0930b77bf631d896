"""Typed topics against a real broker: a generated class types the topic, values go through."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import nervebus
from nervebus import StartPoint, sync
from nervebus.gen.nervebus.v1 import message_pb2

from .conftest import Broker


async def test_typed_publish_and_receive(client: nervebus.Client, topic: str) -> None:
    # nervebus.v1.Message stands for the user's own generated class.
    await client.admin.create_topic(topic)
    schema = await client.admin.set_topic_schema(topic, message_pb2.Message)
    assert schema.message_type == "nervebus.v1.Message" and schema.descriptor_set
    assert (await client.admin.get_topic_schema(topic)).message_type == "nervebus.v1.Message"

    typed = nervebus.TypedPublisher(client.publisher(topic), message_pb2.Message)
    for key in ("a", "b", "c"):
        await typed.publish(
            message_pb2.Message(ordering_key=key, data=b"v-" + key.encode()), attributes={"k": key}
        )
    with pytest.raises(TypeError):
        await typed.publish("not a message")  # type: ignore[arg-type]
    with pytest.raises(nervebus.StatusError) as refused:
        await client.publisher(topic).publish(b"\x0a\x05\x01")
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "does not parse as nervebus.v1.Message" in str(refused.value)

    got: list[str] = []
    done = asyncio.Event()

    async def handle(value: message_pb2.Message, message: nervebus.ReceivedMessage) -> None:
        assert value.data == b"v-" + value.ordering_key.encode()
        assert message.attributes["k"] == value.ordering_key
        got.append(value.ordering_key)
        if len(got) == 3:
            done.set()

    await client.admin.create_subscription(topic, "typed", start=StartPoint.EARLIEST)
    subscriber = client.subscriber(topic, "typed", nervebus.typed_handler(message_pb2.Message, handle))
    await subscriber.start()
    await asyncio.wait_for(done.wait(), 20)
    await subscriber.stop()
    assert sorted(got) == ["a", "b", "c"]

    cleared = await client.admin.set_topic_schema(topic, None)
    assert cleared.message_type == ""
    await client.publisher(topic).publish(b"\x0a\x05\x01")


def test_sync_schema(broker: Broker, topic: str) -> None:
    with sync.Client(broker.address) as client:
        client.admin.create_topic(topic)
        assert client.admin.set_topic_schema(topic, message_pb2.Message).message_type == "nervebus.v1.Message"
        assert client.admin.get_topic_schema(topic).message_type == "nervebus.v1.Message"
