"""The message browser's types (``AdminService.ListMessages`` / ``GetMessage``).

Reach the calls through :meth:`nervebus.Admin.list_messages` and
:meth:`nervebus.Admin.get_message`; browsing reads stored messages and consumes nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from .gen.nervebus.v1 import admin_pb2

__all__ = ["DeliveryState", "MessageDelivery", "MessagePage", "StoredMessage"]


class DeliveryState(enum.IntEnum):
    """Where a message stands on one subscription (``MessageDelivery.State``)."""

    #: Also any state this client does not know (one a newer broker added).
    UNSPECIFIED = 0
    #: Not delivered yet (or delivered once before a broker restart and not acked).
    NOT_DELIVERED = 1
    #: Held by a consumer until ``lease_deadline``.
    LEASED = 2
    #: Nacked or expired; delivered again at ``not_before``.
    WAITING_REDELIVERY = 3
    #: Acked (also purged, sought past or skipped by retention).
    ACKED = 4
    #: Waiting behind an unacked earlier message with the same ordering key.
    HELD = 5
    #: Out of attempts, being moved to the dead-letter topic.
    DEAD_LETTERING = 6
    #: Moved to ``dead_letter_topic`` (dropped when that is empty).
    DEAD_LETTERED = 7


@dataclass(frozen=True)
class MessageDelivery:
    """What one subscription has done with a message (attempts of acked messages read 0)."""

    subscription: str
    state: DeliveryState
    attempts: int
    consumer: str
    lease_deadline: datetime | None
    not_before: datetime | None
    #: ``DEAD_LETTERED``: the topic it was moved to ("": dropped).
    dead_letter_topic: str = ""


@dataclass(frozen=True)
class StoredMessage:
    """A message as the topic's log holds it, with its deliveries when they were asked for."""

    seq: int
    data: bytes
    attributes: Mapping[str, str]
    ordering_key: str
    message_id: str
    publish_time: datetime | None
    trace_id: str
    deliveries: tuple[MessageDelivery, ...]


@dataclass(frozen=True)
class MessagePage:
    """One page of a search: ``next_seq`` is where to go on (``from_seq``), 0 when done."""

    messages: tuple[StoredMessage, ...]
    next_seq: int
    scanned_through: int


def _ts(when: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when if when.tzinfo is not None else when.replace(tzinfo=UTC))
    return ts


def _opt_time(msg: Any, field: str) -> datetime | None:
    if not msg.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, field)
    return ts.ToDatetime(tzinfo=UTC)


def list_request(
    topic: str,
    *,
    from_seq: int,
    to_seq: int,
    since: datetime | None,
    until: datetime | None,
    ordering_key: str,
    message_id: str,
    trace_id: str,
    attributes: Mapping[str, str] | None,
    page_size: int,
    scan_limit: int,
    deliveries: bool,
) -> admin_pb2.ListMessagesRequest:
    """The ListMessagesRequest for :meth:`nervebus.Admin.list_messages`'s arguments."""
    request = admin_pb2.ListMessagesRequest(
        topic=topic,
        from_seq=from_seq,
        to_seq=to_seq,
        ordering_key=ordering_key,
        message_id=message_id,
        trace_id=trace_id,
        attributes=dict(attributes or {}),
        page_size=page_size,
        scan_limit=scan_limit,
        include_deliveries=deliveries,
    )
    if since is not None:
        request.from_time.CopyFrom(_ts(since))
    if until is not None:
        request.to_time.CopyFrom(_ts(until))
    return request


def _state(value: int) -> DeliveryState:
    # A newer broker may send a state added after this client (as STATE_DEAD_LETTERED was):
    # browsing must still work, so it reads UNSPECIFIED (as in the TS client), not ValueError.
    try:
        return DeliveryState(value)
    except ValueError:
        return DeliveryState.UNSPECIFIED


def stored_message(m: admin_pb2.StoredMessage) -> StoredMessage:
    """A StoredMessage from its wire form."""
    d = m.message
    return StoredMessage(
        seq=d.seq,
        data=d.data,
        attributes=dict(d.attributes),
        ordering_key=d.ordering_key,
        message_id=d.message_id,
        publish_time=_opt_time(d, "publish_time"),
        trace_id=d.trace_id,
        deliveries=tuple(
            MessageDelivery(
                subscription=x.subscription,
                state=_state(x.state),
                attempts=x.attempts,
                consumer=x.consumer,
                lease_deadline=_opt_time(x, "lease_deadline"),
                not_before=_opt_time(x, "not_before"),
                dead_letter_topic=x.dead_letter_topic,
            )
            for x in m.deliveries
        ),
    )


def message_page(res: admin_pb2.ListMessagesResponse) -> MessagePage:
    """A MessagePage from its wire form."""
    return MessagePage(
        messages=tuple(stored_message(m) for m in res.messages),
        next_seq=res.next_seq,
        scanned_through=res.scanned_through,
    )
