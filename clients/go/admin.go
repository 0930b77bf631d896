package nervebus

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// Admin manages a broker's topics and subscriptions and reads their figures (the
// AdminService). Get one with [Client.Admin]; it is safe for concurrent use and shares the
// client's connection.
//
// Every method fails with the broker's gRPC status, wrapped with the operation and the names
// involved: status.Code(err) (or [Code]) gives codes.NotFound for a missing topic or
// subscription, codes.AlreadyExists when creating one that exists, codes.InvalidArgument (the
// message names the field) for a bad name or setting, and codes.FailedPrecondition for
// example when deleting a topic that is another subscription's dead-letter topic.
//
// Optional settings are pointer fields, so that "leave it" (nil) and "zero" stay apart where
// the broker tells them apart; with Go 1.26, new(value) makes such a pointer:
//
//	admin.UpdateTopic(ctx, "orders", nervebus.TopicUpdate{Retention: new(24 * time.Hour)})
type Admin struct {
	svc nervebusv1.AdminServiceClient
}

// Admin returns the client's admin API.
func (c *Client) Admin() *Admin {
	return &Admin{svc: nervebusv1.NewAdminServiceClient(c.conn)}
}

// Topic is a topic's settings as the broker reports them.
type Topic struct {
	// Name is 1–128 characters of [A-Za-z0-9._-].
	Name string
	// Shards is the number of shard tables of the topic's log, fixed at creation.
	Shards int
	// Retention is how long messages are kept; 0 keeps them forever.
	Retention time.Duration
	// RetentionBytes bounds the log's size (approximately): the oldest messages are deleted
	// beyond it. 0 means no size limit.
	RetentionBytes uint64
	// DedupWindow is how long a message id is remembered to drop a republished message; 0
	// means no deduplication.
	DedupWindow time.Duration
	// Ephemeral topics are never stored: messages only go to consumers connected and with room
	// in their window. Fixed at creation.
	Ephemeral bool
	// CreateTime is when the topic was created.
	CreateTime time.Time
}

// TopicConfig holds the settings of a new topic for [Admin.CreateTopic]. Its zero value
// takes the broker's defaults.
type TopicConfig struct {
	// Shards is the number of shard tables, 1–64, fixed at creation. 0 means the broker's
	// default (its --shards flag).
	Shards int
	// Retention is how long messages are kept. nil means 7 days; a pointer to 0 keeps them
	// forever.
	Retention *time.Duration
	// RetentionBytes bounds the log's size; 0 means the broker's default (no size limit unless
	// the broker is configured otherwise).
	RetentionBytes uint64
	// DedupWindow is how long message ids are remembered for deduplication, at most 24 h. nil
	// means 2 minutes; a pointer to 0 disables deduplication.
	DedupWindow *time.Duration
	// Ephemeral makes a topic whose messages are never stored. Fixed at creation.
	Ephemeral bool
}

// TopicUpdate names the topic settings to change in [Admin.UpdateTopic]: the non-nil fields
// are changed (and listed in the request's update mask), the nil ones keep their value.
// Shards and Ephemeral cannot change.
type TopicUpdate struct {
	// Retention is the new retention; 0 keeps messages forever.
	Retention *time.Duration
	// RetentionBytes is the new size limit; 0 removes it.
	RetentionBytes *uint64
	// DedupWindow is the new deduplication window (at most 24 h); 0 disables deduplication.
	DedupWindow *time.Duration
}

