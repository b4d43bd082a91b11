package leadspace

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Class says what a caller should do with a failure. The processor routes on
// it: retryable means wait and call again, input means dead-letter the record,
// auth and credits mean pause the tenant's program until an admin acts.
type Class int

const (
	// ClassRetryable failures are transient: 429, 5xx, timeouts, broken
	// connections, an open breaker, malformed answers.
	ClassRetryable Class = iota + 1
	// ClassInput failures are about the record: Leadspace rejected what was
	// sent (400, bulk record code 1200). Sending it again will not help.
	ClassInput
	// ClassAuth failures are about the credentials: 401 (after one OAuth
	// re-authentication), 403, or a token that cannot be a bearer token.
	ClassAuth
	// ClassCredits means the program has run out of credits (427).
	ClassCredits
	// ClassCanceled means the caller's context ended or the client closed.
	ClassCanceled
)

// String gives the stable lower-case name used in logs, metrics and dead letters.
func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "retryable"
	case ClassInput:
		return "input"
	case ClassAuth:
		return "auth"
	case ClassCredits:
		return "credits"
	case ClassCanceled:
		return "canceled"
	}
	return "unknown"
}

// Stable reason codes. They end up in dead letters and metrics, so never
// change a value once released.
const (
	ReasonInputRejected     = "leadspace.input_rejected"        // 400 or bulk record code 1200
	ReasonUnauthorized      = "leadspace.unauthorized"          // 401
	ReasonForbidden         = "leadspace.forbidden"             // 403
	ReasonCreditsExhausted  = "leadspace.credits_exhausted"     // 427
	ReasonRateLimited       = "leadspace.rate_limited"          // 429
	ReasonServerError       = "leadspace.server_error"          // 5xx
	ReasonTimeout           = "leadspace.timeout"               // no answer within RequestTimeout
	ReasonConnection        = "leadspace.connection"            // refused, reset, dropped
	ReasonBreakerOpen       = "leadspace.breaker_open"          // nothing sent: the program's breaker is open
	ReasonBadResponse       = "leadspace.bad_response"          // an answer we cannot read
	ReasonRetriesExhausted  = "leadspace.retries_exhausted"     // GiveUpAfter since the first failure, or MaxAttempts, reached
	ReasonUnexpectedStatus  = "leadspace.unexpected_status"     // other 4xx (404, 405, 415...): a client bug
	ReasonRecordFailed      = "leadspace.record_failed"         // bulk record code 1100
	ReasonBulkNotFound      = "leadspace.bulk_not_found"        // 404 while polling a bulk
	ReasonBulkTimeout       = "leadspace.bulk_timeout"          // bulk not ready within BulkMaxWait
	ReasonDuplicateExternal = "leadspace.duplicate_external_id" // bulk needs unique, non-empty external ids
	ReasonCanceled          = "leadspace.canceled"              // caller's context ended
	ReasonClosed            = "leadspace.client_closed"         // Client.Close was called
	ReasonInvalidToken      = "leadspace.invalid_token"         // the token cannot be a bearer token: nothing was sent
)

