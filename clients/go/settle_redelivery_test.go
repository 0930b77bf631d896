package nervebus_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebus "github.com/nervebus/nervebus/clients/go"
	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

// seenDelivery is a delivery as the cutter saw it.
type seenDelivery struct {
	seq     uint64
	attempt uint32
}

// receiveCutter is a gRPC stream interceptor that ends a Receive stream as a lost connection
// would, instead of sending the first request that match accepts: the client believes the
// request written, the broker never reads it and sees the stream cancelled (so it redelivers
// what the stream held), and the client's next read fails with UNAVAILABLE. It records the
// deliveries of each stream.
type receiveCutter struct {
	mu      sync.Mutex
	match   func(*nervebusv1.ReceiveRequest) bool
	streams [][]seenDelivery
}

func (c *receiveCutter) interceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if !strings.HasSuffix(method, "/Receive") {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx, cancel := context.WithCancel(ctx)
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			cancel()
			return nil, err
		}
		c.mu.Lock()
		c.streams = append(c.streams, nil)
		index := len(c.streams) - 1
		c.mu.Unlock()
		return &cutStream{ClientStream: cs, cutter: c, index: index, cancel: cancel}, nil
	}
}

// take tells whether req is the one to lose (only the first match is).
func (c *receiveCutter) take(req *nervebusv1.ReceiveRequest) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.match == nil || !c.match(req) {
		return false
	}
	c.match = nil
	return true
}

// deliveries returns what stream i delivered.
func (c *receiveCutter) deliveries(i int) []seenDelivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.streams) {
		return nil
	}
	return slices.Clone(c.streams[i])
}

type cutStream struct {
	grpc.ClientStream
	cutter *receiveCutter
	index  int
	cancel context.CancelFunc
	cut    atomic.Bool
}

func (s *cutStream) SendMsg(m any) error {
	if req, ok := m.(*nervebusv1.ReceiveRequest); ok && s.cutter.take(req) {
		s.cut.Store(true)
		s.cancel()
		return nil
	}
	return s.ClientStream.SendMsg(m)
}

func (s *cutStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		s.cancel()
		if s.cut.Load() {
			return status.Error(codes.Unavailable, "injected: connection lost")
		}
		return err
	}
	if resp, ok := m.(*nervebusv1.ReceiveResponse); ok {
		s.cutter.mu.Lock()
		for _, d := range resp.GetDeliveries() {
			s.cutter.streams[s.index] = append(s.cutter.streams[s.index], seenDelivery{d.GetSeq(), d.GetAttempt()})
		}
		s.cutter.mu.Unlock()
	}
	return nil
}

// TestSettlementLostWithItsStream loses the request that carries a message's ack (or
// termination) together with its stream: the broker redelivers the message to the next stream,
// where the client must send the settlement again instead of running the handler a second
// time. Without the kept settlements the handler ran at attempts 1 and 2.
func TestSettlementLostWithItsStream(t *testing.T) {
	t.Parallel()
	b := testbroker.Start(t)
	for _, tc := range []struct {
		name   string
		match  func(*nervebusv1.ReceiveRequest) bool
		settle func(*nervebus.Message)
	}{
		{"ack", func(r *nervebusv1.ReceiveRequest) bool { return len(r.GetAckSeqs()) > 0 }, (*nervebus.Message).Ack},
		{"terminate", func(r *nervebusv1.ReceiveRequest) bool { return len(r.GetTerminateSeqs()) > 0 }, (*nervebus.Message).Terminate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cutter := &receiveCutter{match: tc.match}
			c := newClient(t, b, nervebus.WithDialOptions(grpc.WithStreamInterceptor(cutter.interceptor())))
			ctx := testContext(t, 30*time.Second)
			topic := topicName(t)
			publishN(t, ctx, c, topic, "m", 1)

			var mu sync.Mutex
			var attempts []int
			sub := c.Subscriber(topic, "s", &nervebus.SubscriberConfig{
				Start:            nervebus.StartEarliest(),
				ReconnectBackoff: nervebus.Backoff{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond},
			})
			stop := receiveInBackground(t, sub, func(_ context.Context, m *nervebus.Message) {
				mu.Lock()
				attempts = append(attempts, m.Attempt)
				mu.Unlock()
				tc.settle(m)
			})
			for {
				st, err := c.Admin().GetStats(ctx, topic)
				if err != nil {
					t.Fatal(err)
				}
				if ss, ok := st.Subscription("s"); ok && ss.Backlog == 0 {
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("the message was not settled: %v", ctx.Err())
				case <-time.After(25 * time.Millisecond):
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if got, want := cutter.deliveries(1), []seenDelivery{{1, 2}}; !slices.Equal(got, want) {
				t.Fatalf("second stream delivered %v, want %v (the redelivery)", got, want)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(attempts, []int{1}) {
				t.Fatalf("handler ran at attempts %v, want [1]", attempts)
			}
		})
	}
}
