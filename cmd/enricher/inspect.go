package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
)

// cmdControl shows the control table as the service sees it: events are
// verified with the admin key when one is given, tokens never shown.
func cmdControl(args []string) error {
	if len(args) == 0 || args[0] != "show" {
		return errors.New("usage: enricher control show [flags]")
	}
	s := newSettings("control show")
	var k kafkaFlags
	var keys adminKeyFlags
	var asJSON bool
	k.bind(s)
	keys.bind(s)
	s.BoolVar(&asJSON, "json", false, "print JSON")
	if err := s.parse(args[1:]); err != nil {
		return err
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
	// The admin's machine need not hold the tokens: references are shown, not resolved.
	table := processor.NewControlTable(func(string, string) (string, error) { return "unresolved", nil })
	if err := processor.LoadControl(ctx, k.kafka(), k.topics.Control, codec, auth, table); err != nil {
		return err
	}
	states := table.Snapshot()
	sort.Slice(states, func(i, j int) bool { return states[i].TenantID < states[j].TenantID })
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(states)
	}
	if !auth.Enabled() {
		fmt.Fprintln(os.Stderr, "note: no admin key given, so event signatures were not checked")
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tSTATE\tCONNECTION\tTOKEN REF\tMAPPING\tCONSENT\tREFUSED EVENTS")
	for _, st := range states {
		mapping := "-"
		if m := st.Mapping; m != nil {
			mapping = "name=" + m.NameAttribute
			if m.WebsiteAttribute != "" {
				mapping += " website=" + m.WebsiteAttribute
			}
			if m.LocationAttribute != "" {
				mapping += " location=" + m.LocationAttribute
			}
			if m.MinConfidence != "" {
				mapping += " min=" + m.MinConfidence
			}
		}
		consent := "-"
		if !st.ConsentAt.IsZero() {
			consent = st.ConsentBy + " " + st.ConsentAt.Format(time.RFC3339)
		}
		state := st.State
		if st.Reason != "" {
			state += " (" + st.Reason + ")"
		}
		refused := fmt.Sprint(st.Refused)
		if st.Refused > 0 {
			refused += " (last: " + st.LastRefused + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.TenantID, state, orDash(st.DisplayName), orDash(st.TokenRef), mapping, consent, refused)
	}
	return w.Flush()
}

// cmdStatus shows each tenant's enrichment status, summed over partitions.
func cmdStatus(args []string) error {
	s := newSettings("status")
	var k kafkaFlags
	var tenant string
	var asJSON bool
	k.bind(s)
	s.StringVar(&tenant, "tenant", "", "only this tenant")
	s.BoolVar(&asJSON, "json", false, "print JSON")
	if err := s.parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	codec, err := k.codec(ctx)
	if err != nil {
		return err
	}
	records, err := processor.ReadStatus(ctx, k.kafka(), k.topics.Status, codec)
	if err != nil {
		return err
	}
	var rows []*processor.TenantStatus
	for _, st := range processor.SumStatus(records) {
		if tenant == "" || st.TenantID == tenant {
			rows = append(rows, st)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].TenantID < rows[j].TenantID })
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(rows)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tSTATE\tENRICHED\tNOT MATCHED\tSKIPPED\tFAILED\tCREDITS\tLAST ENRICHED\tREFUSED CONTROL")
	for _, st := range rows {
		state := orDash(st.State)
		if st.StateReason != "" {
			state += " (" + st.StateReason + ")"
		}
		last := "-"
		if !st.LastEnrichedAt.IsZero() {
			last = st.LastEnrichedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%d of %d\t%d\t%d\t%d\t%d\t%s\t%d\n", st.TenantID, state, st.Enriched, st.Profiles,
			st.NotMatched, st.Skipped, st.Failed, st.CreditsSpent, last, st.RefusedControl)
	}
	return w.Flush()
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
