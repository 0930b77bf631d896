package nervebus

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// Broker limits on one SendPack (the defaults; a broker may be configured lower).
const (
	// MaxPackMessages is the most messages the broker accepts in one pack by default.
	MaxPackMessages = 10000
	// MaxPackBytes is the largest pack the broker accepts by default.
	MaxPackBytes = 16 << 20
)

// PublisherConfig tunes a [Publisher]. Zero fields take the defaults given with each field;
// they are the same in the Python and TypeScript clients (docs/clients.md).
type PublisherConfig struct {
	// CountThreshold sends a pack once it holds this many messages. Default 1000, at most
	// MaxPackMessages.
	CountThreshold int
	// ByteThreshold sends a pack once its messages hold this many bytes (as the broker counts
	// them: data, attributes, ordering key, message id). A message bigger than this goes out
	// in a pack of its own. Default 1 MiB, at most MaxPackBytes.
	ByteThreshold int
	// DelayThreshold (the linger time) sends a pack this long after its first message was
	// published, however small it is. Default 5 ms.
	DelayThreshold time.Duration
	// MaxInFlightPacks is how many SendPack calls may run at once. Packs of one ordering key
	// always go one at a time. With 1, packs without ordering key are sent in publish order
	// too. Default 4.
	MaxInFlightPacks int
	// MaxOutstandingMessages bounds the messages published but not yet answered; Publish
	// waits (or fails when its context ends) while the bound is reached. Default 10000;
	// negative means no bound.
	MaxOutstandingMessages int
	// MaxOutstandingBytes bounds the bytes of the messages published but not yet answered.
	// Default 64 MiB; negative means no bound.
	MaxOutstandingBytes int
	// Timeout bounds the time spent sending one pack, retries included: after it the pack's
	// messages fail with the last error. Default 60 s.
	Timeout time.Duration
	// AttemptTimeout is the deadline of one SendPack call. A call that runs out of it is
	// retried, with the same message ids, while Timeout allows. Default 30 s.
	AttemptTimeout time.Duration
	// RetryBackoff spaces the retries of a pack that failed with a retryable error
	// (UNAVAILABLE, RESOURCE_EXHAUSTED, or a call deadline; a CANCELLED the publisher did not
	// cause counts as UNAVAILABLE, and so does INTERNAL, a connection reset under the call).
	// Default 100 ms doubling to 5 s.
	RetryBackoff Backoff
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.CountThreshold <= 0 {
		// 1000: a pack of 100 costs the broker about twice the CPU per message.
		c.CountThreshold = 1000
	}
	c.CountThreshold = min(c.CountThreshold, MaxPackMessages)
	if c.ByteThreshold <= 0 {
		c.ByteThreshold = 1 << 20
	}
	c.ByteThreshold = min(c.ByteThreshold, MaxPackBytes)
	if c.DelayThreshold <= 0 {
		c.DelayThreshold = 5 * time.Millisecond
	}
	if c.MaxInFlightPacks <= 0 {
		c.MaxInFlightPacks = 4
	}
	if c.MaxOutstandingMessages == 0 {
		c.MaxOutstandingMessages = 10000
	}
	if c.MaxOutstandingBytes == 0 {
		c.MaxOutstandingBytes = 64 << 20
	}
	if c.Timeout <= 0 {
		c.Timeout = 60 * time.Second
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 30 * time.Second
	}
	c.RetryBackoff = c.RetryBackoff.withDefaults(100*time.Millisecond, 5*time.Second)
	return c
}

// Outcome tells what the broker did with a published message.
type Outcome int

const (
	// OutcomeUnspecified is an answer without outcome.
	OutcomeUnspecified Outcome = iota
	// OutcomeAppended means the message was appended now, at Receipt.Seq.
	OutcomeAppended
	// OutcomeDuplicate means a message with the same id was already published within the
	// topic's dedup window; Receipt.Seq is the original's.
	OutcomeDuplicate
	// OutcomeScheduled means the message is held until its deliver time; it gets a seq then,
	// so Receipt.Seq is 0.
	OutcomeScheduled
)

