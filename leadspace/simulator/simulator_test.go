package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type harness struct {
	t   *testing.T
	sim *Simulator
	url string
}

func newHarness(t *testing.T, tweak func(*Config)) *harness {
	t.Helper()
	cfg := Config{
		Programs: []ProgramConfig{{ID: "p1", Secret: "s1", Tokens: []string{"t1"}, Credits: Unlimited, TPS: 1000}},
		Latency:  time.Millisecond, Jitter: -1, BulkReadyAfterPolls: 2,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = sim.Close() })
	return &harness{t: t, sim: sim, url: srv.URL}
}

// do sends a request and returns status, headers and the decoded JSON body.
func (h *harness) do(method, path, auth, ctype, body string) (int, http.Header, map[string]any, string) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header, m, string(raw)
}

func (h *harness) single(body string) (int, map[string]any) {
	h.t.Helper()
	st, _, m, _ := h.do("POST", pathSingle, "Bearer t1", "application/json", body)
	return st, m
}

func TestOrderOfChecks(t *testing.T) {
	// The rate bucket runs on a clock the test moves: a refill costs no wall
	// time and cannot come early or late.
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := newHarness(t, func(c *Config) { c.Programs[0].TPS = 1; c.Programs[0].Credits = 1; c.Clock = clock })
	type step struct {
		name, method, path, auth, ctype, body string
		want                                  int
		envelope                              bool
	}
	steps := []step{
		{"unknown path", "POST", "/nope", "Bearer t1", "application/json", `{}`, 404, true},
		{"wrong method", "GET", pathSingle, "Bearer t1", "", ``, 405, true},
		{"no auth", "POST", pathSingle, "", "application/json", `{}`, 401, false},
		{"basic auth", "POST", pathSingle, "Basic dDE6", "application/json", `{}`, 401, false},
		{"unknown token", "POST", pathSingle, "Bearer nope", "application/json", `{}`, 401, false},
		{"not json content type", "POST", pathSingle, "Bearer t1", "text/plain", `{}`, 415, true},
		{"bad json", "POST", pathSingle, "Bearer t1", "application/json", `{"company":`, 400, true},
		{"ok (takes the only rate token and credit)", "POST", pathSingle, "Bearer t1", "application/json; charset=utf-8", `{"company":{"name":"Contoso","website":"contoso.com"}}`, 200, false},
		{"rate limited before credits and validation", "POST", pathSingle, "Bearer t1", "application/json", `{}`, 429, true},
	}
	for _, s := range steps {
		st, _, m, raw := h.do(s.method, s.path, s.auth, s.ctype, s.body)
		if st != s.want {
			t.Fatalf("%s: status %d, want %d (%s)", s.name, st, s.want, raw)
		}
		if s.want == 401 && raw != "" {
			t.Fatalf("%s: 401 must have an empty body, got %q", s.name, raw)
		}
		if s.envelope {
			for _, k := range []string{"error", "tracking_id", "request_timestamp", "details"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("%s: envelope lacks %s: %s", s.name, k, raw)
				}
			}
		}
	}
	mu.Lock()
	now = now.Add(1100 * time.Millisecond) // the bucket refills
	mu.Unlock()
	if st, _ := h.single(`{}`); st != 427 {
		t.Fatalf("credits are checked before validation: %d", st)
	}
}

func TestValidation(t *testing.T) {
	h := newHarness(t, nil)
	for body, want := range map[string]int{
		`{"company":{"website":"contoso.com"}}`:                                               400,
		`{"company":{"name":"  "}}`:                                                           400,
		`{"company":{"name":"Contoso"},"unknown":[1]}`:                                        200,
		`{"person":{"first_name":"Ada"},"company":{"name":"Contoso"}}`:                        400,
		`{"person":{"first_name":"Ada","last_name":"L","email":"ada@contoso.com"}}`:           200,
		`{"person":{"first_name":"Ada","last_name":"L"},"company":{"website":"contoso.com"}}`: 200,
	} {
		if st, _ := h.single(body); st != want {
			t.Errorf("%s: %d, want %d", body, st, want)
		}
	}
	h2 := newHarness(t, func(c *Config) { c.AllowWebsiteOnly = true })
	if st, _ := h2.single(`{"company":{"website":"contoso.com"}}`); st != 200 {
		t.Errorf("website only with AllowWebsiteOnly: %d", st)
	}
}

