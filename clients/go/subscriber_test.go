package nervebus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// publishN publishes n messages "<prefix>-<i>" and waits for them.
func publishN(t *testing.T, ctx context.Context, c *nervebus.Client, topic, prefix string, n int) []nervebus.Receipt {
	t.Helper()
	pub := c.Publisher(topic, nil)
	results := make([]*nervebus.PublishResult, n)
	for i := range n {
		results[i] = pub.Publish(ctx, &nervebus.Message{Data: []byte(fmt.Sprintf("%s-%d", prefix, i))})
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	receipts := make([]nervebus.Receipt, n)
	for i, r := range results {
		rc, err := r.Get(ctx)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		receipts[i] = rc
	}
	return receipts
}

func TestNackWithDelayRedelivers(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	publishN(t, ctx, c, topic, "m", 1)

	type delivery struct {
		attempt int
		at      time.Time
	}
	var mu sync.Mutex
	var got []delivery
	done := make(chan struct{})
	const delay = 1200 * time.Millisecond
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
		mu.Lock()
		got = append(got, delivery{m.Attempt, time.Now()})
		n := len(got)
		mu.Unlock()
		if n == 1 {
			m.NackWithDelay(delay)
			return
		}
		m.Ack()
		close(done)
	})
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("no redelivery after the nack")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].attempt != 1 || got[1].attempt != 2 {
		t.Fatalf("deliveries %+v, want attempts 1 then 2", got)
	}
	if gap := got[1].at.Sub(got[0].at); gap < delay-100*time.Millisecond {
		t.Fatalf("redelivered after %v, before the nack delay %v", gap, delay)
	}
}

