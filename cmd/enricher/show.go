package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

var enrichedStatuses = []string{schemas.StatusEnriched, schemas.StatusNotMatched, schemas.StatusSkipped}

// cmdShow lists a tenant's current enrichments: the latest value per key of
// the compacted enriched topic, withdrawn ones (tombstones) left out.
func cmdShow(args []string) error {
	s := newSettings("show")
	var k kafkaFlags
	var tenant, status, format string
	var limit int
	k.bind(s)
	s.StringVar(&tenant, "tenant", "", "tenant id (required)")
	s.StringVar(&status, "status", "", "only this status: ENRICHED, NOT_MATCHED or SKIPPED")
	s.IntVar(&limit, "limit", 50, "at most this many rows, by profile id (0: all)")
	s.StringVar(&format, "format", "table", "table, json or csv")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if err := checkTenant(tenant); err != nil {
		return err
	}
	status = strings.ToUpper(status)
	switch {
	case status != "" && !slices.Contains(enrichedStatuses, status):
		return badUsage("status: %q is not one of %s", status, strings.Join(enrichedStatuses, ", "))
	case format != "table" && format != "json" && format != "csv":
		return badUsage("format: %q is not table, json or csv", format)
	case limit < 0:
		return badUsage("limit: %d is negative", limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	codec, err := k.codec(ctx)
	if err != nil {
		return err
	}
	if _, err := loadTenant(ctx, &k, codec, controlplane.Auth{}, tenant); err != nil {
		return err
	}
	current, err := currentEnrichments(ctx, k.kafka(), k.topics.Enriched, codec, tenant)
	if err != nil {
		return err
	}
	total := len(current)
	var rows []schemas.Enriched
	for _, e := range current {
		if status == "" || e.Status == status {
			rows = append(rows, e)
		}
	}
	matched := len(rows)
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	switch format {
	case "json":
		if rows == nil {
			rows = []schemas.Enriched{}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	case "csv":
		return writeEnrichedCSV(os.Stdout, rows)
	}
	if err := writeEnrichedTable(os.Stdout, rows); err != nil {
		return err
	}
	what := "current enrichments"
	if status != "" {
		what = fmt.Sprintf("%s of %d current enrichments", status, total)
	}
	fmt.Printf("\n%d of %d %s of tenant %s shown", len(rows), matched, what, tenant)
	if len(rows) < matched {
		fmt.Printf(" (--limit %d; --limit 0 shows all)", limit)
	}
	fmt.Println()
	return nil
}

// currentEnrichments is a tenant's latest enrichment per profile, by
// profile id. Values that do not decode are left out.
func currentEnrichments(ctx context.Context, k processor.Kafka, topic string, codec *schemas.Codec, tenant string) ([]schemas.Enriched, error) {
	latest, err := latestByKey(ctx, k, topic, tenant+"/")
	if err != nil {
		return nil, err
	}
	out := make([]schemas.Enriched, 0, len(latest))
	for _, m := range latest {
		e, err := codec.DecodeEnriched(ctx, m.Value)
		if err == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ProfileID < out[j].ProfileID })
	return out, nil
}

// latestByKey reads a compacted topic to its current end and keeps the
// latest record of every key that starts with prefix; a tombstone removes
// its key, as compaction eventually will.
func latestByKey(ctx context.Context, k processor.Kafka, topic, prefix string) (map[string]kafka.Message, error) {
	latest := map[string]kafka.Message{}
	err := processor.ReadAll(ctx, k, topic, func(m kafka.Message) {
		key := string(m.Key)
		if !strings.HasPrefix(key, prefix) {
			return
		}
		if m.Value == nil {
			delete(latest, key)
			return
		}
		latest[key] = m // one key, one partition: records arrive in offset order
	})
	return latest, readErr(topic, err)
}

func writeEnrichedTable(out io.Writer, rows []schemas.Enriched) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROFILE\tSTATUS\tCONFIDENCE\tCOMPANY\tINDUSTRY\tEMPLOYEES\tREVENUE\tLOCATION\tENRICHED AT")
	for _, e := range rows {
		company, industry, employees, revenue, location := "-", "-", "-", "-", "-"
		status := e.Status
		if e.SkipReason != "" {
			status += " (" + e.SkipReason + ")"
		}
		if c := e.Company; c != nil {
			company, industry = orDash(c.Name), orDash(c.Industry)
			employees, revenue = orDash(c.EmployeesRange), orDash(c.RevenueRange)
			if c.Employees != nil {
				employees = strconv.FormatInt(*c.Employees, 10)
			}
			if a := c.Address; a != nil {
				location = orDash(strings.Trim(strings.Join([]string{a.City, a.Country}, ", "), ", "))
			}
		} else if e.Sent != nil {
			company = "(sent: " + e.Sent.Name + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ProfileID, status, orDash(e.Confidence), cell(company, 40),
			cell(industry, 30), employees, revenue, cell(location, 30), e.EnrichedAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

var enrichedCSVHeader = []string{"tenant_id", "profile_id", "status", "skip_reason", "confidence", "leadspace_company_id", "name",
	"website", "industry", "sub_industry", "sic", "naics", "employees", "employees_range", "revenue_usd", "revenue_range",
	"city", "state", "country", "sent_name", "sent_website", "input_fingerprint", "enriched_at", "event_id"}

func writeEnrichedCSV(out io.Writer, rows []schemas.Enriched) error {
	w := csv.NewWriter(out)
	if err := w.Write(enrichedCSVHeader); err != nil {
		return err
	}
	for _, e := range rows {
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
		if err := w.Write([]string{e.TenantID, e.ProfileID, e.Status, e.SkipReason, e.Confidence, c.LeadspaceID, c.Name,
			c.Website, c.Industry, c.SubIndustry, c.SIC, c.NAICS, num(c.Employees), c.EmployeesRange, num(c.RevenueUSD), c.RevenueRange,
			a.City, a.State, a.Country, sent.Name, sent.Website, e.InputFingerprint, e.EnrichedAt.UTC().Format(time.RFC3339Nano), e.EventID}); err != nil {
			return err
		}
	}
	w.Flush()
	return w.Error()
}

// cell keeps a table cell to n runes and on one line.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// readErr names the topic when a read ran out of time (ReadAll names it
// for every other error).
func readErr(topic string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("read %s: %w (is the broker reachable and the topic there?)", topic, err)
	}
	return err
}

// checkTenant refuses a missing or malformed --tenant.
func checkTenant(tenant string) error {
	if strings.TrimSpace(tenant) == "" {
		return badUsage("tenant: required (--tenant T)")
	}
	if strings.Contains(tenant, "/") {
		return badUsage("tenant: %q must not contain '/' (keys are tenant/profile)", tenant)
	}
	return nil
}