// Error is the one error type this package returns for Leadspace failures.
// It never holds the token: messages taken from response bodies are redacted.
type Error struct {
	Class      Class
	Reason     string
	StatusCode int    // HTTP status, 0 when no answer arrived
	TrackingID string // Leadspace's tracking_id, for support tickets
	Err        error  // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("leadspace: ")
	b.WriteString(e.Reason)
	if e.StatusCode != 0 {
		b.WriteString(" (status ")
		b.WriteString(strconv.Itoa(e.StatusCode))
		if e.TrackingID != "" {
			b.WriteString(", tracking_id ")
			b.WriteString(e.TrackingID)
		}
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrBreakerOpen is the cause of an *Error with ClassRetryable and
// ReasonBreakerOpen: nothing was sent and no credit spent. Only Verify
// returns it: submitted records wait in their program's queue while its
// breaker is open, and one that waits for GiveUpAfter fails with
// ReasonRetriesExhausted, which does not match errors.Is(err,
// ErrBreakerOpen) (waiting longer is what it gave up on).
var ErrBreakerOpen = errors.New("circuit breaker open")

// ClassOf returns the class of the first *Error in err's chain.
func ClassOf(err error) (Class, bool) {
	if e, ok := errors.AsType[*Error](err); ok { // AsType: no allocation, unlike As (once per record)
		return e.Class, true
	}
	return 0, false
}

// ReasonOf returns the reason code of the first *Error in err's chain.
func ReasonOf(err error) (string, bool) {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason, true
	}
	return "", false
}

// BulkError reports the records of an EnrichBulk call that failed. Errs is
// aligned with the request slice; a nil entry means that record succeeded.
type BulkError struct {
	Errs []error
}

func (e *BulkError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	return fmt.Sprintf("leadspace: %d of %d bulk records failed, first: %v", n, len(e.Errs), first)
}

// Unwrap exposes the record errors to errors.Is / errors.As.
func (e *BulkError) Unwrap() []error {
	out := make([]error, 0, len(e.Errs))
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

func newError(class Class, reason string, cause error) *Error {
	return &Error{Class: class, Reason: reason, Err: cause}
}

var errBreakerOpen = &Error{Class: ClassRetryable, Reason: ReasonBreakerOpen, Err: ErrBreakerOpen}

// errBreakerWait is the last failure of a record that gave up waiting on an
// open breaker.
var errBreakerWait = &Error{Class: ClassRetryable, Reason: ReasonBreakerOpen, Err: errors.New("waited on an open circuit breaker")}

// errNotSent reports to the breaker a transaction it admitted but that never
// left (no token, an invalid token, nothing left to send): it counts neither
// way.
var errNotSent = errors.New("leadspace: transaction not sent")

// canceled wraps a context error so errors.Is(err, context.Canceled) still works.
func canceled(err error) *Error {
	return newError(ClassCanceled, ReasonCanceled, err)
}

// errorForStatus classifies a non-success HTTP answer. env is the parsed
// error envelope, possibly empty.
// UNCERTAIN(docs/leadspace.md §4): the status table comes from a third-party
// profile; 427 is the non-standard "insufficient credits".
func errorForStatus(status int, env envelope) *Error {
	e := &Error{StatusCode: status, TrackingID: env.TrackingID.String()}
	if msg := env.message(); msg != "" {
		e.Err = errors.New(msg)
	}
	switch {
	case status == 400:
		e.Class, e.Reason = ClassInput, ReasonInputRejected
	case status == 401:
		e.Class, e.Reason = ClassAuth, ReasonUnauthorized
		e.Err = nil // the docs say to ignore a 401 body
	case status == 403:
		e.Class, e.Reason = ClassAuth, ReasonForbidden
	case status == 427:
		e.Class, e.Reason = ClassCredits, ReasonCreditsExhausted
	case status == 429:
		e.Class, e.Reason = ClassRetryable, ReasonRateLimited
	case status >= 500:
		e.Class, e.Reason = ClassRetryable, ReasonServerError
	default:
		e.Class, e.Reason = ClassInput, ReasonUnexpectedStatus
	}
	return e
}

// retryable reports whether another attempt may succeed: the record goes
// back into its program's queue.
func retryable(err error) bool {
	c, ok := ClassOf(err)
	return ok && c == ClassRetryable
}

// breakerFailure says which errors count against the breaker: only signs that
// Leadspace is unwell (5xx, timeouts, broken connections, unreadable answers).
func breakerFailure(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Reason {
	case ReasonServerError, ReasonTimeout, ReasonConnection, ReasonBadResponse:
		return true
	}
	return false
}

// breakerExcluded lists errors the breaker ignores entirely: cancellations
// (our side), 429 (the limiter's business, not an outage), and transactions
// that never left, such as one with an invalid token.
func breakerExcluded(err error) bool {
	if errors.Is(err, errNotSent) {
		return true
	}
	r, ok := ReasonOf(err)
	if !ok {
		return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	}
	return r == ReasonRateLimited || r == ReasonCanceled || r == ReasonClosed || r == ReasonInvalidToken
}
