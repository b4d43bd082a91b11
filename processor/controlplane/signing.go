package controlplane

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Stable reasons for refused control events. Each refusal is counted per
// tenant and reason on the tenant's control status record.
const (
	ReasonUnsigned     = "control.unsigned"      // a key is configured, the event carries no signature
	ReasonBadSignature = "control.bad_signature" // the signature does not match the key it names
	ReasonUnknownKey   = "control.unknown_key"   // signed by a key the service does not hold
	ReasonNoSequence   = "control.no_sequence"   // no sequence (written by an enricher older than sequences)
	ReasonReplayed     = "control.replayed"      // sequence not above the one applied for its key
	ReasonWrongKey     = "control.wrong_key"     // written under another tenant's or kind's key
	ReasonEmptyValue   = "control.empty_value"   // a 0-byte value
	ReasonTombstone    = "control.tombstone"     // a null value: it would let compaction delete the genuine event
	ReasonUndecodable  = "control.undecodable"   // not a ControlEvent
	ReasonControlKey   = "control.malformed_key" // the key is not tenant/kind; counted for no tenant
)

// Auth signs and verifies control events. Whoever can write to the
// control topic could otherwise switch a tenant's consent on or point its
// data at another token; with a key, only holders of an admin key can.
//
// Two kinds of key:
//   - Ed25519 (preferred): admins sign with the private key, instances hold
//     only public keys, so a compromised instance cannot forge consent.
//     Several public keys may be held at once, which is how keys rotate.
//   - HMAC-SHA256 with a shared key: simpler, but every holder (each
//     instance too) can sign.
//
// Every signed event carries a sequence and the id of its key; the
// signature covers both. Signatures cover the event's encoded bytes
// (schemas.Control.SignedForm) and start with "bytes:", so a field added
// to the schema is signed without anyone listing it; events signed before
// that, over the canonical text, still verify until re-issued
// (SignatureScheme).
type Auth struct {
	// Key is a shared HMAC-SHA256 key: it signs and verifies.
	// Default: none.
	Key []byte
	// PublicKeys verify Ed25519-signed events (the service holds these).
	// Default: none.
	PublicKeys []ed25519.PublicKey
	// SigningKey signs with Ed25519 (admin commands hold it; the service
	// needs only its public key). Its public key also verifies. Default: none.
	SigningKey ed25519.PrivateKey
}

// Enabled is whether events must be signed: any key is configured.
func (a Auth) Enabled() bool {
	return len(a.Key) > 0 || len(a.PublicKeys) > 0 || a.SigningKey != nil
}

// CanSign is whether a holds a key that signs.
func (a Auth) CanSign() bool { return a.SigningKey != nil || len(a.Key) > 0 }

// KeyIDs lists the ids of the keys that verify, for logs and admins.
func (a Auth) KeyIDs() []string {
	var ids []string
	if len(a.Key) > 0 {
		ids = append(ids, hmacKeyID(a.Key))
	}
	if a.SigningKey != nil {
		ids = append(ids, Ed25519KeyID(a.SigningKey.Public().(ed25519.PublicKey)))
	}
	for _, k := range a.PublicKeys {
		ids = append(ids, Ed25519KeyID(k))
	}
	return ids
}

// Sign names the key, sets a sequence when ev has none (NextSequence), and
// signs ev over its encoded bytes: with the Ed25519 key when there is one,
// else with the HMAC key.
func (a Auth) Sign(ev *schemas.Control) error {
	if !a.CanSign() {
		return errors.New("no admin key that signs: set an Ed25519 signing key or the HMAC admin key")
	}
	if ev.Sequence == 0 {
		ev.Sequence = NextSequence(0)
	}
	if a.SigningKey != nil {
		ev.KeyID = Ed25519KeyID(a.SigningKey.Public().(ed25519.PublicKey))
	} else {
		ev.KeyID = hmacKeyID(a.Key)
	}
	form, err := ev.SigningForm()
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	msg := bytesMessage(form)
	var sig []byte
	if a.SigningKey != nil {
		sig = ed25519.Sign(a.SigningKey, msg)
	} else {
		sig = hmacOf(a.Key, msg)
	}
	ev.Signature = schemas.BytesSignaturePrefix + base64.StdEncoding.EncodeToString(sig)
	return nil
}

// Signature schemes, as SignatureScheme names them.
const (
	SchemeBytes         = "bytes"          // over the encoded event (written now)
	SchemeCanonicalText = "canonical text" // legacy: over canonical(); re-issue the event
)

// SignatureScheme says what ev's signature covers: SchemeBytes,
// SchemeCanonicalText, or "" when ev is unsigned.
func SignatureScheme(ev schemas.Control) string {
	switch {
	case ev.Signature == "":
		return ""
	case strings.HasPrefix(ev.Signature, schemas.BytesSignaturePrefix):
		return SchemeBytes
	}
	return SchemeCanonicalText
}

// SchemeLabel is how admin views (control show) name what ev's signature
// covers: the scheme, and for the legacy one what to do about it.
func SchemeLabel(ev schemas.Control) string {
	if s := SignatureScheme(ev); s != SchemeCanonicalText {
		return s
	}
	return SchemeCanonicalText + " (re-issue)"
}

// bytesMessage is what a bytes signature signs: a label that no canonical
// text starts with, then the event's signed form.
func bytesMessage(form []byte) []byte {
	return append([]byte("leadspace-control/bytes\x00"), form...)
}

// RefusedError is why a control event was not applied.
type RefusedError struct {
	Reason string
	Err    error
	// Repeat: the record was accounted for before (read again after a
	// restart) and is not counted again.
	Repeat bool
}

func (e *RefusedError) Error() string { return e.Reason + ": " + e.Err.Error() }