func company(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	data, _ := m["data"].(map[string]any)
	c, _ := data["company"].(map[string]any)
	return c
}

func TestFirmographicsAreDeterministicAndConsistent(t *testing.T) {
	a := newHarness(t, func(c *Config) { c.Seed = 1 })
	b := newHarness(t, func(c *Config) { c.Seed = 99 })
	_, m1 := a.single(`{"company":{"name":"Contoso","website":"https://WWW.Contoso.com:443/about"},"external_id":"x1"}`)
	_, m2 := b.single(`{"company":{"name":"Contoso","website":"contoso.com."}}`)
	c1, c2 := company(t, m1), company(t, m2)
	if c1 == nil || !reflect.DeepEqual(c1, c2) {
		t.Fatalf("same company, different answers:\n%v\n%v", c1, c2)
	}
	if m1["external_id"] != "x1" {
		t.Fatalf("external_id not echoed: %v", m1["external_id"])
	}
	var row *industry
	for i := range industries {
		if industries[i].name == c1["industry"] {
			row = &industries[i]
		}
	}
	if row == nil || c1["sic"] != row.sic || c1["naics"] != row.naics || c1["sicDescription"] != row.sicDesc {
		t.Fatalf("industry and codes disagree: %v", c1)
	}
	emp := c1["employees"].(map[string]any)
	exact, _ := emp["exact"].(float64)
	var bucket string
	for _, r := range sizeRanges {
		if int64(exact) >= r.lo && int64(exact) <= r.hi {
			bucket = r.label
		}
	}
	if emp["range"] != bucket || c1["ug_company_id"] != c1["ls_id"] {
		t.Fatalf("employees %v not in range %v, or ids differ", emp, bucket)
	}
	if n := len(c1["analytics"].(map[string]any)["installed_base_technologies"].([]any)); n < 3 || n > 8 {
		t.Fatalf("technologies: %d", n)
	}
}

