"""Batching: packs are cut by count, bytes and linger time; a pack's seqs are contiguous."""

from __future__ import annotations

import asyncio
import time

import nervebus
from nervebus import PublisherSettings


def assert_contiguous(seqs: list[int]) -> None:
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


async def test_batches_by_count(client: nervebus.Client, topic: str) -> None:
    settings = PublisherSettings(max_messages=10, linger=5.0, max_inflight_packs=1)
    async with client.publisher(topic, settings) as publisher:
        results = await asyncio.wait_for(
            asyncio.gather(*(publisher.publish(f"m{i}".encode()) for i in range(30))), 10
        )
        # 30 messages, 10 per pack: three full packs, none waited for the 5 s linger.
        assert publisher.stats.packs == 3
        assert publisher.stats.attempts == 3
    seqs = [r.seq for r in results]
    for pack in range(3):
        assert_contiguous(seqs[pack * 10 : pack * 10 + 10])
    # One pack in flight at a time: the packs follow each other too.
    assert_contiguous(seqs)


async def test_batches_by_bytes(client: nervebus.Client, topic: str) -> None:
    payload = b"x" * 1000
    settings = PublisherSettings(max_bytes=2500, linger=0.2, max_inflight_packs=1)
    async with client.publisher(topic, settings) as publisher:
        results = await asyncio.wait_for(asyncio.gather(*(publisher.publish(payload) for _ in range(6))), 10)
        # ~1.05 KB per message with its id and trace context: two fit in 2500 bytes.
        assert publisher.stats.packs == 3
    assert_contiguous([r.seq for r in results])


async def test_linger_collects_then_sends(client: nervebus.Client, topic: str) -> None:
    settings = PublisherSettings(max_messages=100, linger=0.3)
    async with client.publisher(topic, settings) as publisher:
        started = time.monotonic()
        first = asyncio.ensure_future(publisher.publish(b"a"))
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(publisher.publish(b"b"))
        results = await asyncio.wait_for(asyncio.gather(first, second), 10)
        elapsed = time.monotonic() - started
        assert publisher.stats.packs == 1, "both messages should share the lingering pack"
        assert elapsed >= 0.25, f"the pack left after {elapsed:.3f} s, before the 0.3 s linger"
    assert results[1].seq == results[0].seq + 1


async def test_flush_sends_without_waiting_for_linger(client: nervebus.Client, topic: str) -> None:
    settings = PublisherSettings(linger=30.0)
    publisher = client.publisher(topic, settings)
    pending = [asyncio.ensure_future(publisher.publish(f"{i}".encode())) for i in range(5)]
    await asyncio.sleep(0)
    await asyncio.wait_for(publisher.flush(), 5)
    assert all(p.done() for p in pending)
    assert_contiguous([p.result().seq for p in pending])
    await publisher.close()


async def test_close_flushes_everything_and_rejects_new_messages(client: nervebus.Client, topic: str) -> None:
    settings = PublisherSettings(linger=30.0, max_messages=7, max_outstanding_messages=10)
    publisher = client.publisher(topic, settings)
    # More messages than flow control admits at once: some wait for space, and close() must
    # still publish them.
    pending = [asyncio.ensure_future(publisher.publish(f"{i}".encode())) for i in range(25)]
    await asyncio.sleep(0)
    await asyncio.wait_for(publisher.close(), 10)
    assert all(p.done() for p in pending)
    assert_contiguous(sorted(p.result().seq for p in pending))
    assert publisher.stats.messages == 25
    try:
        await publisher.publish(b"late")
    except nervebus.PublisherClosedError:
        pass
    else:
        raise AssertionError("publish() after close() should raise PublisherClosedError")


async def test_flow_control_bounds_outstanding_messages(client: nervebus.Client, topic: str) -> None:
    settings = PublisherSettings(max_outstanding_messages=4, max_messages=2, linger=0.001)
    async with client.publisher(topic, settings) as publisher:
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, publisher._outstanding_messages)
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(watch())
        results = await asyncio.wait_for(asyncio.gather(*(publisher.publish(b"m") for _ in range(40))), 10)
        watcher.cancel()
    assert peak <= 4
    assert len({r.seq for r in results}) == 40
