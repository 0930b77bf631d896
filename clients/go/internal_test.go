package nervebus

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2}
	for attempt, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		for range 50 {
			d := b.Delay(attempt)
			if d < base/2 || d > base {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
	// Jitter: not every delay is the same.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[b.Delay(3)] = true
	}
	if len(seen) < 2 {
		t.Fatal("no jitter")
	}
	if d := (Backoff{}).Delay(0); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Fatalf("default first delay %v", d)
	}
}

func TestFlowControllerOrderAndCancel(t *testing.T) {
	f := newFlowController(2, 100)
	ctx := context.Background()
	if err := f.acquire(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if err := f.acquire(ctx, 10); err != nil {
		t.Fatal(err)
	}
	// Full by count: a third waits until its context ends.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := f.acquire(short, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire on a full controller: %v", err)
	}
	got := make(chan int, 2)
	go func() {
		_ = f.acquire(ctx, 50)
		got <- 1
	}()
	time.Sleep(10 * time.Millisecond)
	go func() {
		_ = f.acquire(ctx, 5)
		got <- 2
	}()
	time.Sleep(10 * time.Millisecond)
	f.release(10)
	if first := <-got; first != 1 {
		t.Fatalf("waiter %d admitted first, want the earlier one", first)
	}
	f.release(10)
	<-got
	// A message larger than the byte bound is admitted alone.
	g := newFlowController(0, 100)
	if err := g.acquire(ctx, 500); err != nil {
		t.Fatal(err)
	}
	g.release(500)
}

func TestCodeAndRetryable(t *testing.T) {
	wrapped := errors.Join(errors.New("context"), status.Error(codes.Unavailable, "down"))
	if Code(wrapped) != codes.Unavailable || !IsRetryable(wrapped) {
		t.Fatalf("Code %v", Code(wrapped))
	}
	if Code(nil) != codes.OK || Code(context.Canceled) != codes.Canceled || Code(errors.New("x")) != codes.Unknown {
		t.Fatal("Code of plain errors")
	}
	if IsRetryable(status.Error(codes.InvalidArgument, "bad")) {
		t.Fatal("INVALID_ARGUMENT retryable")
	}
	if !streamRetryable(errUnexpectedEnd) || !streamRetryable(status.Error(codes.Internal, "rst")) {
		t.Fatal("stream retry codes")
	}
}

// A message acked on the old stream whose ack went out on the new one can be leased again by
// the broker before it reads the ack (it read the subscribe first). That redelivery is settled
// by the ack: handling it again ran the handler twice for a message it had acked. The order
// depends on the broker's reads, so this drives the session's bookkeeping directly.
func TestRedeliveryOfAWrittenAckIsNotHandled(t *testing.T) {
	c, err := NewClient(unreachableBroker(t)) // never dialled: no stream is opened
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var calls atomic.Int32
	sub := c.Subscriber("t", "s", &SubscriberConfig{ConfirmAcks: true})
	s := newSession(sub, func(context.Context, *Message) { calls.Add(1) }, context.Background())
	_, gen := s.attach()
	s.deliver(gen, []*nervebusv1.Delivery{{Seq: 7, Attempt: 1}})
	s.handlers.Wait()
	s.mu.Lock()
	l := s.outstanding[7]
	s.mu.Unlock()
	if l == nil || calls.Load() != 1 {
		t.Fatalf("first delivery: lease %v, handler runs %d", l, calls.Load())
	}

	_, gen = s.attach() // the stream broke; the handler acks on the next one
	l.msg.Ack()
	req, acks := s.takeRequest(gen, false)
	if len(req.GetAckSeqs()) != 1 {
		t.Fatalf("request %v, want the ack of seq 7", req)
	}
	s.sent(acks)
	s.deliver(gen, []*nervebusv1.Delivery{{Seq: 7, Attempt: 2}})
	s.handlers.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := calls.Load(); n != 1 || len(s.outstanding) != 0 {
		t.Fatalf("after the redelivery: handler runs %d, outstanding %v; want 1 run, nothing outstanding", n, s.outstanding)
	}
}

// unreachableBroker is the address of a broker that cannot be reached: a listener the test holds
// that closes every connection at once. A fixed port such as 1 may be bound by any process on
// the machine; this one is taken by no other while the test holds it.
func unreachableBroker(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	return ln.Addr().String()
}
