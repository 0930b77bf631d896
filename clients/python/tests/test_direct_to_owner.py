"""direct_to_owner against three brokers sharing one throwaway MariaDB database (``--cluster``)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import nervebus

from .conftest import REPO, Broker, wait_until

# A throwaway MariaDB (or NERVEBUS_TEST_MYSQL_URL's server).
SCRIPT = REPO / "test" / "support" / "start-mariadb.sh"
CLUSTER_FLAGS = ("--cluster", "--lease-ttl-ms", "2000", "--lease-renew-ms", "500")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Broker]]:
    """Three brokers on one database of a MariaDB started for the test."""
    directory = tmp_path / "mariadb"
    server = subprocess.run(["bash", str(SCRIPT), str(directory)], check=True, capture_output=True, text=True)
    url = server.stdout.strip() + "py_client_direct"  # the broker creates the database
    brokers: list[Broker] = []
    try:
        for i in range(3):
            workdir = tmp_path / f"b{i}"
            workdir.mkdir()
            broker = Broker(workdir, "--store", url, *CLUSTER_FLAGS)
            brokers.append(broker)
            broker.start()
        yield brokers
    finally:
        for broker in brokers:
            broker.close()
        subprocess.run(["bash", str(SCRIPT), "--stop", str(directory)], check=False)


@pytest.mark.timeout(120)
async def test_direct_to_owner_follows_the_topic_when_its_owner_is_killed(cluster: list[Broker]) -> None:
    home, *others = cluster
    async with (
        nervebus.Client(home.address) as plain,
        nervebus.Client(home.address, direct_to_owner=True) as client,
    ):
        # A topic another broker would own, so the client has somewhere to go. The brokers
        # have just started: until the first one has seen the others' heartbeats every name
        # hashes to itself, so keep trying for a while rather than a fixed number of names.
        topic = ""
        deadline = time.monotonic() + 30
        i = 0
        while not topic and time.monotonic() < deadline:
            i += 1
            name = f"direct-py-{uuid.uuid4().hex[:8]}-{i}"
            if await plain.admin.locate_topic(name) != "":
                topic = name
            elif i % 16 == 0:
                await asyncio.sleep(0.25)
        assert topic, f"no topic name fell to another broker in 30 s ({i} tries)"

        publisher = client.publisher(topic)
        confirmed: dict[int, bytes] = {}

        async def publish(data: bytes) -> None:
            result = await publisher.publish(data)
            confirmed[result.seq] = data

        await publish(b"first")
        owner = ""

        async def learnt() -> bool:
            nonlocal owner
            owner = await plain.admin.locate_topic(topic)
            return owner != "" and client.owner_of(topic) == owner

        await wait_async(learnt, 15)
        owner_broker = next((b for b in others if b.address == owner), None)
        assert owner_broker is not None, f"owner {owner} is none of the cluster's brokers"

        # A consumer whose acks the broker confirms: a message whose ack was confirmed must
        # not come again, even after the owner dies.
        received: dict[int, bytes] = {}
        acked: set[int] = set()
        again: list[int] = []

        async def handle(m: nervebus.ReceivedMessage) -> None:
            if m.seq in acked:
                again.append(m.seq)
            received[m.seq] = m.data
            await m.ack_with_result()
            acked.add(m.seq)

        settings = nervebus.SubscriberSettings(start=nervebus.StartPoint.EARLIEST, confirm_acks=True)
        subscriber = client.subscriber(topic, "audit", handle, settings)
        await subscriber.start(timeout=20)
        for i in range(20):
            await publish(f"before-{i}".encode())
        await wait_until(lambda: set(confirmed) <= acked, 20)

        # The owner dies while the publisher keeps going: the topic moves to another broker.
        owner_broker.kill()
        for i in range(20):
            await publish(f"after-{i}".encode())

        async def followed() -> bool:
            at = await plain.admin.locate_topic(topic)
            return at != owner and client.owner_of(topic) == at

        await wait_async(followed, 20)
        await wait_until(lambda: set(confirmed) <= acked, 20)
        await subscriber.stop()
        assert len(confirmed) == 41
        for seq, data in confirmed.items():
            assert received.get(seq) == data, f"seq {seq}"
        assert again == [], "messages delivered again after their ack was confirmed"


async def wait_async(predicate: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Polls the async ``predicate`` until it holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
