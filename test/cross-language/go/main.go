// Command publish is the Go end of the cross-language test: it publishes -n messages to a
// NerveBus topic with the repository's Go client, each inside its own span of the OpenTelemetry
// SDK, and prints one JSON line per message on stdout (seq, payload, attributes, ordering key,
// and the trace ids of its spans and of the broker's receipt) for test/cross-language/check.py.
// With -spans FILE it also writes every span the client made (name, kind, ids, attributes) to
// FILE as JSON lines, for check.py's check of the span attribute names.
//
//	go run . -addr 127.0.0.1:7070 -topic xlang.in -n 50 -spans spans.jsonl
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"time"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// record is one output line.
type record struct {
	Index       int               `json:"index"`
	Seq         uint64            `json:"seq"`
	Outcome     string            `json:"outcome"`
	MessageID   string            `json:"message_id"`
	PayloadB64  string            `json:"payload_b64"`
	Attributes  map[string]string `json:"attributes"`
	OrderingKey string            `json:"ordering_key"`
	// TraceID and SpanID are those of the span this program opened around Publish.
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
	// The client's own producer span ("publish <topic>"), a child of the span above; its
	// context is what the client puts in the message's traceparent.
	ProducerTraceID      string `json:"producer_trace_id"`
	ProducerSpanID       string `json:"producer_span_id"`
	ProducerParentSpanID string `json:"producer_parent_span_id"`
	// ReceiptTraceID is the trace id the broker returned from SendPack.
	ReceiptTraceID string `json:"receipt_trace_id"`
}

// producerSpans is a span processor that remembers the client's ended spans, and its producer
// spans by message id, so that the output can name the span whose context went into
// traceparent.
type producerSpans struct {
	mu    sync.Mutex
	spans map[string]sdktrace.ReadOnlySpan
	all   []sdktrace.ReadOnlySpan
}

func (p *producerSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (p *producerSpans) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.InstrumentationScope().Name != nervebus.TracerName {
		return
	}
	p.mu.Lock()
	p.all = append(p.all, s)
	p.mu.Unlock()
	if s.SpanKind() != trace.SpanKindProducer {
		return
	}
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key("messaging.message.id") {
			p.mu.Lock()
			p.spans[kv.Value.AsString()] = s
			p.mu.Unlock()
			return
		}
	}
}

func (p *producerSpans) Shutdown(context.Context) error   { return nil }
func (p *producerSpans) ForceFlush(context.Context) error { return nil }

func (p *producerSpans) get(messageID string) sdktrace.ReadOnlySpan {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spans[messageID]
}

// spanRecord is one line of the -spans file, the same in the three programs.
type spanRecord struct {
	Name         string         `json:"name"`
	Kind         string         `json:"kind"`
	TraceID      string         `json:"trace_id"`
	SpanID       string         `json:"span_id"`
	ParentSpanID string         `json:"parent_span_id"`
	Attributes   map[string]any `json:"attributes"`
}

// writeSpans writes the client's ended spans to path as JSON lines.
func (p *producerSpans) writeSpans(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.all {
		attrs := map[string]any{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		rec := spanRecord{
			Name:       s.Name(),
			Kind:       s.SpanKind().String(),
			TraceID:    s.SpanContext().TraceID().String(),
			SpanID:     s.SpanContext().SpanID().String(),
			Attributes: attrs,
		}
		if s.Parent().IsValid() {
			rec.ParentSpanID = s.Parent().SpanID().String()
		}
		if err := enc.Encode(rec); err != nil {
			_ = f.Close()
			return err
		}
	}
	return f.Close()
}

// payload is message i's data: text with non-ASCII characters, then bytes that are not valid
// UTF-8 (NUL, 0xff, i), then a pattern whose length varies between messages.
func payload(i int) []byte {
	data := fmt.Appendf(nil, "xlang #%02d go→py→ts ✓ ", i)
	data = append(data, 0x00, 0xff, byte(i))
	for j := range (i * 37) % 300 {
		data = append(data, byte('a'+j%26))
	}
	return data
}

func main() {
	addr := flag.String("addr", "127.0.0.1:7070", "broker address host:port")
	topic := flag.String("topic", "xlang.in", "topic to publish to")
	n := flag.Int("n", 50, "how many messages to publish")
	keys := flag.Int("keys", 1, "how many ordering keys to spread the messages over")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	spansPath := flag.String("spans", "", "write the client's spans to this file (JSON lines)")
	flag.Parse()
	if *n < 1 || *keys < 1 {
		log.Fatal("-n and -keys must be at least 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	spans := &producerSpans{spans: map[string]sdktrace.ReadOnlySpan{}}
	err := run(ctx, spans, *addr, *topic, *n, *keys)
	if *spansPath != "" {
		err = errors.Join(err, spans.writeSpans(*spansPath))
	}
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, spans *producerSpans, addr, topic string, n, keys int) error {
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(spans),
	)
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tracer := tp.Tracer("nervebus-cross-language-test")

	client, err := nervebus.NewClient(addr, nervebus.WithTracerProvider(tp))
	if err != nil {
		return err
	}
	defer client.Close()
	// Small packs, so that the messages of one key go out in several SendPack calls.
	pub := client.Publisher(topic, &nervebus.PublisherConfig{CountThreshold: 8})

	type sent struct {
		msg    *nervebus.Message
		span   trace.Span
		result *nervebus.PublishResult
	}
	all := make([]sent, 0, n)
	for i := 1; i <= n; i++ {
		msg := &nervebus.Message{
			Data: payload(i),
			Attributes: map[string]string{
				"n":    strconv.Itoa(i),
				"lang": "go",
				"text": fmt.Sprintf("ünïcødé ✓ #%d", i),
			},
			OrderingKey: fmt.Sprintf("xlang-key-%d", i%keys),
		}
		spanCtx, span := tracer.Start(ctx, fmt.Sprintf("%s send #%d", topic, i),
			trace.WithSpanKind(trace.SpanKindProducer))
		all = append(all, sent{msg: msg, span: span, result: pub.Publish(spanCtx, msg)})
	}

	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	var errs []error
	for i, s := range all {
		receipt, err := s.result.Get(ctx)
		s.span.End()
		if err != nil {
			errs = append(errs, fmt.Errorf("message %d: %w", i+1, err))
			continue
		}
		sc := s.span.SpanContext()
		rec := record{
			Index:          i + 1,
			Seq:            receipt.Seq,
			Outcome:        receipt.Outcome.String(),
			MessageID:      receipt.MessageID,
			PayloadB64:     base64.StdEncoding.EncodeToString(s.msg.Data),
			Attributes:     s.msg.Attributes,
			OrderingKey:    s.msg.OrderingKey,
			TraceID:        sc.TraceID().String(),
			SpanID:         sc.SpanID().String(),
			ReceiptTraceID: receipt.TraceID,
		}
		// The client ends the producer span before it resolves the result.
		if ps := spans.get(receipt.MessageID); ps != nil {
			rec.ProducerTraceID = ps.SpanContext().TraceID().String()
			rec.ProducerSpanID = ps.SpanContext().SpanID().String()
			rec.ProducerParentSpanID = ps.Parent().SpanID().String()
		}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	if err := pub.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
