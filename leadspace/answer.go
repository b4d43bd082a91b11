package leadspace

import (
	"math"
	"strconv"
	"strings"
)

// Answers carrying companies (a single call's, a bulk's results) are read
// in one pass by jsonReader (see jsonread.go), which builds no tree and
// copies no string without escapes. encoding/json's reflection cost 15.5 µs
// per record of a 500-record bulk answer; gjson, which came next, 5.3 µs
// (BenchmarkParseBulkResults).
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

// readAnswer reads body, which must be one valid JSON object, calling f
// with a reader at the object. The strings read share body's bytes: body
// must not change while they live (its records' outputs are published
// before the answer is dropped).
func readAnswer(body []byte, f func(r *jsonReader)) error {
	if !isObject(body) {
		return errNotJSONObject
	}
	r := &jsonReader{b: body}
	f(r)
	return r.end()
}

// answer is one record's answer as Leadspace shaped it.
type answer struct {
	status, externalID string
	hasData            bool
	enrichmentStatus   string
	hasCompany         bool // data.company is an object
	company            Company
	confidence         string // matching_confidence.level, upper-cased
	// a bulk record's failure
	errorCode, code, errCode int64
	errMessage               string
}

// readRecord reads a single call's body or one element of a bulk's results.
func readRecord(r *jsonReader) (a answer) {
	r.fields(func(key []byte) {
		switch string(key) {
		case "status":
			a.status = r.text()
		case "external_id":
			a.externalID = r.text()
		case "error_code":
			a.errorCode = r.integer()
		case "code":
			a.code = r.integer()
		case "error":
			if r.peek() != '{' {
				a.errMessage = r.text() // an error given as a plain string is its message
				return
			}
			r.fields(func(key []byte) {
				switch string(key) {
				case "code":
					a.errCode = r.integer()
				case "message":
					a.errMessage = r.text()
				}
			})
		case "data":
			a.hasCompany, a.company, a.confidence, a.enrichmentStatus = false, Company{}, "", ""
			a.hasData = r.fields(func(key []byte) {
				switch string(key) {
				case "enrichment_status":
					a.enrichmentStatus = r.text()
				case "company":
					a.company, a.confidence = Company{}, ""
					a.hasCompany = r.peek() == '{'
					a.company, a.confidence = readCompany(r)
				}
			})
		}
	})
	return a
}

// result turns a record's answer into its Result.
func (a *answer) result() Result {
	res := Result{ExternalID: a.externalID, Status: a.enrichmentStatus}
	if !a.hasCompany {
		return res
	}
	res.Company, res.Confidence = a.company, a.confidence
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
func readCompany(r *jsonReader) (c Company, confidence string) {
	var ugID, lsID, street, address, zip, postal string
	var employees, size, revenueDollar, revenue exactRange
	r.fields(func(key []byte) {
		switch string(key) {
		case "ug_company_id":
			ugID = r.text()
		case "ls_id":
			lsID = r.text()
		case "name":
			c.Name = r.text()
		case "website":
			c.Website = r.text()
		case "description":
			c.Description = r.text()
		case "industry":
			c.Industry = r.text()
		case "sub_industry":
			c.SubIndustry = r.text()
		case "sic":
			c.SIC = r.text()
		case "sicdescription":
			c.SICDescription = r.text()
		case "naics":
			c.NAICS = r.text()
		case "naicsdescription":
			c.NAICSDescription = r.text()
		case "employees":
			employees = readExactRange(r)
		case "size":
			size = readExactRange(r)
		case "revenue_dollar":
			revenueDollar = readExactRange(r)
		case "revenue":
			revenue = readExactRange(r)
		case "phone":
			c.Phone = r.text()
		case "linkedin_profile":
			c.LinkedInURL = r.text()
		case "ownership":
			c.Ownership = r.text()
		case "matching_confidence":
			// documented as {level}; a bare string is accepted too
			if r.peek() != '{' {
				confidence = r.text()
				return
			}
			confidence = ""
			r.fields(func(key []byte) {
				if string(key) == "level" {
					confidence = r.text()
				}
			})
		case "analytics":
			r.fields(func(key []byte) {
				if string(key) == "installed_base_technologies" {
					c.Technologies = r.texts()
				}
			})
		case "address":
			c.Address = Address{}
			street, address, zip, postal = "", "", "", ""
			r.fields(func(key []byte) {
				switch string(key) {
				case "street":
					street = r.text()
				case "address":
					address = r.text()
				case "city":
					c.Address.City = r.text()
				case "state":
					c.Address.State = r.text()
				case "zipcode":
					zip = r.text()
				case "postalcode":
					postal = r.text()
				case "country":
					c.Address.Country = r.text()
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

func readExactRange(r *jsonReader) (e exactRange) {
	r.fields(func(key []byte) {
		switch string(key) {
		case "exact":
			e.exact = r.integer()
		case "range":
			e.rng = r.text()
		}
	})
	return e
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
