"""The connection to a broker, and the factory for publishers and subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from typing import Any

import grpc
import grpc.aio
from opentelemetry.trace import TracerProvider

from ._owner_router import OwnerRouter
from ._version import __version__
from .admin import Admin
from .credentials import TLS, TokenSource, channel_credentials, tls_channel_options
from .publisher import Publisher, PublisherSettings
from .retry import DEFAULT_RETRYABLE_CODES, Backoff
from .stream_publisher import StreamPublisher
from .subscriber import Handler, Subscriber, SubscriberSettings

__all__ = ["DEFAULT_CHANNEL_OPTIONS", "Client"]

#: gRPC channel options used unless overridden: large responses (a delivery batch carries up
#: to ~1 MiB plus one message of up to the broker's max message size), keepalive within what
#: the broker allows (pings no more often than every 10 s), and quick reconnects after a broker
#: restart.
DEFAULT_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 256 << 20),
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    ("grpc.primary_user_agent", f"nervebus-python/{__version__}"),
)


class Client:
    """A connection to one NerveBus broker, and the factory of its publishers and subscribers.

    Create it inside a running event loop, and close it when done: closing it closes every
    publisher (flushing it) and stops every subscriber it created, then the channel::

        async with nervebus.Client("127.0.0.1:7070") as client:
            publisher = client.publisher("orders")
            await publisher.publish(b"hello")

    Admin operations (``AdminService``: topics, subscriptions, pause/resume, purge, seek,
    stats) are on :attr:`admin`::

        await client.admin.create_topic("orders", retention=timedelta(days=1))

    Args:
        target: The broker's ``host:port``.
        tls: ``True`` for TLS with the system's roots, or a :class:`nervebus.TLS` with the CA,
            client certificate and key to use; ``None`` for plaintext.
        token: A bearer token, or a function returning the current one (see
            :data:`nervebus.TokenSource`), sent with every call; needs ``tls``.
        credentials: Hand-made channel credentials, instead of ``tls`` and ``token``.
        options: gRPC channel options added to (and overriding) :data:`DEFAULT_CHANNEL_OPTIONS`.
        channel: Use this channel instead of opening one (the client will not close it).
        tracer_provider: Where spans go; ``None`` uses the global provider.
        direct_to_owner: With several brokers on one database (``--cluster``): send each
            topic's publishes and Receive streams straight to the broker that owns the topic
            (asked with LocateTopic through ``target``, over a channel with the same
            credentials and options), and follow it when the topic moves. Until the owner is
            known, ``target`` forwards the calls. Not with ``channel``.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: TLS | bool | None = None,
        token: str | TokenSource | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.aio.Channel | None = None,
        tracer_provider: TracerProvider | None = None,
        direct_to_owner: bool = False,
    ) -> None:
        if credentials is not None and (tls is not None or token is not None):
            raise ValueError("give either credentials or tls/token, not both")
        if direct_to_owner and channel is not None:
            raise ValueError("direct_to_owner opens channels to the owners itself: give no channel")
        self.target = target
        self._tracer_provider = tracer_provider
        self._owns_channel = channel is None
        self._router: OwnerRouter | None = None
        if channel is None:
            if credentials is None:
                credentials = channel_credentials(tls, token)
            merged = dict(DEFAULT_CHANNEL_OPTIONS)
            merged.update(dict(tls_channel_options(tls)))
            merged.update(dict(options))
            opts = list(merged.items())

            def open_channel(address: str) -> grpc.aio.Channel:
                if credentials is not None:
                    return grpc.aio.secure_channel(address, credentials, options=opts)
                return grpc.aio.insecure_channel(address, options=opts)

            channel = open_channel(target)
            if direct_to_owner:
                self._router = OwnerRouter(
                    channel, target, open_channel, lambda topic: self.admin.locate_topic(topic, timeout=5)
                )
        self._channel = channel
        self._publishers: list[Publisher] = []
        self._stream_publishers: list[StreamPublisher] = []
        self._subscribers: list[Subscriber] = []
        self._admin: Admin | None = None
        self._closed = False

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying ``grpc.aio`` channel (for generated stubs of other services)."""
        return self._channel

    @property
    def admin(self) -> Admin:
        """The broker's admin operations (:class:`nervebus.Admin`), on this client's channel."""
        if self._admin is None:
            self._admin = Admin(self._channel)
        return self._admin

    def publisher(self, topic: str, settings: PublisherSettings | None = None) -> Publisher:
        """A new :class:`Publisher` for ``topic``, closed with the client."""
        publisher = Publisher(
            self._channel,
            topic,
            settings,
            tracer_provider=self._tracer_provider,
            target=self.target,
            router=self._router,
        )
        self._publishers.append(publisher)
        return publisher

    async def stream_publisher(
        self,
        topic: str,
        *,
        max_messages: int = 0,
        max_bytes: int = 0,
        no_confirms: bool = False,
        auto_message_id: bool = True,
        reconnect_backoff: Backoff | None = None,
        reconnect_deadline: float = 60.0,
        retryable_codes: Collection[grpc.StatusCode] = DEFAULT_RETRYABLE_CODES,
    ) -> StreamPublisher:
        """An opened :class:`StreamPublisher` on ``topic`` (a Publish stream), closed with the client.

        A broken stream is reopened and its unconfirmed batches sent again (see
        :class:`StreamPublisher` for the arguments). Raises the broker's refusal
        (:class:`nervebus.StatusError`).
        """
        stream = StreamPublisher(
            self._channel if self._router is None else self._router.stubs(topic).channel,
            topic,
            max_messages=max_messages,
            max_bytes=max_bytes,
            no_confirms=no_confirms,
            auto_message_id=auto_message_id,
            reconnect_backoff=reconnect_backoff,
            reconnect_deadline=reconnect_deadline,
            retryable_codes=retryable_codes,
        )
        await stream.start()
        self._stream_publishers.append(stream)
        return stream

    def subscriber(
        self,
        topic: str,
        subscription: str,
        handler: Handler,
        settings: SubscriberSettings | None = None,
    ) -> Subscriber:
        """A new (not yet started) :class:`Subscriber`, stopped with the client."""
        subscriber = Subscriber(
            self._channel,
            topic,
            subscription,
            handler,
            settings,
            tracer_provider=self._tracer_provider,
            target=self.target,
            router=self._router,
        )
        self._subscribers.append(subscriber)
        return subscriber

    def owner_of(self, topic: str) -> str:
        """With ``direct_to_owner``: the broker ``topic``'s calls go to as last learnt.

        ``""`` means ``target`` (it owns the topic, or the owner is not known yet).
        """
        return "" if self._router is None else self._router.owner_of(topic)

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Waits until the channel is connected to the broker.

        Raises:
            TimeoutError: Not connected within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._channel.channel_ready(), timeout)

    async def close(self) -> None:
        """Stops the subscribers, closes (flushes) the publishers, then closes the channel."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(s.stop() for s in self._subscribers), return_exceptions=True)
        await asyncio.gather(*(p.close() for p in self._publishers), return_exceptions=True)
        await asyncio.gather(*(p.close() for p in self._stream_publishers), return_exceptions=True)
        if self._router is not None:
            await self._router.close()
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
