"""Admin operations (``AdminService``): topics, subscriptions, pause/resume, purge, seek, stats.

Reach them through :attr:`nervebus.Client.admin`::

    async with nervebus.Client("127.0.0.1:7070") as client:
        await client.admin.create_topic("orders", retention=timedelta(days=1))
        stats = await client.admin.get_stats("orders")

Durations are taken as seconds (``float``) or :class:`datetime.timedelta` and returned as
:class:`~datetime.timedelta`; times are :class:`~datetime.datetime` (naive ones are taken as
UTC; returned ones are UTC-aware). ``None`` means "unset": the broker's default when creating,
"leave as it is" when updating. Broker errors raise :class:`nervebus.StatusError` with the gRPC
code (``NOT_FOUND``, ``ALREADY_EXISTS``, ``INVALID_ARGUMENT`` naming the field,
``FAILED_PRECONDITION``) and the RPC's name as ``operation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import grpc
import grpc.aio
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from . import browse as _browse
from . import typed as _typed
from .errors import StatusError
from .gen.nervebus.v1 import admin_pb2, admin_pb2_grpc, subscriber_pb2
from .types import StartPoint

__all__ = [
    "Admin",
    "ConsumerStats",
    "Duration",
    "Stats",
    "Subscription",
    "SubscriptionStats",
    "Topic",
    "TopicStats",
]

#: A duration given to the admin API: seconds, or a :class:`~datetime.timedelta`.
Duration: TypeAlias = float | timedelta


@dataclass(frozen=True)
class Topic:
    """A topic's settings as the broker reports them.

    Attributes:
        name: 1–128 characters of ``[A-Za-z0-9._-]``.
        shards: Shard tables of the topic's log; fixed at creation.
        retention: Messages older than this are deleted; zero keeps them forever.
        retention_bytes: The log's approximate size limit; the oldest messages are deleted
            beyond it. 0 means no limit.
        dedup_window: A message id seen again within this window is not appended again; zero
            disables deduplication.
        ephemeral: Messages are never stored, only passed to connected consumers with room.
        create_time: When the topic was created (UTC).
    """

    name: str
    shards: int
    retention: timedelta
    retention_bytes: int
    dedup_window: timedelta
    ephemeral: bool
    create_time: datetime | None


@dataclass(frozen=True)
class Subscription:
    """A subscription's settings as the broker reports them.

    Attributes:
        topic: The subscription's topic.
        name: 1–128 characters of ``[A-Za-z0-9._-]``.
        ack_deadline: How long a delivered message stays leased before it is redelivered.
        min_backoff: Redelivery backoff after a nack without delay or an expired lease:
            ``min_backoff · 2^(attempt-1)``, capped at ``max_backoff``, with jitter.
        max_backoff: See ``min_backoff``.
        max_delivery_attempts: Deliveries without an ack after which a message goes to the
            dead-letter topic (or is dropped); 0 means unlimited.
        dead_letter_topic: Where dead messages go; empty means none.
        ordering: Messages with the same ordering key are delivered one at a time, in order.
        paused: No deliveries while paused (see :meth:`Admin.pause_subscription`).
        create_time: When the subscription was created (UTC).
    """

    topic: str
    name: str
    ack_deadline: timedelta
    min_backoff: timedelta
    max_backoff: timedelta
    max_delivery_attempts: int
    dead_letter_topic: str
    ordering: bool
    paused: bool
    create_time: datetime | None


@dataclass(frozen=True)
class TopicStats:
    """A topic's figures.

    Attributes:
        name: The topic.
        last_seq: The last durable seq (also the number of messages ever appended).
        first_seq: The oldest retained seq (0 when the log is empty).
        publish_rate: Messages appended per second, averaged over the last 10 s.
        scheduled: Delayed messages waiting for their time.
        dedup_ids: Message ids remembered for deduplication.
        dropped: Ephemeral topics: messages dropped because no consumer had room.
        retention_deleted: Messages deleted by retention since the broker started.
    """

    name: str
    last_seq: int
    first_seq: int
    publish_rate: float
    scheduled: int
    dedup_ids: int
    dropped: int
    retention_deleted: int


@dataclass(frozen=True)
class ConsumerStats:
    """One connected Receive stream.

    Attributes:
        name: The consumer's name (``SubscriberSettings.consumer_name``) or peer address.
        in_flight: Messages it holds.
        max_messages: Its window, in messages.
        max_bytes: Its window, in payload bytes; 0 means no byte limit.
        connect_time: When it connected (UTC).
    """

    name: str
    in_flight: int
    max_messages: int
    max_bytes: int
    connect_time: datetime | None


@dataclass(frozen=True)
class SubscriptionStats:
    """A subscription's figures.

    Attributes:
        name: The subscription.
        floor: Every seq up to here is acked.
        backlog: Messages published and not acked.
        in_flight: Messages leased to consumers now.
        waiting_redelivery: Messages waiting for redelivery (nacked or expired).
        redelivered: Redeliveries since the broker started.
        dead_lettered: Messages dead-lettered (or dropped after max attempts) since start.
        skipped: Messages retention deleted before they were acked, since start.
        oldest_unacked_age: Age of the oldest unacked message (zero when none).
        delivery_rate: Deliveries per second over the last 10 s.
        ack_rate: Acks per second over the last 10 s.
        consumers: The connected consumers.
        state_entries: Entries of persisted state above the floor, against a cap of 50000.
        paused: Whether deliveries are paused.
    """

    name: str
    floor: int
    backlog: int
    in_flight: int
    waiting_redelivery: int
    redelivered: int
    dead_lettered: int
    skipped: int
    oldest_unacked_age: timedelta
    delivery_rate: float
    ack_rate: float
    consumers: tuple[ConsumerStats, ...]
    state_entries: int
    paused: bool


@dataclass(frozen=True)
class Stats:
    """Figures of a topic and of each of its subscriptions (by name).

    Attributes:
        topic: The topic's figures.
        subscriptions: Each subscription's figures, by name.
    """

    topic: TopicStats
    subscriptions: tuple[SubscriptionStats, ...]

    def subscription(self, name: str) -> SubscriptionStats:
        """The figures of subscription ``name``.

        Raises:
            KeyError: The topic has no such subscription.
        """
        for s in self.subscriptions:
            if s.name == name:
                return s
        raise KeyError(name)


class Admin:
    """The broker's ``AdminService``, with plain Python arguments and dataclass results.

    Get it from :attr:`nervebus.Client.admin`; it shares the client's channel. Every method
    takes an optional ``timeout`` in seconds (the call's gRPC deadline; ``None`` for none) and
    raises :class:`nervebus.StatusError` when the broker refuses.

    Args:
        channel: The ``grpc.aio`` channel to the broker.
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub: Any = admin_pb2_grpc.AdminServiceStub(channel)  # type: ignore[no-untyped-call]

    # ---- Topics ---------------------------------------------------------------------------

    async def create_topic(
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
        """Creates a topic and returns it with the defaults filled in.

        Args:
            name: 1–128 characters of ``[A-Za-z0-9._-]``.
            shards: Shard tables (1–64), fixed at creation; ``None`` for the broker's default.
            retention: How long messages are kept; ``None`` for 7 days, 0 keeps them forever.
            retention_bytes: Size limit of the log; ``None`` (or 0) for the broker's default,
                which is no limit unless the broker was configured otherwise.
            dedup_window: How long message ids are remembered (at most 24 h); ``None`` for 2
                minutes, 0 disables deduplication.
            ephemeral: Never store messages; fixed at creation.
            timeout: Deadline of the call in seconds.

        Raises:
            StatusError: ``ALREADY_EXISTS`` when the topic exists, ``INVALID_ARGUMENT`` for a
                bad name or setting.
        """
        topic = admin_pb2.Topic(
            name=name,
            shards=shards or 0,
            retention_bytes=retention_bytes or 0,
            ephemeral=ephemeral,
        )
        if retention is not None:
            topic.retention.CopyFrom(_duration(retention))
        if dedup_window is not None:
            topic.dedup_window.CopyFrom(_duration(dedup_window))
        res = await self._call("CreateTopic", admin_pb2.CreateTopicRequest(topic=topic), timeout)
        return _topic(res.topic)

    async def get_topic(self, name: str, *, timeout: float | None = None) -> Topic:
        """Returns a topic's settings.

        Raises:
            StatusError: ``NOT_FOUND`` when it does not exist.
        """
        res = await self._call("GetTopic", admin_pb2.GetTopicRequest(name=name), timeout)
        return _topic(res.topic)

    async def locate_topic(self, topic: str, *, timeout: float | None = None) -> str:
        """The ``host:port`` of the broker that serves ``topic`` when several share a database.

        ``""`` when it is the broker called (always so without ``--cluster``).
        """
        res = await self._call("LocateTopic", admin_pb2.LocateTopicRequest(topic=topic), timeout)
        return str(res.address)

    async def list_topics(self, *, timeout: float | None = None) -> list[Topic]:
        """Returns every topic, by name."""
        res = await self._call("ListTopics", admin_pb2.ListTopicsRequest(), timeout)
        return [_topic(t) for t in res.topics]

    async def update_topic(
        self,
        name: str,
        *,
        retention: Duration | None = None,
        retention_bytes: int | None = None,
        dedup_window: Duration | None = None,
        timeout: float | None = None,
    ) -> Topic:
        """Changes the settings given (not ``None``), keeps the others, returns the topic.

        Args:
            name: The topic.
            retention: New retention; 0 keeps messages forever.
            retention_bytes: New size limit; 0 removes it.
            dedup_window: New deduplication window (at most 24 h); 0 disables it.
            timeout: Deadline of the call in seconds.

        Raises:
            StatusError: ``NOT_FOUND``, or ``INVALID_ARGUMENT`` for a bad value or when no
                setting is given (``update_mask``).
        """
        topic = admin_pb2.Topic(name=name)
        paths: list[str] = []
        if retention is not None:
            topic.retention.CopyFrom(_duration(retention))
            paths.append("retention")
        if retention_bytes is not None:
            topic.retention_bytes = retention_bytes
            paths.append("retention_bytes")
        if dedup_window is not None:
            topic.dedup_window.CopyFrom(_duration(dedup_window))
            paths.append("dedup_window")
        request = admin_pb2.UpdateTopicRequest(topic=topic, update_mask=field_mask_pb2.FieldMask(paths=paths))
        res = await self._call("UpdateTopic", request, timeout)
        return _topic(res.topic)

    async def delete_topic(self, name: str, *, timeout: float | None = None) -> None:
        """Deletes a topic with its messages, schedule and subscriptions.

        Their connected streams end with ``NOT_FOUND``.

        Raises:
            StatusError: ``NOT_FOUND``, or ``FAILED_PRECONDITION`` while the topic is another
                subscription's dead-letter topic.
        """
        await self._call("DeleteTopic", admin_pb2.DeleteTopicRequest(name=name), timeout)

    # ---- Subscriptions --------------------------------------------------------------------

    async def create_subscription(
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
        """Creates a subscription on an existing topic and returns it as created.

        Args:
            topic: The topic, which must exist.
            name: 1–128 characters of ``[A-Za-z0-9._-]``.
            ack_deadline: Lease of a delivered message (1 s – 10 min); ``None`` for 30 s.
            min_backoff: First redelivery backoff; ``None`` for 1 s.
            max_backoff: Backoff cap (≥ ``min_backoff``, ≤ 1 h); ``None`` for 60 s.
            max_delivery_attempts: Dead-letter after this many deliveries (0–1000);
                ``None`` or 0 for unlimited.
            dead_letter_topic: Where dead messages go (not ``topic``); ``None`` for none.
            ordering: Deliver messages of one ordering key one at a time, in seq order.
            start: Where it starts: :class:`StartPoint`, a seq (the first message
                delivered), or a time (the first message published at or after it);
                ``None`` for the latest.
            timeout: Deadline of the call in seconds.

        Raises:
            StatusError: ``NOT_FOUND`` when the topic does not exist, ``ALREADY_EXISTS``,
                ``INVALID_ARGUMENT`` for a bad name or setting.
        """
        sub = admin_pb2.Subscription(
            topic=topic,
            name=name,
            max_delivery_attempts=max_delivery_attempts or 0,
            dead_letter_topic=dead_letter_topic or "",
            ordering=ordering,
        )
        if ack_deadline is not None:
            sub.ack_deadline.CopyFrom(_duration(ack_deadline))
        if min_backoff is not None:
            sub.min_backoff.CopyFrom(_duration(min_backoff))
        if max_backoff is not None:
            sub.max_backoff.CopyFrom(_duration(max_backoff))
        request = admin_pb2.CreateSubscriptionRequest(subscription=sub)
        if isinstance(start, StartPoint):
            request.start_point = (
                subscriber_pb2.START_POINT_EARLIEST
                if start is StartPoint.EARLIEST
                else subscriber_pb2.START_POINT_LATEST
            )
        elif isinstance(start, datetime):
            request.start_time.CopyFrom(_timestamp(start))
        elif isinstance(start, int) and not isinstance(start, bool):
            request.start_seq = start
        elif start is not None:
            raise TypeError(f"start must be a StartPoint, a seq or a datetime, not {type(start).__name__}")
        res = await self._call("CreateSubscription", request, timeout)
        return _subscription(res.subscription)

    async def get_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> Subscription:
        """Returns a subscription's settings.

        Raises:
            StatusError: ``NOT_FOUND`` when the topic or the subscription does not exist.
        """
        request = admin_pb2.GetSubscriptionRequest(topic=topic, name=name)
        res = await self._call("GetSubscription", request, timeout)
        return _subscription(res.subscription)

    async def list_subscriptions(self, topic: str, *, timeout: float | None = None) -> list[Subscription]:
        """Returns a topic's subscriptions, by name.

        Raises:
            StatusError: ``NOT_FOUND`` when the topic does not exist.
        """
        res = await self._call("ListSubscriptions", admin_pb2.ListSubscriptionsRequest(topic=topic), timeout)
        return [_subscription(s) for s in res.subscriptions]

    async def update_subscription(
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
        """Changes the settings given (not ``None``), keeps the others, returns the subscription.

        The broker applies the change at once, also to connected streams.

        Args:
            topic: The topic.
            name: The subscription.
            ack_deadline: New lease of delivered messages (1 s – 10 min).
            min_backoff: New first redelivery backoff.
            max_backoff: New backoff cap (≥ ``min_backoff``, ≤ 1 h).
            max_delivery_attempts: New limit (0–1000); 0 means unlimited.
            dead_letter_topic: New dead-letter topic; ``""`` removes it.
            ordering: Turn ordered delivery on or off.
            timeout: Deadline of the call in seconds.

        Raises:
            StatusError: ``NOT_FOUND``, or ``INVALID_ARGUMENT`` for a bad value or when no
                setting is given (``update_mask``).
        """
        sub = admin_pb2.Subscription(topic=topic, name=name)
        paths: list[str] = []
        for path, value in (
            ("ack_deadline", ack_deadline),
            ("min_backoff", min_backoff),
            ("max_backoff", max_backoff),
        ):
            if value is not None:
                getattr(sub, path).CopyFrom(_duration(value))
                paths.append(path)
        if max_delivery_attempts is not None:
            sub.max_delivery_attempts = max_delivery_attempts
            paths.append("max_delivery_attempts")
        if dead_letter_topic is not None:
            sub.dead_letter_topic = dead_letter_topic
            paths.append("dead_letter_topic")
        if ordering is not None:
            sub.ordering = ordering
            paths.append("ordering")
        request = admin_pb2.UpdateSubscriptionRequest(
            subscription=sub, update_mask=field_mask_pb2.FieldMask(paths=paths)
        )
        res = await self._call("UpdateSubscription", request, timeout)
        return _subscription(res.subscription)

    async def delete_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> None:
        """Deletes a subscription and its state; its connected streams end with ``NOT_FOUND``."""
        request = admin_pb2.DeleteSubscriptionRequest(topic=topic, name=name)
        await self._call("DeleteSubscription", request, timeout)

    async def pause_subscription(
        self, topic: str, name: str, *, timeout: float | None = None
    ) -> Subscription:
        """Stops deliveries on a subscription (messages keep arriving and wait)."""
        request = admin_pb2.PauseSubscriptionRequest(topic=topic, name=name)
        res = await self._call("PauseSubscription", request, timeout)
        return _subscription(res.subscription)

    async def resume_subscription(
        self, topic: str, name: str, *, timeout: float | None = None
    ) -> Subscription:
        """Restarts deliveries on a paused subscription."""
        request = admin_pb2.ResumeSubscriptionRequest(topic=topic, name=name)
        res = await self._call("ResumeSubscription", request, timeout)
        return _subscription(res.subscription)

    async def purge_subscription(self, topic: str, name: str, *, timeout: float | None = None) -> int:
        """Acks every message published so far; returns the new floor (all seqs ≤ it are acked)."""
        request = admin_pb2.PurgeSubscriptionRequest(topic=topic, name=name)
        res = await self._call("PurgeSubscription", request, timeout)
        return int(res.floor)

    async def seek_subscription(
        self, topic: str, name: str, target: int | datetime, *, timeout: float | None = None
    ) -> int:
        """Moves a subscription so that its next first delivery is ``target``.

        Seeking back makes acked messages deliverable again; seeking forward acks what it
        skips.

        Args:
            topic: The topic.
            name: The subscription.
            target: A seq (≥ 1; past the last one means "after the last message"), or a
                time: the first message published at or after it.
            timeout: Deadline of the call in seconds.

        Returns:
            The new floor: every seq up to it counts as acked; the next is ``floor + 1``.
        """
        request = admin_pb2.SeekSubscriptionRequest(topic=topic, name=name)
        if isinstance(target, datetime):
            request.time.CopyFrom(_timestamp(target))
        elif isinstance(target, int) and not isinstance(target, bool):
            request.seq = target
        else:
            raise TypeError(f"seek target must be a seq or a datetime, not {type(target).__name__}")
        res = await self._call("SeekSubscription", request, timeout)
        return int(res.floor)

    # ---- Stats ----------------------------------------------------------------------------

    async def get_stats(self, topic: str, *, timeout: float | None = None) -> Stats:
        """Returns the figures of a topic and of each of its subscriptions.

        Raises:
            StatusError: ``NOT_FOUND`` when the topic does not exist.
        """
        res = await self._call("GetStats", admin_pb2.GetStatsRequest(topic=topic), timeout)
        t = res.topic
        return Stats(
            topic=TopicStats(
                name=t.name,
                last_seq=t.last_seq,
                first_seq=t.first_seq,
                publish_rate=t.publish_rate,
                scheduled=t.scheduled,
                dedup_ids=t.dedup_ids,
                dropped=t.dropped,
                retention_deleted=t.retention_deleted,
            ),
            subscriptions=tuple(_subscription_stats(s) for s in res.subscriptions),
        )

    # ---- Message browser -------------------------------------------------------------------

    async def list_messages(
        self,
        topic: str,
        *,
        from_seq: int = 0,
        to_seq: int = 0,
        since: datetime | None = None,
        until: datetime | None = None,
        ordering_key: str = "",
        message_id: str = "",
        trace_id: str = "",
        attributes: Mapping[str, str] | None = None,
        page_size: int = 0,
        scan_limit: int = 0,
        deliveries: bool = False,
        timeout: float | None = None,
    ) -> _browse.MessagePage:
        """Searches a topic's stored messages without consuming them.

        Every filter given must match. One call examines at most ``scan_limit`` messages
        (1–100000; 0 means 10000) and returns at most ``page_size`` (1–1000; 0 means 100): go on
        with ``from_seq=page.next_seq``. ``deliveries=True`` adds each message's state on each
        subscription.

        Raises:
            StatusError: ``INVALID_ARGUMENT`` for bounds over their maximum or a bad trace id,
                ``NOT_FOUND`` for a missing topic, ``FAILED_PRECONDITION`` for an ephemeral one.
        """
        request = _browse.list_request(
            topic,
            from_seq=from_seq,
            to_seq=to_seq,
            since=since,
            until=until,
            ordering_key=ordering_key,
            message_id=message_id,
            trace_id=trace_id,
            attributes=attributes,
            page_size=page_size,
            scan_limit=scan_limit,
            deliveries=deliveries,
        )
        return _browse.message_page(await self._call("ListMessages", request, timeout))

    async def get_message(
        self, topic: str, seq: int, *, timeout: float | None = None
    ) -> _browse.StoredMessage:
        """Returns the stored message at ``seq`` with its state on each subscription.

        Raises:
            StatusError: ``NOT_FOUND`` when the seq was never published or is gone.
        """
        res = await self._call("GetMessage", admin_pb2.GetMessageRequest(topic=topic, seq=seq), timeout)
        return _browse.stored_message(res.message)

    # ---- Typed topics ------------------------------------------------------------------------

    async def set_topic_schema(
        self, topic: str, message_class: type[Message] | None, *, timeout: float | None = None
    ) -> _typed.TopicSchema:
        """Makes ``topic`` typed: its payloads must parse as ``message_class``.

        The descriptor set is built from your generated class; ``None`` makes the topic untyped
        again.

        Raises:
            StatusError: ``NOT_FOUND`` for a missing topic, ``INVALID_ARGUMENT`` for an unusable
                descriptor set.
        """
        schema = admin_pb2.PayloadSchema()
        if message_class is not None:
            schema.message_type = message_class.DESCRIPTOR.full_name
            schema.descriptor_set = _typed.descriptor_set_of(message_class)
        request = admin_pb2.SetTopicSchemaRequest(topic=topic, schema=schema)
        return _schema((await self._call("SetTopicSchema", request, timeout)).schema)

    async def get_topic_schema(self, topic: str, *, timeout: float | None = None) -> _typed.TopicSchema:
        """Returns a topic's message type (``message_type`` empty when untyped)."""
        res = await self._call("GetTopicSchema", admin_pb2.GetTopicSchemaRequest(topic=topic), timeout)
        return _schema(res.schema)

    async def _call(self, operation: str, request: Any, timeout: float | None) -> Any:
        """Calls the RPC named ``operation``; broker errors become :class:`StatusError`."""
        method = getattr(self._stub, operation)
        try:
            return await method(request, timeout=timeout)
        except grpc.RpcError as err:
            raise StatusError.from_rpc_error(err, operation) from err


def _duration(value: Duration) -> duration_pb2.Duration:
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise TypeError(f"a duration must be seconds or a timedelta, not {type(value).__name__}")
    d = duration_pb2.Duration()
    d.FromTimedelta(value if isinstance(value, timedelta) else timedelta(seconds=value))
    return d


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when if when.tzinfo is not None else when.replace(tzinfo=UTC))
    return ts


def _time(msg: Any, field: str) -> datetime | None:
    if not msg.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, field)
    return ts.ToDatetime(tzinfo=UTC)


def _schema(s: admin_pb2.PayloadSchema) -> _typed.TopicSchema:
    return _typed.TopicSchema(
        message_type=s.message_type, descriptor_set=s.descriptor_set, update_time=_time(s, "update_time")
    )


def _topic(t: admin_pb2.Topic) -> Topic:
    return Topic(
        name=t.name,
        shards=t.shards,
        retention=t.retention.ToTimedelta(),
        retention_bytes=t.retention_bytes,
        dedup_window=t.dedup_window.ToTimedelta(),
        ephemeral=t.ephemeral,
        create_time=_time(t, "create_time"),
    )


def _subscription(s: admin_pb2.Subscription) -> Subscription:
    return Subscription(
        topic=s.topic,
        name=s.name,
        ack_deadline=s.ack_deadline.ToTimedelta(),
        min_backoff=s.min_backoff.ToTimedelta(),
        max_backoff=s.max_backoff.ToTimedelta(),
        max_delivery_attempts=s.max_delivery_attempts,
        dead_letter_topic=s.dead_letter_topic,
        ordering=s.ordering,
        paused=s.paused,
        create_time=_time(s, "create_time"),
    )


def _subscription_stats(s: admin_pb2.SubscriptionStats) -> SubscriptionStats:
    return SubscriptionStats(
        name=s.name,
        floor=s.floor,
        backlog=s.backlog,
        in_flight=s.in_flight,
        waiting_redelivery=s.waiting_redelivery,
        redelivered=s.redelivered,
        dead_lettered=s.dead_lettered,
        skipped=s.skipped,
        oldest_unacked_age=s.oldest_unacked_age.ToTimedelta(),
        delivery_rate=s.delivery_rate,
        ack_rate=s.ack_rate,
        consumers=tuple(
            ConsumerStats(
                name=c.name,
                in_flight=c.in_flight,
                max_messages=c.window.max_messages,
                max_bytes=c.window.max_bytes,
                connect_time=_time(c, "connect_time"),
            )
            for c in s.consumers
        ),
        state_entries=s.state_entries,
        paused=s.paused,
    )
