"""The message browser tells a dead-lettered message (and where it went) from an acked one, also
after a broker restart: which messages were dead-lettered is stored with the subscription."""

from __future__ import annotations

import asyncio

import nervebus
from nervebus import DeliveryState, ReceivedMessage, StartPoint, StoredMessage, SubscriberSettings

from .conftest import Broker


def states(m: StoredMessage) -> list[tuple[str, DeliveryState, str]]:
    """Each subscription's (name, state, dead-letter topic), in the broker's order (by name)."""
    return [(d.subscription, d.state, d.dead_letter_topic) for d in m.deliveries]


async def consume(client: nervebus.Client, topic: str, sub: str) -> list[tuple[int, int]]:
    """Nacks seq 1 and acks seq 2 on sub until both are settled; returns the (seq, attempt)s seen."""
    seen: list[tuple[int, int]] = []

    async def handle(message: ReceivedMessage) -> None:
        seen.append((message.seq, message.attempt))
        if message.seq == 1:
            message.nack(0)
        else:
            message.ack()

    async def settled() -> bool:
        for seq in (1, 2):
            m = await client.admin.get_message(topic, seq)
            if not any(
                d.subscription == sub and d.state in (DeliveryState.ACKED, DeliveryState.DEAD_LETTERED)
                for d in m.deliveries
            ):
                return False
        return True

    async with client.subscriber(topic, sub, handle, SubscriberSettings(start=StartPoint.EARLIEST)):
        for _ in range(500):
            if await settled():
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"seqs 1 and 2 never settled on {sub}")
    return sorted(seen)


async def test_dead_lettered_message_shows_its_state_and_topic_apart_from_an_acked_one(
    private_broker: Broker, topic: str
) -> None:
    dlq = f"{topic}.dlq"
    async with nervebus.Client(private_broker.address) as client:
        admin = client.admin
        await admin.create_topic(topic)
        # "w" delivers a message twice, then moves it to dlq; "drop" has no dead-letter topic,
        # so a message out of its one attempt is dropped.
        await admin.create_subscription(
            topic,
            "w",
            max_delivery_attempts=2,
            dead_letter_topic=dlq,
            min_backoff=0,
            max_backoff=0,
            start=StartPoint.EARLIEST,
        )
        await admin.create_subscription(topic, "drop", max_delivery_attempts=1, start=StartPoint.EARLIEST)
        async with client.publisher(topic) as publisher:
            assert (await publisher.publish(b"poison")).seq == 1
            assert (await publisher.publish(b"fine")).seq == 2

        assert await consume(client, topic, "w") == [(1, 1), (1, 2), (2, 1)]
        assert await consume(client, topic, "drop") == [(1, 1), (2, 1)]

    async def check(when: str) -> None:
        async with nervebus.Client(private_broker.address) as client:
            dead = await client.admin.get_message(topic, 1)
            assert states(dead) == [
                ("drop", DeliveryState.DEAD_LETTERED, ""),
                ("w", DeliveryState.DEAD_LETTERED, dlq),
            ], when
            acked = await client.admin.get_message(topic, 2)
            assert states(acked) == [("drop", DeliveryState.ACKED, ""), ("w", DeliveryState.ACKED, "")], when
            page = await client.admin.list_messages(topic, deliveries=True)
            listed = [(m.seq, states(m)) for m in page.messages]
            assert listed == [(1, states(dead)), (2, states(acked))], when
            moved = await client.admin.list_messages(dlq)
            assert [m.data for m in moved.messages] == [b"poison"], f"{when}: the dead-letter topic holds it"

    await check("live")
    await asyncio.to_thread(private_broker.stop)
    await asyncio.to_thread(private_broker.start)
    await check("after a restart")
