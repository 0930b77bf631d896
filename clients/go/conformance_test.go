package nervebus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// The client conformance suite: the scenarios of test/client-conformance/scenarios.json, which
// the Python and TypeScript clients run too, with the same expectations (docs/clients.md).

type conformanceFile struct {
	Defaults struct {
		Publisher  map[string]any `json:"publisher"`
		Subscriber map[string]any `json:"subscriber"`
	} `json:"defaults"`
	Scenarios []json.RawMessage `json:"scenarios"`
}

// scenarioMessage is a message of a scenario.
type scenarioMessage struct {
	Data        string            `json:"data"`
	Attributes  map[string]string `json:"attributes"`
	OrderingKey string            `json:"ordering_key"`
}

func (m scenarioMessage) message() *nervebus.Message {
	return &nervebus.Message{Data: []byte(m.Data), Attributes: m.Attributes, OrderingKey: m.OrderingKey}
}

// scenario is the union of the scenarios' fields.
type scenario struct {
	ID                     string            `json:"id"`
	Topic                  string            `json:"topic"`
	LingerMs               int64             `json:"linger_ms"`
	Publish                int               `json:"publish"`
	Messages               []scenarioMessage `json:"messages"`
	ThenPublish            scenarioMessage   `json:"then_publish"`
	AfterResumePublish     scenarioMessage   `json:"after_resume_publish"`
	OutstandingMaxMessages int               `json:"outstanding_max_messages"`
	ConfirmAcks            bool              `json:"confirm_acks"`
	AckDeadlineMs          int64             `json:"ack_deadline_ms"`
	MinBackoffMs           int64             `json:"min_backoff_ms"`
	MaxBackoffMs           int64             `json:"max_backoff_ms"`
	ExtendToMs             int64             `json:"extend_to_ms"`
	Expect                 map[string]any    `json:"expect"`
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

func TestConformance(t *testing.T) {
	raw, err := os.ReadFile("../../test/client-conformance/scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var file conformanceFile
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	impl := map[string]func(*testing.T, *testbroker.Broker, scenario){
		"defaults": func(t *testing.T, _ *testbroker.Broker, _ scenario) {
			conformDefaults(t, file.Defaults.Publisher, file.Defaults.Subscriber)
		},
		"pack-count-threshold":      conformPackCount,
		"bad-message-fails-alone":   conformBadMessage,
		"pack-failure-fails-all":    conformPackFailure,
		"ordering-key-pause-resume": conformOrderingKeyPause,
		"flow-control-blocks":       conformFlowControl,
		"ack-confirmation":          conformAckConfirmation,
		"manual-lease-extension":    conformManualExtension,
	}
	b := testbroker.Start(t)
	for _, r := range file.Scenarios {
		var sc scenario
		if err := json.Unmarshal(r, &sc); err != nil {
			t.Fatal(err)
		}
		run, ok := impl[sc.ID]
		if !ok {
			t.Errorf("scenario %q has no Go implementation", sc.ID)
			continue
		}
		t.Run(sc.ID, func(t *testing.T) { run(t, b, sc) })
	}
}

// num reads a number of the scenario file.
func num(t *testing.T, m map[string]any, key string) float64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("scenarios.json: %q is not a number: %v", key, m[key])
	}
	return v
}

func codesOf(t *testing.T, m map[string]any, key string) []codes.Code {
	t.Helper()
	var out []codes.Code
	for _, name := range m[key].([]any) {
		var c codes.Code
		if err := c.UnmarshalJSON([]byte(`"` + name.(string) + `"`)); err != nil {
			t.Fatalf("scenarios.json: %q: %v", key, err)
		}
		out = append(out, c)
	}
	return out
}

