package nervebus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

func spanAttr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func TestTracingProducerToConsumer(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c := newClient(t, b, nervebus.WithTracerProvider(tp))
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)

	// The application's span around the publish.
	appCtx, appSpan := tp.Tracer("app").Start(ctx, "checkout")
	pub := c.Publisher(topic, nil)
	rc, err := pub.Publish(appCtx, &nervebus.Message{Data: []byte("traced")}).Get(ctx)
	appSpan.End()
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	traceID := appSpan.SpanContext().TraceID()
	if rc.TraceID != traceID.String() {
		t.Fatalf("receipt trace id %s, want the publishing trace %s", rc.TraceID, traceID)
	}

	handled := make(chan trace.SpanContext, 1)
	var delivered *nervebus.Message
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
	stop := receiveInBackground(t, sub, func(hctx context.Context, m *nervebus.Message) {
		delivered = m
		m.Ack()
		handled <- trace.SpanContextFromContext(hctx)
	})
	var handlerSC trace.SpanContext
	select {
	case handlerSC = <-handled:
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var producer, consumer sdktrace.ReadOnlySpan
	for _, s := range exporter.GetSpans().Snapshots() {
		switch s.Name() {
		case "publish " + topic:
			producer = s
		case "process " + topic:
			consumer = s
		}
	}
	if producer == nil || consumer == nil {
		t.Fatalf("spans %v: want %q and %q", exporter.GetSpans().Snapshots(), "publish "+topic, "process "+topic)
	}
	if producer.SpanKind() != trace.SpanKindProducer || consumer.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("span kinds %v / %v", producer.SpanKind(), consumer.SpanKind())
	}
	if producer.Parent().SpanID() != appSpan.SpanContext().SpanID() {
		t.Fatal("the publish span is not a child of the application's span")
	}
	if producer.SpanContext().TraceID() != traceID || consumer.SpanContext().TraceID() != traceID {
		t.Fatalf("trace ids: app %s, producer %s, consumer %s", traceID, producer.SpanContext().TraceID(), consumer.SpanContext().TraceID())
	}
	if consumer.Parent().SpanID() != producer.SpanContext().SpanID() || !consumer.Parent().IsRemote() {
		t.Fatalf("consumer parent %s, want the producer span %s (remote)", consumer.Parent().SpanID(), producer.SpanContext().SpanID())
	}
	if handlerSC.SpanID() != consumer.SpanContext().SpanID() {
		t.Fatal("the handler's context does not carry the process span")
	}
	if delivered.TraceID != traceID.String() {
		t.Fatalf("delivery trace id %s, want %s", delivered.TraceID, traceID)
	}
	for _, check := range []struct {
		span sdktrace.ReadOnlySpan
		key  attribute.Key
		want string
	}{
		{producer, "messaging.system", "nervebus"},
		{producer, "messaging.destination.name", topic},
		{producer, "messaging.operation.type", "send"},
		{producer, "messaging.message.id", rc.MessageID},
		{producer, "messaging.operation.name", "publish"},
		{producer, "messaging.nervebus.publish.outcome", "appended"},
		{producer, "server.address", "127.0.0.1"},
		{consumer, "messaging.system", "nervebus"},
		{consumer, "messaging.destination.name", topic},
		{consumer, "messaging.destination.subscription.name", "s"},
		{consumer, "messaging.operation.type", "process"},
		{consumer, "messaging.operation.name", "process"},
		{consumer, "messaging.message.id", rc.MessageID},
		{consumer, "messaging.nervebus.message.delivery_attempt", "1"},
		{consumer, "messaging.nervebus.settlement", "ack"},
	} {
		if got := spanAttr(check.span, check.key); got != check.want {
			t.Errorf("span %q attribute %s = %q, want %q", check.span.Name(), check.key, got, check.want)
		}
	}
	if got, want := spanAttr(producer, "messaging.nervebus.message.seq"), spanAttr(consumer, "messaging.nervebus.message.seq"); got == "" || got != want {
		t.Errorf("seq attributes: producer %q, consumer %q", got, want)
	}
}

