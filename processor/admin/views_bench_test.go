package admin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// benchViews is a Views holding one tenant with n current enrichments,
// applied as the follower applies records (no broker in the measurement).
func benchViews(b *testing.B, n int) *Views {
	b.Helper()
	s, err := embedded.Start(context.Background(), embedded.Options{Programs: []simulator.ProgramConfig{{ID: "bench", Tokens: []string{"tok-bench"}}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	a := &Admin{cfg: Config{Topics: s.Topics}, codec: s.Codec}
	v := &Views{a: a, control: controlplane.NewTable(func(string, string) (string, error) { return "unresolved", nil }),
		refresh: map[string]*schemas.Control{}, status: map[string]schemas.Status{}, enriched: map[string]*tenantRows{},
		letters: map[string]*DeadLetter{}, receipts: map[string]Receipt{}}
	ev := schemas.Control{TenantID: "acme", EventID: "c1", Sequence: 1, IssuedAt: time.Now().UTC().Truncate(time.Millisecond), IssuedBy: "bench",
		Connection: &schemas.Connection{DisplayName: "Leadspace", TokenRef: "env:LEADSPACE_TOKEN_ACME"}}
	native, err := ev.Native()
	if err != nil {
		b.Fatal(err)
	}
	cv, err := s.Codec.Encode(schemas.ControlEvent, native)
	if err != nil {
		b.Fatal(err)
	}
	v.applyControl(kafka.Message{Key: []byte(ev.Key()), Value: cv})
	statuses := []string{schemas.StatusEnriched, schemas.StatusEnriched, schemas.StatusNotMatched, schemas.StatusSkipped}
	for i := range n {
		// Keys in the order of a partitioned topic: not sorted.
		id := fmt.Sprintf("p%06d", (i*7919)%n)
		v.applyEnriched(enrichedRecord(b, s.Codec, s.Topics.Enriched, "acme", id, statuses[i%len(statuses)], fmt.Sprint("Company ", i%977)))
	}
	if _, known := v.Tenant("acme"); !known {
		b.Fatal("the tenant is not known to the views")
	}
	return v
}

// BenchmarkViewsEnrichments is a console page of a tenant with 100,000
// current enrichments: go test ./processor/admin -run '^$' -bench Views
func BenchmarkViewsEnrichments(b *testing.B) {
	v := benchViews(b, 100_000)
	if p, err := v.Enrichments("acme", EnrichmentQuery{Limit: 50}); err != nil || p.All != 100_000 || len(p.Rows) != 50 {
		b.Fatalf("%d of %d rows, %v", len(p.Rows), p.All, err)
	}
	for _, c := range []struct {
		name string
		q    EnrichmentQuery
	}{
		{"first page", EnrichmentQuery{Limit: 50}},
		{"page 1000", EnrichmentQuery{Offset: 50_000, Limit: 50}},
		{"status filter", EnrichmentQuery{Status: schemas.StatusNotMatched, Offset: 10_000, Limit: 50}},
		{"search", EnrichmentQuery{Search: "p0999", Limit: 50}},
		{"by company desc", EnrichmentQuery{Sort: SortCompany, Desc: true, Offset: 20_000, Limit: 50}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Enrichments("acme", c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("one enrichment", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Enrichment(context.Background(), "acme", "p050000"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Status("acme"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
