package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
)

// cmdStatus shows each tenant as the product does: state (and why),
// enriched X of Y current profiles, not matched, skipped with the top
// reasons, failed, records spent, last and next refresh, the current Run.
func cmdStatus(args []string) error {
	s := newSettings("status")
	var k kafkaFlags
	var keys adminKeyFlags
	var tenant string
	var asJSON bool
	k.bind(s)
	keys.bind(s)
	s.StringVar(&tenant, "tenant", "", "only this tenant")
	s.BoolVar(&asJSON, "json", false, "print JSON (names as in the EnrichmentStatus schema)")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if tenant != "" {
		if err := checkTenant(tenant); err != nil {
			return err
		}
	}
	auth, err := keys.auth()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	codec, err := k.codec(ctx)
	if err != nil {
		return err
	}
	table := controlplane.NewTable(func(string, string) (string, error) { return "unresolved", nil })
	if err := controlplane.Load(ctx, k.kafka(), k.topics, codec, auth, table); err != nil {
		return err
	}
	records, err := processor.ReadStatus(ctx, k.kafka(), k.topics.Status, codec)
	if err != nil {
		return err
	}
	now := time.Now()
	rows := []statusview.Tenant{}
	for _, v := range statusview.Tenants(records, table.Snapshot(), now) {
		if tenant == "" || v.TenantID == tenant {
			rows = append(rows, v)
		}
	}
	if tenant != "" && len(rows) == 0 {
		return fmt.Errorf("unknown tenant %s: neither %s nor %s holds anything of it", tenant, k.topics.Control, k.topics.Status)
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(rows)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tSTATE\tENRICHED\tNOT MATCHED\tSKIPPED (TOP REASONS)\tFAILED\tRECORDS SPENT\tLAST REFRESH\tNEXT REFRESH\tRUN")
	for _, v := range rows {
		state := v.State
		if v.StateReason != "" {
			state += " (" + v.StateReason + ")"
		}
		skipped := fmt.Sprint(v.Skipped)
		if v.Skipped > 0 {
			var top []string
			for _, r := range statusview.TopReasons(v.SkippedReasons, 3) {
				if r.Count > 0 {
					top = append(top, fmt.Sprintf("%s %d", r.Reason, r.Count))
				}
			}
			if len(top) > 0 {
				skipped += " (" + strings.Join(top, ", ") + ")"
			}
		}
		run := "-"
		if r := v.Run; r != nil {
			run = runLine(r, now)
			if r.StartedAt != nil {
				run += ", started " + r.StartedAt.Local().Format(time.DateTime)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%d of %d\t%d\t%s\t%d\t%d\t%s\t%s\t%s\n", v.TenantID, state, v.Enriched, v.Profiles,
			v.NotMatched, skipped, v.Failed, v.CreditsSpent, when(v.LastRefreshAt), when(v.NextRefreshAt), run)
	}
	return w.Flush()
}

// when prints an optional time for a table: local, to the second.
func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// cmdProfile prints one profile's latest enrichment as JSON.
func cmdProfile(args []string) error {
	s := newSettings("profile")
	var k kafkaFlags
	var tenant, profile string
	k.bind(s)
	s.StringVar(&tenant, "tenant", "", "tenant id (required)")
	s.StringVar(&profile, "profile", "", "profile id (required)")
	if err := s.parse(args); err != nil {
		return err
	}
	if tenant == "" || profile == "" {
		return errors.New("tenant, profile: both required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	codec, err := k.codec(ctx)
	if err != nil {
		return err
	}
	key := tenant + "/" + profile
	var latest *kafka.Message
	if err := processor.ReadAll(ctx, k.kafka(), k.topics.Enriched, func(m kafka.Message) {
		if string(m.Key) == key {
			latest = &m
		}
	}); err != nil {
		return err
	}
	switch {
	case latest == nil:
		return fmt.Errorf("no enrichment for %s on %s", key, k.topics.Enriched)
	case latest.Value == nil:
		return fmt.Errorf("the enrichment of %s was withdrawn (tombstone at offset %d)", key, latest.Offset)
	}
	e, err := codec.DecodeEnriched(ctx, latest.Value)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(e)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
