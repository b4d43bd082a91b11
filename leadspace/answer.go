package leadspace

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// Answers carrying companies (a single call's, a bulk's results) are read
// with gjson: it scans the bytes and builds no tree. encoding/json's
// reflection cost 15.5 µs per record of a 500-record bulk answer
// (BenchmarkParseBulkResults), 19% of the instance's CPU with two programs;
// this reads one in 6.5 to 9 µs. A tree parser (fastjson) read one in 4.5 µs
// alone, but its tree of about 4 MB per answer made the instance's heap
// grow whenever several polls answered at once.
//
// Reading is lenient, as the research could not pin the shapes down: keys
// match case-insensitively (the last of duplicates wins), a value of the
// wrong type leaves its field empty, and only a body that is not a JSON
// object is an error.
//
// UNCERTAIN(docs/leadspace.md §3): the outer shape and the field names are
// from a third-party profile cross-checked with one adapter; sizes and
// revenue come under two names (employees|size, revenue_dollar|revenue);
// the names of the fields carrying a bulk record's error code are not
// known: we read error_code, code, or error.code, and a status of
// "Invalid Input". The simulator emits error_code and error.

// readAnswer checks that body is one valid JSON object and returns it.
// The result reads body in place (ParseBytes would copy it, 44 MB of a
// two-program backlog's allocations): body must not change while it is
// read, and every field kept is a copy (text).
func readAnswer(body []byte) (gjson.Result, error) {
	if !isObject(body) {
		return gjson.Result{}, errNotJSONObject
	}
	if !gjson.ValidBytes(body) {
		return gjson.Result{}, errors.New("response is not valid JSON")
	}
	return gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))), nil
}

// answer is one record's answer as Leadspace shaped it.
type answer struct {
	status, externalID string
	hasData            bool
	enrichmentStatus   string
	company            gjson.Result // an object, or anything (then no company)
	// a bulk record's failure
	errorCode, code, errCode int64
	errMessage               string
}

// readRecord reads a single call's body or one element of a bulk's results.
func readRecord(v gjson.Result) (a answer) {
	eachField(v, func(key []byte, v gjson.Result) {
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
			if !v.IsObject() {
				a.errMessage = text(v) // an error given as a plain string is its message
				return
			}
			eachField(v, func(key []byte, v gjson.Result) {
				switch string(key) {
				case "code":
					a.errCode = integer(v)
				case "message":
					a.errMessage = text(v)
				}
			})
		case "data":
			a.hasData, a.company, a.enrichmentStatus = v.IsObject(), gjson.Result{}, ""
			eachField(v, func(key []byte, v gjson.Result) {
				switch string(key) {
				case "enrichment_status":
					a.enrichmentStatus = text(v)
				case "company":
					a.company = v
				}
			})
		}
	})
	return a
}

// result turns a record's answer into its Result.
func (a *answer) result() Result {
	res := Result{ExternalID: a.externalID, Status: a.enrichmentStatus}
	if !a.company.IsObject() {
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
func readCompany(v gjson.Result) (c Company, confidence string) {
	var ugID, lsID, street, address, zip, postal string
	var employees, size, revenueDollar, revenue exactRange
	eachField(v, func(key []byte, v gjson.Result) {
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
			eachField(v, func(key []byte, v gjson.Result) {
				if string(key) == "level" {
					confidence = text(v)
				}
			})
		case "analytics":
			eachField(v, func(key []byte, v gjson.Result) {
				if string(key) == "installed_base_technologies" {
					c.Technologies = texts(v)
				}
			})
		case "address":
			c.Address = Address{}
			street, address, zip, postal = "", "", "", ""
			eachField(v, func(key []byte, v gjson.Result) {
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

func readExactRange(v gjson.Result) (e exactRange) {
	eachField(v, func(key []byte, v gjson.Result) {
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
// comparing: the bytes are reused, and f must not change them); anything
// but an object has no fields. A key already in lower case is passed as it
// is, without a copy.
func eachField(v gjson.Result, f func(key []byte, v gjson.Result)) {
	if !v.IsObject() {
		return
	}
	var buf []byte
	v.ForEach(func(key, v gjson.Result) bool {
		if !hasUpper(key.Str) {
			f(unsafe.Slice(unsafe.StringData(key.Str), len(key.Str)), v)
			return true
		}
		buf = append(buf[:0], key.Str...)
		for i, c := range buf {
			if 'A' <= c && c <= 'Z' {
				buf[i] = c + 'a' - 'A'
			}
		}
		f(buf, v)
		return true
	})
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// text reads a string, number or bool as text (a string trimmed, a number
// or bool as written); anything else reads as "". The text shares the
// answer's bytes (readAnswer reads them in place): a copy per field was 30
// allocations per record, and the answer lives only until its records'
// outputs are published. Invalid UTF-8 is replaced, as encoding/json did,
// so outputs stay valid Avro strings.
func text(v gjson.Result) string {
	switch v.Type {
	case gjson.String:
		s := strings.TrimSpace(v.Str)
		if !utf8.ValidString(s) {
			return strings.ToValidUTF8(s, "\uFFFD")
		}
		return s
	case gjson.Number, gjson.True, gjson.False:
		return v.Raw
	}
	return ""
}

// texts reads an array of scalars, dropping empty ones; anything else reads
// as nil.
func texts(v gjson.Result) []string {
	if !v.IsArray() {
		return nil
	}
	var out []string
	v.ForEach(func(_, x gjson.Result) bool {
		if s := text(x); s != "" {
			out = append(out, s)
		}
		return true
	})
	return out
}

// integer reads a number or a numeric string ("1,200"), clamped to int64;
// anything else reads as 0.
func integer(v gjson.Result) int64 {
	switch v.Type {
	case gjson.Number:
		return clampInt(v.Raw)
	case gjson.String:
		return clampInt(strings.ReplaceAll(strings.TrimSpace(v.Str), ",", ""))
	}
	return 0
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
