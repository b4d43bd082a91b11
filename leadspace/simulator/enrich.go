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
	res, invalid, matched := s.enrichRecord(c.prog, c.body)
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
	c.send(http.StatusOK, res)
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

// validate applies the input rules (docs/leadspace.md §2): company enrichment
// needs company.name (or, when allowed, a website); person enrichment needs
// first and last name plus one of company name, email or website.
func (s *Simulator) validate(rec map[string]any) string {
	name, website := field(rec, "company", "name"), field(rec, "company", "website")
	first, last, email := field(rec, "person", "first_name"), field(rec, "person", "last_name"), field(rec, "person", "email")
	switch {
	case first != "" || last != "":
		if first == "" || last == "" || (name == "" && email == "" && website == "") {
			return "person enrichment needs person.first_name, person.last_name and one of company.name, person.email or company.website"
		}
	case name == "" && !(s.cfg.AllowWebsiteOnly && website != ""):
		return "company.name is required"
	}
	return ""
}

// enrichRecord builds one record's result object. invalid is the reason a
// record fails validation, "" otherwise. It touches no shared state.
func (s *Simulator) enrichRecord(p *program, rec map[string]any) (res map[string]any, invalid string, matched bool) {
	if invalid = s.validate(rec); invalid != "" {
		return nil, invalid, false
	}
	rawName, website := field(rec, "company", "name"), field(rec, "company", "website")
	domain, name := normDomain(website), normName(rawName)
	level := confidence(domain, name)
	matched = !noMatch(domain, name) && levelRank[level] >= levelRank[p.cfg.ConfidenceThreshold]
	person := field(rec, "person", "first_name") != ""

	data := map[string]any{"enrichment_status": "Not Enriched"}
	switch {
	case matched:
		data["company"] = s.company(domain, rawName, level, p.cfg.APIVersion)
		data["enrichment_status"] = "Company Enriched"
		if person {
			data["enrichment_status"] = "Person & Company Enriched"
			data["person"] = fakePerson(rec, domain)
		}
	case s.cfg.NoMatchCompany == "empty":
		data["company"] = map[string]any{}
	case s.cfg.NoMatchCompany == "null":
		data["company"] = nil
	}
	res = map[string]any{"status": "success", "data": data}
	if ext, ok := rec["external_id"]; ok {
		res["external_id"] = ext
	}
	return res, "", matched
}

func fakePerson(rec map[string]any, domain string) map[string]any {
	first, last := field(rec, "person", "first_name"), field(rec, "person", "last_name")
	if domain == "" {
		domain = "example.com"
	}
	titles := []string{"VP Sales", "Head of Marketing", "CTO", "Director of Operations"}
	return map[string]any{
		"first_name": first,
		"last_name":  last,
		"email":      strings.ToLower(first + "." + last + "@" + domain),
		"title":      titles[hashOf(first+last+domain).pick(0, len(titles))],
	}
}
