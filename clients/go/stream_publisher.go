package nervebus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// StreamPublisherConfig tunes a [StreamPublisher]. Zero fields take the broker's largest
// credit and the defaults below.
type StreamPublisherConfig struct {
	// MaxMessages is the credit asked for: the most messages sent and not yet confirmed.
	// 0 takes the broker's largest (its max pack count).
	MaxMessages int
	// MaxBytes likewise in bytes (data, attributes, ordering key, message id). 0 takes the
	// broker's largest (its max pack bytes).
	MaxBytes int
	// NoConfirms is fire and forget (for ephemeral topics): the broker sends no confirms, and
	// a batch's result is ready, without receipts, once the batch is written to the stream.
	// Nothing is sent again after a break.
	NoConfirms bool
	// ReconnectBackoff spaces the attempts to reopen a broken stream. Default 100 ms ×2 → 5 s.
	ReconnectBackoff Backoff
	// ReconnectDeadline is how long a broken stream is reopened, from the break, before the
	// batches not confirmed fail with its error. Default (0) 60 s; negative never reopens.
	ReconnectDeadline time.Duration
	// RetryableCodes are the stream errors that reopen the stream; others fail it. Default
	// Unavailable and ResourceExhausted. A stream that ends Internal (the connection reset
	// under it) counts as Unavailable: its batches' outcome is unknown.
	RetryableCodes []codes.Code
}

// BatchResult is the future result of one [StreamPublisher.Send].
type BatchResult struct {
	done     chan struct{}
	ids      []string
	receipts []Receipt
	err      error
}

func (r *BatchResult) set(receipts []Receipt, err error) {
	r.receipts, r.err = receipts, err
	close(r.done)
}

// Ready returns a channel that is closed when the result is available.
func (r *BatchResult) Ready() <-chan struct{} { return r.done }

// Get waits until the batch is durable (or failed) and returns one receipt per message, in
// batch order, or the stream's error; ctx.Err() if ctx ends first.
func (r *BatchResult) Get(ctx context.Context) ([]Receipt, error) {
	select {
	case <-r.done:
		return r.receipts, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// streamBatch is one Send as written: its request (message ids included, so a resend is
// deduplicated), its size in credit and its result.
type streamBatch struct {
	req      *nervebusv1.PublishRequest
	messages int
	bytes    int
	result   *BatchResult
}

// StreamPublisher is a Publish stream on one topic, for high-rate producers: each Send is one
// batch, appended after the stream's earlier batches (its messages get consecutive seqs) and
// confirmed once durable, with the receipts SendPack would give. The broker's credit is the
// flow control: Send waits until the batch fits in the credit left.
//
// A stream that breaks with a retryable status (a broker restart: Unavailable) is reopened with
// backoff, and every batch not confirmed is sent again, in order, with its message ids: the
// broker's deduplication makes a batch appended before the break count once (its receipts then
// say OutcomeDuplicate, with the seqs of the first append). Only a non-retryable status, or no
// reopened stream within ReconnectDeadline, fails the unconfirmed batches. Safe for concurrent
// use; concurrent batches go out in the order they get credit.
type StreamPublisher struct {
	client     *Client
	topic      string
	open       *nervebusv1.PublishRequest
	noConfirms bool
	backoff    Backoff
	deadline   time.Duration
	retryable  map[codes.Code]bool
	ctx        context.Context // the streams' context: ends with Close
	cancel     context.CancelFunc

	// sendMu orders writes to the stream; taken under mu, so batches go out in credit order,
	// and held alone while writing, so confirms are read meanwhile.
	sendMu    sync.Mutex
	mu        sync.Mutex
	stream    nervebusv1.PublisherService_PublishClient
	granted   [2]int         // messages, bytes
	credit    [2]int         // zero while the stream is broken, so Send waits
	changed   chan struct{}  // closed and replaced when credit comes back or the stream ends
	pending   []*streamBatch // written on the current stream, not confirmed, in order
	err       error
	closed    bool
	ended     chan struct{}
	closeOnce sync.Once
}

// StreamPublisher opens a Publish stream on topic and waits (within ctx) until the broker has
// granted its credit; an error opening it is returned as it is (no retry). The stream lives
// until Close, whatever ctx does afterwards, and is reopened when it breaks (see
// [StreamPublisher]).
func (c *Client) StreamPublisher(ctx context.Context, topic string, cfg *StreamPublisherConfig) (*StreamPublisher, error) {
	var conf StreamPublisherConfig
	if cfg != nil {
		conf = *cfg
	}
	if conf.MaxMessages < 0 || conf.MaxBytes < 0 || conf.MaxMessages > 1<<32-1 {
		return nil, fmt.Errorf("nervebus: stream publisher on topic %q: MaxMessages and MaxBytes must be ≥ 0", topic)
	}
	if conf.ReconnectDeadline == 0 {
		conf.ReconnectDeadline = 60 * time.Second
	}
	retryable := map[codes.Code]bool{codes.Unavailable: true, codes.ResourceExhausted: true}
	if conf.RetryableCodes != nil {
		retryable = map[codes.Code]bool{}
		for _, code := range conf.RetryableCodes {
			retryable[code] = true
		}
	}
	streamCtx, cancel := context.WithCancel(context.Background())
	s := &StreamPublisher{
		client: c, topic: topic, noConfirms: conf.NoConfirms, ctx: streamCtx, cancel: cancel,
		open: &nervebusv1.PublishRequest{Open: &nervebusv1.PublishOpen{
			Topic: topic, MaxMessages: uint32(conf.MaxMessages), MaxBytes: uint64(conf.MaxBytes), NoConfirms: conf.NoConfirms,
		}},
		backoff:   conf.ReconnectBackoff.withDefaults(100*time.Millisecond, 5*time.Second),
		deadline:  conf.ReconnectDeadline,
		retryable: retryable,
		changed:   make(chan struct{}), ended: make(chan struct{}),
	}
	type opened struct {
		stream  nervebusv1.PublisherService_PublishClient
		granted [2]int
		err     error
	}
	done := make(chan opened, 1)
	go func() {
		stream, granted, err := s.dial()
		done <- opened{stream, granted, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			cancel()
			return nil, o.err
		}
		s.stream, s.granted, s.credit = o.stream, o.granted, o.granted
		go s.receive()
		return s, nil
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
}

// dial opens a Publish stream and reads the broker's opening answer (its credit).
func (s *StreamPublisher) dial() (nervebusv1.PublisherService_PublishClient, [2]int, error) {
	stream, err := s.client.publisherFor(s.topic).Publish(s.ctx)
	if err != nil {
		return nil, [2]int{}, err
	}
	if err := stream.Send(s.open); err != nil && !errors.Is(err, io.EOF) {
		return nil, [2]int{}, err
	}
	res, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Unavailable, "stream ended before the broker opened it")
		}
		s.client.callFailed(s.topic, err, stream.Trailer())
		return nil, [2]int{}, err
	}
	o := res.GetOpened()
	if o == nil {
		return nil, [2]int{}, status.Error(codes.Internal, "the broker's first answer on a Publish stream did not open it")
	}
	return stream, [2]int{int(o.GetMessages()), int(o.GetBytes())}, nil
}