func TestNormalisation(t *testing.T) {
	for in, want := range map[string]string{
		"https://WWW.Contoso.com:443/about?x=1": "contoso.com",
		"contoso.com.":                          "contoso.com",
		"Contoso.COM/path":                      "contoso.com",
		"":                                      "",
	} {
		if got := normDomain(in); got != want {
			t.Errorf("normDomain(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"Contoso, Inc.":        "contoso",
		"ACME Widgets LLC":     "acme widgets",
		"Müller GmbH":          "müller",
		"Co":                   "co",
		"Smith & Sons Co. Ltd": "smith sons",
	} {
		if got := normName(in); got != want {
			t.Errorf("normName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfidenceAndNoMatch(t *testing.T) {
	h := newHarness(t, nil)
	level := func(body string) string {
		_, m := h.single(body)
		c := company(t, m)
		if len(c) == 0 {
			return "no match"
		}
		return c["matching_confidence"].(map[string]any)["level"].(string)
	}
	for body, want := range map[string]string{
		`{"company":{"name":"Contoso","website":"contoso.com"}}`:   "HIGH",
		`{"company":{"name":"Fabrikam","website":"contoso.com"}}`:  "VERY LOW",
		`{"company":{"name":"Contoso"}}`:                           "LOW",
		`{"company":{"name":"NoMatch Systems"}}`:                   "no match",
		`{"company":{"name":"Contoso","website":"x.invalid"}}`:     "no match",
		`{"company":{"name":"Contoso","website":"www.x.example"}}`: "no match",
	} {
		if got := level(body); got != want {
			t.Errorf("%s: %s, want %s", body, got, want)
		}
	}
	misses := 0
	for i := range 1000 {
		name := normName("Company " + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
		if noMatch("", name, hashOf(name)) {
			misses++
		}
	}
	if misses < 50 || misses > 150 {
		t.Fatalf("hash no-match bucket hit %d of 1000, want about 10%%", misses)
	}
}

func TestSizeFieldStylesAndNoMatchShapes(t *testing.T) {
	for style, keys := range map[string][]string{"v3": {"size", "revenue"}, "both": {"size", "revenue", "employees", "revenue_dollar"}} {
		h := newHarness(t, func(c *Config) { c.SizeFieldStyle = style })
		_, m := h.single(`{"company":{"name":"Contoso","website":"contoso.com"}}`)
		for _, k := range keys {
			if _, ok := company(t, m)[k]; !ok {
				t.Errorf("style %s: no %s", style, k)
			}
		}
	}
	for style, want := range map[string]string{"empty": `"company":{}`, "null": `"company":null`, "absent": `{"enrichment_status":"Not Enriched"}`} {
		h := newHarness(t, func(c *Config) { c.NoMatchCompany = style })
		_, _, _, raw := h.do("POST", pathSingle, "Bearer t1", "application/json", `{"company":{"name":"nomatch"}}`)
		if !strings.Contains(raw, want) || !strings.Contains(raw, `"Not Enriched"`) {
			t.Errorf("%s: %s", style, raw)
		}
	}
}

func TestBulkLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	body := `{"data":[
		{"external_id":"a","company":{"name":"Contoso","website":"contoso.com"}},
		{"external_id":"b","company":{"website":"noname.com"}},
		{"external_id":"c","company":{"name":"__sim_503__"}}]}`
	st, _, m, raw := h.do("POST", pathBulk, "Bearer t1", "application/json", body)
	if st != 202 {
		t.Fatalf("submit: %d %s", st, raw)
	}
	path, _ := m["id"].(string)
	if !strings.HasPrefix(path, pathResults) {
		t.Fatalf("id = %q", path)
	}
	for i := range 2 {
		if st, _, _, raw := h.do("GET", path, "Bearer t1", "", ""); st != 204 || raw != "" {
			t.Fatalf("poll %d: %d %q, want 204 empty", i, st, raw)
		}
	}
	for range 2 { // results stay fetchable
		st, _, m, raw := h.do("GET", path, "Bearer t1", "", "")
		if st != 200 {
			t.Fatalf("poll: %d %s", st, raw)
		}
		res := m["results"].([]any)
		if len(res) != 3 {
			t.Fatalf("results: %s", raw)
		}
		ids := []any{res[0].(map[string]any)["external_id"], res[1].(map[string]any)["external_id"], res[2].(map[string]any)["external_id"]}
		codes := []any{res[1].(map[string]any)["error_code"], res[2].(map[string]any)["error_code"]}
		if !reflect.DeepEqual(ids, []any{"a", "b", "c"}) || !reflect.DeepEqual(codes, []any{1200.0, 1100.0}) {
			t.Fatalf("results out of order or wrong codes: %s", raw)
		}
	}
	if st, _, _, _ := h.do("GET", pathResults+"unknown", "Bearer t1", "", ""); st != 404 {
		t.Fatalf("unknown bulk: %d", st)
	}
	for _, bad := range []string{`{"data":[]}`, `{"data":{}}`, `{"data":[` + strings.Repeat(`{},`, 500) + `{}]}`} {
		if st, _, _, _ := h.do("POST", pathBulk, "Bearer t1", "application/json", bad); st != 400 {
			t.Fatalf("bad bulk accepted: %d", st)
		}
	}
	if got := h.sim.RecordsReceived("p1"); got != 3 {
		t.Fatalf("records received = %d", got)
	}
	calls := h.sim.Calls()
	if !calls[0].Bulk || len(calls[0].Records) != 3 || calls[0].Program != "p1" {
		t.Fatalf("call log: %+v", calls[0])
	}
}

func TestOAuthFlow(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.OAuthTTL = time.Hour })
	post := func(method, body string) (int, map[string]any) {
		st, _, m, _ := h.do(method, pathAuthorize, "", "application/json", body)
		return st, m
	}
	if st, _ := post("POST", `{"user":"p1","pass":"s1","audience":"OTHER"}`); st != 401 {
		t.Fatalf("wrong audience: %d", st)
	}
	if st, _ := post("POST", `{"user":"p1","pass":"nope","audience":"API_GATEWAY"}`); st != 401 {
		t.Fatalf("wrong secret: %d", st)
	}
	st, m := post("POST", `{"user":"p1","pass":"s1","audience":"API_GATEWAY"}`)
	if st != 200 || m["token"] == "" || m["refreshToken"] == "" || m["expiration"].(float64) <= float64(time.Now().Unix()) {
		t.Fatalf("issue: %d %v", st, m)
	}
	tok, refresh := m["token"].(string), m["refreshToken"].(string)
	if st, _, _, _ := h.do("POST", pathSingle, "Bearer "+tok, "application/json", `{"company":{"name":"A"}}`); st != 200 {
		t.Fatalf("oauth token rejected: %d", st)
	}
	st, m = post("PUT", `{"user":"p1","refreshToken":"`+refresh+`"}`)
	if st != 200 || m["token"] == tok {
		t.Fatalf("refresh: %d %v", st, m)
	}
	if st, _ := post("PUT", `{"user":"p1","refreshToken":"`+refresh+`"}`); st != 401 {
		t.Fatalf("refresh token reused: %d", st)
	}
	h.sim.Advance(2 * time.Hour)
	if st, _, _, _ := h.do("POST", pathSingle, "Bearer "+m["token"].(string), "application/json", `{"company":{"name":"A"}}`); st != 401 {
		t.Fatalf("expired token accepted: %d", st)
	}
}

func TestFaultsOverHTTPAndCallLog(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.EmitRetryAfter = true })
	ctl := func(path, body string) int {
		resp, err := http.Post(h.url+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := ctl("/__sim/faults", `{"match":{"path":"/enrichment/enrich/single","company_name":"contoso"},"status":429,"count":1}`); st != 204 {
		t.Fatalf("fault: %d", st)
	}
	st, _, _, _ := h.do("POST", pathSingle, "Bearer t1", "application/json", `{"company":{"name":"Other"}}`)
	if st != 200 {
		t.Fatalf("fault matched another company: %d", st)
	}
	st, hdr, _, _ := h.do("POST", pathSingle, "Bearer t1", "application/json", `{"company":{"name":"Contoso"}}`)
	if st != 429 || hdr.Get("Retry-After") != "1" {
		t.Fatalf("fault: %d %v", st, hdr)
	}
	if st, _ := h.single(`{"company":{"name":"Contoso"}}`); st != 200 {
		t.Fatalf("fault outlived its count: %d", st)
	}
	h.sim.InjectFault(Fault{Path: pathSingle, Drop: true})
	req, _ := http.NewRequest("POST", h.url+pathSingle, strings.NewReader(`{"company":{"name":"A"}}`))
	req.Header.Set("Authorization", "Bearer t1")
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("dropped connection answered")
	}
	resp, err := http.Get(h.url + "/__sim/calls")
	if err != nil {
		t.Fatal(err)
	}
	var calls []Call
	_ = json.NewDecoder(resp.Body).Decode(&calls)
	resp.Body.Close()
	got := make([]int, len(calls))
	for i, c := range calls {
		got[i] = c.Status
	}
	if !reflect.DeepEqual(got, []int{200, 429, 200, 0}) {
		t.Fatalf("call log statuses = %v", got)
	}
	if ctl("/__sim/reset", ``) != 204 || len(h.sim.Calls()) != 0 {
		t.Fatal("reset did not clear the log")
	}
}

func TestMagicNames(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SlowDelay = 50 * time.Millisecond })
	for name, want := range map[string]int{Magic500: 500, Magic503: 503, MagicSlow: 200} {
		start := time.Now()
		if st, _ := h.single(`{"company":{"name":"` + name + `"}}`); st != want {
			t.Errorf("%s: %d, want %d", name, st, want)
		}
		if name == MagicSlow && time.Since(start) < 50*time.Millisecond {
			t.Errorf("%s answered too fast", name)
		}
	}
}

