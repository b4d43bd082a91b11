package processor

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the processor's Prometheus series. Labels carry tenants,
// partitions and stable reason codes only: never tokens, never profile data.
type metrics struct {
	outcomes       *prometheus.CounterVec
	records        *prometheus.CounterVec
	committed      *prometheus.CounterVec
	ready          prometheus.Gauge
	generation     prometheus.Gauge
	deferred       prometheus.Counter
	panics         prometheus.Counter
	restoreSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, p *Processor) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "enricher", Name: "events_total",
			Help: "Input events by tenant, outcome (enriched, not_matched, skipped, dead_letter, tombstone, unchanged, superseded, ignored) and reason.",
		}, []string{"tenant", "outcome", "reason"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "enricher", Name: "leadspace_records_total",
			Help: "Records Leadspace accepted, by tenant, every attempt counted; each may cost a credit.",
		}, []string{"tenant"}),
		committed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "enricher", Name: "commits_total", Help: "Offset commits by result.",
		}, []string{"result"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "enricher", Name: "ready", Help: "1 once the control and status tables caught up and profiles are processed.",
		}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "enricher", Name: "group_generation", Help: "The consumer group generation this member works in.",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "enricher", Name: "deferred_total",
			Help: "Inputs left for later because their Leadspace program was stalled (re-read once it recovers).",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "enricher", Name: "panics_total", Help: "Inputs whose processing panicked; each went to the dead letter topic.",
		}),
		restoreSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "enricher", Name: "partition_restore_seconds",
			Help:    "Time to restore a newly assigned partition's table from enriched-company and the DLQ.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.outcomes, m.records, m.committed, m.ready, m.generation, m.deferred, m.panics, m.restoreSeconds,
			&ownershipCollector{p: p})
	}
	return m
}

// ownershipCollector reports, at scrape time, what the member owns and how
// long each owned partition has not advanced while it had work: the signs
// of a stalled group that issue reports come from.
type ownershipCollector struct{ p *Processor }

var (
	descOwned = prometheus.NewDesc("enricher_partitions_owned", "Input partitions this member owns.", nil, nil)
	descStall = prometheus.NewDesc("enricher_partition_stalled_seconds",
		"Seconds since the owned partition's commit point last advanced while it had work (0 when idle).", []string{"partition"}, nil)
	descMembers = prometheus.NewDesc("enricher_group_members", "Members of the consumer group in this generation.", nil, nil)
	descWindow  = prometheus.NewDesc("enricher_window_in_flight", "Inputs in the window (fetched, not finished).", nil, nil)
	descBytes   = prometheus.NewDesc("enricher_window_in_flight_bytes", "Memory the inputs in the window account for.", nil, nil)
	descLag     = prometheus.NewDesc("enricher_partition_deferred", "Inputs of the partition deferred for a stalled program.", []string{"partition"}, nil)
	// Consumer lag as this member sees it, so an alert needs no exporter
	// beside the service: the partition's end at the last fetch minus the
	// commit point.
	descConsumerLag = prometheus.NewDesc("enricher_partition_lag",
		"Inputs of the owned partition not yet committed: its end at the last fetch minus the commit point.", []string{"partition"}, nil)
	descRunScope = prometheus.NewDesc("enricher_run_scope_records",
		"Profiles in scope of the tenant's latest Run on the partitions this member owns (scopes still being read count 0).", []string{"tenant"}, nil)
	descRunDone = prometheus.NewDesc("enricher_run_done_records",
		"Profiles of the tenant's latest Run finished on the partitions this member owns.", []string{"tenant"}, nil)
)

func (c *ownershipCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOwned, descStall, descMembers, descWindow, descBytes, descLag, descConsumerLag, descRunScope, descRunDone} {
		ch <- d
	}
}

func (c *ownershipCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	workers := p.ownedPartitions()
	p.mu.Lock()
	members := p.owned.members
	p.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descOwned, prometheus.GaugeValue, float64(len(workers)))
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(members))
	now := time.Now()
	for _, w := range workers {
		label := strconv.Itoa(w.id)
		stalled, deferred := w.stalled(now)
		ch <- prometheus.MustNewConstMetric(descStall, prometheus.GaugeValue, stalled.Seconds(), label)
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(deferred), label)
		if lag, ok := w.lag(); ok {
			ch <- prometheus.MustNewConstMetric(descConsumerLag, prometheus.GaugeValue, float64(lag), label)
		}
	}
	scope, done := map[string]int64{}, map[string]int64{}
	for _, w := range workers {
		w.addRuns(scope, done)
	}
	for tenant := range scope {
		ch <- prometheus.MustNewConstMetric(descRunScope, prometheus.GaugeValue, float64(scope[tenant]), tenant)
		ch <- prometheus.MustNewConstMetric(descRunDone, prometheus.GaugeValue, float64(done[tenant]), tenant)
	}
	if p.window != nil {
		events, bytes := p.window.InFlight()
		ch <- prometheus.MustNewConstMetric(descWindow, prometheus.GaugeValue, float64(events))
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(bytes))
	}
}