// Subscription is a subscription's settings as the broker reports them.
type Subscription struct {
	// Topic is the subscription's topic.
	Topic string
	// Name is 1–128 characters of [A-Za-z0-9._-].
	Name string
	// AckDeadline is how long a delivered message stays leased before it is redelivered.
	AckDeadline time.Duration
	// MinBackoff and MaxBackoff bound the redelivery backoff after a nack without delay or an
	// expired lease: MinBackoff · 2^(attempt-1), capped at MaxBackoff, with jitter.
	MinBackoff time.Duration
	// MaxBackoff: see MinBackoff.
	MaxBackoff time.Duration
	// MaxDeliveryAttempts is how many deliveries without an ack a message gets before it goes
	// to DeadLetterTopic (or is dropped when there is none); 0 means unlimited.
	MaxDeliveryAttempts int
	// DeadLetterTopic is where dead messages go; empty means none.
	DeadLetterTopic string
	// Ordering delivers messages of one ordering key one at a time, in seq order.
	Ordering bool
	// Paused is true while deliveries are stopped by [Admin.PauseSubscription].
	Paused bool
	// CreateTime is when the subscription was created.
	CreateTime time.Time
}

// SubscriptionConfig holds the settings of a new subscription for
// [Admin.CreateSubscription]. Its zero value takes the broker's defaults and starts at the
// latest message.
type SubscriptionConfig struct {
	// AckDeadline is the lease of a delivered message, 1 s – 10 min. 0 means the broker's
	// default (30 s).
	AckDeadline time.Duration
	// MinBackoff is the first redelivery backoff. nil means the broker's default (1 s); a
	// pointer to 0 is allowed.
	MinBackoff *time.Duration
	// MaxBackoff caps the redelivery backoff, at least MinBackoff and at most 1 h. nil means
	// the broker's default (60 s).
	MaxBackoff *time.Duration
	// MaxDeliveryAttempts dead-letters a message after this many deliveries without an ack,
	// 0–1000. 0 means unlimited.
	MaxDeliveryAttempts int
	// DeadLetterTopic is where dead messages go (another topic than the subscription's).
	// Empty means none: they are dropped.
	DeadLetterTopic string
	// Ordering delivers messages with the same ordering key one at a time, in seq order.
	Ordering bool
	// Start is where the subscription starts: [StartLatest] (the zero value),
	// [StartEarliest], [StartAtSeq] or [StartAtTime].
	Start StartPosition
}

// SubscriptionUpdate names the subscription settings to change in
// [Admin.UpdateSubscription]: the non-nil fields are changed (and listed in the request's
// update mask), the nil ones keep their value. Pausing has its own methods.
type SubscriptionUpdate struct {
	// AckDeadline is the new lease of delivered messages, 1 s – 10 min.
	AckDeadline *time.Duration
	// MinBackoff is the new first redelivery backoff.
	MinBackoff *time.Duration
	// MaxBackoff is the new backoff cap (at least MinBackoff, at most 1 h).
	MaxBackoff *time.Duration
	// MaxDeliveryAttempts is the new limit, 0–1000; 0 means unlimited.
	MaxDeliveryAttempts *int
	// DeadLetterTopic is the new dead-letter topic; "" removes it.
	DeadLetterTopic *string
	// Ordering turns ordered delivery on or off.
	Ordering *bool
}

// Stats are the figures of a topic and of each of its subscriptions, from [Admin.GetStats].
type Stats struct {
	// Topic holds the topic's figures.
	Topic TopicStats
	// Subscriptions holds each subscription's figures, by name.
	Subscriptions []SubscriptionStats
}

// Subscription returns the figures of the named subscription, and whether it was found.
func (s *Stats) Subscription(name string) (SubscriptionStats, bool) {
	for _, sub := range s.Subscriptions {
		if sub.Name == name {
			return sub, true
		}
	}
	return SubscriptionStats{}, false
}

// TopicStats are a topic's figures.
type TopicStats struct {
	// Name is the topic's name.
	Name string
	// LastSeq is the last durable seq, which is also the number of messages ever appended.
	LastSeq uint64
	// FirstSeq is the oldest retained seq (0 when the log is empty).
	FirstSeq uint64
	// PublishRate is messages appended per second, averaged over the last 10 s.
	PublishRate float64
	// Scheduled counts delayed messages waiting for their time.
	Scheduled uint64
	// DedupIDs counts the message ids remembered for deduplication.
	DedupIDs uint64
	// Dropped counts, on ephemeral topics, messages dropped because no consumer had room.
	Dropped uint64
	// RetentionDeleted counts messages deleted by retention since the broker started.
	RetentionDeleted uint64
}

