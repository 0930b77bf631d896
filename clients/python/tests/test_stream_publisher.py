"""Publish streams: batches confirmed in order under the broker's credit, errors, fire and forget."""

from __future__ import annotations

import asyncio

import grpc
import pytest

import nervebus
from nervebus import Backoff, Outcome, Priority, ReceivedMessage, StartPoint, SubscriberSettings

from .conftest import Broker, wait_until


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


async def _stored_data(client: nervebus.Client, topic: str) -> list[bytes]:
    """Every stored message's data, read with the message browser (nothing consumed)."""
    out: list[bytes] = []
    from_seq = 1
    while True:
        page = await client.admin.list_messages(topic, from_seq=from_seq, page_size=1000)
        out.extend(bytes(m.data) for m in page.messages)
        if page.next_seq == 0:
            return out
        from_seq = page.next_seq


async def test_a_broken_stream_is_reopened_and_confirmed_batches_are_stored_once(
    private_broker: Broker, topic: str
) -> None:
    async with nervebus.Client(private_broker.address) as client:
        stream = await client.stream_publisher(
            topic, max_messages=200, reconnect_backoff=Backoff(initial=0.05, maximum=0.5)
        )
        batches, size = 60, 50
        futures: list[asyncio.Future[list[nervebus.PublishResult]]] = []
        for b in range(batches):
            futures.append(await stream.submit([f"b{b}-{i}" for i in range(size)]))
            if b == 20:
                # Batches are in flight (4 fit the credit): the broker dies under them.
                await futures[10]
                await asyncio.to_thread(private_broker.kill)
                await asyncio.sleep(0.3)
                await asyncio.to_thread(private_broker.start)
        results = [r for f in futures for r in await asyncio.wait_for(f, 60)]
        await stream.close()
        assert len({r.seq for r in results}) == batches * size
        stored = await _stored_data(client, topic)
        assert len(stored) == batches * size, "each confirmed message stored once"
        assert sorted(stored) == sorted(f"b{b}-{i}".encode() for b in range(batches) for i in range(size))


async def test_batches_fail_after_the_reconnect_deadline(private_broker: Broker, topic: str) -> None:
    async with nervebus.Client(private_broker.address) as client:
        stream = await client.stream_publisher(
            topic, reconnect_deadline=1.0, reconnect_backoff=Backoff(initial=0.05, maximum=0.2)
        )
        await stream.send(["before"])
        await asyncio.to_thread(private_broker.kill)
        with pytest.raises(nervebus.StatusError) as failed:
            await asyncio.wait_for(stream.send(["while down"]), 30)
        assert failed.value.code is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(nervebus.StatusError):
            await stream.close()
