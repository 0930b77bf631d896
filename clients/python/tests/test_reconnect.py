"""The client rides out a broker restart on the same SQLite file and port."""

from __future__ import annotations

import asyncio

import nervebus
from nervebus import (
    Backoff,
    PublisherSettings,
    ReceivedMessage,
    RetrySettings,
    StartPoint,
    SubscriberSettings,
)

from .conftest import Broker, wait_until

FAST = Backoff(initial=0.05, maximum=0.5)


async def test_subscriber_reconnects_and_publisher_retries_across_restart(
    private_broker: Broker, topic: str
) -> None:
    got: list[ReceivedMessage] = []

    async def handle(message: ReceivedMessage) -> None:
        got.append(message)

    async with nervebus.Client(private_broker.address) as client:
        publisher = client.publisher(topic, PublisherSettings(retry=RetrySettings(backoff=FAST, timeout=30)))
        settings = SubscriberSettings(start=StartPoint.EARLIEST, reconnect_backoff=FAST, confirm_acks=True)
        subscriber = client.subscriber(topic, "survivor", handle, settings)
        await subscriber.start(timeout=10)
        before = await asyncio.gather(*(publisher.publish(f"before-{i}".encode()) for i in range(3)))
        await wait_until(lambda: subscriber.stats.confirmed_acks == 3)

        # Down: the stream ends with UNAVAILABLE, and publishing fails with UNAVAILABLE and is
        # retried until the broker is back on the same port.
        await asyncio.to_thread(private_broker.stop)
        pending = [asyncio.ensure_future(publisher.publish(f"after-{i}".encode())) for i in range(3)]
        await asyncio.sleep(0.6)
        assert not any(p.done() for p in pending)
        await asyncio.to_thread(private_broker.start)

        after = await asyncio.wait_for(asyncio.gather(*pending), 30)
        assert publisher.stats.retries >= 1
        await wait_until(lambda: len(got) == 6, timeout=20)
        assert subscriber.stats.reconnects >= 1
        assert subscriber.stats.streams >= 2
        await subscriber.stop()

    # Seqs continue after the restart (the SQLite file kept the topic), and nothing acked
    # before the restart came back.
    assert [r.seq for r in after] == [before[-1].seq + 1, before[-1].seq + 2, before[-1].seq + 3]
    assert [m.data for m in got] == [f"before-{i}".encode() for i in range(3)] + [
        f"after-{i}".encode() for i in range(3)
    ]
    assert all(m.attempt == 1 for m in got)


async def test_start_waits_for_a_broker_that_comes_up(private_broker: Broker, topic: str) -> None:
    await asyncio.to_thread(private_broker.stop)

    async def handle(message: ReceivedMessage) -> None:
        pass

    async with nervebus.Client(private_broker.address) as client:
        subscriber = client.subscriber(topic, "late", handle, SubscriberSettings(reconnect_backoff=FAST))
        starting = asyncio.ensure_future(subscriber.start(timeout=20))
        await asyncio.sleep(0.5)
        assert not starting.done()
        await asyncio.to_thread(private_broker.start)
        await asyncio.wait_for(starting, 20)
        assert subscriber.running
        await subscriber.stop()


async def test_start_timeout_when_broker_stays_down(private_broker: Broker, topic: str) -> None:
    await asyncio.to_thread(private_broker.stop)

    async def handle(message: ReceivedMessage) -> None:
        pass

    async with nervebus.Client(private_broker.address) as client:
        subscriber = client.subscriber(topic, "never", handle, SubscriberSettings(reconnect_backoff=FAST))
        try:
            await subscriber.start(timeout=0.5)
        except nervebus.SubscriberError as err:
            assert "not subscribed" in str(err)
        else:
            raise AssertionError("start() should time out")
        assert not subscriber.running
