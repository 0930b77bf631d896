"""The asyncio publisher: batches messages into SendPack calls, retries, keeps key order."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast, overload

import grpc
import grpc.aio
from opentelemetry.trace import Span, TracerProvider

from ._owner_router import OwnerRouter
from .errors import (
    NerveBusError,
    OrderingKeyPausedError,
    PublisherClosedError,
    StatusError,
    internal_outcome_unknown,
)
from .gen.nervebus.v1 import message_pb2, publisher_pb2, publisher_pb2_grpc
from .retry import RetrySettings
from .tracing import Tracing
from .types import Message, Outcome, Priority, PublishResult

__all__ = ["Publisher", "PublisherSettings", "PublisherStats"]

_OUTCOMES = {
    publisher_pb2.MessageResult.OUTCOME_APPENDED: Outcome.APPENDED,
    publisher_pb2.MessageResult.OUTCOME_DUPLICATE: Outcome.DUPLICATE,
    publisher_pb2.MessageResult.OUTCOME_SCHEDULED: Outcome.SCHEDULED,
}

# Per-message framing inside a SendPackRequest (field tag + length varint), counted against
# max_bytes so a pack never exceeds it on the wire by more than a few bytes.
_FRAMING_BYTES = 6

#: What publish_many() takes per message: a Message, or just the data.
Publishable = Message | bytes | bytearray | memoryview | str

# Generated message ids: 32 random hex digits each, cut from one urandom() call per 256 ids
# (uuid4() per message cost 1.7 µs, a third of the publish fast path).
_IDS_PER_REFILL = 256

# The broker's INVALID_ARGUMENT about one message of a pack: "messages[3]: …",
# "messages[3].attributes: …".
_BAD_MESSAGE = re.compile(r"^messages\[(\d+)\]")


@dataclass(frozen=True)
class PublisherSettings:
    """How a :class:`Publisher` batches, limits and retries.

    A pack is sent as soon as it holds ``max_messages`` messages or ``max_bytes`` bytes, or
    ``linger`` seconds after its first message arrived, whichever comes first. The defaults
    are the same in the Go and TypeScript clients (docs/clients.md).

    Attributes:
        max_messages: Most messages in one pack (the broker's default limit is 10000).
        max_bytes: Most bytes in one pack (the broker's default limit is 16 MiB). A single
            larger message is sent alone.
        linger: Seconds a pack waits for more messages. 0 still batches everything published
            in the same event-loop turn.
        max_inflight_packs: SendPack calls in progress at once.
        max_outstanding_messages: Messages published but not yet confirmed; ``publish()``,
            ``submit()`` and ``publish_many()`` wait (in call order) while this many are
            outstanding.
        max_outstanding_bytes: The same bound in bytes.
        call_timeout: Deadline of one SendPack attempt, in seconds. An attempt that runs out
            of it is retried (with the same message ids) while ``retry.timeout`` allows.
        retry: Which failures are retried, with what backoff, for how long.
        auto_message_id: Give messages published without a message id a random one, so that
            the broker deduplicates retries whose first attempt did land.
        tracing: Create producer spans and inject their context into the attributes.
    """

    max_messages: int = 1000
    max_bytes: int = 1 << 20
    linger: float = 0.005
    max_inflight_packs: int = 4
    max_outstanding_messages: int = 10_000
    max_outstanding_bytes: int = 64 << 20
    call_timeout: float = 30.0
    retry: RetrySettings = field(default_factory=RetrySettings)
    auto_message_id: bool = True
    tracing: bool = True

    def __post_init__(self) -> None:
        for name in (
            "max_messages",
            "max_bytes",
            "max_inflight_packs",
            "max_outstanding_messages",
            "max_outstanding_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"PublisherSettings.{name} must be ≥ 1")
        if self.linger < 0:
            raise ValueError("PublisherSettings.linger must be ≥ 0")
        if self.call_timeout <= 0:
            raise ValueError("PublisherSettings.call_timeout must be > 0")


@dataclass
class PublisherStats:
    """Counters of one publisher, for tests and monitoring.

    Attributes:
        messages: Messages confirmed by the broker.
        packs: SendPack calls that succeeded.
        attempts: SendPack calls made, including failed ones.
        retries: Attempts that were retries of a failed one.
        failed_messages: Messages whose publish raised.
    """

    messages: int = 0
    packs: int = 0
    attempts: int = 0
    retries: int = 0
    failed_messages: int = 0


class _Batch:
    """The results of one publish_many() call, filled in (by index) as its messages settle."""

    __slots__ = ("done", "failure", "listed", "results", "unsettled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.results: list[PublishResult | BaseException | None] = []
        self.unsettled = 0
        # Every message was taken from the caller's iterable (which may itself have raised).
        self.listed = False
        self.failure: BaseException | None = None
        self.done: asyncio.Future[None] = loop.create_future()

    def settle(self, index: int, outcome: PublishResult | BaseException) -> None:
        self.results[index] = outcome
        self.unsettled -= 1
        self.check()

    def check(self) -> None:
        if self.listed and self.unsettled == 0 and not self.done.done():
            self.done.set_result(None)


class _Item:
    """One message on its way: built, admitted by flow control, then in a pack."""

    __slots__ = ("index", "message", "settled", "sink", "size", "span")

    def __init__(
        self,
        message: message_pb2.Message,
        size: int,
        span: Span | None,
        sink: asyncio.Future[PublishResult] | _Batch,
        index: int,
    ) -> None:
        self.message = message
        self.size = size
        self.span = span
        # Where the outcome goes: the future submit() returned, or the publish_many() call's
        # results at ``index``; one future per call instead of one per message.
        self.sink = sink
        self.index = index
        # Settled already: a message refused alone, or failed because its key was paused,
        # is not settled again when the rest of its pack is.
        self.settled = False

    def settle(self, outcome: PublishResult | BaseException) -> None:
        self.settled = True
        sink = self.sink
        if isinstance(sink, _Batch):
            sink.settle(self.index, outcome)
        elif not sink.done():
            if isinstance(outcome, BaseException):
                sink.set_exception(outcome)
                # Nobody may be awaiting (the caller was cancelled): mark it retrieved.
                sink.exception()
            else:
                sink.set_result(outcome)


class _Waiting:
    """A call's messages waiting for flow-control space; admitted in call order.

    ``head`` is the next message to admit (None once all are); ``admitted`` resolves when the
    last one is, or fails when the publisher gives up on them.
    """

    __slots__ = ("admitted", "head")

    def __init__(self, head: _Item | None, loop: asyncio.AbstractEventLoop) -> None:
        self.head = head
        self.admitted: asyncio.Future[None] = loop.create_future()

    def advance(self) -> _Item | None:
        """Called once ``head`` is admitted; returns the new head."""
        self.head = None
        return None

    def abandon(self, err: BaseException) -> None:
        """Fails what is not admitted yet (the publisher closed before there was space)."""
        if not self.admitted.done():
            self.admitted.set_exception(err)


class _BatchWaiting(_Waiting):
    """The messages of one publish_many() call, built one at a time as they are admitted.

    Building lazily keeps memory bounded by flow control, not by the size of the call. A
    message that cannot be built (bad type, negative delay) gets its error as its result.
    """

    __slots__ = ("batch", "build", "context", "messages")

    def __init__(
        self,
        batch: _Batch,
        messages: Iterator[Publishable],
        build: Callable[[Publishable, _Batch, int], _Item],
        loop: asyncio.AbstractEventLoop,
        context: contextvars.Context | None,
    ) -> None:
        super().__init__(None, loop)
        self.batch = batch
        self.messages = messages
        self.build = build
        # The caller's context, for the parents of producer spans of messages built later,
        # from another task (None when tracing is inactive).
        self.context = context

    def advance(self) -> _Item | None:
        self.head = self.context.run(self._next) if self.context is not None else self._next()
        return self.head

    def _next(self) -> _Item | None:
        batch = self.batch
        while True:
            try:
                raw = next(self.messages)
            except StopIteration:
                self._listed()
                return None
            except Exception as err:  # the caller's iterable failed: the call raises it
                batch.failure = err
                self._listed()
                return None
            index = len(batch.results)
            try:
                item = self.build(raw, batch, index)
            except Exception as err:
                batch.results.append(err)
                continue
            batch.results.append(None)
            batch.unsettled += 1
            return item

    def _listed(self) -> None:
        self.batch.listed = True
        self.batch.check()
        return None

    def abandon(self, err: BaseException) -> None:
        head, self.head = self.head, None
        if head is not None:
            Tracing.end_publish(head.span, error=err)
            head.settle(err)
        try:
            for _ in self.messages:
                self.batch.results.append(err)
        except Exception as failure:
            self.batch.failure = failure
        self._listed()
        if not self.admitted.done():
            self.admitted.set_result(None)


class _Pack:
    """Messages sent together in one SendPack."""

    __slots__ = ("bytes", "done", "items", "keys")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.items: list[_Item] = []
        self.bytes = 0
        self.keys: set[str] = set()
        self.done: asyncio.Future[None] = loop.create_future()


class Publisher:
    """Publishes messages to one topic, batching them into packs.

    Use it as an async context manager, or call :meth:`close` at the end, so that nothing
    buffered is lost::

        async with Publisher(channel, "orders") as publisher:
            result = await publisher.publish(b"hello", attributes={"kind": "greeting"})
            print(result.seq, result.trace_id)

    Messages that share an ordering key are appended in the order ``publish()`` was called
    for them: a pack holding a key is only sent once every earlier pack holding that key is
    settled. When a message fails for good, its key is paused: the key's later messages (those
    buffered and those published afterwards) raise :class:`OrderingKeyPausedError`, so that
    none overtakes the failed one, until :meth:`resume_publish`.

    A message the broker refuses on its own (``INVALID_ARGUMENT`` naming it, such as an
    oversized message) fails alone: the rest of its pack is sent again without it.

    Args:
        channel: A ``grpc.aio`` channel to the broker (see :class:`nervebus.Client`).
        topic: The topic: 1–128 characters of ``[A-Za-z0-9._-]`` (the broker checks it).
        settings: Batching, flow-control and retry settings.
        tracer_provider: Where producer spans go; ``None`` uses the global provider.
        target: The broker address, for the spans' ``server.*`` attributes.
        router: Sends the packs to the topic's owner instead (``Client(direct_to_owner=True)``).
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        topic: str,
        settings: PublisherSettings | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        target: str | None = None,
        router: OwnerRouter | None = None,
    ) -> None:
        self.topic = topic
        self.settings = settings or PublisherSettings()
        self._router = router
        self.stats = PublisherStats()
        # The generated stubs are untyped (grpcio-tools writes no .pyi for *_pb2_grpc.py).
        self._stub: Any = publisher_pb2_grpc.PublisherServiceStub(channel)  # type: ignore[no-untyped-call]
        self._tracing = Tracing(tracer_provider, enabled=self.settings.tracing, target=target)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._current: _Pack | None = None
        self._linger: asyncio.Handle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._packs: set[_Pack] = set()
        self._key_tail: dict[str, asyncio.Future[None]] = {}
        self._inflight: asyncio.Semaphore | None = None
        self._outstanding_messages = 0
        self._outstanding_bytes = 0
        self._space_waiters: collections.deque[_Waiting] = collections.deque()
        self._closed = False
        self._accepting = 0
        self._ids = ""
        self._ids_used = 0
        # Ordering keys refused after a failure, with that failure.
        self._paused: dict[str, BaseException] = {}

    # -- public API ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def publish(
        self,
        data: bytes | bytearray | memoryview | str,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str = "",
        message_id: str = "",
        deliver_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: Priority | None = None,
    ) -> PublishResult:
        """Publishes one message and returns once the broker has made it durable.

        Many concurrent ``publish()`` calls (e.g. via ``asyncio.gather``) share packs, at the
        cost of a task each: :meth:`publish_many` and :meth:`submit` publish many messages
        without one. The message is sent even if the awaiting task is cancelled once it was
        admitted by flow control.

        Args:
            data: The payload; ``str`` is encoded as UTF-8.
            attributes: Free-form string metadata (keys starting with ``nervebus-`` are
                reserved). The trace context is added as ``traceparent``/``tracestate``.
            ordering_key: Messages with the same key keep their publish order.
            message_id: Id for deduplication of retries; generated when empty and
                ``auto_message_id`` is on.
            deliver_at: Deliver no earlier than this time (naive datetimes are taken as UTC).
            delay: Deliver no earlier than this long (seconds or timedelta) after the broker
                receives the message. Ignored when ``deliver_at`` is set.
            priority: :class:`nervebus.Priority`: urgent messages fill subscribers' windows
                first, then normal, while bulk keeps a share of 1 in 10. Default normal.

        Returns:
            The message's seq and trace id.

        Raises:
            StatusError: The broker refused the message or its pack (e.g. INVALID_ARGUMENT for
                an oversized message or a bad topic), or retries gave up.
            OrderingKeyPausedError: The ordering key is paused after an earlier failure.
            PublisherClosedError: The publisher is closed.
        """
        future = await self.submit(
            data,
            attributes=attributes,
            ordering_key=ordering_key,
            message_id=message_id,
            deliver_at=deliver_at,
            delay=delay,
            priority=priority,
        )
        return await future

    async def submit(
        self,
        data: bytes | bytearray | memoryview | str,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str = "",
        message_id: str = "",
        deliver_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: Priority | None = None,
    ) -> asyncio.Future[PublishResult]:
        """Queues one message and returns a future of its result, without a task per message.

        Returns as soon as flow control admits the message: at once while fewer than
        ``max_outstanding_messages`` (and ``max_outstanding_bytes``) are unconfirmed, else
        once earlier messages are confirmed (callers are admitted in call order). The future
        resolves to the :class:`PublishResult` once the broker has made the message durable,
        or fails with the error :meth:`publish` would raise. The message is sent whatever
        happens to the future; one that nobody awaits does not log its error. Takes the same
        arguments as :meth:`publish`.

        This is the fast way to publish a stream of messages from one task::

            pending = collections.deque()
            for data in source:
                pending.append(await publisher.submit(data))
                while pending and pending[0].done():
                    handle(pending.popleft().result())

        Raises:
            PublisherClosedError: The publisher is closed, or closed while the message waited
                for space.
            OrderingKeyPausedError: The ordering key is paused after an earlier failure.
            TypeError, ValueError: ``data`` is not bytes or str; ``delay`` is negative.
        """
        loop = self._bind_open_loop()
        future: asyncio.Future[PublishResult] = loop.create_future()
        message = self._build(data, attributes, ordering_key, message_id, deliver_at, delay, priority)
        item = self._item(message, future, 0, self._tracing.active)
        if not self._space_waiters and self._fits(item.size):
            self._take_space(item.size)
            self._add(item)
        else:
            await self._wait_for_space(_Waiting(item, loop))
        return future

    @overload
    async def publish_many(
        self, messages: Iterable[Publishable], *, return_exceptions: Literal[False] = False
    ) -> list[PublishResult]: ...

    @overload
    async def publish_many(
        self, messages: Iterable[Publishable], *, return_exceptions: Literal[True]
    ) -> list[PublishResult | BaseException]: ...

    @overload
    async def publish_many(
        self, messages: Iterable[Publishable], *, return_exceptions: bool
    ) -> list[PublishResult] | list[PublishResult | BaseException]: ...

    async def publish_many(
        self, messages: Iterable[Publishable], *, return_exceptions: bool = False
    ) -> list[PublishResult] | list[PublishResult | BaseException]:
        """Publishes many messages in one call; returns their results, in order.

        The messages join packs as :meth:`publish` calls do (a call may span several packs,
        and share them with other calls), in their order and admitted by the same flow
        control: messages are taken from ``messages`` (and their protobuf built) only as
        space frees up, so memory stays bounded by ``max_outstanding_messages`` /
        ``max_outstanding_bytes`` however many are passed. It returns once every message is
        settled, at a cost of one future per call instead of one per message. Messages admitted
        before the calling task is cancelled are still sent.

        Args:
            messages: :class:`nervebus.Message` items, or ``bytes``/``str`` for a message with
                data only. A finite iterable; a generator is consumed as space frees up.
            return_exceptions: False: raise the first message's error (in message order) once
                all are settled. True: return the error in that message's place instead.

        Returns:
            One :class:`PublishResult` per message (or, with ``return_exceptions``, the
            exception that failed it: :class:`StatusError` from the broker,
            :class:`OrderingKeyPausedError` for a paused ordering key,
            :class:`TypeError`/:class:`ValueError` for a message that could not be built).

        Raises:
            StatusError: (without ``return_exceptions``) the first failed message's error.
            PublisherClosedError: The publisher is closed.
        """
        loop = self._bind_open_loop()
        batch = _Batch(loop)
        traced = self._tracing.active
        context = contextvars.copy_context() if traced else None

        def build(raw: Publishable, sink: _Batch, index: int) -> _Item:
            if isinstance(raw, Message):
                message = self._build(
                    raw.data,
                    raw.attributes,
                    raw.ordering_key,
                    raw.message_id,
                    raw.deliver_at,
                    raw.delay,
                    raw.priority,
                )
            else:
                message = self._build(raw, None, "", "", None, None)
            return self._item(message, sink, index, traced)

        entry = _BatchWaiting(batch, iter(messages), build, loop, context)
        item = entry.advance()
        if not self._space_waiters:
            while item is not None and self._fits(item.size):
                self._take_space(item.size)
                self._add(item)
                item = entry.advance()
        if item is not None:
            await self._wait_for_space(entry)
        if not batch.done.done():
            await batch.done
        if batch.failure is not None:
            raise batch.failure
        if not return_exceptions:
            for outcome in batch.results:
                if isinstance(outcome, BaseException):
                    raise outcome
        return batch.results  # type: ignore[return-value]  # every entry is settled now

    def resume_publish(self, ordering_key: str) -> None:
        """Lets messages of ``ordering_key`` be published again after a failure paused it.

        Messages refused meanwhile are not sent again: publish them again if they still should be.
        """
        self._paused.pop(ordering_key, None)

    async def flush(self) -> None:
        """Sends what is buffered and waits for every message published before this call.

        Waits until each is settled (confirmed or failed). Failures are reported by the
        ``publish()`` calls, not here.
        """
        if self._loop is None:
            return
        self._seal()
        pending = [p.done for p in self._packs]
        if pending:
            await asyncio.gather(*(asyncio.shield(f) for f in pending), return_exceptions=True)

    async def close(self, timeout: float | None = None) -> None:
        """Stops accepting messages, then publishes everything already accepted.

        ``publish()`` calls made after ``close()`` started raise :class:`PublisherClosedError`;
        calls made before it (even those waiting for flow-control space) are still sent.

        Args:
            timeout: Seconds to wait. When it passes, packs still being sent are cancelled and
                the ``publish()`` calls still waiting raise :class:`PublisherClosedError`.
        """
        self._closed = True
        try:
            await asyncio.wait_for(self._drain(), timeout)
        except TimeoutError:
            closed = PublisherClosedError(
                f"publisher of topic {self.topic!r} closed before the message was sent"
            )
            while self._space_waiters:
                self._space_waiters.popleft().abandon(closed)
            for task in list(self._sending):
                task.cancel()
            if self._sending:
                await asyncio.gather(*self._sending, return_exceptions=True)

    async def _drain(self) -> None:
        while self._accepting or self._packs or self._current is not None:
            await self.flush()
            if self._accepting and not self._packs and self._current is None:
                # publish() calls admitted by flow control have not added their message yet.
                await asyncio.sleep(0.001)

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- building and batching ----------------------------------------------------------------

    def _bind_open_loop(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise PublisherClosedError(f"publisher of topic {self.topic!r} is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._inflight = asyncio.Semaphore(self.settings.max_inflight_packs)
        elif self._loop is not loop:
            raise NerveBusError("a Publisher must be used from one event loop")
        return loop

    def _build(
        self,
        data: bytes | bytearray | memoryview | str,
        attributes: Mapping[str, str] | None,
        ordering_key: str,
        message_id: str,
        deliver_at: datetime | None,
        delay: float | timedelta | None,
        priority: Priority | None = None,
    ) -> message_pb2.Message:
        """The message to send; raises OrderingKeyPausedError for a paused ordering key."""
        if ordering_key and ordering_key in self._paused:
            raise OrderingKeyPausedError(ordering_key, self._paused[ordering_key])
        if isinstance(data, bytes):
            payload = data
        elif isinstance(data, str):
            payload = data.encode("utf-8")
        elif isinstance(data, bytearray | memoryview):
            payload = bytes(data)
        else:
            raise TypeError(f"message data must be bytes or str, not {type(data).__name__}")
        if not message_id and self.settings.auto_message_id:
            message_id = self._new_id()
        if attributes:
            message = message_pb2.Message(
                data=payload, attributes=attributes, ordering_key=ordering_key, message_id=message_id
            )
        else:
            # An empty attributes argument costs upb a map conversion (0.8 µs per message).
            message = message_pb2.Message(data=payload, ordering_key=ordering_key, message_id=message_id)
        if deliver_at is not None:
            if deliver_at.tzinfo is None:
                deliver_at = deliver_at.replace(tzinfo=UTC)
            message.deliver_at.FromDatetime(deliver_at)
        elif delay is not None:
            seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
            if seconds < 0:
                raise ValueError("delay must be ≥ 0")
            message.delay.FromTimedelta(timedelta(seconds=seconds))
        if priority is not None:
            message.priority = cast("message_pb2.Priority", priority.value)
        return message

    def _new_id(self) -> str:
        used = self._ids_used
        if used == len(self._ids):
            self._ids = os.urandom(16 * _IDS_PER_REFILL).hex()
            used = 0
        self._ids_used = used + 32
        return self._ids[used : used + 32]

    def _item(
        self,
        message: message_pb2.Message,
        sink: asyncio.Future[PublishResult] | _Batch,
        index: int,
        traced: bool,
    ) -> _Item:
        """The message with its producer span (when tracing is active) and its size."""
        span = None
        if traced:
            span = self._tracing.start_publish(
                self.topic,
                message.attributes,
                message_id=message.message_id,
                body_size=len(message.data),
                ordering_key=message.ordering_key,
            )
        return _Item(message, message.ByteSize() + _FRAMING_BYTES, span, sink, index)

    def _add(self, item: _Item) -> None:
        assert self._loop is not None
        s = self.settings
        pack = self._current
        if pack is not None and pack.items and pack.bytes + item.size > s.max_bytes:
            self._seal()
            pack = None
        if pack is None:
            pack = self._current = _Pack(self._loop)
        pack.items.append(item)
        pack.bytes += item.size
        if item.message.ordering_key:
            pack.keys.add(item.message.ordering_key)
        if len(pack.items) >= s.max_messages or pack.bytes >= s.max_bytes:
            self._seal()
        elif self._linger is None:
            if s.linger > 0:
                self._linger = self._loop.call_later(s.linger, self._seal)
            else:
                self._linger = self._loop.call_soon(self._seal)

    def _seal(self) -> None:
        """Closes the current pack and starts sending it (after its keys' earlier packs)."""
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        pack = self._current
        self._current = None
        if pack is None or not pack.items:
            return
        assert self._loop is not None
        after = [f for k in pack.keys if (f := self._key_tail.get(k)) is not None and not f.done()]
        for key in pack.keys:
            self._key_tail[key] = pack.done
        self._packs.add(pack)
        task = self._loop.create_task(self._send(pack, after))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    # -- flow control -------------------------------------------------------------------------

    def _fits(self, size: int) -> bool:
        s = self.settings
        return self._outstanding_messages < s.max_outstanding_messages and (
            self._outstanding_bytes + size <= s.max_outstanding_bytes or self._outstanding_bytes == 0
        )

    async def _wait_for_space(self, entry: _Waiting) -> None:
        """Queues ``entry`` behind earlier waiters; returns once all its messages are admitted.

        On failure (cancelled, or the publisher closed first) the messages not admitted are
        not sent; those admitted are.
        """
        self._space_waiters.append(entry)
        # Nothing joins the current pack until space frees up: send it now, not after linger.
        self._seal()
        self._accepting += 1
        try:
            await entry.admitted
        except BaseException as err:
            with contextlib.suppress(ValueError):
                self._space_waiters.remove(entry)
            if entry.head is not None:
                Tracing.end_publish(entry.head.span, error=err)
            raise
        finally:
            self._accepting -= 1

    def _take_space(self, size: int) -> None:
        self._outstanding_messages += 1
        self._outstanding_bytes += size

    def _release_space(self, messages: int, size: int) -> None:
        self._outstanding_messages -= messages
        self._outstanding_bytes -= size
        # Admit waiting messages in call order, each added to a pack as it is admitted, so a
        # later call never overtakes an earlier one.
        waiters = self._space_waiters
        while waiters:
            entry = waiters[0]
            if entry.admitted.done():  # cancelled
                waiters.popleft()
                continue
            item = entry.head
            while item is not None and self._fits(item.size):
                self._take_space(item.size)
                self._add(item)
                item = entry.advance()
            if item is not None:
                break
            waiters.popleft()
            entry.admitted.set_result(None)

    # -- sending ------------------------------------------------------------------------------

    async def _send(self, pack: _Pack, after: list[asyncio.Future[None]]) -> None:
        try:
            if after:
                # Earlier packs with the same ordering keys go first; their failures are theirs.
                await asyncio.gather(*(asyncio.shield(f) for f in after), return_exceptions=True)
            items = self._drop_paused(pack.items)
            assert self._inflight is not None
            async with self._inflight:
                while items:
                    try:
                        response = await self._send_with_retry(items)
                    except StatusError as err:
                        if (bad := _bad_message(err, len(items))) is None:
                            raise
                        items = self._fail_bad_message(items, *bad)
                        continue
                    self._complete(items, response)
                    break
        except asyncio.CancelledError:
            self._fail(
                pack.items,
                PublisherClosedError(
                    f"publisher of topic {self.topic!r} closed before the pack was confirmed"
                ),
            )
            raise
        except Exception as err:  # every failure is reported to the publish() calls
            self._fail(pack.items, err, pause=True)
        except BaseException as err:
            self._fail(pack.items, err)
            raise
        finally:
            self._release_space(len(pack.items), pack.bytes)
            for key in pack.keys:
                if self._key_tail.get(key) is pack.done:
                    del self._key_tail[key]
            self._packs.discard(pack)
            if not pack.done.done():
                pack.done.set_result(None)

    def _drop_paused(self, items: list[_Item]) -> list[_Item]:
        """Fails the items whose ordering key was paused while they waited; returns the rest."""
        if not self._paused:
            return items
        kept = []
        for item in items:
            key = item.message.ordering_key
            if key in self._paused:
                self._fail([item], OrderingKeyPausedError(key, self._paused[key]))
            else:
                kept.append(item)
        return kept

    def _fail_bad_message(self, items: list[_Item], index: int, err: StatusError) -> list[_Item]:
        """Fails the one message the broker refused, and the later ones of its ordering key.

        Returns the items to send again.
        """
        key = items[index].message.ordering_key
        self._fail([items[index]], err, pause=True)
        rest = items[:index]
        for item in items[index + 1 :]:
            if key and item.message.ordering_key == key:
                self._fail([item], OrderingKeyPausedError(key, err))
            else:
                rest.append(item)
        return rest

    async def _send_with_retry(self, items: list[_Item]) -> publisher_pb2.SendPackResponse:
        retry = self.settings.retry
        request = publisher_pb2.SendPackRequest(topic=self.topic, messages=[i.message for i in items])
        started = time.monotonic()
        attempt = 0
        while True:
            self.stats.attempts += 1
            if attempt > 0:
                self.stats.retries += 1
            stub = self._stub if self._router is None else self._router.stubs(self.topic).publisher
            try:
                response: publisher_pb2.SendPackResponse = await stub.SendPack(
                    request, timeout=self.settings.call_timeout
                )
                return response
            except grpc.aio.AioRpcError as err:
                if self._router is not None:
                    self._router.failed(self.topic, err.code(), err.trailing_metadata())
                attempt += 1
                failure = _attempt_failure(err)
                wait = retry.backoff.delay(attempt - 1)
                # An attempt that ran out of its own deadline has an unknown outcome, like
                # UNAVAILABLE: retried with the same message ids while retry.timeout allows.
                code = failure.code
                give_up = (
                    (code not in retry.retryable_codes and code is not grpc.StatusCode.DEADLINE_EXCEEDED)
                    or (retry.max_attempts is not None and attempt >= retry.max_attempts)
                    or (retry.timeout is not None and time.monotonic() - started + wait > retry.timeout)
                )
                if give_up:
                    raise failure from err
                await asyncio.sleep(wait)

    def _complete(self, items: list[_Item], response: publisher_pb2.SendPackResponse) -> None:
        if len(response.results) != len(items):
            self._fail(
                items,
                NerveBusError(f"SendPack answered {len(response.results)} results for {len(items)} messages"),
                pause=True,
            )
            return
        self.stats.packs += 1
        self.stats.messages += len(items)
        for item, r in zip(items, response.results, strict=True):
            result = PublishResult(
                seq=r.seq,
                trace_id=r.trace_id,
                message_id=item.message.message_id,
                outcome=_OUTCOMES.get(r.outcome, Outcome.UNKNOWN),
            )
            if item.span is not None:
                Tracing.end_publish(item.span, seq=r.seq, outcome=result.outcome.name.lower())
            item.settle(result)

    def _fail(self, items: list[_Item], err: BaseException, *, pause: bool = False) -> None:
        """Fails the items not settled yet; ``pause`` pauses their ordering keys."""
        for item in items:
            if item.settled:
                continue
            self.stats.failed_messages += 1
            if pause and item.message.ordering_key:
                self._paused.setdefault(item.message.ordering_key, err)
            Tracing.end_publish(item.span, error=err)
            item.settle(err)


def _bad_message(err: StatusError, count: int) -> tuple[int, StatusError] | None:
    """The index of the one message the broker refused in a pack of ``count``, with an error of its own.

    The broker rejects a whole pack for one bad message (``INVALID_ARGUMENT``, its details
    naming ``messages[i]``); the message's own error names it as ``message``. ``None`` for any
    other failure.
    """
    m = _BAD_MESSAGE.match(err.details)
    if err.code is not grpc.StatusCode.INVALID_ARGUMENT or m is None or int(m[1]) >= count:
        return None
    own = StatusError(err.code, "message" + err.details[m.end() :], err.operation)
    own.__cause__ = err
    return int(m[1]), own


def _attempt_failure(err: grpc.aio.AioRpcError) -> StatusError:
    """The failure of one SendPack attempt, with a CANCELLED the client did not cause as UNAVAILABLE.

    This client's own cancellations (a cancelled task, a closed channel) raise
    ``asyncio.CancelledError``, never a CANCELLED status: that status comes from the broker or the
    network cutting the call (an RST_STREAM while the broker restarts), so whether the pack landed
    is unknown, as with UNAVAILABLE, and a retry with the same message ids settles it. INTERNAL
    too: see :func:`internal_outcome_unknown`.
    """
    if err.code() is grpc.StatusCode.CANCELLED:
        return StatusError(
            grpc.StatusCode.UNAVAILABLE,
            f"call cancelled by the broker or the network, outcome unknown: {err.details() or ''}",
            "SendPack",
        )
    return internal_outcome_unknown(StatusError.from_rpc_error(err, "SendPack"))