func TestBulkReadyByTime(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BulkReadyAfterPolls = 0; c.BulkReadyAfter = time.Hour })
	st, _, m, raw := h.do("POST", pathBulk, "Bearer t1", "application/json", `{"data":[{"external_id":"a","company":{"name":"Contoso"}}]}`)
	if st != 202 {
		t.Fatalf("submit: %d %s", st, raw)
	}
	path := m["id"].(string)
	for range 3 { // any number of polls: it is the clock that counts
		if st, _, _, _ := h.do("GET", path, "Bearer t1", "", ""); st != 204 {
			t.Fatalf("poll before BulkReadyAfter: %d", st)
		}
	}
	h.sim.Advance(time.Hour)
	if st, _, _, raw := h.do("GET", path, "Bearer t1", "", ""); st != 200 || !strings.Contains(raw, `"external_id":"a"`) {
		t.Fatalf("poll after BulkReadyAfter: %d %s", st, raw)
	}
	if s := h.sim.Stats()["p1"]; s.BulksReady != 1 || s.Requests[EndpointPoll] != 4 || s.Answers[204] != 3 {
		t.Fatalf("stats %+v", s)
	}
}

// Both cases of the UNCERTAIN fact: polls take a token from the bucket, or not.
func TestFreePolls(t *testing.T) {
	for _, free := range []bool{false, true} {
		h := newHarness(t, func(c *Config) { c.Programs[0].TPS = 1; c.BulkReadyAfterPolls = -1; c.FreePolls = free })
		st, _, m, _ := h.do("POST", pathBulk, "Bearer t1", "application/json", `{"data":[{"external_id":"a","company":{"name":"Contoso"}}]}`)
		if st != 202 {
			t.Fatalf("submit: %d", st)
		}
		st, _, _, _ = h.do("GET", m["id"].(string), "Bearer t1", "", "") // the bucket (1 token) is empty now
		want := map[bool]int{false: 429, true: 200}[free]
		if st != want {
			t.Fatalf("FreePolls=%v: poll answered %d, want %d", free, st, want)
		}
		s := h.sim.Stats()["p1"]
		if s.Requests[EndpointPoll] != 1 || s.Transactions[EndpointPoll] != 0 || s.Transactions[EndpointBulk] != 1 ||
			s.RateLimited != map[bool]int{false: 1, true: 0}[free] {
			t.Fatalf("FreePolls=%v: stats %+v", free, s)
		}
	}
}

