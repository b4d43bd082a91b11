package simulator

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Deterministic fake firmographics: every field derives from SHA-256 of the
// normalised domain (else the normalised name), so equal inputs give equal
// companies on every run, and the codes of one company agree with each other.

type industry struct {
	name, sub, sic, sicDesc, naics, naicsDesc string
}

var industries = []industry{
	{"Computer Software", "Enterprise Software", "7372", "Prepackaged Software", "513210", "Software Publishers"},
	{"Information Technology and Services", "IT Consulting", "7373", "Computer Integrated Systems Design", "541512", "Computer Systems Design Services"},
	{"Banking", "Commercial Banking", "6021", "National Commercial Banks", "522110", "Commercial Banking"},
	{"Hospital & Health Care", "Hospitals", "8062", "General Medical and Surgical Hospitals", "622110", "General Medical and Surgical Hospitals"},
	{"Retail", "Department Stores", "5311", "Department Stores", "455110", "Department Stores"},
	{"Machinery", "Industrial Machinery", "3559", "Special Industry Machinery, NEC", "333248", "All Other Industrial Machinery Manufacturing"},
	{"Telecommunications", "Wired Telecommunications", "4813", "Telephone Communications, Except Radiotelephone", "517111", "Wired Telecommunications Carriers"},
	{"Insurance", "Life Insurance", "6311", "Life Insurance", "524113", "Direct Life Insurance Carriers"},
	{"Construction", "Commercial Construction", "1542", "General Contractors-Nonresidential Buildings", "236220", "Commercial and Institutional Building Construction"},
	{"Food Production", "Packaged Foods", "2099", "Food Preparations, NEC", "311999", "All Other Miscellaneous Food Manufacturing"},
}

// Headcount buckets as Leadspace names them; revenue follows headcount.
var sizeRanges = []struct {
	lo, hi int64
	label  string
}{
	{1, 10, "1-10"}, {11, 50, "11-50"}, {51, 200, "51-200"}, {201, 500, "201-500"},
	{501, 1000, "501-1000"}, {1001, 5000, "1001-5000"}, {5001, 10000, "5001-10000"}, {10001, 250000, "10000+"},
}

var revenueRanges = []struct {
	upTo  int64
	label string
}{
	{1_000_000, "$0-$1M"}, {10_000_000, "$1M-$10M"}, {50_000_000, "$10M-$50M"},
	{100_000_000, "$50M-$100M"}, {250_000_000, "$100M-$250M"}, {500_000_000, "$250M-$500M"},
	{1_000_000_000, "$500M-$1B"}, {10_000_000_000, "$1B-$10B"}, {1 << 62, "$10B+"},
}

type place struct{ country, state, city, zip, phone string }

var places = []place{
	{"US", "CA", "San Francisco", "94105", "+1 415"}, {"US", "NY", "New York", "10001", "+1 212"},
	{"US", "TX", "Austin", "78701", "+1 512"}, {"US", "MA", "Boston", "02110", "+1 617"},
	{"US", "WA", "Seattle", "98101", "+1 206"}, {"US", "IL", "Chicago", "60601", "+1 312"},
	{"US", "GA", "Atlanta", "30303", "+1 404"}, {"US", "CO", "Denver", "80202", "+1 303"},
}

var streets = []string{"Market St", "Main St", "Broadway", "Congress Ave", "Pine St", "Wacker Dr", "Peachtree St", "Larimer St"}

var technologies = []string{
	"Salesforce", "HubSpot", "Marketo", "Google Analytics", "AWS", "Microsoft Azure", "Slack", "Zendesk",
	"Workday", "SAP", "Oracle Database", "Snowflake", "Tableau", "Shopify", "Stripe", "Okta",
}

var levelRank = map[string]int{"VERY LOW": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4}

var legalSuffixes = map[string]bool{
	"inc": true, "incorporated": true, "llc": true, "ltd": true, "limited": true, "corp": true,
	"corporation": true, "co": true, "company": true, "gmbh": true, "sa": true, "plc": true,
	"ag": true, "bv": true, "ab": true, "oy": true, "srl": true, "pty": true,
}

// normDomain lower-cases a website and strips scheme, www., path, port and
// trailing dot: "https://WWW.Contoso.com:443/about" -> "contoso.com".
func normDomain(website string) string {
	w := strings.ToLower(strings.TrimSpace(website))
	if w == "" {
		return ""
	}
	if !strings.Contains(w, "://") {
		w = "http://" + w
	}
	u, err := url.Parse(w)
	if err != nil {
		return ""
	}
	h := strings.TrimSuffix(u.Hostname(), ".")
	return strings.TrimPrefix(h, "www.")
}

// normName lower-cases a name, drops punctuation and legal suffixes:
// "Contoso, Inc." -> "contoso".
func normName(name string) string {
	fields := strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for len(fields) > 1 && legalSuffixes[fields[len(fields)-1]] {
		fields = fields[:len(fields)-1]
	}
	return strings.Join(fields, " ")
}

// matchKey is what identifies a company: the domain if any, else the name.
func matchKey(domain, name string) string {
	if domain != "" {
		return domain
	}
	return name
}

type digest [32]byte

func hashOf(key string) digest { return sha256.Sum256([]byte(key)) }

// pick returns a number in [0, n) from byte slot i of the digest.
func (d digest) pick(i, n int) int {
	return int(binary.BigEndian.Uint16(d[i*2%30:]) % uint16(n))
}

// noMatchBucket puts about 10% of companies out of Leadspace's reach.
func (d digest) noMatchBucket() bool { return d[31]%10 == 0 }

// uuidOf formats 16 bytes of a digest as a UUID string.
func uuidOf(d digest) string { return string(appendUUID(nil, d)) }