// SubscriptionStats are a subscription's figures.
type SubscriptionStats struct {
	// Name is the subscription's name.
	Name string
	// Floor is the seq up to which every message is acked.
	Floor uint64
	// Backlog counts messages published and not acked.
	Backlog uint64
	// InFlight counts messages leased to consumers now.
	InFlight uint64
	// WaitingRedelivery counts messages nacked or expired and waiting to be delivered again.
	WaitingRedelivery uint64
	// Redelivered counts redeliveries since the broker started.
	Redelivered uint64
	// DeadLettered counts messages dead-lettered (or dropped after their last attempt) since
	// the broker started.
	DeadLettered uint64
	// Skipped counts messages that retention deleted before they were acked, since the broker
	// started.
	Skipped uint64
	// OldestUnackedAge is the age of the oldest unacked message (0 when there is none).
	OldestUnackedAge time.Duration
	// DeliveryRate is deliveries per second over the last 10 s.
	DeliveryRate float64
	// AckRate is acks per second over the last 10 s.
	AckRate float64
	// Consumers are the connected Receive streams.
	Consumers []ConsumerStats
	// StateEntries counts the entries of persisted state above the floor (acked ranges and
	// pending messages), against a cap of 50000 each.
	StateEntries uint64
	// Paused tells whether deliveries are paused.
	Paused bool
}

// ConsumerStats describe one connected Receive stream.
type ConsumerStats struct {
	// Name is the consumer's name ([SubscriberConfig.ConsumerName]) or its peer address.
	Name string
	// InFlight counts the messages it holds.
	InFlight int
	// MaxMessages is its window in messages.
	MaxMessages int
	// MaxBytes is its window in payload bytes; 0 means no byte limit.
	MaxBytes uint64
	// ConnectTime is when it connected.
	ConnectTime time.Time
}

// CreateTopic creates a topic with cfg (nil takes the broker's defaults) and returns it as
// created, defaults filled in. It fails with ALREADY_EXISTS when the topic exists.
func (a *Admin) CreateTopic(ctx context.Context, name string, cfg *TopicConfig) (*Topic, error) {
	t := &nervebusv1.Topic{Name: name}
	if cfg != nil {
		if cfg.Shards < 0 || int64(cfg.Shards) > math.MaxUint32 {
			return nil, adminError("create topic %q", name)(invalidArg("topic.shards", "must be 1–64 (or 0 for the default), got %d", cfg.Shards))
		}
		t.Shards = uint32(cfg.Shards)
		t.Retention = durationOrNil(cfg.Retention)
		t.RetentionBytes = cfg.RetentionBytes
		t.DedupWindow = durationOrNil(cfg.DedupWindow)
		t.Ephemeral = cfg.Ephemeral
	}
	res, err := a.svc.CreateTopic(ctx, &nervebusv1.CreateTopicRequest{Topic: t})
	if err != nil {
		return nil, adminError("create topic %q", name)(err)
	}
	return topicFromProto(res.GetTopic()), nil
}

// GetTopic returns a topic's settings; NOT_FOUND when it does not exist.
func (a *Admin) GetTopic(ctx context.Context, name string) (*Topic, error) {
	res, err := a.svc.GetTopic(ctx, &nervebusv1.GetTopicRequest{Name: name})
	if err != nil {
		return nil, adminError("get topic %q", name)(err)
	}
	return topicFromProto(res.GetTopic()), nil
}

