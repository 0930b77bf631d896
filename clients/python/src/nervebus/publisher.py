"""The asyncio publisher: batches messages into SendPack calls, retries, keeps key order."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
from opentelemetry.trace import Span, TracerProvider

from .errors import NerveBusError, OrderingKeyPausedError, PublisherClosedError, StatusError
from .gen.nervebus.v1 import message_pb2, publisher_pb2, publisher_pb2_grpc
from .retry import RetrySettings
from .tracing import Tracing
from .types import Outcome, PublishResult

__all__ = ["Publisher", "PublisherSettings", "PublisherStats"]

_OUTCOMES = {
    publisher_pb2.MessageResult.OUTCOME_APPENDED: Outcome.APPENDED,
    publisher_pb2.MessageResult.OUTCOME_DUPLICATE: Outcome.DUPLICATE,
    publisher_pb2.MessageResult.OUTCOME_SCHEDULED: Outcome.SCHEDULED,
}

# Per-message framing inside a SendPackRequest (field tag + length varint), counted against
# max_bytes so a pack never exceeds it on the wire by more than a few bytes.
_FRAMING_BYTES = 6

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
        max_outstanding_messages: Messages published but not yet confirmed; ``publish()``
            waits (in call order) while this many are outstanding.
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


class _Item:
    """One message waiting in a pack."""

    __slots__ = ("future", "message", "size", "span")

    def __init__(
        self,
        message: message_pb2.Message,
        size: int,
        future: asyncio.Future[PublishResult],
        span: Span | None,
    ) -> None:
        self.message = message
        self.size = size
        self.future = future
        self.span = span


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
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        topic: str,
        settings: PublisherSettings | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        target: str | None = None,
    ) -> None:
        self.topic = topic
        self.settings = settings or PublisherSettings()
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
        self._space_waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._closed = False
        self._accepting = 0
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
    ) -> PublishResult:
        """Publishes one message and returns once the broker has made it durable.

        Many concurrent ``publish()`` calls (e.g. via ``asyncio.gather``) share packs. The
        message is sent even if the awaiting task is cancelled.

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

        Returns:
            The message's seq and trace id.

        Raises:
            StatusError: The broker refused the message or its pack (e.g. INVALID_ARGUMENT for
                an oversized message or a bad topic), or retries gave up.
            OrderingKeyPausedError: The ordering key is paused after an earlier failure.
            PublisherClosedError: The publisher is closed.
        """
        if self._closed:
            raise PublisherClosedError(f"publisher of topic {self.topic!r} is closed")
        if ordering_key in self._paused:
            raise OrderingKeyPausedError(ordering_key, self._paused[ordering_key])
        loop = self._bind_loop()
        message = self._build(data, attributes, ordering_key, message_id, deliver_at, delay)
        span = self._tracing.start_publish(
            self.topic,
            message.attributes,
            message_id=message.message_id,
            body_size=len(message.data),
            ordering_key=message.ordering_key,
        )
        size = message.ByteSize() + _FRAMING_BYTES
        self._accepting += 1
        try:
            await self._acquire_space(size)
            if ordering_key in self._paused:
                # Paused while this publish waited for space.
                self._release_space(1, size)
                raise OrderingKeyPausedError(ordering_key, self._paused[ordering_key])
            future: asyncio.Future[PublishResult] = loop.create_future()
            self._add(_Item(message, size, future, span))
        except BaseException as err:
            Tracing.end_publish(span, error=err)
            raise
        finally:
            self._accepting -= 1
        return await asyncio.shield(future)

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
                _, waiter = self._space_waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(closed)
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

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
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
    ) -> message_pb2.Message:
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if not message_id and self.settings.auto_message_id:
            message_id = uuid.uuid4().hex
        message = message_pb2.Message(
            data=payload,
            attributes=dict(attributes or {}),
            ordering_key=ordering_key,
            message_id=message_id,
        )
        if deliver_at is not None:
            if deliver_at.tzinfo is None:
                deliver_at = deliver_at.replace(tzinfo=UTC)
            message.deliver_at.FromDatetime(deliver_at)
        elif delay is not None:
            seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
            if seconds < 0:
                raise ValueError("delay must be ≥ 0")
            message.delay.FromTimedelta(timedelta(seconds=seconds))
        return message

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

    async def _acquire_space(self, size: int) -> None:
        s = self.settings
        fits = self._outstanding_messages < s.max_outstanding_messages and (
            self._outstanding_bytes + size <= s.max_outstanding_bytes or self._outstanding_bytes == 0
        )
        if fits and not self._space_waiters:
            self._take_space(size)
            return
        assert self._loop is not None
        waiter: asyncio.Future[None] = self._loop.create_future()
        entry = (size, waiter)
        self._space_waiters.append(entry)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Space was granted just as we were cancelled: give it back.
                self._release_space(1, size)
            else:
                with contextlib.suppress(ValueError):
                    self._space_waiters.remove(entry)
            raise

    def _take_space(self, size: int) -> None:
        self._outstanding_messages += 1
        self._outstanding_bytes += size

    def _release_space(self, messages: int, size: int) -> None:
        self._outstanding_messages -= messages
        self._outstanding_bytes -= size
        s = self.settings
        while self._space_waiters:
            size_next, waiter = self._space_waiters[0]
            if waiter.done():
                self._space_waiters.popleft()
                continue
            if self._outstanding_messages >= s.max_outstanding_messages:
                break
            if self._outstanding_bytes + size_next > s.max_outstanding_bytes and self._outstanding_bytes > 0:
                break
            self._space_waiters.popleft()
            self._take_space(size_next)
            waiter.set_result(None)

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
            try:
                response: publisher_pb2.SendPackResponse = await self._stub.SendPack(
                    request, timeout=self.settings.call_timeout
                )
                return response
            except grpc.aio.AioRpcError as err:
                attempt += 1
                code = err.code()
                wait = retry.backoff.delay(attempt - 1)
                # An attempt that ran out of its own deadline has an unknown outcome, like
                # UNAVAILABLE: retried with the same message ids while retry.timeout allows.
                give_up = (
                    (code not in retry.retryable_codes and code is not grpc.StatusCode.DEADLINE_EXCEEDED)
                    or (retry.max_attempts is not None and attempt >= retry.max_attempts)
                    or (retry.timeout is not None and time.monotonic() - started + wait > retry.timeout)
                )
                if give_up:
                    raise StatusError.from_rpc_error(err, "SendPack") from err
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
            Tracing.end_publish(item.span, seq=r.seq, outcome=result.outcome.name.lower())
            if not item.future.done():
                item.future.set_result(result)

    def _fail(self, items: list[_Item], err: BaseException, *, pause: bool = False) -> None:
        """Fails the publish() calls of items not settled yet; ``pause`` pauses their ordering keys."""
        for item in items:
            if item.future.done():
                continue
            self.stats.failed_messages += 1
            if pause and item.message.ordering_key:
                self._paused.setdefault(item.message.ordering_key, err)
            Tracing.end_publish(item.span, error=err)
            item.future.set_exception(err)
            # Nobody may be awaiting (the caller was cancelled): mark it retrieved.
            item.future.exception()


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
