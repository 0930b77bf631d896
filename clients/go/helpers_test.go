package nervebus_test

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	nervebus "github.com/nervebus/nervebus/clients/go"
	nervebusv1 "github.com/nervebus/nervebus/clients/go/gen/nervebus/v1"
	"github.com/nervebus/nervebus/clients/go/internal/testbroker"
)

var nameChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// topicName makes a valid topic name from the test's name.
func topicName(t *testing.T) string {
	n := nameChars.ReplaceAllString(t.Name(), "-")
	if len(n) > 100 {
		n = n[:100]
	}
	return n
}

// newClient connects to b and closes the client when the test ends.
func newClient(t *testing.T, b *testbroker.Broker, opts ...nervebus.Option) *nervebus.Client {
	t.Helper()
	c, err := nervebus.NewClient(b.Addr, opts...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testContext is the test's context bounded by d.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// packRecorder records the SendPack calls a client makes.
type packRecorder struct {
	mu    sync.Mutex
	packs [][]*nervebusv1.Message
	// failFirst, when set, makes the first SendPack return failWith (UNAVAILABLE when nil)
	// after the broker accepted it (a lost answer).
	failFirst atomic.Bool
	failWith  error
	failed    atomic.Bool
}

func (r *packRecorder) interceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if p, ok := req.(*nervebusv1.SendPackRequest); ok {
			r.mu.Lock()
			r.packs = append(r.packs, p.GetMessages())
			r.mu.Unlock()
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil && r.failFirst.Load() && r.failed.CompareAndSwap(false, true) {
			if r.failWith != nil {
				return fmt.Errorf("injected: %w", r.failWith)
			}
			return fmt.Errorf("injected: %w", errUnavailable)
		}
		return err
	}
}

func (r *packRecorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, p := range r.packs {
		out = append(out, len(p))
	}
	return out
}

// collector gathers delivered messages.
type collector struct {
	mu   sync.Mutex
	msgs []*nervebus.Message
	ch   chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) add(m *nervebus.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func (c *collector) snapshot() []*nervebus.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*nervebus.Message(nil), c.msgs...)
}

// wait waits until n messages arrived.
func (c *collector) wait(t *testing.T, n int, d time.Duration) []*nervebus.Message {
	t.Helper()
	deadline := time.After(d)
	for c.len() < n {
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("got %d messages within %v, want %d", c.len(), d, n)
		}
	}
	return c.snapshot()
}

// receiveInBackground runs sub.Receive until the test ends (or stop is called) and returns
// stop, which cancels it and returns Receive's error.
func receiveInBackground(t *testing.T, sub *nervebus.Subscriber, handler func(context.Context, *nervebus.Message)) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Receive(ctx, handler) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(30 * time.Second):
				result = fmt.Errorf("Receive did not return within 30 s of cancel")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}
