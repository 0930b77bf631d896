package nervebus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// Bounds of ack deadlines and deadline extensions that the broker accepts.
const (
	minDeadline = time.Second
	maxDeadline = 10 * time.Minute
)

// SubscriberConfig tunes a [Subscriber]. Zero fields take the defaults given with each field.
type SubscriberConfig struct {
	// MaxOutstandingMessages is the flow-control window: the most messages delivered and not
	// yet settled (acked, nacked or terminated), whether their handler runs, waits for a slot,
	// or returned without settling. Default 1000, at most 100000.
	MaxOutstandingMessages int
	// MaxOutstandingBytes bounds the payload bytes of those messages. 0 means no bound;
	// otherwise it must be at least the broker's max message size (1 MiB by default).
	MaxOutstandingBytes int64
	// MaxConcurrentHandlers is how many handlers may run at once. Default (and at most)
	// MaxOutstandingMessages. Handlers of messages with the same ordering key always run one
	// at a time, in delivery order.
	MaxConcurrentHandlers int
	// AckDeadline is how long a delivered message stays leased before the broker redelivers
	// it, unless extended: 1 s – 10 min. Zero uses the subscription's (30 s by default).
	AckDeadline time.Duration
	// MaxExtension is how long the subscriber keeps extending the lease of a message that is
	// not settled, counted from its delivery; after that the broker may redeliver it. Default
	// 60 min; negative disables extensions.
	MaxExtension time.Duration
	// Start is where a new subscription starts (ignored when it exists). Default
	// [StartLatest].
	Start StartPosition
	// ConfirmAcks asks the broker to confirm acks once durable, for [Message.AckWithResult].
	ConfirmAcks bool
	// ConsumerName names this consumer in the broker's stats (at most 128 bytes).
	ConsumerName string
	// ShutdownTimeout is how long Receive waits, once its context ends, for running handlers
	// to settle their messages. Then it nacks what is left (for immediate redelivery) and
	// cancels the handlers' context. Default 30 s; negative nacks at once.
	ShutdownTimeout time.Duration
	// ReconnectBackoff spaces the attempts to reopen a broken Receive stream. Default 100 ms
	// doubling to 10 s.
	ReconnectBackoff Backoff
}

