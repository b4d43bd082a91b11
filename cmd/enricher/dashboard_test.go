package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/segmentio/kafka-go"
	"gopkg.in/yaml.v3"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// The Grafana dashboard and the alert rules are only as good as the series
// they name: a renamed metric leaves a panel empty and an alert silent
// without any error. These tests parse every PromQL expression (with
// Prometheus's own parser) and hold the series to what a running service
// exports on /metrics.

const (
	dashboardPath  = "../../deploy/grafana/enricher-dashboard.json"
	alertsPath     = "../../deploy/prometheus/alerts.yaml"
	alertTestsPath = "../../deploy/prometheus/alerts_test.yaml"
)

// Series Prometheus makes itself for every target, not the service.
var prometheusSeries = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// grafanaVars are Grafana's variables, replaced by something PromQL parses.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// seriesOf is every metric name a PromQL expression selects.
func seriesOf(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(expr))
	if err != nil {
		return nil, err
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					name = m.Value
				}
			}
			out = append(out, name)
		}
		return nil
	})
	return out, nil
}

var labelValues = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)

// dashboardSeries maps each series the dashboard names to where.
func dashboardSeries(t testing.TB, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
			Panels []json.RawMessage `json:"panels"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string][]string{}
	panels := 0
	for _, p := range d.Panels {
		if p.Type == "row" {
			if len(p.Panels) > 0 {
				t.Errorf("%s: row %q is collapsed; this test reads only open rows", path, p.Title)
			}
			continue
		}
		panels++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names, err := seriesOf(tg.Expr)
			if err != nil {
				t.Errorf("panel %q: %q does not parse: %v", p.Title, tg.Expr, err)
			}
			for _, n := range names {
				out[n] = append(out[n], "panel "+p.Title)
			}
		}
	}
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is no label_values(metric, label)", v.Name, q)
			continue
		}
		out[m[1]] = append(out[m[1]], "variable "+v.Name)
	}
	if panels == 0 {
		t.Errorf("%s: no panels", path)
	}
	return out
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// alertSeries maps each series the rules name to the alerts naming it, and
// wants every alert to carry a summary, a description and a runbook.
func alertSeries(t testing.TB, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string][]string{}
	recorded := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if r.Alert != "" && strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
			names, err := seriesOf(r.Expr)
			if err != nil {
				t.Errorf("rule %s%s: %q does not parse: %v", r.Alert, r.Record, r.Expr, err)
			}
			for _, n := range names {
				out[n] = append(out[n], "alert "+r.Alert+r.Record)
			}
		}
	}
	for n := range recorded {
		delete(out, n)
	}
	if len(out) == 0 {
		t.Errorf("%s: no series", path)
	}
	return out
}

// exported is every series name in a /metrics scrape; histograms and
// summaries add their _bucket, _sum and _count.
func exported(t testing.TB, scrape string) map[string]bool {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(scrape))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	out := map[string]bool{}
	for name, f := range families {
		out[name] = true
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case "SUMMARY":
			out[name+"_sum"], out[name+"_count"] = true, true
		}
	}
	return out
}

// gaugeSums adds up each gauge's series in a scrape.
func gaugeSums(t testing.TB, scrape string) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(scrape))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			if g := m.GetGauge(); g != nil {
				out[name] += g.GetValue()
			}
		}
	}
	return out
}

// checkSeries reports each named series the service does not export.
func checkSeries(t testing.TB, what string, named map[string][]string, have map[string]bool) {
	t.Helper()
	var missing []string
	for n, where := range named {
		if !have[n] && !prometheusSeries[n] {
			missing = append(missing, fmt.Sprintf("%s (%s)", n, strings.Join(where, ", ")))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("%s names %s, which the service does not export", what, m)
	}
}

// The check must be able to fail: a renamed series is reported, with the
// dashboard's and the rules' own series as what is exported.
func TestDashboardAndAlertChecksFail(t *testing.T) {
	have := map[string]bool{}
	for n := range dashboardSeries(t, dashboardPath) {
		have[n] = true
	}
	for n := range alertSeries(t, alertsPath) {
		have[n] = true
	}
	for _, tc := range []struct{ path, from, to, want string }{
		{dashboardPath, "enricher_partition_lag{", "enricher_consumer_lag{", "names enricher_consumer_lag (panel Consumer lag)"},
		{dashboardPath, "label_values(enricher_ready, job)", "label_values(enricher_readiness, job)", "enricher_readiness (variable job)"},
		{alertsPath, "max by (job, program) (leadspace_breaker_state)", "max by (job, program) (leadspace_breaker_status)", "leadspace_breaker_status (alert EnricherBreakerOpen)"},
		{alertsPath, "enricher_events_total{outcome=\"dead_letter\"}[15m]", "enricher_dead_letters_total[15m]", "enricher_dead_letters_total (alert EnricherDeadLettersRising)"},
	} {
		b, err := os.ReadFile(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.from) {
			t.Fatalf("%s no longer contains %q; update this test", tc.path, tc.from)
		}
		path := filepath.Join(t.TempDir(), filepath.Base(tc.path))
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), tc.from, tc.to, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{TB: t}
		rec.run(func() {
			if tc.path == dashboardPath {
				checkSeries(rec, "the dashboard", dashboardSeries(rec, path), have)
			} else {
				checkSeries(rec, "the alert rules", alertSeries(rec, path), have)
			}
		})
		if !rec.found(tc.want) {
			t.Errorf("%s -> %s: the check did not report %q; it reported %q", tc.from, tc.to, tc.want, rec.errs)
		}
	}
	rec := &recorder{TB: t}
	rec.run(func() {
		if _, err := seriesOf("sum(rate(enricher_events_total[5m])"); err == nil {
			rec.Errorf("an unbalanced expression parsed")
		}
	})
	if len(rec.errs) > 0 {
		t.Error(rec.errs)
	}
}

// promtool, a checker we did not write, validates the rules and runs their
// unit tests (CI installs it with Debian's prometheus package).
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); make check-deploy runs it in CI")
	}
	for _, args := range [][]string{{"check", "rules", alertsPath}, {"test", "rules", alertTestsPath}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var httpAddrLog = regexp.MustCompile(`"msg":"serving metrics and probes","addr":"([^"]+)"`)

