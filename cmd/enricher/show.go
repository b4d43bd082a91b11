package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

var enrichedStatuses = admin.EnrichedStatuses

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
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	ad, err := k.admin(ctx, controlplane.Auth{}, admin.Config{})
	if err != nil {
		return err
	}
	defer ad.Close()
	current, err := ad.Enrichments(ctx, tenant)
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
		return admin.WriteEnrichedCSV(os.Stdout, rows)
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

// cell keeps a table cell to n runes and on one line.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// checkTenant refuses a missing or malformed --tenant as bad usage.
func checkTenant(tenant string) error {
	return usageOf(admin.CheckTenant(tenant))
}

// usageOf makes bad input exit 2, like a bad flag.
func usageOf(err error) error {
	if errors.Is(err, admin.ErrInvalid) {
		return usageError{err}
	}
	return err
}
