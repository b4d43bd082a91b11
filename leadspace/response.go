package leadspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// Company is the firmographic profile Leadspace returned for a match. Its
// texts are valid UTF-8 (invalid bytes in an answer are replaced).
type Company struct {
	ID               string // ug_company_id, else ls_id
	Name             string
	Website          string
	Description      string
	Industry         string
	SubIndustry      string
	SIC              string
	SICDescription   string
	NAICS            string
	NAICSDescription string
	Employees        int64
	EmployeesRange   string // from `employees` or `size`
	Revenue          int64
	RevenueRange     string // from `revenue_dollar` or `revenue`
	Address          Address
	Phone            string
	LinkedInURL      string
	Ownership        string
	Technologies     []string // analytics.installed_base_technologies
}

// Result of one record.
type Result struct {
	ExternalID string
	// Matched is false when Leadspace answered "Not Enriched", or sent no
	// usable company (empty, absent or null).
	Matched bool
	// Confidence is matching_confidence.level upper-cased ("HIGH", "MEDIUM",
	// "LOW", "VERY LOW"), "" if absent. Bucket names can be customised per
	// customer, so treat it as an open set.
	Confidence string
	// Status is data.enrichment_status as sent.
	Status  string
	Company Company
}

// notEnriched is the no-match status (docs/leadspace.md §3): HTTP 200, not 404.
const notEnriched = "not enriched"

var errNotJSONObject = errors.New("response is not a JSON object")

// parseSingleResponse reads the body of a 200 answer to a single call (see
// answer.go). It never panics; only a body that is not a JSON object, or has
// no data, is an error.
func parseSingleResponse(body []byte) (Result, error) {
	var a answer
	if err := readAnswer(body, func(r *jsonReader) { a = readRecord(r) }); err != nil {
		return Result{}, err
	}
	if !a.hasData {
		return Result{}, errors.New("response has no data object")
	}
	return a.result(), nil
}

// decodeObject insists on a JSON object at the top, then decodes leniently:
// a value of the wrong type leaves its field empty, the rest is decoded.
// For the small answers (bulk accepted, OAuth, error envelopes).
func decodeObject(body []byte, v any) error {
	if !isObject(body) {
		return errNotJSONObject
	}
	err := json.Unmarshal(body, v)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return nil
	}
	return err
}

func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// flexString accepts a string, number or bool; anything else reads as "".
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case '"':
		// The decoder has validated the string: without escapes (and with
		// valid UTF-8) its bytes are its value.
		if raw := b[1 : len(b)-1]; bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			*f = flexString(strings.TrimSpace(string(raw)))
			return nil
		}
		var s string
		if json.Unmarshal(b, &s) == nil {
			*f = flexString(strings.TrimSpace(s))
		}
	case '{', '[', 'n':
		// object, array, null: not a string
	default:
		*f = flexString(b) // number or bool, as written
	}
	return nil
}

func (f flexString) String() string { return string(f) }

// flexInt accepts a JSON number or a numeric string, clamped to int64;
// anything else reads as 0.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if json.Unmarshal(b, &s) != nil {
			return nil
		}
		b = []byte(strings.ReplaceAll(strings.TrimSpace(s), ",", ""))
	}
	*f = flexInt(clampInt(string(b)))
	return nil
}

// envelope is Leadspace's error body (docs/leadspace.md §4). It may be absent
// or not JSON at all; then it stays empty.
type envelope struct {
	Error            flexString `json:"error"`
	TrackingID       flexString `json:"tracking_id"`
	RequestTimestamp flexString `json:"request_timestamp"`
	Details          flexString `json:"details"`
}

func parseEnvelope(body []byte) envelope {
	var e envelope
	if isObject(body) {
		_ = json.Unmarshal(body, &e)
	}
	e.TrackingID = flexString(truncate(string(e.TrackingID), 80))
	return e
}

// message is the human part of the envelope, kept short.
func (e envelope) message() string {
	msg := string(e.Error)
	if e.Details != "" {
		if msg != "" {
			msg += ": "
		}
		msg += string(e.Details)
	}
	return truncate(msg, 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
