package simulator

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/answers.golden.json from the current simulator")

// oddRecords are records the enricher never sends but the simulator must
// answer the same way whatever decodes them: odd types, escapes, duplicate
// and case-variant keys, HTML and invalid UTF-8, every external_id kind.
var oddRecords = []string{
	`{"external_id":"a","company":{"name":"Contoso, Inc.","website":"https://www.contoso.com/about"}}`,
	`{"external_id":"b","company":{"name":"Fabrikam"}}`,
	`{"external_id":"c","company":{"website":"noname.com"}}`,
	`{"company":{"name":"Tailspin","website":"northwind.com"}}`,
	`{"external_id":7,"company":{"name":"nomatch corp"}}`,
	`{"external_id":"p","company":{"name":"Litware"},"person":{"first_name":"Ada","last_name":"Lovelace"}}`,
	`{"person":{"first_name":"Ada"},"company":{"name":"X"}}`,
	`{"external_id":"t","person":{"first_name":"Alan","last_name":"Turing","email":"a@b.c"}}`,
	`{"external_id":"n","company":{"name":42}}`,
	`{"external_id":"o","company":"Contoso"}`,
	`5`, `null`, `"str"`, `[]`, `{}`,
	`{"external_id":null,"company":{"name":"Adatum"}}`,
	`{"external_id":null,"company":{}}`,
	`{"external_id":{"z":1,"a":"<b>"},"company":{"name":"Woodgrove"}}`,
	`{"external_id":["x",2.50,true],"company":{"name":"Arrays"}}`,
	`{"external_id":"x<&>\u2028é\"\\","company":{"name":"Smith & <Sons> GmbH","website":"smith-sons.de"}}`,
	`{"comp\u0061ny":{"n\u0061me":"Escaped Keys Ltd"}}`,
	`{"company":{"name":"Fir\u0073t \u00e9\ud83d\ude00"},"company":{"website":"second.com"}}`,
	`{"company":{"name":"Dup","name":7,"website":"dup.com"}}`,
	`{"Company":{"Name":"Upper"},"EXTERNAL_ID":"u"}`,
	`{"external_id":"m5","company":{"name":"__sim_500__"}}`,
	`{"external_id":"m3","company":{"name":"__sim_503__"}}`,
	`{"company":{"name":"  "}}`,
	`{"external_id":1.50,"company":{"name":"  Padded Co  ","website":"  padded.co  "}}`,
	"{\"company\":{\"name\":\"Bad\xffByte\"},\"external_id\":\"b\xffd\"}",
	`{"company":{"name":"Shop","website":"HTTP://Shop.Example.org:8080/x"}}`,
	`{"company":{"name":"Bad host","website":"http://[::1"}}`,
	`{"company":{"website":"gone.invalid"}}`,
	`{"company":{"name":"Extra","address":{"city":"Boston"},"tags":[1,{"a":"}"}]},"note":"x\"y"}`,
	`{"company":{"name":"A\tTab\nCo"},"person":{"first_name":" Grace ","last_name":"Hopper","email":5}}`,
	`{"company":{"name":"Big Corp","website":"bigcorp.com"},"person":{"first_name":"Émile","last_name":"Zola"}}`,
	`{"company":{"name":"Contoso","website":"contoso.com"},"person":null}`,
	`{"company":{"name":"Acme Holdings Ltd","website":"www.acme.io."}}`,
}

// TestAnswersAreUnchanged replays singles and a bulk of oddRecords on a few
// configurations and compares every answer, as a JSON value, with
// testdata/answers.golden.json: the simulator is a witness for the
// enricher's tests, so how it decodes and encodes must not change what it
// answers. Key order and spacing may change; values may not.
func TestAnswersAreUnchanged(t *testing.T) {
	type answer struct {
		Case   string `json:"case"`
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	fixed := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	configs := map[string]func(*Config){
		"v4": func(c *Config) {
			c.Fixtures = map[string]map[string]any{"contoso.com": {"phone": "+1 555", "address": map[string]any{"city": "Fixture City"}, "extra": []any{1, "<"}}}
		},
		"v3": func(c *Config) {
			c.Programs[0].APIVersion, c.Programs[0].ConfidenceThreshold, c.NoMatchCompany = "v3", "MEDIUM", "null"
		},
		"both": func(c *Config) {
			c.SizeFieldStyle, c.NoMatchCompany, c.AllowWebsiteOnly, c.Programs[0].Credits = "both", "absent", true, 12
		},
	}
	var got []answer
	for _, name := range []string{"v4", "v3", "both"} {
		for _, bulk := range []bool{false, true} {
			h := newHarness(t, func(c *Config) { c.Clock = func() time.Time { return fixed }; configs[name](c) })
			h.sim.InjectFault(Fault{Path: pathBulk, CompanyName: "fabrikam", Status: 400})
			h.sim.InjectFault(Fault{Path: pathBulk, CompanyName: "Litware", Status: 503})
			if !bulk {
				for i, rec := range oddRecords {
					st, _, _, raw := h.do("POST", pathSingle, "Bearer t1", "application/json", rec)
					got = append(got, answer{fmt.Sprintf("%s single %d", name, i), st, raw})
				}
			} else {
				body := `{"callbackUrl":5,"data":[` + strings.Join(oddRecords, ",") + `]}`
				st, _, m, raw := h.do("POST", pathBulk, "Bearer t1", "application/json", body)
				got = append(got, answer{name + " bulk", st, raw})
				path, _ := m["id"].(string)
				for i := 0; st != http.StatusOK && i < 5; i++ {
					st, _, _, raw = h.do("GET", path, "Bearer t1", "", "")
					got = append(got, answer{name + " poll", st, raw})
				}
			}
			for _, c := range h.sim.Calls() {
				b, _ := json.Marshal(c.Records)
				got = append(got, answer{name + " logged " + c.Method + " " + c.Path, c.Status, string(b)})
			}
		}
	}
	const file = "testdata/answers.golden.json"
	if *updateGolden {
		b, _ := json.MarshalIndent(got, "", " ")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var want []answer
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d answers, golden has %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Case != w.Case || g.Status != w.Status || !reflect.DeepEqual(jsonValue(g.Body), jsonValue(w.Body)) {
			t.Errorf("answer %d changed:\n got %s %d %s\nwant %s %d %s", i, g.Case, g.Status, g.Body, w.Case, w.Status, w.Body)
		}
	}
}

// jsonValue decodes a body for comparison; numbers stay as written.
func jsonValue(s string) any {
	if s == "" {
		return nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return "not JSON: " + s
	}
	return v
}

// TestFirstObjectIsWhatTheDecoderRead: bodies are accepted or refused as
// json.Decoder into a map did, trailing bytes after the object included.
func TestFirstObjectIsWhatTheDecoderRead(t *testing.T) {
	for _, body := range []string{
		`{}`, ` {"a":1} `, `{"a":1} trailing`, `{"a":1}{"b":2}`, `null`, `[]`, `"x"`, `5`, ``, ` `,
		`{"a":`, `{"a":1,}`, "{\"a\":\"\xff\"}", `{"a":1e400}`, `{} {`, `{"a":[1,{"b":"}"}]}`,
	} {
		var m map[string]any
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		want := dec.Decode(&m) == nil && m != nil
		got := firstObject([]byte(body))
		if (got != nil) != want {
			t.Errorf("%q: accepted %v, the decoder %v", body, got != nil, want)
		}
		if got != nil && !json.Valid(got) {
			t.Errorf("%q: first object %q is not JSON", body, got)
		}
	}
}
