"""A Publish stream on one topic: batches confirmed in order under the broker's credit."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any, cast

import grpc
import grpc.aio

from .errors import PublisherClosedError, StatusError
from .gen.nervebus.v1 import message_pb2, publisher_pb2, publisher_pb2_grpc
from .types import Message, Outcome, PublishResult

__all__ = ["StreamPublisher"]

_OPERATION = "Publish"


def _to_proto(m: Message | bytes | str, auto_message_id: bool) -> message_pb2.Message:
    if not isinstance(m, Message):
        m = Message(m)
    data = m.data.encode("utf-8") if isinstance(m.data, str) else bytes(m.data)
    message_id = m.message_id or (os.urandom(16).hex() if auto_message_id else "")
    out = message_pb2.Message(
        data=data, attributes=dict(m.attributes or {}), ordering_key=m.ordering_key, message_id=message_id
    )
    if m.deliver_at is not None:
        deliver_at = m.deliver_at if m.deliver_at.tzinfo is not None else m.deliver_at.replace(tzinfo=UTC)
        out.deliver_at.FromDatetime(deliver_at)
    elif m.delay is not None:
        seconds = m.delay.total_seconds() if isinstance(m.delay, timedelta) else float(m.delay)
        if seconds < 0:
            raise ValueError("delay must be ≥ 0")
        out.delay.FromTimedelta(timedelta(seconds=seconds))
    if m.priority is not None:
        out.priority = cast("message_pb2.Priority", m.priority.value)
    return out


def _size(m: message_pb2.Message) -> int:
    """The size the broker counts: data, attribute keys and values, ordering key, message id."""
    n = len(m.data) + len(m.ordering_key.encode()) + len(m.message_id.encode())
    for k, v in m.attributes.items():
        n += len(k.encode()) + len(v.encode())
    return n


class StreamPublisher:
    """A Publish stream on one topic, for high-rate producers.

    Get one from :meth:`nervebus.Client.stream_publisher`. Each :meth:`submit` (or
    :meth:`send`) is one batch, appended after the stream's earlier batches (its messages get
    consecutive seqs) and confirmed once durable, with the results SendPack would give. The
    broker's credit is the flow control: a batch waits until it fits in the credit left, in call
    order. The first error ends the stream and fails every batch not confirmed yet with a
    :class:`nervebus.StatusError` (its outcome is unknown: send it again on a new stream, with
    the same message ids, to stay idempotent). No reconnects.

    Args:
        max_messages: Credit to ask for: the most messages sent and not yet confirmed; 0 takes
            the broker's largest (its max pack count).
        max_bytes: Likewise in bytes; 0 takes the broker's largest (its max pack bytes).
        no_confirms: Fire and forget (for ephemeral topics): no confirms; a batch's result is
            an empty list once it is written to the stream. Errors still end the stream.
        auto_message_id: Give messages without an id a random one, so a resend is deduplicated.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        topic: str,
        *,
        max_messages: int = 0,
        max_bytes: int = 0,
        no_confirms: bool = False,
        auto_message_id: bool = True,
    ) -> None:
        if not 0 <= max_messages < 2**32 or max_bytes < 0:
            raise ValueError("max_messages and max_bytes must be ≥ 0")
        self.topic = topic
        self._open = publisher_pb2.PublishOpen(
            topic=topic, max_messages=max_messages, max_bytes=max_bytes, no_confirms=no_confirms
        )
        self._no_confirms = no_confirms
        self._auto_message_id = auto_message_id
        self._stub: Any = publisher_pb2_grpc.PublisherServiceStub(channel)  # type: ignore[no-untyped-call]
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._pending: deque[tuple[list[str], asyncio.Future[list[PublishResult]]]] = deque()
        self._write_lock = asyncio.Lock()
        self.granted = (0, 0)
        self._credit = [0, 0]
        self._failure: StatusError | None = None
        self._closed = False

    async def start(self) -> StreamPublisher:
        """Opens the stream and waits until the broker granted the credit; raises its refusal."""
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        self._call = self._stub.Publish()
        self._reader = loop.create_task(self._read())
        await self._call.write(publisher_pb2.PublishRequest(open=self._open))
        await self._opened
        return self

    async def submit(self, messages: Sequence[Message | bytes | str]) -> asyncio.Future[list[PublishResult]]:
        """Sends ``messages`` as one batch once the credit allows; returns its results' future.

        The future's value is one :class:`nervebus.PublishResult` per message, in order.

        Raises:
            ValueError: An empty batch, or one larger than the whole credit.
            StatusError: The stream already failed.
            PublisherClosedError: :meth:`close` was called.
        """
        if not messages:
            raise ValueError("a batch needs at least one message")
        wire = [_to_proto(m, self._auto_message_id) for m in messages]
        size = sum(_size(m) for m in wire)
        if len(wire) > self.granted[0] or size > self.granted[1]:
            raise ValueError(
                f"a batch of {len(wire)} messages and {size} bytes never fits the credit of "
                f"{self.granted[0]} messages and {self.granted[1]} bytes"
            )
        async with self._write_lock:
            while (
                self._failure is None
                and not self._closed
                and (self._credit[0] < len(wire) or self._credit[1] < size)
            ):
                self._changed.clear()
                await self._changed.wait()
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise PublisherClosedError(f"stream publisher of topic {self.topic!r} is closed")
            self._credit[0] -= len(wire)
            self._credit[1] -= size
            future: asyncio.Future[list[PublishResult]] = asyncio.get_running_loop().create_future()
            if self._no_confirms:
                future.set_result([])
            else:
                self._pending.append(([m.message_id for m in wire], future))
            await self._call.write(publisher_pb2.PublishRequest(messages=wire))
        return future

    async def send(self, messages: Sequence[Message | bytes | str]) -> list[PublishResult]:
        """:meth:`submit`, then waits for the batch's confirm."""
        return await (await self.submit(messages))

    async def close(self) -> None:
        """Half-closes the stream and waits until every batch is confirmed and the stream ended.

        Raises the stream's error, if it had one.
        """
        if not self._closed:
            self._closed = True
            self._changed.set()
            if self._call is not None and self._failure is None:
                async with self._write_lock:
                    await self._call.done_writing()
        if self._reader is not None:
            await self._reader
        if self._failure is not None:
            raise self._failure

    async def __aenter__(self) -> StreamPublisher:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _read(self) -> None:
        assert self._opened is not None
        try:
            async for res in self._call:
                if res.HasField("opened"):
                    self.granted = (res.opened.messages, res.opened.bytes)
                    self._credit = list(self.granted)
                    if not self._opened.done():
                        self._opened.set_result(None)
                for confirm in res.confirms:
                    if not self._pending:
                        break
                    ids, future = self._pending.popleft()
                    results = [
                        PublishResult(
                            seq=r.seq,
                            trace_id=r.trace_id,
                            message_id=ids[i] if i < len(ids) else "",
                            outcome=Outcome(r.outcome) if r.outcome in (1, 2, 3) else Outcome.UNKNOWN,
                        )
                        for i, r in enumerate(confirm.result.results)
                    ]
                    if not future.done():
                        future.set_result(results)
                if res.HasField("credit"):
                    self._credit[0] += res.credit.messages
                    self._credit[1] += res.credit.bytes
                self._changed.set()
        except grpc.RpcError as err:
            self._failure = StatusError.from_rpc_error(err, _OPERATION)
        finally:
            failure = self._failure or StatusError(
                grpc.StatusCode.UNAVAILABLE, "stream ended before the batch was confirmed", _OPERATION
            )
            if not self._opened.done():
                self._failure = failure
                self._opened.set_exception(failure)
            while self._pending:
                _, future = self._pending.popleft()
                if not future.done():
                    future.set_exception(failure)
            self._changed.set()