func (c SubscriberConfig) withDefaults() SubscriberConfig {
	if c.MaxOutstandingMessages <= 0 {
		c.MaxOutstandingMessages = 1000
	}
	c.MaxOutstandingMessages = min(c.MaxOutstandingMessages, 100000)
	if c.MaxConcurrentHandlers <= 0 || c.MaxConcurrentHandlers > c.MaxOutstandingMessages {
		c.MaxConcurrentHandlers = c.MaxOutstandingMessages
	}
	if c.MaxExtension == 0 {
		c.MaxExtension = time.Hour
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	c.ReconnectBackoff = c.ReconnectBackoff.withDefaults(100*time.Millisecond, 10*time.Second)
	return c
}

// StartPosition is where a new subscription starts; build one with [StartLatest],
// [StartEarliest], [StartAtSeq] or [StartAtTime].
type StartPosition struct {
	kind int
	seq  uint64
	at   time.Time
}

const (
	startLatest = iota
	startEarliest
	startSeq
	startTime
)

// StartLatest starts a new subscription after the last message published so far.
func StartLatest() StartPosition { return StartPosition{kind: startLatest} }

// StartEarliest starts a new subscription at the oldest message still retained.
func StartEarliest() StartPosition { return StartPosition{kind: startEarliest} }

// StartAtSeq starts a new subscription at seq (the first message delivered).
func StartAtSeq(seq uint64) StartPosition { return StartPosition{kind: startSeq, seq: seq} }

// StartAtTime starts a new subscription at the first message published at or after t.
func StartAtTime(t time.Time) StartPosition { return StartPosition{kind: startTime, at: t} }

func (p StartPosition) apply(s *nervebusv1.Subscribe) {
	switch p.kind {
	case startEarliest:
		s.Start = &nervebusv1.Subscribe_StartPoint{StartPoint: nervebusv1.StartPoint_START_POINT_EARLIEST}
	case startSeq:
		s.Start = &nervebusv1.Subscribe_StartSeq{StartSeq: p.seq}
	case startTime:
		s.Start = &nervebusv1.Subscribe_StartTime{StartTime: timestamppb.New(p.at)}
	default:
		s.Start = &nervebusv1.Subscribe_StartPoint{StartPoint: nervebusv1.StartPoint_START_POINT_LATEST}
	}
}

// Subscriber receives the messages of one subscription. Make one with [Client.Subscriber].
type Subscriber struct {
	client       *Client
	topic        string
	subscription string
	spans        spanTemplate // of its consumer spans
	cfg          SubscriberConfig
	running      atomic.Bool
}

// Subscriber returns a subscriber of subscription on topic. A nil cfg takes the defaults. The
// subscription is created on first use (unless the broker forbids it), starting at
// cfg.Start. Names are checked by the broker: a bad one makes Receive fail with
// INVALID_ARGUMENT.
func (c *Client) Subscriber(topic, subscription string, cfg *SubscriberConfig) *Subscriber {
	var conf SubscriberConfig
	if cfg != nil {
		conf = *cfg
	}
	return &Subscriber{
		client:       c,
		topic:        topic,
		subscription: subscription,
		spans:        c.tracing.processTemplate(topic, subscription),
		cfg:          conf.withDefaults(),
	}
}

// Topic returns the subscriber's topic.
func (s *Subscriber) Topic() string { return s.topic }

// Subscription returns the subscriber's subscription name.
func (s *Subscriber) Subscription() string { return s.subscription }

// Receive streams the subscription's messages and calls handler for each, concurrently (up to
// MaxConcurrentHandlers, one at a time per ordering key), until ctx ends or a non-retryable
// error occurs. The handler must settle each message with Ack, Nack, NackWithDelay or
// Terminate, at any time (also after returning); until then the message counts against the
// window and its lease is extended. Its context carries the message's process span, a child of
// the producer's span.
//
// A stream that breaks with a retryable status (UNAVAILABLE, for example while the broker
// restarts) is reopened with backoff; acks are by seq, so those made meanwhile still count.
// When ctx ends, Receive stops taking messages (those not started are nacked for immediate
// redelivery), waits up to ShutdownTimeout for running handlers to return, nacks what is still
// unsettled, sends the last acks and returns nil. Otherwise it returns
// the error, which keeps its gRPC status ([Code]). Only one Receive may run at a time on a
// Subscriber. Handlers that ignore their context past the timeout may still be running when
// Receive returns; their settlements are then ignored.
func (s *Subscriber) Receive(ctx context.Context, handler func(context.Context, *Message)) error {
	if handler == nil {
		return errors.New("nervebus: Receive: nil handler")
	}
	if !s.running.CompareAndSwap(false, true) {
		return ErrReceiveInProgress
	}
	defer s.running.Store(false)
	sess := newSession(s, handler, ctx)
	err := sess.run(ctx)
	if err != nil {
		return fmt.Errorf("nervebus: receive from topic %q subscription %q: %w", s.topic, s.subscription, err)
	}
	return nil
}

// AckResult is the future result of [Message.AckWithResult].
type AckResult struct {
	done chan struct{}
	err  error
	once sync.Once
}

func newAckResult() *AckResult { return &AckResult{done: make(chan struct{})} }

func (r *AckResult) set(err error) {
	r.once.Do(func() {
		r.err = err
		close(r.done)
	})
}

// Ready returns a channel that is closed when the result is available.
func (r *AckResult) Ready() <-chan struct{} { return r.done }

// Get waits for the result: nil when the ack was confirmed (or sent, without ConfirmAcks),
// [ErrAckNotConfirmed] when Receive ended first, [ErrMessageSettled] when the message had
// been settled before, or ctx.Err().
func (r *AckResult) Get(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type settleKind int

const (
	settleNone settleKind = iota
	settleAck
	settleNack
	settleTerminate
)

// lease is the subscriber's record of one delivered, unsettled message.
type lease struct {
	sess       *session
	msg        *Message
	seq        uint64
	key        string
	gen        int // the stream it is leased on
	receivedAt time.Time
	leaseUntil time.Time
	settled    settleKind
	started    bool
}

func (l *lease) settle(kind settleKind, delay time.Duration, result *AckResult) {
	l.sess.settle(l, kind, delay, result)
}

// session is the state of one Receive call, across the streams it opens.
type session struct {
	sub     *Subscriber
	cfg     SubscriberConfig
	handler func(context.Context, *Message)

	handlerCtx     context.Context
	cancelHandlers context.CancelFunc
	handlers       sync.WaitGroup

	wake chan struct{} // something to send

	mu          sync.Mutex
	gen         int // current stream generation
	ackDeadline time.Duration
	outstanding map[uint64]*lease
	orphans     int // outstanding leases of earlier streams
	// Requests waiting to be sent.
	manualExts map[time.Duration][]uint64 // ExtendDeadline calls, by deadline
	acks       map[uint64]struct{}
	nacks      map[uint64]*nervebusv1.Nack
	terms      map[uint64]struct{}
	heldNacks  map[uint64]*nervebusv1.Nack // nacks lost with a stream, applied on redelivery
	sentWindow uint32
	// Acks written but not confirmed yet (ConfirmAcks), and who waits for them.
	unconfirmed map[uint64]struct{}
	ackWaiters  map[uint64][]*AckResult
	// Acks and terminations the broker may not have yet: sent again on a new stream, and
	// applied to a redelivery instead of handing it to a handler.
	settles *unconfirmedSettles
	// Handler scheduling.
	queue    []*lease
	keyBusy  map[string][]*lease
	running  int
	stopping bool
	drained  chan struct{} // closed once stopping and nothing is outstanding
	closed   bool
	// Closed once the handlers returned after the stop, or the shutdown timeout passed.
	handlersStopped chan struct{}
}

func newSession(s *Subscriber, handler func(context.Context, *Message), ctx context.Context) *session {
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &session{
		sub:            s,
		cfg:            s.cfg,
		handler:        handler,
		handlerCtx:     hctx,
		cancelHandlers: cancel,
		wake:           make(chan struct{}, 1),
		ackDeadline:    30 * time.Second,
		outstanding:    map[uint64]*lease{},
		manualExts:     map[time.Duration][]uint64{},
		acks:           map[uint64]struct{}{},
		nacks:          map[uint64]*nervebusv1.Nack{},
		terms:          map[uint64]struct{}{},
		heldNacks:      map[uint64]*nervebusv1.Nack{},
		unconfirmed:    map[uint64]struct{}{},
		ackWaiters:     map[uint64][]*AckResult{},
		keyBusy:        map[string][]*lease{},
		drained:        make(chan struct{}),

		handlersStopped: make(chan struct{}),
		// 2 × the window: a stream has at most a window of messages unacked, so at most that
		// many of its acks can be unread by the broker when it ends; the messages still held
		// from the stream before (settled later) are at most as many again.
		settles: newUnconfirmedSettles(2 * s.cfg.MaxOutstandingMessages),
	}
}

func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run opens streams until ctx ends and the session has drained, or a fatal error.
func (s *session) run(ctx context.Context) error {
	defer s.finish()
	stopWatch := context.AfterFunc(ctx, s.beginShutdown)
	defer stopWatch()

	// While stopping, reconnects are tried only until this time; after it Receive returns.
	var giveUp <-chan time.Time
	attempt := 0
	for {
		subscribed, err := s.runStream()
		if s.isDrained() && (err == nil || s.pendingEmpty()) {
			<-s.handlersStopped
			return nil
		}
		if subscribed {
			attempt = 0
		}
		if err != nil && !streamRetryable(err) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ctx.Err() != nil && giveUp == nil {
			giveUp = time.After(max(s.cfg.ShutdownTimeout, 0) + 5*time.Second)
		}
		delay := s.cfg.ReconnectBackoff.Delay(attempt)
		attempt++
		drained := s.drained
		if s.isDrained() {
			drained = nil // already drained with settlements to send: wait out the backoff
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-drained:
			// Stopped while waiting to reconnect: done, unless settlements wait to be sent.
			t.Stop()
			if s.pendingEmpty() {
				<-s.handlersStopped
				return nil
			}
		case <-giveUp:
			t.Stop()
			return nil
		}
	}
}

// runStream runs one Receive stream until it breaks or, once drained, is closed. subscribed
// tells whether the broker accepted the subscription.
func (s *session) runStream() (subscribed bool, err error) {
	sctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := s.sub.client.receiverFor(s.sub.topic).Receive(sctx)
	if err != nil {
		return false, err
	}
	first, gen := s.attach()
	if err := stream.Send(&nervebusv1.ReceiveRequest{Subscribe: first}); err != nil {
		return false, recvError(stream, err)
	}

	var subscribedFlag atomic.Bool
	recvDone := make(chan error, 1)
	go func() {
		recvDone <- s.recvLoop(stream, gen, &subscribedFlag)
		cancel()
	}()

	closedSend, _ := s.sendLoop(sctx, stream, gen)
	if closedSend {
		// Drained: the broker ends the stream after the last requests.
		select {
		case err = <-recvDone:
		case <-time.After(5 * time.Second):
			cancel()
			err = <-recvDone
		}
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return subscribedFlag.Load(), err
	}
	cancel()
	err = <-recvDone
	if err == nil || errors.Is(err, io.EOF) {
		err = errUnexpectedEnd
	}
	s.sub.client.callFailed(s.sub.topic, err, stream.Trailer())
	return subscribedFlag.Load(), err
}

// recvError returns the stream's status after a failed Send (grpc-go reports io.EOF from Send
// and the real error from Recv).
func recvError(stream nervebusv1.SubscriberService_ReceiveClient, sendErr error) error {
	if errors.Is(sendErr, io.EOF) {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
	return sendErr
}

// attach starts a new stream generation and returns its subscribe request and number. Everything
// outstanding belongs to the previous stream now: the broker redelivers it, and a redelivery
// to this stream is adopted rather than handled again.
func (s *session) attach() (*nervebusv1.Subscribe, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.orphans = 0
	for _, l := range s.outstanding {
		if l.settled == settleNone {
			s.orphans++
		}
	}
	// Nacks only apply to messages leased to the stream: keep them for the redelivery.
	for seq, n := range s.nacks {
		s.heldNacks[seq] = n
	}
	clear(s.nacks)
	clear(s.manualExts) // the leases they extend are gone
	// Acks count whatever stream they come on: send unconfirmed ones again.
	for seq := range s.unconfirmed {
		s.acks[seq] = struct{}{}
	}
	clear(s.unconfirmed)
	window := max(s.windowLocked(), 1) // a subscribe needs at least 1; a window change may be 0
	s.sentWindow = window
	sub := &nervebusv1.Subscribe{
		Topic:        s.sub.topic,
		Subscription: s.sub.subscription,
		Window: &nervebusv1.Window{
			MaxMessages: window,
			MaxBytes:    uint64(max(s.cfg.MaxOutstandingBytes, 0)),
		},
		ConfirmAcks:  s.cfg.ConfirmAcks,
		ConsumerName: s.cfg.ConsumerName,
	}
	if s.cfg.AckDeadline > 0 {
		sub.AckDeadline = durationpb.New(s.cfg.AckDeadline)
	}
	s.cfg.Start.apply(sub)
	s.signal()
	return sub, s.gen
}

// windowLocked is the message window for the current stream: messages still held from earlier
// streams take their share, so that the handlers never hold more than MaxOutstandingMessages;
// a stopping session takes nothing new (0 pauses the stream).
func (s *session) windowLocked() uint32 {
	if s.stopping {
		return 0
	}
	return uint32(max(s.cfg.MaxOutstandingMessages-s.orphans, 0))
}

func (s *session) recvLoop(stream nervebusv1.SubscriberService_ReceiveClient, gen int, subscribed *atomic.Bool) error {
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if sub := resp.GetSubscribed(); sub != nil {
			subscribed.Store(true)
			s.resendSettles(sub.GetFloor())
			if d := sub.GetAckDeadline(); d != nil && d.AsDuration() > 0 {
				s.mu.Lock()
				s.ackDeadline = d.AsDuration()
				s.mu.Unlock()
				s.signal() // the send loop adapts its extension ticker
			}
		}
		if hb := resp.GetHeartbeat(); hb != nil {
			s.mu.Lock()
			s.settles.setFloor(hb.GetFloor())
			s.mu.Unlock()
		}
		if ds := resp.GetDeliveries(); len(ds) > 0 {
			s.deliver(gen, ds)
		}
		if ar := resp.GetAckResults(); ar != nil {
			s.confirm(ar.GetAckedSeqs(), nil)
			s.confirm(ar.GetAlreadyAckedSeqs(), nil)
			s.confirm(ar.GetIgnoredSeqs(), errAckIgnored)
		}
	}
}

// deliver takes a batch of deliveries of stream gen.
func (s *session) deliver(gen int, ds []*nervebusv1.Delivery) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range ds {
		seq := d.GetSeq()
		if l := s.outstanding[seq]; l != nil && l.gen != gen {
			// Still being handled since an earlier stream: lease it here, do not handle twice.
			l.gen = gen
			l.leaseUntil = now.Add(s.ackDeadline)
			s.orphans--
			continue
		}
		if _, ok := s.acks[seq]; ok {
			continue // acked already; the pending ack settles this lease too
		}
		if _, ok := s.unconfirmed[seq]; ok {
			// Acked and the ack written: the broker leased it again before reading the ack (a
			// reconnect), which settles this lease too. Were the ack ignored, the lease would
			// expire and the message come again.
			continue
		}
		if _, ok := s.terms[seq]; ok {
			continue
		}
		if kind, ok := s.settles.redelivered(seq, int(d.GetAttempt())); ok {
			// Settled, and the settlement written on a stream that ended before the broker
			// read it: it applies to this lease too.
			if kind == settleAck {
				s.acks[seq] = struct{}{}
			} else {
				s.terms[seq] = struct{}{}
			}
			s.signal()
			continue
		}
		if n, ok := s.heldNacks[seq]; ok {
			delete(s.heldNacks, seq)
			s.nacks[seq] = n
			s.signal()
			continue
		}
		if s.stopping {
			s.nacks[seq] = &nervebusv1.Nack{Seq: seq, Delay: durationpb.New(0)}
			s.signal()
			continue
		}
		m := messageFromDelivery(d)
		l := &lease{
			sess:       s,
			msg:        m,
			seq:        seq,
			key:        m.OrderingKey,
			gen:        gen,
			receivedAt: now,
			leaseUntil: now.Add(s.ackDeadline),
		}
		m.lease = l
		if old := s.outstanding[seq]; old != nil && old.gen == gen {
			// Redelivered on this stream after its lease ran out (MaxExtension): handle again.
			old.gen = -1
		}
		s.outstanding[seq] = l
		s.enqueueLocked(l)
	}
	s.updateWindowLocked()
}

// enqueueLocked starts l's handler, or queues it behind its ordering key or a free slot.
func (s *session) enqueueLocked(l *lease) {
	if l.key != "" {
		if waiting, busy := s.keyBusy[l.key]; busy {
			s.keyBusy[l.key] = append(waiting, l)
			return
		}
	}
	if s.running >= s.cfg.MaxConcurrentHandlers || len(s.queue) > 0 {
		s.queue = append(s.queue, l)
		return
	}
	s.startLocked(l)
}

func (s *session) startLocked(l *lease) {
	s.running++
	if l.key != "" {
		s.keyBusy[l.key] = nil
	}
	l.started = true
	s.handlers.Add(1)
	go s.handle(l)
}

func (s *session) handle(l *lease) {
	defer s.handlers.Done()
	ctx, span := s.sub.client.tracing.startProcess(s.handlerCtx, s.sub.spans, l.msg)
	func() {
		defer func() {
			s.mu.Lock()
			kind := l.settled
			s.mu.Unlock()
			span.SetAttributes(AttrSettlement.String(settlementName(kind)))
			span.End()
		}()
		s.handler(ctx, l.msg)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if l.key != "" {
		s.releaseKeyLocked(l.key)
	}
	s.dispatchLocked()
}

// releaseKeyLocked starts the next unsettled message waiting behind key, whose previous
// handler returned, or frees the key.
func (s *session) releaseKeyLocked(key string) {
	for {
		waiting := s.keyBusy[key]
		if len(waiting) == 0 {
			delete(s.keyBusy, key)
			return
		}
		next := waiting[0]
		s.keyBusy[key] = waiting[1:]
		if next.settled == settleNone && !s.stopping {
			s.running++
			next.started = true
			s.handlers.Add(1)
			go s.handle(next)
			return
		}
	}
}

// dispatchLocked starts queued handlers while slots are free.
func (s *session) dispatchLocked() {
	for s.running < s.cfg.MaxConcurrentHandlers && len(s.queue) > 0 {
		l := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if l.settled != settleNone || s.stopping {
			continue
		}
		if l.key != "" {
			if waiting, busy := s.keyBusy[l.key]; busy {
				s.keyBusy[l.key] = append(waiting, l)
				continue
			}
		}
		s.startLocked(l)
	}
}

// settle records a settlement and queues its request.
func (s *session) settle(l *lease, kind settleKind, delay time.Duration, result *AckResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.settled != settleNone || s.closed {
		if result != nil {
			if s.closed {
				result.set(ErrAckNotConfirmed)
			} else {
				result.set(ErrMessageSettled)
			}
		}
		return
	}
	l.settled = kind
	current := l.gen == s.gen
	if s.outstanding[l.seq] == l {
		delete(s.outstanding, l.seq)
		if !current && l.gen >= 0 {
			s.orphans--
		}
	}
	switch kind {
	case settleAck:
		s.acks[l.seq] = struct{}{}
		s.settles.add(l.seq, l.msg.Attempt, settleAck)
		delete(s.nacks, l.seq)
		if result != nil {
			s.ackWaiters[l.seq] = append(s.ackWaiters[l.seq], result)
		}
	case settleNack:
		// A nack only applies to a message leased to the current stream; an earlier stream's
		// messages are being redelivered already.
		if current {
			n := &nervebusv1.Nack{Seq: l.seq}
			if delay >= 0 {
				n.Delay = durationpb.New(delay)
			}
			s.nacks[l.seq] = n
		}
	case settleTerminate:
		s.terms[l.seq] = struct{}{}
		s.settles.add(l.seq, l.msg.Attempt, settleTerminate)
		delete(s.nacks, l.seq)
	}
	s.updateWindowLocked()
	s.checkDrainedLocked()
	s.signal()
}

func (s *session) updateWindowLocked() {
	if s.windowLocked() != s.sentWindow {
		s.signal()
	}
}

// extendNow queues a deadline extension of l's lease, asked for by the application.
func (s *session) extendNow(l *lease, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A lease of an earlier stream is gone: the broker redelivers the message to this one.
	if l.settled != settleNone || s.closed || l.gen != s.gen || s.outstanding[l.seq] != l {
		return
	}
	if d <= 0 {
		d = s.ackDeadline
	}
	d = min(max(d, minDeadline), maxDeadline)
	s.manualExts[d] = append(s.manualExts[d], l.seq)
	l.leaseUntil = time.Now().Add(d)
	s.signal()
}

// confirm resolves the ack results of seqs the broker confirmed (err nil) or ignored.
func (s *session) confirm(seqs []uint64, err error) {
	if len(seqs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seq := range seqs {
		delete(s.unconfirmed, seq)
		s.settles.forget(seq)
		for _, r := range s.ackWaiters[seq] {
			r.set(err)
		}
		delete(s.ackWaiters, seq)
	}
	if s.stopping {
		s.signal() // the send loop may be waiting for the last confirmations
	}
}

// resendSettles runs when a stream is subscribed: the kept acks above the reported floor go
// out again on it (an ack counts on any stream; the one that carried it may have ended first).
func (s *session) resendSettles(floor uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settles.setFloor(floor)
	for _, seq := range s.settles.acks() {
		// Not those already sent again as unconfirmed (ConfirmAcks): once is enough.
		if _, ok := s.unconfirmed[seq]; ok {
			continue
		}
		s.acks[seq] = struct{}{}
	}
	s.signal()
}

// sendLoop writes pending requests and deadline extensions to the stream. It returns
// closedSend once the session drained and the stream was half-closed, or the error that ended
// the stream.
func (s *session) sendLoop(ctx context.Context, stream nervebusv1.SubscriberService_ReceiveClient, gen int) (closedSend bool, err error) {
	interval := s.tickInterval()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	drained := s.drained
	for {
		extend := false
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-s.wake:
		case <-tick.C:
			extend = true
		case <-drained:
			drained = nil
		}
		if iv := s.tickInterval(); iv != interval {
			interval = iv
			tick.Reset(iv)
		}
		req, sentAcks := s.takeRequest(gen, extend)
		if req != nil {
			if err := stream.Send(req); err != nil {
				s.requeue(req)
				return false, err
			}
			s.sent(sentAcks)
		}
		// The broker confirms the acks sent before the half-close before it ends the stream.
		if s.isDrained() && s.unsentEmpty() {
			return true, stream.CloseSend()
		}
	}
}

func (s *session) tickInterval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return min(max(s.ackDeadline/5, 100*time.Millisecond), 5*time.Second)
}

// takeRequest builds the next request from what is pending (nil when nothing is), adding
// deadline extensions when extend is set.
func (s *session) takeRequest(gen int, extend bool) (*nervebusv1.ReceiveRequest, []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req := &nervebusv1.ReceiveRequest{}
	empty := true
	var acks []uint64
	if len(s.acks) > 0 {
		acks = make([]uint64, 0, len(s.acks))
		for seq := range s.acks {
			acks = append(acks, seq)
		}
		clear(s.acks)
		req.AckSeqs = acks
		empty = false
	}
	if len(s.nacks) > 0 {
		for _, n := range s.nacks {
			req.Nacks = append(req.Nacks, n)
		}
		clear(s.nacks)
		empty = false
	}
	if len(s.terms) > 0 {
		for seq := range s.terms {
			req.TerminateSeqs = append(req.TerminateSeqs, seq)
		}
		clear(s.terms)
		empty = false
	}
	if w := s.windowLocked(); w != s.sentWindow {
		req.Window = &nervebusv1.Window{MaxMessages: w, MaxBytes: uint64(max(s.cfg.MaxOutstandingBytes, 0))}
		s.sentWindow = w
		empty = false
	}
	if gen == s.gen && len(s.manualExts) > 0 {
		for d, seqs := range s.manualExts {
			req.ExtendDeadlines = append(req.ExtendDeadlines, &nervebusv1.ExtendDeadline{Seqs: seqs, Deadline: durationpb.New(d)})
		}
		clear(s.manualExts)
		empty = false
	}
	if extend && gen == s.gen {
		if exts := s.extensionsLocked(time.Now()); len(exts) > 0 {
			req.ExtendDeadlines = append(req.ExtendDeadlines, exts...)
			empty = false
		}
	}
	if empty {
		return nil, nil
	}
	return req, acks
}

// extensionsLocked extends the leases of the current stream's unsettled messages that passed
// a third of their deadline, within MaxExtension. With a tick of a fifth of the deadline, an
// extension goes out while at least about half of the lease is left.
func (s *session) extensionsLocked(now time.Time) []*nervebusv1.ExtendDeadline {
	if s.cfg.MaxExtension < 0 {
		return nil
	}
	period := min(max(s.ackDeadline, minDeadline), maxDeadline)
	byDeadline := map[time.Duration][]uint64{}
	for seq, l := range s.outstanding {
		if l.gen != s.gen || l.settled != settleNone || l.leaseUntil.Sub(now) > period*2/3 {
			continue
		}
		left := l.receivedAt.Add(s.cfg.MaxExtension).Sub(now)
		if left <= 0 {
			continue
		}
		d := min(period, left)
		// Whole seconds (at least one), so that few distinct deadlines go out.
		d = max(d.Truncate(time.Second), minDeadline)
		byDeadline[d] = append(byDeadline[d], seq)
		l.leaseUntil = now.Add(d)
	}
	exts := make([]*nervebusv1.ExtendDeadline, 0, len(byDeadline))
	for d, seqs := range byDeadline {
		exts = append(exts, &nervebusv1.ExtendDeadline{Seqs: seqs, Deadline: durationpb.New(d)})
	}
	return exts
}

// requeue puts back the settlements of a request that could not be written.
func (s *session) requeue(req *nervebusv1.ReceiveRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seq := range req.GetAckSeqs() {
		s.acks[seq] = struct{}{}
	}
	for _, n := range req.GetNacks() {
		s.heldNacks[n.GetSeq()] = n
	}
	for _, seq := range req.GetTerminateSeqs() {
		s.terms[seq] = struct{}{}
	}
}

// sent records acks written to the stream.
func (s *session) sent(acks []uint64) {
	if len(acks) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seq := range acks {
		if s.cfg.ConfirmAcks {
			s.unconfirmed[seq] = struct{}{}
			continue
		}
		for _, r := range s.ackWaiters[seq] {
			r.set(nil)
		}
		delete(s.ackWaiters, seq)
	}
}

// beginShutdown runs when Receive's context ends: no new handlers; messages not started are
// nacked for immediate redelivery; after ShutdownTimeout, so are those still unsettled.
func (s *session) beginShutdown() {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return
	}
	s.stopping = true
	for _, l := range s.outstanding {
		if !l.started {
			s.nackNowLocked(l)
		}
	}
	s.queue = nil
	s.checkDrainedLocked()
	s.signal()
	s.mu.Unlock()

	go func() {
		done := make(chan struct{})
		go func() {
			s.handlers.Wait()
			close(done)
		}()
		if s.cfg.ShutdownTimeout > 0 {
			t := time.NewTimer(s.cfg.ShutdownTimeout)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
			}
		}
		s.mu.Lock()
		for _, l := range s.outstanding {
			s.nackNowLocked(l)
		}
		s.checkDrainedLocked()
		s.signal()
		s.mu.Unlock()
		s.cancelHandlers()
		close(s.handlersStopped)
	}()
}