// LocateTopic returns the "host:port" of the broker that serves topic when several share a
// database (--cluster), or "" when it is the broker called (always so without --cluster).
func (a *Admin) LocateTopic(ctx context.Context, topic string) (string, error) {
	res, err := a.svc.LocateTopic(ctx, &nervebusv1.LocateTopicRequest{Topic: topic})
	if err != nil {
		return "", adminError("locate topic %q", topic)(err)
	}
	return res.GetAddress(), nil
}

// ListTopics returns every topic, by name.
func (a *Admin) ListTopics(ctx context.Context) ([]*Topic, error) {
	res, err := a.svc.ListTopics(ctx, &nervebusv1.ListTopicsRequest{})
	if err != nil {
		return nil, adminError("list topics")(err)
	}
	out := make([]*Topic, 0, len(res.GetTopics()))
	for _, t := range res.GetTopics() {
		out = append(out, topicFromProto(t))
	}
	return out, nil
}

// UpdateTopic changes the settings set in u, leaving the others as they are, and returns the
// updated topic. An update that sets nothing fails with INVALID_ARGUMENT (update_mask).
func (a *Admin) UpdateTopic(ctx context.Context, name string, u TopicUpdate) (*Topic, error) {
	t := &nervebusv1.Topic{Name: name}
	var paths []string
	if u.Retention != nil {
		t.Retention = durationpb.New(*u.Retention)
		paths = append(paths, "retention")
	}
	if u.RetentionBytes != nil {
		t.RetentionBytes = *u.RetentionBytes
		paths = append(paths, "retention_bytes")
	}
	if u.DedupWindow != nil {
		t.DedupWindow = durationpb.New(*u.DedupWindow)
		paths = append(paths, "dedup_window")
	}
	res, err := a.svc.UpdateTopic(ctx, &nervebusv1.UpdateTopicRequest{
		Topic:      t,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
	})
	if err != nil {
		return nil, adminError("update topic %q", name)(err)
	}
	return topicFromProto(res.GetTopic()), nil
}

// DeleteTopic deletes a topic with its messages, schedule and subscriptions; their connected
// streams end with NOT_FOUND. It fails with FAILED_PRECONDITION while the topic is another
// subscription's dead-letter topic.
func (a *Admin) DeleteTopic(ctx context.Context, name string) error {
	if _, err := a.svc.DeleteTopic(ctx, &nervebusv1.DeleteTopicRequest{Name: name}); err != nil {
		return adminError("delete topic %q", name)(err)
	}
	return nil
}

// CreateSubscription creates subscription name on topic with cfg (nil takes the broker's
// defaults and starts at the latest message) and returns it as created. The topic must
// exist (NOT_FOUND otherwise); ALREADY_EXISTS when the subscription exists.
func (a *Admin) CreateSubscription(ctx context.Context, topic, name string, cfg *SubscriptionConfig) (*Subscription, error) {
	wrap := adminError("create subscription %q on topic %q", name, topic)
	var conf SubscriptionConfig
	if cfg != nil {
		conf = *cfg
	}
	attempts, err := deliveryAttempts("subscription.max_delivery_attempts", conf.MaxDeliveryAttempts)
	if err != nil {
		return nil, wrap(err)
	}
	s := &nervebusv1.Subscription{
		Topic:               topic,
		Name:                name,
		MinBackoff:          durationOrNil(conf.MinBackoff),
		MaxBackoff:          durationOrNil(conf.MaxBackoff),
		MaxDeliveryAttempts: attempts,
		DeadLetterTopic:     conf.DeadLetterTopic,
		Ordering:            conf.Ordering,
	}
	if conf.AckDeadline != 0 {
		s.AckDeadline = durationpb.New(conf.AckDeadline)
	}
	req := &nervebusv1.CreateSubscriptionRequest{Subscription: s}
	conf.Start.applyCreate(req)
	res, err := a.svc.CreateSubscription(ctx, req)
	if err != nil {
		return nil, wrap(err)
	}
	return subscriptionFromProto(res.GetSubscription()), nil
}