func conformDefaults(t *testing.T, pub, sub map[string]any) {
	p := nervebus.DefaultPublisherConfig()
	for key, got := range map[string]float64{
		"pack_max_messages":        float64(p.CountThreshold),
		"pack_max_bytes":           float64(p.ByteThreshold),
		"linger_ms":                float64(p.DelayThreshold.Milliseconds()),
		"packs_in_flight":          float64(p.MaxInFlightPacks),
		"outstanding_max_messages": float64(p.MaxOutstandingMessages),
		"outstanding_max_bytes":    float64(p.MaxOutstandingBytes),
		"attempt_timeout_ms":       float64(p.AttemptTimeout.Milliseconds()),
		"retry_total_timeout_ms":   float64(p.Timeout.Milliseconds()),
		"retry_initial_backoff_ms": float64(p.RetryBackoff.Initial.Milliseconds()),
		"retry_max_backoff_ms":     float64(p.RetryBackoff.Max.Milliseconds()),
		"retry_multiplier":         p.RetryBackoff.Multiplier,
	} {
		if want := num(t, pub, key); got != want {
			t.Errorf("publisher default %s = %v, want %v", key, got, want)
		}
	}
	for _, c := range codesOf(t, pub, "retried_codes") {
		if !nervebus.IsRetryable(status.Error(c, "x")) {
			t.Errorf("publisher does not retry %v", c)
		}
	}
	s := nervebus.DefaultSubscriberConfig()
	for key, got := range map[string]float64{
		"window_messages":              float64(s.MaxOutstandingMessages),
		"window_bytes":                 float64(s.MaxOutstandingBytes),
		"handlers_at_once":             float64(s.MaxConcurrentHandlers),
		"max_extension_ms":             float64(s.MaxExtension.Milliseconds()),
		"shutdown_timeout_ms":          float64(s.ShutdownTimeout.Milliseconds()),
		"reconnect_initial_backoff_ms": float64(s.ReconnectBackoff.Initial.Milliseconds()),
		"reconnect_max_backoff_ms":     float64(s.ReconnectBackoff.Max.Milliseconds()),
	} {
		if want := num(t, sub, key); got != want {
			t.Errorf("subscriber default %s = %v, want %v", key, got, want)
		}
	}
	if s.ConfirmAcks != sub["confirm_acks"].(bool) {
		t.Errorf("subscriber default confirm_acks = %v", s.ConfirmAcks)
	}
	for _, c := range codesOf(t, sub, "reconnect_codes") {
		if !nervebus.StreamRetryable(status.Error(c, "x")) {
			t.Errorf("subscriber does not reconnect after %v", c)
		}
	}
}

// lastSeq is the topic's last seq as the broker reports it.
func lastSeq(t *testing.T, ctx context.Context, c *nervebus.Client, topic string) uint64 {
	t.Helper()
	st, err := c.Admin().GetStats(ctx, topic)
	if err != nil {
		t.Fatalf("GetStats: %v", err)
	}
	return st.Topic.LastSeq
}

func conformPackCount(t *testing.T, b *testbroker.Broker, sc scenario) {
	rec := &packRecorder{}
	c := newClient(t, b, nervebus.WithDialOptions(grpc.WithUnaryInterceptor(rec.interceptor())))
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	pub := c.Publisher(topic, &nervebus.PublisherConfig{DelayThreshold: ms(sc.LingerMs)})
	results := make([]*nervebus.PublishResult, sc.Publish)
	for i := range results {
		results[i] = pub.Publish(ctx, &nervebus.Message{Data: fmt.Appendf(nil, "m%d", i)})
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if _, err := r.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var want []int
	for _, n := range sc.Expect["packs"].([]any) {
		want = append(want, int(n.(float64)))
	}
	// The last pack goes out on Close, the others as they fill: the calls may start in any order.
	got := rec.sizes()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("pack sizes %v, want %v", got, want)
	}
	if got, want := lastSeq(t, ctx, c, topic), uint64(num(t, sc.Expect, "last_seq")); got != want {
		t.Errorf("last seq %d, want %d", got, want)
	}
}

