package processor

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Stable reasons for refused control events.
const (
	ReasonUnsigned     = "control.unsigned"
	ReasonBadSignature = "control.bad_signature"
	ReasonStale        = "control.stale_or_replayed"
	ReasonUndecodable  = "control.undecodable"
)

// ControlAuth signs and verifies control events. Whoever can write to the
// control topic could otherwise switch a tenant's consent on or point its
// data at another token; with a key, only holders of the admin key can.
type ControlAuth struct {
	// Key is the shared admin key. Empty: events are not authenticated (the
	// service says so at start).
	Key []byte
	// MaxSkew bounds the gap between an event's issued_at and the time the
	// broker appended it. A signed event copied and written again later is
	// refused as replayed. The control topic is created with
	// message.timestamp.type=LogAppendTime so writers cannot choose that
	// time. Default: 5m.
	MaxSkew time.Duration
}

// Enabled is whether events are signed and verified.
func (a ControlAuth) Enabled() bool { return len(a.Key) > 0 }

// Sign sets ev's signature.
func (a ControlAuth) Sign(ev *schemas.Control) {
	ev.Signature = base64.StdEncoding.EncodeToString(a.mac(*ev))
}

// RefusedError is why a control event was not applied.
type RefusedError struct {
	Reason string
	Err    error
}

func (e *RefusedError) Error() string { return e.Reason + ": " + e.Err.Error() }

// Verify checks an event written to the log at appendedAt.
func (a ControlAuth) Verify(ev schemas.Control, appendedAt time.Time) error {
	if !a.Enabled() {
		return nil
	}
	if ev.Signature == "" {
		return &RefusedError{ReasonUnsigned, errors.New("event carries no signature")}
	}
	got, err := base64.StdEncoding.DecodeString(ev.Signature)
	if err != nil || !hmac.Equal(got, a.mac(ev)) {
		return &RefusedError{ReasonBadSignature, errors.New("signature does not match the admin key")}
	}
	skew := a.MaxSkew
	if skew == 0 {
		skew = 5 * time.Minute
	}
	if gap := appendedAt.Sub(ev.IssuedAt); !appendedAt.IsZero() && (gap > skew || gap < -skew) {
		return &RefusedError{ReasonStale, fmt.Errorf("issued at %s but written at %s", ev.IssuedAt.Format(time.RFC3339), appendedAt.Format(time.RFC3339))}
	}
	return nil
}

// mac is HMAC-SHA256 over the event's canonical form: every field but the
// signature, in a fixed order, each value quoted, so no two events share a
// form and a schema change cannot silently change what is signed.
func (a ControlAuth) mac(ev schemas.Control) []byte {
	h := hmac.New(sha256.New, a.Key)
	field := func(name, value string) { fmt.Fprintf(h, "%s=%s\n", name, strconv.Quote(value)) }
	millis := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	_, _ = h.Write([]byte("leadspace-control/v1\n"))
	field("event_id", ev.EventID)
	field("tenant_id", ev.TenantID)
	field("issued_at", millis(ev.IssuedAt))
	field("issued_by", ev.IssuedBy)
	field("kind", ev.Kind())
	switch {
	case ev.Connection != nil:
		field("display_name", ev.Connection.DisplayName)
		field("token_ref", ev.Connection.TokenRef)
		field("verified_at", millis(ev.Connection.VerifiedAt))
	case ev.Consent != nil:
		field("given", strconv.FormatBool(ev.Consent.Given))
		field("terms_version", ev.Consent.TermsVersion)
	case ev.Mapping != nil:
		field("name_attribute", ev.Mapping.NameAttribute)
		field("website_attribute", ev.Mapping.WebsiteAttribute)
		field("location_attribute", ev.Mapping.LocationAttribute)
		field("min_confidence", ev.Mapping.MinConfidence)
		field("refresh_interval_seconds", strconv.FormatInt(int64(ev.Mapping.RefreshInterval/time.Second), 10))
	case ev.Removal != nil:
		field("purge", strconv.FormatBool(ev.Removal.Purge))
	case ev.Refresh != nil:
		field("run_id", ev.Refresh.RunID)
		field("force", strconv.FormatBool(ev.Refresh.Force))
		field("cancel", strconv.FormatBool(ev.Refresh.Cancel))
	}
	return h.Sum(nil)
}
