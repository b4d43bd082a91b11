package kafkaio

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
)

// Backoff paces retries against Kafka while it is unreachable.
// Equal jitter: one caller waits out an outage, and should not retry much
// sooner than the schedule says.
var Backoff = retry.Schedule{First: 200 * time.Millisecond, Max: 10 * time.Second, Jitter: retry.Equal}

// Transient says whether a Kafka failure may pass by itself: a broker down
// or restarting, a leader moving, a network error, a timeout. A Kafka error
// code that is not temporary (a record too large, an authorization failure)
// will fail again, however often it is retried.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return false
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary() || kerr.Timeout()
	}
	// Refused or dropped connections, EOFs and dial timeouts: the broker is
	// down or restarting.
	return true
}
