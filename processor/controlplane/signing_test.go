package controlplane

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

func TestControlEventsAreVerifiedAgainstTheAdminKeys(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	private, public, id, err := GenerateAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	signing, err := ParseAdminSigningKey(private)
	if err != nil {
		t.Fatal(err)
	}
	publics, err := ParseAdminPublicKeys(public)
	if err != nil {
		t.Fatal(err)
	}
	admin := Auth{SigningKey: signing}      // what an admin holds
	service := Auth{PublicKeys: publics}    // what an instance holds
	shared := Auth{Key: []byte("hmac-key")} // the HMAC alternative

	event := func() schemas.Control {
		return schemas.Control{EventID: "e1", TenantID: "acme", IssuedAt: at, IssuedBy: "admin", Sequence: 7,
			Consent: &schemas.Consent{Given: true}}
	}
	sign := func(a Auth, change func(*schemas.Control)) schemas.Control {
		ev := event()
		if err := a.Sign(&ev); err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(&ev)
		}
		return ev
	}
	_, otherPrivate, _ := ed25519.GenerateKey(nil)
	noSequence := event()
	noSequence.Sequence = 0

	cases := []struct {
		name     string
		verifier Auth
		ev       schemas.Control
		reason   string
	}{
		{"ed25519, verified with the public key only", service, sign(admin, nil), ""},
		{"ed25519, verified by the signer", admin, sign(admin, nil), ""},
		{"hmac", shared, sign(shared, nil), ""},
		{"payload changed after signing", service, sign(admin, func(ev *schemas.Control) { ev.Consent = &schemas.Consent{} }), ReasonBadSignature},
		{"sequence raised after signing", service, sign(admin, func(ev *schemas.Control) { ev.Sequence++ }), ReasonBadSignature},
		{"moved to another tenant", service, sign(admin, func(ev *schemas.Control) { ev.TenantID = "globex" }), ReasonBadSignature},
		{"key id swapped for the hmac key's", shared, sign(admin, func(ev *schemas.Control) { ev.KeyID = hmacKeyID(shared.Key) }), ReasonBadSignature},
		{"signed by a key the service does not hold", service, sign(Auth{SigningKey: otherPrivate}, nil), ReasonUnknownKey},
		{"hmac event, service holds ed25519 keys only", service, sign(shared, nil), ReasonUnknownKey},
		{"hmac with another shared key", shared, sign(Auth{Key: []byte("guess")}, nil), ReasonUnknownKey},
		{"unsigned", service, event(), ReasonUnsigned},
		{"no sequence", service, noSequence, ReasonNoSequence},
		{"no sequence, no key configured", Auth{}, noSequence, ReasonNoSequence},
		{"unsigned, no key configured", Auth{}, event(), ""},
	}
	for _, tc := range cases {
		err := tc.verifier.Verify(tc.ev)
		var re *RefusedError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.reason != "" && (!errors.As(err, &re) || re.Reason != tc.reason):
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.reason)
		}
	}
	if ev := sign(admin, nil); ev.KeyID != id || !strings.HasPrefix(id, "ed25519:") {
		t.Errorf("key id %q, want the generated %q", ev.KeyID, id)
	}
	if err := service.Sign(new(schemas.Control)); err == nil {
		t.Error("a service holding public keys only could sign")
	}
	if _, err := ParseAdminPublicKeys(private); err == nil || strings.Contains(err.Error(), private[16:]) {
		t.Errorf("a private key given as a public key: %v", err)
	}
}

func TestSignAssignsIncreasingSequences(t *testing.T) {
	a := Auth{Key: []byte("k")}
	var last int64
	for i := 0; i < 1000; i++ {
		ev := schemas.Control{TenantID: "acme", Consent: &schemas.Consent{Given: true}}
		if err := a.Sign(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.Sequence <= last {
			t.Fatalf("sequence %d after %d", ev.Sequence, last)
		}
		last = ev.Sequence
	}
	if got := NextSequence(last + 1_000_000_000); got != last+1_000_000_001 {
		t.Fatalf("NextSequence above a sequence ahead of the clock: %d", got)
	}
}
