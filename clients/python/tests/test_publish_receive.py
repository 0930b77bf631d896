"""Publish then receive: payloads, attributes, ordering keys, ids and order survive the trip."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import nervebus
from nervebus import Outcome, ReceivedMessage, StartPoint, SubscriberSettings

from .conftest import wait_until


async def test_publish_then_receive(client: nervebus.Client, topic: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    async with client.publisher(topic) as publisher:
        results = []
        for i in range(5):
            results.append(
                await publisher.publish(
                    f"payload-{i}".encode(),
                    attributes={"index": str(i), "kind": "test"},
                    ordering_key="key-a" if i % 2 == 0 else "",
                    message_id=f"id-{i}",
                )
            )
        # Binary payloads (not UTF-8) and str payloads both go through.
        results.append(await publisher.publish(bytes(range(256)), message_id="binary"))
        results.append(await publisher.publish("héllo", message_id="text"))
    seqs = [r.seq for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + 7))
    assert all(r.outcome is Outcome.APPENDED for r in results)
    assert all(len(r.trace_id) == 32 and int(r.trace_id, 16) for r in results)
    assert [r.message_id for r in results][:2] == ["id-0", "id-1"]

    received: list[ReceivedMessage] = []

    async def handle(message: ReceivedMessage) -> None:
        received.append(message)

    settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=1)
    async with client.subscriber(topic, "sub", handle, settings) as subscriber:
        await wait_until(lambda: len(received) == 7)
        await wait_until(lambda: subscriber.stats.acked == 7)
    assert [m.seq for m in received] == seqs
    for i, m in enumerate(received[:5]):
        assert m.data == f"payload-{i}".encode()
        assert m.attributes["index"] == str(i)
        assert m.attributes["kind"] == "test"
        assert "traceparent" in m.attributes
        assert m.ordering_key == ("key-a" if i % 2 == 0 else "")
        assert m.message_id == f"id-{i}"
        assert m.attempt == 1
        assert m.topic == topic and m.subscription == "sub"
        assert m.publish_time is not None and m.publish_time > before
    assert received[5].data == bytes(range(256))
    assert received[6].data == "héllo".encode()
    assert [m.trace_id for m in received] == [r.trace_id for r in results]


async def test_acked_messages_are_not_redelivered(client: nervebus.Client, topic: str) -> None:
    async with client.publisher(topic) as publisher:
        await asyncio.gather(*(publisher.publish(b"x") for _ in range(3)))
    got: list[int] = []

    async def handle(message: ReceivedMessage) -> None:
        got.append(message.seq)

    settings = SubscriberSettings(start=StartPoint.EARLIEST, confirm_acks=True)
    sub = client.subscriber(topic, "once", handle, settings)
    await sub.start()
    await wait_until(lambda: sub.stats.confirmed_acks == 3)
    await sub.stop()
    # A new stream on the same subscription gets nothing: everything was acked durably.
    again: list[int] = []

    async def handle_again(message: ReceivedMessage) -> None:
        again.append(message.seq)

    async with client.subscriber(topic, "once", handle_again, settings):
        async with client.publisher(topic) as publisher:
            last = await publisher.publish(b"after")
        await wait_until(lambda: again == [last.seq])
    assert sorted(got) == [last.seq - 3, last.seq - 2, last.seq - 1]


async def test_ordering_key_order_kept_across_concurrent_packs(client: nervebus.Client, topic: str) -> None:
    settings = nervebus.PublisherSettings(max_messages=3, linger=0.001, max_inflight_packs=4)
    keys = ["a", "b", "c"]
    async with client.publisher(topic, settings) as publisher:
        results = await asyncio.gather(
            *(publisher.publish(f"{i}".encode(), ordering_key=keys[i % 3]) for i in range(60))
        )
    for key_index in range(3):
        key_seqs = [r.seq for i, r in enumerate(results) if i % 3 == key_index]
        assert key_seqs == sorted(key_seqs), f"key {keys[key_index]} out of order"

    received: dict[str, list[int]] = {k: [] for k in keys}
    active: dict[str, int] = dict.fromkeys(keys, 0)
    overlap = False

    async def handle(message: ReceivedMessage) -> None:
        nonlocal overlap
        active[message.ordering_key] += 1
        overlap = overlap or active[message.ordering_key] > 1
        await asyncio.sleep(0.001)
        received[message.ordering_key].append(int(message.data))
        active[message.ordering_key] -= 1

    sub_settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=8, ordered=True)
    async with client.subscriber(topic, "ordered", handle, sub_settings):
        await wait_until(lambda: sum(len(v) for v in received.values()) == 60)
    assert not overlap, "two messages of one key were handled at once"
    for key_index, key in enumerate(keys):
        assert received[key] == [i for i in range(60) if i % 3 == key_index]


async def test_same_message_id_is_deduplicated(client: nervebus.Client, topic: str) -> None:
    async with client.publisher(topic) as publisher:
        first = await publisher.publish(b"once", message_id="order-42")
        again = await publisher.publish(b"once", message_id="order-42")
        other = await publisher.publish(b"twice")
    assert first.outcome is Outcome.APPENDED
    assert again.outcome is Outcome.DUPLICATE
    assert again.seq == first.seq
    assert other.outcome is Outcome.APPENDED and other.seq == first.seq + 1
    assert len(other.message_id) == 32, "auto_message_id gives every message an id"


async def test_delayed_message_is_scheduled_then_delivered(client: nervebus.Client, topic: str) -> None:
    received: list[tuple[ReceivedMessage, float]] = []

    async def handle(message: ReceivedMessage) -> None:
        received.append((message, asyncio.get_running_loop().time()))

    async with client.subscriber(topic, "later", handle, SubscriberSettings(start=StartPoint.EARLIEST)):
        async with client.publisher(topic) as publisher:
            sent_at = asyncio.get_running_loop().time()
            result = await publisher.publish(b"later", delay=1.0)
            now = await publisher.publish(b"now")
        assert result.outcome is Outcome.SCHEDULED and result.seq == 0
        assert now.outcome is Outcome.APPENDED
        await wait_until(lambda: len(received) == 2, timeout=10)
    assert [m.data for m, _ in received] == [b"now", b"later"]
    assert received[1][1] - sent_at >= 0.9
    assert received[1][0].seq > now.seq