func appendUUID(b []byte, d digest) []byte {
	for i, c := range d[:16] {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xF])
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendCompany appends the data.company object for a match. d is the
// digest of key, the company's match key; normalised is normName(rawName).
// Keys come in the order json.Marshal of a map wrote them; fixture keys
// replace generated ones and come last.
func (s *Simulator) appendCompany(b []byte, d digest, key, domain, rawName, normalised, level, apiVersion string) []byte {
	ind := industries[d.pick(0, len(industries))]
	size := sizeRanges[d.pick(1, len(sizeRanges))]
	employees := size.lo + int64(d.pick(2, 1000))*(size.hi-size.lo)/1000
	revenue := employees * int64(80_000+d.pick(3, 320)*1000)
	revLabel := revenueRanges[len(revenueRanges)-1].label
	for _, r := range revenueRanges {
		if revenue <= r.upTo {
			revLabel = r.label
			break
		}
	}
	pl := places[d.pick(4, len(places))]
	name, slug := rawName, normalised
	if name == "" {
		label, _, _ := strings.Cut(domain, ".")
		name = titleCase(label)
		slug = normName(name)
	}
	slug = strings.ReplaceAll(slug, " ", "-")
	if domain == "" {
		domain = strings.ReplaceAll(normalised, " ", "") + ".com"
	}
	ownership := "Private"
	if size.lo > 1000 && d.pick(5, 2) == 0 {
		ownership = "Public"
	}
	style := s.cfg.SizeFieldStyle
	if style == "" {
		style = apiVersion
	}
	fx := s.cfg.Fixtures[key]
	o := object{b: append(b, '{'), skip: fx}
	if o.key("address") {
		a := object{b: append(o.b, '{')}
		if a.key("address") {
			a.b = strconv.AppendInt(append(a.b, '"'), int64(1+d.pick(8, 999)), 10)
			a.b = append(append(append(a.b, ' '), streets[d.pick(9, len(streets))]...), '"')
		}
		a.str("city", pl.city)
		a.str("country", pl.country)
		a.str("state", pl.state)
		a.str("zipcode", pl.zip)
		o.b = append(a.b, '}')
	}
	if o.key("analytics") {
		o.b = append(o.b, `{"installed_base_technologies":[`...)
		for i, n := 0, 3+d.pick(6, 6); i < n; i++ {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = appendString(o.b, technologies[(d.pick(7, len(technologies))+i*5)%len(technologies)])
		}
		o.b = append(o.b, "]}"...)
	}
	o.str("description", name+" works in "+strings.ToLower(ind.name)+" ("+strings.ToLower(ind.sub)+"), based in "+pl.city+".")
	sizeField := func(k string, exact int64, label string) {
		if o.key(k) {
			o.b = strconv.AppendInt(append(o.b, `{"exact":`...), exact, 10)
			o.b = append(appendString(append(o.b, `,"range":`...), label), '}')
		}
	}
	v3, v4 := style == "v3" || style == "both", style == "v4" || style == "both"
	if v4 {
		sizeField("employees", employees, size.label)
	}
	o.str("industry", ind.name)
	o.str("linkedin_profile", "https://www.linkedin.com/company/"+slug)
	if o.key("ls_id") {
		o.b = append(appendUUID(append(o.b, '"'), d), '"')
	}
	if o.key("matching_confidence") {
		o.b = append(appendString(append(o.b, `{"level":`...), level), '}')
	}
	o.str("naics", ind.naics)
	o.str("naicsDescription", ind.naicsDesc)
	o.str("name", name)
	o.str("ownership", ownership)
	if o.key("phone") { // "+1 415 NNN NNNN"
		o.b = append(append(append(o.b, '"'), pl.phone...), ' ')
		o.b = append(appendPadded(append(appendPadded(o.b, 200+d.pick(10, 800), 3), ' '), d.pick(11, 10000), 4), '"')
	}
	if v3 {
		sizeField("revenue", revenue, revLabel)
	}
	if v4 {
		sizeField("revenue_dollar", revenue, revLabel)
	}
	o.str("sic", ind.sic)
	o.str("sicDescription", ind.sicDesc)
	if v3 {
		sizeField("size", employees, size.label)
	}
	o.str("sub_industry", ind.sub)
	if apiVersion == "v4" && o.key("ug_company_id") {
		o.b = append(appendUUID(append(o.b, '"'), d), '"')
	}
	o.str("website", domain)
	for _, k := range slices.Sorted(maps.Keys(fx)) {
		v, _ := json.Marshal(fx[k])
		o.member(k, v)
	}
	return append(o.b, '}')
}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	for w, p := 1, 10; w < width; w, p = w+1, p*10 {
		if n < p {
			b = append(b, '0')
		}
	}
	return strconv.AppendInt(b, int64(n), 10)
}

// confidence grades a match the way the confidence article describes:
// name and website agreeing is HIGH, website alone MEDIUM, name alone LOW,
// name and website pointing at different companies VERY LOW.
func confidence(domain, name string) string {
	switch {
	case domain != "" && name != "":
		label, _, _ := strings.Cut(domain, ".")
		compact := strings.ReplaceAll(name, " ", "")
		if strings.Contains(label, compact) || strings.Contains(compact, label) {
			return "HIGH"
		}
		return "VERY LOW"
	case domain != "":
		return "MEDIUM"
	default:
		return "LOW"
	}
}

// noMatch tells the deterministic no-match cases apart; d is the digest of
// matchKey(domain, name).
func noMatch(domain, name string, d digest) bool {
	if strings.Contains(name, "nomatch") || strings.Contains(domain, "nomatch") ||
		strings.HasSuffix(domain, ".invalid") || strings.HasSuffix(domain, ".example") {
		return true
	}
	return d.noMatchBucket()
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
