package nervebus_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

func TestStreamPublisherConfirmsInOrderWithinCredit(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)

	s, err := c.StreamPublisher(ctx, topic, &nervebus.StreamPublisherConfig{MaxMessages: 200})
	if err != nil {
		t.Fatalf("StreamPublisher: %v", err)
	}
	if m, _ := s.Granted(); m != 200 {
		t.Fatalf("granted %d messages, want 200", m)
	}
	// 20 batches of 50 from 4 goroutines: more than the credit at once, so Send waits for it.
	results := make([]*nervebus.BatchResult, 0, 20)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range 5 {
				msgs := make([]*nervebus.Message, 50)
				for i := range msgs {
					msgs[i] = &nervebus.Message{Data: []byte(fmt.Sprintf("g%d-b%d-%d", g, b, i))}
				}
				r, err := s.Send(ctx, msgs)
				if err != nil {
					t.Errorf("Send: %v", err)
					return
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	seen := map[uint64]bool{}
	for _, r := range results {
		receipts, err := r.Get(ctx)
		if err != nil {
			t.Fatalf("batch: %v", err)
		}
		if len(receipts) != 50 {
			t.Fatalf("%d receipts, want 50", len(receipts))
		}
		for i, rc := range receipts {
			if rc.Outcome != nervebus.OutcomeAppended || len(rc.TraceID) != 32 || rc.MessageID == "" {
				t.Fatalf("receipt %+v", rc)
			}
			if i > 0 && rc.Seq != receipts[i-1].Seq+1 {
				t.Fatalf("seqs within a batch are not consecutive: %d after %d", rc.Seq, receipts[i-1].Seq)
			}
			seen[rc.Seq] = true
		}
	}
	for seq := uint64(1); seq <= 1000; seq++ {
		if !seen[seq] {
			t.Fatalf("seq %d missing: want 1…1000 exactly once", seq)
		}
	}
}

func TestStreamPublisherErrors(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 30*time.Second)

	if _, err := c.StreamPublisher(ctx, "no spaces", nil); nervebus.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad topic: %v, want INVALID_ARGUMENT", err)
	}
	s, err := c.StreamPublisher(ctx, topicName(t), &nervebus.StreamPublisherConfig{MaxMessages: 2})
	if err != nil {
		t.Fatalf("StreamPublisher: %v", err)
	}
	three := []*nervebus.Message{{Data: []byte("1")}, {Data: []byte("2")}, {Data: []byte("3")}}
	if _, err := s.Send(ctx, three); nervebus.Code(err) != codes.InvalidArgument {
		t.Fatalf("batch over the whole credit: %v, want INVALID_ARGUMENT", err)
	}
	// A message the broker refuses ends the stream with its precise status.
	r, err := s.Send(ctx, []*nervebus.Message{{Data: []byte("x"), Delay: 8 * 24 * time.Hour}})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := r.Get(ctx); nervebus.Code(err) != codes.InvalidArgument {
		t.Fatalf("delay over 7 days: %v, want INVALID_ARGUMENT", err)
	}
	if err := s.Close(ctx); nervebus.Code(err) != codes.InvalidArgument {
		t.Fatalf("Close after the error: %v", err)
	}
}

func TestStreamPublisherFireAndForgetOnEphemeralTopic(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	if _, err := c.Admin().CreateTopic(ctx, topic, &nervebus.TopicConfig{Ephemeral: true}); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	got := newCollector()
	sub := c.Subscriber(topic, "live", nil)
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
		got.add(m)
		m.Ack()
	})
	defer stop()
	// Ephemeral messages go only to consumers connected now: wait until the subscriber is.
	for attached := false; !attached; time.Sleep(20 * time.Millisecond) {
		st, err := c.Admin().GetStats(ctx, topic)
		if err != nil {
			t.Fatalf("GetStats: %v", err)
		}
		ss, found := st.Subscription("live")
		attached = found && len(ss.Consumers) == 1
	}
	s, err := c.StreamPublisher(ctx, topic, &nervebus.StreamPublisherConfig{NoConfirms: true, MaxMessages: 10})
	if err != nil {
		t.Fatalf("StreamPublisher: %v", err)
	}
	for i := range 50 {
		r, err := s.Send(ctx, []*nervebus.Message{{Data: []byte(fmt.Sprint(2 * i))}, {Data: []byte(fmt.Sprint(2*i + 1))}})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if receipts, err := r.Get(ctx); err != nil || receipts != nil {
			t.Fatalf("fire and forget: %v %v", receipts, err)
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	msgs := got.wait(t, 100, 20*time.Second)
	// Handlers run concurrently: the stream's order is the seq order.
	slices.SortFunc(msgs, func(a, b *nervebus.Message) int { return cmp.Compare(a.Seq, b.Seq) })
	for i, m := range msgs {
		if string(m.Data) != fmt.Sprint(i) {
			t.Fatalf("message %d is %q", i, m.Data)
		}
	}
}

func TestPriorityUrgentBeforeBulkBacklog(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	pub := c.Publisher(topic, nil)
	var last *nervebus.PublishResult
	for i := range 30 {
		last = pub.Publish(ctx, &nervebus.Message{Data: []byte(fmt.Sprint("bulk", i)), Priority: nervebus.PriorityBulk})
	}
	if _, err := last.Get(ctx); err != nil {
		t.Fatalf("bulk: %v", err)
	}
	if _, err := pub.Publish(ctx, &nervebus.Message{Data: []byte("urgent"), Priority: nervebus.PriorityUrgent}).Get(ctx); err != nil {
		t.Fatalf("urgent: %v", err)
	}
	if _, err := pub.Publish(ctx, &nervebus.Message{Data: []byte("bad"), Priority: 7}).Get(ctx); nervebus.Code(err) != codes.InvalidArgument {
		t.Fatalf("priority 7: %v, want INVALID_ARGUMENT", err)
	}
	got := newCollector()
	sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest(), MaxOutstandingMessages: 1})
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
		got.add(m)
		m.Ack()
	})
	defer stop()
	first := got.wait(t, 1, 20*time.Second)[0]
	if string(first.Data) != "urgent" || first.Priority != nervebus.PriorityUrgent {
		t.Fatalf("first delivery %q (priority %d), want the urgent message", first.Data, first.Priority)
	}
}

