package processor

import (
	"errors"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Error classes, as written into dead letters and metrics.
const (
	classInput     = "input"
	classRetryable = "retryable"
	classAuth      = "auth"
	classCredits   = "credits"
)

// stageError is a failure of one input at one stage, with a stable reason.
type stageError struct {
	stage      string
	reason     string
	class      string
	replayable bool
	attempts   int
	// firstFailure and lastFailure bound the failed attempts; zero means
	// the failure happened now, once.
	firstFailure, lastFailure time.Time
	err                       error
}

func (e *stageError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// decodeFailure classifies a codec error.
func decodeFailure(err error) *stageError {
	var de *schemas.DecodeError
	if errors.As(err, &de) {
		class := classInput
		if de.Retryable {
			class = classRetryable
		}
		return &stageError{stage: schemas.StageDecode, reason: de.Reason, class: class, replayable: de.Retryable, attempts: 1, err: err}
	}
	return &stageError{stage: schemas.StageDecode, reason: schemas.ReasonBadAvro, class: classInput, attempts: 1, err: err}
}

// enrichFailure classifies a Leadspace outcome that failed for good. Auth
// and credits failures are replayable: once the admin fixes the token or
// buys credits, replaying the dead letters completes them. So are outages
// that outlasted the give-up time.
func enrichFailure(o leadspace.Outcome) *stageError {
	se := &stageError{stage: schemas.StageEnrich, reason: "leadspace.unknown", class: classRetryable, replayable: true,
		attempts: o.Attempts, firstFailure: o.FirstFailure, lastFailure: o.LastFailure, err: o.Err}
	if r, ok := leadspace.ReasonOf(o.Err); ok {
		se.reason = r
	}
	if c, ok := leadspace.ClassOf(o.Err); ok {
		switch c {
		case leadspace.ClassInput:
			se.class, se.replayable = classInput, false
		case leadspace.ClassAuth:
			se.class = classAuth
		case leadspace.ClassCredits:
			se.class = classCredits
		}
	}
	return se
}