// GetSubscription returns a subscription's settings; NOT_FOUND when the topic or the
// subscription does not exist.
func (a *Admin) GetSubscription(ctx context.Context, topic, name string) (*Subscription, error) {
	res, err := a.svc.GetSubscription(ctx, &nervebusv1.GetSubscriptionRequest{Topic: topic, Name: name})
	if err != nil {
		return nil, adminError("get subscription %q on topic %q", name, topic)(err)
	}
	return subscriptionFromProto(res.GetSubscription()), nil
}

// ListSubscriptions returns a topic's subscriptions, by name.
func (a *Admin) ListSubscriptions(ctx context.Context, topic string) ([]*Subscription, error) {
	res, err := a.svc.ListSubscriptions(ctx, &nervebusv1.ListSubscriptionsRequest{Topic: topic})
	if err != nil {
		return nil, adminError("list subscriptions of topic %q", topic)(err)
	}
	out := make([]*Subscription, 0, len(res.GetSubscriptions()))
	for _, s := range res.GetSubscriptions() {
		out = append(out, subscriptionFromProto(s))
	}
	return out, nil
}

// UpdateSubscription changes the settings set in u, leaving the others as they are, and
// returns the updated subscription. The broker applies them at once, also to connected
// streams. An update that sets nothing fails with INVALID_ARGUMENT (update_mask).
func (a *Admin) UpdateSubscription(ctx context.Context, topic, name string, u SubscriptionUpdate) (*Subscription, error) {
	wrap := adminError("update subscription %q on topic %q", name, topic)
	s := &nervebusv1.Subscription{Topic: topic, Name: name}
	var paths []string
	if u.AckDeadline != nil {
		s.AckDeadline = durationpb.New(*u.AckDeadline)
		paths = append(paths, "ack_deadline")
	}
	if u.MinBackoff != nil {
		s.MinBackoff = durationpb.New(*u.MinBackoff)
		paths = append(paths, "min_backoff")
	}
	if u.MaxBackoff != nil {
		s.MaxBackoff = durationpb.New(*u.MaxBackoff)
		paths = append(paths, "max_backoff")
	}
	if u.MaxDeliveryAttempts != nil {
		n, err := deliveryAttempts("subscription.max_delivery_attempts", *u.MaxDeliveryAttempts)
		if err != nil {
			return nil, wrap(err)
		}
		s.MaxDeliveryAttempts = n
		paths = append(paths, "max_delivery_attempts")
	}
	if u.DeadLetterTopic != nil {
		s.DeadLetterTopic = *u.DeadLetterTopic
		paths = append(paths, "dead_letter_topic")
	}
	if u.Ordering != nil {
		s.Ordering = *u.Ordering
		paths = append(paths, "ordering")
	}
	res, err := a.svc.UpdateSubscription(ctx, &nervebusv1.UpdateSubscriptionRequest{
		Subscription: s,
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: paths},
	})
	if err != nil {
		return nil, wrap(err)
	}
	return subscriptionFromProto(res.GetSubscription()), nil
}

// DeleteSubscription deletes a subscription and its state; its connected streams end with
// NOT_FOUND.
func (a *Admin) DeleteSubscription(ctx context.Context, topic, name string) error {
	if _, err := a.svc.DeleteSubscription(ctx, &nervebusv1.DeleteSubscriptionRequest{Topic: topic, Name: name}); err != nil {
		return adminError("delete subscription %q on topic %q", name, topic)(err)
	}
	return nil
}

// PauseSubscription stops deliveries on a subscription (messages keep arriving and wait)
// and returns the subscription.
func (a *Admin) PauseSubscription(ctx context.Context, topic, name string) (*Subscription, error) {
	res, err := a.svc.PauseSubscription(ctx, &nervebusv1.PauseSubscriptionRequest{Topic: topic, Name: name})
	if err != nil {
		return nil, adminError("pause subscription %q on topic %q", name, topic)(err)
	}
	return subscriptionFromProto(res.GetSubscription()), nil
}

