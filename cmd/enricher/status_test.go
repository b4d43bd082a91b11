package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// status shows what the product promises, from the status topic's records
// (written here as the service's instances write them).
func TestStatusShowsTheProductView(t *testing.T) {
	stack := newStack(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	// acme mapped a name attribute no profile has; beta is fine and mid-Run.
	publish(t, stack, schemas.Control{TenantID: "acme", IssuedBy: "admin", Connection: &schemas.Connection{TokenRef: "env:LEADSPACE_TOKEN_ACME"}},
		schemas.Control{TenantID: "acme", IssuedBy: "admin", Consent: &schemas.Consent{Given: true}},
		schemas.Control{TenantID: "acme", IssuedBy: "admin", Mapping: &schemas.Mapping{NameAttribute: "NoSuchField"}})
	publish(t, stack, schemas.Control{TenantID: "beta", IssuedBy: "admin", Connection: &schemas.Connection{TokenRef: "env:LEADSPACE_TOKEN_ACME"}},
		schemas.Control{TenantID: "beta", IssuedBy: "admin", Consent: &schemas.Consent{Given: true}},
		schemas.Control{TenantID: "beta", IssuedBy: "admin", Mapping: &schemas.Mapping{NameAttribute: demoNameAttr, RefreshInterval: 7 * 24 * time.Hour}})
	addTenant(t, stack, "quiet", "env:LEADSPACE_TOKEN_ACME", false)
	run := &schemas.RunProgress{RunID: "run-beta-1", RequestedAt: now.Add(-2 * time.Minute), StartedAt: now.Add(-2 * time.Minute), Scope: 100, Done: 40, Called: 30, RecordsSpent: 30}
	statuses := []schemas.Status{
		{TenantID: "acme", Partition: schemas.ControlPartition, State: schemas.StateActive, UpdatedAt: now, CommittedOffset: -1},
		{TenantID: "acme", Partition: 0, State: schemas.StateActive, UpdatedAt: now, Profiles: 3, Skipped: 3, SkippedReasons: map[string]int64{processor.ReasonMissingName: 3}},
		{TenantID: "acme", Partition: 1, State: schemas.StateActive, UpdatedAt: now, Profiles: 2, Skipped: 2, SkippedReasons: map[string]int64{processor.ReasonMissingName: 2}},
		{TenantID: "beta", Partition: schemas.ControlPartition, State: schemas.StateActive, UpdatedAt: now, CommittedOffset: -1},
		{TenantID: "beta", Partition: 0, State: schemas.StateActive, UpdatedAt: now, Profiles: 100, Enriched: 80, NotMatched: 10, Skipped: 7, Failed: 3,
			SkippedReasons: map[string]int64{processor.ReasonMissingName: 5, processor.ReasonNotAnAccount: 2}, CreditsSpent: 95,
			LastRefreshAt: now.Add(-24 * time.Hour), Run: run},
	}
	var msgs []kafka.Message
	for _, s := range statuses {
		v, err := stack.Codec.Encode(schemas.EnrichmentStatus, s.Native())
		if err != nil {
			t.Fatal(err)
		}
		key := s.TenantID + "/control"
		if s.Partition >= 0 {
			key = s.TenantID + "/" + strconv.Itoa(int(s.Partition))
		}
		msgs = append(msgs, kafka.Message{Topic: stack.Topics.Status, Key: []byte(key), Value: v})
	}
	produce(t, stack, func(ctx context.Context, prod *processor.Producer) error { return prod.Write(ctx, msgs...) })

	raw := runOK(t, stack, "status", "--json")
	for _, goName := range []string{`"TenantID"`, `"NotMatched"`, `"CommittedOffset"`, `"Status"`} {
		if strings.Contains(raw, goName) {
			t.Fatalf("status --json has the Go name %s:\n%s", goName, raw)
		}
	}
	var views []statusview.Tenant
	if err := json.Unmarshal([]byte(raw), &views); err != nil || len(views) != 3 {
		t.Fatalf("status --json: %v\n%s", err, raw)
	}
	acme, beta, quiet := views[0], views[1], views[2]
	if acme.State != statusview.StateNeedsAttention || !strings.Contains(acme.StateReason, "NoSuchField") || acme.Profiles != 5 {
		t.Fatalf("acme: %+v", acme)
	}
	if beta.State != schemas.StateActive || beta.Enriched != 80 || beta.Profiles != 100 || beta.Run == nil || !beta.Run.Active() ||
		beta.Run.ETA == nil || beta.NextRefreshAt == nil || !beta.NextRefreshAt.Equal(now.Add(6*24*time.Hour)) {
		t.Fatalf("beta: %+v %+v", beta, beta.Run)
	}
	if quiet.State != schemas.StateNoConsent {
		t.Fatalf("quiet: %+v", quiet)
	}
	table := runOK(t, stack, "status")
	for _, want := range []string{"NEEDS_ATTENTION (every current profile is skipped: map.missing_company_name", "80 of 100",
		"7 (map.missing_company_name 5, map.not_an_account_profile 2)", "run run-beta-1 [########............]  40% 40 of 100 profiles, 30 records spent, ETA",
		"NO_CONSENT"} {
		if !strings.Contains(table, want) {
			t.Errorf("status lacks %q:\n%s", want, table)
		}
	}
	runRefused(t, stack, 1, "unknown tenant nobody", "status", "--tenant", "nobody")
	runRefused(t, stack, 2, "must not contain '/'", "status", "--tenant", "a/b")
}
