package console

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// runHistory keeps every Run of every tenant, for the Run history of My
// enrichments: admin's views hold only the current Run (the status topic
// keeps one per partition), so this follows the control topic's refresh
// events and every Run progress the status topic carried.
type runHistory struct {
	codec *schemas.Codec
	auth  controlplane.Auth

	control *controlplane.Table

	mu        sync.RWMutex
	refreshes map[string][]schemas.Control
	// runs holds each Run's latest progress per partition, by tenant and
	// run id: the status topic keeps only the current Run per partition.
	runs map[string]map[string]map[int32]schemas.RunProgress

	caught sync.WaitGroup
	ready  chan struct{}
}

// newRunHistory makes an empty history; Run fills it.
func newRunHistory(codec *schemas.Codec, auth controlplane.Auth) *runHistory {
	return &runHistory{codec: codec, auth: auth,
		control:   controlplane.NewTable(func(string, string) (string, error) { return "unresolved", nil }),
		refreshes: map[string][]schemas.Control{},
		runs:      map[string]map[string]map[int32]schemas.RunProgress{},
		ready:     make(chan struct{})}
}

// Run follows the topics until ctx ends. Ready is closed once each topic
// was read to the end it had when Run started.
func (v *runHistory) Run(ctx context.Context, k processor.Kafka, topics processor.Topics) error {
	type follow struct {
		topic string
		apply func(kafka.Message)
	}
	fs := []follow{{topics.Control, v.applyControl}, {topics.Status, v.applyStatus}}
	v.caught.Add(len(fs))
	go func() {
		v.caught.Wait()
		close(v.ready)
	}()
	errc := make(chan error, len(fs))
	for _, f := range fs {
		go func() {
			var once sync.Once
			errc <- processor.Follow(ctx, k, f.topic, f.apply, func() { once.Do(v.caught.Done) })
		}()
	}
	var first error
	for range fs {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (v *runHistory) applyControl(m kafka.Message) {
	ev, err := v.control.ApplyRecord(v.codec, v.auth, m)
	if err != nil || ev == nil || ev.Refresh == nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.refreshes[ev.TenantID] = append(v.refreshes[ev.TenantID], *ev)
}

func (v *runHistory) applyStatus(m kafka.Message) {
	if m.Value == nil {
		return
	}
	s, err := v.codec.DecodeStatus(context.Background(), m.Value)
	if err != nil || !strings.HasPrefix(string(m.Key), s.TenantID+"/") {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if r := s.Run; r != nil && s.Partition != schemas.ControlPartition {
		byRun := v.runs[s.TenantID]
		if byRun == nil {
			byRun = map[string]map[int32]schemas.RunProgress{}
			v.runs[s.TenantID] = byRun
		}
		if byRun[r.RunID] == nil {
			byRun[r.RunID] = map[int32]schemas.RunProgress{}
		}
		byRun[r.RunID][s.Partition] = *r
	}
}

// RunSummary is one Run of a tenant's history.
type RunSummary struct {
	RunID        string
	RequestedAt  time.Time
	RequestedBy  string
	Force        bool
	Scheduled    bool
	CancelledBy  string
	Scope, Done  int64
	RecordsSpent int64
	FinishedAt   time.Time
	// Outcome is COMPLETED, CANCELLED, STOPPED: ... or "" while it runs or
	// before any partition started it.
	Outcome string
	Started bool
}

// Runs lists the tenant's Runs, newest first: those requested on the
// control topic and those (scheduled) only the status topic reports.
func (v *runHistory) Runs(tenant string) []RunSummary {
	v.mu.RLock()
	defer v.mu.RUnlock()
	byID := map[string]*RunSummary{}
	for _, ev := range v.refreshes[tenant] {
		r := byID[ev.Refresh.RunID]
		if r == nil {
			r = &RunSummary{RunID: ev.Refresh.RunID}
			byID[r.RunID] = r
		}
		if ev.Refresh.Cancel {
			r.CancelledBy = ev.IssuedBy
			continue
		}
		r.RequestedAt, r.RequestedBy, r.Force = ev.IssuedAt, ev.IssuedBy, ev.Refresh.Force
	}
	for id, parts := range v.runs[tenant] {
		r := byID[id]
		if r == nil {
			r = &RunSummary{RunID: id}
			byID[id] = r
		}
		r.Started = true
		done := true
		var stopped, cancelled string
		for _, p := range parts {
			if r.RequestedAt.IsZero() {
				r.RequestedAt = p.RequestedAt
			}
			r.Scheduled = p.Scheduled
			if p.Scope > 0 {
				r.Scope += p.Scope
			}
			r.Done += p.Done
			r.RecordsSpent += p.RecordsSpent
			if p.FinishedAt.After(r.FinishedAt) {
				r.FinishedAt = p.FinishedAt
			}
			switch {
			case p.Outcome == "":
				done = false
			case strings.HasPrefix(p.Outcome, schemas.RunStopped):
				stopped = p.Outcome
			case p.Outcome == schemas.RunCancelled:
				cancelled = p.Outcome
			}
		}
		if done {
			r.Outcome = cmpOr(stopped, cancelled, schemas.RunCompleted)
		}
	}
	out := make([]RunSummary, 0, len(byID))
	for _, r := range byID {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b RunSummary) int { return b.RequestedAt.Compare(a.RequestedAt) })
	return out
}

func cmpOr(vals ...string) string {
	for _, s := range vals {
		if s != "" {
			return s
		}
	}
	return ""
}
