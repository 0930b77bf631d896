"""The Python leg of the cross-language test: relays messages from one topic to another.

It subscribes to ``--in-topic`` (a subscription with ordering, starting at the earliest
message) with the repository's Python client and, for each message, inside the consumer span
the client opens (a child of the producer span in the message's ``traceparent``), republishes
it to ``--out-topic`` with the same payload, ordering key, message id and attributes plus
``relayed_by=python``. The incoming ``traceparent``/``tracestate`` are left out, so the
publisher injects the current context: its producer span is a child of the consumer span, and
the trace goes on. It prints one JSON line per relayed message on stdout and exits once ``-n``
distinct messages were relayed and acked. With ``--spans FILE`` it also writes every span the
client made (name, kind, ids, attributes) to FILE as JSON lines, for check.py.

Run with the client's venv: ``clients/python/.venv/bin/python test/cross-language/relay.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from typing import Any

import grpc
import nervebus
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind

TRACE_KEYS = ("traceparent", "tracestate")


class ProducerSpans(SpanProcessor):
    """Remembers the client's ended spans, and its producer spans of one topic by message id."""

    def __init__(self, topic: str) -> None:
        self.name = f"publish {topic}"
        self.spans: dict[str, ReadableSpan] = {}
        self.all: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        scope = span.instrumentation_scope
        if scope is not None and scope.name == "nervebus":
            self.all.append(span)
        if span.kind is SpanKind.PRODUCER and span.name == self.name:
            message_id = (span.attributes or {}).get("messaging.message.id")
            if isinstance(message_id, str):
                self.spans[message_id] = span


def write_spans(path: str, spans: list[ReadableSpan]) -> None:
    """Writes spans as JSON lines, in the format the three programs share."""
    with open(path, "w", encoding="utf-8") as f:
        for span in spans:
            trace_id, span_id = hex_ids(span.context)
            _, parent_span_id = hex_ids(span.parent)
            record = {
                "name": span.name,
                "kind": span.kind.name.lower(),
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent_span_id,
                "attributes": dict(span.attributes or {}),
            }
            f.write(json.dumps(record) + "\n")


def hex_ids(ctx: trace.SpanContext | None) -> tuple[str, str]:
    """The trace id and span id of a span context as lowercase hex ("" when there is none)."""
    if ctx is None or not ctx.is_valid:
        return "", ""
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


async def create_if_missing(call: Any) -> None:
    """Awaits an admin create call, ignoring ALREADY_EXISTS."""
    try:
        await call
    except nervebus.StatusError as err:
        if err.code is not grpc.StatusCode.ALREADY_EXISTS:
            raise


async def relay(args: argparse.Namespace, producer_spans: ProducerSpans) -> None:
    relayed: set[int] = set()
    done = asyncio.Event()

    async with nervebus.Client(args.addr) as client:
        admin = client.admin
        await create_if_missing(admin.create_topic(args.in_topic))
        await create_if_missing(admin.create_topic(args.out_topic))
        await create_if_missing(
            admin.create_subscription(
                args.in_topic, args.subscription, ordering=True, start=nervebus.StartPoint.EARLIEST
            )
        )
        publisher = client.publisher(args.out_topic)

        async def handle(message: nervebus.ReceivedMessage) -> None:
            consumer = trace.get_current_span()
            consumer_trace_id, consumer_span_id = hex_ids(consumer.get_span_context())
            _, consumer_parent_span_id = hex_ids(getattr(consumer, "parent", None))
            attributes = {k: v for k, v in message.attributes.items() if k not in TRACE_KEYS}
            attributes["relayed_by"] = "python"
            result = await publisher.publish(
                message.data,
                attributes=attributes,
                ordering_key=message.ordering_key,
                message_id=message.message_id,
            )
            producer = producer_spans.spans.get(result.message_id)
            producer_trace_id, producer_span_id = hex_ids(producer.context if producer else None)
            _, producer_parent_span_id = hex_ids(producer.parent if producer else None)
            line = {
                "in_seq": message.seq,
                "in_attempt": message.attempt,
                "in_message_id": message.message_id,
                "in_trace_id": message.trace_id,
                "in_traceparent": message.attributes.get("traceparent", ""),
                "in_ordering_key": message.ordering_key,
                "payload_b64": base64.b64encode(message.data).decode("ascii"),
                "consumer_trace_id": consumer_trace_id,
                "consumer_span_id": consumer_span_id,
                "consumer_parent_span_id": consumer_parent_span_id,
                "out_seq": result.seq,
                "out_outcome": result.outcome.name.lower(),
                "out_message_id": result.message_id,
                "out_trace_id": result.trace_id,
                "producer_trace_id": producer_trace_id,
                "producer_span_id": producer_span_id,
                "producer_parent_span_id": producer_parent_span_id,
            }
            print(json.dumps(line), flush=True)
            relayed.add(message.seq)
            if len(relayed) >= args.n:
                done.set()
            # Returning acks the message.

        settings = nervebus.SubscriberSettings(
            start=nervebus.StartPoint.EARLIEST, consumer_name="xlang-python-relay", stop_timeout=5.0
        )
        subscriber = client.subscriber(args.in_topic, args.subscription, handle, settings)
        await subscriber.start(timeout=10)
        finished = asyncio.ensure_future(subscriber.wait())
        waiter = asyncio.ensure_future(done.wait())
        await asyncio.wait({finished, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if finished.done():
            waiter.cancel()
            finished.result()  # raises what stopped the subscriber
            raise RuntimeError("the subscriber stopped before all messages were relayed")
        # Sends the last acks, then ends the stream; the client then flushes the publisher.
        await subscriber.stop()
        finished.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", required=True, help="broker address host:port")
    parser.add_argument("--in-topic", default="xlang.in")
    parser.add_argument("--out-topic", default="xlang.out")
    parser.add_argument("--subscription", default="xlang-python-relay")
    parser.add_argument("-n", type=int, default=50, help="messages to relay before exiting")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    parser.add_argument("--spans", help="write the client's spans to this file (JSON lines)")
    args = parser.parse_args()

    producer_spans = ProducerSpans(args.out_topic)
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(producer_spans)
    trace.set_tracer_provider(provider)
    try:
        asyncio.run(asyncio.wait_for(relay(args, producer_spans), args.timeout))
    except TimeoutError:
        print(f"relay: timed out after {args.timeout} s", file=sys.stderr)
        return 1
    finally:
        provider.shutdown()
        if args.spans:
            write_spans(args.spans, producer_spans.all)
    return 0


if __name__ == "__main__":
    sys.exit(main())
