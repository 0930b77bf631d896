"""OpenTelemetry: the producer span and the consumer span share one trace, parent to child."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import nervebus
from nervebus import PublisherSettings, ReceivedMessage, StartPoint, SubscriberSettings

from .conftest import Broker, wait_until


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def one(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
    return found[0]


def hex_trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


async def test_producer_and_consumer_spans_share_the_trace(
    broker: Broker, topic: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    in_handler: list[trace.SpanContext] = []
    received: list[ReceivedMessage] = []

    async def handle(message: ReceivedMessage) -> None:
        in_handler.append(trace.get_current_span().get_span_context())
        received.append(message)

    async with nervebus.Client(broker.address, tracer_provider=provider) as client:
        with tracer.start_as_current_span("request") as root:
            async with client.publisher(topic) as publisher:
                result = await publisher.publish(b"traced", message_id="m-1")
        settings = SubscriberSettings(start=StartPoint.EARLIEST)
        async with client.subscriber(topic, "traced-sub", handle, settings) as subscriber:
            await wait_until(lambda: subscriber.stats.acked == 1)

    finished = exporter.get_finished_spans()
    producer = one(finished, f"publish {topic}")
    consumer = one(finished, f"process {topic}")
    assert producer.kind is SpanKind.PRODUCER
    assert consumer.kind is SpanKind.CONSUMER
    assert producer.context is not None and consumer.context is not None
    # One trace: the application's request span → producer → consumer.
    assert producer.context.trace_id == consumer.context.trace_id == root.get_span_context().trace_id
    assert producer.parent is not None and producer.parent.span_id == root.get_span_context().span_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.parent.is_remote
    # The broker reports the same trace id on publish and on delivery.
    assert result.trace_id == hex_trace_id(producer) == received[0].trace_id
    assert received[0].attributes["traceparent"].split("-")[1] == hex_trace_id(producer)
    # The handler ran inside the consumer span.
    assert in_handler[0].span_id == consumer.context.span_id
    # Messaging semantic conventions.
    assert producer.attributes is not None and consumer.attributes is not None
    assert producer.attributes["messaging.system"] == "nervebus"
    assert producer.attributes["messaging.destination.name"] == topic
    assert producer.attributes["messaging.operation.name"] == "publish"
    assert producer.attributes["messaging.operation.type"] == "send"
    assert producer.attributes["messaging.message.id"] == "m-1"
    assert producer.attributes["messaging.nervebus.message.seq"] == result.seq
    assert producer.attributes["server.address"] == "127.0.0.1"
    assert consumer.attributes["messaging.operation.type"] == "process"
    assert consumer.attributes["messaging.destination.subscription.name"] == "traced-sub"
    assert consumer.attributes["messaging.nervebus.message.delivery_attempt"] == 1
    assert consumer.attributes["messaging.nervebus.message.seq"] == result.seq
    assert consumer.attributes["messaging.nervebus.settlement"] == "ack"
    assert producer.attributes["messaging.nervebus.publish.outcome"] == "appended"


async def test_producer_span_is_a_root_without_a_current_span_and_errors_are_recorded(
    broker: Broker, topic: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans

    async def handle(message: ReceivedMessage) -> None:
        if message.attempt == 1:
            raise ValueError("boom")

    async with nervebus.Client(broker.address, tracer_provider=provider) as client:
        async with client.publisher(topic) as publisher:
            result = await publisher.publish(b"x", attributes={"tracestate": "stale=1"})
        settings = SubscriberSettings(start=StartPoint.EARLIEST, nack_delay=0.1)
        async with client.subscriber(topic, "s", handle, settings) as subscriber:
            await wait_until(lambda: subscriber.stats.acked == 1)

    finished = exporter.get_finished_spans()
    producer = one(finished, f"publish {topic}")
    assert producer.parent is None
    process = sorted((s for s in finished if s.name == f"process {topic}"), key=lambda s: s.start_time or 0)
    assert len(process) == 2
    assert process[0].status.status_code is StatusCode.ERROR
    assert any(e.name == "exception" for e in process[0].events)
    assert process[1].status.status_code is not StatusCode.ERROR
    for span in process:
        assert span.parent is not None and producer.context is not None
        assert span.parent.span_id == producer.context.span_id
    assert result.trace_id == hex_trace_id(producer)


async def test_publish_failure_ends_the_producer_span_with_an_error(
    broker: Broker, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    async with nervebus.Client(broker.address, tracer_provider=provider) as client:
        async with client.publisher("") as publisher:
            with pytest.raises(nervebus.StatusError):
                await publisher.publish(b"x")
    [span] = exporter.get_finished_spans()
    assert span.name == "publish "
    assert span.status.status_code is StatusCode.ERROR


async def test_tracing_off_leaves_the_trace_to_the_broker(
    broker: Broker, topic: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    received: list[ReceivedMessage] = []

    async def handle(message: ReceivedMessage) -> None:
        received.append(message)

    async with nervebus.Client(broker.address, tracer_provider=provider) as client:
        async with client.publisher(topic, PublisherSettings(tracing=False)) as publisher:
            result = await publisher.publish(b"x")
        settings = SubscriberSettings(start=StartPoint.EARLIEST, tracing=False)
        async with client.subscriber(topic, "s", handle, settings):
            await wait_until(lambda: len(received) == 1)
    assert exporter.get_finished_spans() == ()
    # The broker started a trace of its own and reports it both ways.
    assert len(result.trace_id) == 32 and result.trace_id == received[0].trace_id
    assert received[0].attributes["traceparent"].split("-")[1] == result.trace_id
    await asyncio.sleep(0)