func TestFaultForAWhileOnOneProgram(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Programs = append(c.Programs, ProgramConfig{ID: "p2", Tokens: []string{"t2"}, Credits: Unlimited, TPS: 1000})
	})
	resp, err := http.Post(h.url+"/__sim/faults", "application/json",
		strings.NewReader(`{"match":{"path":"/enrichment/enrich/single","program":"p1"},"status":503,"for_ms":60000}`))
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("fault: %v %v", err, resp)
	}
	resp.Body.Close()
	body := `{"company":{"name":"Contoso"}}`
	for range 5 {
		if st, _, _, _ := h.do("POST", pathSingle, "Bearer t1", "application/json", body); st != 503 {
			t.Fatalf("p1 during the fault: %d", st)
		}
		if st, _, _, _ := h.do("POST", pathSingle, "Bearer t2", "application/json", body); st != 200 {
			t.Fatalf("p2 during p1's fault: %d", st)
		}
	}
	h.sim.Advance(59 * time.Second)
	if st, _, _, _ := h.do("POST", pathSingle, "Bearer t1", "application/json", body); st != 503 {
		t.Fatalf("p1 before the fault ran out: %d", st)
	}
	h.sim.Advance(time.Second)
	if st, _, _, _ := h.do("POST", pathSingle, "Bearer t1", "application/json", body); st != 200 {
		t.Fatalf("p1 after the fault ran out: %d", st)
	}
	stats := h.sim.Stats()
	if s := stats["p1"]; s.Answers[503] != 6 || s.Answers[200] != 1 || s.RecordsReceived != 1 {
		t.Fatalf("p1 stats %+v", s)
	}
	if s := stats["p2"]; s.Answers[200] != 5 || s.RecordsReceived != 5 || s.Transactions[EndpointSingle] != 5 {
		t.Fatalf("p2 stats %+v", s)
	}
}

func TestStatsOverHTTPAndCallLogLimit(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CallLogLimit = 3; c.Programs[0].TPS = 5 })
	for i := range 10 {
		h.single(`{"company":{"name":"Contoso"},"external_id":"` + strconv.Itoa(i) + `"}`)
	}
	calls := h.sim.Calls()
	if len(calls) != 3 || calls[2].Records[0]["external_id"] != "9" || calls[0].Records[0]["external_id"] != "7" {
		t.Fatalf("call log keeps %d calls: %+v", len(calls), calls)
	}
	resp, err := http.Get(h.url + "/__sim/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats map[string]ProgramStats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	s := stats["p1"]
	// The bucket holds 5 tokens: 5 answered 200, 5 rate limited; counters
	// stay exact although the log kept 3 calls.
	if s.Requests[EndpointSingle] != 10 || s.Transactions[EndpointSingle] != 5 || s.Answers[200] != 5 ||
		s.Answers[429] != 5 || s.RateLimited != 5 || s.RecordsReceived != 5 {
		t.Fatalf("stats %+v", s)
	}
	if !reflect.DeepEqual(s, h.sim.Stats()["p1"]) {
		t.Fatalf("HTTP stats %+v differ from Stats() %+v", s, h.sim.Stats()["p1"])
	}
}