// Without a span in the context the publish span starts a new trace, which the broker reports.
func TestTracingRootAndDisabled(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx := testContext(t, 30*time.Second)

	traced := newClient(t, b, nervebus.WithTracerProvider(tp))
	pub := traced.Publisher(topicName(t), nil)
	rc, err := pub.Publish(ctx, &nervebus.Message{Data: []byte("root")}).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	spans := exporter.GetSpans().Snapshots()
	if len(spans) != 1 || spans[0].Parent().IsValid() || spans[0].SpanContext().TraceID().String() != rc.TraceID {
		t.Fatalf("spans %v, receipt trace %s: want one root publish span of that trace", spans, rc.TraceID)
	}
	_ = pub.Close(ctx)

	// With the default (no-op) tracer provider no context is sent: the broker adds one.
	plain := newClient(t, b)
	pub2 := plain.Publisher(topicName(t), nil)
	rc2, err := pub2.Publish(ctx, &nervebus.Message{Data: []byte("untraced")}).Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rc2.TraceID) != 32 || rc2.TraceID == rc.TraceID {
		t.Fatalf("broker-assigned trace id %q", rc2.TraceID)
	}
	_ = pub2.Close(ctx)
}

// recordingSampler samples every span and keeps the attributes each one had at its start.
type recordingSampler struct {
	mu    sync.Mutex
	start map[string][]attribute.KeyValue // by span name
}

func (s *recordingSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.start[p.Name] = append([]attribute.KeyValue(nil), p.Attributes...)
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample}
}

func (s *recordingSampler) Description() string { return "recording" }

// A sampler decides at a span's start: it must see what names the destination and the
// operation then. Per-message attributes are added once the span records.
func TestTracingSamplerSeesDestinationAtStart(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	sampler := &recordingSampler{start: map[string][]attribute.KeyValue{}}
	exporter := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter), sdktrace.WithSampler(sampler))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx := testContext(t, 30*time.Second)
	c := newClient(t, b, nervebus.WithTracerProvider(tp))
	topic := topicName(t)
	pub := c.Publisher(topic, nil)
	if _, err := pub.Publish(ctx, &nervebus.Message{Data: []byte("x")}).Get(ctx); err != nil {
		t.Fatal(err)
	}
	_ = pub.Close(ctx)
	rctx, stop := context.WithCancel(ctx)
	err := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()}).
		Receive(rctx, func(_ context.Context, m *nervebus.Message) { m.Ack(); stop() })
	if err != nil {
		t.Fatal(err)
	}
	sampler.mu.Lock()
	defer sampler.mu.Unlock()
	for name, want := range map[string]map[attribute.Key]string{
		"publish " + topic: {"messaging.system": "nervebus", "messaging.destination.name": topic, "messaging.operation.type": "send"},
		"process " + topic: {"messaging.system": "nervebus", "messaging.destination.name": topic, "messaging.destination.subscription.name": "s", "messaging.operation.type": "process"},
	} {
		seen, ok := sampler.start[name]
		if !ok {
			t.Fatalf("the sampler saw no span %q (saw %v)", name, sampler.start)
		}
		for key, value := range want {
			found := ""
			for _, kv := range seen {
				if kv.Key == key {
					found = kv.Value.Emit()
				}
			}
			if found != value {
				t.Errorf("span %q at start: %s = %q, want %q", name, key, found, value)
			}
		}
	}
	// The per-message attributes are on the recorded spans.
	for _, s := range exporter.GetSpans().Snapshots() {
		if spanAttr(s, "messaging.message.id") == "" || spanAttr(s, "messaging.message.body.size") != "1" {
			t.Errorf("span %q: message id %q, body size %q", s.Name(), spanAttr(s, "messaging.message.id"), spanAttr(s, "messaging.message.body.size"))
		}
	}
}
