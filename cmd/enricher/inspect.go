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
