"""Subscriber behaviour: nack with delay, the window, lease extension, graceful stop."""

from __future__ import annotations

import asyncio
import time

import nervebus
from nervebus import ReceivedMessage, StartPoint, SubscriberSettings

from .conftest import wait_until


async def publish(client: nervebus.Client, topic: str, count: int) -> list[nervebus.PublishResult]:
    async with client.publisher(topic) as publisher:
        return list(await asyncio.gather(*(publisher.publish(f"m{i}".encode()) for i in range(count))))


async def test_handler_error_nacks_with_delay_and_redelivers_with_attempt_2(
    client: nervebus.Client, topic: str
) -> None:
    [sent] = await publish(client, topic, 1)
    seen: list[tuple[int, int, float]] = []

    async def handle(message: ReceivedMessage) -> None:
        seen.append((message.seq, message.attempt, time.monotonic()))
        if message.attempt == 1:
            raise RuntimeError("first attempt fails")

    settings = SubscriberSettings(start=StartPoint.EARLIEST, nack_delay=0.6)
    async with client.subscriber(topic, "retry", handle, settings) as subscriber:
        await wait_until(lambda: len(seen) == 2)
        await wait_until(lambda: subscriber.stats.acked == 1)
        assert subscriber.stats.handler_errors == 1
        assert subscriber.stats.nacked == 1
    assert [(s, a) for s, a, _ in seen] == [(sent.seq, 1), (sent.seq, 2)]
    gap = seen[1][2] - seen[0][2]
    assert gap >= 0.5, f"redelivered after {gap:.3f} s, before the 0.6 s nack delay"


async def test_explicit_settlement_from_the_handler(client: nervebus.Client, topic: str) -> None:
    await publish(client, topic, 2)
    seen: list[tuple[int, int]] = []

    async def handle(message: ReceivedMessage) -> None:
        seen.append((message.seq, message.attempt))
        if message.attempt == 1:
            assert message.nack(0.1)
            assert not message.ack(), "a second settlement is ignored"
            return
        message.terminate()  # dead-letters (acks, without a dead-letter topic)

    settings = SubscriberSettings(start=StartPoint.EARLIEST)
    async with client.subscriber(topic, "explicit", handle, settings) as subscriber:
        await wait_until(lambda: len(seen) == 4)
        await wait_until(lambda: subscriber.stats.terminated == 2)
        assert subscriber.stats.nacked == 2 and subscriber.stats.acked == 0
    assert sorted(a for _, a in seen) == [1, 1, 2, 2]


async def test_window_bounds_outstanding_messages(client: nervebus.Client, topic: str) -> None:
    await publish(client, topic, 12)
    running = 0
    peak = 0
    done = 0

    async def handle(message: ReceivedMessage) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.15)
        running -= 1
        done += 1

    # Many handler slots, but the window lets only three messages out at a time.
    settings = SubscriberSettings(start=StartPoint.EARLIEST, max_messages=3, concurrency=10, ordered=False)
    async with client.subscriber(topic, "window", handle, settings) as subscriber:
        await wait_until(lambda: done == 12)
        assert subscriber.stats.max_outstanding <= 3
        assert subscriber.stats.received == 12
    assert peak == 3


async def test_window_change_applies(client: nervebus.Client, topic: str) -> None:
    await publish(client, topic, 10)
    running = 0
    peak_after = 0
    release = asyncio.Event()
    widened = False

    async def handle(message: ReceivedMessage) -> None:
        nonlocal running, peak_after
        running += 1
        if widened:
            peak_after = max(peak_after, running)
        await release.wait()
        running -= 1

    settings = SubscriberSettings(start=StartPoint.EARLIEST, max_messages=1, concurrency=10, ordered=False)
    async with client.subscriber(topic, "rewindow", handle, settings) as subscriber:
        await wait_until(lambda: running == 1)
        await asyncio.sleep(0.2)
        assert running == 1, "window of 1 allows one message"
        widened = True
        subscriber.set_window(5)
        await wait_until(lambda: running == 5)
        release.set()
        await wait_until(lambda: subscriber.stats.acked == 10)
    assert peak_after == 5


