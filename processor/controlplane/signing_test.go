package controlplane

import (
	"context"
	"crypto/ed25519"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/testkit"
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

// signedEvents is one event of each kind with every field set, so that a
// change to any field is a change to the event.
func signedEvents() []schemas.Control {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	payloads := []schemas.Control{
		{Connection: &schemas.Connection{DisplayName: "Acme", TokenRef: "env:LEADSPACE_TOKEN_ACME", VerifiedAt: at}},
		{Consent: &schemas.Consent{Given: true, TermsVersion: "2020-11"}},
		{Mapping: &schemas.Mapping{NameAttribute: "Name", WebsiteAttribute: "Website", LocationAttribute: "City",
			MinConfidence: "MEDIUM", RefreshInterval: time.Hour}},
		{Removal: &schemas.Removal{Purge: true}},
		{Refresh: &schemas.Refresh{RunID: "run-1", Force: true, Cancel: true}},
	}
	for i := range payloads {
		ev := &payloads[i]
		ev.EventID, ev.TenantID, ev.IssuedAt, ev.IssuedBy, ev.Sequence = "e1", "acme", at, "alice@acme.example", 7
	}
	return payloads
}

// changeEachField calls check once for every exported field of ev and of
// its payload, with a copy of ev where only that field differs. A field of
// a type it cannot change fails the test: teach it the type.
func changeEachField(t *testing.T, ev schemas.Control, check func(field string, changed schemas.Control)) {
	t.Helper()
	change := func(v reflect.Value) bool {
		switch v.Type() {
		case reflect.TypeFor[time.Time]():
			v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Second)))
			return true
		case reflect.TypeFor[time.Duration]():
			v.SetInt(v.Int() + int64(time.Second))
			return true
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Int64:
			v.SetInt(v.Int() + 1)
		default:
			return false
		}
		return true
	}
	top := reflect.TypeFor[schemas.Control]()
	for i := range top.NumField() {
		f := top.Field(i)
		if !f.IsExported() || f.Name == "Signature" {
			continue
		}
		if f.Type.Kind() == reflect.Pointer {
			if reflect.ValueOf(ev).Field(i).IsNil() {
				continue
			}
			for j := range f.Type.Elem().NumField() {
				changed := ev
				payload := reflect.New(f.Type.Elem())
				payload.Elem().Set(reflect.ValueOf(ev).Field(i).Elem())
				if !change(payload.Elem().Field(j)) {
					t.Fatalf("%s.%s: this test cannot change a %s", f.Name, f.Type.Elem().Field(j).Name, f.Type.Elem().Field(j).Type)
				}
				reflect.ValueOf(&changed).Elem().Field(i).Set(payload)
				check(f.Name+"."+f.Type.Elem().Field(j).Name, changed)
			}
			continue
		}
		changed := ev
		if !change(reflect.ValueOf(&changed).Elem().Field(i)) {
			t.Fatalf("%s: this test cannot change a %s", f.Name, f.Type)
		}
		check(f.Name, changed)
	}
}

func TestBytesSignaturesCoverEveryFieldOfTheEncodedEvent(t *testing.T) {
	private, public, _, err := GenerateAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	signing, _ := ParseAdminSigningKey(private)
	publics, _ := ParseAdminPublicKeys(public)
	shared := Auth{Key: []byte("hmac-key")}
	codec := testkit.Codec(t, kafkaio.Topics{}.Subjects())
	// wire encodes and decodes ev, as the service reads it from the topic.
	wire := func(ev schemas.Control) schemas.Control {
		t.Helper()
		native, err := ev.Native()
		if err != nil {
			t.Fatal(err)
		}
		value, err := codec.Encode(schemas.ControlEvent, native)
		if err != nil {
			t.Fatal(err)
		}
		read, err := codec.DecodeControl(context.Background(), value)
		if err != nil {
			t.Fatal(err)
		}
		return read
	}
	fields := map[string]bool{}
	for _, keys := range []struct {
		name           string
		signer, holder Auth
	}{
		{"ed25519", Auth{SigningKey: signing}, Auth{PublicKeys: publics}},
		{"hmac", shared, shared},
	} {
		for _, ev := range signedEvents() {
			name := keys.name + " " + ev.Kind()
			if err := keys.signer.Sign(&ev); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(ev.Signature, "bytes:") || SignatureScheme(ev) != SchemeBytes {
				t.Fatalf("%s: signature %.12q..., scheme %q; want bytes:..., %s", name, ev.Signature, SignatureScheme(ev), SchemeBytes)
			}
			if err := keys.holder.Verify(ev); err != nil {
				t.Fatalf("%s: refused as signed: %v", name, err)
			}
			if err := keys.holder.Verify(wire(ev)); err != nil {
				t.Fatalf("%s: refused once on the topic: %v", name, err)
			}
			refusedAs := func(field, how string, changed schemas.Control) {
				t.Helper()
				want := ReasonBadSignature
				if field == "KeyID" {
					want = ReasonUnknownKey // it names a key no one holds
				}
				var re *RefusedError
				if err := keys.holder.Verify(changed); !errors.As(err, &re) || re.Reason != want {
					t.Errorf("%s: %s changed %s: got %v, want %s", name, field, how, err, want)
				}
				fields[field] = true
			}
			changeEachField(t, ev, func(field string, changed schemas.Control) {
				refusedAs(field, "after signing", changed)
				refusedAs(field, "after signing, then written to the topic", wire(changed))
			})
			changeEachField(t, wire(ev), func(field string, changed schemas.Control) {
				refusedAs(field, "after reading from the topic", changed)
			})
			other := ev
			other.Consent, other.Removal = nil, &schemas.Removal{Purge: true}
			if ev.Consent != nil {
				if err := keys.holder.Verify(wire(other)); err == nil {
					t.Errorf("%s: consent signature accepted on a removal", name)
				}
			}
			// A bytes signature read as the legacy scheme, and back.
			stripped := ev
			stripped.Signature = strings.TrimPrefix(ev.Signature, "bytes:")
			if err := keys.holder.Verify(stripped); err == nil {
				t.Errorf("%s: a bytes signature without its prefix verified as canonical text", name)
			}
		}
	}
	// 6 fields of the event (all but the signature) and 14 of the payloads.
	if len(fields) != 20 || !fields["IssuedBy"] || !fields["Mapping.RefreshInterval"] {
		t.Errorf("changed %d fields, want 20 including IssuedBy: %v", len(fields), fields)
	}
}

