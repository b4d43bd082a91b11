package leadspace

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// answerCorpus is the answers the tests know: each is read whole and
// mangled by TestJSONReaderReadsWhatGjsonReads.
func answerCorpus() []string {
	return []string{
		bulkBenchBody(3),
		`{"status":"success","external_id":"e1","data":{"enrichment_status":"Company Enriched","company":{
			"ug_company_id":"ug1","ls_id":"ls1","name":"Contoso","employees":{"exact":120,"range":"51-200"},
			"revenue_dollar":{"exact":5000000,"range":"$1M-$10M"},"matching_confidence":{"level":"High"},
			"address":{"country":"US","state":"MA","city":"Boston","zipcode":"02110","address":"1 Main St"},
			"analytics":{"installed_base_technologies":["AWS","Slack"]},"unknown":{"x":[1,2]}}}}`,
		`{"data":{"enrichment_status":"Company Enriched","company":{"ls_id":"ls1","name":"A",
			"size":{"exact":"1,200","range":"1001-5000"},"revenue":{"exact":2.5e7,"range":"$10M-$50M"},
			"sic":7372,"matching_confidence":{"level":"very low"}}}}`,
		`{"data":{"enrichment_status":"Company Enriched","company":{"name":"B","employees":"many","revenue_dollar":[1],
			"address":"somewhere","analytics":{"installed_base_technologies":"AWS"},"matching_confidence":"medium","phone":{"x":1}}}}`,
		`{"DATA":{"Enrichment_Status":"Company Enriched","COMPANY":{"Name":" Ac\u006De \t","name":"Acme \ud83d\ude00 \ud800 \"q\" \\ \/",
			"website":true,"sic":-0.5E+3,"naics":false,"phone":null,"Address":{"City":"A"},"address":{"city":"B","ZIPCODE":1e2}}}}`,
		`{"results":[{"external_id":"a","status":"success","data":{"enrichment_status":"Company Enriched","company":{"name":"A"}}},
			{"external_id":"b","status":"Invalid Input","error_code":1200},
			{"external_id":"c","error":{"code":1100,"message":"Internal Error"}},
			{"external_id":"d","code":"1200"},{"external_id":"e","status":"success"},{"external_id":"f","error":"plain"},
			"junk", 7, {"no":"id"}, [], {"external_id":"a","data":null}],"results":[{"external_id":"z","data":{}}]}`,
		`{"results":{"external_id":"x"}}`, `{"results":"x"}`, `{}`, ` {"data" : { } } `, `{"data":{"company":{}}}`,
	}
}

func bulkBenchBody(n int) string {
	var sb strings.Builder
	sb.WriteString(`{"bulkStatus":"COMPLETED","results":[`)
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(strings.ReplaceAll(benchRecord, "%d", string(rune('0'+i%10))))
	}
	sb.WriteString("]}")
	return sb.String()
}

// readBothWays reads body with jsonReader (parseSingleResponse,
// parseBulkResults) and with the gjson reading (answer_gjson_test.go), and
// fails on any difference: in what is an error, and in every field read.
func readBothWays(t *testing.T, body []byte) {
	t.Helper()
	single, serr := parseSingleResponse(body)
	bulk, berr := parseBulkResults(body)
	gs, gerr := gjParse(body, false)
	gb, _ := gjParse(body, true)
	if (berr == nil) != (gerr == nil) {
		if gerr == nil && strings.Count(string(body), "[")+strings.Count(string(body), "{") > maxJSONDepth {
			return // deeper than jsonReader reads; gjson has no bound
		}
		t.Fatalf("%q:\njsonReader: %v\ngjson: %v", body, berr, gerr)
	}
	if gerr != nil {
		if serr == nil {
			t.Fatalf("%q: jsonReader read a single answer that gjson refuses (%v)", body, gerr)
		}
		return
	}
	switch {
	case !gs[0].hasData && serr == nil:
		t.Fatalf("%q: no data, but no error", body)
	case gs[0].hasData && serr != nil:
		t.Fatalf("%q: data, but %v", body, serr)
	case gs[0].hasData:
		if want := gs[0].result(); !reflect.DeepEqual(single, want) {
			t.Fatalf("%q: single\njsonReader %+v\ngjson      %+v", body, single, want)
		}
	}
	checkUTF8(t, body, single)
	if bulk != nil {
		for i := range bulk.recs {
			checkUTF8(t, body, bulk.recs[i].result)
		}
	}
	want := map[string]bulkRecord{}
	for _, a := range gb {
		if a.externalID != "" {
			want[a.externalID] = a.outcome()
		}
	}
	var got map[string]bulkRecord
	if bulk != nil {
		got = bulk.byID()
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: bulk\njsonReader %+v\ngjson      %+v", body, bulk, want)
	}
}

