"""Publisher flow control: submit() and publish_many() wait for space, in call order.

An in-process fake broker holds every SendPack answer until the test opens its gate, so what is
unconfirmed at any moment is known exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc.aio
import pytest

import nervebus
from nervebus import PublisherSettings
from nervebus.gen.nervebus.v1 import publisher_pb2

from .conftest import wait_until
from .test_fake_server import FakePublisher, serve


class HeldPublisher(FakePublisher):
    """Answers SendPack only once ``gate`` is open; tracks the most messages unanswered."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.received = 0
        self.unanswered = 0
        self.unanswered_bytes = 0
        self.max_unanswered = 0
        self.max_unanswered_bytes = 0

    async def SendPack(
        self, request: publisher_pb2.SendPackRequest, context: grpc.aio.ServicerContext
    ) -> publisher_pb2.SendPackResponse:
        count = len(request.messages)
        size = sum(m.ByteSize() for m in request.messages)
        self.received += count
        self.unanswered += count
        self.unanswered_bytes += size
        self.max_unanswered = max(self.max_unanswered, self.unanswered)
        self.max_unanswered_bytes = max(self.max_unanswered_bytes, self.unanswered_bytes)
        try:
            await self.gate.wait()
            return await super().SendPack(request, context)
        finally:
            self.unanswered -= count
            self.unanswered_bytes -= size


@pytest.fixture
async def held() -> AsyncIterator[tuple[HeldPublisher, nervebus.Client]]:
    fake = HeldPublisher()
    server, address = await serve(fake)
    async with nervebus.Client(address) as client:
        yield fake, client
    fake.gate.set()
    await server.stop(0)


async def still_waiting(task: asyncio.Future[object]) -> bool:
    # Several loop turns (and a little time for the fake's thread-free answers): long enough
    # for a call that was not blocked to finish.
    await asyncio.sleep(0.05)
    return not task.done()


async def test_submit_waits_for_space(held: tuple[HeldPublisher, nervebus.Client]) -> None:
    fake, client = held
    settings = PublisherSettings(max_outstanding_messages=3, linger=0)
    async with client.publisher("t", settings) as publisher:
        futures = [await publisher.submit(f"m{i}".encode()) for i in range(3)]
        fourth = asyncio.ensure_future(publisher.submit(b"m3"))
        await wait_until(lambda: fake.received == 3)
        assert await still_waiting(fourth), "a fourth message must wait while three are unconfirmed"
        fake.gate.set()
        futures.append(await fourth)
        results = [await f for f in futures]
    assert [r.seq for r in results] == [1, 2, 3, 4]
    assert fake.max_unanswered == 3


async def test_publish_many_takes_messages_only_as_space_frees(
    held: tuple[HeldPublisher, nervebus.Client],
) -> None:
    fake, client = held
    taken = 0

    def messages() -> Iterator[bytes]:
        nonlocal taken
        for i in range(50):
            taken += 1
            yield f"m{i}".encode()

    settings = PublisherSettings(max_outstanding_messages=5, linger=0)
    async with client.publisher("t", settings) as publisher:
        call = asyncio.ensure_future(publisher.publish_many(messages()))
        await wait_until(lambda: fake.received == 5)
        assert await still_waiting(call)
        # Five admitted and sent, one more built and waiting for space: memory is bounded by
        # flow control, not by the size of the call.
        assert taken == 6
        fake.gate.set()
        results = await call
    assert [r.seq for r in results] == list(range(1, 51))
    assert fake.max_unanswered == 5
    assert all(len(r.messages) <= 5 for r in fake.requests)


async def test_bytes_bound_the_unconfirmed_messages(held: tuple[HeldPublisher, nervebus.Client]) -> None:
    fake, client = held
    settings = PublisherSettings(max_outstanding_bytes=1000, linger=0)
    async with client.publisher("t", settings) as publisher:
        call = asyncio.ensure_future(publisher.publish_many([b"x" * 300] * 10))
        await wait_until(lambda: fake.received > 0)
        assert await still_waiting(call)
        assert fake.received < 10
        fake.gate.set()
        results = await call
    assert len(results) == 10
    assert fake.max_unanswered_bytes <= 1000


async def test_waiting_calls_are_admitted_in_call_order(held: tuple[HeldPublisher, nervebus.Client]) -> None:
    fake, client = held
    settings = PublisherSettings(max_outstanding_messages=3, linger=0)
    async with client.publisher("t", settings) as publisher:
        batch = [nervebus.Message(f"a{i}".encode(), ordering_key="k") for i in range(7)]
        first = asyncio.ensure_future(publisher.publish_many(batch))
        await wait_until(lambda: fake.received == 3)
        # Called while the batch still waits: appended after all of it, though space for one
        # message frees up long before the batch's last one is admitted.
        second = asyncio.ensure_future(publisher.publish(b"b", ordering_key="k"))
        third = asyncio.ensure_future(publisher.submit(b"c"))
        await asyncio.sleep(0)
        fake.gate.set()
        await asyncio.gather(first, second, third)
        await (await third)
    assert [m.data for m in fake.appended] == [f"a{i}".encode() for i in range(7)] + [b"b", b"c"]


async def test_small_message_does_not_overtake_a_waiting_large_one(
    held: tuple[HeldPublisher, nervebus.Client],
) -> None:
    fake, client = held
    settings = PublisherSettings(max_outstanding_bytes=1000, linger=0)
    async with client.publisher("t", settings) as publisher:
        first = await publisher.submit(b"1" * 600)
        await wait_until(lambda: fake.received == 1)
        large = asyncio.ensure_future(publisher.publish_many([b"2" * 600]))
        await asyncio.sleep(0)
        # It would fit in the bytes left, but a call made earlier is waiting.
        small = asyncio.ensure_future(publisher.submit(b"3"))
        assert await still_waiting(small)
        fake.gate.set()
        await asyncio.gather(first, large, await small)
    assert [m.data[:1] for m in fake.appended] == [b"1", b"2", b"3"]


async def test_cancelled_publish_many_sends_only_what_was_admitted(
    held: tuple[HeldPublisher, nervebus.Client],
) -> None:
    fake, client = held
    settings = PublisherSettings(max_outstanding_messages=3, linger=0)
    async with client.publisher("t", settings) as publisher:
        call = asyncio.ensure_future(publisher.publish_many([f"m{i}".encode() for i in range(10)]))
        await wait_until(lambda: fake.received == 3)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        fake.gate.set()
        await publisher.flush()
        assert [m.data for m in fake.appended] == [b"m0", b"m1", b"m2"]
        # The space of the admitted messages came back.
        assert [r.seq for r in await publisher.publish_many([b"n0", b"n1", b"n2"])] == [4, 5, 6]


async def test_close_timeout_fails_the_waiting_messages(held: tuple[HeldPublisher, nervebus.Client]) -> None:
    fake, client = held
    settings = PublisherSettings(max_outstanding_messages=2, linger=0)
    publisher = client.publisher("t", settings)
    many = asyncio.ensure_future(publisher.publish_many([b"a", b"b", b"c", b"d"], return_exceptions=True))
    await wait_until(lambda: fake.received == 2)
    one = asyncio.ensure_future(publisher.submit(b"e"))
    await asyncio.sleep(0)
    await publisher.close(timeout=0.2)
    results = await many
    assert len(results) == 4
    assert all(isinstance(r, nervebus.PublisherClosedError) for r in results), results
    with pytest.raises(nervebus.PublisherClosedError):
        await one
