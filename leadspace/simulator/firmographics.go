package simulator

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
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

// uuid formats 16 bytes of a digest as a UUID string.
func uuidOf(d digest) string {
	h := hex.EncodeToString(d[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// company builds the data.company object for a match.
func (s *Simulator) company(domain, rawName, level, apiVersion string) map[string]any {
	key := matchKey(domain, normName(rawName))
	d := hashOf(key)
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
	name := strings.TrimSpace(rawName)
	if name == "" {
		name = titleCase(strings.Split(domain, ".")[0])
	}
	if domain == "" {
		domain = strings.ReplaceAll(normName(rawName), " ", "") + ".com"
	}
	ownership := "Private"
	if size.lo > 1000 && d.pick(5, 2) == 0 {
		ownership = "Public"
	}
	techs := make([]string, 0, 8)
	for i, n := 0, 3+d.pick(6, 6); i < n; i++ {
		t := technologies[(d.pick(7, len(technologies))+i*5)%len(technologies)]
		techs = append(techs, t)
	}
	slug := strings.ReplaceAll(strings.ToLower(normName(name)), " ", "-")
	id := uuidOf(d)
	c := map[string]any{
		"ls_id":            id,
		"name":             name,
		"website":          domain,
		"description":      fmt.Sprintf("%s works in %s (%s), based in %s.", name, strings.ToLower(ind.name), strings.ToLower(ind.sub), pl.city),
		"industry":         ind.name,
		"sub_industry":     ind.sub,
		"sic":              ind.sic,
		"sicDescription":   ind.sicDesc,
		"naics":            ind.naics,
		"naicsDescription": ind.naicsDesc,
		"address": map[string]any{
			"country": pl.country, "state": pl.state, "city": pl.city, "zipcode": pl.zip,
			"address": fmt.Sprintf("%d %s", 1+d.pick(8, 999), streets[d.pick(9, len(streets))]),
		},
		"phone":               fmt.Sprintf("%s %03d %04d", pl.phone, 200+d.pick(10, 800), d.pick(11, 10000)),
		"linkedin_profile":    "https://www.linkedin.com/company/" + slug,
		"ownership":           ownership,
		"analytics":           map[string]any{"installed_base_technologies": techs},
		"matching_confidence": map[string]any{"level": level},
	}
	if apiVersion == "v4" {
		c["ug_company_id"] = id
	}
	sizeObj := map[string]any{"exact": employees, "range": size.label}
	revObj := map[string]any{"exact": revenue, "range": revLabel}
	style := s.cfg.SizeFieldStyle
	if style == "" {
		style = apiVersion
	}
	if style == "v4" || style == "both" {
		c["employees"], c["revenue_dollar"] = sizeObj, revObj
	}
	if style == "v3" || style == "both" {
		c["size"], c["revenue"] = sizeObj, revObj
	}
	if fx, ok := s.cfg.Fixtures[key]; ok {
		for k, v := range fx {
			c[k] = v
		}
	}
	return c
}

// confidence grades a match the way the confidence article describes:
// name and website agreeing is HIGH, website alone MEDIUM, name alone LOW,
// name and website pointing at different companies VERY LOW.
func confidence(domain, name string) string {
	switch {
	case domain != "" && name != "":
		label := strings.Split(domain, ".")[0]
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

// noMatch tells the deterministic no-match cases apart.
func noMatch(domain, name string) bool {
	if strings.Contains(name, "nomatch") || strings.Contains(domain, "nomatch") ||
		strings.HasSuffix(domain, ".invalid") || strings.HasSuffix(domain, ".example") {
		return true
	}
	return hashOf(matchKey(domain, name)).noMatchBucket()
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