// ResumeSubscription restarts deliveries on a paused subscription and returns the
// subscription.
func (a *Admin) ResumeSubscription(ctx context.Context, topic, name string) (*Subscription, error) {
	res, err := a.svc.ResumeSubscription(ctx, &nervebusv1.ResumeSubscriptionRequest{Topic: topic, Name: name})
	if err != nil {
		return nil, adminError("resume subscription %q on topic %q", name, topic)(err)
	}
	return subscriptionFromProto(res.GetSubscription()), nil
}

// PurgeSubscription acks every message published so far on a subscription and returns the
// new floor: every seq up to it is acked.
func (a *Admin) PurgeSubscription(ctx context.Context, topic, name string) (floor uint64, err error) {
	res, err := a.svc.PurgeSubscription(ctx, &nervebusv1.PurgeSubscriptionRequest{Topic: topic, Name: name})
	if err != nil {
		return 0, adminError("purge subscription %q on topic %q", name, topic)(err)
	}
	return res.GetFloor(), nil
}

// SeekTarget is where [Admin.SeekSubscription] moves a subscription; build one with
// [SeekToSeq] or [SeekToTime].
type SeekTarget struct {
	seq    uint64
	at     time.Time
	byTime bool
}

// SeekToSeq makes seq the subscription's next first delivery (seq is at least 1; a seq past
// the topic's last one means "after the last message").
func SeekToSeq(seq uint64) SeekTarget { return SeekTarget{seq: seq} }

// SeekToTime makes the first message published at or after t the subscription's next first
// delivery (after the last message when none was published since t).
func SeekToTime(t time.Time) SeekTarget { return SeekTarget{at: t, byTime: true} }

