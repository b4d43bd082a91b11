package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/schemas"
)

func enrichedRecord(t testing.TB, codec *schemas.Codec, topic, tenant, id, status, company string) kafka.Message {
	t.Helper()
	e := schemas.Enriched{EventID: "ev-" + id, EnrichmentID: "en-" + id, TenantID: tenant, ProfileID: id, Status: status,
		EnrichedAt: time.Now().UTC().Truncate(time.Millisecond), InputFingerprint: "fp-" + id, Sent: &schemas.Sent{Name: company}}
	if status == schemas.StatusEnriched {
		e.Confidence, e.Company = "HIGH", &schemas.Firmographics{Name: company, Industry: "Software"}
	}
	if status == schemas.StatusSkipped {
		e.SkipReason = processor.ReasonMissingName
	}
	v, err := codec.Encode(schemas.EnrichedCompany, e.Native())
	if err != nil {
		t.Fatal(err)
	}
	return kafka.Message{Topic: topic, Key: []byte(tenant + "/" + id), Value: v}
}

// Views answer pages of enrichments and dead letters from memory and follow
// the topics as they change; a replay's receipt names its author.
func TestViewsFollowTheTopics(t *testing.T) {
	s := stack(t)
	a, _ := connectedAdmin(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	en := func(tenant, id, status, company string) kafka.Message {
		return enrichedRecord(t, s.Codec, s.Topics.Enriched, tenant, id, status, company)
	}
	write(t, s, en("acme", "p3", schemas.StatusEnriched, "Gamma"), en("acme", "p1", schemas.StatusEnriched, "Alpha"),
		en("acme", "p2", schemas.StatusNotMatched, "Beta"), en("acme", "p4", schemas.StatusSkipped, ""),
		en("globex", "p1", schemas.StatusEnriched, "Other"))
	dead := schemas.Dead{ID: "dl-acme-1", OriginalKey: []byte("acme/p7"), OriginalValue: []byte("input"), SourceTopic: s.Topics.Profiles,
		Stage: schemas.StageEnrich, Reason: "leadspace.unauthorized", ErrorClass: "auth", Replayable: true, Attempts: 1,
		FirstFailureAt: time.Now().UTC().Truncate(time.Millisecond), LastFailureAt: time.Now().UTC().Truncate(time.Millisecond),
		TenantID: "acme", ProfileID: "p7", OriginalValueSize: 5}
	dv, err := s.Codec.Encode(schemas.DeadLetter, dead.Native())
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, kafka.Message{Topic: s.Topics.DeadLetters, Key: []byte(dead.ID), Value: dv})

	v, err := a.Follow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(p EnrichmentPage) []string {
		var out []string
		for _, r := range p.Rows {
			out = append(out, r.ProfileID)
		}
		return out
	}
	page, err := v.Enrichments("acme", EnrichmentQuery{Limit: 2})
	if err != nil || !slices.Equal(ids(page), []string{"p1", "p2"}) || page.All != 4 || page.Matching != 4 || page.Counts[schemas.StatusEnriched] != 2 {
		t.Fatalf("first page by profile id: %v %+v, %v", ids(page), page, err)
	}
	if page, _ = v.Enrichments("acme", EnrichmentQuery{Status: "enriched", Sort: SortCompany, Desc: true}); !slices.Equal(ids(page), []string{"p3", "p1"}) {
		t.Errorf("ENRICHED by company, descending: %v", ids(page))
	}
	if page, _ = v.Enrichments("acme", EnrichmentQuery{Search: "P4"}); !slices.Equal(ids(page), []string{"p4"}) || page.Rows[0].SkipReason != processor.ReasonMissingName {
		t.Errorf("search p4: %+v", page.Rows)
	}
	if page, _ = v.Enrichments("acme", EnrichmentQuery{Offset: 3}); !slices.Equal(ids(page), []string{"p4"}) {
		t.Errorf("offset 3: %v", ids(page))
	}
	if _, err := v.Enrichments("globex", EnrichmentQuery{}); !errors.Is(err, ErrUnknownTenant) {
		t.Errorf("a tenant the control topic never saw: %v", err)
	}
	if _, err := v.Enrichments("acme", EnrichmentQuery{Sort: "secret"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown sort: %v", err)
	}
	if e, err := v.Enrichment(ctx, "acme", "p3"); err != nil || e.Company.Name != "Gamma" || e.InputFingerprint != "fp-p3" {
		t.Errorf("one enrichment whole: %+v, %v", e, err)
	}
	// The one-shot read agrees with the view.
	if all, err := a.Enrichments(ctx, "acme"); err != nil || len(all) != 4 || all[0].ProfileID != "p1" {
		t.Errorf("Admin.Enrichments: %d rows, %v", len(all), err)
	}

	// A withdrawal and a new enrichment reach the view.
	write(t, s, kafka.Message{Topic: s.Topics.Enriched, Key: []byte("acme/p1")}, en("acme", "p0", schemas.StatusEnriched, "Zero"))
	retrytest.Until(t, 20*time.Second, func() (bool, string) {
		page, _ := v.Enrichments("acme", EnrichmentQuery{})
		return slices.Equal(ids(page), []string{"p0", "p2", "p3", "p4"}), fmt.Sprintf("after a tombstone of p1 and a new p0: %v", ids(page))
	})

	letters, err := v.DeadLetters(Filter{Tenant: "acme", Reasons: []string{"leadspace.unauthorized"}})
	if err != nil || len(letters.Letters) != 1 || letters.Letters[0].Receipt != nil {
		t.Fatalf("dead letters: %+v, %v", letters, err)
	}
	plan, err := a.PlanReplay(ctx, Filter{Tenant: "acme"}, ReplayOptions{})
	if err != nil || plan.Summary(true).Replayed != 1 {
		t.Fatalf("replay plan: %+v, %v", plan, err)
	}
	sum, err := a.Replay(ctx, plan, "carol", nil)
	if err != nil || sum.Replayed != 1 {
		t.Fatalf("replay: %+v, %v", sum, err)
	}
	retrytest.Until(t, 20*time.Second, func() (bool, string) {
		l, _ := v.DeadLetters(Filter{Tenant: "acme"})
		r := l.Letters[0].Receipt
		return r != nil && r.By == "carol" && r.ReplayID == sum.ReplayID && r.Count == 1, fmt.Sprintf("receipt %+v", r)
	})
	if again, err := a.PlanReplay(ctx, Filter{Tenant: "acme"}, ReplayOptions{}); err != nil || again.ToReplay() != 0 || again.Summary(true).AlreadyReplayed != 1 {
		t.Fatalf("the same replay again: %+v, %v", again, err)
	}
}
