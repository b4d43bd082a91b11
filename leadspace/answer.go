package leadspace

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Answers carrying companies (a single call's, a bulk's results) are read
// with fastjson: one pass over the bytes, then each object's keys once.
// With encoding/json's reflection, a bulk answer of 500 companies cost
// 15.5 µs and 45 allocations per record and was the instance's largest CPU
// cost after the GC (BenchmarkParseBulkResults).
//
// Reading is lenient, as the research could not pin the shapes down: keys
// match case-insensitively (the last of duplicates wins), a value of the
// wrong type leaves its field empty, and only a body that is not a JSON
// object is an error.
//
// UNCERTAIN(leadspace-api.md §3): the outer shape and the field names are
// from a third-party profile cross-checked with one adapter; sizes and
// revenue come under two names (employees|size, revenue_dollar|revenue);
// the names of the fields carrying a bulk record's error code are not
// known: we read error_code, code, or error.code, and a status of
// "Invalid Input". The simulator emits error_code and error.

var answerParsers fastjson.ParserPool

// readAnswer parses body, insists on an object at the top, and hands it to
// read; values are only valid inside read.
func readAnswer(body []byte, read func(*fastjson.Value)) error {
	if !isObject(body) {
		return errNotJSONObject
	}
	p := answerParsers.Get()
	defer answerParsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return err
	}
	read(v)
	return nil
}

// answer is one record's answer as Leadspace shaped it.
type answer struct {
	status, externalID string
	hasData            bool
	enrichmentStatus   string
	company            *fastjson.Value // an object, or nil
	// a bulk record's failure
	errorCode, code, errCode int64
	errMessage               string
}

// readRecord reads a single call's body or one element of a bulk's results.
func readRecord(v *fastjson.Value) (a answer) {
	eachField(v, func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "status":
			a.status = text(v)
		case "external_id":
			a.externalID = text(v)
		case "error_code":
			a.errorCode = integer(v)
		case "code":
			a.code = integer(v)
		case "error":
			if v.Type() != fastjson.TypeObject {
				a.errMessage = text(v) // an error given as a plain string is its message
				return
			}
			eachField(v, func(key []byte, v *fastjson.Value) {
				switch string(key) {
				case "code":
					a.errCode = integer(v)
				case "message":
					a.errMessage = text(v)
				}
			})
		case "data":
			a.hasData, a.company, a.enrichmentStatus = v.Type() == fastjson.TypeObject, nil, ""
			eachField(v, func(key []byte, v *fastjson.Value) {
				switch string(key) {
				case "enrichment_status":
					a.enrichmentStatus = text(v)
				case "company":
					a.company = nil
					if v.Type() == fastjson.TypeObject {
						a.company = v
					}
				}
			})
		}
	})
	return a
}

// result turns a record's answer into its Result.
func (a *answer) result() Result {
	res := Result{ExternalID: a.externalID, Status: a.enrichmentStatus}
	if a.company == nil {
		return res
	}
	res.Company, res.Confidence = readCompany(a.company)
	res.Matched = !strings.EqualFold(strings.TrimSpace(res.Status), notEnriched) &&
		(res.Company.ID != "" || res.Company.Name != "" || res.Company.Website != "")
	if !res.Matched {
		// Leadspace may echo inputs into a "Not Enriched" company; don't
		// present them as firmographics.
		res.Company, res.Confidence = Company{}, ""
	}
	return res
}