// String describes the target.
func (t SeekTarget) String() string {
	if t.byTime {
		return "time " + t.at.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("seq %d", t.seq)
}

// SeekSubscription moves a subscription to target and returns the new floor: every seq up to
// it counts as acked, and the next first delivery is floor+1. Seeking back makes acked
// messages deliverable again; seeking forward acks what it skips.
func (a *Admin) SeekSubscription(ctx context.Context, topic, name string, target SeekTarget) (floor uint64, err error) {
	req := &nervebusv1.SeekSubscriptionRequest{Topic: topic, Name: name}
	if target.byTime {
		req.Target = &nervebusv1.SeekSubscriptionRequest_Time{Time: timestamppb.New(target.at)}
	} else {
		req.Target = &nervebusv1.SeekSubscriptionRequest_Seq{Seq: target.seq}
	}
	res, err := a.svc.SeekSubscription(ctx, req)
	if err != nil {
		return 0, adminError("seek subscription %q on topic %q to %s", name, topic, target)(err)
	}
	return res.GetFloor(), nil
}

// GetStats returns the figures of a topic and of each of its subscriptions.
func (a *Admin) GetStats(ctx context.Context, topic string) (*Stats, error) {
	res, err := a.svc.GetStats(ctx, &nervebusv1.GetStatsRequest{Topic: topic})
	if err != nil {
		return nil, adminError("get stats of topic %q", topic)(err)
	}
	ts := res.GetTopic()
	out := &Stats{Topic: TopicStats{
		Name:             ts.GetName(),
		LastSeq:          ts.GetLastSeq(),
		FirstSeq:         ts.GetFirstSeq(),
		PublishRate:      ts.GetPublishRate(),
		Scheduled:        ts.GetScheduled(),
		DedupIDs:         ts.GetDedupIds(),
		Dropped:          ts.GetDropped(),
		RetentionDeleted: ts.GetRetentionDeleted(),
	}}
	for _, s := range res.GetSubscriptions() {
		ss := SubscriptionStats{
			Name:              s.GetName(),
			Floor:             s.GetFloor(),
			Backlog:           s.GetBacklog(),
			InFlight:          s.GetInFlight(),
			WaitingRedelivery: s.GetWaitingRedelivery(),
			Redelivered:       s.GetRedelivered(),
			DeadLettered:      s.GetDeadLettered(),
			Skipped:           s.GetSkipped(),
			OldestUnackedAge:  durationValue(s.GetOldestUnackedAge()),
			DeliveryRate:      s.GetDeliveryRate(),
			AckRate:           s.GetAckRate(),
			StateEntries:      s.GetStateEntries(),
			Paused:            s.GetPaused(),
		}
		for _, c := range s.GetConsumers() {
			ss.Consumers = append(ss.Consumers, ConsumerStats{
				Name:        c.GetName(),
				InFlight:    int(c.GetInFlight()),
				MaxMessages: int(c.GetWindow().GetMaxMessages()),
				MaxBytes:    c.GetWindow().GetMaxBytes(),
				ConnectTime: timeValue(c.GetConnectTime()),
			})
		}
		out.Subscriptions = append(out.Subscriptions, ss)
	}
	return out, nil
}

// applyCreate sets the start of a CreateSubscription request.
func (p StartPosition) applyCreate(r *nervebusv1.CreateSubscriptionRequest) {
	switch p.kind {
	case startEarliest:
		r.Start = &nervebusv1.CreateSubscriptionRequest_StartPoint{StartPoint: nervebusv1.StartPoint_START_POINT_EARLIEST}
	case startSeq:
		r.Start = &nervebusv1.CreateSubscriptionRequest_StartSeq{StartSeq: p.seq}
	case startTime:
		r.Start = &nervebusv1.CreateSubscriptionRequest_StartTime{StartTime: timestamppb.New(p.at)}
	default:
		r.Start = &nervebusv1.CreateSubscriptionRequest_StartPoint{StartPoint: nervebusv1.StartPoint_START_POINT_LATEST}
	}
}

// adminError returns a function that wraps an admin call's error with what was being done.
func adminError(format string, args ...any) func(error) error {
	what := fmt.Sprintf(format, args...)
	return func(err error) error { return fmt.Errorf("nervebus: %s: %w", what, err) }
}

// invalidArg is an INVALID_ARGUMENT status naming field, for values the wire cannot carry.
func invalidArg(field, format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", field, fmt.Sprintf(format, args...))
}

// deliveryAttempts converts a max delivery attempts setting to the wire type.
func deliveryAttempts(field string, n int) (uint32, error) {
	if n < 0 || int64(n) > math.MaxUint32 {
		return 0, invalidArg(field, "must be 0 (unlimited) – 1000, got %d", n)
	}
	return uint32(n), nil
}

func durationOrNil(d *time.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return durationpb.New(*d)
}

func durationValue(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func timeValue(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func topicFromProto(t *nervebusv1.Topic) *Topic {
	return &Topic{
		Name:           t.GetName(),
		Shards:         int(t.GetShards()),
		Retention:      durationValue(t.GetRetention()),
		RetentionBytes: t.GetRetentionBytes(),
		DedupWindow:    durationValue(t.GetDedupWindow()),
		Ephemeral:      t.GetEphemeral(),
		CreateTime:     timeValue(t.GetCreateTime()),
	}
}

func subscriptionFromProto(s *nervebusv1.Subscription) *Subscription {
	return &Subscription{
		Topic:               s.GetTopic(),
		Name:                s.GetName(),
		AckDeadline:         durationValue(s.GetAckDeadline()),
		MinBackoff:          durationValue(s.GetMinBackoff()),
		MaxBackoff:          durationValue(s.GetMaxBackoff()),
		MaxDeliveryAttempts: int(s.GetMaxDeliveryAttempts()),
		DeadLetterTopic:     s.GetDeadLetterTopic(),
		Ordering:            s.GetOrdering(),
		Paused:              s.GetPaused(),
		CreateTime:          timeValue(s.GetCreateTime()),
	}
}
