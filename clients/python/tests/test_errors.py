"""Bad input raises StatusError carrying the gRPC status and the broker's message."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

import nervebus
from nervebus import PublisherSettings, RetrySettings, SubscriberSettings


async def test_empty_topic_publish_raises_invalid_argument(client: nervebus.Client) -> None:
    async with client.publisher("") as publisher:
        with pytest.raises(nervebus.StatusError) as info:
            await publisher.publish(b"x")
    err = info.value
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert err.status_name == "INVALID_ARGUMENT"
    assert "topic" in err.details
    assert "INVALID_ARGUMENT" in str(err) and "SendPack" in str(err)
    assert isinstance(err.__cause__, grpc.RpcError)
    assert publisher.stats.retries == 0, "INVALID_ARGUMENT is not retried"


async def test_bad_topic_characters(client: nervebus.Client) -> None:
    async with client.publisher("no spaces allowed") as publisher:
        with pytest.raises(nervebus.StatusError) as info:
            await publisher.publish(b"x")
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT


async def test_oversized_message(client: nervebus.Client, topic: str) -> None:
    async with client.publisher(topic) as publisher:
        with pytest.raises(nervebus.StatusError) as info:
            await publisher.publish(b"x" * (2 << 20))
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "limit" in info.value.details


async def test_empty_topic_subscribe_raises_invalid_argument(client: nervebus.Client) -> None:
    async def handle(message: nervebus.ReceivedMessage) -> None:
        pass

    subscriber = client.subscriber("", "sub", handle)
    with pytest.raises(nervebus.StatusError) as info:
        await subscriber.start(timeout=10)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "topic" in info.value.details
    assert info.value.operation == "Receive"
    assert not subscriber.running


async def test_bad_window_bytes(client: nervebus.Client, topic: str) -> None:
    async def handle(message: nervebus.ReceivedMessage) -> None:
        pass

    subscriber = client.subscriber(topic, "sub", handle, SubscriberSettings(max_bytes=1000))
    with pytest.raises(nervebus.StatusError) as info:
        await subscriber.start(timeout=10)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "max_bytes" in info.value.details


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        SubscriberSettings(max_messages=0)
    with pytest.raises(ValueError):
        SubscriberSettings(ack_deadline=0.5)
    with pytest.raises(ValueError):
        PublisherSettings(max_messages=0)
    with pytest.raises(ValueError):
        nervebus.Backoff(multiplier=0.5)


@contextmanager
def unreachable_broker() -> Iterator[str]:
    """A broker that cannot be reached: a loopback port held bound but not listening, so every
    connection to it is refused. A fixed port such as 1 may be bound by any process on the
    machine; this one is taken by no other while the test holds it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{held.getsockname()[1]}"


async def test_unreachable_broker_gives_up_after_retry_timeout() -> None:
    # Connections refused: UNAVAILABLE, retried until the retry timeout.
    retry = RetrySettings(backoff=nervebus.Backoff(initial=0.05, maximum=0.1), timeout=0.5)
    with unreachable_broker() as address:
        async with nervebus.Client(address) as client:
            publisher = client.publisher("t", PublisherSettings(retry=retry, call_timeout=0.5))
            with pytest.raises(nervebus.StatusError) as info:
                await publisher.publish(b"x")
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert publisher.stats.retries >= 2


def test_backoff_grows_with_jitter_and_cap() -> None:
    backoff = nervebus.Backoff(initial=0.1, maximum=1.0, multiplier=2.0, jitter=0.5)
    for attempt in range(10):
        ceiling = min(1.0, 0.1 * 2**attempt)
        for _ in range(20):
            d = backoff.delay(attempt)
            assert ceiling * 0.5 <= d <= ceiling
    assert nervebus.Backoff(jitter=0).delay(3) == pytest.approx(0.8)
