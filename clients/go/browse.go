package nervebus

import (
	"context"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// MessageQuery selects stored messages for [Admin.ListMessages]. Every filter that is set
// must match; the zero value lists the topic from its oldest retained message.
type MessageQuery struct {
	// FromSeq and ToSeq bound the seqs examined; 0 means the oldest retained and the last
	// durable message. To go on after a page, set FromSeq to [MessagePage.NextSeq].
	FromSeq, ToSeq uint64
	// Since and Until bound the publish time; zero means no bound.
	Since, Until time.Time
	// OrderingKey, MessageID and TraceID (32 hex digits) match exactly; empty matches all.
	OrderingKey, MessageID, TraceID string
	// Attributes must all be present with exactly these values.
	Attributes map[string]string
	// PageSize is the most messages returned, 1–1000; 0 means 100.
	PageSize int
	// ScanLimit is the most messages one call examines, 1–100000; 0 means 10000.
	ScanLimit int
	// Deliveries also returns each message's state on each subscription.
	Deliveries bool
}

// DeliveryState is where a message stands on one subscription.
type DeliveryState int

// The states of [MessageDelivery.State].
const (
	DeliveryUnknown DeliveryState = iota
	// DeliveryNotDelivered: not delivered yet (or delivered once before a broker restart and
	// not acked: it comes again).
	DeliveryNotDelivered
	// DeliveryLeased: held by a consumer until LeaseDeadline.
	DeliveryLeased
	// DeliveryWaitingRedelivery: nacked or expired, delivered again at NotBefore.
	DeliveryWaitingRedelivery
	// DeliveryAcked: acked (also purged, sought past or skipped by retention).
	DeliveryAcked
	// DeliveryHeld: waiting behind an unacked earlier message with the same ordering key.
	DeliveryHeld
	// DeliveryDeadLettering: out of attempts, being moved to the dead-letter topic.
	DeliveryDeadLettering
	// DeliveryDeadLettered: moved to DeadLetterTopic (dropped when that is empty).
	DeliveryDeadLettered
)

var deliveryStateNames = [...]string{"unknown", "not delivered", "leased", "waiting redelivery", "acked", "held", "dead-lettering", "dead-lettered"}

func (s DeliveryState) String() string {
	if s < 0 || int(s) >= len(deliveryStateNames) {
		return "unknown"
	}
	return deliveryStateNames[s]
}

// MessageDelivery is what one subscription has done with a message, from the broker's live
// subscription state. Attempts of acked messages are not kept, so they read 0.
type MessageDelivery struct {
	Subscription string
	State        DeliveryState
	// Attempts is the number of deliveries so far.
	Attempts int
	// Consumer holds the message (DeliveryLeased).
	Consumer string
	// LeaseDeadline is when the lease ends (DeliveryLeased).
	LeaseDeadline time.Time
	// NotBefore is when it is delivered again (DeliveryWaitingRedelivery).
	NotBefore time.Time
	// DeadLetterTopic is where it was moved (DeliveryDeadLettered; empty: dropped).
	DeadLetterTopic string
}

// StoredMessage is a message as the topic's log holds it: Seq, Data, Attributes, OrderingKey,
// ID, PublishTime and TraceID are set (Attempt is 0; settling it does nothing).
type StoredMessage struct {
	Message
	// Deliveries is its state on each subscription the caller may administer, by name (only
	// when asked for, in ListMessages).
	Deliveries []MessageDelivery
}

// MessagePage is one page of [Admin.ListMessages].
type MessagePage struct {
	// Messages match the query, in seq order.
	Messages []StoredMessage
	// NextSeq is where to go on (as MessageQuery.FromSeq); 0 when the range is exhausted.
	NextSeq uint64
	// ScannedThrough: every seq up to here within the range has been examined.
	ScannedThrough uint64
}

// ListMessages searches a topic's stored messages without consuming them (no subscription
// moves, nothing is leased). One call examines at most ScanLimit messages and returns at most
// PageSize; page on with NextSeq. Fails with codes.InvalidArgument for bounds over their
// maximum or a bad trace id, codes.NotFound for a missing topic, codes.FailedPrecondition
// for an ephemeral topic.
func (a *Admin) ListMessages(ctx context.Context, topic string, q MessageQuery) (*MessagePage, error) {
	if q.PageSize < 0 || q.PageSize > math.MaxUint32 || q.ScanLimit < 0 || q.ScanLimit > math.MaxUint32 {
		return nil, invalidArg("page_size/scan_limit", "must not be negative, got %d/%d", q.PageSize, q.ScanLimit)
	}
	req := &nervebusv1.ListMessagesRequest{
		Topic:             topic,
		FromSeq:           q.FromSeq,
		ToSeq:             q.ToSeq,
		OrderingKey:       q.OrderingKey,
		MessageId:         q.MessageID,
		TraceId:           q.TraceID,
		Attributes:        q.Attributes,
		PageSize:          uint32(q.PageSize),
		ScanLimit:         uint32(q.ScanLimit),
		IncludeDeliveries: q.Deliveries,
	}
	if !q.Since.IsZero() {
		req.FromTime = timestamppb.New(q.Since)
	}
	if !q.Until.IsZero() {
		req.ToTime = timestamppb.New(q.Until)
	}
	res, err := a.svc.ListMessages(ctx, req)
	if err != nil {
		return nil, adminError("list messages of topic %q", topic)(err)
	}
	page := &MessagePage{NextSeq: res.GetNextSeq(), ScannedThrough: res.GetScannedThrough()}
	for _, m := range res.GetMessages() {
		page.Messages = append(page.Messages, storedFromProto(m))
	}
	return page, nil
}

// GetMessage returns the stored message at seq with its state on each subscription the caller
// may administer. Fails with codes.NotFound when the seq was never published or is gone.
func (a *Admin) GetMessage(ctx context.Context, topic string, seq uint64) (*StoredMessage, error) {
	res, err := a.svc.GetMessage(ctx, &nervebusv1.GetMessageRequest{Topic: topic, Seq: seq})
	if err != nil {
		return nil, adminError("get message %d of topic %q", seq, topic)(err)
	}
	m := storedFromProto(res.GetMessage())
	return &m, nil
}

func storedFromProto(m *nervebusv1.StoredMessage) StoredMessage {
	d := m.GetMessage()
	out := StoredMessage{Message: Message{
		Data:        d.GetData(),
		Attributes:  d.GetAttributes(),
		OrderingKey: d.GetOrderingKey(),
		ID:          d.GetMessageId(),
		Seq:         d.GetSeq(),
		PublishTime: timeValue(d.GetPublishTime()),
		TraceID:     d.GetTraceId(),
	}}
	for _, x := range m.GetDeliveries() {
		out.Deliveries = append(out.Deliveries, MessageDelivery{
			Subscription:    x.GetSubscription(),
			State:           DeliveryState(x.GetState()),
			Attempts:        int(x.GetAttempts()),
			Consumer:        x.GetConsumer(),
			LeaseDeadline:   timeValue(x.GetLeaseDeadline()),
			NotBefore:       timeValue(x.GetNotBefore()),
			DeadLetterTopic: x.GetDeadLetterTopic(),
		})
	}
	return out
}