// publishAll publishes msgs with a long linger, flushes, and returns each one's receipt and error.
func publishAll(t *testing.T, ctx context.Context, pub *nervebus.Publisher, msgs []scenarioMessage) ([]nervebus.Receipt, []error) {
	t.Helper()
	results := make([]*nervebus.PublishResult, len(msgs))
	for i, m := range msgs {
		results[i] = pub.Publish(ctx, m.message())
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	receipts := make([]nervebus.Receipt, len(msgs))
	errs := make([]error, len(msgs))
	for i, r := range results {
		receipts[i], errs[i] = r.Get(ctx)
	}
	return receipts, errs
}

// codeName is the gRPC status code name of err ("OK" for nil), as the scenarios spell it.
func codeName(err error) string {
	if err == nil {
		return "OK"
	}
	if c := nervebus.Code(err); int(c) < len(codeNames) {
		return codeNames[c]
	}
	return nervebus.Code(err).String()
}

// codeNames are the canonical names of the gRPC codes, by number (Code.String says
// "InvalidArgument").
var codeNames = []string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

func conformBadMessage(t *testing.T, b *testbroker.Broker, sc scenario) {
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	pub := c.Publisher(topic, &nervebus.PublisherConfig{DelayThreshold: ms(sc.LingerMs)})
	defer pub.Close(ctx)
	receipts, errs := publishAll(t, ctx, pub, sc.Messages)
	failed := sc.Expect["failed"].(map[string]any)
	var appended []string
	var seqs []uint64
	for i, err := range errs {
		want, fails := failed[fmt.Sprint(i)]
		if !fails {
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			appended = append(appended, sc.Messages[i].Data)
			seqs = append(seqs, receipts[i].Seq)
			continue
		}
		if codeName(err) != want {
			t.Fatalf("message %d: %v, want %s", i, err, want)
		}
		if msg := err.Error(); !strings.Contains(msg, sc.Expect["error_mentions"].(string)) ||
			strings.Contains(msg, sc.Expect["error_does_not_mention"].(string)) {
			t.Errorf("message %d: error %q should name the message itself", i, msg)
		}
	}
	wantAppended := sc.Expect["appended_in_order"].([]any)
	if fmt.Sprint(appended) != fmt.Sprint(wantAppended) || !slices.IsSorted(seqs) ||
		seqs[len(seqs)-1]-seqs[0] != uint64(len(seqs)-1) || lastSeq(t, ctx, c, topic) != uint64(len(seqs)) {
		t.Errorf("appended %v at seqs %v (last seq %d), want %v in order", appended, seqs, lastSeq(t, ctx, c, topic), wantAppended)
	}
}

func conformPackFailure(t *testing.T, b *testbroker.Broker, sc scenario) {
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	pub := c.Publisher(sc.Topic, &nervebus.PublisherConfig{DelayThreshold: ms(sc.LingerMs)})
	defer pub.Close(ctx)
	_, errs := publishAll(t, ctx, pub, sc.Messages)
	for i, err := range errs {
		if codeName(err) != sc.Expect["every_message_fails_with"] {
			t.Errorf("message %d: %v, want %v", i, err, sc.Expect["every_message_fails_with"])
		}
	}
}

func conformOrderingKeyPause(t *testing.T, b *testbroker.Broker, sc scenario) {
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	pub := c.Publisher(topic, &nervebus.PublisherConfig{DelayThreshold: ms(sc.LingerMs)})
	defer pub.Close(ctx)
	receipts, errs := publishAll(t, ctx, pub, sc.Messages)
	results := sc.Expect["results"].(map[string]any)
	seqOf := map[string]uint64{}
	for i, m := range sc.Messages {
		if got := codeName(errs[i]); got != results[m.Data] {
			t.Fatalf("%s: %v, want %v", m.Data, errs[i], results[m.Data])
		}
		if errs[i] == nil {
			seqOf[m.Data] = receipts[i].Seq
		}
	}
	if !errors.Is(errs[2], nervebus.ErrOrderingKeyPaused) {
		t.Errorf("%v is not ErrOrderingKeyPaused", errs[2])
	}
	_, err := pub.Publish(ctx, sc.ThenPublish.message()).Get(ctx)
	if got := codeName(err); got != sc.Expect["then"] || !errors.Is(err, nervebus.ErrOrderingKeyPaused) {
		t.Fatalf("%s on the paused key: %v, want %v", sc.ThenPublish.Data, err, sc.Expect["then"])
	}
	pub.ResumePublish(sc.AfterResumePublish.OrderingKey)
	resumed := pub.Publish(ctx, sc.AfterResumePublish.message())
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := resumed.Get(ctx)
	if got := codeName(err); got != sc.Expect["after_resume"] {
		t.Fatalf("%s after resume: %v", sc.AfterResumePublish.Data, err)
	}
	seqOf[sc.AfterResumePublish.Data] = rc.Seq
	for key, datas := range sc.Expect["appended_per_key"].(map[string]any) {
		var prev uint64
		for _, d := range datas.([]any) {
			seq, ok := seqOf[d.(string)]
			if !ok || seq <= prev {
				t.Errorf("key %s: %v not appended in order (seqs %v)", key, datas, seqOf)
			}
			prev = seq
		}
	}
	if got, want := lastSeq(t, ctx, c, topic), uint64(num(t, sc.Expect, "last_seq")); got != want {
		t.Errorf("last seq %d, want %d", got, want)
	}
}

func conformFlowControl(t *testing.T, b *testbroker.Broker, sc scenario) {
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	pub := c.Publisher(topic, &nervebus.PublisherConfig{
		DelayThreshold:         ms(sc.LingerMs),
		MaxOutstandingMessages: sc.OutstandingMaxMessages,
	})
	defer pub.Close(ctx)
	a := pub.Publish(ctx, &nervebus.Message{Data: []byte("a")})
	bb := pub.Publish(ctx, &nervebus.Message{Data: []byte("b")})
	// Publish waits for room until its context ends: an ended one stands for cancelling it
	// while it waits. Had c been taken into the pack, the flush would send it.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, errC := pub.Publish(cancelled, &nervebus.Message{Data: []byte("c")}).Get(ctx)
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	d := pub.Publish(ctx, &nervebus.Message{Data: []byte("d")})
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{"c": codeName(errC)}
	var seqs []uint64
	for name, r := range map[string]*nervebus.PublishResult{"a": a, "b": bb, "d": d} {
		rc, err := r.Get(ctx)
		got[name] = codeName(err)
		seqs = append(seqs, rc.Seq)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		if got[name] != sc.Expect[name] {
			t.Errorf("%s: %s, want %v", name, got[name], sc.Expect[name])
		}
	}
	if !errors.Is(errC, context.Canceled) {
		t.Errorf("c: %v, want context.Canceled", errC)
	}
	slices.Sort(seqs)
	if got, want := lastSeq(t, ctx, c, topic), uint64(num(t, sc.Expect, "last_seq")); got != want || seqs[2] != want {
		t.Errorf("last seq %d (seqs %v), want %d", got, seqs, want)
	}
	// a and b went out in one pack before d was published.
	if ra, _ := a.Get(ctx); ra.Seq >= seqs[2] {
		t.Errorf("a at seq %d after d", ra.Seq)
	}
}

// createSubscribed creates topic and its subscriptions (starting at the earliest message) and
// publishes msgs.
func createSubscribed(t *testing.T, ctx context.Context, c *nervebus.Client, topic string, cfg nervebus.SubscriptionConfig, subs []string, msgs []string) {
	t.Helper()
	admin := c.Admin()
	if _, err := admin.CreateTopic(ctx, topic, nil); err != nil {
		t.Fatal(err)
	}
	cfg.Start = nervebus.StartEarliest()
	for _, s := range subs {
		if _, err := admin.CreateSubscription(ctx, topic, s, &cfg); err != nil {
			t.Fatal(err)
		}
	}
	pub := c.Publisher(topic, nil)
	for _, m := range msgs {
		if _, err := pub.Publish(ctx, &nervebus.Message{Data: []byte(m)}).Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func conformAckConfirmation(t *testing.T, b *testbroker.Broker, sc scenario) {
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	createSubscribed(t, ctx, c, topic, nervebus.SubscriptionConfig{}, []string{"s"}, []string{sc.Messages[0].Data})
	type outcome struct{ first, second error }
	got := make(chan outcome, 1)
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{ConfirmAcks: sc.ConfirmAcks})
	stop := receiveInBackground(t, sub, func(ctx context.Context, m *nervebus.Message) {
		first := m.AckWithResult().Get(ctx)
		got <- outcome{first, m.AckWithResult().Get(ctx)}
	})
	var o outcome
	select {
	case o = <-got:
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	if o.first != nil || sc.Expect["first"] != "OK" {
		t.Errorf("first ack: %v, want %v", o.first, sc.Expect["first"])
	}
	if !errors.Is(o.second, nervebus.ErrMessageSettled) || sc.Expect["second"] != "ALREADY_SETTLED" {
		t.Errorf("second ack: %v, want %v", o.second, sc.Expect["second"])
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitStats(t, ctx, c.Admin(), topic, "s", "acked", func(s nervebus.SubscriptionStats) bool {
		return s.Floor == uint64(num(t, sc.Expect, "floor")) && s.Backlog == uint64(num(t, sc.Expect, "backlog"))
	})
}

func conformManualExtension(t *testing.T, b *testbroker.Broker, sc scenario) {
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	backoffMin, backoffMax := ms(sc.MinBackoffMs), ms(sc.MaxBackoffMs)
	createSubscribed(t, ctx, c, topic, nervebus.SubscriptionConfig{
		AckDeadline: ms(sc.AckDeadlineMs), MinBackoff: &backoffMin, MaxBackoff: &backoffMax,
	}, []string{"extended", "control"}, []string{"x"})
	noAutoExtension := &nervebus.SubscriberConfig{MaxExtension: -1}

	held := make(chan *nervebus.Message, 1)
	receiveInBackground(t, c.Subscriber(topic, "extended", noAutoExtension), func(_ context.Context, m *nervebus.Message) {
		if m.Attempt == 1 {
			m.ExtendDeadline(ms(sc.ExtendToMs))
			held <- m
		}
	})
	var m *nervebus.Message
	select {
	case m = <-held:
	case <-ctx.Done():
		t.Fatal("no delivery on the extended subscription")
	}
	// The control holds its copy without extension: each ack deadline, the broker takes it back.
	receiveInBackground(t, c.Subscriber(topic, "control", noAutoExtension), func(context.Context, *nervebus.Message) {})
	admin := c.Admin()
	want := uint64(num(t, sc.Expect, "control_redelivered_at_least"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := admin.GetStats(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		control, _ := st.Subscription("control")
		if control.Redelivered >= want {
			ext, _ := st.Subscription("extended")
			if ext.Redelivered != uint64(num(t, sc.Expect, "extended_redelivered")) ||
				ext.InFlight != uint64(num(t, sc.Expect, "extended_in_flight")) {
				t.Fatalf("extended subscription %+v after the control's %d redeliveries", ext, control.Redelivered)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control was redelivered %d times in 30 s", control.Redelivered)
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.Ack()
	waitStats(t, ctx, admin, topic, "extended", "acked", func(s nervebus.SubscriptionStats) bool {
		return s.Floor == uint64(num(t, sc.Expect, "extended_floor_after_ack"))
	})
}
