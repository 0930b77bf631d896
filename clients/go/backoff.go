package nervebus

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with jitter, used between retries of a SendPack and
// between reconnects of a Receive stream. Zero fields take the defaults of the setting that
// holds the Backoff.
type Backoff struct {
	// Initial is the base delay before the first retry.
	Initial time.Duration
	// Max caps the base delay.
	Max time.Duration
	// Multiplier grows the base delay after each retry; at least 1.
	Multiplier float64
}

func (b Backoff) withDefaults(initial, maxDelay time.Duration) Backoff {
	if b.Initial <= 0 {
		b.Initial = initial
	}
	if b.Max <= 0 {
		b.Max = maxDelay
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	return b
}

// Delay returns the wait before retry number attempt (0 for the first retry): the base delay
// Initial·Multiplier^attempt capped at Max, of which a random half is taken off ("equal
// jitter"), so that clients that failed together do not retry together.
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults(100*time.Millisecond, 10*time.Second)
	d := float64(b.Initial)
	for i := 0; i < attempt && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	half := d / 2
	return time.Duration(half + rand.Float64()*half)
}

// sleepCtx waits for d or until ctx ends, returning ctx.Err() in the latter case.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