// String returns "appended", "duplicate", "scheduled" or "unspecified".
func (o Outcome) String() string {
	switch o {
	case OutcomeAppended:
		return "appended"
	case OutcomeDuplicate:
		return "duplicate"
	case OutcomeScheduled:
		return "scheduled"
	}
	return "unspecified"
}

func outcomeFromProto(o nervebusv1.MessageResult_Outcome) Outcome {
	switch o {
	case nervebusv1.MessageResult_OUTCOME_APPENDED:
		return OutcomeAppended
	case nervebusv1.MessageResult_OUTCOME_DUPLICATE:
		return OutcomeDuplicate
	case nervebusv1.MessageResult_OUTCOME_SCHEDULED:
		return OutcomeScheduled
	}
	return OutcomeUnspecified
}

// Receipt is the broker's answer for one published message.
type Receipt struct {
	// Seq is the message's position in the topic (0 when scheduled).
	Seq uint64
	// TraceID is the W3C trace id of the message's end-to-end trace.
	TraceID string
	// MessageID is the message id that was sent (the one given, or the generated one).
	MessageID string
	// Outcome tells whether the message was appended, a duplicate, or scheduled.
	Outcome Outcome
}

// PublishResult is the future result of one [Publisher.Publish].
type PublishResult struct {
	done    chan struct{}
	receipt Receipt
	err     error
}

func newPublishResult() *PublishResult { return &PublishResult{done: make(chan struct{})} }

func (r *PublishResult) set(receipt Receipt, err error) {
	r.receipt, r.err = receipt, err
	close(r.done)
}

// Ready returns a channel that is closed when the result is available.
func (r *PublishResult) Ready() <-chan struct{} { return r.done }

// Get waits until the message is durable on the broker (or failed) and returns the broker's
// receipt, or the error; it returns ctx.Err() if ctx ends first (the publish goes on).
// Broker errors keep their gRPC status ([Code] reads it).
func (r *PublishResult) Get(ctx context.Context) (Receipt, error) {
	select {
	case <-r.done:
		return r.receipt, r.err
	default:
	}
	select {
	case <-r.done:
		return r.receipt, r.err
	case <-ctx.Done():
		return Receipt{}, ctx.Err()
	}
}

// Publisher publishes messages to one topic, batching them into SendPack calls. It is safe
// for concurrent use. Close it to send what is buffered.
type Publisher struct {
	client *Client
	topic  string
	spans  spanTemplate // of its producer spans
	cfg    PublisherConfig
	flow   *flowController

	mu       sync.Mutex
	closed   bool
	keys     map[string]*keyQueue
	sendQ    []*batch // packs allowed to go out, in order
	inFlight int
	live     map[*batch]struct{} // every pack not answered yet
}

// keyQueue holds the packs of one ordering key ("" for messages without key).
type keyQueue struct {
	key     string
	cur     *batch // the pack being filled
	timer   *time.Timer
	waiting []*batch // closed packs of a key whose previous pack is still out
	busy    bool     // a pack of this key is in sendQ or in flight
	paused  error
}

type batch struct {
	key   string
	msgs  []*outgoing
	bytes int
	done  chan struct{}
}

type outgoing struct {
	msg    *nervebusv1.Message
	size   int
	result *PublishResult
	span   trace.Span
}

// Publisher returns a publisher to topic. A nil cfg takes the defaults. Topic names are
// checked by the broker: a bad one fails each publish with INVALID_ARGUMENT.
func (c *Client) Publisher(topic string, cfg *PublisherConfig) *Publisher {
	var conf PublisherConfig
	if cfg != nil {
		conf = *cfg
	}
	conf = conf.withDefaults()
	return &Publisher{
		client: c,
		topic:  topic,
		spans:  c.tracing.publishTemplate(topic),
		cfg:    conf,
		flow:   newFlowController(conf.MaxOutstandingMessages, conf.MaxOutstandingBytes),
		keys:   map[string]*keyQueue{},
		live:   map[*batch]struct{}{},
	}
}

// Topic returns the publisher's topic.
func (p *Publisher) Topic() string { return p.topic }

