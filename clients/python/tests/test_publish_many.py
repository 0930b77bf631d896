"""publish_many() and submit() against a real broker: results, per-message errors, dedup ids."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import nervebus
from nervebus import (
    Message,
    Outcome,
    PublisherSettings,
    ReceivedMessage,
    StartPoint,
    SubscriberSettings,
    sync,
)

from .conftest import Broker, wait_until

# Above the broker's default max message size (1 MiB), so the broker refuses it; above the
# publisher's max_bytes too, so it travels in a pack of its own and fails only itself.
OVERSIZED = b"x" * (2 << 20)


async def receive_all(client: nervebus.Client, topic: str, count: int) -> list[ReceivedMessage]:
    received: list[ReceivedMessage] = []

    async def handle(message: ReceivedMessage) -> None:
        received.append(message)

    settings = SubscriberSettings(start=StartPoint.EARLIEST)
    async with client.subscriber(topic, "check", handle, settings):
        await wait_until(lambda: len(received) >= count)
    return sorted(received, key=lambda m: m.seq)


async def test_publish_many_returns_each_result_in_order(client: nervebus.Client, topic: str) -> None:
    messages: list[nervebus.Publishable] = [
        b"plain",
        "text é",
        Message(b"with-attrs", attributes={"k": "v"}, ordering_key="key", message_id="mine"),
        bytearray(b"bytearray"),
        memoryview(b"memoryview"),
    ]
    async with client.publisher(topic) as publisher:
        results = await publisher.publish_many(messages)
    assert all(r.outcome is Outcome.APPENDED for r in results)
    seqs = [r.seq for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + 5)), "one call's messages get consecutive seqs"
    assert results[2].message_id == "mine"
    assert all(len(r.message_id) == 32 for i, r in enumerate(results) if i != 2)
    assert len({r.message_id for r in results}) == 5
    assert all(len(r.trace_id) == 32 for r in results)

    received = await receive_all(client, topic, 5)
    sent = [b"plain", "text é".encode(), b"with-attrs", b"bytearray", b"memoryview"]
    assert [m.data for m in received] == sent
    assert [m.seq for m in received] == seqs
    assert received[2].attributes["k"] == "v" and received[2].ordering_key == "key"
    assert [m.message_id for m in received] == [r.message_id for r in results]
    assert [m.trace_id for m in received] == [r.trace_id for r in results]


async def test_publish_many_spans_packs_and_keeps_order(client: nervebus.Client, topic: str) -> None:
    settings = PublisherSettings(max_messages=10, max_inflight_packs=1)
    async with client.publisher(topic, settings) as publisher:
        results = await publisher.publish_many(f"m{i}".encode() for i in range(35))
        assert publisher.stats.packs == 4
    seqs = [r.seq for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + 35))
    received = await receive_all(client, topic, 35)
    assert [m.data for m in received] == [f"m{i}".encode() for i in range(35)]


async def test_publish_many_reports_errors_per_message(client: nervebus.Client, topic: str) -> None:
    messages: list[object] = [b"before", OVERSIZED, b"after", 12345, Message(b"late", delay=-1)]
    # One pack at a time, so that the packs around the refused one append in order.
    async with client.publisher(topic, PublisherSettings(max_inflight_packs=1)) as publisher:
        results = await publisher.publish_many(messages, return_exceptions=True)  # type: ignore[arg-type]
        assert isinstance(results[0], nervebus.PublishResult)
        assert isinstance(results[1], nervebus.StatusError)
        assert results[1].code is grpc.StatusCode.INVALID_ARGUMENT
        assert isinstance(results[2], nervebus.PublishResult)
        assert isinstance(results[3], TypeError), "an int is not message data"
        assert isinstance(results[4], ValueError), "a negative delay is refused before sending"
        # The refused message failed alone: its neighbours are appended, one after the other.
        assert results[2].seq == results[0].seq + 1

        # Without return_exceptions the first failure (in message order) is raised, after every
        # message is settled: the good ones are still published.
        with pytest.raises(nervebus.StatusError) as info:
            await publisher.publish_many([b"one", OVERSIZED, b"two", 12345])  # type: ignore[list-item]
        assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert publisher.stats.failed_messages == 2
    received = await receive_all(client, topic, 4)
    assert [m.data for m in received] == [b"before", b"after", b"one", b"two"]


async def test_publish_many_shares_packs_yet_a_refused_message_fails_alone_and_pauses_its_key(
    client: nervebus.Client, topic: str
) -> None:
    # The messages share one pack (added in one turn, within the linger): the broker refuses it
    # for "bad", which then fails alone, and its key's later message fails with
    # OrderingKeyPausedError instead of overtaking it.
    messages = [
        Message(b"k1", ordering_key="k"),
        Message(b"bad", ordering_key="k", attributes={"nervebus-reserved": "x"}),
        Message(b"k3", ordering_key="k"),
        b"other",
    ]
    async with client.publisher(topic, PublisherSettings(linger=0.2)) as publisher:
        results = await publisher.publish_many(messages, return_exceptions=True)
        assert isinstance(results[0], nervebus.PublishResult)
        assert isinstance(results[1], nervebus.StatusError)
        assert results[1].code is grpc.StatusCode.INVALID_ARGUMENT and "messages[" not in str(results[1])
        assert isinstance(results[2], nervebus.OrderingKeyPausedError)
        assert isinstance(results[3], nervebus.PublishResult)
        assert publisher.stats.failed_messages == 2
        [paused] = await publisher.publish_many([Message(b"k4", ordering_key="k")], return_exceptions=True)
        assert isinstance(paused, nervebus.OrderingKeyPausedError)
        publisher.resume_publish("k")
        await publisher.publish_many([Message(b"k5", ordering_key="k")])
    received = await receive_all(client, topic, 3)
    assert [m.data for m in received] == [b"k1", b"other", b"k5"]


async def test_publish_many_deduplicates_by_message_id(client: nervebus.Client, topic: str) -> None:
    batch = [Message(f"order-{i}".encode(), message_id=f"order-{i}") for i in range(3)]
    async with client.publisher(topic) as publisher:
        first = await publisher.publish_many(batch)
        again = await publisher.publish_many([*batch, Message(b"new", message_id="order-3")])
    assert [r.outcome for r in first] == [Outcome.APPENDED] * 3
    assert [r.outcome for r in again] == [Outcome.DUPLICATE] * 3 + [Outcome.APPENDED]
    assert [r.seq for r in again[:3]] == [r.seq for r in first], "a duplicate reports the original's seq"
    assert again[3].seq == first[2].seq + 1
    assert [r.message_id for r in again] == ["order-0", "order-1", "order-2", "order-3"]


async def test_publish_many_of_nothing(client: nervebus.Client, topic: str) -> None:
    async with client.publisher(topic) as publisher:
        assert await publisher.publish_many([]) == []
        assert publisher.stats.attempts == 0


async def test_submit_returns_futures_without_a_task_each(client: nervebus.Client, topic: str) -> None:
    async with client.publisher(topic) as publisher:
        tasks_before = len(asyncio.all_tasks())
        futures = [await publisher.submit(f"m{i}".encode(), attributes={"i": str(i)}) for i in range(500)]
        # A few tasks send packs; none waits per message.
        assert len(asyncio.all_tasks()) - tasks_before < 10
        results = [await f for f in futures]
    seqs = [r.seq for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + 500))
    assert len({r.message_id for r in results}) == 500


async def test_submit_future_carries_the_error(client: nervebus.Client, topic: str) -> None:
    async with client.publisher(topic) as publisher:
        good = await publisher.submit(b"good")
        bad = await publisher.submit(OVERSIZED)
        dedup = await publisher.submit(b"again", message_id="good-id")
        dup = await publisher.submit(b"again", message_id="good-id")
        with pytest.raises(nervebus.StatusError) as info:
            await bad
        assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert (await good).outcome is Outcome.APPENDED
        assert (await dedup).outcome is Outcome.APPENDED
        assert (await dup).outcome is Outcome.DUPLICATE and (await dup).seq == (await dedup).seq
        with pytest.raises(TypeError):
            await publisher.submit(3.5)  # type: ignore[arg-type]
    with pytest.raises(nervebus.PublisherClosedError):
        await publisher.submit(b"late")
    with pytest.raises(nervebus.PublisherClosedError):
        await publisher.publish_many([b"late"])


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def test_publish_many_spans_have_the_callers_parent(
    broker: Broker, topic: str, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, spans = exporter
    # Two messages fit at once: the rest are built later, from the task that sends packs.
    settings = PublisherSettings(max_outstanding_messages=2, max_messages=2)
    async with nervebus.Client(broker.address, tracer_provider=provider) as client:
        with provider.get_tracer("test").start_as_current_span("request") as root:
            async with client.publisher(topic, settings) as publisher:
                results = await publisher.publish_many([f"m{i}".encode() for i in range(6)])
    producers = [s for s in spans.get_finished_spans() if s.name == f"publish {topic}"]
    assert len(producers) == 6
    root_id = root.get_span_context().span_id
    assert all(s.parent is not None and s.parent.span_id == root_id for s in producers)
    seqs = {s.attributes["messaging.nervebus.message.seq"] for s in producers if s.attributes}
    assert seqs == {r.seq for r in results}
    trace_ids = {format(s.context.trace_id, "032x") for s in producers if s.context}
    assert trace_ids == {r.trace_id for r in results}


async def test_tracing_without_a_provider_sends_no_trace_context(client: nervebus.Client, topic: str) -> None:
    # No SDK: the client skips its no-op spans, and the broker starts each message's trace.
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    async with client.publisher(topic) as publisher:
        results = await publisher.publish_many([b"a", b"b"])
    received = await receive_all(client, topic, 2)
    assert [m.trace_id for m in received] == [r.trace_id for r in results]
    assert results[0].trace_id != results[1].trace_id


def test_sync_publish_many(broker: Broker, topic: str) -> None:
    with sync.Client(broker.address) as client:
        publisher = client.publisher(topic)
        results = publisher.publish_many([b"a", Message(b"b", message_id="b-id")], timeout=10)
        assert [r.seq for r in results] == [results[0].seq, results[0].seq + 1]
        assert results[1].message_id == "b-id"
        mixed = publisher.publish_many([b"c", 7], return_exceptions=True, timeout=10)  # type: ignore[list-item]
        assert isinstance(mixed[0], nervebus.PublishResult) and isinstance(mixed[1], TypeError)
        publisher.close()
