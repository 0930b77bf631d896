"""Publish streams: batches confirmed in order under the broker's credit, errors, fire and forget."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import nervebus
from nervebus import Outcome, Priority, ReceivedMessage, StartPoint, SubscriberSettings

from .conftest import wait_until


async def test_batches_are_confirmed_in_order_within_the_credit(client: nervebus.Client, topic: str) -> None:
    stream = await client.stream_publisher(topic, max_messages=200)
    assert stream.granted[0] == 200
    # 20 batches of 50 submitted without waiting for confirms: more than the credit at once.
    futures = [await stream.submit([f"b{b}-{i}" for i in range(50)]) for b in range(20)]
    results = [r for f in futures for r in await f]
    await stream.close()
    assert [r.seq for r in results] == list(range(1, 1001))
    assert all(r.outcome is Outcome.APPENDED and len(r.trace_id) == 32 and r.message_id for r in results)

    received: list[ReceivedMessage] = []

    async def handle(message: ReceivedMessage) -> None:
        received.append(message)

    settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=1)
    async with client.subscriber(topic, "check", handle, settings):
        await wait_until(lambda: len(received) == 1000)
    assert [m.data for m in received[:2]] == [b"b0-0", b"b0-1"]
    assert received[-1].data == b"b19-49"


async def test_refusals(client: nervebus.Client, topic: str) -> None:
    with pytest.raises(nervebus.StatusError) as bad_topic:
        await client.stream_publisher("no spaces")
    assert bad_topic.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "open.topic" in bad_topic.value.details

    stream = await client.stream_publisher(topic, max_messages=2)
    with pytest.raises(ValueError, match="never fits the credit of 2 messages"):
        await stream.submit(["1", "2", "3"])
    # A message the broker refuses ends the stream with the precise status.
    with pytest.raises(nervebus.StatusError) as refused:
        await stream.send([nervebus.Message("x", delay=8 * 24 * 3600)])
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details.startswith("batch 1: messages[0].delay")
    with pytest.raises(nervebus.StatusError):
        await stream.close()


async def test_fire_and_forget_on_an_ephemeral_topic(client: nervebus.Client, topic: str) -> None:
    await client.admin.create_topic(topic, ephemeral=True)
    received: list[bytes] = []

    async def handle(message: ReceivedMessage) -> None:
        received.append(message.data)

    async with client.subscriber(topic, "live", handle, SubscriberSettings(concurrency=1)):

        async def attached() -> bool:
            stats = await client.admin.get_stats(topic)
            return any(s.name == "live" and s.consumers for s in stats.subscriptions)

        # Ephemeral messages go only to consumers connected now.
        for _ in range(500):
            if await attached():
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the subscriber did not attach")
        stream = await client.stream_publisher(topic, no_confirms=True, max_messages=10)
        for b in range(50):
            assert await stream.send([f"{b}a", f"{b}b"]) == []
        await stream.close()
        await wait_until(lambda: len(received) == 100)
    assert received[:4] == [b"0a", b"0b", b"1a", b"1b"]


async def test_urgent_messages_go_before_a_bulk_backlog(client: nervebus.Client, topic: str) -> None:
    async with client.publisher(topic) as publisher:
        await publisher.publish_many(
            [nervebus.Message(f"bulk{i}", priority=Priority.BULK) for i in range(30)]
        )
        await publisher.publish("urgent", priority=Priority.URGENT)
    received: list[ReceivedMessage] = []

    async def handle(message: ReceivedMessage) -> None:
        received.append(message)

    settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=1, max_messages=1)
    async with client.subscriber(topic, "s", handle, settings):
        await wait_until(lambda: len(received) >= 2)
    assert (received[0].data, received[0].priority) == (b"urgent", Priority.URGENT)
    assert (received[1].data, received[1].priority) == (b"bulk0", Priority.BULK)
