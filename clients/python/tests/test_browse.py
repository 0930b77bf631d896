"""The message browser against a real broker: search stored messages, read one with its deliveries."""

from __future__ import annotations

import grpc
import pytest

import nervebus
from nervebus import DeliveryState, StartPoint, sync

from .conftest import Broker


async def test_list_and_get_messages_consume_nothing(client: nervebus.Client, topic: str) -> None:
    admin = client.admin
    await admin.create_topic(topic)
    await admin.create_subscription(topic, "audit", start=StartPoint.EARLIEST)
    async with client.publisher(topic) as publisher:
        results = [
            await publisher.publish(
                f"m{i + 1}", attributes={"even": str(i % 2 == 1)}, ordering_key=f"k{i % 3}"
            )
            for i in range(10)
        ]

    page = await admin.list_messages(topic, attributes={"even": "True"}, page_size=3)
    assert [m.seq for m in page.messages] == [2, 4, 6]
    assert page.next_seq == 7
    rest = await admin.list_messages(topic, attributes={"even": "True"}, from_seq=page.next_seq)
    assert [m.seq for m in rest.messages] == [8, 10] and rest.next_seq == 0

    by_trace = await admin.list_messages(topic, trace_id=results[4].trace_id, deliveries=True)
    (m,) = by_trace.messages
    assert (m.seq, m.data, m.ordering_key, m.trace_id) == (5, b"m5", "k1", results[4].trace_id)
    assert m.publish_time is not None
    assert [(d.subscription, d.state) for d in m.deliveries] == [("audit", DeliveryState.NOT_DELIVERED)]

    one = await admin.get_message(topic, 10)
    assert one.data == b"m10" and one.deliveries[0].state is DeliveryState.NOT_DELIVERED

    with pytest.raises(nervebus.StatusError) as missing:
        await admin.get_message(topic, 11)
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(nervebus.StatusError) as unbounded:
        await admin.list_messages(topic, scan_limit=1_000_000)
    assert unbounded.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "scan_limit" in str(unbounded.value)

    stats = await admin.get_stats(topic)
    assert stats.subscription("audit").backlog == 10, "browsing consumed nothing"


def test_sync_browse(broker: Broker, topic: str) -> None:
    with sync.Client(broker.address) as client:
        with client.publisher(topic) as publisher:
            publisher.publish("hello", ordering_key="k")
        page = client.admin.list_messages(topic, ordering_key="k")
        assert [m.data for m in page.messages] == [b"hello"]
        assert client.admin.get_message(topic, 1).ordering_key == "k"
