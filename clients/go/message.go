package nervebus

import (
	"time"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Message is a message to publish, or one delivered to a [Subscriber]'s handler.
//
// For publishing, set Data and optionally Attributes, OrderingKey, ID, DeliverAt or Delay; the
// other fields are ignored. [Publisher.Publish] does not modify the Message it is given.
//
// A delivered message must be settled exactly once with [Message.Ack], [Message.Nack],
// [Message.NackWithDelay] or [Message.Terminate]; later calls do nothing. Until then the
// subscriber keeps its lease extended (up to [SubscriberConfig.MaxExtension]; beyond it with
// [Message.ExtendDeadline]), and it counts against the flow-control window.
type Message struct {
	// Data is the payload.
	Data []byte
	// Attributes are free-form metadata. Keys starting with "nervebus-" are reserved for the
	// broker. The W3C trace context travels as "traceparent" and "tracestate": the publisher
	// sets them from the publish span, and the broker adds a traceparent when none was sent.
	Attributes map[string]string
	// OrderingKey groups messages that must stay in order: a [Publisher] sends the batches of
	// one key one at a time, and a [Subscriber] runs the handlers of one key one at a time, in
	// seq order. Empty means no ordering. At most 1024 bytes.
	OrderingKey string
	// ID is the producer's message id, which makes publishing idempotent: the broker does not
	// append a message whose id it has already seen on the topic within its dedup window. When
	// empty, [Publisher.Publish] generates a random one, so the publisher's own retries cannot
	// duplicate the message. At most 256 bytes.
	ID string
	// DeliverAt holds the message until this time (at most 7 days ahead). Zero means now.
	DeliverAt time.Time
	// Delay holds the message for this long after the broker receives it. Ignored when
	// DeliverAt is set. At most 7 days.
	Delay time.Duration
	// Priority sets how soon subscribers get the message: urgent messages fill windows first,
	// then normal, while bulk keeps a share of 1 in 10 first deliveries. The zero value is
	// normal. Set on delivered messages too.
	Priority Priority

	// Seq is the message's position in its topic (1, 2, 3 …). Set on delivered messages.
	Seq uint64
	// PublishTime is when the broker appended the message. Set on delivered messages.
	PublishTime time.Time
	// Attempt is 1 for the first delivery on the subscription, 2 for the first redelivery, and
	// so on. Set on delivered messages.
	Attempt int
	// TraceID is the W3C trace id (32 lowercase hex digits) of the message's end-to-end
	// trace. Set on delivered messages.
	TraceID string

	lease *lease
}

// Ack reports that the message was processed: it will not be delivered again on this
// subscription. Acks are sent to the broker asynchronously, in batches.
func (m *Message) Ack() {
	if m.lease != nil {
		m.lease.settle(settleAck, 0, nil)
	}
}

// AckWithResult acks the message like [Message.Ack] and returns a result that tells whether
// the broker applied it. With [SubscriberConfig.ConfirmAcks] the result is ready when the ack
// is durable on the broker; without it, when the ack was written to the stream.
func (m *Message) AckWithResult() *AckResult {
	r := newAckResult()
	if m.lease == nil {
		r.set(ErrMessageSettled)
		return r
	}
	m.lease.settle(settleAck, 0, r)
	return r
}

// Nack returns the message for redelivery after the subscription's retry backoff.
func (m *Message) Nack() {
	if m.lease != nil {
		m.lease.settle(settleNack, -1, nil)
	}
}

// NackWithDelay returns the message for redelivery no earlier than delay from now (at most 7
// days; 0 redelivers at once).
func (m *Message) NackWithDelay(delay time.Duration) {
	if delay < 0 {
		delay = 0
	}
	if m.lease != nil {
		m.lease.settle(settleNack, delay, nil)
	}
}

// ExtendDeadline tells the broker the message is still being processed ("in progress", as
// Pub/Sub's modifyAckDeadline and NATS's in-progress ack): its lease is extended to d from now
// (0 means the stream's ack deadline; d is kept within 1 s – 10 min). It is sent at once, also
// past [SubscriberConfig.MaxExtension] or with the automatic extension disabled; within
// MaxExtension the automatic extension carries on from the new deadline. It does nothing once
// the message is settled, or after a reconnect (the broker redelivers the message then).
func (m *Message) ExtendDeadline(d time.Duration) {
	if m.lease != nil {
		m.lease.sess.extendNow(m.lease, d)
	}
}

// Terminate stops the message's redeliveries now: the broker dead-letters it (when the
// subscription has a dead-letter topic) and counts it as done.
func (m *Message) Terminate() {
	if m.lease != nil {
		m.lease.settle(settleTerminate, 0, nil)
	}
}

// toProto converts a message to publish; id is the message id to send.
func (m *Message) toProto(attrs map[string]string, id string) *nervebusv1.Message {
	pm := &nervebusv1.Message{
		Data:        m.Data,
		Attributes:  attrs,
		OrderingKey: m.OrderingKey,
		MessageId:   id,
	}
	// The values are the wire enum's (0, unspecified, is normal); an unknown one goes as it
	// is, and the broker refuses it with INVALID_ARGUMENT.
	pm.Priority = nervebusv1.Priority(m.Priority)
	if !m.DeliverAt.IsZero() {
		pm.DeliverAt = timestamppb.New(m.DeliverAt)
	} else if m.Delay > 0 {
		pm.Delay = durationpb.New(m.Delay)
	}
	return pm
}

// messageFromDelivery makes the handler's view of a delivery.
func messageFromDelivery(d *nervebusv1.Delivery) *Message {
	m := &Message{
		Data:        d.GetData(),
		Attributes:  d.GetAttributes(),
		OrderingKey: d.GetOrderingKey(),
		ID:          d.GetMessageId(),
		Seq:         d.GetSeq(),
		Attempt:     int(d.GetAttempt()),
		TraceID:     d.GetTraceId(),
	}
	switch d.GetPriority() {
	case nervebusv1.Priority_PRIORITY_URGENT:
		m.Priority = PriorityUrgent
	case nervebusv1.Priority_PRIORITY_BULK:
		m.Priority = PriorityBulk
	}
	if d.GetPublishTime() != nil {
		m.PublishTime = d.GetPublishTime().AsTime()
	}
	if m.Attributes == nil {
		m.Attributes = map[string]string{}
	}
	return m
}

// wireSize is the size the broker counts for a message: data, attribute keys and values,
// ordering key and message id.
func wireSize(data []byte, attrs map[string]string, orderingKey, id string) int {
	n := len(data) + len(orderingKey) + len(id)
	for k, v := range attrs {
		n += len(k) + len(v)
	}
	return n
}

// Priority is a message's priority (see [Message.Priority]).
type Priority int

// The priorities, with the wire enum's values (the zero value, unspecified, is normal).
const (
	// PriorityNormal is the default.
	PriorityNormal Priority = 0
	// PriorityUrgent goes before normal and bulk.
	PriorityUrgent Priority = 1
	// PriorityBulk goes after urgent and normal, with a guaranteed share.
	PriorityBulk Priority = 3
)
