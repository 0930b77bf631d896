"""Admin operations against a real broker: topics, subscriptions, pause/resume, purge, seek, stats."""

from __future__ import annotations

import asyncio
import re
import textwrap
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

import nervebus
from nervebus import ReceivedMessage, StartPoint, SubscriberSettings, sync

from .conftest import Broker


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def publish(client: nervebus.Client, topic: str, count: int) -> list[int]:
    async with client.publisher(topic) as publisher:
        results = await asyncio.gather(*(publisher.publish(f"m{i}".encode()) for i in range(count)))
    return [r.seq for r in results]


async def wait_stats(
    admin: nervebus.Admin,
    topic: str,
    subscription: str,
    predicate: Callable[[nervebus.SubscriptionStats], bool],
    timeout: float = 10.0,
) -> nervebus.Stats:
    """Polls GetStats until the subscription's figures satisfy ``predicate``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = await admin.get_stats(topic)
        if predicate(stats.subscription(subscription)):
            return stats
        if loop.time() > deadline:
            pytest.fail(f"stats of {subscription} still {stats.subscription(subscription)} after {timeout} s")
        await asyncio.sleep(0.05)


async def test_topic_lifecycle(client: nervebus.Client) -> None:
    admin = client.admin
    assert client.admin is admin
    a, b = unique("a"), unique("b")

    plain = await admin.create_topic(a)
    assert plain.name == a and plain.shards >= 1 and not plain.ephemeral
    assert plain.retention == timedelta(days=7) and plain.dedup_window == timedelta(minutes=2)
    assert plain.retention_bytes == 0
    assert plain.create_time is not None
    assert abs(datetime.now(UTC) - plain.create_time) < timedelta(minutes=1)

    # Explicit zeros are not the defaults: 0 retention keeps messages, 0 window disables dedup.
    custom = await admin.create_topic(b, shards=2, retention=0, retention_bytes=1 << 20, dedup_window=0.0)
    assert (custom.shards, custom.retention, custom.dedup_window, custom.retention_bytes) == (
        2,
        timedelta(0),
        timedelta(0),
        1 << 20,
    )

    assert await admin.get_topic(b) == custom
    listed = [t for t in await admin.list_topics() if t.name in (a, b)]
    assert listed == [plain, custom]

    # Only the settings given change; the others keep their value.
    updated = await admin.update_topic(a, retention=timedelta(hours=3))
    assert updated.retention == timedelta(hours=3)
    assert updated.dedup_window == timedelta(minutes=2) and updated.retention_bytes == 0
    assert updated.shards == plain.shards and updated.create_time == plain.create_time
    updated = await admin.update_topic(a, retention_bytes=5000, dedup_window=0)
    assert (updated.retention, updated.retention_bytes, updated.dedup_window) == (
        timedelta(hours=3),
        5000,
        timedelta(0),
    )
    updated = await admin.update_topic(b, retention_bytes=0, retention=90.5)
    assert (updated.retention, updated.retention_bytes, updated.dedup_window) == (
        timedelta(seconds=90.5),
        0,
        timedelta(0),
    )
    assert await admin.get_topic(a) == replace_retention(plain, timedelta(hours=3), 5000, timedelta(0))

    await admin.delete_topic(a)
    with pytest.raises(nervebus.StatusError) as info:
        await admin.get_topic(a)
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    assert a not in [t.name for t in await admin.list_topics()]
    # The name is free again.
    assert (await admin.create_topic(a)).retention == timedelta(days=7)


def replace_retention(t: nervebus.Topic, retention: timedelta, size: int, dedup: timedelta) -> nervebus.Topic:
    return nervebus.Topic(t.name, t.shards, retention, size, dedup, t.ephemeral, t.create_time)


async def test_topic_errors(client: nervebus.Client) -> None:
    admin = client.admin
    name = unique("errs")
    await admin.create_topic(name)

    async def status_of(call: object) -> nervebus.StatusError:
        with pytest.raises(nervebus.StatusError) as info:
            await call  # type: ignore[misc]
        return info.value

    err = await status_of(admin.create_topic(name))
    assert err.code is grpc.StatusCode.ALREADY_EXISTS and err.operation == "CreateTopic"
    assert isinstance(err.__cause__, grpc.RpcError)
    err = await status_of(admin.create_topic("bad name!"))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "topic.name" in err.details
    err = await status_of(admin.create_topic("x" * 129))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "topic.name" in err.details and "128" in err.details
    err = await status_of(admin.create_topic(unique("shards"), shards=65))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "topic.shards" in err.details
    err = await status_of(admin.get_topic(unique("missing")))
    assert err.code is grpc.StatusCode.NOT_FOUND and err.operation == "GetTopic"
    err = await status_of(admin.get_topic(""))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "name" in err.details
    err = await status_of(admin.update_topic(unique("missing"), retention=1))
    assert err.code is grpc.StatusCode.NOT_FOUND
    err = await status_of(admin.update_topic(name))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "update_mask" in err.details
    err = await status_of(admin.update_topic(name, dedup_window=timedelta(hours=25)))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "topic.dedup_window" in err.details
    err = await status_of(admin.update_topic(name, retention=-1))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "topic.retention" in err.details
    err = await status_of(admin.delete_topic(unique("missing")))
    assert err.code is grpc.StatusCode.NOT_FOUND and err.operation == "DeleteTopic"
    err = await status_of(admin.get_stats(unique("missing")))
    assert err.code is grpc.StatusCode.NOT_FOUND and err.operation == "GetStats"
    # Values the API cannot carry are refused before any call.
    with pytest.raises(TypeError):
        await admin.update_topic(name, retention="1h")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await admin.seek_subscription(name, "s", True)


async def test_subscriptions(client: nervebus.Client, topic: str) -> None:
    admin = client.admin
    dlq = unique("dlq")
    with pytest.raises(nervebus.StatusError) as info:
        await admin.create_subscription(topic, "early")
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    await admin.create_topic(topic)
    await admin.create_topic(dlq)
    assert await publish(client, topic, 5) == [1, 2, 3, 4, 5]

    plain = await admin.create_subscription(topic, "a-plain")
    assert plain == nervebus.Subscription(
        topic=topic,
        name="a-plain",
        ack_deadline=timedelta(seconds=30),
        min_backoff=timedelta(seconds=1),
        max_backoff=timedelta(seconds=60),
        max_delivery_attempts=0,
        dead_letter_topic="",
        ordering=False,
        paused=False,
        create_time=plain.create_time,
    )
    assert plain.create_time is not None

    # Settings, and a start seq: the first delivery is seq 3.
    sub = await admin.create_subscription(
        topic,
        "b-from3",
        ack_deadline=20,
        min_backoff=0,
        max_backoff=timedelta(seconds=5),
        max_delivery_attempts=4,
        dead_letter_topic=dlq,
        ordering=True,
        start=3,
    )
    assert (sub.ack_deadline, sub.min_backoff, sub.max_backoff) == (
        timedelta(seconds=20),
        timedelta(0),
        timedelta(seconds=5),
    )
    assert (sub.max_delivery_attempts, sub.dead_letter_topic) == (4, dlq)
    assert sub.ordering and not sub.paused
    assert await admin.get_subscription(topic, "b-from3") == sub
    figures = (await admin.get_stats(topic)).subscription("b-from3")
    assert (figures.floor, figures.backlog) == (2, 3)

    got: list[int] = []

    async def handle(message: ReceivedMessage) -> None:
        got.append(message.seq)

    async with client.subscriber(topic, "b-from3", handle):
        await wait_stats(admin, topic, "b-from3", lambda s: s.backlog == 0)
    assert sorted(got) == [3, 4, 5]

    # Start points: earliest, latest, and by time.
    await admin.create_subscription(topic, "c-earliest", start=StartPoint.EARLIEST)
    await admin.create_subscription(topic, "d-latest", start=StartPoint.LATEST)
    await admin.create_subscription(topic, "e-future", start=datetime.now(UTC) + timedelta(hours=1))
    await admin.create_subscription(topic, "f-past", start=datetime.now() - timedelta(days=1))  # naive: UTC
    names = ["a-plain", "b-from3", "c-earliest", "d-latest", "e-future", "f-past"]
    stats = await admin.get_stats(topic)
    assert [s.name for s in stats.subscriptions] == names
    floors = {s.name: (s.floor, s.backlog) for s in stats.subscriptions}
    assert floors["c-earliest"] == (0, 5) and floors["f-past"] == (0, 5)
    assert floors["d-latest"] == (5, 0) and floors["e-future"] == (5, 0)
    with pytest.raises(KeyError):
        stats.subscription("nope")

    listed = await admin.list_subscriptions(topic)
    assert [s.name for s in listed] == names
    assert all(s.topic == topic for s in listed) and listed[1] == sub

    # Update: the settings given change, the others keep their value.
    updated = await admin.update_subscription(topic, "b-from3", max_delivery_attempts=0, ack_deadline=45.0)
    assert (updated.max_delivery_attempts, updated.ack_deadline) == (0, timedelta(seconds=45))
    assert (updated.min_backoff, updated.max_backoff, updated.dead_letter_topic, updated.ordering) == (
        timedelta(0),
        timedelta(seconds=5),
        dlq,
        True,
    )
    updated = await admin.update_subscription(
        topic, "b-from3", dead_letter_topic="", ordering=False, min_backoff=2, max_backoff=10
    )
    assert (updated.dead_letter_topic, updated.ordering, updated.min_backoff, updated.max_backoff) == (
        "",
        False,
        timedelta(seconds=2),
        timedelta(seconds=10),
    )
    assert (updated.ack_deadline, updated.max_delivery_attempts) == (timedelta(seconds=45), 0)
    assert await admin.get_subscription(topic, "b-from3") == updated
    assert await admin.get_subscription(topic, "a-plain") == plain

    # Errors.
    async def code_of(call: object) -> nervebus.StatusError:
        with pytest.raises(nervebus.StatusError) as info:
            await call  # type: ignore[misc]
        return info.value

    err = await code_of(admin.create_subscription(topic, "a-plain"))
    assert err.code is grpc.StatusCode.ALREADY_EXISTS and err.operation == "CreateSubscription"
    err = await code_of(admin.create_subscription(topic, "bad/name"))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "subscription.name" in err.details
    err = await code_of(admin.create_subscription(topic, "g", ack_deadline=0.5))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "subscription.ack_deadline" in err.details
    err = await code_of(admin.create_subscription(topic, "g", dead_letter_topic=topic))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "subscription.dead_letter_topic" in err.details
    err = await code_of(admin.update_subscription(topic, "a-plain"))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "update_mask" in err.details
    err = await code_of(admin.update_subscription(topic, "a-plain", max_backoff=0.1))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "subscription.max_backoff" in err.details
    err = await code_of(admin.seek_subscription(topic, "a-plain", 0))
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and "seq" in err.details
    for call in (
        admin.get_subscription(topic, "missing"),
        admin.get_subscription(unique("missing"), "a-plain"),
        admin.list_subscriptions(unique("missing")),
        admin.update_subscription(topic, "missing", ordering=True),
        admin.pause_subscription(topic, "missing"),
        admin.resume_subscription(topic, "missing"),
        admin.purge_subscription(topic, "missing"),
        admin.seek_subscription(topic, "missing", 1),
        admin.delete_subscription(topic, "missing"),
    ):
        assert (await code_of(call)).code is grpc.StatusCode.NOT_FOUND

    # A topic that is a dead-letter topic cannot be deleted.
    await admin.update_subscription(topic, "a-plain", dead_letter_topic=dlq)
    err = await code_of(admin.delete_topic(dlq))
    assert err.code is grpc.StatusCode.FAILED_PRECONDITION and "a-plain" in err.details

    await admin.delete_subscription(topic, "c-earliest")
    assert (await code_of(admin.get_subscription(topic, "c-earliest"))).code is grpc.StatusCode.NOT_FOUND
    assert len(await admin.list_subscriptions(topic)) == 5
    # Deleting the topic deletes its subscriptions.
    await admin.delete_topic(topic)
    await admin.create_topic(topic)
    assert await admin.list_subscriptions(topic) == []


async def test_pause_resume_seek_purge_and_stats(client: nervebus.Client, topic: str) -> None:
    admin = client.admin
    await admin.create_topic(topic)
    await admin.create_subscription(topic, "worker")
    got: list[int] = []
    hold = False
    release = asyncio.Event()

    async def handle(message: ReceivedMessage) -> None:
        got.append(message.seq)
        if hold:
            await release.wait()  # the message stays leased until the handler returns

    settings = SubscriberSettings(consumer_name="consumer-1", max_messages=50, ordered=False)
    async with client.subscriber(topic, "worker", handle, settings):
        stats = await wait_stats(admin, topic, "worker", lambda s: len(s.consumers) == 1)
        [consumer] = stats.subscription("worker").consumers
        assert (consumer.name, consumer.max_messages, consumer.in_flight) == ("consumer-1", 50, 0)
        assert consumer.connect_time is not None

        # Paused: messages arrive and wait.
        paused = await admin.pause_subscription(topic, "worker")
        assert paused.paused
        await publish(client, topic, 5)
        await asyncio.sleep(1.0)
        assert got == [], "delivered while paused"
        stats = await admin.get_stats(topic)
        figures = stats.subscription("worker")
        assert (stats.topic.name, stats.topic.last_seq, stats.topic.first_seq) == (topic, 5, 1)
        assert (figures.paused, figures.backlog, figures.in_flight, figures.floor) == (True, 5, 0, 0)
        assert len(figures.consumers) == 1
        assert (await admin.get_subscription(topic, "worker")).paused

        # Resumed: they come, and once acked the backlog is empty.
        resumed = await admin.resume_subscription(topic, "worker")
        assert not resumed.paused
        stats = await wait_stats(admin, topic, "worker", lambda s: s.backlog == 0)
        assert sorted(got) == [1, 2, 3, 4, 5]
        figures = stats.subscription("worker")
        assert (figures.floor, figures.in_flight, figures.paused) == (5, 0, False)

        # In flight: messages held by running handlers are leased to the consumer.
        hold = True
        await publish(client, topic, 3)
        stats = await wait_stats(admin, topic, "worker", lambda s: s.in_flight == 3)
        figures = stats.subscription("worker")
        assert stats.topic.last_seq == 8
        assert (figures.backlog, figures.floor, figures.consumers[0].in_flight) == (3, 5, 3)
        assert figures.oldest_unacked_age > timedelta(0)
        hold = False
        release.set()
        await wait_stats(admin, topic, "worker", lambda s: s.backlog == 0 and s.in_flight == 0)

        # Seek back: seqs 3… come again.
        assert await admin.seek_subscription(topic, "worker", 3) == 2
        await wait_stats(admin, topic, "worker", lambda s: s.backlog == 0 and s.floor == 8)
        assert sorted(got[8:]) == [3, 4, 5, 6, 7, 8]

        # Seek by time: an hour back replays everything; an hour ahead skips everything.
        assert await admin.seek_subscription(topic, "worker", datetime.now(UTC) - timedelta(hours=1)) == 0
        await wait_stats(admin, topic, "worker", lambda s: s.backlog == 0 and s.floor == 8)
        assert sorted(got[14:]) == list(range(1, 9))
        assert await admin.seek_subscription(topic, "worker", datetime.now(UTC) + timedelta(hours=1)) == 8

    # Purge: with the consumer gone, a backlog builds up; purging acks it all.
    await publish(client, topic, 4)
    stats = await wait_stats(admin, topic, "worker", lambda s: not s.consumers)
    assert stats.topic.last_seq == 12
    assert (stats.subscription("worker").backlog, stats.subscription("worker").in_flight) == (4, 0)
    assert await admin.purge_subscription(topic, "worker") == 12
    figures = (await admin.get_stats(topic)).subscription("worker")
    assert (figures.backlog, figures.floor, figures.oldest_unacked_age) == (0, 12, timedelta(0))

    # A new consumer gets only what comes next.
    got.clear()
    async with client.subscriber(topic, "worker", handle):
        await wait_stats(admin, topic, "worker", lambda s: len(s.consumers) == 1)
        await publish(client, topic, 1)
        await wait_stats(admin, topic, "worker", lambda s: s.backlog == 0 and s.floor == 13)
    assert got == [13]


def test_sync_admin(broker: Broker) -> None:
    name = unique("sync")
    with sync.Client(broker.address) as client:
        admin = client.admin
        topic = admin.create_topic(name, retention=timedelta(hours=1))
        assert topic.retention == timedelta(hours=1)
        assert admin.get_topic(name) == topic
        assert name in [t.name for t in admin.list_topics()]
        assert admin.update_topic(name, retention_bytes=10_000).retention_bytes == 10_000

        publisher = client.publisher(name)
        for i in range(3):
            publisher.publish(f"m{i}".encode(), timeout=10)
        sub = admin.create_subscription(name, "s", start=StartPoint.EARLIEST, ack_deadline=15)
        assert sub.ack_deadline == timedelta(seconds=15)
        assert admin.update_subscription(name, "s", max_delivery_attempts=7).max_delivery_attempts == 7
        assert [s.name for s in admin.list_subscriptions(name)] == ["s"]
        assert admin.get_subscription(name, "s").ack_deadline == timedelta(seconds=15)
        assert admin.pause_subscription(name, "s").paused
        assert not admin.resume_subscription(name, "s").paused
        assert admin.get_stats(name).subscription("s").backlog == 3
        assert admin.purge_subscription(name, "s") == 3
        assert admin.get_stats(name).subscription("s").backlog == 0
        assert admin.seek_subscription(name, "s", 2) == 1
        assert admin.get_stats(name).subscription("s").backlog == 2
        with pytest.raises(nervebus.StatusError) as info:
            admin.create_topic(name)
        assert info.value.code is grpc.StatusCode.ALREADY_EXISTS
        admin.delete_subscription(name, "s")
        admin.delete_topic(name)
        with pytest.raises(nervebus.StatusError) as info:
            admin.get_stats(name)
        assert info.value.code is grpc.StatusCode.NOT_FOUND
        publisher.close()


README = Path(__file__).resolve().parents[1] / "README.md"


async def test_readme_admin_example_runs(private_broker: Broker) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    [block] = [b for b in blocks if "admin = client.admin" in b]
    # The block runs as the body of a coroutine that has a client.
    source = "async def readme(client):\n" + textwrap.indent(block, "    ")
    scope: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), scope)
    async with nervebus.Client(private_broker.address) as client:
        await scope["readme"](client)
        sub = await client.admin.get_subscription("orders", "billing")
        assert sub.ordering and sub.max_delivery_attempts == 5
        assert (await client.admin.get_topic("orders")).retention_bytes == 10 << 30