// Topic returns the stream's topic.
func (s *StreamPublisher) Topic() string { return s.topic }

// Granted returns the credit the broker granted: messages and bytes.
func (s *StreamPublisher) Granted() (messages, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.granted[0], s.granted[1]
}

// Send sends msgs as one batch once the credit allows (waiting within ctx) and returns its
// future result. It fails at once for an empty batch or one larger than the whole credit, and
// once the stream failed for good.
func (s *StreamPublisher) Send(ctx context.Context, msgs []*Message) (*BatchResult, error) {
	if len(msgs) == 0 {
		return nil, status.Error(codes.InvalidArgument, "messages: a batch needs at least one message")
	}
	req := &nervebusv1.PublishRequest{Messages: make([]*nervebusv1.Message, len(msgs))}
	r := &BatchResult{done: make(chan struct{}), ids: make([]string, len(msgs))}
	size := 0
	for i, m := range msgs {
		if m == nil {
			return nil, status.Errorf(codes.InvalidArgument, "messages[%d]: nil message", i)
		}
		id := m.ID
		if id == "" {
			id = rand.Text()
		}
		attrs := maps.Clone(m.Attributes)
		req.Messages[i] = m.toProto(attrs, id)
		r.ids[i] = id
		size += wireSize(m.Data, attrs, m.OrderingKey, id)
	}
	b := &streamBatch{req: req, messages: len(msgs), bytes: size, result: r}
	for {
		s.mu.Lock()
		if s.err != nil || s.closed {
			err := s.err
			if err == nil {
				err = status.Error(codes.FailedPrecondition, "stream publisher is closed")
			}
			s.mu.Unlock()
			return nil, err
		}
		if len(msgs) > s.granted[0] || size > s.granted[1] {
			g := s.granted
			s.mu.Unlock()
			return nil, status.Errorf(codes.InvalidArgument,
				"messages: a batch of %d messages and %d bytes never fits the credit of %d messages and %d bytes", len(msgs), size, g[0], g[1])
		}
		if len(msgs) <= s.credit[0] && size <= s.credit[1] {
			s.credit[0] -= len(msgs)
			s.credit[1] -= size
			if !s.noConfirms {
				s.pending = append(s.pending, b)
			}
			stream := s.stream
			s.sendMu.Lock()
			s.mu.Unlock()
			// A failed write means a broken stream: the receive loop sees it too and sends
			// the batch again (it is pending) on the reopened one.
			_ = stream.Send(req)
			s.sendMu.Unlock()
			if s.noConfirms {
				r.set(nil, nil)
			}
			return r, nil
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close half-closes the stream and waits (within ctx) until every batch sent is confirmed and
// the broker ended the stream (reopening it meanwhile if it breaks); it returns the stream's
// error, if it failed.
func (s *StreamPublisher) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		stream := s.stream
		s.sendMu.Lock()
		s.mu.Unlock()
		_ = stream.CloseSend()
		s.sendMu.Unlock()
	})
	select {
	case <-s.ended:
	case <-ctx.Done():
		s.cancel()
		return ctx.Err()
	}
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// receive reads confirms and credit of the current stream; when it breaks, it reopens it (see
// reopen) and goes on with the new one.
func (s *StreamPublisher) receive() {
	defer close(s.ended)
	for {
		s.mu.Lock()
		stream := s.stream
		s.mu.Unlock()
		res, err := stream.Recv()
		if err != nil {
			if !s.reopen(stream, err) {
				return
			}
			continue
		}
		s.mu.Lock()
		for _, c := range res.GetConfirms() {
			if len(s.pending) == 0 {
				break
			}
			r := s.pending[0].result
			s.pending = s.pending[1:]
			results := c.GetResult().GetResults()
			receipts := make([]Receipt, len(results))
			for i, x := range results {
				receipts[i] = Receipt{Seq: x.GetSeq(), TraceID: x.GetTraceId(), Outcome: outcomeFromProto(x.GetOutcome())}
				if i < len(r.ids) {
					receipts[i].MessageID = r.ids[i]
				}
			}
			r.set(receipts, nil)
		}
		if c := res.GetCredit(); c != nil {
			s.credit[0] += int(c.GetMessages())
			s.credit[1] += int(c.GetBytes())
		}
		s.wake()
		s.mu.Unlock()
	}
}

// reopen handles the end of stream with err: false when the publisher is done (closed with
// everything confirmed, or failed for good), true once a new stream carries the batches not
// confirmed, sent again in order.
func (s *StreamPublisher) reopen(stream nervebusv1.PublisherService_PublishClient, err error) bool {
	s.mu.Lock()
	if errors.Is(err, io.EOF) {
		// Ended by the broker with batches outstanding: their outcome is unknown.
		err = status.Error(codes.Unavailable, "stream ended before the batch was confirmed")
	} else {
		s.client.callFailed(s.topic, err, stream.Trailer())
		err = internalOutcomeUnknown(err)
	}
	s.credit = [2]int{}
	s.mu.Unlock()
	brokenAt := time.Now()
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		done := s.closed && len(s.pending) == 0
		s.mu.Unlock()
		if done {
			return false // closed with every batch confirmed: how the stream ended does not matter
		}
		wait := s.backoff.Delay(attempt)
		if !s.retryable[status.Code(err)] || s.deadline < 0 || time.Since(brokenAt)+wait > s.deadline {
			s.fail(err)
			return false
		}
		if sleepCtx(s.ctx, wait) != nil {
			s.fail(status.Error(codes.Canceled, "stream publisher closed before its batches were confirmed"))
			return false
		}
		next, granted, dialErr := s.dial()
		if dialErr != nil {
			err = dialErr
			continue
		}
		s.mu.Lock()
		s.stream, s.granted, s.credit = next, granted, granted
		resend := s.pending
		s.pending = nil
		for _, b := range resend {
			if b.messages > granted[0] || b.bytes > granted[1] {
				// The reopened stream grants less (the broker's limits changed): it never fits.
				b.result.set(nil, status.Errorf(codes.InvalidArgument,
					"messages: a batch of %d messages and %d bytes never fits the credit of %d messages and %d bytes", b.messages, b.bytes, granted[0], granted[1]))
				continue
			}
			s.credit[0] -= b.messages
			s.credit[1] -= b.bytes
			s.pending = append(s.pending, b)
		}
		closed := s.closed
		resent := s.pending
		s.sendMu.Lock()
		s.mu.Unlock()
		for _, b := range resent {
			_ = next.Send(b.req)
		}
		if closed {
			_ = next.CloseSend()
		}
		s.sendMu.Unlock()
		s.mu.Lock()
		s.wake()
		s.mu.Unlock()
		return true
	}
}

// fail ends the publisher with err: every batch not confirmed, and every later Send, fails.
func (s *StreamPublisher) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
	for _, b := range s.pending {
		b.result.set(nil, s.err)
	}
	s.pending = nil
	s.wake()
}

// wake tells Sends waiting for credit to look again (called with mu held).
func (s *StreamPublisher) wake() {
	close(s.changed)
	s.changed = make(chan struct{})
}