// nackNowLocked settles l with a nack for immediate redelivery.
func (s *session) nackNowLocked(l *lease) {
	if l.settled != settleNone {
		return
	}
	l.settled = settleNack
	delete(s.outstanding, l.seq)
	if l.gen == s.gen {
		s.nacks[l.seq] = &nervebusv1.Nack{Seq: l.seq, Delay: durationpb.New(0)}
	} else if l.gen >= 0 {
		s.orphans--
	}
}

// checkDrainedLocked closes drained once stopping with nothing outstanding.
func (s *session) checkDrainedLocked() {
	if !s.stopping || len(s.outstanding) > 0 {
		return
	}
	select {
	case <-s.drained:
	default:
		close(s.drained)
	}
}

func (s *session) isDrained() bool {
	select {
	case <-s.drained:
		return true
	default:
		return false
	}
}

// unsentEmpty tells whether every settlement was written to the stream.
func (s *session) unsentEmpty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks) == 0 && len(s.nacks) == 0 && len(s.terms) == 0
}

// pendingEmpty tells whether every settlement was written and, with ConfirmAcks, confirmed.
func (s *session) pendingEmpty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acks) == 0 && len(s.nacks) == 0 && len(s.terms) == 0 && (!s.cfg.ConfirmAcks || len(s.unconfirmed) == 0)
}

// finish ends the session: unsettled messages are left to their leases, waiters are told.
func (s *session) finish() {
	s.cancelHandlers()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for seq, rs := range s.ackWaiters {
		for _, r := range rs {
			r.set(ErrAckNotConfirmed)
		}
		delete(s.ackWaiters, seq)
	}
}
