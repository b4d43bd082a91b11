package main

import (
	"context"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// sample is what the watcher saw at one moment.
type sample struct {
	at time.Time
	// ok: the broker answered every admin call of this sample.
	ok        bool
	committed map[int]int64 // per input partition; -1 = nothing committed
	end       map[int]int64 // log end offset per input partition
	state     string        // DescribeGroups: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead
	members   int
	assigned  map[int]bool // input partitions assigned to some member
	alive     int          // enricher processes running
}

// outSeen is one output record as the tail saw it.
type outSeen struct {
	seen      time.Time // when the harness read it
	partition int       // lineage.source_partition: the input partition it answers
	tenant    string
	status    string
}

// watcher samples the group's progress every interval and tails
// enriched-company, so that stalls and recovery can be timed afterwards.
type watcher struct {
	s        *stack
	parts    []int
	group    string
	interval time.Duration

	mu      sync.Mutex
	samples []sample
	outs    []outSeen
	byTen   map[string]int // outputs per tenant so far (records, not distinct)
}

func newWatcher(s *stack, group string, parts []int) *watcher {
	return &watcher{s: s, parts: parts, group: group, interval: 500 * time.Millisecond, byTen: map[string]int{}}
}

// run samples and tails until ctx ends.
func (w *watcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	outParts, _ := partitionsOf(ctx, w.s.client, topicEnriched)
	for _, p := range outParts {
		wg.Go(func() { w.tail(ctx, p) })
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.sampleOnce(ctx)
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
		}
	}
}

func (w *watcher) sampleOnce(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sm := sample{at: time.Now(), ok: true, assigned: map[int]bool{}, alive: len(w.s.alive())}
	var err error
	if sm.committed, err = committedOffsets(cctx, w.s.client, w.group, topicProfiles, w.parts); err != nil {
		sm.ok = false
	}
	if sm.end, err = endOffsets(cctx, w.s.client, topicProfiles, w.parts); err != nil {
		sm.ok = false
	}
	resp, err := w.s.client.DescribeGroups(cctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{w.group}})
	if err != nil || len(resp.Groups) == 0 {
		sm.ok = false
	} else {
		g := resp.Groups[0]
		sm.state, sm.members = g.GroupState, len(g.Members)
		for _, m := range g.Members {
			for _, t := range m.MemberAssignments.Topics {
				if t.Topic == topicProfiles {
					for _, p := range t.Partitions {
						sm.assigned[p] = true
					}
				}
			}
		}
	}
	w.mu.Lock()
	w.samples = append(w.samples, sm)
	w.mu.Unlock()
}

func (w *watcher) tail(ctx context.Context, p int) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{w.s.bootstrap}, Topic: topicEnriched, Partition: p,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if m.Value == nil {
			continue
		}
		e, err := w.s.codec.DecodeEnriched(ctx, m.Value)
		if err != nil {
			continue
		}
		w.mu.Lock()
		w.outs = append(w.outs, outSeen{seen: time.Now(), partition: int(e.Lineage.SourcePartition), tenant: e.TenantID, status: e.Status})
		w.byTen[e.TenantID]++
		w.mu.Unlock()
	}
}

// outputs returns how many output records of tenant the tail has seen.
func (w *watcher) outputs(tenant string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byTen[tenant]
}

func (w *watcher) last() (sample, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.samples) - 1; i >= 0; i-- {
		if w.samples[i].ok {
			return w.samples[i], true
		}
	}
	return sample{}, false
}

// caughtUp: the last good sample has every input partition committed to its end.
func (w *watcher) caughtUp() bool {
	sm, ok := w.last()
	if !ok || time.Since(sm.at) > 3*w.interval {
		return false
	}
	for _, p := range w.parts {
		if sm.committed[p] < sm.end[p] {
			return false
		}
	}
	return true
}

// snapshot copies what was seen, for the analysis.
func (w *watcher) snapshot() ([]sample, []outSeen) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sample(nil), w.samples...), append([]outSeen(nil), w.outs...)
}

// progress is the issue 11 view of a run, computed from the samples.
type progress struct {
	// LongestStallS: the longest stretch in which at least one instance was
	// alive, some input partition had uncommitted records (committed < end),
	// and no input partition advanced — neither its committed offset nor a
	// new output answering it (lineage.source_partition) — measured between
	// the last sample that saw an advance and the next one that did (or the
	// end of the run). Samples the broker did not answer count as no advance.
	LongestStallS float64 `json:"longest_stall_s"`
	StallFromS    float64 `json:"stall_from_s"` // start of that stretch, seconds since the watch began
	// RecoveredAfterLastKillS: from the last kill until the first sample
	// where the group is Stable with every input partition assigned, and
	// every input partition has advanced since the kill or has nothing left
	// to do (committed = end). -1: not within the run.
	RecoveredAfterLastKillS float64 `json:"recovered_after_last_kill_s"`
}

func computeProgress(samples []sample, outs []outSeen, parts []int, lastKill time.Time) progress {
	pr := progress{RecoveredAfterLastKillS: -1}
	if len(samples) == 0 {
		return pr
	}
	t0 := samples[0].at
	// Outputs per partition, by the time they were seen.
	oi := 0
	lastCommitted := map[int]int64{}
	lastAdvance := map[int]time.Time{}
	stallStart, prevAt := time.Time{}, samples[0].at
	pending := false
	for _, sm := range samples {
		advanced := false
		for oi < len(outs) && !outs[oi].seen.After(sm.at) {
			advanced = true
			lastAdvance[outs[oi].partition] = outs[oi].seen
			oi++
		}
		if sm.ok {
			pending = false
			for _, p := range parts {
				c := sm.committed[p]
				if c > lastCommitted[p] {
					if _, seen := lastCommitted[p]; seen {
						advanced = true
						lastAdvance[p] = sm.at
					}
				}
				if _, seen := lastCommitted[p]; !seen || c > lastCommitted[p] {
					lastCommitted[p] = c
				}
				if c < sm.end[p] {
					pending = true
				}
			}
		}
		stalled := !advanced && sm.alive > 0 && pending
		switch {
		case stalled && stallStart.IsZero():
			stallStart = prevAt // the last moment something advanced
		case !stalled && !stallStart.IsZero():
			if d := sm.at.Sub(stallStart).Seconds(); d > pr.LongestStallS {
				pr.LongestStallS, pr.StallFromS = d, stallStart.Sub(t0).Seconds()
			}
			stallStart = time.Time{}
		}
		if !lastKill.IsZero() && pr.RecoveredAfterLastKillS < 0 && sm.at.After(lastKill) && sm.ok && sm.state == "Stable" {
			all := true
			for _, p := range parts {
				if !sm.assigned[p] || (!lastAdvance[p].After(lastKill) && sm.committed[p] < sm.end[p]) {
					all = false
					break
				}
			}
			if all {
				pr.RecoveredAfterLastKillS = sm.at.Sub(lastKill).Seconds()
			}
		}
		prevAt = sm.at
	}
	if !stallStart.IsZero() {
		if d := samples[len(samples)-1].at.Sub(stallStart).Seconds(); d > pr.LongestStallS {
			pr.LongestStallS, pr.StallFromS = d, stallStart.Sub(t0).Seconds()
		}
	}
	return pr
}
