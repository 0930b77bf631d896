package nervebus

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