// Publish queues msg for sending and returns its future result. It starts the message's
// producer span (a child of the span in ctx) and writes its trace context into the sent
// attributes. It waits only while the publisher's outstanding bounds are reached; ctx does
// not cancel the publish once queued. Messages with the same ordering key reach the broker
// in the order of their Publish calls.
func (p *Publisher) Publish(ctx context.Context, msg *Message) *PublishResult {
	r := newPublishResult()
	if msg == nil {
		r.set(Receipt{}, fmt.Errorf("nervebus: publish to topic %q: nil message", p.topic))
		return r
	}
	attrs := make(map[string]string, len(msg.Attributes)+2)
	maps.Copy(attrs, msg.Attributes)
	id := msg.ID
	if id == "" {
		id = rand.Text()
	}
	span := p.client.tracing.startPublish(ctx, p.spans, msg, attrs, id)
	o := &outgoing{msg: msg.toProto(attrs, id), result: r, span: span}
	o.size = wireSize(msg.Data, attrs, msg.OrderingKey, id)

	if err := p.admissible(msg.OrderingKey); err != nil {
		o.fail(err)
		return r
	}
	if err := p.flow.acquire(ctx, o.size); err != nil {
		o.fail(fmt.Errorf("nervebus: publish to topic %q: waiting for room: %w", p.topic, err))
		return r
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.admissibleLocked(msg.OrderingKey); err != nil {
		p.flow.release(o.size)
		o.fail(err)
		return r
	}
	q := p.keys[msg.OrderingKey]
	if q == nil {
		q = &keyQueue{key: msg.OrderingKey}
		p.keys[msg.OrderingKey] = q
	}
	if q.cur != nil && (len(q.cur.msgs)+1 > p.cfg.CountThreshold || q.cur.bytes+o.size > p.cfg.ByteThreshold) {
		p.closeBatch(q)
	}
	if q.cur == nil {
		b := &batch{key: q.key, done: make(chan struct{})}
		q.cur = b
		p.live[b] = struct{}{}
		q.timer = time.AfterFunc(p.cfg.DelayThreshold, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if q.cur == b {
				p.closeBatch(q)
			}
		})
	}
	q.cur.msgs = append(q.cur.msgs, o)
	q.cur.bytes += o.size
	if len(q.cur.msgs) >= p.cfg.CountThreshold || q.cur.bytes >= p.cfg.ByteThreshold {
		p.closeBatch(q)
	}
	return r
}

func (p *Publisher) admissible(key string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.admissibleLocked(key)
}

func (p *Publisher) admissibleLocked(key string) error {
	if p.closed {
		return fmt.Errorf("nervebus: publish to topic %q: %w", p.topic, ErrPublisherClosed)
	}
	if q := p.keys[key]; q != nil && q.paused != nil {
		return p.pausedError(key, q.paused)
	}
	return nil
}

// ResumePublish lets messages of an ordering key be published again after a failure paused
// the key (see [ErrOrderingKeyPaused]).
func (p *Publisher) ResumePublish(orderingKey string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q := p.keys[orderingKey]; q != nil {
		q.paused = nil
		p.forgetIfIdle(q)
	}
}

// closeBatch ends the filling of q's current pack and queues it. Called with p.mu held.
func (p *Publisher) closeBatch(q *keyQueue) {
	b := q.cur
	if b == nil {
		return
	}
	q.cur = nil
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	switch {
	case q.key == "":
		p.sendQ = append(p.sendQ, b)
	case q.busy:
		q.waiting = append(q.waiting, b)
	default:
		q.busy = true
		p.sendQ = append(p.sendQ, b)
	}
	p.pump()
}

// pump starts sending queued packs while the in-flight bound allows. Called with p.mu held.
func (p *Publisher) pump() {
	for p.inFlight < p.cfg.MaxInFlightPacks && len(p.sendQ) > 0 {
		b := p.sendQ[0]
		p.sendQ[0] = nil
		p.sendQ = p.sendQ[1:]
		p.inFlight++
		go p.send(b)
	}
}

