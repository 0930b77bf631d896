"""A settlement lost with its stream is applied to the redelivery, not handed to the handler again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import nervebus
from nervebus import Backoff, ReceivedMessage, StartPoint, SubscriberSettings

from .conftest import Broker, wait_until


class _Link:
    """One proxied connection: the client's socket and the broker's."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream = upstream
        self.frozen = False


class CuttableProxy:
    """A TCP proxy in front of the broker that a test cuts as a lost network would.

    ``freeze()`` drops whatever the client sends from then on (the broker never reads it);
    ``cut()`` aborts every connection (the client sees UNAVAILABLE, the broker a reset, so it
    redelivers what the streams held). Connections made afterwards are forwarded as usual.
    """

    def __init__(self, broker_port: int) -> None:
        self._broker_port = broker_port
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.port = 0
        self.dropped = 0  # bytes dropped while frozen

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def freeze(self) -> None:
        for link in self._links:
            link.frozen = True

    def cut(self) -> None:
        for link in self._links:
            link.client.transport.abort()
            link.upstream.transport.abort()
        self._links.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._broker_port)
        link = _Link(writer, up_writer)
        self._links.add(link)
        await asyncio.gather(
            self._pipe(reader, up_writer, lambda: link.frozen),
            self._pipe(up_reader, writer, lambda: False),
        )

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: Callable[[], bool]
    ) -> None:
        try:
            while data := await src.read(65536):
                if frozen():
                    self.dropped += len(data)
                    continue
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.transport.abort()


async def _settle_then_lose(
    broker: Broker, topic: str, settle: Callable[[ReceivedMessage], Awaitable[None]]
) -> tuple[list[int], int]:
    """Delivers one message through a proxy; its handler settles it with the connection frozen,
    then cuts it. Returns the attempts the handler saw and the deliveries the subscriber got."""
    proxy = CuttableProxy(broker.port)
    await proxy.start()
    attempts: list[int] = []

    async def handle(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        if len(attempts) > 1:
            return
        proxy.freeze()
        await settle(message)
        # The settlement's request went to the frozen connection (and nothing reached the
        # broker since the freeze); now the connection is lost.
        await wait_until(lambda: proxy.dropped > 0)
        proxy.cut()

    try:
        async with (
            nervebus.Client(broker.address) as direct,
            nervebus.Client(f"127.0.0.1:{proxy.port}") as proxied,
        ):
            await direct.publisher(topic).publish(b"one")
            settings = SubscriberSettings(start=StartPoint.EARLIEST, reconnect_backoff=Backoff(0.02, 0.02))
            subscriber = proxied.subscriber(topic, "s", handle, settings)
            await subscriber.start(timeout=10)

            async def settled() -> bool:
                stats = await direct.admin.get_stats(topic)
                return stats.subscription("s").backlog == 0

            for _ in range(500):
                if await settled():
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the message was not settled within 10 s")
            await subscriber.stop()
            return attempts, subscriber.stats.received
    finally:
        await proxy.close()


async def _ack(message: ReceivedMessage) -> None:
    await message.ack_with_result()  # resolves once written, without confirm_acks


async def _terminate(message: ReceivedMessage) -> None:
    message.terminate()


@pytest.mark.parametrize("settle", [_ack, _terminate], ids=["ack", "terminate"])
async def test_settlement_lost_with_its_stream_is_not_handled_again(
    broker: Broker, topic: str, settle: Callable[[ReceivedMessage], Awaitable[None]]
) -> None:
    attempts, received = await _settle_then_lose(broker, topic, settle)
    assert received == 2, "the broker redelivered the message to the new stream"
    assert attempts == [1], "handled once although the broker redelivered it"
