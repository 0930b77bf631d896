"""A Publish stream on one topic: batches confirmed in order under the broker's credit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, cast

import grpc
import grpc.aio

from .errors import PublisherClosedError, StatusError, internal_outcome_unknown
from .gen.nervebus.v1 import message_pb2, publisher_pb2, publisher_pb2_grpc
from .retry import DEFAULT_RETRYABLE_CODES, Backoff
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


@dataclass
class _Batch:
    """One batch as written (message ids included, so a resend is deduplicated) and its future."""

    request: publisher_pb2.PublishRequest
    messages: int
    size: int
    ids: list[str]
    future: asyncio.Future[list[PublishResult]]


#: Errors of a write on a stream that broke meanwhile (its status, "RPC already finished", a
#: write after the end of writing): the reader sees the break, and resends what is unconfirmed.
_BROKEN_WRITE = (grpc.RpcError, asyncio.InvalidStateError, RuntimeError)


class StreamPublisher:
    """A Publish stream on one topic, for high-rate producers.

    Get one from :meth:`nervebus.Client.stream_publisher`. Each :meth:`submit` (or
    :meth:`send`) is one batch, appended after the stream's earlier batches (its messages get
    consecutive seqs) and confirmed once durable, with the results SendPack would give. The
    broker's credit is the flow control: a batch waits until it fits in the credit left, in call
    order.

    A stream that breaks with a retryable status (a broker restart: UNAVAILABLE) is reopened
    with backoff, and every batch not confirmed is sent again, in order, with its message ids:
    the broker's deduplication makes a batch appended before the break count once (its results
    then say :attr:`Outcome.DUPLICATE`, with the seqs of the first append). Only a non-retryable
    status, or no reopened stream within ``reconnect_deadline``, fails the unconfirmed batches
    with a :class:`nervebus.StatusError`.

    Args:
        max_messages: Credit to ask for: the most messages sent and not yet confirmed; 0 takes
            the broker's largest (its max pack count).
        max_bytes: Likewise in bytes; 0 takes the broker's largest (its max pack bytes).
        no_confirms: Fire and forget (for ephemeral topics): no confirms; a batch's result is
            an empty list once it is written to the stream. Nothing is sent again after a break.
        auto_message_id: Give messages without an id a random one, so a resend is deduplicated.
        reconnect_backoff: Waits between attempts to reopen a broken stream.
        reconnect_deadline: Seconds from a break during which the stream is reopened; then the
            batches not confirmed fail with its error. 0 never reopens.
        retryable_codes: Stream errors that reopen the stream; others fail it. A stream that
            ends INTERNAL (the connection reset under it) counts as UNAVAILABLE.
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
        reconnect_backoff: Backoff | None = None,
        reconnect_deadline: float = 60.0,
        retryable_codes: Collection[grpc.StatusCode] = DEFAULT_RETRYABLE_CODES,
    ) -> None:
        if not 0 <= max_messages < 2**32 or max_bytes < 0:
            raise ValueError("max_messages and max_bytes must be ≥ 0")
        if reconnect_deadline < 0:
            raise ValueError("reconnect_deadline must be ≥ 0")
        self.topic = topic
        self._open = publisher_pb2.PublishOpen(
            topic=topic, max_messages=max_messages, max_bytes=max_bytes, no_confirms=no_confirms
        )
        self._no_confirms = no_confirms
        self._auto_message_id = auto_message_id
        self._backoff = reconnect_backoff or Backoff(initial=0.1, maximum=5.0)
        self._deadline = reconnect_deadline
        self._retryable = frozenset(retryable_codes)
        self._stub: Any = publisher_pb2_grpc.PublisherServiceStub(channel)  # type: ignore[no-untyped-call]
        self._call: Any = None
        #: Whether the current call is open (its credit known) and not broken.
        self._live = False
        self._reader: asyncio.Task[None] | None = None
        self._opened: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        #: Batches written on the current call, waiting for their confirm, in order.
        self._pending: deque[_Batch] = deque()
        self._write_lock = asyncio.Lock()
        self.granted = (0, 0)
        self._credit = [0, 0]
        self._failure: StatusError | None = None
        self._closed = False

    async def start(self) -> StreamPublisher:
        """Opens the stream and waits until the broker granted the credit; raises its refusal.

        A broker that cannot be reached is tried again like a broken stream (see the class).
        """
        loop = asyncio.get_running_loop()
        self._opened = loop.create_future()
        self._reader = loop.create_task(self._run())
        await self._opened
        return self

    async def submit(self, messages: Sequence[Message | bytes | str]) -> asyncio.Future[list[PublishResult]]:
        """Sends ``messages`` as one batch once the credit allows; returns its results' future.

        The future's value is one :class:`nervebus.PublishResult` per message, in order.

        Raises:
            ValueError: An empty batch, or one larger than the whole credit.
            StatusError: The stream already failed for good.
            PublisherClosedError: :meth:`close` was called.
        """
        if not messages:
            raise ValueError("a batch needs at least one message")
        wire = [_to_proto(m, self._auto_message_id) for m in messages]
        size = sum(_size(m) for m in wire)
        self._check_fits(len(wire), size)
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
            batch = _Batch(
                publisher_pb2.PublishRequest(messages=wire),
                len(wire),
                size,
                [m.message_id for m in wire],
                future,
            )
            if self._no_confirms:
                future.set_result([])
            else:
                self._pending.append(batch)
            # The call that gave the credit: after a break the batch is resent on the new one.
            call = self._call
            with contextlib.suppress(*_BROKEN_WRITE):
                await call.write(batch.request)
        return future

    async def send(self, messages: Sequence[Message | bytes | str]) -> list[PublishResult]:
        """:meth:`submit`, then waits for the batch's confirm."""
        return await (await self.submit(messages))

    async def close(self) -> None:
        """Half-closes the stream and waits until every batch is confirmed and the stream ended.

        A stream that breaks meanwhile is reopened (see the class). Raises the stream's error,
        if it failed.
        """
        if not self._closed:
            self._closed = True
            self._closing.set()
            self._changed.set()
            if self._live and self._failure is None:
                async with self._write_lock:
                    with contextlib.suppress(*_BROKEN_WRITE):
                        await self._call.done_writing()
        if self._reader is not None:
            await self._reader
        if self._failure is not None:
            raise self._failure

    async def __aenter__(self) -> StreamPublisher:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_fits(self, messages: int, size: int) -> None:
        if messages > self.granted[0] or size > self.granted[1]:
            raise ValueError(
                f"a batch of {messages} messages and {size} bytes never fits the credit of "
                f"{self.granted[0]} messages and {self.granted[1]} bytes"
            )

    async def _run(self) -> None:
        """Keeps a stream open: reads it, and reopens it (with backoff) when it breaks."""
        assert self._opened is not None
        attempt = 0
        broken_at: float | None = None
        while True:
            try:
                await self._serve()
                if self._closed and not self._pending:
                    return
                # Ended by the broker with batches outstanding: their outcome is unknown.
                error = StatusError(
                    grpc.StatusCode.UNAVAILABLE, "stream ended before the batch was confirmed", _OPERATION
                )
            except grpc.RpcError as err:
                error = internal_outcome_unknown(StatusError.from_rpc_error(err, _OPERATION))
            except (asyncio.InvalidStateError, RuntimeError) as err:
                # A call the channel could not carry on: as a lost connection, retried.
                error = StatusError(grpc.StatusCode.UNAVAILABLE, str(err), _OPERATION)
            was_live = self._live
            self._live = False
            self._credit = [0, 0]
            if self._closed and not self._pending:
                return  # closed with every batch confirmed: how the stream ended does not matter
            if was_live or broken_at is None:
                attempt, broken_at = 0, time.monotonic()
            wait = self._backoff.delay(attempt)
            attempt += 1
            if error.code not in self._retryable or time.monotonic() + wait - broken_at > self._deadline:
                self._fail(error)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), wait)

    async def _serve(self) -> None:
        """One stream: opens it, sends the unconfirmed batches again, reads confirms and credit."""
        assert self._opened is not None
        call = self._stub.Publish()
        self._call = call
        with contextlib.suppress(*_BROKEN_WRITE):  # the read below raises the call's status
            await call.write(publisher_pb2.PublishRequest(open=self._open))
        async for res in call:
            if res.HasField("opened"):
                self.granted = (res.opened.messages, res.opened.bytes)
                await self._resend(call)
                self._live = True
                if not self._opened.done():
                    self._opened.set_result(None)
            for confirm in res.confirms:
                if not self._pending:
                    break
                batch = self._pending.popleft()
                results = [
                    PublishResult(
                        seq=r.seq,
                        trace_id=r.trace_id,
                        message_id=batch.ids[i] if i < len(batch.ids) else "",
                        outcome=Outcome(r.outcome) if r.outcome in (1, 2, 3) else Outcome.UNKNOWN,
                    )
                    for i, r in enumerate(confirm.result.results)
                ]
                if not batch.future.done():
                    batch.future.set_result(results)
            if res.HasField("credit"):
                self._credit[0] += res.credit.messages
                self._credit[1] += res.credit.bytes
            self._changed.set()

    async def _resend(self, call: Any) -> None:
        """Writes the batches not confirmed on the last stream, in order, before any new one.

        The credit stays zero until they are out, so no submit writes in between.
        """
        credit = list(self.granted)
        resend = list(self._pending)
        self._pending.clear()
        for batch in resend:
            if batch.messages > credit[0] or batch.size > credit[1]:
                # The reopened stream grants less (the broker's limits changed): it never fits.
                batch.future.set_exception(
                    StatusError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"a batch of {batch.messages} messages no longer fits the stream's credit",
                        _OPERATION,
                    )
                )
                continue
            credit[0] -= batch.messages
            credit[1] -= batch.size
            self._pending.append(batch)
            with contextlib.suppress(*_BROKEN_WRITE):
                await call.write(batch.request)
        if self._closed:
            with contextlib.suppress(*_BROKEN_WRITE):
                await call.done_writing()
        self._credit = credit

    def _fail(self, failure: StatusError) -> None:
        self._failure = failure
        assert self._opened is not None
        if not self._opened.done():
            self._opened.set_exception(failure)
        while self._pending:
            batch = self._pending.popleft()
            if not batch.future.done():
                batch.future.set_exception(failure)
        self._changed.set()