// send sends one pack, retrying retryable failures, and settles its messages. When the broker
// refuses the pack for one bad message (INVALID_ARGUMENT naming messages[i]), only that message
// fails and the others are sent again; messages of its ordering key after it fail as paused.
func (p *Publisher) send(b *batch) {
	msgs := b.msgs
	var err error // the failure that pauses the pack's ordering key, if any
	for len(msgs) > 0 {
		resp, sendErr := p.sendWithRetry(p.request(msgs))
		if i, own := badMessage(sendErr, len(msgs)); own != nil {
			bad := msgs[i]
			bad.fail(fmt.Errorf("nervebus: publish to topic %q: %w", p.topic, own))
			p.flow.release(bad.size)
			if b.key == "" {
				msgs = append(msgs[:i:i], msgs[i+1:]...)
				continue
			}
			// The pack holds one ordering key: what follows the bad message must not overtake it.
			err = own
			for _, o := range msgs[i+1:] {
				o.fail(p.pausedError(b.key, own))
				p.flow.release(o.size)
			}
			msgs = msgs[:i:i]
			continue
		}
		if sendErr == nil && len(resp.GetResults()) != len(msgs) {
			sendErr = fmt.Errorf("nervebus: publish to topic %q: the broker answered %d results for %d messages",
				p.topic, len(resp.GetResults()), len(msgs))
		}
		for i, o := range msgs {
			if sendErr != nil {
				o.fail(sendErr)
			} else {
				res := resp.GetResults()[i]
				o.succeed(Receipt{
					Seq:       res.GetSeq(),
					TraceID:   res.GetTraceId(),
					MessageID: o.msg.GetMessageId(),
					Outcome:   outcomeFromProto(res.GetOutcome()),
				})
			}
			p.flow.release(o.size)
		}
		if sendErr != nil {
			err = sendErr
		}
		break
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight--
	delete(p.live, b)
	close(b.done)
	if b.key != "" {
		q := p.keys[b.key]
		switch {
		case err != nil:
			// Later packs of the key must not overtake the failed one: fail them and refuse
			// the key until ResumePublish.
			q.paused = err
			paused := p.pausedError(b.key, err)
			if q.cur != nil {
				p.closeBatchFailed(q.cur, paused)
				q.cur = nil
				if q.timer != nil {
					q.timer.Stop()
					q.timer = nil
				}
			}
			for _, w := range q.waiting {
				p.closeBatchFailed(w, paused)
			}
			q.waiting = nil
			q.busy = false
		case len(q.waiting) > 0:
			p.sendQ = append(p.sendQ, q.waiting[0])
			q.waiting[0] = nil
			q.waiting = q.waiting[1:]
		default:
			q.busy = false
			p.forgetIfIdle(q)
		}
	} else if q := p.keys[""]; q != nil {
		p.forgetIfIdle(q)
	}
	p.pump()
}

// request makes the SendPack request of msgs.
func (p *Publisher) request(msgs []*outgoing) *nervebusv1.SendPackRequest {
	req := &nervebusv1.SendPackRequest{Topic: p.topic, Messages: make([]*nervebusv1.Message, len(msgs))}
	for i, o := range msgs {
		req.Messages[i] = o.msg
	}
	return req
}

// pausedError is the error of a message refused because its ordering key is paused by cause.
func (p *Publisher) pausedError(key string, cause error) error {
	return fmt.Errorf("nervebus: publish to topic %q: %w", p.topic, &keyPausedError{key: key, cause: cause})
}

// closeBatchFailed fails every message of a pack that will not be sent. Called with p.mu held.
func (p *Publisher) closeBatchFailed(b *batch, err error) {
	for _, o := range b.msgs {
		o.fail(err)
		p.flow.release(o.size)
	}
	delete(p.live, b)
	close(b.done)
}

// forgetIfIdle drops the queue of a key with nothing buffered, so that publishing under many
// keys does not grow the map for ever. Called with p.mu held.
func (p *Publisher) forgetIfIdle(q *keyQueue) {
	if q.cur == nil && !q.busy && len(q.waiting) == 0 && q.paused == nil {
		delete(p.keys, q.key)
	}
}

func (p *Publisher) sendWithRetry(req *nervebusv1.SendPackRequest) (*nervebusv1.SendPackResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, p.cfg.AttemptTimeout)
		var trailer metadata.MD
		resp, err := p.client.publisherFor(p.topic).SendPack(actx, req, grpc.Trailer(&trailer))
		attemptTimedOut := actx.Err() != nil && ctx.Err() == nil
		if Code(err) == codes.Canceled && actx.Err() == nil && !p.connClosed() {
			err = cancelledByPeer(err)
		}
		acancel()
		if err == nil {
			return resp, nil
		}
		p.client.callFailed(p.topic, err, trailer)
		err = internalOutcomeUnknown(err)
		if !(IsRetryable(err) || attemptTimedOut) || ctx.Err() != nil {
			return nil, p.wrap(err, attempt+1)
		}
		if sleepCtx(ctx, p.cfg.RetryBackoff.Delay(attempt)) != nil {
			return nil, p.wrap(err, attempt+1)
		}
	}
}

