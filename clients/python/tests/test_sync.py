"""The synchronous wrapper: a background event loop, plain-function handlers."""

from __future__ import annotations

import threading
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import nervebus
from nervebus import ReceivedMessage, StartPoint, SubscriberSettings, sync

from .conftest import Broker


def test_sync_publish_and_subscribe(broker: Broker, topic: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    received: list[ReceivedMessage] = []
    handler_threads: set[str] = set()
    spans_in_handler: list[int] = []
    done = threading.Event()
    with sync.Client(broker.address, tracer_provider=provider) as client:
        publisher = client.publisher(topic)
        first = publisher.publish(b"one", attributes={"k": "v"}, timeout=10)
        futures = [publisher.publish_async(f"n{i}".encode(), ordering_key="k") for i in range(5)]
        publisher.flush(timeout=10)
        rest = [f.result(5) for f in futures]
        assert [r.seq for r in rest] == list(range(first.seq + 1, first.seq + 6))

        def handle(message: ReceivedMessage) -> None:
            handler_threads.add(threading.current_thread().name)
            spans_in_handler.append(trace.get_current_span().get_span_context().trace_id)
            received.append(message)
            if len(received) == 6:
                done.set()

        settings = SubscriberSettings(start=StartPoint.EARLIEST, concurrency=2)
        with client.subscriber(topic, "sync-sub", handle, settings) as subscriber:
            assert done.wait(10)
            deadline = time.monotonic() + 5
            while subscriber.stats.acked < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert subscriber.stats.acked == 6
        assert not subscriber.running
        publisher.close()

    assert sorted(m.seq for m in received) == [first.seq + i for i in range(6)]
    assert received[0].attributes["k"] == "v"
    assert all(name.startswith("nervebus-handler") for name in handler_threads)
    # The consumer span is current inside the handler thread, in the producer's trace.
    assert all(tid != 0 for tid in spans_in_handler)
    producer_traces = {
        s.context.trace_id
        for s in exporter.get_finished_spans()
        if s.name.startswith("publish ") and s.context
    }
    assert set(spans_in_handler) <= producer_traces


def test_sync_handler_errors_nack(broker: Broker, topic: str) -> None:
    attempts: list[int] = []
    done = threading.Event()

    def handle(message: ReceivedMessage) -> None:
        attempts.append(message.attempt)
        if message.attempt == 1:
            raise RuntimeError("try again")
        done.set()

    with sync.Publisher(broker.address, topic) as publisher:
        publisher.publish(b"x")
    subscriber = sync.Subscriber(
        broker.address, topic, "s", handle, SubscriberSettings(start=StartPoint.EARLIEST, nack_delay=0.1)
    )
    subscriber.start(timeout=10)
    try:
        assert done.wait(10)
    finally:
        subscriber.stop()
    assert attempts == [1, 2]


def test_sync_errors_carry_the_status(broker: Broker) -> None:
    with sync.Client(broker.address) as client:
        publisher = client.publisher("")
        with pytest.raises(nervebus.StatusError) as info:
            publisher.publish(b"x", timeout=10)
        assert info.value.status_name == "INVALID_ARGUMENT"
        subscriber = client.subscriber("", "s", lambda m: None)
        with pytest.raises(nervebus.StatusError):
            subscriber.start(timeout=10)


def test_sync_run_forever_returns_when_stopped_elsewhere(broker: Broker, topic: str) -> None:
    with sync.Client(broker.address) as client:
        subscriber = client.subscriber(topic, "forever", lambda m: None)
        subscriber.start(timeout=10)
        stopper = threading.Timer(0.3, subscriber.stop)
        stopper.start()
        t0 = time.monotonic()
        subscriber.run_forever()
        assert time.monotonic() - t0 < 5
        stopper.join()