// One running service feeds three checks: the headers on each topic against
// the AsyncAPI document, and its /metrics against the dashboard and the
// rules. It is driven through what those name: enrichments, bad inputs
// (dead letters), a replay (receipts, replayed inputs), bulk calls (the
// journal), 429s, and a Run (its progress gauges).
func TestAsyncAPIDashboardAndAlertsMatchARunningService(t *testing.T) {
	stack := newStack(t)
	addTenant(t, stack, "acme", "env:LEADSPACE_TOKEN_ACME", true)
	stack.Simulator.InjectFault(simulator.Fault{Status: 429, Count: 2})
	var ps []schemas.Profile
	for i := 0; i < 120; i++ {
		ps = append(ps, company("acme", fmt.Sprintf("c%03d", i), fmt.Sprintf("Contoso %d", i), fmt.Sprintf("contoso%d.example.org", i)))
	}
	writeProfiles(t, stack, ps)
	bad := []kafka.Message{{Topic: stack.Topics.Profiles, Key: []byte("acme/bad-1"), Value: []byte("not avro")},
		{Topic: stack.Topics.Profiles, Key: []byte("acme/bad-2"), Value: []byte{0, 0, 0, 0, 99, 1}}}
	produce(t, stack, func(ctx context.Context, prod *processor.Producer) error { return prod.Write(ctx, bad...) })

	env := cliEnv()
	env["ENRICHER_LEADSPACE_BULK_THRESHOLD"] = "2" // bulks, so that the journal is written
	svc := startRun(t, stack, env)
	processedAll(t, stack, svc)
	runOK(t, stack, "refresh", "--tenant", "acme", "--force")
	retrytest.Until(t, 90*time.Second, func() (bool, string) {
		v := statusOf(t, stack, "acme")
		return v.Run != nil && v.Run.Outcome == schemas.RunCompleted, fmt.Sprintf("run %+v", v.Run)
	})
	runOK(t, stack, "replay", "--tenant", "acme", "--include-unreplayable")
	processedAll(t, stack, svc)

	m := httpAddrLog.FindStringSubmatch(svc.logs.String())
	if m == nil {
		t.Fatalf("no HTTP address in the logs:\n%s", svc.logs.String())
	}
	res, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", res.StatusCode, err)
	}
	have := exported(t, string(body))
	// The gauges this issue added say what happened: nothing left to
	// commit, and the Run done over its whole scope.
	sums := gaugeSums(t, string(body))
	if sums["enricher_partition_lag"] != 0 || sums["enricher_run_scope_records"] < 100 ||
		sums["enricher_run_done_records"] != sums["enricher_run_scope_records"] {
		t.Errorf("after everything was committed and the Run completed: lag %v, Run scope %v, done %v",
			sums["enricher_partition_lag"], sums["enricher_run_scope_records"], sums["enricher_run_done_records"])
	}

	t.Run("AsyncAPI headers on each topic", func(t *testing.T) {
		doc := readContract(t, loadAsyncAPI(t, asyncAPIPath), filepath.Dir(asyncAPIPath))
		for _, topic := range sortedTopics(doc) {
			seen := map[string]int{}
			for _, r := range records(t, stack, topic) {
				for _, h := range r.Headers {
					seen[h.Key]++
				}
			}
			for h, n := range seen {
				if !doc[topic].headers[h] {
					t.Errorf("topic %s: the service wrote header %s (%d records); the AsyncAPI document does not name it", topic, h, n)
				}
			}
			t.Logf("%s: headers %v", topic, seen)
		}
		// The scenario reached what the document describes.
		for topic, want := range map[string][]string{stack.Topics.Enriched: {processor.HeaderState},
			stack.Topics.DeadLetters: {processor.HeaderErrReason, headerReceipt}, stack.Topics.Profiles: {headerReplayOf}} {
			n := 0
			for _, r := range records(t, stack, topic) {
				for _, h := range r.Headers {
					if h.Key == want[0] || h.Key == want[len(want)-1] {
						n++
					}
				}
			}
			if n == 0 {
				t.Errorf("the scenario wrote none of %v on %s: it no longer exercises them", want, topic)
			}
		}
		if len(records(t, stack, stack.Topics.Journal)) == 0 {
			t.Error("the scenario journaled no bulk")
		}
	})
	t.Run("dashboard series are exported", func(t *testing.T) {
		checkSeries(t, "the dashboard", dashboardSeries(t, dashboardPath), have)
	})
	t.Run("alert rule series are exported", func(t *testing.T) {
		checkSeries(t, "the alert rules", alertSeries(t, alertsPath), have)
	})
	svc.stop(t)
}
