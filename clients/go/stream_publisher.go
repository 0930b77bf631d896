package nervebus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

// StreamPublisherConfig tunes a [StreamPublisher]. Zero fields take the broker's largest
// credit.
type StreamPublisherConfig struct {
	// MaxMessages is the credit asked for: the most messages sent and not yet confirmed.
	// 0 takes the broker's largest (its max pack count).
	MaxMessages int
	// MaxBytes likewise in bytes (data, attributes, ordering key, message id). 0 takes the
	// broker's largest (its max pack bytes).
	MaxBytes int
	// NoConfirms is fire and forget (for ephemeral topics): the broker sends no confirms, and
	// a batch's result is ready, without receipts, once the batch is written to the stream.
	// Errors still end the stream.
	NoConfirms bool
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

// StreamPublisher is a Publish stream on one topic, for high-rate producers: each Send is one
// batch, appended after the stream's earlier batches (its messages get consecutive seqs) and
// confirmed once durable, with the receipts SendPack would give. The broker's credit is the
// flow control: Send waits until the batch fits in the credit left. The first error ends the
// stream and fails every batch not confirmed yet (its outcome is unknown: send it again on a
// new stream, with the same message ids, to stay idempotent). It does not reconnect. Safe for
// concurrent use; concurrent batches go out in the order they get credit.
type StreamPublisher struct {
	topic      string
	noConfirms bool
	stream     nervebusv1.PublisherService_PublishClient
	cancel     context.CancelFunc

	// sendMu orders writes to the stream; taken under mu, so batches go out in credit order,
	// and held alone while writing, so confirms are read meanwhile.
	sendMu    sync.Mutex
	mu        sync.Mutex
	granted   [2]int // messages, bytes
	credit    [2]int
	opened    chan struct{}
	changed   chan struct{} // closed and replaced when credit comes back or the stream ends
	pending   []*BatchResult
	err       error
	closed    bool
	ended     chan struct{}
	closeOnce sync.Once
}

// StreamPublisher opens a Publish stream on topic and waits (within ctx) until the broker has
// granted its credit. The stream lives until Close, whatever ctx does afterwards.
func (c *Client) StreamPublisher(ctx context.Context, topic string, cfg *StreamPublisherConfig) (*StreamPublisher, error) {
	var conf StreamPublisherConfig
	if cfg != nil {
		conf = *cfg
	}
	if conf.MaxMessages < 0 || conf.MaxBytes < 0 || conf.MaxMessages > 1<<32-1 {
		return nil, fmt.Errorf("nervebus: stream publisher on topic %q: MaxMessages and MaxBytes must be ≥ 0", topic)
	}
	streamCtx, cancel := context.WithCancel(context.Background())
	stream, err := c.publisherFor(topic).Publish(streamCtx)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &StreamPublisher{
		topic: topic, noConfirms: conf.NoConfirms, stream: stream, cancel: cancel,
		opened: make(chan struct{}), changed: make(chan struct{}), ended: make(chan struct{}),
	}
	err = stream.Send(&nervebusv1.PublishRequest{Open: &nervebusv1.PublishOpen{
		Topic: topic, MaxMessages: uint32(conf.MaxMessages), MaxBytes: uint64(conf.MaxBytes), NoConfirms: conf.NoConfirms,
	}})
	go s.receive()
	if err != nil && !errors.Is(err, io.EOF) {
		cancel()
		return nil, err
	}
	select {
	case <-s.opened:
		return s, nil
	case <-s.ended:
		return nil, s.err
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
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
// future result. It fails at once for an empty batch or one larger than the whole credit.
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
				s.pending = append(s.pending, r)
			}
			s.sendMu.Lock()
			s.mu.Unlock()
			err := s.stream.Send(req)
			s.sendMu.Unlock()
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
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
// the broker ended the stream; it returns the stream's error, if it had one.
func (s *StreamPublisher) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.sendMu.Lock()
		s.mu.Unlock()
		_ = s.stream.CloseSend()
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

func (s *StreamPublisher) receive() {
	defer close(s.ended)
	for {
		res, err := s.stream.Recv()
		s.mu.Lock()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			failure := s.err
			if failure == nil {
				failure = status.Error(codes.Unavailable, "stream ended before the batch was confirmed")
			}
			select {
			case <-s.opened:
			default:
				if s.err == nil {
					s.err = status.Error(codes.Unavailable, "stream ended before the broker opened it")
				}
			}
			for _, r := range s.pending {
				r.set(nil, failure)
			}
			s.pending = nil
			close(s.changed)
			s.mu.Unlock()
			return
		}
		if o := res.GetOpened(); o != nil {
			s.granted = [2]int{int(o.GetMessages()), int(o.GetBytes())}
			s.credit = s.granted
			close(s.opened)
		}
		for _, c := range res.GetConfirms() {
			if len(s.pending) == 0 {
				break
			}
			r := s.pending[0]
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
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}
