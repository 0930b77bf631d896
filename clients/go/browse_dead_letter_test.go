package nervebus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// deliveriesOf is each subscription's "State DeadLetterTopic" of one message, in the
// broker's order (by subscription name).
func deliveriesOf(m nervebus.StoredMessage) string {
	var out []string
	for _, d := range m.Deliveries {
		out = append(out, fmt.Sprintf("%s: %v %q", d.Subscription, d.State, d.DeadLetterTopic))
	}
	return fmt.Sprint(out)
}

// waitSettled polls GetMessage until seq is acked or dead-lettered on sub.
func waitSettled(t *testing.T, ctx context.Context, admin *nervebus.Admin, topic, sub string, seq uint64) {
	t.Helper()
	for {
		m, err := admin.GetMessage(ctx, topic, seq)
		if err != nil {
			t.Fatalf("GetMessage %d: %v", seq, err)
		}
		for _, d := range m.Deliveries {
			if d.Subscription == sub && (d.State == nervebus.DeliveryAcked || d.State == nervebus.DeliveryDeadLettered) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("seq %d never settled on %s: %s", seq, sub, deliveriesOf(*m))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestAdminBrowseDeadLettered: GetMessage and ListMessages tell a dead-lettered message
// (DeliveryDeadLettered, with the dead-letter topic, or "" when dropped) from an acked one
// (DeliveryAcked), and still do after a broker restart: the state is stored.
func TestAdminBrowseDeadLettered(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	admin := c.Admin()
	ctx := testContext(t, 90*time.Second)
	topic := topicName(t)
	dlq := topic + ".dlq"
	if _, err := admin.CreateTopic(ctx, topic, nil); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	zero := time.Duration(0)
	// "w" delivers a message twice, then moves it to dlq; "drop" has no dead-letter topic, so a
	// message out of its one attempt is dropped.
	if _, err := admin.CreateSubscription(ctx, topic, "w", &nervebus.SubscriptionConfig{
		MaxDeliveryAttempts: 2, DeadLetterTopic: dlq, MinBackoff: &zero, MaxBackoff: &zero, Start: nervebus.StartEarliest(),
	}); err != nil {
		t.Fatalf("CreateSubscription w: %v", err)
	}
	if _, err := admin.CreateSubscription(ctx, topic, "drop", &nervebus.SubscriptionConfig{
		MaxDeliveryAttempts: 1, Start: nervebus.StartEarliest(),
	}); err != nil {
		t.Fatalf("CreateSubscription drop: %v", err)
	}
	publishN(t, ctx, c, topic, "m", 2) // seq 1 "m-0" is nacked, seq 2 "m-1" acked

	for _, sub := range []string{"w", "drop"} {
		got := newCollector()
		stop := receiveInBackground(t, c.Subscriber(topic, sub, nil), func(_ context.Context, m *nervebus.Message) {
			got.add(m)
			if m.Seq == 1 {
				m.Nack()
			} else {
				m.Ack()
			}
		})
		waitSettled(t, ctx, admin, topic, sub, 1)
		waitSettled(t, ctx, admin, topic, sub, 2)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		want := map[string]int{"w": 3, "drop": 2}[sub]
		if n := len(got.snapshot()); n != want {
			t.Fatalf("%s: %d deliveries, want %d (seq 1 out of attempts, seq 2 once)", sub, n, want)
		}
	}

	check := func(when string, admin *nervebus.Admin) {
		t.Helper()
		dead, err := admin.GetMessage(ctx, topic, 1)
		if err != nil {
			t.Fatalf("%s: GetMessage 1: %v", when, err)
		}
		want := fmt.Sprint([]string{`drop: dead-lettered ""`, fmt.Sprintf("w: dead-lettered %q", dlq)})
		if got := deliveriesOf(*dead); got != want {
			t.Fatalf("%s: seq 1 deliveries %s, want %s", when, got, want)
		}
		if dead.Deliveries[1].State != nervebus.DeliveryDeadLettered {
			t.Fatalf("%s: seq 1 on w: state %d, want DeliveryDeadLettered", when, dead.Deliveries[1].State)
		}
		acked, err := admin.GetMessage(ctx, topic, 2)
		if err != nil {
			t.Fatalf("%s: GetMessage 2: %v", when, err)
		}
		wantAcked := fmt.Sprint([]string{`drop: acked ""`, `w: acked ""`})
		if got := deliveriesOf(*acked); got != wantAcked {
			t.Fatalf("%s: seq 2 deliveries %s, want %s", when, got, wantAcked)
		}
		page, err := admin.ListMessages(ctx, topic, nervebus.MessageQuery{Deliveries: true})
		if err != nil {
			t.Fatalf("%s: ListMessages: %v", when, err)
		}
		if len(page.Messages) != 2 || deliveriesOf(page.Messages[0]) != want || deliveriesOf(page.Messages[1]) != wantAcked {
			t.Fatalf("%s: ListMessages: %+v", when, page.Messages)
		}
	}
	check("live", admin)
	b.Restart()
	// A new client: the old one's connection may still be backing off from the restart.
	check("after a restart", newClient(t, b).Admin())
	moved, err := newClient(t, b).Admin().ListMessages(ctx, dlq, nervebus.MessageQuery{})
	if err != nil || len(moved.Messages) != 1 || string(moved.Messages[0].Data) != "m-0" {
		t.Fatalf("the dead-letter topic: %+v, %v; want m-0 only", moved, err)
	}
}