// TestJSONReaderReadsWhatGjsonReads: the single-pass reader reads every
// answer of the tests, and 30,000 mangled copies of them, exactly as the
// gjson reading did: the same errors and the same fields.
func TestJSONReaderReadsWhatGjsonReads(t *testing.T) {
	rnd := rand.New(rand.NewPCG(21, 7))
	const alphabet = "{}[]\",:\\ u0123456789abcdefABCDEF.eE+-truefalsenull\x00\x1f\xff\t\n"
	for _, s := range answerCorpus() {
		readBothWays(t, []byte(s))
		for range 3000 {
			b := []byte(s)
			for range 1 + rnd.IntN(3) {
				i := rnd.IntN(len(b))
				switch rnd.IntN(4) {
				case 0: // replace a byte
					b[i] = alphabet[rnd.IntN(len(alphabet))]
				case 1: // drop a byte
					b = append(b[:i], b[i+1:]...)
				case 2: // insert a byte
					b = append(b[:i], append([]byte{alphabet[rnd.IntN(len(alphabet))]}, b[i:]...)...)
				case 3: // cut
					b = b[:i]
				}
				if len(b) == 0 {
					break
				}
			}
			readBothWays(t, b)
		}
	}
}

// FuzzJSONReader: go test -fuzz FuzzJSONReader ./leadspace finds bodies
// that jsonReader and gjson read differently.
func FuzzJSONReader(f *testing.F) {
	for _, s := range answerCorpus() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		readBothWays(t, body)
	})
}

// TestJSONReaderRefusesWhatIsNotJSON: bodies gjson also refuses.
func TestJSONReaderRefusesWhatIsNotJSON(t *testing.T) {
	for _, body := range []string{`{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":"\x01"}`, `{"a":"\q"}`, `{"a":"\u12"}`,
		`{"a":tru}`, `{"a":nul}`, `{"a" 1}`, `{"a":1,}`, `{"a":[1,]}`, `{a:1}`, `{"a":1} x`, `{"a":1}}`,
		strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1)} {
		if err := readAnswer([]byte(body), func(r *jsonReader) { r.skip() }); err == nil {
			t.Errorf("%q read without error", body)
		}
		if body[len(body)-1] != '}' || strings.Count(body, "{") <= maxJSONDepth {
			if gjson.Valid(body) {
				t.Errorf("gjson reads %q: the reference disagrees", body)
			}
		}
	}
}

// byID is the records as a map, for comparing.
func (b *bulkResults) byID() map[string]bulkRecord {
	out := map[string]bulkRecord{}
	for id, i := range b.index {
		out[id] = b.recs[i]
	}
	return out
}

// checkUTF8 fails unless every text of res is valid UTF-8: the processor
// copies them into Avro strings without checking again.
func checkUTF8(t *testing.T, body []byte, res Result) {
	t.Helper()
	c := res.Company
	texts := append([]string{res.ExternalID, res.Confidence, res.Status, c.ID, c.Name, c.Website, c.Description, c.Industry,
		c.SubIndustry, c.SIC, c.SICDescription, c.NAICS, c.NAICSDescription, c.EmployeesRange, c.RevenueRange, c.Phone,
		c.LinkedInURL, c.Ownership, c.Address.Street, c.Address.City, c.Address.State, c.Address.PostalCode, c.Address.Country},
		c.Technologies...)
	for _, s := range texts {
		if !utf8.ValidString(s) {
			t.Fatalf("%q: read %q, not valid UTF-8", body, s)
		}
	}
}
