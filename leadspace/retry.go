package leadspace

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// backoff is exponential with full jitter: uniform in [0, min(max, base·2^(n-1))].
// Full jitter spreads the records of one failed bulk over the whole window,
// so they come back in many later bulks instead of one synchronized wave.
func backoff(base, maxWait time.Duration, attempt int) time.Duration {
	d := maxWait
	if attempt < 32 {
		d = min(maxWait, base<<(attempt-1))
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// exhausted is the error of a record that gave up: it keeps the status and
// tracking id of the last failure so a dead letter can name them.
func exhausted(last error, attempts int, failingFor time.Duration) *Error {
	e := &Error{Class: ClassRetryable, Reason: ReasonRetriesExhausted,
		Err: fmt.Errorf("gave up after %d attempts, failing for %s: %w", attempts, failingFor.Round(time.Millisecond), last)}
	if le, ok := last.(*Error); ok {
		e.StatusCode, e.TrackingID = le.StatusCode, le.TrackingID
	}
	return e
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
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
