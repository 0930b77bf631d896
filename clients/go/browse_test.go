package nervebus_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// TestAdminBrowseMessages lists and finds stored messages through a real broker, and reads a
// subscription's state of one of them; browsing consumes nothing.
func TestAdminBrowseMessages(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	admin := c.Admin()
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	if _, err := admin.CreateTopic(ctx, topic, nil); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if _, err := admin.CreateSubscription(ctx, topic, "audit", &nervebus.SubscriptionConfig{Start: nervebus.StartEarliest()}); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	// One at a time: batches of different ordering keys may otherwise land in any order.
	pub := c.Publisher(topic, nil)
	var traces []string
	for i := range 10 {
		rc, err := pub.Publish(ctx, &nervebus.Message{
			Data:        []byte(fmt.Sprintf("m%d", i+1)),
			Attributes:  map[string]string{"even": fmt.Sprint(i%2 == 1)},
			OrderingKey: fmt.Sprintf("k%d", i%3),
		}).Get(ctx)
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		traces = append(traces, rc.TraceID)
	}

	page, err := admin.ListMessages(ctx, topic, nervebus.MessageQuery{Attributes: map[string]string{"even": "true"}, PageSize: 3})
	if err != nil {
		t.Fatalf("ListMessages: %v", err)
	}
	var seqs []uint64
	for _, m := range page.Messages {
		seqs = append(seqs, m.Seq)
	}
	if fmt.Sprint(seqs) != "[2 4 6]" || page.NextSeq != 7 {
		t.Fatalf("ListMessages even: seqs %v next %d", seqs, page.NextSeq)
	}
	byTrace, err := admin.ListMessages(ctx, topic, nervebus.MessageQuery{TraceID: traces[4], Deliveries: true})
	if err != nil {
		t.Fatalf("ListMessages by trace: %v", err)
	}
	if len(byTrace.Messages) != 1 {
		t.Fatalf("ListMessages by trace: %+v", byTrace)
	}
	m := byTrace.Messages[0]
	if m.Seq != 5 || string(m.Data) != "m5" || m.OrderingKey != "k1" || m.TraceID != traces[4] || m.PublishTime.IsZero() {
		t.Fatalf("message by trace: %+v", m)
	}
	if len(m.Deliveries) != 1 || m.Deliveries[0].Subscription != "audit" || m.Deliveries[0].State != nervebus.DeliveryNotDelivered {
		t.Fatalf("deliveries: %+v", m.Deliveries)
	}
	one, err := admin.GetMessage(ctx, topic, 10)
	if err != nil {
		t.Fatalf("GetMessage: %v", err)
	}
	if string(one.Data) != "m10" || one.Deliveries[0].State.String() != "not delivered" {
		t.Fatalf("GetMessage: %+v", one)
	}
	_, err = admin.GetMessage(ctx, topic, 11)
	wantCode(t, "GetMessage beyond the log", err, codes.NotFound, "never published")
	_, err = admin.ListMessages(ctx, topic, nervebus.MessageQuery{ScanLimit: 1_000_000})
	wantCode(t, "ListMessages unbounded", err, codes.InvalidArgument, "scan_limit")
	st, err := admin.GetStats(ctx, topic)
	if err != nil {
		t.Fatalf("GetStats: %v", err)
	}
	if ss, _ := st.Subscription("audit"); ss.Backlog != 10 || ss.Floor != 0 {
		t.Fatalf("browsing moved the subscription: %+v", ss)
	}
}
