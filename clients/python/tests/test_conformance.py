"""The client conformance suite: test/client-conformance/scenarios.json, run by the Python client.

The Go and TypeScript clients run the same scenarios with the same expectations
(docs/clients.md); a scenario in the file without an implementation here fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

import nervebus
from nervebus import (
    MessageSettledError,
    OrderingKeyPausedError,
    PublisherSettings,
    ReceivedMessage,
    StartPoint,
    StatusError,
    SubscriberSettings,
)
from nervebus.gen.nervebus.v1 import publisher_pb2

from .conftest import REPO, Broker

FILE = json.loads((REPO / "test" / "client-conformance" / "scenarios.json").read_text())
SCENARIOS: list[dict[str, Any]] = FILE["scenarios"]
DEFAULTS: dict[str, dict[str, Any]] = FILE["defaults"]

Scenario = Callable[[Broker, str, dict[str, Any]], Awaitable[None]]


def outcome(result: object) -> str:
    """A publish's or an ack's outcome, named as the scenarios name it."""
    if isinstance(result, asyncio.CancelledError):
        return "CANCELLED"
    if isinstance(result, MessageSettledError):
        return "ALREADY_SETTLED"
    if isinstance(result, StatusError):
        return result.code.name
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    return "OK"


async def settle_all(tasks: list[asyncio.Future[Any]]) -> list[Any]:
    """The tasks' results or exceptions (cancellations included)."""
    return list(await asyncio.gather(*tasks, return_exceptions=True))


async def last_seq(client: nervebus.Client, topic: str) -> int:
    return (await client.admin.get_stats(topic)).topic.last_seq


async def publish_all(
    publisher: nervebus.Publisher, messages: list[dict[str, Any]]
) -> list[nervebus.PublishResult | BaseException]:
    """Publishes every message of a scenario (without waiting in between), flushes, settles them."""
    tasks = [
        asyncio.ensure_future(
            publisher.publish(
                m["data"], attributes=m.get("attributes"), ordering_key=m.get("ordering_key", "")
            )
        )
        for m in messages
    ]
    await asyncio.sleep(0)  # each publish() takes its message into the pack
    await publisher.flush()
    return await settle_all(tasks)


