package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Stable reasons of the map stage.
const (
	ReasonMissingName   = statusview.ReasonMissingName // "map.missing_company_name"; the status view explains it
	ReasonNotAnAccount  = "map.not_an_account_profile"
	ReasonFieldTooLong  = "validate.field_too_long"
	ReasonInvalidText   = "validate.invalid_utf8"
	ReasonKeyMismatch   = "validate.key_mismatch"
	ReasonMissingIDs    = "validate.missing_ids"
	ReasonMalformedKey  = "validate.malformed_key"
	maxMappedValueBytes = 512
)

// mapped is what the tenant's mapping selects from one profile: the only
// data that will leave for Leadspace.
type mapped struct {
	input       leadspace.CompanyInput
	fingerprint string
}

// mapProfile applies a mapping. A blank name is not an error but a skip
// (the profile cannot be matched); oversized or non-UTF-8 values are input
// errors, because Leadspace would reject or mangle them. Skips carry a
// fingerprint too, so an unchanged skipped profile publishes nothing new.
//
// Control characters (Unicode category Cc: tabs, newlines, NUL, escapes) in
// a mapped value are replaced by spaces and the value is trimmed; the
// cleaned value is what leaves and what is fingerprinted.
func mapProfile(p schemas.Profile, m schemas.Mapping) (mapped, string, error) {
	if p.Kind != "" && p.Kind != "ACCOUNT" {
		return mapped{fingerprint: fingerprint(leadspace.CompanyInput{Name: "\x00kind=" + p.Kind})}, ReasonNotAnAccount, nil
	}
	get := func(attr string) (string, error) {
		if attr == "" {
			return "", nil
		}
		raw := p.Attributes[attr]
		switch {
		case !utf8.ValidString(raw):
			return "", &stageError{stage: schemas.StageValidate, reason: ReasonInvalidText, class: classInput,
				err: fmt.Errorf("attribute %q is not valid UTF-8", attr)}
		}
		v := strings.TrimSpace(strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, raw))
		if len(v) > maxMappedValueBytes {
			return "", &stageError{stage: schemas.StageValidate, reason: ReasonFieldTooLong, class: classInput,
				err: fmt.Errorf("attribute %q is %d bytes, the limit is %d", attr, len(v), maxMappedValueBytes)}
		}
		return v, nil
	}
	name, err := get(m.NameAttribute)
	if err != nil {
		return mapped{}, "", err
	}
	website, err := get(m.WebsiteAttribute)
	if err != nil {
		return mapped{}, "", err
	}
	location, err := get(m.LocationAttribute)
	if err != nil {
		return mapped{}, "", err
	}
	in := leadspace.CompanyInput{Name: name, Website: website, Address: parseLocation(location)}
	out := mapped{input: in, fingerprint: fingerprint(in)}
	if name == "" {
		return out, ReasonMissingName, nil
	}
	return out, "", nil
}

// parseLocation reads a free-text company location, most specific part first:
// "City, State, Country", "City, Country" or "Country". Leadspace takes a
// structured address; how it weighs each part in matching is not published
// (UNCERTAIN, docs/leadspace.md §2), so we send only what the text says.
func parseLocation(s string) *leadspace.Address {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	a := &leadspace.Address{}
	switch n := len(parts); {
	case n == 1:
		a.Country = parts[0]
	case n == 2:
		a.City, a.Country = parts[0], parts[1]
	default:
		a.City, a.State, a.Country = parts[n-3], parts[n-2], parts[n-1]
		if n > 3 {
			a.Street = strings.Join(parts[:n-3], ", ")
		}
	}
	return a
}

// fingerprint identifies the inputs sent; equal fingerprints mean a call
// would ask Leadspace the same question again.
// The text hashed is built in one buffer (fmt into a hash cost four
// allocations per input).
func fingerprint(in leadspace.CompanyInput) string {
	var arr [512]byte
	b := append(arr[:0], "name="...)
	b = append(append(b, in.Name...), "\x00website="...)
	b = append(append(b, in.Website...), '\x00')
	if a := in.Address; a != nil {
		for _, f := range [...]struct{ k, v string }{{"street=", a.Street}, {"city=", a.City}, {"state=", a.State},
			{"postal=", a.PostalCode}, {"country=", a.Country}} {
			b = append(append(append(b, f.k...), f.v...), '\x00')
		}
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sentOf is what was sent, as the contract has it (with its location in
// the same allocation).
func sentOf(in leadspace.CompanyInput) *schemas.Sent {
	box := &struct {
		sent     schemas.Sent
		location schemas.Address
	}{sent: schemas.Sent{Name: in.Name, Website: in.Website}}
	if a := in.Address; a != nil {
		box.location = schemas.Address{Street: a.Street, City: a.City, State: a.State, PostalCode: a.PostalCode, Country: a.Country}
		box.sent.Location = &box.location
	}
	return &box.sent
}

// splitKey reads a tenant/profile key. A key that is not valid UTF-8, or
// has no '/', names no tenant: it never creates one in status.
func splitKey(key []byte) (tenant, profile string, ok bool) {
	return cutKey(string(key))
}

// cutKey is splitKey of a key already made a string: its parts are
// substrings, nothing is copied.
func cutKey(key string) (tenant, profile string, ok bool) {
	tenant, profile, ok = strings.Cut(key, "/")
	if !ok || tenant == "" || profile == "" || !utf8.ValidString(key) {
		return "", "", false
	}
	return tenant, profile, true
}

// ReasonOf is the stable reason code of an error MapProfile returned.
func ReasonOf(err error) (string, bool) {
	var se *stageError
	if errors.As(err, &se) {
		return se.reason, true
	}
	return "", false
}

// MapProfile applies a tenant's mapping to one profile as the pipeline does:
// the fingerprint of what would leave for Leadspace, or the reason it would
// be skipped, or the input error that would dead-letter it. Tools (the Run's
// credits preview) use it to predict the pipeline without running it.
func MapProfile(p schemas.Profile, m schemas.Mapping) (fingerprint, skipReason string, err error) {
	got, skip, err := mapProfile(p, m)
	return got.fingerprint, skip, err
}
