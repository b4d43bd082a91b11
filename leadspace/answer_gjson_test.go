package leadspace

// The gjson reading of answers as it was before jsonReader: the reference
// TestJSONReaderReadsWhatGjsonReads compares jsonReader with. gjson is a
// parser we did not write; this file only walks what it parsed, into the
// same answer the production reader fills.

import (
	"errors"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// readAnswer checks that body is one valid JSON object and returns it.
// The result reads body in place (ParseBytes would copy it, 44 MB of a
// two-program backlog's allocations): body must not change while it is
// read, and every field kept is a copy (text).
func gjReadAnswer(body []byte) (gjson.Result, error) {
	if !isObject(body) {
		return gjson.Result{}, errNotJSONObject
	}
	if !gjson.ValidBytes(body) {
		return gjson.Result{}, errors.New("response is not valid JSON")
	}
	return gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))), nil
}

// readRecord reads a single call's body or one element of a bulk's results.
func gjReadRecord(v gjson.Result) (a answer) {
	gjEachField(v, func(key []byte, v gjson.Result) {
		switch string(key) {
		case "status":
			a.status = gjText(v)
		case "external_id":
			a.externalID = gjText(v)
		case "error_code":
			a.errorCode = gjInteger(v)
		case "code":
			a.code = gjInteger(v)
		case "error":
			if !v.IsObject() {
				a.errMessage = gjText(v) // an error given as a plain string is its message
				return
			}
			gjEachField(v, func(key []byte, v gjson.Result) {
				switch string(key) {
				case "code":
					a.errCode = gjInteger(v)
				case "message":
					a.errMessage = gjText(v)
				}
			})
		case "data":
			a.hasData, a.hasCompany, a.company, a.confidence, a.enrichmentStatus = v.IsObject(), false, Company{}, "", ""
			gjEachField(v, func(key []byte, v gjson.Result) {
				switch string(key) {
				case "enrichment_status":
					a.enrichmentStatus = gjText(v)
				case "company":
					a.company, a.confidence = Company{}, ""
					if a.hasCompany = v.IsObject(); a.hasCompany {
						a.company, a.confidence = gjReadCompany(v)
					}
				}
			})
		}
	})
	return a
}

// readCompany reads data.company and its matching_confidence.level,
// upper-cased.
func gjReadCompany(v gjson.Result) (c Company, confidence string) {
	var ugID, lsID, street, address, zip, postal string
	var employees, size, revenueDollar, revenue gjExactRange
	gjEachField(v, func(key []byte, v gjson.Result) {
		switch string(key) {
		case "ug_company_id":
			ugID = gjText(v)
		case "ls_id":
			lsID = gjText(v)
		case "name":
			c.Name = gjText(v)
		case "website":
			c.Website = gjText(v)
		case "description":
			c.Description = gjText(v)
		case "industry":
			c.Industry = gjText(v)
		case "sub_industry":
			c.SubIndustry = gjText(v)
		case "sic":
			c.SIC = gjText(v)
		case "sicdescription":
			c.SICDescription = gjText(v)
		case "naics":
			c.NAICS = gjText(v)
		case "naicsdescription":
			c.NAICSDescription = gjText(v)
		case "employees":
			employees = gjReadExactRange(v)
		case "size":
			size = gjReadExactRange(v)
		case "revenue_dollar":
			revenueDollar = gjReadExactRange(v)
		case "revenue":
			revenue = gjReadExactRange(v)
		case "phone":
			c.Phone = gjText(v)
		case "linkedin_profile":
			c.LinkedInURL = gjText(v)
		case "ownership":
			c.Ownership = gjText(v)
		case "matching_confidence":
			// documented as {level}; a bare string is accepted too
			confidence = gjText(v)
			gjEachField(v, func(key []byte, v gjson.Result) {
				if string(key) == "level" {
					confidence = gjText(v)
				}
			})
		case "analytics":
			gjEachField(v, func(key []byte, v gjson.Result) {
				if string(key) == "installed_base_technologies" {
					c.Technologies = gjTexts(v)
				}
			})
		case "address":
			c.Address = Address{}
			street, address, zip, postal = "", "", "", ""
			gjEachField(v, func(key []byte, v gjson.Result) {
				switch string(key) {
				case "street":
					street = gjText(v)
				case "address":
					address = gjText(v)
				case "city":
					c.Address.City = gjText(v)
				case "state":
					c.Address.State = gjText(v)
				case "zipcode":
					zip = gjText(v)
				case "postalcode":
					postal = gjText(v)
				case "country":
					c.Address.Country = gjText(v)
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
type gjExactRange struct {
	exact int64
	rng   string
}

func (e gjExactRange) empty() bool { return e.exact == 0 && e.rng == "" }

func gjReadExactRange(v gjson.Result) (e gjExactRange) {
	gjEachField(v, func(key []byte, v gjson.Result) {
		switch string(key) {
		case "exact":
			e.exact = gjInteger(v)
		case "range":
			e.rng = gjText(v)
		}
	})
	return e
}

// eachField calls f for each key of an object, lower-cased (only for
// comparing: the bytes are reused, and f must not change them); anything
// but an object has no fields. A key already in lower case is passed as it
// is, without a copy.
func gjEachField(v gjson.Result, f func(key []byte, v gjson.Result)) {
	if !v.IsObject() {
		return
	}
	var buf []byte
	v.ForEach(func(key, v gjson.Result) bool {
		if !gjHasUpper(key.Str) {
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

func gjHasUpper(s string) bool {
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
func gjText(v gjson.Result) string {
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
func gjTexts(v gjson.Result) []string {
	if !v.IsArray() {
		return nil
	}
	var out []string
	v.ForEach(func(_, x gjson.Result) bool {
		if s := gjText(x); s != "" {
			if out == nil {
				out = make([]string, 0, 8) // most lists are short: one allocation, not one per doubling
			}
			out = append(out, s)
		}
		return true
	})
	return out
}

// integer reads a number or a numeric string ("1,200"), clamped to int64;
// anything else reads as 0.
func gjInteger(v gjson.Result) int64 {
	switch v.Type {
	case gjson.Number:
		return clampInt(v.Raw)
	case gjson.String:
		return clampInt(strings.ReplaceAll(strings.TrimSpace(v.Str), ",", ""))
	}
	return 0
}

// gjParse reads a single answer's record, or each record of a bulk's
// results, as the gjson reading did.
func gjParse(body []byte, bulk bool) ([]answer, error) {
	v, err := gjReadAnswer(body)
	if err != nil {
		return nil, err
	}
	if !bulk {
		return []answer{gjReadRecord(v)}, nil
	}
	var out []answer
	gjEachField(v, func(key []byte, v gjson.Result) {
		if string(key) == "results" {
			out = nil
			if !v.IsArray() {
				return
			}
			v.ForEach(func(_, r gjson.Result) bool {
				out = append(out, gjReadRecord(r))
				return true
			})
		}
	})
	return out, nil
}
