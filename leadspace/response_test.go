package leadspace

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParseSingleResponseTolerance(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Result
	}{{
		name: "v4 names",
		body: `{"status":"success","external_id":"e1","data":{"enrichment_status":"Company Enriched","company":{
			"ug_company_id":"ug1","ls_id":"ls1","name":"Contoso","employees":{"exact":120,"range":"51-200"},
			"revenue_dollar":{"exact":5000000,"range":"$1M-$10M"},"matching_confidence":{"level":"High"},
			"address":{"country":"US","state":"MA","city":"Boston","zipcode":"02110","address":"1 Main St"},
			"analytics":{"installed_base_technologies":["AWS","Slack"]},"unknown":{"x":[1,2]}}}}`,
		want: Result{ExternalID: "e1", Matched: true, Confidence: "HIGH", Status: "Company Enriched", Company: Company{
			ID: "ug1", Name: "Contoso", Employees: 120, EmployeesRange: "51-200", Revenue: 5000000, RevenueRange: "$1M-$10M",
			Address:      Address{Street: "1 Main St", City: "Boston", State: "MA", PostalCode: "02110", Country: "US"},
			Technologies: []string{"AWS", "Slack"},
		}},
	}, {
		name: "v3 names, ls_id only, lower-case level, numeric codes",
		body: `{"data":{"enrichment_status":"Company Enriched","company":{"ls_id":"ls1","name":"A",
			"size":{"exact":"1,200","range":"1001-5000"},"revenue":{"exact":2.5e7,"range":"$10M-$50M"},
			"sic":7372,"matching_confidence":{"level":"very low"}}}}`,
		want: Result{Matched: true, Confidence: "VERY LOW", Status: "Company Enriched", Company: Company{
			ID: "ls1", Name: "A", Employees: 1200, EmployeesRange: "1001-5000", Revenue: 25000000, RevenueRange: "$10M-$50M", SIC: "7372",
		}},
	}, {
		name: "not enriched, company {}",
		body: `{"status":"success","data":{"enrichment_status":"Not Enriched","company":{}}}`,
		want: Result{Status: "Not Enriched"},
	}, {
		name: "not enriched, company null",
		body: `{"status":"failure","data":{"enrichment_status":"Not Enriched","company":null}}`,
		want: Result{Status: "Not Enriched"},
	}, {
		name: "not enriched, company absent",
		body: `{"data":{"enrichment_status":"NOT ENRICHED"}}`,
		want: Result{Status: "NOT ENRICHED"},
	}, {
		name: "not enriched with echoed input is still no match",
		body: `{"data":{"enrichment_status":"Not Enriched","company":{"name":"Echo","matching_confidence":{"level":"LOW"}}}}`,
		want: Result{Status: "Not Enriched"},
	}, {
		name: "wrong types are ignored, not fatal",
		body: `{"data":{"enrichment_status":"Company Enriched","company":{"name":"B","employees":"many","revenue_dollar":[1],
			"address":"somewhere","analytics":{"installed_base_technologies":"AWS"},"matching_confidence":"medium","phone":{"x":1}}}}`,
		want: Result{Matched: true, Confidence: "MEDIUM", Status: "Company Enriched", Company: Company{Name: "B"}},
	}, {
		name: "company of the wrong type",
		body: `{"data":{"enrichment_status":"Company Enriched","company":"Contoso"}}`,
		want: Result{Status: "Company Enriched"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSingleResponse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseSingleResponseRejectsUnreadable(t *testing.T) {
	for _, body := range []string{``, `null`, `[]`, `"x"`, `{"data":`, `{"status":"success"}`, `{"data":null}`, "\xff\xfe"} {
		if _, err := parseSingleResponse([]byte(body)); err == nil {
			t.Errorf("%q parsed without error", body)
		}
	}
}

func TestParseBulkRecordCodes(t *testing.T) {
	recs, err := parseBulkResults([]byte(`{"results":[
		{"external_id":"a","status":"success","data":{"enrichment_status":"Company Enriched","company":{"name":"A"}}},
		{"external_id":"b","status":"Invalid Input","error_code":1200},
		{"external_id":"c","error":{"code":1100,"message":"Internal Error"}},
		{"external_id":"d","code":"1200"},
		{"external_id":"e","status":"success"},
		"junk", 7, {"no":"id"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := recs.byID()
	if r := got["a"]; r.err != nil || !r.result.Matched {
		t.Fatalf("a: %+v", r)
	}
	wantReason(t, got["b"].err, ClassInput, ReasonInputRejected)
	wantReason(t, got["c"].err, ClassRetryable, ReasonRecordFailed)
	wantReason(t, got["d"].err, ClassInput, ReasonInputRejected)
	wantReason(t, got["e"].err, ClassRetryable, ReasonRecordFailed)
	if len(got) != 5 {
		t.Fatalf("records = %d", len(got))
	}
}

func TestParseBulkAccepted(t *testing.T) {
	for body, want := range map[string]string{
		`{"id":"/v3/enrichment/results/abc"}`: "/v3/enrichment/results/abc",
		`{"id":"abc-123"}`:                    "/v3/enrichment/results/abc-123",
		`{"id":"https://evil.example/x"}`:     "/v3/enrichment/results/https:%2F%2Fevil.example%2Fx",
		`{"id":"//evil.example/x"}`:           "",
		`{"id":"/v3/../../x"}`:                "",
		`{"id":""}`:                           "",
		`{}`:                                  "",
	} {
		got, err := parseBulkAccepted([]byte(body))
		if got != want || (want == "") != (err != nil) {
			t.Errorf("%s -> %q, %v; want %q", body, got, err, want)
		}
	}
}

// FuzzParseSingleResponse: no bytes may panic the parser, and a result it
// accepts must be self-consistent.
func FuzzParseSingleResponse(f *testing.F) {
	for _, s := range []string{
		`{"status":"success","external_id":"e","data":{"enrichment_status":"Company Enriched","company":{"ug_company_id":"1","name":"A","employees":{"exact":1e308,"range":"x"},"revenue":{"exact":-1e309}}}}`,
		`{"data":{"enrichment_status":"Not Enriched","company":{}}}`,
		`{"data":{"enrichment_status":"Not Enriched","company":null}}`,
		`{"data":{"company":{"matching_confidence":{"level":["x"]},"analytics":{"installed_base_technologies":[null,1,"a",{}]}}}}`,
		`{"data":{"enrichment_status":"Company Enr`,
		`{"error":"Bad Request","tracking_id":"t","details":"x"}`,
		`[]`, `null`, ``, `{"data":"x"}`, `{"data":{"company":{"size":{"exact":"NaN"}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := parseSingleResponse(body)
		_ = parseEnvelope(body)
		_, _ = parseBulkResults(body)
		_, _ = parseBulkAccepted(body)
		if err != nil {
			return
		}
		if res.Matched && strings.EqualFold(strings.TrimSpace(res.Status), "not enriched") {
			t.Fatalf("matched a Not Enriched answer: %+v", res)
		}
		if !res.Matched && (res.Company.ID != "" || res.Confidence != "") {
			t.Fatalf("no match but firmographics: %+v", res)
		}
	})
}

// benchRecord is one record of a bulk answer as the simulator shapes it;
// %d is its number.
const benchRecord = `{"external_id":"r-%d","status":"success","data":{"enrichment_status":"Company Enriched","company":{
		"ug_company_id":"0f3c2a9e-1b7d-4c55-9a0e-7d2b1c3e4f50","ls_id":"0f3c2a9e-1b7d-4c55-9a0e-7d2b1c3e4f50","name":"Company %d",
		"website":"company%d.com","description":"Company %d makes software.","industry":"Computer Software","sub_industry":"Enterprise Software",
		"sic":"7372","sicDescription":"Prepackaged Software","naics":"513210","naicsDescription":"Software Publishers",
		"employees":{"exact":1234,"range":"1001-5000"},"revenue_dollar":{"exact":250000000,"range":"$100M-$500M"},
		"address":{"country":"US","state":"MA","city":"Boston","zipcode":"02110"},"phone":"+1 617 555 0100",
		"linkedin_profile":"https://www.linkedin.com/company/company","ownership":"Private","matching_confidence":{"level":"HIGH"},
		"analytics":{"installed_base_technologies":["AWS","Salesforce","Slack","Zendesk","HubSpot"]}}}}`

// BenchmarkParseBulkResults parses a 500-record answer as the simulator
// shapes it: the client's main CPU cost per record in bulk mode.
func BenchmarkParseBulkResults(b *testing.B) {
	rec := benchRecord
	var sb strings.Builder
	sb.WriteString(`{"bulkStatus":"COMPLETED","results":[`)
	for i := range 500 {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(strings.ReplaceAll(rec, "%d", strconv.Itoa(i)))
	}
	sb.WriteString("]}")
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		recs, err := parseBulkResults(body)
		if r, ok := recs.lookup("r-7"); err != nil || len(recs.recs) != 500 || !ok || !r.result.Matched {
			b.Fatalf("%v %d", err, len(recs.recs))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/500, "µs/record")
}
