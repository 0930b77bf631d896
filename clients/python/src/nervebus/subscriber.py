"""The asyncio subscriber.

It runs a handler per message with bounded concurrency, keeps leases alive, settles messages,
reconnects, and stops gracefully.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry.trace import TracerProvider

from ._owner_router import OwnerRouter
from ._unconfirmed_settles import UnconfirmedSettles
from .errors import AckNotConfirmedError, NerveBusError, StatusError, SubscriberError
from .gen.nervebus.v1 import message_pb2, subscriber_pb2, subscriber_pb2_grpc
from .retry import DEFAULT_RETRYABLE_CODES, Backoff
from .tracing import Tracing
from .types import _SETTLE_LOCK, AckResult, Priority, ReceivedMessage, SettleAction, StartPoint

__all__ = ["DEFAULT_RECONNECT_CODES", "Handler", "Subscriber", "SubscriberSettings", "SubscriberStats"]

#: Stream errors after which the subscriber reconnects: the publisher's retryable codes, and
#: ABORTED and INTERNAL, which transport resets (RST_STREAM) end a stream with. The same in the
#: Go and TypeScript clients.
DEFAULT_RECONNECT_CODES: frozenset[grpc.StatusCode] = DEFAULT_RETRYABLE_CODES | {
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
}

_log = logging.getLogger("nervebus.subscriber")

#: A message handler: an async callable taking the message. Returning acks the message;
#: raising nacks it.
Handler = Callable[[ReceivedMessage], Awaitable[Any]]

_MIN_DEADLINE = 1.0
_MAX_DEADLINE = 600.0
_DEFAULT_ACK_DEADLINE = 30.0
# Wire priorities of deliveries (unset is normal).
_PRIORITIES = {1: Priority.URGENT, 2: Priority.NORMAL, 3: Priority.BULK}
# Acks wait up to this long for more to share their ReceiveRequest (unless a quarter of the
# window is waiting): a stream write costs the client ~50 µs of CPU, which one ack per write
# would spend per message. It delays a window refill by as much, which small windows feel:
# window 100 ran at ~30k msg/s with 1 ms, 36–42k with 0.2 ms (clients/python/bench).
_ACK_LINGER = 0.0002


@dataclass(frozen=True)
class SubscriberSettings:
    """How a :class:`Subscriber` receives and processes messages.

    The defaults are the same in the Go and TypeScript clients (docs/clients.md).

    Attributes:
        max_messages: The stream's window: the most messages delivered and not yet settled
            (1–100000). Messages beyond ``concurrency`` wait locally, their leases kept alive.
        max_bytes: The window in payload bytes; 0 means no byte limit, otherwise at least the
            broker's max message size (1 MiB by default).
        concurrency: Handlers running at once; ``None``: as many as the window (the
            synchronous wrapper's thread pool then has 32 threads).
        ack_deadline: Seconds a delivered message stays leased before the broker redelivers
            it (1–600); ``None`` uses the subscription's (30 s by default). The subscriber
            extends leases of messages still being processed.
        max_extension: Stop extending a message's lease this many seconds after it arrived;
            the broker then redelivers it even though the handler still runs.
        nack_delay: Seconds before a message whose handler raised is redelivered; ``None``
            uses the subscription's retry backoff.
        start: Where a new subscription starts: :class:`StartPoint`, a seq, or a datetime.
            ``None`` leaves it to the broker (latest). Ignored when the subscription exists.
        confirm_acks: Ask the broker to confirm acks once durable
            (``message.ack_with_result()`` then tells when); the subscriber re-sends
            unconfirmed acks after a reconnect and waits for confirmations when stopping.
        consumer_name: A name shown in the broker's stats (at most 128 bytes).
        ordered: Run the handler for messages with the same non-empty ordering key one at a
            time, in delivery order.
        reconnect_backoff: Waits between reconnect attempts.
        retryable_codes: Stream errors after which the subscriber reconnects; any other
            status stops it (``wait()`` raises it).
        idle_timeout: Reconnect when the broker sent nothing, not even a heartbeat, for this
            many seconds. ``None`` disables the check.
        stop_timeout: Default seconds :meth:`Subscriber.stop` lets running handlers finish.
        tracing: Run handlers inside consumer spans that continue the producer's trace.
    """

    max_messages: int = 1000
    max_bytes: int = 0
    concurrency: int | None = None
    ack_deadline: float | None = None
    max_extension: float = 3600.0
    nack_delay: float | None = 1.0
    start: StartPoint | int | datetime | None = None
    confirm_acks: bool = False
    consumer_name: str = ""
    ordered: bool = True
    reconnect_backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.1, maximum=10.0))
    retryable_codes: Collection[grpc.StatusCode] = DEFAULT_RECONNECT_CODES
    idle_timeout: float | None = 60.0
    stop_timeout: float = 30.0
    tracing: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_messages <= 100_000:
            raise ValueError("SubscriberSettings.max_messages must be 1–100000")
        if self.max_bytes < 0:
            raise ValueError("SubscriberSettings.max_bytes must be ≥ 0")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("SubscriberSettings.concurrency must be ≥ 1")
        if self.ack_deadline is not None and not _MIN_DEADLINE <= self.ack_deadline <= _MAX_DEADLINE:
            raise ValueError("SubscriberSettings.ack_deadline must be 1–600 seconds")
        if self.max_extension < 0:
            raise ValueError("SubscriberSettings.max_extension must be ≥ 0")
        if self.nack_delay is not None and self.nack_delay < 0:
            raise ValueError("SubscriberSettings.nack_delay must be ≥ 0")
        if isinstance(self.start, int) and not isinstance(self.start, bool) and self.start < 1:
            raise ValueError("SubscriberSettings.start as a seq must be ≥ 1")


@dataclass
class SubscriberStats:
    """Counters of one subscriber, for tests and monitoring.

    Attributes:
        received: Deliveries received (including redeliveries).
        acked: Messages acked.
        nacked: Messages nacked, or released unfinished by :meth:`Subscriber.stop`.
        terminated: Messages dead-lettered.
        extended: Lease extensions sent (per message).
        handler_errors: Handler calls that raised.
        streams: Receive streams that got subscribed.
        reconnects: Times a stream ended and a new one was opened.
        confirmed_acks: Acks the broker confirmed as durable (with ``confirm_acks``).
        max_outstanding: The most messages held at once (delivered, not yet settled).
        backlog: Unacked messages on the subscription, from the latest heartbeat.
        last_seq: The topic's last durable seq, from the latest subscribe or heartbeat.
    """

    received: int = 0
    acked: int = 0
    nacked: int = 0
    terminated: int = 0
    extended: int = 0
    handler_errors: int = 0
    streams: int = 0
    reconnects: int = 0
    confirmed_acks: int = 0
    max_outstanding: int = 0
    backlog: int = 0
    last_seq: int = 0


class _Work:
    """One delivered message on its way through the subscriber."""

    __slots__ = ("key", "lease_until", "message", "received_at", "seq")

    def __init__(self, message: ReceivedMessage, now: float, lease_until: float) -> None:
        self.message = message
        self.seq = message.seq
        self.key = message.ordering_key
        self.received_at = now
        self.lease_until = lease_until


class _Outbox:
    """Acks, nacks, extensions and window changes waiting for the next request."""

    def __init__(self) -> None:
        self.acks: list[int] = []
        self.nacks: list[tuple[int, float | None]] = []
        self.extends: dict[int, list[int]] = {}
        self.terminates: list[int] = []
        self.window: subscriber_pb2.Window | None = None

    def empty(self) -> bool:
        return not (self.acks or self.nacks or self.extends or self.terminates or self.window)

    def few_acks(self, batch: int) -> bool:
        """Whether only acks are waiting, fewer than ``batch``: worth waiting for more."""
        return 0 < len(self.acks) < batch and not (
            self.nacks or self.extends or self.terminates or self.window
        )

    def take(self) -> subscriber_pb2.ReceiveRequest | None:
        if self.empty():
            return None
        req = subscriber_pb2.ReceiveRequest(ack_seqs=self.acks, terminate_seqs=self.terminates)
        for seq, delay in self.nacks:
            nack = req.nacks.add(seq=seq)
            if delay is not None:
                nack.delay.FromTimedelta(timedelta(seconds=delay))
        for ms, seqs in self.extends.items():
            ext = req.extend_deadlines.add(seqs=seqs)
            ext.deadline.FromMilliseconds(ms)
        if self.window is not None:
            req.window.CopyFrom(self.window)
        self.acks, self.nacks, self.extends, self.terminates, self.window = [], [], {}, [], None
        return req

    def restore(self, req: subscriber_pb2.ReceiveRequest) -> None:
        """Puts back what a failed write may not have delivered (all of it is idempotent)."""
        self.acks[:0] = list(req.ack_seqs)
        self.terminates[:0] = list(req.terminate_seqs)
        self.nacks[:0] = [
            (n.seq, n.delay.ToTimedelta().total_seconds() if n.HasField("delay") else None) for n in req.nacks
        ]
        if req.HasField("window") and self.window is None:
            self.window = req.window


class _IdleStream(Exception):
    """The broker sent nothing for longer than the idle timeout."""


class Subscriber:
    """Receives messages of one subscription and runs ``handler`` on each.

    ::

        async def handle(message: nervebus.ReceivedMessage) -> None:
            print(message.seq, message.data)

        async with Subscriber(channel, "orders", "billing", handle) as subscriber:
            await asyncio.sleep(60)          # messages are handled in the background

    The handler is an async callable. When it returns, the message is acked; when it raises,
    the message is nacked and redelivered after ``nack_delay``. It may also settle the message
    itself (``message.ack()``, ``message.nack(delay)``, ``message.terminate()``).

    Delivery is at least once: a message may be handled again after a reconnect, a lease that
    ran out, or a crash. ``message.attempt`` tells redeliveries apart.

    Args:
        channel: A ``grpc.aio`` channel to the broker (see :class:`nervebus.Client`).
        topic: The topic's name.
        subscription: The subscription's name; created on first use.
        handler: The async message handler.
        settings: Window, concurrency, lease and reconnect settings.
        tracer_provider: Where consumer spans go; ``None`` uses the global provider.
        target: The broker address, for the spans' ``server.*`` attributes.
        router: Opens the streams at the topic's owner instead (``Client(direct_to_owner=True)``).
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        topic: str,
        subscription: str,
        handler: Handler,
        settings: SubscriberSettings | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        target: str | None = None,
        router: OwnerRouter | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be an async callable taking a ReceivedMessage")
        self.topic = topic
        self.subscription = subscription
        self.settings = settings or SubscriberSettings()
        self.stats = SubscriberStats()
        self._handler = handler
        self._router = router
        # The generated stubs are untyped (grpcio-tools writes no .pyi for *_pb2_grpc.py).
        self._stub: Any = subscriber_pb2_grpc.SubscriberServiceStub(channel)  # type: ignore[no-untyped-call]
        self._tracing = Tracing(tracer_provider, enabled=self.settings.tracing, target=target)
        self._window = subscriber_pb2.Window(
            max_messages=self.settings.max_messages, max_bytes=self.settings.max_bytes
        )
        self._ack_deadline = self.settings.ack_deadline or _DEFAULT_ACK_DEADLINE
        self._outbox = _Outbox()
        self._unconfirmed: set[int] = set()
        # Acks and terminations the broker may not have yet: sent again on a new stream, and
        # applied to a redelivery instead of handing it to the handler. 2 × the window: a
        # stream has at most a window of messages unacked, so at most that many of its acks can
        # be unread by the broker when it ends; those still held from the stream before (settled
        # later) are at most as many again.
        self._settles = UnconfirmedSettles(2 * self.settings.max_messages)
        # The highest seq received: a seq at or below it may be a copy of one already acked.
        self._highest_seq = 0
        # ack_with_result() calls waiting for their ack to be written or confirmed, by seq.
        self._ack_waiters: dict[int, list[AckResult]] = {}
        self._concurrency = self.settings.concurrency or self.settings.max_messages
        self._inflight: dict[int, _Work] = {}
        self._queue: collections.deque[_Work] = collections.deque()
        self._key_busy: set[str] = set()
        self._key_waiting: dict[str, collections.deque[_Work]] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wakeup: asyncio.Event | None = None
        self._call: Any = None
        self._stream_subscribed = False
        self._half_closed_stream = False
        self._idle_cancel = False
        self._last_response = 0.0
        self._run_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._stopping = False
        self._half_close = False
        self._fatal: BaseException | None = None
        self._traced = False
        self._time_key = (0, 0)
        self._time_value = datetime.fromtimestamp(0, UTC)

    # -- public API ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the subscriber was started and has not stopped yet."""
        return self._done is not None and not self._done.done()

    @property
    def outstanding(self) -> int:
        """Messages delivered to this subscriber and not yet settled and finished."""
        return len(self._inflight)

    async def start(self, timeout: float | None = None) -> None:
        """Opens the stream and returns once the broker confirmed the subscription.

        Retryable failures (the broker is down) are retried with backoff until ``timeout``.

        Raises:
            StatusError: The broker refused the subscription (e.g. INVALID_ARGUMENT for an
                empty topic or a bad window); the subscriber is stopped.
            SubscriberError: Already started, or not subscribed within ``timeout`` (the
                subscriber is stopped then).
        """
        if self._run_task is not None:
            raise SubscriberError("subscriber already started")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._first = loop.create_future()
        self._done = loop.create_future()
        self._run_task = loop.create_task(self._run(), name=f"nervebus-subscriber-{self.subscription}")
        self._lease_task = loop.create_task(self._lease_loop(), name=f"nervebus-leases-{self.subscription}")
        try:
            await asyncio.wait_for(asyncio.shield(self._first), timeout)
        except TimeoutError:
            await self.stop(0)
            raise SubscriberError(
                f"not subscribed to {self.topic}/{self.subscription} within {timeout} s"
            ) from None
        except BaseException:
            await self.stop(0)
            raise

    async def stop(self, timeout: float | None = None) -> None:
        """Stops gracefully: no new messages are started; running handlers may finish.

        The window shrinks to one message, and messages delivered but not started yet are
        nacked at once (delay 0) so other consumers get them; any that still arrive are held
        unstarted until the stream closes, which releases them. Handlers still running after
        ``timeout`` seconds (default ``settings.stop_timeout``) are cancelled and their
        messages released (closing the stream makes the broker redeliver them at once, as a
        nack with no delay would). Then the final acks are sent (and confirmed, with
        ``confirm_acks``) and the stream is closed.
        Calling it again, or on a subscriber that failed, is harmless.
        """
        if self._run_task is None or self._done is None:
            return
        if timeout is None:
            timeout = self.settings.stop_timeout
        first_stop = not self._stopping
        self._stopping = True
        if first_stop:
            # The smallest window: the broker sends no more while handlers still run.
            self._window = subscriber_pb2.Window(max_messages=1, max_bytes=self._window.max_bytes)
            self._outbox.window = self._window
            self._signal()
            for work in list(self._queue):
                work.message.nack(0.0)
            for waiting in self._key_waiting.values():
                for work in waiting:
                    work.message.nack(0.0)
            self._queue.clear()
            self._key_waiting.clear()
        if self._running:
            still = set(self._running)
            if timeout > 0:
                _, still = await asyncio.wait(still, timeout=timeout)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        # Final acks: sent on the open stream, then the stream is half-closed and the broker
        # ends it. Bounded: a broker that is gone cannot take them.
        grace = max(1.0, min(5.0, timeout))
        deadline = time.monotonic() + grace
        if self.settings.confirm_acks:
            while (
                (self._unconfirmed or not self._outbox.empty())
                and time.monotonic() < deadline
                and not self._run_task.done()
            ):
                self._signal()
                await asyncio.sleep(0.01)
        self._half_close = True
        self._signal()
        remaining = max(0.0, deadline - time.monotonic())
        if (
            (self._call is None or not self._stream_subscribed)
            and self._outbox.empty()
            and not self._unconfirmed
        ):
            # Between streams (reconnecting) with nothing left to send: no stream is needed.
            self._run_task.cancel()
        if not self._run_task.done():
            done, _ = await asyncio.wait({self._run_task}, timeout=remaining)
            if not done:
                self._run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._run_task
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
        # Messages held unstarted were released by the broker when the stream closed.
        self._inflight.clear()
        self._finish_lifecycle()

    async def wait(self) -> None:
        """Waits until the subscriber stops; raises the error that stopped it, if any."""
        if self._done is None:
            raise SubscriberError("subscriber not started")
        await asyncio.shield(self._done)

    async def run(self) -> None:
        """Starts, then runs until the subscriber fails or the awaiting task is cancelled.

        On cancellation it stops gracefully before re-raising.
        """
        await self.start()
        try:
            await self.wait()
        except asyncio.CancelledError:
            await self.stop()
            raise

    def set_window(self, max_messages: int, max_bytes: int = 0) -> None:
        """Changes the flow-control window from now on (also for later reconnects)."""
        if not 1 <= max_messages <= 100_000:
            raise ValueError("max_messages must be 1–100000")
        self._window = subscriber_pb2.Window(max_messages=max_messages, max_bytes=max_bytes)
        self._outbox.window = self._window
        self._signal()

    async def __aenter__(self) -> Subscriber:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- the stream ---------------------------------------------------------------------------

    def _subscribe_request(self) -> subscriber_pb2.ReceiveRequest:
        s = self.settings
        sub = subscriber_pb2.Subscribe(
            topic=self.topic,
            subscription=self.subscription,
            window=self._window,
            confirm_acks=s.confirm_acks,
            consumer_name=s.consumer_name,
        )
        if s.ack_deadline is not None:
            sub.ack_deadline.FromTimedelta(timedelta(seconds=s.ack_deadline))
        if isinstance(s.start, StartPoint):
            sub.start_point = s.start.value  # type: ignore[assignment]
        elif isinstance(s.start, datetime):
            when = s.start if s.start.tzinfo is not None else s.start.replace(tzinfo=UTC)
            sub.start_time.FromDatetime(when)
        elif isinstance(s.start, int):
            sub.start_seq = s.start
        return subscriber_pb2.ReceiveRequest(subscribe=sub)

    async def _run(self) -> None:
        attempt = 0
        try:
            while True:
                if self._finished_stopping():
                    break
                error: StatusError | None = None
                try:
                    await self._stream_once()
                except grpc.aio.AioRpcError as err:
                    error = StatusError.from_rpc_error(err, "Receive")
                except StatusError as err:
                    error = err
                except _IdleStream:
                    _log.warning(
                        "no word from the broker for %s s on %s/%s; reconnecting",
                        self.settings.idle_timeout,
                        self.topic,
                        self.subscription,
                    )
                if self._stream_subscribed:
                    attempt = 0
                if error is not None and error.code not in self.settings.retryable_codes:
                    raise error
                if self._finished_stopping():
                    break
                if error is not None:
                    _log.info(
                        "Receive stream on %s/%s ended (%s); reconnecting",
                        self.topic,
                        self.subscription,
                        error,
                    )
                self.stats.reconnects += 1
                await asyncio.sleep(self.settings.reconnect_backoff.delay(attempt))
                attempt += 1
        except asyncio.CancelledError:
            raise
        except BaseException as err:
            self._fatal = err
            if self._first is not None and not self._first.done():
                self._first.set_exception(err)
            if not self._stopping:
                # Nothing can be acked any more: give up the work in progress.
                self._stopping = True
                self._queue.clear()
                self._key_waiting.clear()
                for task in list(self._running):
                    task.cancel()
                if self._loop is not None:
                    self._loop.call_soon(self._finish_lifecycle)

    def _finished_stopping(self) -> bool:
        """Whether stop() is done with the stream: half-closing, with nothing left to send."""
        return self._stopping and self._half_close and self._outbox.empty() and not self._unconfirmed

    async def _stream_once(self) -> None:
        stub = self._stub if self._router is None else self._router.stubs(self.topic).subscriber
        call = stub.Receive()
        self._call = call
        self._stream_subscribed = False
        self._half_closed_stream = False
        self._idle_cancel = False
        self._last_response = time.monotonic()
        writer: asyncio.Task[None] | None = None
        try:
            try:
                await call.write(self._subscribe_request())
            except (asyncio.InvalidStateError, grpc.aio.UsageError):
                # The call ended before it started (e.g. the broker is unreachable).
                code = await call.code()
                await self._route_failed(call, code)
                raise StatusError(code, await call.details() or "", "Receive") from None
            if self._unconfirmed:
                # Acks the broker never confirmed may not have reached it: acks are idempotent.
                self._outbox.acks.extend(sorted(self._unconfirmed))
            writer = asyncio.get_running_loop().create_task(self._writer(call))
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    break
                self._last_response = time.monotonic()
                self._on_response(response)
            code = await call.code()
            if code != grpc.StatusCode.OK:
                await self._route_failed(call, code)
                raise StatusError(code, await call.details() or "", "Receive")
            if self._half_closed_stream:
                # The broker handles a stream's requests in order and ended it only after our
                # half-close: every ack we wrote counted, confirmed or not.
                self._unconfirmed.clear()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._idle_cancel and task is not None and task.cancelling() == 0:
                raise _IdleStream() from None
            raise
        except grpc.aio.AioRpcError as err:
            if self._idle_cancel and err.code() == grpc.StatusCode.CANCELLED:
                raise _IdleStream() from None
            if self._router is not None:
                self._router.failed(self.topic, err.code(), err.trailing_metadata())
            raise
        finally:
            self._call = None
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            if not call.done():
                call.cancel()

    async def _route_failed(self, call: Any, code: grpc.StatusCode) -> None:
        """Tells the router (if any) how the stream ``call`` ended."""
        if self._router is not None:
            self._router.failed(self.topic, code, await call.trailing_metadata())

    async def _writer(self, call: Any) -> None:
        assert self._wakeup is not None
        while True:
            if not self._half_close and self._outbox.few_acks(self._window.max_messages // 4):
                await asyncio.sleep(_ACK_LINGER)
            req = self._outbox.take()
            if req is not None:
                if self.settings.confirm_acks:
                    # Counted as unconfirmed from now: stop() waits for them even mid-write.
                    self._unconfirmed.update(req.ack_seqs)
                try:
                    await call.write(req)
                except BaseException:
                    self._outbox.restore(req)
                    return
                if not self.settings.confirm_acks:
                    self._ack_done(req.ack_seqs, None)
                continue
            if self._half_close and not self._running:
                with contextlib.suppress(Exception):
                    await call.done_writing()
                    self._half_closed_stream = True
                return
            self._wakeup.clear()
            if self._outbox.empty() and not self._half_close:
                await self._wakeup.wait()

    def _signal(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _on_response(self, response: subscriber_pb2.ReceiveResponse) -> None:
        if response.HasField("subscribed"):
            sub = response.subscribed
            if sub.HasField("ack_deadline"):
                self._ack_deadline = max(_MIN_DEADLINE, sub.ack_deadline.ToTimedelta().total_seconds())
            self._stream_subscribed = True
            self.stats.streams += 1
            self.stats.last_seq = sub.last_seq
            # Acks the broker may not have read (the stream they went on ended) go out again:
            # an ack counts on any stream.
            self._settles.set_floor(sub.floor)
            # Not those already going out again as unconfirmed (confirm_acks): once is enough.
            queued = set(self._outbox.acks) | self._unconfirmed
            self._outbox.acks.extend(seq for seq in self._settles.acks() if seq not in queued)
            self._signal()
            if self._first is not None and not self._first.done():
                self._first.set_result(None)
        if response.HasField("heartbeat"):
            self.stats.backlog = response.heartbeat.backlog
            self.stats.last_seq = response.heartbeat.last_seq
            self._settles.set_floor(response.heartbeat.floor)
        if response.HasField("ack_results"):
            results = response.ack_results
            for seqs in (results.acked_seqs, results.already_acked_seqs, results.ignored_seqs):
                for seq in seqs:
                    self._unconfirmed.discard(seq)
                    self._settles.forget(seq)
            self._ack_done(results.acked_seqs, None)
            self._ack_done(results.already_acked_seqs, None)
            self._ack_done(
                results.ignored_seqs,
                AckNotConfirmedError("the broker ignored the ack: it had not delivered the message"),
            )
            self.stats.confirmed_acks += len(results.acked_seqs) + len(results.already_acked_seqs)
        if response.deliveries:
            now = time.monotonic()
            # Checked once per response: whether handlers run inside consumer spans.
            self._traced = self._tracing.active
            for delivery in response.deliveries:
                self._on_delivery(delivery, now)
            self.stats.max_outstanding = max(self.stats.max_outstanding, len(self._inflight))
            self._dispatch()

    def _on_delivery(self, d: message_pb2.Delivery, now: float) -> None:
        self.stats.received += 1
        lease_until = now + self._ack_deadline
        current = self._inflight.get(d.seq)
        if current is not None and current.message.settled is None:
            # Still being handled after a reconnect moved its lease to this stream: keep
            # handling the one copy; its ack goes out on this stream.
            current.lease_until = lease_until
            return
        if d.seq <= self._highest_seq and (d.seq in self._unconfirmed or d.seq in self._outbox.acks):
            # Acked, and the ack queued or written but not confirmed: the broker leased the
            # message again before it read the ack (a reconnect). The ack settles this lease
            # too; handling the copy would run the handler twice for one acked message.
            return
        kept = self._settles.redelivered(d.seq, d.attempt)
        if kept is not None:
            # Settled, and the settlement written on a stream that ended before the broker read
            # it: it applies to this lease too.
            (self._outbox.acks if kept is SettleAction.ACK else self._outbox.terminates).append(d.seq)
            self._signal()
            return
        self._highest_seq = max(self._highest_seq, d.seq)
        attributes = d.attributes
        message = ReceivedMessage(
            topic=self.topic,
            subscription=self.subscription,
            seq=d.seq,
            data=d.data,
            # Twice as fast as dict(attributes), which goes through the Mapping ABC's KeysView.
            attributes={key: attributes[key] for key in attributes},
            ordering_key=d.ordering_key,
            message_id=d.message_id,
            publish_time=self._publish_time(d.publish_time) if d.HasField("publish_time") else None,
            attempt=d.attempt,
            trace_id=d.trace_id,
            priority=_PRIORITIES.get(d.priority, Priority.NORMAL),
        )
        work = _Work(message, now, lease_until)
        message._settle = lambda action, delay, result: self._settle(work, action, delay, result)
        message._extend = lambda seconds: self._extend(work, seconds)
        self._inflight[d.seq] = work
        if self._stopping:
            # Held, not started: the broker redelivers it when this stream closes. (Nacking
            # it would have the broker send it straight back to this stream.)
            return
        self._queue.append(work)

    def _publish_time(self, ts: Timestamp) -> datetime:
        # The messages of one pack share their publish time, and a response mostly holds
        # whole packs: the last conversion is reused (Timestamp.ToDatetime costs 1.8 µs).
        key = (ts.seconds, ts.nanos)
        if key != self._time_key:
            self._time_key = key
            self._time_value = ts.ToDatetime(tzinfo=UTC)
        return self._time_value

    # -- handling -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        assert self._loop is not None
        ordered = self.settings.ordered
        while self._queue and len(self._running) < self._concurrency and not self._stopping:
            work = self._queue.popleft()
            if work.message.settled is not None:
                self._forget(work)
                continue
            if ordered and work.key:
                if work.key in self._key_busy:
                    self._key_waiting.setdefault(work.key, collections.deque()).append(work)
                    continue
                self._key_busy.add(work.key)
            task = self._loop.create_task(self._process(work))
            self._running.add(task)

    async def _process(self, work: _Work) -> None:
        message = work.message
        try:
            if self._traced:
                with self._tracing.process(
                    self.topic,
                    self.subscription,
                    seq=message.seq,
                    attributes=message.attributes,
                    message_id=message.message_id,
                    body_size=len(message.data),
                    attempt=message.attempt,
                    ordering_key=message.ordering_key,
                ) as span:
                    try:
                        await self._handle(message)
                    finally:
                        settled = message.settled
                        Tracing.set_settlement(span, settled.value if settled is not None else None)
            else:
                # No tracer provider: the no-op consumer span cost more than the rest of a
                # message's way through the subscriber.
                await self._handle(message)
        except asyncio.CancelledError:
            pass  # stop() ran out of time; the message is released when the stream closes
        except Exception:
            _log.warning(
                "handler failed on %s/%s seq %d (attempt %d); nacked",
                self.topic,
                self.subscription,
                message.seq,
                message.attempt,
                exc_info=True,
            )
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            self._forget(work)
            if work.key and self.settings.ordered:
                self._key_busy.discard(work.key)
                waiting = self._key_waiting.get(work.key)
                if waiting:
                    self._queue.appendleft(waiting.popleft())
                    if not waiting:
                        del self._key_waiting[work.key]
            self._dispatch()
            if self._half_close or self._stopping:
                self._signal()

    async def _handle(self, message: ReceivedMessage) -> None:
        """Runs the handler, then acks the message, or nacks it when the handler raised."""
        try:
            result = self._handler(message)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            self._release(message)
            raise
        except Exception:
            self.stats.handler_errors += 1
            message.nack(self.settings.nack_delay)
            raise
        message.ack()

    def _release(self, message: ReceivedMessage) -> None:
        """Gives a message back without a nack: closing the stream releases it at once.

        Used for handlers cancelled by stop(): a nack would free window space that the broker
        fills again, on this stream, before it closes.
        """
        with _SETTLE_LOCK:
            if message._settled is not None:
                return
            message._settled = SettleAction.NACK
        self.stats.nacked += 1

    def _forget(self, work: _Work) -> None:
        if self._inflight.get(work.seq) is work:
            del self._inflight[work.seq]

    def _settle(
        self, work: _Work, action: SettleAction, delay: float | None, result: AckResult | None
    ) -> bool:
        """Queues a settlement for the stream; callable from any thread."""
        loop = self._loop
        if loop is None:
            return False
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._apply_settle, work, action, delay, result)
        else:
            self._apply_settle(work, action, delay, result)
        return True

    def _apply_settle(
        self, work: _Work, action: SettleAction, delay: float | None, result: AckResult | None
    ) -> None:
        if action is not SettleAction.NACK:
            self._settles.add(work.seq, work.message.attempt, action)
        if action is SettleAction.ACK:
            self._outbox.acks.append(work.seq)
            self.stats.acked += 1
            if result is not None:
                if self._done is None or self._done.done():
                    result._set(AckNotConfirmedError("the subscriber stopped before the ack was sent"))
                else:
                    self._ack_waiters.setdefault(work.seq, []).append(result)
        elif action is SettleAction.NACK:
            self._outbox.nacks.append((work.seq, delay))
            self.stats.nacked += 1
        else:
            self._outbox.terminates.append(work.seq)
            self.stats.terminated += 1
        self._signal()

    def _ack_done(self, seqs: Collection[int], error: BaseException | None) -> None:
        """Resolves the ack results of seqs written (without confirm_acks) or confirmed."""
        if not self._ack_waiters:
            return
        for seq in seqs:
            for result in self._ack_waiters.pop(seq, ()):
                result._set(error)

    def _extend(self, work: _Work, seconds: float | None) -> bool:
        """Queues a lease extension asked for by the application; callable from any thread."""
        loop = self._loop
        if loop is None or work.message.settled is not None:
            return False
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._apply_extend, work, seconds)
        else:
            self._apply_extend(work, seconds)
        return True

    def _apply_extend(self, work: _Work, seconds: float | None) -> None:
        # A lease of an ended stream is gone: the broker redelivers the message.
        if work.message.settled is not None or self._inflight.get(work.seq) is not work or self._call is None:
            return
        deadline = min(_MAX_DEADLINE, max(_MIN_DEADLINE, seconds or self._ack_deadline))
        self._outbox.extends.setdefault(int(deadline * 1000), []).append(work.seq)
        work.lease_until = time.monotonic() + deadline
        self.stats.extended += 1
        self._signal()

    # -- leases -------------------------------------------------------------------------------

    async def _lease_loop(self) -> None:
        """Extends leases of messages still held, and watches for a silent broker."""
        while True:
            deadline = self._ack_deadline
            tick = min(1.0, deadline / 4)
            if self.settings.idle_timeout is not None:
                tick = min(tick, max(0.01, self.settings.idle_timeout / 2))
            await asyncio.sleep(tick)
            now = time.monotonic()
            extend: list[int] = []
            # Leases live on the stream: without one there is nothing to extend (a new stream
            # gets the messages again, with fresh leases).
            live = self._call is not None and self._stream_subscribed
            for work in self._inflight.values() if live else ():
                if work.message.settled is not None or work.lease_until - now > deadline / 2:
                    continue
                if now - work.received_at >= self.settings.max_extension:
                    continue
                extend.append(work.seq)
                work.lease_until = now + deadline
            if extend:
                ms = int(min(_MAX_DEADLINE, max(_MIN_DEADLINE, deadline)) * 1000)
                self._outbox.extends.setdefault(ms, []).extend(extend)
                self.stats.extended += len(extend)
                self._signal()
            idle = self.settings.idle_timeout
            call = self._call
            if (
                idle is not None
                and call is not None
                and now - self._last_response > idle
                and not self._idle_cancel
            ):
                self._idle_cancel = True
                call.cancel()

    def _finish_lifecycle(self) -> None:
        if self._lease_task is not None and not self._lease_task.done():
            self._lease_task.cancel()
        waiters, self._ack_waiters = self._ack_waiters, {}
        for results in waiters.values():
            for result in results:
                result._set(AckNotConfirmedError("the subscriber stopped before the ack was confirmed"))
        done = self._done
        if done is None or done.done():
            return
        if self._fatal is not None:
            done.set_exception(self._fatal)
            done.exception()  # mark it retrieved: callers of stop() need not look at it
        else:
            done.set_result(None)
        if self._first is not None and not self._first.done():
            self._first.set_exception(NerveBusError("subscriber stopped before it was subscribed"))
            self._first.exception()
