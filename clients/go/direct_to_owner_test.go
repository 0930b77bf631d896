package nervebus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// waitUntil polls cond every 25 ms until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Three brokers on one MariaDB database (--cluster); the client is given the first one, the
// topic is owned by another, which is then killed.
func TestDirectToOwnerFollowsTheTopicWhenItsOwnerIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB and three brokers")
	}
	store := testbroker.StartMariaDB(t) + "go_client_direct" // the broker creates the database
	flags := []string{"--cluster", "--store", store, "--lease-ttl-ms", "2000", "--lease-renew-ms", "500"}
	brokers := []*testbroker.Broker{testbroker.Start(t, flags...), testbroker.Start(t, flags...), testbroker.Start(t, flags...)}
	home := brokers[0]
	ctx := testContext(t, 90*time.Second)
	plain := newClient(t, home)
	c := newClient(t, home, nervebus.WithDirectToOwner())
	locate := func(topic string) string {
		addr, err := plain.Admin().LocateTopic(ctx, topic)
		if err != nil {
			t.Fatalf("LocateTopic: %v", err)
		}
		return addr
	}

	// A topic another broker would own, so the client has somewhere to go. The brokers have
	// just started: until the first one has seen the others' heartbeats every name hashes to
	// itself, so keep trying for a while rather than a fixed number of names.
	topic := ""
	until := time.Now().Add(30 * time.Second)
	for i := 1; topic == "" && time.Now().Before(until); i++ {
		name := fmt.Sprintf("direct-go-%d-%d", time.Now().UnixNano(), i)
		if locate(name) != "" {
			topic = name
		} else if i%16 == 0 {
			time.Sleep(250 * time.Millisecond)
		}
	}
	if topic == "" {
		t.Fatal("no topic name fell to another broker in 30 s")
	}

	pub := c.Publisher(topic, nil)
	var mu sync.Mutex
	confirmed := map[uint64]string{}
	publish := func(data string) {
		r, err := pub.Publish(ctx, &nervebus.Message{Data: []byte(data)}).Get(ctx)
		if err != nil {
			t.Fatalf("publish %s: %v", data, err)
		}
		mu.Lock()
		confirmed[r.Seq] = data
		mu.Unlock()
	}
	publish("first")
	var owner string
	waitUntil(t, 15*time.Second, "the client to learn the topic's owner", func() bool {
		owner = locate(topic)
		return owner != "" && c.OwnerOf(topic) == owner
	})
	var ownerBroker *testbroker.Broker
	for _, b := range brokers[1:] {
		if b.Addr == owner {
			ownerBroker = b
		}
	}
	if ownerBroker == nil {
		t.Fatalf("owner %s is none of the cluster's brokers", owner)
	}

	// A consumer whose acks the broker confirms: a message whose ack was confirmed must not
	// come again, even after the owner dies.
	received := map[uint64]string{}
	acked := map[uint64]bool{}
	var again []uint64
	subCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		sub := c.Subscriber(topic, "audit", &nervebus.SubscriberConfig{Start: nervebus.StartEarliest(), ConfirmAcks: true})
		done <- sub.Receive(subCtx, func(ctx context.Context, m *nervebus.Message) {
			mu.Lock()
			if acked[m.Seq] {
				again = append(again, m.Seq)
			}
			received[m.Seq] = string(m.Data)
			mu.Unlock()
			if m.AckWithResult().Get(ctx) == nil {
				mu.Lock()
				acked[m.Seq] = true
				mu.Unlock()
			}
		})
	}()
	allAcked := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for seq := range confirmed {
			if !acked[seq] {
				return false
			}
		}
		return true
	}
	for i := range 20 {
		publish(fmt.Sprintf("before-%d", i))
	}
	waitUntil(t, 20*time.Second, "the first messages to be acked", allAcked)

	// The owner dies while the publisher keeps going: the topic moves to another broker.
	ownerBroker.Kill()
	for i := range 20 {
		publish(fmt.Sprintf("after-%d", i))
	}
	waitUntil(t, 20*time.Second, "the client to follow the topic to its new owner", func() bool {
		at := locate(topic)
		return at != owner && c.OwnerOf(topic) == at
	})
	waitUntil(t, 20*time.Second, "every confirmed publish to be received and acked", allAcked)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Receive: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(confirmed) != 41 {
		t.Fatalf("confirmed %d publishes, want 41", len(confirmed))
	}
	for seq, data := range confirmed {
		if received[seq] != data {
			t.Errorf("seq %d: received %q, published %q", seq, received[seq], data)
		}
	}
	if len(again) > 0 {
		t.Errorf("delivered again after their ack was confirmed: %v", again)
	}
}
