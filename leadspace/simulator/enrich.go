package simulator

import (
	"net/http"
	"strings"
	"time"
)

// single answers POST /enrichment/enrich/single: 200 with one result, for a
// match and for "Not Enriched" alike (docs/leadspace.md §3).
func (s *Simulator) single(c *exchange) {
	if !c.hasCredits() {
		return
	}
	res, invalid, matched := s.enrichRecord(nil, c.prog, c.record())
	if invalid != "" {
		c.fail(http.StatusBadRequest, "Bad Request", invalid)
		return
	}
	s.mu.Lock()
	// Received means paid for, even if the client stops waiting below.
	s.statsOf(c.prog.cfg.ID).RecordsReceived++
	if matched && c.prog.credits > 0 {
		c.prog.credits--
	}
	delay := s.latency()
	s.mu.Unlock()
	if err := s.sleep(c.r.Context(), delay); err != nil {
		return // the client gave up; call logged with status 0
	}
	c.sendJSON(http.StatusOK, res)
}

// latency is the configured base plus a jitter derived from the seed and
// the call sequence, so a run is repeatable. Call with s.mu held.
func (s *Simulator) latency() time.Duration {
	j := s.cfg.Jitter
	if j <= 0 {
		return s.cfg.Latency
	}
	h := hashOf(s.id("jitter", s.next()))
	frac := float64(uint16(h[0])<<8|uint16(h[1]))/65535*2 - 1 // [-1, 1]
	return max(0, s.cfg.Latency+time.Duration(frac*float64(j)))
}

// record is what the simulator reads of an input record: strings trimmed,
// "" when absent or not a string (as field() reads a map).
type record struct {
	name, website      string // company.*
	first, last, email string // person.*
	// ext is external_id as it is echoed (JSON), nil when absent; "null"
	// is echoed in a result but left out of a failure.
	ext []byte
}

// readRecord reads one record from its JSON (valid, any type: a record
// that is not an object reads as empty and fails validation).
func readRecord(b []byte) *record {
	r := &record{}
	for k, v := range members(b) {
		switch string(k) {
		case "external_id":
			r.ext = answerJSON(v)
		case "company":
			r.name, r.website = "", "" // a repeated key replaces the whole object
			for k, v := range members(v) {
				switch string(k) {
				case "name":
					r.name = strings.TrimSpace(jsonString(v))
				case "website":
					r.website = strings.TrimSpace(jsonString(v))
				}
			}
		case "person":
			r.first, r.last, r.email = "", "", ""
			for k, v := range members(v) {
				switch string(k) {
				case "first_name":
					r.first = strings.TrimSpace(jsonString(v))
				case "last_name":
					r.last = strings.TrimSpace(jsonString(v))
				case "email":
					r.email = strings.TrimSpace(jsonString(v))
				}
			}
		}
	}
	return r
}

// validate applies the input rules (docs/leadspace.md §2): company enrichment
// needs company.name (or, when allowed, a website); person enrichment needs
// first and last name plus one of company name, email or website.
func (s *Simulator) validate(r *record) string {
	switch {
	case r.first != "" || r.last != "":
		if r.first == "" || r.last == "" || (r.name == "" && r.email == "" && r.website == "") {
			return "person enrichment needs person.first_name, person.last_name and one of company.name, person.email or company.website"
		}
	case r.name == "" && !(s.cfg.AllowWebsiteOnly && r.website != ""):
		return "company.name is required"
	}
	return ""
}

// enrichRecord appends one record's result object to b. invalid is the
// reason a record fails validation ("" otherwise; nothing appended then).
// It touches no shared state.
func (s *Simulator) enrichRecord(b []byte, p *program, r *record) (res []byte, invalid string, matched bool) {
	if invalid = s.validate(r); invalid != "" {
		return b, invalid, false
	}
	domain, name := normDomain(r.website), normName(r.name)
	key := matchKey(domain, name)
	d := hashOf(key) // the one digest per company: match bucket and firmographics
	level := confidence(domain, name)
	matched = !noMatch(domain, name, d) && levelRank[level] >= levelRank[p.cfg.ConfidenceThreshold]

	// Keys in the order json.Marshal of a map wrote them.
	res = append(b, `{"data":{`...)
	status := "Not Enriched"
	switch {
	case matched:
		res = append(s.appendCompany(append(res, `"company":`...), d, key, domain, r.name, name, level, p.cfg.APIVersion), ',')
		status = "Company Enriched"
		if r.first != "" {
			status = "Person & Company Enriched"
		}
	case s.cfg.NoMatchCompany == "empty":
		res = append(res, `"company":{},`...)
	case s.cfg.NoMatchCompany == "null":
		res = append(res, `"company":null,`...)
	}
	res = appendString(append(res, `"enrichment_status":`...), status)
	if matched && r.first != "" {
		res = appendPerson(append(res, `,"person":`...), r, domain)
	}
	res = append(res, '}')
	if r.ext != nil {
		res = append(append(res, `,"external_id":`...), r.ext...)
	}
	return append(res, `,"status":"success"}`...), "", matched
}

var titles = []string{"VP Sales", "Head of Marketing", "CTO", "Director of Operations"}

// appendPerson appends the data.person object of a person match.
func appendPerson(b []byte, r *record, domain string) []byte {
	if domain == "" {
		domain = "example.com"
	}
	o := object{b: append(b, '{')}
	o.str("email", strings.ToLower(r.first+"."+r.last+"@"+domain))
	o.str("first_name", r.first)
	o.str("last_name", r.last)
	o.str("title", titles[hashOf(r.first+r.last+domain).pick(0, len(titles))])
	return append(o.b, '}')
}
