package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// BenchmarkConsolePages renders the console's pages of a tenant with
// 100,000 current enrichments, whole (session check, view, template), and
// reports each page's p99. The enrichments reach the console as the
// service writes them: on the enriched topic, followed into memory.
//
//	go test ./processor/console -run '^$' -bench ConsolePages -benchtime 200x
func BenchmarkConsolePages(b *testing.B) {
	e, c := withEnrichments(b)
	h := e.console.Handler()
	site, _ := url.Parse(e.url)
	cookies := c.hc.Jar.Cookies(site)
	if len(cookies) == 0 {
		b.Fatal("no session cookie")
	}
	base := "/t/" + tenantA
	benchPages(b, h, cookies, []page{
		{"hub", base + "/"},
		{"my enrichments", base + "/enrichments"},
		{"data first page", base + "/data"},
		{"data page 1000", base + "/data?page=1000"},
		{"data by company desc", base + "/data?sort=company&desc=1&page=400"},
		{"data filtered", base + "/data?status=NOT_MATCHED&page=100"},
		{"data search", base + "/data?q=p0999"},
		{"profile", base + "/data/p050000"},
		{"run", base + "/run"},
		{"run progress", base + "/run/progress.json"},
	})
}

// withEnrichments is a console whose tenant A has 100,000 current
// enrichments, followed from the enriched topic, and its admin signed in.
func withEnrichments(b *testing.B) (*env, *client) {
	e := newEnv(b, envOpt{noService: true})
	e.setUp(tenantA, tokenA)
	e.writeEnrichments(tenantA, 100_000)
	c := e.signIn(admins(tenantA))
	retrytest.Wait(b, 2*time.Minute, "the console to follow 100,000 enrichments", func() bool {
		return strings.Contains(c.get("/t/"+tenantA+"/data").body, `id="matched">100,000<`)
	})
	return e, c
}

// page is a console page to time.
type page struct{ name, path string }

// benchPages times each page, whole (session check, view, template), as a
// sub-benchmark, and reports its p99 and p50.
func benchPages(b *testing.B, h http.Handler, cookies []*http.Cookie, pages []page) {
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, p.path, nil)
				for _, ck := range cookies {
					req.AddCookie(ck)
				}
				w := httptest.NewRecorder()
				start := time.Now()
				h.ServeHTTP(w, req)
				took = append(took, time.Since(start))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d", p.path, w.Code)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
		})
	}
}

// BenchmarkConsoleManyTenants: 500 tenants connected, each with its own
// token, consent and mapping. An operator's home lists them all; a
// tenant's hub shows one. Each page's p99 is reported.
//
//	go test ./processor/console -run '^$' -bench ConsoleManyTenants -benchtime 100x
func BenchmarkConsoleManyTenants(b *testing.B) {
	const n = 500
	var programs []simulator.ProgramConfig
	for i := range n {
		id := fmt.Sprintf("tenant-%03d", i)
		programs = append(programs, simulator.ProgramConfig{ID: id, Tokens: []string{"token-of-" + id}, TPS: 1000, Credits: simulator.Unlimited})
	}
	e := newEnv(b, envOpt{noService: true, programs: programs})
	for _, p := range programs {
		e.setUp(p.ID, p.Tokens[0])
	}
	c := e.signIn(operator())
	retrytest.Wait(b, 2*time.Minute, "the console to follow 500 tenants", func() bool {
		return strings.Count(c.get("/").body, `href="/t/tenant-`) >= n
	})
	h := e.console.Handler()
	site, _ := url.Parse(e.url)
	cookies := c.hc.Jar.Cookies(site)
	benchPages(b, h, cookies, []page{
		{"home of 500 tenants", "/"},
		{"hub", "/t/tenant-250/"},
		{"my enrichments", "/t/tenant-250/enrichments"},
	})
}

// writeEnrichments writes n current enrichments of a tenant to the
// enriched topic, as the service would.
func (e *env) writeEnrichments(tenant string, n int) {
	e.t.Helper()
	statuses := []string{schemas.StatusEnriched, schemas.StatusEnriched, schemas.StatusEnriched, schemas.StatusNotMatched}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var batch []kafka.Message
	flush := func() {
		if err := e.prod.Write(context.Background(), batch...); err != nil {
			e.t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("p%06d", i)
		en := schemas.Enriched{EventID: fmt.Sprintf("ev-%d", i), EnrichmentID: fmt.Sprintf("en-%d", i), TenantID: tenant, ProfileID: id,
			Status: statuses[i%len(statuses)], Sent: &schemas.Sent{Name: fmt.Sprintf("Company %d", i)}, InputFingerprint: "fp", EnrichedAt: now,
			Lineage: schemas.Lineage{SourceTopic: e.stack.Topics.Profiles, SourceOffset: int64(i)}}
		if en.Status == schemas.StatusEnriched {
			emp := int64(10 + i%5000)
			en.Confidence = []string{"HIGH", "MEDIUM", "LOW"}[i%3]
			en.Company = &schemas.Firmographics{Name: fmt.Sprintf("Company %d Inc", i%977), Industry: "Retail", Employees: &emp,
				Address: &schemas.Address{City: "Seattle", Country: "US"}}
		}
		v, err := e.stack.Codec.Encode(schemas.EnrichedCompany, en.Native())
		if err != nil {
			e.t.Fatal(err)
		}
		batch = append(batch, kafka.Message{Topic: e.stack.Topics.Enriched, Key: []byte(tenant + "/" + id), Value: v})
		if len(batch) == 5000 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// BenchmarkConsoleRunPreview is the credits preview of a Run of a tenant
// with 100,000 current enrichments: like `enricher refresh --dry-run` it
// reads the tenant's profiles and enrichments from the topics, so it is a
// page the admin asks for (Run…), not a view read.
//
//	go test ./processor/console -run '^$' -bench ConsoleRunPreview -benchtime 5x
func BenchmarkConsoleRunPreview(b *testing.B) {
	_, c := withEnrichments(b)
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		if a := c.get("/t/" + tenantA + "/run/preview"); a.status != http.StatusOK || !strings.Contains(a.body, `id="preview"`) {
			b.Fatalf("run page: %d", a.status)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
