package admin

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// EnrichedCSVHeader are the columns of an enrichments CSV, the same for
// `enricher show --format csv` and the console's download.
var EnrichedCSVHeader = []string{"tenant_id", "profile_id", "status", "skip_reason", "confidence", "leadspace_company_id", "name",
	"website", "industry", "sub_industry", "sic", "naics", "employees", "employees_range", "revenue_usd", "revenue_range",
	"city", "state", "country", "sent_name", "sent_website", "input_fingerprint", "enriched_at", "event_id"}

// WriteEnrichedCSV writes rows under EnrichedCSVHeader. A cell that a
// spreadsheet would evaluate is defused: profiles and Leadspace answers are
// untrusted, and a CSV is usually opened in one.
func WriteEnrichedCSV(out io.Writer, rows []schemas.Enriched) error {
	w := csv.NewWriter(out)
	if err := w.Write(EnrichedCSVHeader); err != nil {
		return err
	}
	for _, e := range rows {
		if err := w.Write(enrichedCSVRecord(e)); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

func enrichedCSVRecord(e schemas.Enriched) []string {
	var c schemas.Firmographics
	if e.Company != nil {
		c = *e.Company
	}
	var a schemas.Address
	if c.Address != nil {
		a = *c.Address
	}
	var sent schemas.Sent
	if e.Sent != nil {
		sent = *e.Sent
	}
	num := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	rec := []string{e.TenantID, e.ProfileID, e.Status, e.SkipReason, e.Confidence, c.LeadspaceID, c.Name,
		c.Website, c.Industry, c.SubIndustry, c.SIC, c.NAICS, num(c.Employees), c.EmployeesRange, num(c.RevenueUSD), c.RevenueRange,
		a.City, a.State, a.Country, sent.Name, sent.Website, e.InputFingerprint, e.EnrichedAt.UTC().Format(time.RFC3339Nano), e.EventID}
	for i, v := range rec {
		rec[i] = csvSafe(v)
	}
	return rec
}

// csvSafe defuses a cell a spreadsheet would evaluate (=, +, -, @, tab, CR).
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
