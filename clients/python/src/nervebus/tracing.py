"""OpenTelemetry integration: producer spans on publish, consumer spans around handlers.

The trace context travels in the message attributes ``traceparent`` and ``tracestate`` (W3C
Trace Context), whatever propagators the application configured globally, because that is the
broker's wire contract. Only ``opentelemetry-api`` is needed; without an SDK the spans are
no-ops and the broker starts a trace for every message itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NoOpTracer,
    ProxyTracer,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._version import __version__

__all__ = [
    "ATTR_DELIVERY_ATTEMPT",
    "ATTR_ORDERING_KEY",
    "ATTR_OUTCOME",
    "ATTR_SEQ",
    "ATTR_SETTLEMENT",
    "MESSAGING_SYSTEM",
    "TRACEPARENT",
    "TRACESTATE",
    "Tracing",
    "extract_context",
    "inject_context",
]

#: Attribute key of the W3C traceparent header.
TRACEPARENT = "traceparent"
#: Attribute key of the W3C tracestate header.
TRACESTATE = "tracestate"
#: The value of the ``messaging.system`` span attribute.
MESSAGING_SYSTEM = "nervebus"

# NerveBus's own span attributes, beside the OpenTelemetry messaging conventions; the broker and
# the other clients use the same names (docs/clients.md, "Tracing").
#: The message's seq in its topic.
ATTR_SEQ = "messaging.nervebus.message.seq"
#: The message's ordering key, when it has one.
ATTR_ORDERING_KEY = "messaging.nervebus.message.ordering_key"
#: The delivery attempt (1 for the first delivery).
ATTR_DELIVERY_ATTEMPT = "messaging.nervebus.message.delivery_attempt"
#: What the broker did with a published message: appended, duplicate or scheduled.
ATTR_OUTCOME = "messaging.nervebus.publish.outcome"
#: How a processed message was settled: ack, nack, terminate, or none.
ATTR_SETTLEMENT = "messaging.nervebus.settlement"

_PROPAGATOR = TraceContextTextMapPropagator()


def inject_context(attributes: MutableMapping[str, str], ctx: otel_context.Context | None = None) -> None:
    """Writes the span context of ``ctx`` (default: the current one) into ``attributes``.

    Sets ``traceparent`` and, when the trace state is not empty, ``tracestate``. Writes nothing
    when the context holds no valid span.
    """
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    if TRACEPARENT in carrier:
        attributes.pop(TRACESTATE, None)
        attributes.update(carrier)


def extract_context(attributes: Mapping[str, str]) -> otel_context.Context:
    """The remote span context carried in a message's ``traceparent``/``tracestate``."""
    return _PROPAGATOR.extract(dict(attributes))


def _server_attributes(target: str | None) -> dict[str, str | int]:
    """``server.address``/``server.port`` of a ``host:port`` target, when it is one."""
    if not target:
        return {}
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return {}
    if "://" in host:
        host = host.split("://", 1)[1]
    return {"server.address": host.strip("[]"), "server.port": int(port)}


class Tracing:
    """Creates the client's spans with the messaging semantic-convention attributes.

    Args:
        tracer_provider: Where spans go; ``None`` uses the global provider.
        enabled: When False no spans are made and no context is injected.
        target: The broker address (``host:port``) for the ``server.*`` attributes.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        enabled: bool = True,
        target: str | None = None,
    ) -> None:
        self.enabled = enabled
        self._tracer = trace.get_tracer("nervebus", __version__, tracer_provider=tracer_provider)
        self._server = _server_attributes(target)

    @property
    def active(self) -> bool:
        """Whether spans would be recorded: tracing is on and a tracer provider (an SDK) is set.

        Without one every span is a no-op that injects nothing, so the client skips them:
        they cost more than the rest of a message's way through the client. Checked per call
        (cheap), since an application may set its global provider after making the client.
        """
        if not self.enabled:
            return False
        tracer = self._tracer
        if isinstance(tracer, ProxyTracer):
            return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
        return not isinstance(tracer, NoOpTracer)

    def start_publish(
        self,
        topic: str,
        attributes: MutableMapping[str, str],
        *,
        message_id: str,
        body_size: int,
        ordering_key: str,
    ) -> Span | None:
        """Starts the producer span ``"publish <topic>"`` and injects it into ``attributes``.

        The span's parent is the context already in ``attributes`` when the caller put a
        ``traceparent`` there, else the current context. The caller ends the span with
        :meth:`end_publish`. Returns ``None`` when tracing is off.
        """
        if not self.enabled:
            return None
        parent = extract_context(attributes) if TRACEPARENT in attributes else None
        span_attributes: dict[str, str | int] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": topic,
            "messaging.operation.name": "publish",
            "messaging.operation.type": "send",
            "messaging.message.body.size": body_size,
            **self._server,
        }
        if message_id:
            span_attributes["messaging.message.id"] = message_id
        if ordering_key:
            span_attributes[ATTR_ORDERING_KEY] = ordering_key
        span = self._tracer.start_span(
            f"publish {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=span_attributes
        )
        inject_context(attributes, trace.set_span_in_context(span, parent))
        return span

    @staticmethod
    def end_publish(
        span: Span | None,
        *,
        seq: int | None = None,
        outcome: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Ends a producer span with the message's seq and outcome, or the error that failed it."""
        if span is None:
            return
        if seq and span.is_recording():
            span.set_attribute(ATTR_SEQ, seq)
        if outcome is not None and span.is_recording():
            span.set_attribute(ATTR_OUTCOME, outcome)
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()

    @contextmanager
    def process(
        self,
        topic: str,
        subscription: str,
        *,
        seq: int,
        attributes: Mapping[str, str],
        message_id: str,
        body_size: int,
        attempt: int,
        ordering_key: str = "",
    ) -> Iterator[Span | None]:
        """Runs the body inside the consumer span ``"process <topic>"``.

        The span is the child of the producer context extracted from ``attributes``, so producer
        and consumer share one trace. It is current while the body runs; an exception escaping
        the body is recorded on it and re-raised. Yields ``None`` when tracing is off.
        """
        if not self.enabled:
            yield None
            return
        span_attributes: dict[str, str | int] = {
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.destination.name": topic,
            "messaging.destination.subscription.name": subscription,
            "messaging.consumer.group.name": subscription,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.message.body.size": body_size,
            ATTR_SEQ: seq,
            ATTR_DELIVERY_ATTEMPT: attempt,
            **self._server,
        }
        if message_id:
            span_attributes["messaging.message.id"] = message_id
        if ordering_key:
            span_attributes[ATTR_ORDERING_KEY] = ordering_key
        with self._tracer.start_as_current_span(
            f"process {topic}",
            context=extract_context(attributes),
            kind=SpanKind.CONSUMER,
            attributes=span_attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            yield span

    @staticmethod
    def set_settlement(span: Span | None, settlement: str | None) -> None:
        """Records on a consumer span how its message was settled (``none`` when it was not)."""
        if span is not None and span.is_recording():
            span.set_attribute(ATTR_SETTLEMENT, settlement or "none")