// connClosed reports whether the client's own connection was closed, which fails calls with
// CANCELLED too.
func (p *Publisher) connClosed() bool {
	conn, ok := p.client.conn.(*grpc.ClientConn)
	return ok && conn.GetState() == connectivity.Shutdown
}

// cancelledByPeer turns a CANCELLED the publisher did not cause (its contexts still live, its
// connection open) into UNAVAILABLE: the broker or the network cut the call, for example an
// RST_STREAM during a broker restart, so whether the pack landed is unknown, and a retry with
// the same message ids settles it.
func cancelledByPeer(err error) error {
	return status.Errorf(codes.Unavailable, "call cancelled by the broker or the network, outcome unknown: %s",
		status.Convert(err).Message())
}

// internalOutcomeUnknown turns an INTERNAL into UNAVAILABLE. For a publish it is most often
// the connection reset under the call: the broker's HTTP/2 layer closes a connection whose
// client resets streams too fast (nghttp2's rapid-reset protection), failing every call on it
// ("RST_STREAM with error code: INTERNAL_ERROR"); it may also be the broker failing mid-append.
// Either way the pack may be stored, and a retry with the same message ids settles it. Every
// INTERNAL, not only the transport's wording, which differs between grpc-go, grpc-js and gRPC
// C-core (the same rule in the three clients).
func internalOutcomeUnknown(err error) error {
	if Code(err) != codes.Internal {
		return err
	}
	return status.Errorf(codes.Unavailable, "call failed INTERNAL, outcome unknown: %s", status.Convert(err).Message())
}

func (p *Publisher) wrap(err error, attempts int) error {
	if attempts > 1 {
		return fmt.Errorf("nervebus: publish to topic %q (%d attempts): %w", p.topic, attempts, err)
	}
	return fmt.Errorf("nervebus: publish to topic %q: %w", p.topic, err)
}

// Flush sends every buffered pack now and waits until all messages published before the call
// are answered, or until ctx ends (the packs go on).
func (p *Publisher) Flush(ctx context.Context) error {
	if err := p.flush(ctx); err != nil {
		return fmt.Errorf("nervebus: flush topic %q: %w", p.topic, err)
	}
	return nil
}

func (p *Publisher) flush(ctx context.Context) error {
	p.mu.Lock()
	for _, q := range p.keys {
		p.closeBatch(q)
	}
	dones := make([]chan struct{}, 0, len(p.live))
	for b := range p.live {
		dones = append(dones, b.done)
	}
	p.mu.Unlock()
	for _, d := range dones {
		select {
		case <-d:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops accepting messages (later publishes fail with [ErrPublisherClosed]), sends what
// is buffered and waits for every answer, or until ctx ends. Calling it again only waits.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	if err := p.flush(ctx); err != nil {
		return fmt.Errorf("nervebus: close publisher of topic %q: %w", p.topic, err)
	}
	return nil
}

// succeed ends the message's span, then resolves its result (so that a span exporter has the
// span by the time Get returns).
func (o *outgoing) succeed(r Receipt) {
	endPublish(o.span, r, nil)
	o.result.set(r, nil)
}

func (o *outgoing) fail(err error) {
	endPublish(o.span, Receipt{}, err)
	o.result.set(Receipt{MessageID: o.msg.GetMessageId()}, err)
}