async def defaults(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    p = PublisherSettings()
    want = DEFAULTS["publisher"]
    got = {
        "pack_max_messages": p.max_messages,
        "pack_max_bytes": p.max_bytes,
        "linger_ms": p.linger * 1000,
        "packs_in_flight": p.max_inflight_packs,
        "outstanding_max_messages": p.max_outstanding_messages,
        "outstanding_max_bytes": p.max_outstanding_bytes,
        "attempt_timeout_ms": p.call_timeout * 1000,
        "retry_total_timeout_ms": (p.retry.timeout or 0) * 1000,
        "retry_initial_backoff_ms": p.retry.backoff.initial * 1000,
        "retry_max_backoff_ms": p.retry.backoff.maximum * 1000,
        "retry_multiplier": p.retry.backoff.multiplier,
    }
    assert got == {k: want[k] for k in got}
    assert {grpc.StatusCode[c] for c in want["retried_codes"]} <= set(p.retry.retryable_codes)

    s = SubscriberSettings()
    want = DEFAULTS["subscriber"]
    async with nervebus.Client(broker.address) as client:
        subscriber = client.subscriber(topic, "s", lambda m: asyncio.sleep(0))
        handlers = subscriber._concurrency
    got = {
        "window_messages": s.max_messages,
        "window_bytes": s.max_bytes,
        "handlers_at_once": handlers,
        "max_extension_ms": s.max_extension * 1000,
        "shutdown_timeout_ms": s.stop_timeout * 1000,
        "confirm_acks": s.confirm_acks,
        "reconnect_initial_backoff_ms": s.reconnect_backoff.initial * 1000,
        "reconnect_max_backoff_ms": s.reconnect_backoff.maximum * 1000,
        "handler_error_nack_delay_ms": (s.nack_delay or 0) * 1000,
    }
    assert got == {k: want[k] for k in got}
    assert {grpc.StatusCode[c] for c in want["reconnect_codes"]} <= set(s.retryable_codes)


class PackRecorder(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Records the size of every SendPack call."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        if isinstance(request, publisher_pb2.SendPackRequest):
            self.sizes.append(len(request.messages))
        return await continuation(client_call_details, request)


async def pack_count_threshold(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    recorder = PackRecorder()
    channel = grpc.aio.insecure_channel(broker.address, interceptors=[recorder])
    async with nervebus.Client(broker.address, channel=channel) as client:
        publisher = client.publisher(topic, PublisherSettings(linger=sc["linger_ms"] / 1000))
        tasks = [asyncio.ensure_future(publisher.publish(f"m{i}")) for i in range(sc["publish"])]
        await asyncio.sleep(0)  # each publish() takes its message into a pack
        await publisher.close()
        results = await settle_all(tasks)
        assert [outcome(r) for r in results] == ["OK"] * sc["publish"]
        assert sorted(recorder.sizes) == sorted(sc["expect"]["packs"])
        assert await last_seq(client, topic) == sc["expect"]["last_seq"]
    await channel.close()


async def bad_message_fails_alone(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    expect = sc["expect"]
    async with nervebus.Client(broker.address) as client:
        publisher = client.publisher(topic, PublisherSettings(linger=sc["linger_ms"] / 1000))
        results = await publish_all(publisher, sc["messages"])
        appended = []
        for i, (m, r) in enumerate(zip(sc["messages"], results, strict=True)):
            if str(i) in expect["failed"]:
                assert outcome(r) == expect["failed"][str(i)]
                assert expect["error_mentions"] in str(r)
                assert expect["error_does_not_mention"] not in str(r)
            else:
                assert isinstance(r, nervebus.PublishResult), r
                appended.append((r.seq, m["data"]))
        assert [d for _, d in sorted(appended)] == expect["appended_in_order"]
        seqs = [s for s, _ in appended]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert await last_seq(client, topic) == len(seqs)


async def pack_failure_fails_all(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    async with nervebus.Client(broker.address) as client:
        publisher = client.publisher(sc["topic"], PublisherSettings(linger=sc["linger_ms"] / 1000))
        results = await publish_all(publisher, sc["messages"])
        assert [outcome(r) for r in results] == [sc["expect"]["every_message_fails_with"]] * len(results)


async def ordering_key_pause_resume(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    expect = sc["expect"]
    async with nervebus.Client(broker.address) as client:
        publisher = client.publisher(topic, PublisherSettings(linger=sc["linger_ms"] / 1000))
        results = await publish_all(publisher, sc["messages"])
        by_data = {m["data"]: r for m, r in zip(sc["messages"], results, strict=True)}
        assert {d: outcome(r) for d, r in by_data.items()} == expect["results"]
        assert isinstance(by_data["k3"], OrderingKeyPausedError)
        then = sc["then_publish"]
        with pytest.raises(OrderingKeyPausedError) as paused:
            await publisher.publish(then["data"], ordering_key=then["ordering_key"])
        assert paused.value.code.name == expect["then"]
        resumed = sc["after_resume_publish"]
        publisher.resume_publish(resumed["ordering_key"])
        [after] = await publish_all(publisher, [resumed])
        assert outcome(after) == expect["after_resume"]
        by_data[resumed["data"]] = after
        for datas in expect["appended_per_key"].values():
            seqs = [getattr(by_data[d], "seq", 0) for d in datas]
            assert 0 < seqs[0] and seqs == sorted(seqs), (datas, seqs)
        assert await last_seq(client, topic) == expect["last_seq"]


async def flow_control_blocks(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    expect = sc["expect"]
    settings = PublisherSettings(
        linger=sc["linger_ms"] / 1000, max_outstanding_messages=sc["outstanding_max_messages"]
    )
    async with nervebus.Client(broker.address) as client:
        publisher = client.publisher(topic, settings)
        a, b, c = (asyncio.ensure_future(publisher.publish(d)) for d in "abc")
        await asyncio.sleep(0)  # a and b are in the pack; c waits for room
        flush = asyncio.ensure_future(publisher.flush())
        await asyncio.sleep(0)  # the flush sends the pack (c would be in it, were it not waiting)
        c.cancel()
        await flush
        d = asyncio.ensure_future(publisher.publish("d"))
        await asyncio.sleep(0)
        await publisher.flush()
        results = dict(zip("abcd", await settle_all([a, b, c, d]), strict=True))
        assert {k: outcome(r) for k, r in results.items()} == {k: expect[k] for k in "abcd"}
        seqs = [results[k].seq for k in "abd"]
        assert seqs == sorted(seqs) and seqs[-1] == expect["last_seq"]
        assert await last_seq(client, topic) == expect["last_seq"]


async def create_subscribed(
    client: nervebus.Client, topic: str, subscriptions: list[str], messages: list[str], **config: Any
) -> None:
    """Creates the topic and its subscriptions (from the earliest message), then publishes."""
    await client.admin.create_topic(topic)
    for name in subscriptions:
        await client.admin.create_subscription(topic, name, start=StartPoint.EARLIEST, **config)
    async with client.publisher(topic) as publisher:
        for m in messages:
            await publisher.publish(m)


async def ack_confirmation(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    expect = sc["expect"]
    async with nervebus.Client(broker.address) as client:
        await create_subscribed(client, topic, ["s"], [m["data"] for m in sc["messages"]])
        outcomes: asyncio.Future[tuple[str, str]] = asyncio.get_running_loop().create_future()

        async def handle(message: ReceivedMessage) -> None:
            first: object = None
            second: object = None
            try:
                await message.ack_with_result()
            except Exception as err:
                first = err
            try:
                await message.ack_with_result()
            except Exception as err:
                second = err
            outcomes.set_result((outcome(first), outcome(second)))

        settings = SubscriberSettings(confirm_acks=sc["confirm_acks"])
        async with client.subscriber(topic, "s", handle, settings):
            assert await asyncio.wait_for(outcomes, 10) == (expect["first"], expect["second"])

        async def settled() -> bool:
            s = (await client.admin.get_stats(topic)).subscription("s")
            return (s.floor, s.backlog) == (expect["floor"], expect["backlog"])

        await eventually(settled)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Polls an async check until it holds; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)


async def manual_lease_extension(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    expect = sc["expect"]
    async with nervebus.Client(broker.address) as client:
        await create_subscribed(
            client,
            topic,
            ["extended", "control"],
            ["x"],
            ack_deadline=sc["ack_deadline_ms"] / 1000,
            min_backoff=sc["min_backoff_ms"] / 1000,
            max_backoff=sc["max_backoff_ms"] / 1000,
        )
        held = asyncio.Event()
        release = asyncio.Event()

        async def extended(message: ReceivedMessage) -> None:
            if message.attempt == 1:
                assert message.extend_deadline(sc["extend_to_ms"] / 1000)
            held.set()
            await release.wait()  # returning acks it

        async def control(message: ReceivedMessage) -> None:
            await release.wait()

        no_auto_extension = SubscriberSettings(max_extension=0)
        async with client.subscriber(topic, "extended", extended, no_auto_extension):
            await asyncio.wait_for(held.wait(), 10)
            async with client.subscriber(topic, "control", control, no_auto_extension):

                async def control_redelivered() -> bool:
                    stats = await client.admin.get_stats(topic)
                    return stats.subscription("control").redelivered >= expect["control_redelivered_at_least"]

                await eventually(control_redelivered)
                ext = (await client.admin.get_stats(topic)).subscription("extended")
                assert (ext.redelivered, ext.in_flight) == (
                    expect["extended_redelivered"],
                    expect["extended_in_flight"],
                )
                release.set()

                async def acked() -> bool:
                    stats = await client.admin.get_stats(topic)
                    return stats.subscription("extended").floor == expect["extended_floor_after_ack"]

                await eventually(acked)


IMPLEMENTATIONS: dict[str, Scenario] = {
    "defaults": defaults,
    "pack-count-threshold": pack_count_threshold,
    "bad-message-fails-alone": bad_message_fails_alone,
    "pack-failure-fails-all": pack_failure_fails_all,
    "ordering-key-pause-resume": ordering_key_pause_resume,
    "flow-control-blocks": flow_control_blocks,
    "ack-confirmation": ack_confirmation,
    "manual-lease-extension": manual_lease_extension,
}


def test_every_scenario_is_implemented() -> None:
    assert sorted(sc["id"] for sc in SCENARIOS) == sorted(IMPLEMENTATIONS)


@pytest.mark.parametrize("sc", SCENARIOS, ids=[sc["id"] for sc in SCENARIOS])
async def test_conformance(broker: Broker, topic: str, sc: dict[str, Any]) -> None:
    implementation = IMPLEMENTATIONS.get(sc["id"])
    if implementation is None:
        pytest.fail(f"scenario {sc['id']!r} has no Python implementation")
    await implementation(broker, topic, sc)
