package leadspace

import (
	"fmt"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
)

// retries is the schedule of a record's retries: exponential from
// BackoffBase to BackoffMax with full jitter, which spreads the records of
// one failed bulk over the whole window, so they come back in many later
// bulks instead of one synchronized wave.
func (c *Config) retries() retry.Schedule {
	return retry.Schedule{First: c.BackoffBase, Max: c.BackoffMax, Jitter: retry.Full}
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
