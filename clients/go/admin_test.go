package nervebus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebus "github.com/nervebus/nervebus/clients/go"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// wantCode fails the test unless err carries code (through the client's wrapping) and its
// message contains every one of words.
func wantCode(t *testing.T, what string, err error, code codes.Code, words ...string) {
	t.Helper()
	if status.Code(err) != code || nervebus.Code(err) != code {
		t.Fatalf("%s: error %v (code %v), want %v", what, err, status.Code(err), code)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: error %q does not mention %q", what, err, w)
		}
	}
}

// waitStats polls the subscription's figures until ok accepts them.
func waitStats(t *testing.T, ctx context.Context, admin *nervebus.Admin, topic, sub string, what string, ok func(nervebus.SubscriptionStats) bool) (nervebus.TopicStats, nervebus.SubscriptionStats) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := admin.GetStats(ctx, topic)
		if err != nil {
			t.Fatalf("GetStats: %v", err)
		}
		ss, found := st.Subscription(sub)
		if !found {
			t.Fatalf("GetStats: no subscription %q in %+v", sub, st.Subscriptions)
		}
		if ok(ss) {
			return st.Topic, ss
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats of %q still %+v after 10 s", what, sub, ss)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seqsOf returns the seqs of msgs, sorted (handlers run concurrently, so messages without an
// ordering key are collected in any order).
func seqsOf(msgs []*nervebus.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	slices.Sort(out)
	return out
}

func TestAdminTopics(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	admin := newClient(t, b).Admin()
	ctx := testContext(t, 60*time.Second)

	// Defaults: 7 days of retention, a 2 minute dedup window, no size limit.
	plain, err := admin.CreateTopic(ctx, "a-plain", nil)
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if plain.Name != "a-plain" || plain.Shards < 1 || plain.Retention != 7*24*time.Hour ||
		plain.DedupWindow != 2*time.Minute || plain.RetentionBytes != 0 || plain.Ephemeral {
		t.Fatalf("topic with defaults: %+v", plain)
	}
	if d := time.Since(plain.CreateTime); d < 0 || d > time.Minute {
		t.Fatalf("create time %v is not now", plain.CreateTime)
	}

	// Explicit zeros are not the defaults: 0 retention keeps messages, 0 window disables dedup.
	custom, err := admin.CreateTopic(ctx, "b-custom", &nervebus.TopicConfig{
		Shards:         2,
		Retention:      new(time.Duration(0)),
		RetentionBytes: 1 << 20,
		DedupWindow:    new(time.Duration(0)),
	})
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if custom.Shards != 2 || custom.Retention != 0 || custom.DedupWindow != 0 || custom.RetentionBytes != 1<<20 {
		t.Fatalf("custom topic: %+v", custom)
	}
	eph, err := admin.CreateTopic(ctx, "c-ephemeral", &nervebus.TopicConfig{Ephemeral: true, Retention: new(time.Hour)})
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if !eph.Ephemeral || eph.Retention != time.Hour {
		t.Fatalf("ephemeral topic: %+v", eph)
	}

	got, err := admin.GetTopic(ctx, "b-custom")
	if err != nil {
		t.Fatalf("GetTopic: %v", err)
	}
	if *got != *custom {
		t.Fatalf("GetTopic: %+v, created %+v", got, custom)
	}
	list, err := admin.ListTopics(ctx)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	var names []string
	for _, tp := range list {
		names = append(names, tp.Name)
	}
	if fmt.Sprint(names) != "[a-plain b-custom c-ephemeral]" {
		t.Fatalf("ListTopics: %v", names)
	}

	// Only the fields set change; the others keep their value.
	up, err := admin.UpdateTopic(ctx, "a-plain", nervebus.TopicUpdate{Retention: new(3 * time.Hour)})
	if err != nil {
		t.Fatalf("UpdateTopic: %v", err)
	}
	if up.Retention != 3*time.Hour || up.DedupWindow != 2*time.Minute || up.RetentionBytes != 0 || up.Shards != plain.Shards {
		t.Fatalf("after updating retention: %+v", up)
	}
	up, err = admin.UpdateTopic(ctx, "a-plain", nervebus.TopicUpdate{RetentionBytes: new(uint64(5000)), DedupWindow: new(time.Duration(0))})
	if err != nil {
		t.Fatalf("UpdateTopic: %v", err)
	}
	if up.Retention != 3*time.Hour || up.DedupWindow != 0 || up.RetentionBytes != 5000 {
		t.Fatalf("after updating size and dedup window: %+v", up)
	}
	// Setting a field to zero through the mask clears it.
	up, err = admin.UpdateTopic(ctx, "b-custom", nervebus.TopicUpdate{RetentionBytes: new(uint64(0)), Retention: new(time.Minute)})
	if err != nil {
		t.Fatalf("UpdateTopic: %v", err)
	}
	if up.RetentionBytes != 0 || up.Retention != time.Minute || up.DedupWindow != 0 || up.Shards != 2 {
		t.Fatalf("after clearing the size limit: %+v", up)
	}
	if got, err := admin.GetTopic(ctx, "a-plain"); err != nil || got.Retention != 3*time.Hour || got.RetentionBytes != 5000 {
		t.Fatalf("GetTopic after updates: %+v, %v", got, err)
	}

	// Errors keep their status through the wrapping.
	_, err = admin.CreateTopic(ctx, "a-plain", nil)
	wantCode(t, "CreateTopic of an existing topic", err, codes.AlreadyExists, `create topic "a-plain"`)
	_, err = admin.CreateTopic(ctx, "bad name!", nil)
	wantCode(t, "CreateTopic with a bad name", err, codes.InvalidArgument, "topic.name")
	_, err = admin.CreateTopic(ctx, strings.Repeat("x", 129), nil)
	wantCode(t, "CreateTopic with a long name", err, codes.InvalidArgument, "topic.name", "128")
	_, err = admin.CreateTopic(ctx, "d-shards", &nervebus.TopicConfig{Shards: 65})
	wantCode(t, "CreateTopic with 65 shards", err, codes.InvalidArgument, "topic.shards")
	_, err = admin.GetTopic(ctx, "missing")
	wantCode(t, "GetTopic of a missing topic", err, codes.NotFound, "missing")
	_, err = admin.GetTopic(ctx, "")
	wantCode(t, "GetTopic with an empty name", err, codes.InvalidArgument, "name")
	_, err = admin.UpdateTopic(ctx, "missing", nervebus.TopicUpdate{Retention: new(time.Hour)})
	wantCode(t, "UpdateTopic of a missing topic", err, codes.NotFound)
	_, err = admin.UpdateTopic(ctx, "a-plain", nervebus.TopicUpdate{})
	wantCode(t, "UpdateTopic without fields", err, codes.InvalidArgument, "update_mask")
	_, err = admin.UpdateTopic(ctx, "a-plain", nervebus.TopicUpdate{DedupWindow: new(25 * time.Hour)})
	wantCode(t, "UpdateTopic with a 25 h dedup window", err, codes.InvalidArgument, "topic.dedup_window")
	_, err = admin.UpdateTopic(ctx, "a-plain", nervebus.TopicUpdate{Retention: new(-time.Second)})
	wantCode(t, "UpdateTopic with a negative retention", err, codes.InvalidArgument, "topic.retention")
	err = admin.DeleteTopic(ctx, "missing")
	wantCode(t, "DeleteTopic of a missing topic", err, codes.NotFound)

	if err := admin.DeleteTopic(ctx, "a-plain"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	_, err = admin.GetTopic(ctx, "a-plain")
	wantCode(t, "GetTopic after DeleteTopic", err, codes.NotFound)
	list, err = admin.ListTopics(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "b-custom" {
		t.Fatalf("ListTopics after delete: %v, %v", list, err)
	}
	// The name is free again.
	if _, err := admin.CreateTopic(ctx, "a-plain", nil); err != nil {
		t.Fatalf("CreateTopic after DeleteTopic: %v", err)
	}
}

func TestAdminSubscriptions(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	admin := c.Admin()
	ctx := testContext(t, 60*time.Second)
	const topic, dlq = "orders", "orders-dlq"

	_, err := admin.CreateSubscription(ctx, topic, "early", nil)
	wantCode(t, "CreateSubscription on a missing topic", err, codes.NotFound)
	for _, name := range []string{topic, dlq} {
		if _, err := admin.CreateTopic(ctx, name, nil); err != nil {
			t.Fatalf("CreateTopic: %v", err)
		}
	}
	if receipts := publishN(t, ctx, c, topic, "m", 5); receipts[0].Seq != 1 || receipts[4].Seq != 5 {
		t.Fatalf("receipts %+v, want seqs 1–5", receipts)
	}

	// Defaults of a subscription.
	plain, err := admin.CreateSubscription(ctx, topic, "a-plain", nil)
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	want := nervebus.Subscription{Topic: topic, Name: "a-plain", AckDeadline: 30 * time.Second,
		MinBackoff: time.Second, MaxBackoff: time.Minute, CreateTime: plain.CreateTime}
	if *plain != want || plain.CreateTime.IsZero() {
		t.Fatalf("subscription with defaults: %+v, want %+v", plain, want)
	}

	// Settings, and a start seq: the first delivery is seq 3.
	sub, err := admin.CreateSubscription(ctx, topic, "b-from3", &nervebus.SubscriptionConfig{
		AckDeadline:         20 * time.Second,
		MinBackoff:          new(time.Duration(0)),
		MaxBackoff:          new(5 * time.Second),
		MaxDeliveryAttempts: 4,
		DeadLetterTopic:     dlq,
		Ordering:            true,
		Start:               nervebus.StartAtSeq(3),
	})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	want = nervebus.Subscription{Topic: topic, Name: "b-from3", AckDeadline: 20 * time.Second,
		MinBackoff: 0, MaxBackoff: 5 * time.Second, MaxDeliveryAttempts: 4, DeadLetterTopic: dlq,
		Ordering: true, CreateTime: sub.CreateTime}
	if *sub != want {
		t.Fatalf("created subscription: %+v, want %+v", sub, want)
	}
	got, err := admin.GetSubscription(ctx, topic, "b-from3")
	if err != nil || *got != *sub {
		t.Fatalf("GetSubscription: %+v, %v; created %+v", got, err, sub)
	}
	_, st := waitStats(t, ctx, admin, topic, "b-from3", "start seq", func(s nervebus.SubscriptionStats) bool { return true })
	if st.Floor != 2 || st.Backlog != 3 {
		t.Fatalf("subscription starting at seq 3: floor %d backlog %d, want 2 and 3", st.Floor, st.Backlog)
	}
	got1 := newCollector()
	stop := receiveInBackground(t, c.Subscriber(topic, "b-from3", nil), func(_ context.Context, m *nervebus.Message) {
		got1.add(m)
		m.Ack()
	})
	if msgs := got1.wait(t, 3, 10*time.Second); fmt.Sprint(seqsOf(msgs)) != "[3 4 5]" {
		t.Fatalf("delivered %v, want [3 4 5]", seqsOf(msgs))
	}
	if err := stop(); err != nil {
		t.Fatalf("Receive: %v", err)
	}

	// Start points: earliest, latest and by time.
	earliest, err := admin.CreateSubscription(ctx, topic, "c-earliest", &nervebus.SubscriptionConfig{Start: nervebus.StartEarliest()})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	if _, err := admin.CreateSubscription(ctx, topic, "d-latest", &nervebus.SubscriptionConfig{Start: nervebus.StartLatest()}); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	if _, err := admin.CreateSubscription(ctx, topic, "e-future", &nervebus.SubscriptionConfig{Start: nervebus.StartAtTime(time.Now().Add(time.Hour))}); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	stats, err := admin.GetStats(ctx, topic)
	if err != nil {
		t.Fatalf("GetStats: %v", err)
	}
	for name, floor := range map[string]uint64{"c-earliest": 0, "d-latest": 5, "e-future": 5} {
		if s, ok := stats.Subscription(name); !ok || s.Floor != floor || s.Backlog != 5-floor {
			t.Fatalf("subscription %s: %+v, want floor %d", name, s, floor)
		}
	}

	list, err := admin.ListSubscriptions(ctx, topic)
	if err != nil {
		t.Fatalf("ListSubscriptions: %v", err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
		if s.Topic != topic {
			t.Fatalf("listed subscription %+v has topic %q", s, s.Topic)
		}
	}
	if fmt.Sprint(names) != "[a-plain b-from3 c-earliest d-latest e-future]" {
		t.Fatalf("ListSubscriptions: %v", names)
	}

	// Update: the fields set change, the others keep their value.
	up, err := admin.UpdateSubscription(ctx, topic, "b-from3", nervebus.SubscriptionUpdate{
		MaxDeliveryAttempts: new(0),
		AckDeadline:         new(45 * time.Second),
	})
	if err != nil {
		t.Fatalf("UpdateSubscription: %v", err)
	}
	want.MaxDeliveryAttempts, want.AckDeadline = 0, 45*time.Second
	if *up != want {
		t.Fatalf("updated subscription: %+v, want %+v", up, want)
	}
	up, err = admin.UpdateSubscription(ctx, topic, "b-from3", nervebus.SubscriptionUpdate{
		DeadLetterTopic: new(""),
		Ordering:        new(false),
		MinBackoff:      new(2 * time.Second),
		MaxBackoff:      new(10 * time.Second),
	})
	if err != nil {
		t.Fatalf("UpdateSubscription: %v", err)
	}
	want.DeadLetterTopic, want.Ordering, want.MinBackoff, want.MaxBackoff = "", false, 2*time.Second, 10*time.Second
	if *up != want {
		t.Fatalf("updated subscription: %+v, want %+v", up, want)
	}
	if got, err := admin.GetSubscription(ctx, topic, "b-from3"); err != nil || *got != want {
		t.Fatalf("GetSubscription after updates: %+v, %v; want %+v", got, err, want)
	}
	if got, err := admin.GetSubscription(ctx, topic, "c-earliest"); err != nil || *got != *earliest {
		t.Fatalf("another subscription changed: %+v, %v; want %+v", got, err, earliest)
	}

	// Errors.
	_, err = admin.CreateSubscription(ctx, topic, "a-plain", nil)
	wantCode(t, "CreateSubscription of an existing one", err, codes.AlreadyExists, `create subscription "a-plain" on topic "orders"`)
	_, err = admin.CreateSubscription(ctx, topic, "bad/name", nil)
	wantCode(t, "CreateSubscription with a bad name", err, codes.InvalidArgument, "subscription.name")
	_, err = admin.CreateSubscription(ctx, topic, "f", &nervebus.SubscriptionConfig{AckDeadline: 500 * time.Millisecond})
	wantCode(t, "CreateSubscription with a short ack deadline", err, codes.InvalidArgument, "subscription.ack_deadline")
	_, err = admin.CreateSubscription(ctx, topic, "f", &nervebus.SubscriptionConfig{MaxDeliveryAttempts: -1})
	wantCode(t, "CreateSubscription with negative attempts", err, codes.InvalidArgument, "max_delivery_attempts")
	_, err = admin.CreateSubscription(ctx, topic, "f", &nervebus.SubscriptionConfig{DeadLetterTopic: topic})
	wantCode(t, "CreateSubscription dead-lettering to its own topic", err, codes.InvalidArgument, "subscription.dead_letter_topic")
	_, err = admin.GetSubscription(ctx, topic, "missing")
	wantCode(t, "GetSubscription of a missing one", err, codes.NotFound)
	_, err = admin.GetSubscription(ctx, "no-topic", "a-plain")
	wantCode(t, "GetSubscription on a missing topic", err, codes.NotFound)
	_, err = admin.ListSubscriptions(ctx, "no-topic")
	wantCode(t, "ListSubscriptions of a missing topic", err, codes.NotFound)
	_, err = admin.UpdateSubscription(ctx, topic, "a-plain", nervebus.SubscriptionUpdate{})
	wantCode(t, "UpdateSubscription without fields", err, codes.InvalidArgument, "update_mask")
	_, err = admin.UpdateSubscription(ctx, topic, "a-plain", nervebus.SubscriptionUpdate{AckDeadline: new(11 * time.Minute)})
	wantCode(t, "UpdateSubscription with a long ack deadline", err, codes.InvalidArgument, "subscription.ack_deadline")
	_, err = admin.UpdateSubscription(ctx, topic, "a-plain", nervebus.SubscriptionUpdate{MaxBackoff: new(100 * time.Millisecond)})
	wantCode(t, "UpdateSubscription with max backoff below min", err, codes.InvalidArgument, "subscription.max_backoff")
	_, err = admin.UpdateSubscription(ctx, topic, "missing", nervebus.SubscriptionUpdate{Ordering: new(true)})
	wantCode(t, "UpdateSubscription of a missing one", err, codes.NotFound)
	for what, call := range map[string]func() error{
		"PauseSubscription":  func() error { _, err := admin.PauseSubscription(ctx, topic, "missing"); return err },
		"ResumeSubscription": func() error { _, err := admin.ResumeSubscription(ctx, topic, "missing"); return err },
		"PurgeSubscription":  func() error { _, err := admin.PurgeSubscription(ctx, topic, "missing"); return err },
		"SeekSubscription": func() error {
			_, err := admin.SeekSubscription(ctx, topic, "missing", nervebus.SeekToSeq(1))
			return err
		},
		"DeleteSubscription": func() error { return admin.DeleteSubscription(ctx, topic, "missing") },
		"GetStats":           func() error { _, err := admin.GetStats(ctx, "no-topic"); return err },
	} {
		wantCode(t, what+" of a missing subscription", call(), codes.NotFound)
	}
	_, err = admin.SeekSubscription(ctx, topic, "a-plain", nervebus.SeekToSeq(0))
	wantCode(t, "SeekSubscription to seq 0", err, codes.InvalidArgument, "seq")

	// A topic that is a dead-letter topic cannot be deleted.
	if _, err := admin.UpdateSubscription(ctx, topic, "a-plain", nervebus.SubscriptionUpdate{DeadLetterTopic: new(dlq)}); err != nil {
		t.Fatalf("UpdateSubscription: %v", err)
	}
	err = admin.DeleteTopic(ctx, dlq)
	wantCode(t, "DeleteTopic of a dead-letter topic", err, codes.FailedPrecondition, "a-plain")

	// Deleting a subscription ends its streams with NOT_FOUND.
	streaming := c.Subscriber(topic, "c-earliest", &nervebus.SubscriberConfig{ReconnectBackoff: nervebus.Backoff{Initial: 10 * time.Millisecond}})
	got2 := newCollector()
	done := make(chan error, 1)
	go func() {
		done <- streaming.Receive(ctx, func(_ context.Context, m *nervebus.Message) { got2.add(m); m.Ack() })
	}()
	got2.wait(t, 5, 10*time.Second)
	if err := admin.DeleteSubscription(ctx, topic, "c-earliest"); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	select {
	case err := <-done:
		wantCode(t, "Receive on a deleted subscription", err, codes.NotFound)
	case <-time.After(10 * time.Second):
		t.Fatal("Receive still running 10 s after its subscription was deleted")
	}
	_, err = admin.GetSubscription(ctx, topic, "c-earliest")
	wantCode(t, "GetSubscription after delete", err, codes.NotFound)
	if list, err := admin.ListSubscriptions(ctx, topic); err != nil || len(list) != 4 {
		t.Fatalf("ListSubscriptions after delete: %d, %v", len(list), err)
	}
	// Deleting the topic deletes its subscriptions.
	if err := admin.DeleteTopic(ctx, topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	if _, err := admin.CreateTopic(ctx, topic, nil); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if list, err := admin.ListSubscriptions(ctx, topic); err != nil || len(list) != 0 {
		t.Fatalf("ListSubscriptions of a re-created topic: %v, %v", list, err)
	}
}

func TestAdminPauseResumeSeekPurge(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	c := newClient(t, b)
	admin := c.Admin()
	ctx := testContext(t, 90*time.Second)
	topic := topicName(t)
	const subName = "worker"

	if _, err := admin.CreateTopic(ctx, topic, nil); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if _, err := admin.CreateSubscription(ctx, topic, subName, nil); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	got := newCollector()
	var (
		mu   sync.Mutex
		hold bool // handlers keep their messages unsettled while set
		held []*nervebus.Message
	)
	sub := c.Subscriber(topic, subName, &nervebus.SubscriberConfig{ConsumerName: "consumer-1", MaxOutstandingMessages: 50})
	stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
		got.add(m)
		mu.Lock()
		defer mu.Unlock()
		if hold {
			held = append(held, m)
			return
		}
		m.Ack()
	})
	// The consumer is attached once it shows in the stats.
	_, st := waitStats(t, ctx, admin, topic, subName, "consumer attached", func(s nervebus.SubscriptionStats) bool { return len(s.Consumers) == 1 })
	if cs := st.Consumers[0]; cs.Name != "consumer-1" || cs.MaxMessages != 50 || cs.InFlight != 0 || time.Since(cs.ConnectTime) > time.Minute {
		t.Fatalf("consumer stats %+v", cs)
	}

	// Paused: messages arrive and wait.
	paused, err := admin.PauseSubscription(ctx, topic, subName)
	if err != nil {
		t.Fatalf("PauseSubscription: %v", err)
	}
	if !paused.Paused {
		t.Fatalf("PauseSubscription returned %+v, not paused", paused)
	}
	publishN(t, ctx, c, topic, "a", 5)
	time.Sleep(time.Second)
	if n := got.len(); n != 0 {
		t.Fatalf("%d messages delivered while paused", n)
	}
	ts, st := waitStats(t, ctx, admin, topic, subName, "paused", func(s nervebus.SubscriptionStats) bool { return true })
	if ts.LastSeq != 5 || ts.FirstSeq != 1 || ts.Name != topic || !st.Paused || st.Backlog != 5 || st.InFlight != 0 || st.Floor != 0 || len(st.Consumers) != 1 {
		t.Fatalf("stats while paused: topic %+v, subscription %+v", ts, st)
	}
	if s, err := admin.GetSubscription(ctx, topic, subName); err != nil || !s.Paused {
		t.Fatalf("GetSubscription while paused: %+v, %v", s, err)
	}

	// Resumed: they come, and once acked the backlog is empty.
	resumed, err := admin.ResumeSubscription(ctx, topic, subName)
	if err != nil || resumed.Paused {
		t.Fatalf("ResumeSubscription: %+v, %v", resumed, err)
	}
	if msgs := got.wait(t, 5, 10*time.Second); fmt.Sprint(seqsOf(msgs)) != "[1 2 3 4 5]" {
		t.Fatalf("delivered after resume: %v", seqsOf(msgs))
	}
	_, st = waitStats(t, ctx, admin, topic, subName, "acked", func(s nervebus.SubscriptionStats) bool { return s.Backlog == 0 })
	if st.Floor != 5 || st.InFlight != 0 || st.Paused {
		t.Fatalf("stats after acks: %+v", st)
	}

	// In flight: messages held by the handler are leased to the consumer.
	mu.Lock()
	hold = true
	mu.Unlock()
	publishN(t, ctx, c, topic, "b", 3)
	got.wait(t, 8, 10*time.Second)
	ts, st = waitStats(t, ctx, admin, topic, subName, "held", func(s nervebus.SubscriptionStats) bool { return s.InFlight == 3 })
	if ts.LastSeq != 8 || st.Backlog != 3 || st.Floor != 5 || len(st.Consumers) != 1 || st.Consumers[0].InFlight != 3 || st.OldestUnackedAge <= 0 {
		t.Fatalf("stats with 3 held messages: topic %+v, subscription %+v", ts, st)
	}
	mu.Lock()
	hold = false
	for _, m := range held {
		m.Ack()
	}
	mu.Unlock()
	waitStats(t, ctx, admin, topic, subName, "held acked", func(s nervebus.SubscriptionStats) bool { return s.Backlog == 0 && s.InFlight == 0 })

	// Seek back: seqs 3… come again.
	floor, err := admin.SeekSubscription(ctx, topic, subName, nervebus.SeekToSeq(3))
	if err != nil || floor != 2 {
		t.Fatalf("SeekSubscription to seq 3: floor %d, %v; want 2", floor, err)
	}
	msgs := got.wait(t, 14, 10*time.Second)
	if again := seqsOf(msgs[8:]); fmt.Sprint(again) != "[3 4 5 6 7 8]" {
		t.Fatalf("delivered after seeking to seq 3: %v", again)
	}
	waitStats(t, ctx, admin, topic, subName, "replay acked", func(s nervebus.SubscriptionStats) bool { return s.Backlog == 0 && s.Floor == 8 })

	// Seek by time: to before the first message replays everything.
	floor, err = admin.SeekSubscription(ctx, topic, subName, nervebus.SeekToTime(time.Now().Add(-time.Hour)))
	if err != nil || floor != 0 {
		t.Fatalf("SeekSubscription an hour back: floor %d, %v; want 0", floor, err)
	}
	got.wait(t, 22, 10*time.Second)
	waitStats(t, ctx, admin, topic, subName, "time replay acked", func(s nervebus.SubscriptionStats) bool { return s.Backlog == 0 })
	// To the future: nothing left.
	floor, err = admin.SeekSubscription(ctx, topic, subName, nervebus.SeekToTime(time.Now().Add(time.Hour)))
	if err != nil || floor != 8 {
		t.Fatalf("SeekSubscription an hour ahead: floor %d, %v; want 8", floor, err)
	}

	// Purge: with the consumer gone, a backlog builds up; purging acks it all.
	if err := stop(); err != nil {
		t.Fatalf("Receive: %v", err)
	}
	publishN(t, ctx, c, topic, "c", 4)
	ts, st = waitStats(t, ctx, admin, topic, subName, "backlog", func(s nervebus.SubscriptionStats) bool { return len(s.Consumers) == 0 })
	if ts.LastSeq != 12 || st.Backlog != 4 || st.InFlight != 0 {
		t.Fatalf("stats before purge: topic %+v, subscription %+v", ts, st)
	}
	floor, err = admin.PurgeSubscription(ctx, topic, subName)
	if err != nil || floor != 12 {
		t.Fatalf("PurgeSubscription: floor %d, %v; want 12", floor, err)
	}
	stats, err := admin.GetStats(ctx, topic)
	if err != nil {
		t.Fatalf("GetStats: %v", err)
	}
	if s, ok := stats.Subscription(subName); !ok || s.Backlog != 0 || s.Floor != 12 || s.OldestUnackedAge != 0 {
		t.Fatalf("stats after purge: %+v", s)
	}
	if _, ok := stats.Subscription("nope"); ok {
		t.Fatal("Stats.Subscription found a subscription that does not exist")
	}

	// A new consumer gets nothing old.
	got3 := newCollector()
	stop3 := receiveInBackground(t, c.Subscriber(topic, subName, nil), func(_ context.Context, m *nervebus.Message) {
		got3.add(m)
		m.Ack()
	})
	waitStats(t, ctx, admin, topic, subName, "new consumer", func(s nervebus.SubscriptionStats) bool { return len(s.Consumers) == 1 })
	publishN(t, ctx, c, topic, "d", 1)
	if msgs := got3.wait(t, 1, 10*time.Second); fmt.Sprint(seqsOf(msgs)) != "[13]" {
		t.Fatalf("delivered after purge: %v, want [13]", seqsOf(msgs))
	}
	if err := stop3(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive: %v", err)
	}
}

// ExampleClient_Admin is the README's admin example (compiled, not run: it needs a broker).
func ExampleClient_Admin() {
	ctx := context.Background()
	client, err := nervebus.NewClient("127.0.0.1:7070")
	if err != nil {
		panic(err)
	}
	defer client.Close()
	admin := client.Admin()

	// Create: nil fields take the broker's defaults (7 days of retention, 2 min dedup window).
	if _, err := admin.CreateTopic(ctx, "orders", &nervebus.TopicConfig{Retention: new(24 * time.Hour)}); err != nil {
		panic(err)
	}
	if _, err := admin.CreateSubscription(ctx, "orders", "billing", &nervebus.SubscriptionConfig{
		AckDeadline:         time.Minute,
		MaxDeliveryAttempts: 5,
		Start:               nervebus.StartAtSeq(1),
	}); err != nil {
		panic(err)
	}

	// Update: only the fields set change; the others keep their value.
	if _, err := admin.UpdateTopic(ctx, "orders", nervebus.TopicUpdate{DedupWindow: new(time.Duration(0))}); err != nil {
		panic(err)
	}
	if _, err := admin.UpdateSubscription(ctx, "orders", "billing", nervebus.SubscriptionUpdate{Ordering: new(true)}); err != nil {
		panic(err)
	}

	// Replay the last hour.
	if _, err := admin.SeekSubscription(ctx, "orders", "billing", nervebus.SeekToTime(time.Now().Add(-time.Hour))); err != nil {
		panic(err)
	}

	stats, err := admin.GetStats(ctx, "orders")
	if err != nil {
		panic(err)
	}
	if s, ok := stats.Subscription("billing"); ok {
		fmt.Println(stats.Topic.LastSeq, s.Backlog, s.InFlight, len(s.Consumers))
	}

	// Errors keep their status.
	if _, err := admin.GetTopic(ctx, "nope"); status.Code(err) == codes.NotFound {
		fmt.Println("no such topic")
	}
}