// readCompany reads data.company and its matching_confidence.level,
// upper-cased.
func readCompany(v *fastjson.Value) (c Company, confidence string) {
	var ugID, lsID, street, address, zip, postal string
	var employees, size, revenueDollar, revenue exactRange
	eachField(v, func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "ug_company_id":
			ugID = text(v)
		case "ls_id":
			lsID = text(v)
		case "name":
			c.Name = text(v)
		case "website":
			c.Website = text(v)
		case "description":
			c.Description = text(v)
		case "industry":
			c.Industry = text(v)
		case "sub_industry":
			c.SubIndustry = text(v)
		case "sic":
			c.SIC = text(v)
		case "sicdescription":
			c.SICDescription = text(v)
		case "naics":
			c.NAICS = text(v)
		case "naicsdescription":
			c.NAICSDescription = text(v)
		case "employees":
			employees = readExactRange(v)
		case "size":
			size = readExactRange(v)
		case "revenue_dollar":
			revenueDollar = readExactRange(v)
		case "revenue":
			revenue = readExactRange(v)
		case "phone":
			c.Phone = text(v)
		case "linkedin_profile":
			c.LinkedInURL = text(v)
		case "ownership":
			c.Ownership = text(v)
		case "matching_confidence":
			// documented as {level}; a bare string is accepted too
			confidence = text(v)
			eachField(v, func(key []byte, v *fastjson.Value) {
				if string(key) == "level" {
					confidence = text(v)
				}
			})
		case "analytics":
			eachField(v, func(key []byte, v *fastjson.Value) {
				if string(key) == "installed_base_technologies" {
					c.Technologies = texts(v)
				}
			})
		case "address":
			c.Address = Address{}
			street, address, zip, postal = "", "", "", ""
			eachField(v, func(key []byte, v *fastjson.Value) {
				switch string(key) {
				case "street":
					street = text(v)
				case "address":
					address = text(v)
				case "city":
					c.Address.City = text(v)
				case "state":
					c.Address.State = text(v)
				case "zipcode":
					zip = text(v)
				case "postalcode":
					postal = text(v)
				case "country":
					c.Address.Country = text(v)
				}
			})
		}
	})
	c.ID = first(ugID, lsID)
	c.Address.Street = first(street, address)
	c.Address.PostalCode = first(zip, postal)
	if employees.empty() {
		employees = size
	}
	c.Employees, c.EmployeesRange = employees.exact, employees.rng
	if revenueDollar.empty() {
		revenueDollar = revenue
	}
	c.Revenue, c.RevenueRange = revenueDollar.exact, revenueDollar.rng
	return c, strings.ToUpper(strings.TrimSpace(confidence))
}

// exactRange is Leadspace's {exact, range} pair for sizes and revenue.
type exactRange struct {
	exact int64
	rng   string
}

func (e exactRange) empty() bool { return e.exact == 0 && e.rng == "" }

func readExactRange(v *fastjson.Value) (e exactRange) {
	eachField(v, func(key []byte, v *fastjson.Value) {
		switch string(key) {
		case "exact":
			e.exact = integer(v)
		case "range":
			e.rng = text(v)
		}
	})
	return e
}

// eachField calls f for each key of an object, lower-cased (only for
// comparing: the bytes are reused); anything but an object has no fields.
func eachField(v *fastjson.Value, f func(key []byte, v *fastjson.Value)) {
	o, err := v.Object()
	if err != nil {
		return
	}
	var buf []byte
	o.Visit(func(key []byte, v *fastjson.Value) {
		buf = append(buf[:0], key...)
		for i, c := range buf {
			if 'A' <= c && c <= 'Z' {
				buf[i] = c + 'a' - 'A'
			}
		}
		f(buf, v)
	})
}

// text reads a string, number or bool as text (a string trimmed, a number
// or bool as written); anything else reads as "". Invalid UTF-8 is
// replaced, as encoding/json did, so outputs stay valid Avro strings.
func text(v *fastjson.Value) string {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		b = bytes.TrimSpace(b)
		if !utf8.Valid(b) {
			return strings.ToValidUTF8(string(b), "\uFFFD")
		}
		return string(b)
	case fastjson.TypeNumber:
		return v.String()
	case fastjson.TypeTrue:
		return "true"
	case fastjson.TypeFalse:
		return "false"
	}
	return ""
}

// texts reads an array of scalars, dropping empty ones; anything else reads
// as nil.
func texts(v *fastjson.Value) []string {
	a, err := v.Array()
	if err != nil {
		return nil
	}
	var out []string
	for _, x := range a {
		if s := text(x); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// integer reads a number or a numeric string ("1,200"), clamped to int64;
// anything else reads as 0.
func integer(v *fastjson.Value) int64 {
	var s string
	switch v.Type() {
	case fastjson.TypeNumber:
		s = v.String()
	case fastjson.TypeString:
		s = strings.ReplaceAll(text(v), ",", "")
	default:
		return 0
	}
	return clampInt(s)
}

// clampInt parses a decimal number, clamped to int64; unreadable is 0.
func clampInt(s string) int64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0
	}
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}
