"""A synchronous wrapper for scripts and programs that are not async.

The asyncio client runs on an event loop in a background thread; the methods here block the
calling thread until the loop has done the work. Handlers of a :class:`Subscriber` are plain
functions run on a thread pool of ``settings.concurrency`` threads (32 when it is not set)::

    from nervebus import sync

    with sync.Client("127.0.0.1:7070") as client:
        publisher = client.publisher("orders")
        print(publisher.publish(b"hello").seq)

        def handle(message):
            print(message.seq, message.data)

        with client.subscriber("orders", "billing", handle):
            time.sleep(10)

        print(client.admin.get_stats("orders").subscription("billing").backlog)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar, overload

import grpc
from google.protobuf.message import Message as ProtoMessage
from opentelemetry.trace import TracerProvider

from . import admin as _aio_admin
from . import client as _aio_client
from . import publisher as _aio_publisher
from . import subscriber as _aio_subscriber
from .admin import Duration, Stats, Subscription, Topic
from .browse import MessagePage, StoredMessage
from .credentials import TLS, TokenSource
from .errors import NerveBusError
from .publisher import Publishable, PublisherSettings, PublisherStats
from .subscriber import SubscriberSettings, SubscriberStats
from .typed import TopicSchema
from .types import PublishResult, ReceivedMessage, StartPoint

__all__ = ["Admin", "Client", "Publisher", "SyncHandler", "Subscriber"]

T = TypeVar("T")

#: A synchronous message handler. Returning acks the message; raising nacks it.
SyncHandler = Callable[[ReceivedMessage], Any]

# Handler threads when SubscriberSettings.concurrency is not set.
_SYNC_THREADS = 32


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="nervebus-sync-loop", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedules ``coro`` on the loop; returns a future for its result."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise NerveBusError("blocking nervebus.sync call made on the client's own event loop thread")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def start_task(
        self, coro: Coroutine[Any, Any, T], context: contextvars.Context
    ) -> concurrent.futures.Future[T]:
        """Starts ``coro`` as a task in ``context``; tasks start in the order of these calls.

        Unlike :meth:`submit`, the coroutine's first step runs in the same loop turn as the
        task's creation, so calls from one thread reach the loop in call order.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise NerveBusError("blocking nervebus.sync call made on the client's own event loop thread")
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            if not result.set_running_or_notify_cancel():
                coro.close()
                return
            task = self.loop.create_task(coro, context=context)

            def finished(t: asyncio.Task[T]) -> None:
                if t.cancelled():
                    result.set_exception(concurrent.futures.CancelledError())
                elif (err := t.exception()) is not None:
                    result.set_exception(err)
                else:
                    result.set_result(t.result())

            task.add_done_callback(finished)

        self.loop.call_soon_threadsafe(start)
        return result

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Runs ``coro`` on the loop and blocks for its result."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"nervebus call did not finish within {timeout} s") from None

    def stop(self) -> None:
        """Stops the loop and joins its thread."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if threading.current_thread() is not self._thread:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class Client:
    """A blocking :class:`nervebus.Client`: owns a background event loop and the channel.

    Args:
        target: The broker's ``host:port``.
        tls: TLS settings (see :class:`nervebus.Client`); ``None`` for plaintext.
        token: A bearer token or token source (see :class:`nervebus.Client`); needs ``tls``.
        credentials: Hand-made channel credentials, instead of ``tls`` and ``token``.
        options: gRPC channel options (see :data:`nervebus.DEFAULT_CHANNEL_OPTIONS`).
        tracer_provider: Where spans go; ``None`` uses the global provider.
        direct_to_owner: Calls go to each topic's owner (see :class:`nervebus.Client`).
    """

    def __init__(
        self,
        target: str,
        *,
        tls: TLS | bool | None = None,
        token: str | TokenSource | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        tracer_provider: TracerProvider | None = None,
        direct_to_owner: bool = False,
    ) -> None:
        self.target = target
        self._runner = _LoopThread()

        async def make() -> _aio_client.Client:
            return _aio_client.Client(
                target,
                tls=tls,
                token=token,
                credentials=credentials,
                options=options,
                tracer_provider=tracer_provider,
                direct_to_owner=direct_to_owner,
            )

        self._client = self._runner.run(make())
        self._admin = Admin(self)
        self._closed = False

    @property
    def aio(self) -> _aio_client.Client:
        """The asyncio client underneath (use it only on :attr:`loop`)."""
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The background event loop."""
        return self._runner.loop

    @property
    def admin(self) -> Admin:
        """The broker's admin operations, blocking (see :class:`Admin`)."""
        return self._admin

    def publisher(self, topic: str, settings: PublisherSettings | None = None) -> Publisher:
        """A new blocking :class:`Publisher` for ``topic``."""
        return Publisher(self, topic, settings)

    def subscriber(
        self,
        topic: str,
        subscription: str,
        handler: SyncHandler,
        settings: SubscriberSettings | None = None,
    ) -> Subscriber:
        """A new (not yet started) blocking :class:`Subscriber`; ``handler`` is a plain function."""
        return Subscriber(self, topic, subscription, handler, settings)

    def wait_for_ready(self, timeout: float | None = None) -> None:
        """Blocks until the channel is connected to the broker."""
        self._runner.run(self._client.wait_for_ready(timeout))

    def close(self, timeout: float | None = 60.0) -> None:
        """Stops subscribers, flushes publishers, closes the channel and the loop thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._runner.run(self._client.close(), timeout)
        finally:
            self._runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Admin:
    """The blocking twin of :class:`nervebus.Admin`; get it from :attr:`Client.admin`.

    Every method blocks until the broker answered and takes the same arguments as its async
    twin, including ``timeout`` (the call's deadline in seconds). Broker errors raise
    :class:`nervebus.StatusError`.
    """

    def __init__(self, client: Client) -> None:
        self._runner = client._runner
        self._admin: _aio_admin.Admin = client.aio.admin

    def create_topic(
        self,
        name: str,
        *,
        shards: int | None = None,
        retention: Duration | None = None,
        retention_bytes: int | None = None,
        dedup_window: Duration | None = None,
        ephemeral: bool = False,
        timeout: float | None = None,
    ) -> Topic:
        """Creates a topic; see :meth:`nervebus.Admin.create_topic`."""
        return self._runner.run(
            self._admin.create_topic(
                name,
                shards=shards,
                retention=retention,
                retention_bytes=retention_bytes,
                dedup_window=dedup_window,
                ephemeral=ephemeral,
                timeout=timeout,
            )
        )

    def get_topic(self, name: str, *, timeout: float | None = None) -> Topic:
        """Returns a topic's settings; see :meth:`nervebus.Admin.get_topic`."""
        return self._runner.run(self._admin.get_topic(name, timeout=timeout))

    def list_topics(self, *, timeout: float | None = None) -> list[Topic]:
        """Returns every topic, by name."""
        return self._runner.run(self._admin.list_topics(timeout=timeout))

    def update_topic(
        self,
        name: str,
        *,
        retention: Duration | None = None,
        retention_bytes: int | None = None,
        dedup_window: Duration | None = None,
        timeout: float | None = None,
    ) -> Topic:
        """Changes the settings given; see :meth:`nervebus.Admin.update_topic`."""
        return self._runner.run(
            self._admin.update_topic(
                name,
                retention=retention,
                retention_bytes=retention_bytes,
                dedup_window=dedup_window,
                timeout=timeout,
            )
        )

    def delete_topic(self, name: str, *, timeout: float | None = None) -> None:
        """Deletes a topic; see :meth:`nervebus.Admin.delete_topic`."""
        self._runner.run(self._admin.delete_topic(name, timeout=timeout))

    def create_subscription(
        self,
        topic: str,
        name: str,
        *,
        ack_deadline: Duration | None = None,
        min_backoff: Duration | None = None,
        max_backoff: Duration | None = None,
        max_delivery_attempts: int | None = None,
        dead_letter_topic: str | None = None,
        ordering: bool = False,
        start: StartPoint | int | datetime | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Creates a subscription; see :meth:`nervebus.Admin.create_subscription`."""
        return self._runner.run(
            self._admin.create_subscription(
                topic,
                name,
                ack_deadline=ack_deadline,
                min_backoff=min_backoff,
                max_backoff=max_backoff,
                max_delivery_attempts=max_delivery_attempts,
                dead_letter_topic=dead_letter_topic,
                ordering=ordering,
                start=start,
                timeout=timeout,
            )
        )

    def get_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> Subscription:
        """Returns a subscription's settings; see :meth:`nervebus.Admin.get_subscription`."""
        return self._runner.run(self._admin.get_subscription(topic, name, timeout=timeout))

    def list_subscriptions(self, topic: str, *, timeout: float | None = None) -> list[Subscription]:
        """Returns a topic's subscriptions, by name."""
        return self._runner.run(self._admin.list_subscriptions(topic, timeout=timeout))

    def update_subscription(
        self,
        topic: str,
        name: str,
        *,
        ack_deadline: Duration | None = None,
        min_backoff: Duration | None = None,
        max_backoff: Duration | None = None,
        max_delivery_attempts: int | None = None,
        dead_letter_topic: str | None = None,
        ordering: bool | None = None,
        timeout: float | None = None,
    ) -> Subscription:
        """Changes the settings given; see :meth:`nervebus.Admin.update_subscription`."""
        return self._runner.run(
            self._admin.update_subscription(
                topic,
                name,
                ack_deadline=ack_deadline,
                min_backoff=min_backoff,
                max_backoff=max_backoff,
                max_delivery_attempts=max_delivery_attempts,
                dead_letter_topic=dead_letter_topic,
                ordering=ordering,
                timeout=timeout,
            )
        )

    def delete_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> None:
        """Deletes a subscription; see :meth:`nervebus.Admin.delete_subscription`."""
        self._runner.run(self._admin.delete_subscription(topic, name, timeout=timeout))

    def pause_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> Subscription:
        """Stops deliveries on a subscription; see :meth:`nervebus.Admin.pause_subscription`."""
        return self._runner.run(self._admin.pause_subscription(topic, name, timeout=timeout))

    def resume_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> Subscription:
        """Restarts deliveries; see :meth:`nervebus.Admin.resume_subscription`."""
        return self._runner.run(self._admin.resume_subscription(topic, name, timeout=timeout))

    def purge_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> int:
        """Acks everything published so far; returns the new floor."""
        return self._runner.run(self._admin.purge_subscription(topic, name, timeout=timeout))

    def seek_subscription(
        self, topic: str, name: str, target: int | datetime, *, timeout: float | None = None
    ) -> int:
        """Moves a subscription to a seq or a time; see :meth:`nervebus.Admin.seek_subscription`."""
        return self._runner.run(self._admin.seek_subscription(topic, name, target, timeout=timeout))

    def get_stats(self, topic: str, *, timeout: float | None = None) -> Stats:
        """Returns a topic's and its subscriptions' figures; see :meth:`nervebus.Admin.get_stats`."""
        return self._runner.run(self._admin.get_stats(topic, timeout=timeout))

    def list_messages(self, topic: str, **filters: Any) -> MessagePage:
        """Searches stored messages; see :meth:`nervebus.Admin.list_messages` (same keywords)."""
        return self._runner.run(self._admin.list_messages(topic, **filters))

    def set_topic_schema(
        self, topic: str, message_class: type[ProtoMessage] | None, *, timeout: float | None = None
    ) -> TopicSchema:
        """Makes a topic typed (None: untyped); see :meth:`nervebus.Admin.set_topic_schema`."""
        return self._runner.run(self._admin.set_topic_schema(topic, message_class, timeout=timeout))

    def get_topic_schema(self, topic: str, *, timeout: float | None = None) -> TopicSchema:
        """A topic's message type; see :meth:`nervebus.Admin.get_topic_schema`."""
        return self._runner.run(self._admin.get_topic_schema(topic, timeout=timeout))

    def get_message(self, topic: str, seq: int, *, timeout: float | None = None) -> StoredMessage:
        """One stored message and its deliveries; see :meth:`nervebus.Admin.get_message`."""
        return self._runner.run(self._admin.get_message(topic, seq, timeout=timeout))


def _own_client(target: str | Client) -> tuple[Client, bool]:
    if isinstance(target, Client):
        return target, False
    return Client(target), True


class Publisher:
    """A blocking :class:`nervebus.Publisher`.

    Args:
        client: A :class:`Client`, or a ``host:port`` to open a private one (closed with the
            publisher).
        topic: The topic's name.
        settings: Batching, flow-control and retry settings.
    """

    def __init__(self, client: Client | str, topic: str, settings: PublisherSettings | None = None) -> None:
        self._client, self._owns_client = _own_client(client)
        self.topic = topic
        self._publisher: _aio_publisher.Publisher = self._client.aio.publisher(topic, settings)

    @property
    def stats(self) -> PublisherStats:
        """The publisher's counters."""
        return self._publisher.stats

    def publish_async(
        self,
        data: bytes | bytearray | memoryview | str,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str = "",
        message_id: str = "",
        deliver_at: datetime | None = None,
        delay: float | timedelta | None = None,
    ) -> concurrent.futures.Future[PublishResult]:
        """Publishes without waiting; the future resolves once the message is durable.

        Calls from one thread keep their order (and so do their ordering keys), also relative
        to a later :meth:`flush`. The current OpenTelemetry context of the calling thread is
        the parent of the producer span. Cancelling the future does not withdraw the message.
        """
        coro = self._publisher.publish(
            data,
            attributes=attributes,
            ordering_key=ordering_key,
            message_id=message_id,
            deliver_at=deliver_at,
            delay=delay,
        )
        # The task runs in the caller's context (its current span is the producer's parent).
        return self._client._runner.start_task(coro, contextvars.copy_context())

    def publish(
        self,
        data: bytes | bytearray | memoryview | str,
        *,
        attributes: Mapping[str, str] | None = None,
        ordering_key: str = "",
        message_id: str = "",
        deliver_at: datetime | None = None,
        delay: float | timedelta | None = None,
        timeout: float | None = None,
    ) -> PublishResult:
        """Publishes one message and blocks until it is durable.

        See :meth:`nervebus.Publisher.publish`; ``timeout`` bounds the wait in seconds.
        """
        future = self.publish_async(
            data,
            attributes=attributes,
            ordering_key=ordering_key,
            message_id=message_id,
            deliver_at=deliver_at,
            delay=delay,
        )
        return future.result(timeout)

    def resume_publish(self, ordering_key: str) -> None:
        """Lets a paused ordering key be published again; see :meth:`nervebus.Publisher.resume_publish`."""

        async def resume() -> None:
            self._publisher.resume_publish(ordering_key)

        self._client._runner.run(resume())

    @overload
    def publish_many(
        self,
        messages: Iterable[Publishable],
        *,
        return_exceptions: Literal[False] = False,
        timeout: float | None = None,
    ) -> list[PublishResult]: ...

    @overload
    def publish_many(
        self,
        messages: Iterable[Publishable],
        *,
        return_exceptions: Literal[True],
        timeout: float | None = None,
    ) -> list[PublishResult | BaseException]: ...

    def publish_many(
        self,
        messages: Iterable[Publishable],
        *,
        return_exceptions: bool = False,
        timeout: float | None = None,
    ) -> list[PublishResult] | list[PublishResult | BaseException]:
        """Publishes many messages and blocks until every one is settled.

        See :meth:`nervebus.Publisher.publish_many` (``messages`` is iterated on the client's
        loop thread); ``timeout`` bounds the wait in seconds.
        """
        coro = self._publisher.publish_many(messages, return_exceptions=return_exceptions)
        # The caller's context: its current span is the parent of the producer spans.
        future = self._client._runner.start_task(coro, contextvars.copy_context())
        return future.result(timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Blocks until everything published so far is settled."""
        self._client._runner.run(self._publisher.flush(), timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flushes and closes the publisher (and its private client, if it has one)."""
        try:
            self._client._runner.run(self._publisher.close(timeout))
        finally:
            if self._owns_client:
                self._client.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Subscriber:
    """A blocking :class:`nervebus.Subscriber` whose handler is a plain function.

    The handler runs on a pool of ``settings.concurrency`` threads (32 when it is not set:
    threads are not as cheap as the tasks of the asyncio subscriber), inside the consumer span
    when tracing is on. Returning acks the message; raising nacks it.

    Args:
        client: A :class:`Client`, or a ``host:port`` to open a private one (closed when the
            subscriber stops).
        topic: The topic's name.
        subscription: The subscription's name.
        handler: The message handler, called with a :class:`nervebus.ReceivedMessage`.
        settings: Window, concurrency, lease and reconnect settings.
    """

    def __init__(
        self,
        client: Client | str,
        topic: str,
        subscription: str,
        handler: SyncHandler,
        settings: SubscriberSettings | None = None,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be a callable taking a ReceivedMessage")
        self._client, self._owns_client = _own_client(client)
        settings = settings or SubscriberSettings()
        if settings.concurrency is None:
            settings = dataclasses.replace(settings, concurrency=min(_SYNC_THREADS, settings.max_messages))
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="nervebus-handler"
        )
        loop = self._client.loop

        async def run_handler(message: ReceivedMessage) -> None:
            ctx = contextvars.copy_context()
            await loop.run_in_executor(self._executor, ctx.run, handler, message)

        self._subscriber: _aio_subscriber.Subscriber = self._client.aio.subscriber(
            topic, subscription, run_handler, settings
        )

    @property
    def stats(self) -> SubscriberStats:
        """The subscriber's counters."""
        return self._subscriber.stats

    @property
    def running(self) -> bool:
        """Whether it was started and has not stopped yet."""
        return self._subscriber.running

    def start(self, timeout: float | None = None) -> None:
        """Blocks until the broker confirmed the subscription.

        See :meth:`nervebus.Subscriber.start`.
        """
        self._client._runner.run(self._subscriber.start(timeout))

    def stop(self, timeout: float | None = None) -> None:
        """Stops gracefully; see :meth:`nervebus.Subscriber.stop`."""
        try:
            self._client._runner.run(self._subscriber.stop(timeout))
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._owns_client:
                self._client.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until the subscriber stops (True) or ``timeout`` passes (False).

        Raises the error that stopped it, if any.
        """
        future = self._client._runner.submit(self._subscriber.wait())
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return False
        return True

    def run_forever(self) -> None:
        """Starts (if needed) and blocks until the subscriber stops or fails.

        Ctrl-C (KeyboardInterrupt) stops it gracefully.
        """
        if not self.running:
            self.start()
        try:
            while not self.wait(0.5):
                pass
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> Subscriber:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
