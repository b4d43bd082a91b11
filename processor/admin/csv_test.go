package admin

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// A CSV of enrichments is opened in spreadsheets, and its cells come from
// profiles and Leadspace: a cell that would run as a formula is defused.
func TestEnrichedCSVDefusesFormulas(t *testing.T) {
	var buf bytes.Buffer
	rows := []schemas.Enriched{{TenantID: "acme", ProfileID: "p1", Status: "ENRICHED", EnrichedAt: time.Unix(0, 0),
		Company: &schemas.Firmographics{Name: `=HYPERLINK("http://evil")`, Industry: "+1", Website: "@x", SIC: "-2"}}}
	if err := WriteEnrichedCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	got, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(got) != 2 {
		t.Fatalf("csv: %v, %d rows", err, len(got))
	}
	cell := map[string]string{}
	for i, name := range got[0] {
		cell[name] = got[1][i]
	}
	for name, want := range map[string]string{"name": `'=HYPERLINK("http://evil")`, "industry": "'+1",
		"website": "'@x", "sic": "'-2", "profile_id": "p1"} {
		if cell[name] != want {
			t.Errorf("%s = %q, want %q", name, cell[name], want)
		}
	}
}
