package processor

import "github.com/prometheus/client_golang/prometheus"

// metrics are the processor's Prometheus series. Labels carry tenants and
// stable reason codes only: never tokens, never profile data.
type metrics struct {
	outcomes  *prometheus.CounterVec
	records   *prometheus.CounterVec
	inFlight  prometheus.GaugeFunc
	committed *prometheus.CounterVec
	ready     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, inFlight func() float64) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "enricher", Name: "events_total",
			Help: "Input events by tenant, outcome (enriched, not_matched, skipped, dead_letter, tombstone, unchanged, ignored) and reason.",
		}, []string{"tenant", "outcome", "reason"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "enricher", Name: "leadspace_records_total",
			Help: "Records sent to Leadspace by tenant; each may cost a credit.",
		}, []string{"tenant"}),
		inFlight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "enricher", Name: "window_in_flight", Help: "Inputs queued or running in the window.",
		}, inFlight),
		committed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "enricher", Name: "commits_total", Help: "Offset commits by result.",
		}, []string{"result"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "enricher", Name: "ready", Help: "1 once the control table caught up and profiles are processed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.records, m.inFlight, m.committed, m.ready)
	}
	return m
}