// storedData returns the data of every stored message of topic, read with the message browser.
func storedData(ctx context.Context, t *testing.T, c *nervebus.Client, topic string) []string {
	t.Helper()
	var out []string
	from := uint64(1)
	for {
		page, err := c.Admin().ListMessages(ctx, topic, nervebus.MessageQuery{FromSeq: from, PageSize: 1000})
		if err != nil {
			t.Fatalf("ListMessages: %v", err)
		}
		for _, m := range page.Messages {
			out = append(out, string(m.Data))
		}
		if page.NextSeq == 0 {
			return out
		}
		from = page.NextSeq
	}
}

func TestStreamPublisherReopensAfterBrokerKillStoringConfirmedBatchesOnce(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 90*time.Second)
	topic := topicName(t)
	s, err := c.StreamPublisher(ctx, topic, &nervebus.StreamPublisherConfig{
		MaxMessages:      200,
		ReconnectBackoff: nervebus.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("StreamPublisher: %v", err)
	}
	const batches, size = 60, 50
	results := make([]*nervebus.BatchResult, 0, batches)
	for n := range batches {
		msgs := make([]*nervebus.Message, size)
		for i := range msgs {
			msgs[i] = &nervebus.Message{Data: []byte(fmt.Sprintf("b%d-%d", n, i))}
		}
		r, err := s.Send(ctx, msgs)
		if err != nil {
			t.Fatalf("Send %d: %v", n, err)
		}
		results = append(results, r)
		if n == 20 {
			// Batches are in flight (4 fit the credit): the broker dies under them.
			if _, err := results[10].Get(ctx); err != nil {
				t.Fatalf("batch 10: %v", err)
			}
			b.Kill()
			time.Sleep(300 * time.Millisecond)
			b.Start()
		}
	}
	seqs := map[uint64]bool{}
	for n, r := range results {
		receipts, err := r.Get(ctx)
		if err != nil {
			t.Fatalf("batch %d failed: %v", n, err)
		}
		for _, x := range receipts {
			seqs[x.Seq] = true
		}
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(seqs) != batches*size {
		t.Fatalf("%d distinct seqs in the receipts, want %d", len(seqs), batches*size)
	}
	stored := storedData(ctx, t, c, topic)
	counts := map[string]int{}
	for _, d := range stored {
		counts[d]++
	}
	if len(stored) != batches*size {
		t.Fatalf("%d messages stored, want %d (each confirmed one once)", len(stored), batches*size)
	}
	for n := range batches {
		for i := range size {
			if k := fmt.Sprintf("b%d-%d", n, i); counts[k] != 1 {
				t.Fatalf("%s stored %d times", k, counts[k])
			}
		}
	}
}

func TestStreamPublisherFailsBatchesAfterReconnectDeadline(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	ctx := testContext(t, 60*time.Second)
	s, err := c.StreamPublisher(ctx, topicName(t), &nervebus.StreamPublisherConfig{
		ReconnectDeadline: time.Second,
		ReconnectBackoff:  nervebus.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("StreamPublisher: %v", err)
	}
	b.Kill()
	r, err := s.Send(ctx, []*nervebus.Message{{Data: []byte("while down")}})
	if err == nil {
		_, err = r.Get(ctx)
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("batch while the broker is down: %v, want Unavailable after the deadline", err)
	}
	if _, err := s.Send(ctx, []*nervebus.Message{{Data: []byte("after")}}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Send after the failure: %v, want Unavailable", err)
	}
}
