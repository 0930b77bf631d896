package nervebus

import (
	"context"
	"sync"
)

// flowController bounds what a publisher buffers: messages wait in Publish, first come first
// served, while the limits are reached. A limit ≤ 0 means none. A message bigger than the
// byte limit is admitted when nothing else is outstanding.
type flowController struct {
	maxCount, maxBytes int

	mu      sync.Mutex
	count   int
	bytes   int
	waiters []*flowWaiter
}

type flowWaiter struct {
	size    int
	ready   chan struct{}
	granted bool
}

func newFlowController(maxCount, maxBytes int) *flowController {
	return &flowController{maxCount: maxCount, maxBytes: maxBytes}
}

func (f *flowController) fits(size int) bool {
	if f.maxCount > 0 && f.count+1 > f.maxCount {
		return false
	}
	if f.maxBytes > 0 && f.bytes+size > f.maxBytes && f.bytes > 0 {
		return false
	}
	return true
}

// acquire takes room for one message of size bytes, waiting while there is none.
func (f *flowController) acquire(ctx context.Context, size int) error {
	f.mu.Lock()
	if len(f.waiters) == 0 && f.fits(size) {
		f.count++
		f.bytes += size
		f.mu.Unlock()
		return nil
	}
	w := &flowWaiter{size: size, ready: make(chan struct{})}
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		if w.granted {
			f.count--
			f.bytes -= size
			f.grant()
		} else {
			for i, x := range f.waiters {
				if x == w {
					f.waiters = append(f.waiters[:i], f.waiters[i+1:]...)
					break
				}
			}
			f.grant()
		}
		return ctx.Err()
	}
}

// release returns the room of one message of size bytes.
func (f *flowController) release(size int) {
	f.mu.Lock()
	f.count--
	f.bytes -= size
	f.grant()
	f.mu.Unlock()
}

// grant admits waiters in order while they fit. Called with f.mu held.
func (f *flowController) grant() {
	for len(f.waiters) > 0 && f.fits(f.waiters[0].size) {
		w := f.waiters[0]
		f.waiters = f.waiters[1:]
		f.count++
		f.bytes += w.size
		w.granted = true
		close(w.ready)
	}
}