async def test_lease_extension_keeps_a_slow_message_from_redelivery(
    client: nervebus.Client, topic: str
) -> None:
    await publish(client, topic, 1)
    attempts: list[int] = []

    async def slow(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        await asyncio.sleep(3.0)  # three times the 1 s ack deadline

    settings = SubscriberSettings(start=StartPoint.EARLIEST, ack_deadline=1.0)
    async with client.subscriber(topic, "slow", slow, settings) as subscriber:
        await wait_until(lambda: subscriber.stats.acked == 1, timeout=10)
        assert subscriber.stats.extended >= 2
    assert attempts == [1]
    # A second stream on the subscription gets nothing: the message was acked, never redelivered.
    got: list[int] = []

    async def other(message: ReceivedMessage) -> None:
        got.append(message.seq)

    async with client.subscriber(topic, "slow", other, settings):
        await asyncio.sleep(1.5)
    assert got == []


async def test_without_extension_the_lease_runs_out(client: nervebus.Client, topic: str) -> None:
    await publish(client, topic, 1)
    attempts: list[int] = []

    async def slow(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        await asyncio.sleep(2.5)

    # max_extension=0: leases are never extended, so the broker redelivers after 1 s; the
    # subscriber sees its own message again and keeps one copy (no second handler call).
    settings = SubscriberSettings(start=StartPoint.EARLIEST, ack_deadline=1.0, max_extension=0.0)
    async with client.subscriber(topic, "noext", slow, settings) as subscriber:
        await wait_until(lambda: subscriber.stats.received >= 2, timeout=10)
        assert subscriber.stats.extended == 0
        await wait_until(lambda: subscriber.stats.acked == 1, timeout=10)
    assert attempts == [1]


async def test_graceful_stop_waits_for_running_handlers(client: nervebus.Client, topic: str) -> None:
    await publish(client, topic, 3)
    started = 0
    finished = 0

    async def handle(message: ReceivedMessage) -> None:
        nonlocal started, finished
        started += 1
        await asyncio.sleep(0.8)
        finished += 1

    settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=3, confirm_acks=True)
    subscriber = client.subscriber(topic, "graceful", handle, settings)
    await subscriber.start()
    await wait_until(lambda: started == 3)
    t0 = time.monotonic()
    await subscriber.stop(timeout=10)
    assert time.monotonic() - t0 >= 0.5
    assert finished == 3
    assert subscriber.stats.acked == 3 and subscriber.stats.confirmed_acks == 3
    assert not subscriber.running
    await subscriber.wait()  # stopped without error
    # Everything was acked: nothing comes back.
    got: list[int] = []

    async def other(message: ReceivedMessage) -> None:
        got.append(message.seq)

    async with client.subscriber(topic, "graceful", other, settings):
        await asyncio.sleep(0.5)
    assert got == []


async def test_stop_timeout_cancels_and_nacks_for_immediate_redelivery(
    client: nervebus.Client, topic: str
) -> None:
    await publish(client, topic, 4)
    cancelled = 0
    started = 0

    async def stuck(message: ReceivedMessage) -> None:
        nonlocal cancelled, started
        started += 1
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    # Two run, two wait in the local queue (window 4, concurrency 2).
    settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=2, max_messages=4, ordered=False)
    subscriber = client.subscriber(topic, "impatient", stuck, settings)
    await subscriber.start()
    await wait_until(lambda: started == 2 and subscriber.outstanding == 4)
    t0 = time.monotonic()
    await subscriber.stop(timeout=0.3)
    assert time.monotonic() - t0 < 3
    assert cancelled == 2
    assert subscriber.stats.nacked == 4
    # Nacked with no delay: a new consumer gets all four at once, as redeliveries.
    again: list[ReceivedMessage] = []

    async def fast(message: ReceivedMessage) -> None:
        again.append(message)

    async with client.subscriber(topic, "impatient", fast, SubscriberSettings(ordered=False)):
        await wait_until(lambda: len(again) == 4, timeout=5)
    assert all(m.attempt == 2 for m in again)
    assert subscriber.stats.received == 4


async def test_subscriber_run_is_cancellable(client: nervebus.Client, topic: str) -> None:
    got: list[int] = []

    async def handle(message: ReceivedMessage) -> None:
        got.append(message.seq)

    subscriber = client.subscriber(topic, "run", handle)
    task = asyncio.ensure_future(subscriber.run())
    await wait_until(lambda: subscriber.stats.streams == 1)
    [sent] = await publish(client, topic, 1)
    await wait_until(lambda: got == [sent.seq])
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert not subscriber.running
