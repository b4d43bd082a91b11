package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// bulkOf500 is a bulk body shaped like the enricher's (leadspace bulkBody):
// name, website, address and an external id per record; about one in ten
// companies falls in the no-match bucket.
func bulkOf500() []byte {
	b := []byte(`{"data":[`)
	for i := range 500 {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"company":{"name":"Company %d Inc.","website":"https://www.company%d.com","address":{"street":"%d Main St","city":"Boston","state":"MA","postalcode":"02110","country":"US"}},"external_id":"tenant-a/profile-%06d"}`, i, i, i, i)
	}
	return append(b, "]}"...)
}

// BenchmarkBulkSubmitAndPoll measures the simulator's CPU for one 500-record
// bulk: submit, then poll until the results come (ready at the first poll),
// through the handler without a network in between.
func BenchmarkBulkSubmitAndPoll(b *testing.B) {
	sim, err := New(Config{
		Programs: []ProgramConfig{{ID: "p1", Tokens: []string{"t1"}, Credits: Unlimited, TPS: 1e9}},
		Latency:  time.Nanosecond, Jitter: -1, BulkReadyAfter: -1, CallLogLimit: 100,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	body := bulkOf500()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, pathBulk, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer t1")
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		sim.ServeHTTP(w, req)
		var sub struct{ ID string }
		if w.Code != http.StatusAccepted || json.Unmarshal(w.Body.Bytes(), &sub) != nil {
			b.Fatalf("submit: %d %s", w.Code, w.Body)
		}
		for {
			req = httptest.NewRequest(http.MethodGet, sub.ID, nil)
			req.Header.Set("Authorization", "Bearer t1")
			w = httptest.NewRecorder()
			sim.ServeHTTP(w, req)
			if w.Code == http.StatusOK {
				break
			}
			if w.Code != http.StatusNoContent {
				b.Fatalf("poll: %d %s", w.Code, w.Body)
			}
		}
		sim.Reset() // forget the job, as a long run would not keep one per iteration
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/500, "µs/record")
}