func TestWindowIsRespected(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	const n, window = 30, 3
	publishN(t, ctx, c, topic, "m", n)

	// The handler returns at once and acks later from another goroutine: only the window
	// bounds the messages held.
	var held, maxHeld atomic.Int32
	got := newCollector()
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{
		Start:                  nervebus.StartEarliest(),
		MaxOutstandingMessages: window,
	})
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
		h := held.Add(1)
		for {
			old := maxHeld.Load()
			if h <= old || maxHeld.CompareAndSwap(old, h) {
				break
			}
		}
		got.add(m)
		go func() {
			time.Sleep(40 * time.Millisecond)
			held.Add(-1)
			m.Ack()
		}()
	})
	msgs := got.wait(t, n, 30*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if maxHeld.Load() > window {
		t.Fatalf("%d messages held at once, window %d", maxHeld.Load(), window)
	}
	if maxHeld.Load() < window {
		t.Logf("only %d messages held at once (window %d)", maxHeld.Load(), window)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[string(m.Data)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages, want %d", len(seen), n)
	}

	// MaxConcurrentHandlers bounds running handlers below the window.
	var running, maxRunning atomic.Int32
	got2 := newCollector()
	sub2 := c.Subscriber(topic, "s2", &nervebus.SubscriberConfig{
		Start:                  nervebus.StartEarliest(),
		MaxOutstandingMessages: 10,
		MaxConcurrentHandlers:  2,
	})
	stop2 := receiveInBackground(t, sub2, func(_ context.Context, m *nervebus.Message) {
		r := running.Add(1)
		for {
			old := maxRunning.Load()
			if r <= old || maxRunning.CompareAndSwap(old, r) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		got2.add(m)
		m.Ack()
	})
	got2.wait(t, n, 30*time.Second)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if maxRunning.Load() > 2 {
		t.Fatalf("%d handlers ran at once, MaxConcurrentHandlers 2", maxRunning.Load())
	}
}

func TestDeadlineExtensionPreventsRedelivery(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	publishN(t, ctx, c, topic, "slow", 1)

	// The ack deadline is 1 s; the handler takes 3.5 s. Extensions keep the lease.
	var deliveries atomic.Int32
	acked := make(chan struct{})
	sub := c.Subscriber(topic, "extended", &nervebus.SubscriberConfig{
		Start:       nervebus.StartEarliest(),
		AckDeadline: time.Second,
	})
	stop := receiveInBackground(t, sub, func(ctx context.Context, m *nervebus.Message) {
		if deliveries.Add(1) > 1 {
			m.Ack()
			return
		}
		time.Sleep(3500 * time.Millisecond)
		m.Ack()
		close(acked)
	})
	<-acked
	time.Sleep(1500 * time.Millisecond) // a lease that had run out would be redelivered by now
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := deliveries.Load(); n != 1 {
		t.Fatalf("%d deliveries of a message whose lease was extended, want 1", n)
	}

	// Without extensions the same handler sees the message again.
	var again atomic.Int32
	redelivered := make(chan int, 1)
	sub2 := c.Subscriber(topic, "not-extended", &nervebus.SubscriberConfig{
		Start:        nervebus.StartEarliest(),
		AckDeadline:  time.Second,
		MaxExtension: -1,
	})
	stop2 := receiveInBackground(t, sub2, func(ctx context.Context, m *nervebus.Message) {
		if again.Add(1) > 1 {
			m.Ack()
			select {
			case redelivered <- m.Attempt:
			default:
			}
			return
		}
		time.Sleep(3500 * time.Millisecond)
		m.Ack()
	})
	select {
	case attempt := <-redelivered:
		if attempt != 2 {
			t.Fatalf("redelivery attempt %d, want 2", attempt)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no redelivery without extensions: the test does not show what it should")
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func TestReconnectAfterBrokerRestart(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	publishN(t, ctx, c, topic, "before", 5)

	got := newCollector()
	var acks []*nervebus.AckResult
	var mu sync.Mutex
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{
		Start:            nervebus.StartEarliest(),
		ConfirmAcks:      true,
		ReconnectBackoff: nervebus.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	})
	receiveErr := make(chan error, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		receiveErr <- sub.Receive(rctx, func(_ context.Context, m *nervebus.Message) {
			got.add(m)
			r := m.AckWithResult()
			mu.Lock()
			acks = append(acks, r)
			mu.Unlock()
		})
	}()
	got.wait(t, 5, 20*time.Second)
	mu.Lock()
	for i, r := range acks {
		if err := r.Get(ctx); err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
	}
	mu.Unlock()

	b.Restart()
	publishN(t, ctx, c, topic, "after", 5)
	msgs := got.wait(t, 10, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	msgs = got.snapshot()
	// Handlers run concurrently: compare sets, before and after the restart.
	for i, m := range msgs {
		prefix := "before"
		if i >= 5 {
			prefix = "after"
		}
		if m.Attempt != 1 || len(m.Data) < len(prefix) || string(m.Data[:len(prefix)]) != prefix {
			t.Fatalf("message %d: %q attempt %d, want %s-* attempt 1 (acked messages must not come back)", i, m.Data, m.Attempt, prefix)
		}
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		seen[string(m.Data)] = true
	}
	if len(msgs) != 10 || len(seen) != 10 {
		t.Fatalf("%d messages (%d distinct), want 10", len(msgs), len(seen))
	}
	select {
	case err := <-receiveErr:
		t.Fatalf("Receive returned during the restart: %v", err)
	default:
	}
	cancel()
	if err := <-receiveErr; err != nil {
		t.Fatalf("Receive: %v", err)
	}
}

func TestGracefulStop(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	publishN(t, ctx, c, topic, "m", 4)

	// Cancel while two handlers run: Receive waits for them and sends their acks.
	started := make(chan struct{}, 4)
	var finished atomic.Int32
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{
		Start:                  nervebus.StartEarliest(),
		MaxOutstandingMessages: 2,
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sub.Receive(rctx, func(hctx context.Context, m *nervebus.Message) {
			started <- struct{}{}
			time.Sleep(500 * time.Millisecond)
			if hctx.Err() != nil {
				t.Errorf("handler context cancelled during the shutdown timeout")
			}
			finished.Add(1)
			m.Ack()
		})
	}()
	<-started
	<-started
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Receive after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Receive did not return after cancel")
	}
	if finished.Load() != 2 {
		t.Fatalf("%d handlers finished before Receive returned, want 2", finished.Load())
	}

	// The two acked messages are gone; the two others come next, as first deliveries or
	// immediate redeliveries. A handler that overruns the shutdown timeout is nacked.
	got := newCollector()
	sub2 := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{ShutdownTimeout: 200 * time.Millisecond})
	rctx2, cancel2 := context.WithCancel(ctx)
	done2 := make(chan error, 1)
	var handlerCancelled atomic.Bool
	go func() {
		done2 <- sub2.Receive(rctx2, func(hctx context.Context, m *nervebus.Message) {
			got.add(m)
			<-hctx.Done() // stuck until the shutdown timeout cancels it
			handlerCancelled.Store(true)
			m.Ack() // too late: ignored
		})
	}()
	first := got.wait(t, 2, 10*time.Second)
	seen := map[string]bool{string(first[0].Data): true, string(first[1].Data): true}
	if !seen["m-2"] || !seen["m-3"] {
		t.Fatalf("after the stop got %q and %q, want m-2 and m-3", first[0].Data, first[1].Data)
	}
	start := time.Now()
	cancel2()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Receive took %v to stop with a 200 ms shutdown timeout", d)
	}

	// Nacked at the timeout: delivered again at once.
	got3 := newCollector()
	sub3 := c.Subscriber(topic, "s", nil)
	stop3 := receiveInBackground(t, sub3, func(_ context.Context, m *nervebus.Message) {
		got3.add(m)
		m.Ack()
	})
	again := got3.wait(t, 2, 10*time.Second)
	for _, m := range again {
		if m.Attempt < 2 {
			t.Fatalf("%q attempt %d after a nack, want ≥ 2", m.Data, m.Attempt)
		}
	}
	if err := stop3(); err != nil {
		t.Fatal(err)
	}
	if !handlerCancelled.Load() {
		t.Fatal("the overrunning handler's context was not cancelled")
	}
}

func TestReceiveBadInput(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)

	cases := []struct {
		name, topic, subscription string
		cfg                       *nervebus.SubscriberConfig
	}{
		{"empty topic", "", "s", nil},
		{"empty subscription", "t", "", nil},
		{"bad subscription", "t", "no spaces", nil},
		{"byte window under the max message size", "t", "s", &nervebus.SubscriberConfig{MaxOutstandingBytes: 1000}},
		{"ack deadline too short", "t", "s", &nervebus.SubscriberConfig{AckDeadline: 10 * time.Millisecond}},
	}
	for _, tc := range cases {
		sub := c.Subscriber(tc.topic, tc.subscription, tc.cfg)
		err := sub.Receive(ctx, func(context.Context, *nervebus.Message) {})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%s: Receive returned %v, want INVALID_ARGUMENT", tc.name, err)
		}
		var se interface{ GRPCStatus() *status.Status }
		if !errors.As(err, &se) || se.GRPCStatus().Message() == "" {
			t.Fatalf("%s: %v does not carry the broker's status message", tc.name, err)
		}
	}

	sub := c.Subscriber("t", "busy", nil)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Receive(rctx, func(context.Context, *nervebus.Message) {}) }()
	time.Sleep(200 * time.Millisecond)
	if err := sub.Receive(ctx, func(context.Context, *nervebus.Message) {}); !errors.Is(err, nervebus.ErrReceiveInProgress) {
		t.Fatalf("second Receive: %v, want ErrReceiveInProgress", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestOrderingKeysRunOneAtATime(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	pub := c.Publisher(topic, nil)
	const perKey = 10
	for i := range perKey {
		for _, key := range []string{"a", "b", "c"} {
			pub.Publish(ctx, &nervebus.Message{Data: []byte(fmt.Sprint(i)), OrderingKey: key})
		}
	}
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	active := map[string]bool{}
	next := map[string]int{}
	got := newCollector()
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
		mu.Lock()
		if active[m.OrderingKey] {
			t.Errorf("two handlers of key %q at once", m.OrderingKey)
		}
		active[m.OrderingKey] = true
		if want := fmt.Sprint(next[m.OrderingKey]); string(m.Data) != want {
			t.Errorf("key %q: got %s, want %s", m.OrderingKey, m.Data, want)
		}
		next[m.OrderingKey]++
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		active[m.OrderingKey] = false
		mu.Unlock()
		got.add(m)
		m.Ack()
	})
	got.wait(t, 3*perKey, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A message whose handler runs while the stream breaks is redelivered by the broker to the new
// stream; the subscriber takes the new lease instead of running the handler twice, and the
// handler's ack on the new stream settles it.
func TestReconnectKeepsInFlightMessage(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	publishN(t, ctx, c, topic, "slow", 1)

	// The handler acks once the broker restarted and leased the message again to the
	// reconnected stream: the client adopts that redelivery instead of handling it twice.
	release := make(chan struct{})
	calls, acked, stop := ackWhenReleased(t, ctx, c, topic, release)
	b.Restart()
	waitRedelivered(t, ctx, c.Admin(), topic, "s")
	close(release)
	if err := <-acked; err != nil {
		t.Fatalf("ack after the restart: %v", err)
	}
	checkHandledOnceAndAcked(t, c, topic, calls, stop)
}

// TestAckWhileBrokerDownCounts acks an in-flight message while the broker is down: the ack goes
// out on the new stream, ahead of the message's redelivery. The restarted broker took it for
// an ack of a message never delivered and ignored it (it had not persisted that plain first
// deliveries had gone out); TestReconnectKeepsInFlightMessage failed so whenever the restart
// outlasted its handler's sleep.
func TestAckWhileBrokerDownCounts(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	publishN(t, ctx, c, topic, "slow", 1)

	release := make(chan struct{})
	calls, acked, stop := ackWhenReleased(t, ctx, c, topic, release)
	b.Stop()
	close(release)
	b.Start()
	if err := <-acked; err != nil {
		t.Fatalf("ack made while the broker was down: %v", err)
	}
	checkHandledOnceAndAcked(t, c, topic, calls, stop)
}

// ackWhenReleased receives topic on subscription "s" (confirmed acks, fast reconnects) with a
// handler that, on its first message, waits for release and acks; the ack's result comes on
// acked. It returns once that handler runs. calls counts the handler's runs; stop ends Receive.
func ackWhenReleased(t *testing.T, ctx context.Context, c *nervebus.Client, topic string, release <-chan struct{}) (calls *atomic.Int32, acked <-chan error, stop func() error) {
	t.Helper()
	calls = &atomic.Int32{}
	started := make(chan struct{})
	results := make(chan error, 1)
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{
		Start:            nervebus.StartEarliest(),
		ConfirmAcks:      true,
		ReconnectBackoff: nervebus.Backoff{Initial: 50 * time.Millisecond, Max: 300 * time.Millisecond},
	})
	stop = receiveInBackground(t, sub, func(hctx context.Context, m *nervebus.Message) {
		if calls.Add(1) > 1 {
			return
		}
		close(started)
		select {
		case <-release:
			results <- m.AckWithResult().Get(ctx)
		case <-hctx.Done(): // the test failed before the release
		}
	})
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatalf("the message was not delivered: %v", ctx.Err())
	}
	return calls, results, stop
}

