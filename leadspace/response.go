package leadspace

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Company is the firmographic profile Leadspace returned for a match.
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

// notEnriched is the no-match status (leadspace-api.md §3): HTTP 200, not 404.
const notEnriched = "not enriched"

var errNotJSONObject = errors.New("response is not a JSON object")

// parseSingleResponse reads the body of a 200 answer to a single call. It is
// tolerant of everything the research could not pin down and never panics;
// only a body that is not a JSON object, or has no data, is an error.
func parseSingleResponse(body []byte) (Result, error) {
	var r wireResult
	if err := decodeObject(body, &r); err != nil {
		return Result{}, err
	}
	if r.Data == nil {
		return Result{}, errors.New("response has no data object")
	}
	return r.result(), nil
}

// decodeObject insists on a JSON object at the top, then decodes leniently:
// a value of the wrong type leaves its field empty, the rest is decoded.
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

// UNCERTAIN(leadspace-api.md §3): the outer shape and the field names are
// from a third-party profile cross-checked with one adapter; sizes and revenue
// come under two names (employees|size, revenue_dollar|revenue).
type wireResult struct {
	Status     flexString `json:"status"`
	ExternalID flexString `json:"external_id"`
	Data       *wireData  `json:"data"`
}

type wireData struct {
	EnrichmentStatus flexString      `json:"enrichment_status"`
	Company          *wireCompanyOut `json:"company"`
}

type wireCompanyOut struct {
	UGCompanyID      flexString     `json:"ug_company_id"`
	LSID             flexString     `json:"ls_id"`
	Name             flexString     `json:"name"`
	Website          flexString     `json:"website"`
	Description      flexString     `json:"description"`
	Industry         flexString     `json:"industry"`
	SubIndustry      flexString     `json:"sub_industry"`
	SIC              flexString     `json:"sic"`
	SICDescription   flexString     `json:"sicDescription"`
	NAICS            flexString     `json:"naics"`
	NAICSDescription flexString     `json:"naicsDescription"`
	Employees        wireExactRange `json:"employees"`
	Size             wireExactRange `json:"size"`
	RevenueDollar    wireExactRange `json:"revenue_dollar"`
	Revenue          wireExactRange `json:"revenue"`
	Address          wireAddressOut `json:"address"`
	Phone            flexString     `json:"phone"`
	LinkedIn         flexString     `json:"linkedin_profile"`
	Ownership        flexString     `json:"ownership"`
	Confidence       wireConfidence `json:"matching_confidence"`
	Analytics        wireAnalytics  `json:"analytics"`
}

type wireExactRange struct {
	Exact flexInt    `json:"exact"`
	Range flexString `json:"range"`
}

type wireAddressOut struct {
	Street     flexString `json:"street"`
	Address    flexString `json:"address"`
	City       flexString `json:"city"`
	State      flexString `json:"state"`
	Zipcode    flexString `json:"zipcode"`
	PostalCode flexString `json:"postalcode"`
	Country    flexString `json:"country"`
}

type wireConfidence struct {
	Level flexString `json:"level"`
}

type wireAnalytics struct {
	Installed flexStrings `json:"installed_base_technologies"`
}

// Values of the wrong JSON type are ignored instead of failing the whole
// answer (one odd field must not lose a match): leaves are flexString,
// flexInt and flexStrings, and for objects decodeObject ignores
// json.UnmarshalTypeError, after which encoding/json has decoded everything
// else. That keeps parsing to one pass over the body: a bulk answer of 500
// companies is the client's main CPU cost.

// matching_confidence is documented as {level}; a bare string is accepted too.
func (w *wireConfidence) UnmarshalJSON(b []byte) error {
	if !isObject(b) {
		return w.Level.UnmarshalJSON(b)
	}
	type plain wireConfidence
	return json.Unmarshal(b, (*plain)(w))
}

func isObject(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

func (r *wireResult) result() Result {
	d := r.Data
	res := Result{ExternalID: r.ExternalID.String(), Status: d.EnrichmentStatus.String()}
	c := d.Company
	if c == nil {
		return res
	}
	res.Confidence = strings.ToUpper(strings.TrimSpace(c.Confidence.Level.String()))
	res.Company = c.company()
	res.Matched = !strings.EqualFold(strings.TrimSpace(res.Status), notEnriched) &&
		(res.Company.ID != "" || res.Company.Name != "" || res.Company.Website != "")
	if !res.Matched {
		// Leadspace may echo inputs into a "Not Enriched" company; don't
		// present them as firmographics.
		res.Company, res.Confidence = Company{}, ""
	}
	return res
}

func (c *wireCompanyOut) company() Company {
	emp := c.Employees
	if emp.empty() {
		emp = c.Size
	}
	rev := c.RevenueDollar
	if rev.empty() {
		rev = c.Revenue
	}
	return Company{
		ID:               first(c.UGCompanyID.String(), c.LSID.String()),
		Name:             c.Name.String(),
		Website:          c.Website.String(),
		Description:      c.Description.String(),
		Industry:         c.Industry.String(),
		SubIndustry:      c.SubIndustry.String(),
		SIC:              c.SIC.String(),
		SICDescription:   c.SICDescription.String(),
		NAICS:            c.NAICS.String(),
		NAICSDescription: c.NAICSDescription.String(),
		Employees:        int64(emp.Exact),
		EmployeesRange:   emp.Range.String(),
		Revenue:          int64(rev.Exact),
		RevenueRange:     rev.Range.String(),
		Address: Address{
			Street:     first(c.Address.Street.String(), c.Address.Address.String()),
			City:       c.Address.City.String(),
			State:      c.Address.State.String(),
			PostalCode: first(c.Address.Zipcode.String(), c.Address.PostalCode.String()),
			Country:    c.Address.Country.String(),
		},
		Phone:        c.Phone.String(),
		LinkedInURL:  c.LinkedIn.String(),
		Ownership:    c.Ownership.String(),
		Technologies: c.Analytics.Installed.strings(),
	}
}

func (w wireExactRange) empty() bool { return w.Exact == 0 && w.Range == "" }

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
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) {
		return nil
	}
	switch {
	case v >= math.MaxInt64:
		*f = math.MaxInt64
	case v <= math.MinInt64:
		*f = math.MinInt64
	default:
		*f = flexInt(v)
	}
	return nil
}

// flexStrings accepts an array of scalars; anything else reads as empty.
type flexStrings []flexString

func (f *flexStrings) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '[' {
		return nil
	}
	var raw []flexString
	if json.Unmarshal(b, &raw) == nil {
		*f = raw
	}
	return nil
}

func (f flexStrings) strings() []string {
	var out []string
	for _, s := range f {
		if s != "" {
			out = append(out, string(s))
		}
	}
	return out
}

// envelope is Leadspace's error body (leadspace-api.md §4). It may be absent
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
