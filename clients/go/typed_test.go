package nervebus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	nervebus "github.com/nervebus/nervebus/clients/go"
	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// TestTypedTopic types a topic with a generated message type (nervebusv1.Message stands for
// the user's own), publishes values through a TypedPublisher, sees the broker refuse a payload
// of another shape, and receives the values through a TypedHandler.
func TestTypedTopic(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	admin := c.Admin()
	ctx := testContext(t, 60*time.Second)
	topic := topicName(t)
	if _, err := admin.CreateTopic(ctx, topic, nil); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	schema, err := admin.SetTopicSchema(ctx, topic, &nervebusv1.Message{})
	if err != nil {
		t.Fatalf("SetTopicSchema: %v", err)
	}
	if schema.MessageType != "nervebus.v1.Message" || len(schema.DescriptorSet) == 0 {
		t.Fatalf("SetTopicSchema: %+v", schema)
	}
	got, err := admin.GetTopicSchema(ctx, topic)
	if err != nil || got.MessageType != "nervebus.v1.Message" {
		t.Fatalf("GetTopicSchema: %+v, %v", got, err)
	}

	typed := nervebus.NewTypedPublisher[*nervebusv1.Message](c.Publisher(topic, nil))
	for _, key := range []string{"a", "b", "c"} {
		if _, err := typed.Publish(ctx, &nervebusv1.Message{OrderingKey: key, Data: []byte("v-" + key)}, &nervebus.Message{Attributes: map[string]string{"k": key}}).Get(ctx); err != nil {
			t.Fatalf("typed Publish: %v", err)
		}
	}
	raw := c.Publisher(topic, nil)
	_, err = raw.Publish(ctx, &nervebus.Message{Data: []byte{0x0a, 0x05, 0x01}}).Get(ctx)
	wantCode(t, "a payload that is not a nervebus.v1.Message", err, codes.InvalidArgument, "message.data: does not parse as nervebus.v1.Message")

	sub := c.Subscriber(topic, "typed", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest()})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var keys []string
	done := make(chan struct{})
	go func() {
		_ = sub.Receive(rctx, nervebus.TypedHandler(func(_ context.Context, v *nervebusv1.Message, m *nervebus.Message) {
			mu.Lock()
			defer mu.Unlock()
			if string(v.GetData()) != "v-"+v.GetOrderingKey() || m.Attributes["k"] != v.GetOrderingKey() {
				t.Errorf("received %v with attributes %v", v, m.Attributes)
			}
			keys = append(keys, v.GetOrderingKey())
			m.Ack()
			if len(keys) == 3 {
				close(done)
			}
		}))
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("received %v of 3 typed values", keys)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 3 {
		t.Fatalf("received %v", keys)
	}
}