// waitRedelivered waits until the broker leased subscription sub's message again, to a
// connected stream, after a restart (its redelivery count starts at 0 then).
func waitRedelivered(t *testing.T, ctx context.Context, admin *nervebus.Admin, topic, sub string) {
	t.Helper()
	for {
		// Errors are retried: the client may still be reconnecting to the restarted broker.
		if st, err := admin.GetStats(ctx, topic); err == nil {
			if ss, ok := st.Subscription(sub); ok && ss.InFlight == 1 && len(ss.Consumers) == 1 {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the broker did not lease the message again after the restart: %v", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkHandledOnceAndAcked stops the first subscriber (stop) and checks that its handler ran
// once and that the ack counted: a new subscriber of "s" gets nothing.
func checkHandledOnceAndAcked(t *testing.T, c *nervebus.Client, topic string, calls *atomic.Int32, stop func() error) {
	t.Helper()
	time.Sleep(500 * time.Millisecond) // a second run of the handler would show by now
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	again := make(chan *nervebus.Message, 1)
	stop2 := receiveInBackground(t, c.Subscriber(topic, "s", nil), func(_ context.Context, m *nervebus.Message) {
		again <- m
		m.Ack()
	})
	select {
	case m := <-again:
		t.Fatalf("message %q (attempt %d) delivered again after its ack", m.Data, m.Attempt)
	case <-time.After(time.Second):
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func TestTerminateStopsRedelivery(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)
	topic := topicName(t)
	publishN(t, ctx, c, topic, "m", 2)

	got := newCollector()
	stop := receiveInBackground(t, c.Subscriber(topic, "s", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()}),
		func(_ context.Context, m *nervebus.Message) {
			got.add(m)
			if string(m.Data) == "m-0" {
				m.Terminate()
			} else {
				m.Nack() // redelivered after the subscription's backoff
			}
		})
	got.wait(t, 2, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	again := newCollector()
	stop2 := receiveInBackground(t, c.Subscriber(topic, "s", nil), func(_ context.Context, m *nervebus.Message) {
		again.add(m)
		m.Ack()
	})
	msgs := again.wait(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	msgs = again.snapshot()
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || string(msgs[0].Data) != "m-1" || msgs[0].Attempt != 2 {
		t.Fatalf("after terminate and nack got %d messages, first %q attempt %d; want only m-1, attempt 2",
			len(msgs), msgs[0].Data, msgs[0].Attempt)
	}
}

// Cancelling Receive while it waits to reconnect to a stopped broker returns at once.
func TestStopWhileBrokerIsDown(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	sub := c.Subscriber(topicName(t), "s", &nervebus.SubscriberConfig{
		ReconnectBackoff: nervebus.Backoff{Initial: 5 * time.Second, Max: 10 * time.Second},
	})
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) { m.Ack() })
	time.Sleep(300 * time.Millisecond)
	b.Stop()
	time.Sleep(500 * time.Millisecond) // Receive is in its reconnect backoff now
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Receive: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Receive took %v to return after cancel", d)
	}
}
