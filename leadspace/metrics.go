package leadspace

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// metrics are labelled by program key (a short hash, never the token). A
// nil *metrics records nothing, so call sites need no checks.
type metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	records     *prometheus.CounterVec
	results     *prometheus.CounterVec
	breaker     *prometheus.GaugeVec
	limitTPS    *prometheus.GaugeVec
	bulkRecords prometheus.Histogram
	bulkPolls   *prometheus.HistogramVec
	bulkCycle   *prometheus.HistogramVec
	turnaround  *prometheus.GaugeVec
	capacityG   *prometheus.GaugeVec
	pendingG    *prometheus.GaugeVec
	retries     *prometheus.CounterVec
	resumedC    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadspace_requests_total",
			Help: "Leadspace transactions by endpoint and outcome (ok or a reason code).",
		}, []string{"program", "endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadspace_request_duration_seconds",
			Help:    "Duration of Leadspace HTTP exchanges.",
			Buckets: prometheus.ExponentialBuckets(0.025, 2, 12),
		}, []string{"endpoint"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadspace_records_sent_total",
			Help: "Records sent to Leadspace (each may spend a credit).",
		}, []string{"program"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadspace_results_total",
			Help: "Per-record outcomes returned to callers: matched, not_matched or a reason code.",
		}, []string{"program", "outcome"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadspace_breaker_state",
			Help: "Circuit breaker state per program: 0 closed, 1 half-open, 2 open.",
		}, []string{"program"}),
		limitTPS: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadspace_limiter_tps",
			Help: "Current allowed transactions per second per program (AIMD).",
		}, []string{"program"}),
		bulkRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "leadspace_bulk_records",
			Help:    "Records per bulk submit.",
			Buckets: []float64{1, 5, 20, 50, 100, 200, 350, 500},
		}),
		bulkPolls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadspace_bulk_polls",
			Help:    "Polls a bulk needed until its results came (each may cost a transaction).",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24},
		}, []string{"program"}),
		bulkCycle: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadspace_bulk_cycle_seconds",
			Help:    "Time from sealing a bulk to having its results: the cycle of Little's law.",
			Buckets: prometheus.ExponentialBuckets(0.125, 2, 10),
		}, []string{"program"}),
		turnaround: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadspace_bulk_turnaround_seconds",
			Help: "Learnt bulk turnaround per program: when a bulk is first polled after its submit was accepted.",
		}, []string{"program"}),
		capacityG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadspace_program_capacity_records",
			Help: "Records a program wants queued or in flight to keep its rate busy with full bulks (Little's law).",
		}, []string{"program"}),
		pendingG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "leadspace_program_pending_records",
			Help: "Records queued or in flight per program.",
		}, []string{"program"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadspace_record_retries_total",
			Help: "Records put back into their program's queue after a retryable failure.",
		}, []string{"program"}),
		resumedC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadspace_bulks_resumed_total",
			Help: "Earlier bulks (of a process that stopped) read again instead of paying again, by result: read or gone.",
		}, []string{"program", "result"}),
	}
	// Several clients may share a registry (tests, dev mode): reuse what is there.
	var err error
	m.requests = register(reg, m.requests, &err)
	m.duration = register(reg, m.duration, &err)
	m.records = register(reg, m.records, &err)
	m.results = register(reg, m.results, &err)
	m.breaker = register(reg, m.breaker, &err)
	m.limitTPS = register(reg, m.limitTPS, &err)
	m.bulkRecords = register(reg, m.bulkRecords, &err)
	m.bulkPolls = register(reg, m.bulkPolls, &err)
	m.bulkCycle = register(reg, m.bulkCycle, &err)
	m.turnaround = register(reg, m.turnaround, &err)
	m.capacityG = register(reg, m.capacityG, &err)
	m.pendingG = register(reg, m.pendingG, &err)
	m.retries = register(reg, m.retries, &err)
	m.resumedC = register(reg, m.resumedC, &err)
	return m, err
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if err != nil && *errp == nil {
		*errp = err
	}
	return c
}

func (m *metrics) request(program string, ep endpoint, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(program, string(ep), outcome).Inc()
	if d > 0 {
		m.duration.WithLabelValues(string(ep)).Observe(d.Seconds())
	}
}

func (m *metrics) sent(program string, n int) {
	if m == nil {
		return
	}
	m.records.WithLabelValues(program).Add(float64(n))
}

func (m *metrics) bulkSize(n int) {
	if m == nil {
		return
	}
	m.bulkRecords.Observe(float64(n))
}

func (m *metrics) result(program string, res Result, err error) {
	if m == nil {
		return
	}
	outcome := "not_matched"
	switch r, ok := ReasonOf(err); {
	case ok:
		outcome = r
	case err != nil:
		outcome = "error"
	case res.Matched:
		outcome = "matched"
	}
	m.results.WithLabelValues(program, outcome).Inc()
}

func (m *metrics) breakerState(program string, s gobreaker.State) {
	if m == nil {
		return
	}
	v := map[gobreaker.State]float64{gobreaker.StateClosed: 0, gobreaker.StateHalfOpen: 1, gobreaker.StateOpen: 2}[s]
	m.breaker.WithLabelValues(program).Set(v)
}

func (m *metrics) tps(program string, v float64) {
	if m == nil {
		return
	}
	m.limitTPS.WithLabelValues(program).Set(v)
}

// bulkDone records a bulk whose results came: how many polls it took, its
// cycle, and the turnaround estimate now.
func (m *metrics) bulkDone(program string, polls int, cycle, turnaround time.Duration) {
	if m == nil {
		return
	}
	m.bulkPolls.WithLabelValues(program).Observe(float64(polls))
	m.bulkCycle.WithLabelValues(program).Observe(cycle.Seconds())
	m.turnaround.WithLabelValues(program).Set(turnaround.Seconds())
}

func (m *metrics) capacity(program string, n int) {
	if m == nil {
		return
	}
	m.capacityG.WithLabelValues(program).Set(float64(n))
}

func (m *metrics) pending(program string, n int) {
	if m == nil {
		return
	}
	m.pendingG.WithLabelValues(program).Set(float64(n))
}

func (m *metrics) retry(program string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(program).Inc()
}

// resumed counts an earlier bulk read again: ok when its results came.
func (m *metrics) resumed(program string, ok bool) {
	if m == nil {
		return
	}
	result := "read"
	if !ok {
		result = "gone"
	}
	m.resumedC.WithLabelValues(program, result).Inc()
}