// Events signed over the canonical text by the enricher before bytes
// signatures (commit 57017a2): an Ed25519 key from the seed 0..31 and the
// HMAC key "legacy-hmac-key".
func legacyCanonicalEvents(t *testing.T) (ed, hm schemas.Control, edKeys, hmKeys Auth) {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	event := func(keyID, signature string) schemas.Control {
		return schemas.Control{EventID: "acme-consent-1", TenantID: "acme", IssuedAt: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
			IssuedBy: "alice@acme.example", Sequence: 1764331200000000, Consent: &schemas.Consent{Given: true, TermsVersion: "2020-11"},
			KeyID: keyID, Signature: signature}
	}
	ed = event("ed25519:56475aa75463474c", "9Db0sgSDP85EUW0UhqQG0vl8SOzCwpEDYtt1erpUkCF6FUruGeoTMCqb8i/cse729zYJsNglhO2X2D0dUKSmDQ==")
	hm = event("hmac:58c3509cc097ca1d", "ZmcLdnZLCQRWcgKPLAMTRF56yaBa2ZwzVxwwCN+C2NQ=")
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return ed, hm, Auth{PublicKeys: []ed25519.PublicKey{pub}}, Auth{Key: []byte("legacy-hmac-key")}
}

func TestCanonicalTextSignaturesStillVerifyAndAreReportedAsOld(t *testing.T) {
	ed, hm, edKeys, hmKeys := legacyCanonicalEvents(t)
	codec := testkit.Codec(t, kafkaio.Topics{}.Subjects())
	for _, c := range []struct {
		name string
		ev   schemas.Control
		keys Auth
	}{{"ed25519", ed, edKeys}, {"hmac", hm, hmKeys}} {
		if got := SignatureScheme(c.ev); got != SchemeCanonicalText {
			t.Errorf("%s: scheme %q, want %q", c.name, got, SchemeCanonicalText)
		}
		native, err := c.ev.Native()
		if err != nil {
			t.Fatal(err)
		}
		value, err := codec.Encode(schemas.ControlEvent, native)
		if err != nil {
			t.Fatal(err)
		}
		read, err := codec.DecodeControl(context.Background(), value)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.keys.Verify(read); err != nil {
			t.Errorf("%s: a canonical-text signature made before bytes signatures is refused: %v", c.name, err)
		}
		table := newTestTable()
		if applied, err := table.ApplyRecord(codec, c.keys, kafka.Message{Key: []byte("acme/consent"), Value: value}); err != nil || applied == nil {
			t.Errorf("%s: the control table did not apply the canonical-text event: %v", c.name, err)
		}
		changeEachField(t, c.ev, func(field string, changed schemas.Control) {
			if err := c.keys.Verify(changed); err == nil {
				t.Errorf("%s: %s changed, the canonical-text signature still verifies", c.name, field)
			}
		})
		marked := c.ev
		marked.Signature = "bytes:" + c.ev.Signature
		if err := c.keys.Verify(marked); err == nil {
			t.Errorf("%s: a canonical-text signature marked bytes: verified", c.name)
		}
		// Re-issued, the same event is signed over its bytes.
		var signer Auth
		if c.name == "hmac" {
			signer = c.keys
		} else {
			seed := make([]byte, ed25519.SeedSize)
			for i := range seed {
				seed[i] = byte(i)
			}
			signer = Auth{SigningKey: ed25519.NewKeyFromSeed(seed)}
		}
		reissued := c.ev
		reissued.Sequence++
		if err := signer.Sign(&reissued); err != nil {
			t.Fatal(err)
		}
		if SignatureScheme(reissued) != SchemeBytes || c.keys.Verify(reissued) != nil {
			t.Errorf("%s: re-issued: scheme %q, verify %v", c.name, SignatureScheme(reissued), c.keys.Verify(reissued))
		}
	}
}
