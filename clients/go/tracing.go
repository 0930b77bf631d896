package nervebus

import (
	"context"
	"net"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TracerName is the instrumentation scope name of the spans this package makes.
const TracerName = "github.com/nervebus/nervebus/clients/go"

// Span attributes specific to NerveBus, beside the OpenTelemetry messaging conventions. The
// broker and the other clients use the same names (docs/clients.md, "Tracing").
const (
	// AttrSeq is the message's seq in its topic.
	AttrSeq = attribute.Key("messaging.nervebus.message.seq")
	// AttrOrderingKey is the message's ordering key, when it has one.
	AttrOrderingKey = attribute.Key("messaging.nervebus.message.ordering_key")
	// AttrAttempt is the delivery attempt (1 for the first delivery).
	AttrAttempt = attribute.Key("messaging.nervebus.message.delivery_attempt")
	// AttrOutcome is what the broker did with a published message: appended, duplicate or
	// scheduled.
	AttrOutcome = attribute.Key("messaging.nervebus.publish.outcome")
	// AttrSettlement is how a processed message was settled: ack, nack, terminate, or none.
	AttrSettlement = attribute.Key("messaging.nervebus.settlement")
)

// messagingSystem is the messaging.system attribute value.
var messagingSystem = semconv.MessagingSystemKey.String("nervebus")

type tracing struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	server     []attribute.KeyValue // server.address and server.port, when known
}

// newTracing makes the client's tracing; addr is the broker's host:port ("" when unknown).
func newTracing(tp trace.TracerProvider, p propagation.TextMapPropagator, addr string) tracing {
	t := tracing{tracer: tp.Tracer(TracerName), propagator: p}
	if host, port, err := net.SplitHostPort(addr); err == nil && host != "" {
		if n, err := strconv.Atoi(port); err == nil {
			t.server = []attribute.KeyValue{semconv.ServerAddress(host), semconv.ServerPort(n)}
		}
	}
	return t
}

// attributesCarrier adapts message attributes to a propagation.TextMapCarrier.
type attributesCarrier map[string]string

// Get returns the attribute key.
func (c attributesCarrier) Get(key string) string { return c[key] }

// Set sets the attribute key.
func (c attributesCarrier) Set(key, value string) { c[key] = value }

// Keys lists the attribute keys.
func (c attributesCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// spanTemplate is what the spans of one publisher or subscriber share: their name and start
// options (the kind and the attributes that are the same for every message), made once. A
// span's per-message attributes are added only when it records: with no SDK registered, every
// attribute built per message was garbage, and the handler goroutine's stack grew to hold them
// (a quarter of a subscriber's CPU, scripts/bench.sh).
type spanTemplate struct {
	name string
	opts []trace.SpanStartOption
}

// publishTemplate is the template of a topic's producer spans.
func (t tracing) publishTemplate(topic string) spanTemplate {
	kv := []attribute.KeyValue{
		messagingSystem,
		semconv.MessagingDestinationName(topic),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
	}
	kv = append(kv, t.server...)
	return spanTemplate{
		name: "publish " + topic,
		opts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(kv...)},
	}
}

// processTemplate is the template of a subscription's consumer spans.
func (t tracing) processTemplate(topic, subscription string) spanTemplate {
	kv := []attribute.KeyValue{
		messagingSystem,
		semconv.MessagingDestinationName(topic),
		semconv.MessagingDestinationSubscriptionName(subscription),
		semconv.MessagingConsumerGroupName(subscription),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
	}
	kv = append(kv, t.server...)
	return spanTemplate{
		name: "process " + topic,
		opts: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(kv...)},
	}
}

// startPublish starts the producer span of one message and writes its context into attrs (a
// copy the publisher owns). The span's parent is the span in ctx; when ctx has none, a trace
// context already in the message's attributes is continued instead.
func (t tracing) startPublish(ctx context.Context, tmpl spanTemplate, m *Message, attrs map[string]string, id string) trace.Span {
	if !trace.SpanContextFromContext(ctx).IsValid() && attrs["traceparent"] != "" {
		ctx = t.propagator.Extract(ctx, attributesCarrier(attrs))
	}
	ctx, span := t.tracer.Start(ctx, tmpl.name, tmpl.opts...)
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingMessageID(id), semconv.MessagingMessageBodySize(len(m.Data)))
		if m.OrderingKey != "" {
			span.SetAttributes(AttrOrderingKey.String(m.OrderingKey))
		}
	}
	// Replace any stale context in the attributes by the publish span's.
	delete(attrs, "traceparent")
	delete(attrs, "tracestate")
	t.propagator.Inject(ctx, attributesCarrier(attrs))
	return span
}

// endPublish ends a producer span with the broker's answer.
func endPublish(span trace.Span, r Receipt, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	} else {
		if r.Seq > 0 {
			span.SetAttributes(AttrSeq.Int64(int64(r.Seq)))
		}
		span.SetAttributes(AttrOutcome.String(r.Outcome.String()))
	}
	span.End()
}

// startProcess starts the consumer span of one delivered message as a child of the producer
// context found in its attributes (or of the span in ctx when the attributes carry none).
func (t tracing) startProcess(ctx context.Context, tmpl spanTemplate, m *Message) (context.Context, trace.Span) {
	parent := t.propagator.Extract(ctx, attributesCarrier(m.Attributes))
	ctx, span := t.tracer.Start(parent, tmpl.name, tmpl.opts...)
	if span.IsRecording() {
		span.SetAttributes(
			semconv.MessagingMessageBodySize(len(m.Data)),
			AttrSeq.Int64(int64(m.Seq)),
			AttrAttempt.Int(m.Attempt),
		)
		if m.ID != "" {
			span.SetAttributes(semconv.MessagingMessageID(m.ID))
		}
		if m.OrderingKey != "" {
			span.SetAttributes(AttrOrderingKey.String(m.OrderingKey))
		}
	}
	return ctx, span
}

// settlementName names a settlement for the process span.
func settlementName(kind settleKind) string {
	switch kind {
	case settleAck:
		return "ack"
	case settleNack:
		return "nack"
	case settleTerminate:
		return "terminate"
	}
	return "none"
}
