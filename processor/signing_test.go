package processor

import (
	"errors"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

func TestControlEventsAreVerifiedAgainstTheAdminKey(t *testing.T) {
	auth := ControlAuth{Key: []byte("admin-key")}
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	signed := schemas.Control{EventID: "e1", TenantID: "acme", IssuedAt: at, IssuedBy: "admin",
		Consent: &schemas.Consent{Given: true}}
	auth.Sign(&signed)

	tampered := signed
	tampered.Consent = &schemas.Consent{Given: false}
	otherTenant := signed
	otherTenant.TenantID = "globex"
	wrongKey := signed
	ControlAuth{Key: []byte("guess")}.Sign(&wrongKey)
	unsigned := signed
	unsigned.Signature = ""

	cases := []struct {
		name     string
		ev       schemas.Control
		appended time.Time
		reason   string
	}{
		{"signed, written at once", signed, at.Add(time.Second), ""},
		{"payload changed after signing", tampered, at, ReasonBadSignature},
		{"moved to another tenant", otherTenant, at, ReasonBadSignature},
		{"signed with another key", wrongKey, at, ReasonBadSignature},
		{"unsigned", unsigned, at, ReasonUnsigned},
		{"replayed a day later", signed, at.Add(24 * time.Hour), ReasonStale},
		{"issued in the future", signed, at.Add(-time.Hour), ReasonStale},
	}
	for _, tc := range cases {
		err := auth.Verify(tc.ev, tc.appended)
		var re *RefusedError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.reason != "" && (!errors.As(err, &re) || re.Reason != tc.reason):
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.reason)
		}
	}
	if err := (ControlAuth{}).Verify(unsigned, at); err != nil {
		t.Errorf("without a key every event is accepted, got %v", err)
	}
}