func refused(reason, format string, args ...any) *RefusedError {
	return &RefusedError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Verify checks ev's sequence and, when a key is configured, its signature.
// Whether the sequence is above the applied one is the control table's
// business: it is what it applied that decides.
func (a Auth) Verify(ev schemas.Control) error {
	if ev.Sequence <= 0 {
		return refused(ReasonNoSequence, "event carries no sequence; re-issue it with this enricher")
	}
	if !a.Enabled() {
		return nil
	}
	if ev.Signature == "" {
		return refused(ReasonUnsigned, "event carries no signature")
	}
	encoded, overBytes := strings.CutPrefix(ev.Signature, schemas.BytesSignaturePrefix)
	sig, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return refused(ReasonBadSignature, "signature is not base64")
	}
	var msg []byte
	if overBytes {
		form, err := ev.SignedForm()
		if err != nil {
			return refused(ReasonBadSignature, "the event does not encode for its signature: %v", err)
		}
		msg = bytesMessage(form)
	} else {
		msg = canonical(ev) // legacy
	}
	switch scheme, _, _ := strings.Cut(ev.KeyID, ":"); scheme {
	case "hmac":
		if len(a.Key) == 0 || ev.KeyID != hmacKeyID(a.Key) {
			return refused(ReasonUnknownKey, "signed by HMAC key %s, which this service does not hold", ev.KeyID)
		}
		if !hmac.Equal(sig, hmacOf(a.Key, msg)) {
			return refused(ReasonBadSignature, "signature does not match key %s", ev.KeyID)
		}
		return nil
	case "ed25519":
		pub := a.publicKey(ev.KeyID)
		if pub == nil {
			return refused(ReasonUnknownKey, "signed by Ed25519 key %s, which this service does not hold", ev.KeyID)
		}
		if !ed25519.Verify(pub, msg, sig) {
			return refused(ReasonBadSignature, "signature does not match key %s", ev.KeyID)
		}
		return nil
	}
	return refused(ReasonUnknownKey, "key id %.40q is neither ed25519:... nor hmac:...", ev.KeyID)
}

func (a Auth) publicKey(id string) ed25519.PublicKey {
	if a.SigningKey != nil {
		if pub := a.SigningKey.Public().(ed25519.PublicKey); Ed25519KeyID(pub) == id {
			return pub
		}
	}
	for _, k := range a.PublicKeys {
		if Ed25519KeyID(k) == id {
			return k
		}
	}
	return nil
}

// canonical is the legacy signed form of an event (SchemeCanonicalText),
// verified only: every field but the signature, in a fixed order, each
// value quoted, so no two events share a form. It names each field by
// hand, so a field added to the schema is not in it; Sign now signs the
// encoded bytes. v2 added key_id and sequence; v1 signatures no longer
// verify.
func canonical(ev schemas.Control) []byte {
	var b bytes.Buffer
	field := func(name, value string) { fmt.Fprintf(&b, "%s=%s\n", name, strconv.Quote(value)) }
	millis := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return strconv.FormatInt(t.UnixMilli(), 10)
	}
	b.WriteString("leadspace-control/v2\n")
	field("key_id", ev.KeyID)
	field("sequence", strconv.FormatInt(ev.Sequence, 10))
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
	return b.Bytes()
}

func hmacOf(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// hmacKeyID names a shared key without revealing it (the signatures on the
// topic already allow as much guessing as this hash does).
func hmacKeyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("leadspace-enricher admin key id\x00"), key...))
	return "hmac:" + hex.EncodeToString(sum[:8])
}

// Ed25519KeyID names a public key: ed25519: and the first 8 bytes of its
// SHA-256 in hex.
func Ed25519KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

const (
	adminPublicPrefix  = "ed25519:"
	adminPrivatePrefix = "ed25519-private:"
)

// GenerateAdminKey makes an Ed25519 admin key pair: the private key signs
// control events (admins), the public key verifies them (the service).
func GenerateAdminKey() (private, public, keyID string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	return adminPrivatePrefix + b64.EncodeToString(priv.Seed()), adminPublicPrefix + b64.EncodeToString(pub), Ed25519KeyID(pub), nil
}

// ParseAdminSigningKey reads a private key made by GenerateAdminKey.
func ParseAdminSigningKey(s string) (ed25519.PrivateKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), adminPrivatePrefix)
	if !ok {
		return nil, fmt.Errorf("not an Ed25519 private key (want %s...)", adminPrivatePrefix)
	}
	seed, err := b64.DecodeString(rest)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("malformed Ed25519 private key")
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParseAdminPublicKeys reads comma-separated public keys made by
// GenerateAdminKey.
func ParseAdminPublicKeys(s string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		rest, ok := strings.CutPrefix(part, adminPublicPrefix)
		raw, err := b64.DecodeString(rest)
		if !ok || err != nil || len(raw) != ed25519.PublicKeySize {
			// The value is not echoed: it may be a private key pasted by mistake.
			return nil, fmt.Errorf("key %d is not an Ed25519 public key (want %s<base64url>)", i+1, adminPublicPrefix)
		}
		out = append(out, ed25519.PublicKey(raw))
	}
	return out, nil
}

var lastSequence atomic.Int64

// NextSequence returns a sequence above after and above every sequence this
// process returned before: the wall clock in microseconds, or one more than
// the larger of those when the clock is behind. Admin commands pass the
// highest sequence they saw for the key, so a clock that went back cannot
// make their event look like a replay; the clock makes two admins who
// publish at once pick different numbers.
func NextSequence(after int64) int64 {
	for {
		last := lastSequence.Load()
		next := max(time.Now().UnixMicro(), last+1)
		if after < math.MaxInt64 {
			next = max(next, after+1)
		}
		if lastSequence.CompareAndSwap(last, next) {
			return next
		}
	}
}
