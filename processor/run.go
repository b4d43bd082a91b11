package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/window"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// A Run (the product's "Run", `enricher refresh`) re-enriches every current
// profile of a tenant: the latest value per key of the compacted profiles
// topic, deleted profiles excluded, as of the moment the Run was requested.
// Every instance runs it on the partitions it owns, beside live traffic
// (live records go first on the shared pool). Progress lives in the status
// records of each partition, so a Run survives crashes, restarts and
// rebalances: a new owner reads the scope again (the same offsets, as of
// the same request time) and resumes after the records already done.
// Records done twice after a crash cost nothing: an answer made since the
// Run was requested (forced Run) or still fresh (stale-only) stands.

// runRequest is a Run asked for by an admin (a refresh control event) or by
// the mapping's refresh interval (scheduled).
type runRequest struct {
	id          string
	force       bool
	cancel      bool
	scheduled   bool
	requestedAt time.Time
}

// runRequests reads the tenants' latest refresh events from the control
// table.
type runRequests struct{ control *controlplane.Table }

func (r *runRequests) snapshot() map[string]runRequest {
	out := map[string]runRequest{}
	for _, st := range r.control.Snapshot() {
		if req, ok := r.control.Run(st.TenantID); ok {
			out[st.TenantID] = runRequest{id: req.ID, force: req.Force, cancel: req.Cancel, requestedAt: req.RequestedAt}
		}
	}
	return out
}

// runPass is one Run on one partition while this instance owns it.
type runPass struct {
	w           *partitionWorker
	tenant      string
	force       bool
	requestedAt time.Time
	ctx         context.Context
	stop        context.CancelFunc

	mu       sync.Mutex
	progress schemas.RunProgress
	scope    []int64        // offsets of the tenant's current profiles, ascending
	scoped   bool           // scope was read (a pass stopped before has none)
	finished map[int64]bool // done beyond the cursor
	cursor   int            // scope[:cursor] is done
	open     map[int64]bool // admitted and not done
	cost     map[int64]cost // calls and records of records beyond the cursor
	resumed  bool           // an earlier pass of this Run did part of the partition
}

// cost is what one Run record cost. It joins the Run's counts when the
// cursor passes the record, so the counts in a status record are exactly
// those of the records before its cursor: the next owner, resuming at the
// cursor, counts the rest once.
type cost struct{ calls, records int64 }

// done records a Run record's outcome.
func (r *runPass) done(offset int64, st step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.open, offset)
	r.finished[offset] = true
	for r.cursor < len(r.scope) && r.finished[r.scope[r.cursor]] {
		o := r.scope[r.cursor]
		c := r.cost[o]
		r.progress.Called += c.calls
		r.progress.RecordsSpent += c.records
		delete(r.finished, o)
		delete(r.cost, o)
		r.cursor++
	}
	r.progress.Done = int64(r.cursor)
	r.w.table.MarkDirty(r.tenant)
}

// charge adds to a Run record's cost: a call sent to Leadspace, records
// Leadspace accepted.
func (r *runPass) charge(offset int64, calls, records int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cost[offset]
	c.calls += calls
	c.records += records
	r.cost[offset] = c
}

// inherited counts a record an earlier pass of this Run answered after its
// last status record (the instance died or lost the partition before the
// cursor passed it): that answer was paid for, once, and this pass finds it
// standing instead of calling again.
func (r *runPass) inherited(offset int64, answeredAt int64) {
	if !r.resumed || answeredAt < r.requestedAt.UnixMilli() {
		return
	}
	r.charge(offset, 0, 1)
}

// abandoned records a Run record given up in a drain: the next owner redoes
// it, and counts what it cost then.
func (r *runPass) abandoned(offset int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.open, offset)
	delete(r.cost, offset)
}

// background watches, while the partition is owned, the tenants' Run
// requests and the mapping schedules (running a pass per active Run on
// this partition), and the removals with purge.
func (w *partitionWorker) background(purgesSeen string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		w.checkRuns()
		w.checkPurges(&purgesSeen)
		select {
		case <-w.fetchCtx.Done():
			w.mu.Lock()
			for _, r := range w.runs {
				r.stop()
			}
			w.mu.Unlock()
			return
		case <-t.C:
		}
	}
}

// checkRuns starts, cancels or stops passes to match the requests.
func (w *partitionWorker) checkRuns() {
	now := time.Now()
	requests := w.requests.snapshot()
	// The mapping's refresh interval schedules a stale-only Run at every
	// multiple of the interval; an admin's newer or running Run goes first.
	for _, st := range w.control.Snapshot() {
		if st.Mapping == nil || st.Mapping.RefreshInterval <= 0 || st.State != schemas.StateActive {
			continue
		}
		due := now.Truncate(st.Mapping.RefreshInterval)
		if admin, ok := requests[st.TenantID]; ok && !admin.cancel &&
			(!admin.requestedAt.Before(due) || w.runActive(st.TenantID, admin.id)) {
			continue
		}
		requests[st.TenantID] = runRequest{id: fmt.Sprintf("scheduled-%d", due.Unix()), scheduled: true, requestedAt: due}
	}
	for tenant, req := range requests {
		w.mu.Lock()
		pass := w.runs[tenant]
		var prog *schemas.RunProgress
		if held := w.state.runs[tenant]; held != nil {
			copied := *held
			prog = &copied
		}
		w.mu.Unlock()
		switch {
		case req.cancel:
			if pass != nil && pass.id() == req.id {
				pass.end(schemas.RunCancelled)
			} else if prog != nil && prog.RunID == req.id && prog.Outcome == "" {
				w.setProgress(tenant, func(p *schemas.RunProgress) { p.Outcome, p.FinishedAt = schemas.RunCancelled, now })
			}
			continue
		case prog != nil && prog.RunID == req.id && prog.Outcome != "":
			continue // this Run is over here
		case pass != nil && pass.id() == req.id:
			if _, d := w.control.Gate(tenant); d != nil {
				pass.end(schemas.RunStopped + ": " + d.Reason)
			}
			continue
		case pass != nil:
			pass.end(schemas.RunCancelled) // a newer Run replaces it
		}
		if _, d := w.control.Gate(tenant); d != nil {
			if prog != nil && prog.RunID == req.id || req.scheduled {
				continue
			}
			w.setProgress(tenant, func(p *schemas.RunProgress) {
				*p = schemas.RunProgress{RunID: req.id, Force: req.force, RequestedAt: req.requestedAt, Scope: 0,
					StartedAt: now, FinishedAt: now, Outcome: schemas.RunStopped + ": " + d.Reason}
			})
			continue
		}
		w.startRun(tenant, req, prog)
	}
}

// runActive says whether a Run is in progress for the tenant here.
func (w *partitionWorker) runActive(tenant, id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.runs[tenant]
	return r != nil && r.id() == id
}

// id is the Run's id.
func (r *runPass) id() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.progress.RunID
}

// setProgress changes a tenant's Run record on this partition.
func (w *partitionWorker) setProgress(tenant string, f func(*schemas.RunProgress)) {
	w.mu.Lock()
	p := w.state.runs[tenant]
	if p == nil {
		p = &schemas.RunProgress{}
		w.state.runs[tenant] = p
	}
	f(p)
	if p.Outcome == schemas.RunCompleted {
		w.state.refresh[tenant] = p.FinishedAt
	}
	w.mu.Unlock()
	w.table.MarkDirty(tenant)
}

func (w *partitionWorker) startRun(tenant string, req runRequest, prior *schemas.RunProgress) {
	ctx, stop := context.WithCancel(w.fetchCtx)
	r := &runPass{w: w, tenant: tenant, force: req.force, requestedAt: req.requestedAt, ctx: ctx, stop: stop,
		finished: map[int64]bool{}, open: map[int64]bool{}, cost: map[int64]cost{}}
	r.progress = schemas.RunProgress{RunID: req.id, Force: req.force, Scheduled: req.scheduled, RequestedAt: req.requestedAt,
		Scope: -1, StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	resume := 0
	if prior != nil && prior.RunID == req.id {
		r.progress = *prior
		r.resumed = true
		resume = int(prior.Done)
	}
	w.mu.Lock()
	w.runs[tenant] = r
	w.mu.Unlock()
	w.publishProgress(r)
	w.readers.Go(func() {
		err := r.execute(resume)
		w.mu.Lock()
		if w.runs[tenant] == r {
			delete(w.runs, tenant)
		}
		w.mu.Unlock()
		if err != nil && !errors.Is(err, context.Canceled) {
			w.log.Warn("run stopped", zap.String("tenant", tenant), zap.String("run", req.id), zap.Error(err))
		}
	})
}

// end stops a pass with an outcome.
func (r *runPass) end(outcome string) {
	r.mu.Lock()
	if r.progress.Outcome == "" {
		r.progress.Outcome = outcome
		r.progress.FinishedAt = time.Now().UTC().Truncate(time.Millisecond)
	}
	r.mu.Unlock()
	r.stop()
	r.w.publishProgress(r)
}

// publishProgress copies a pass's progress into the partition's state, for
// the next status record.
func (w *partitionWorker) publishProgress(r *runPass) {
	r.mu.Lock()
	p := r.progress
	r.mu.Unlock()
	w.setProgress(r.tenant, func(dst *schemas.RunProgress) { *dst = p })
}

// execute reads the scope, then feeds the Run's records in offset order.
func (r *runPass) execute(resume int) error {
	w := r.w
	defer func() {
		r.mu.Lock()
		if r.progress.Outcome == "" && r.scoped && r.cursor >= len(r.scope) {
			r.progress.Outcome = schemas.RunCompleted
			r.progress.FinishedAt = time.Now().UTC().Truncate(time.Millisecond)
		}
		r.mu.Unlock()
		w.publishProgress(r)
	}()
	end, err := w.offsetAt(r.ctx, r.requestedAt)
	if err != nil {
		return err
	}
	scope, err := w.scopeOf(r.ctx, r.tenant, end)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.scope, r.scoped = scope, true
	r.progress.Scope = int64(len(scope))
	r.cursor = min(resume, len(scope))
	r.progress.Done = int64(r.cursor)
	r.mu.Unlock()
	w.publishProgress(r)
	if r.cursor >= len(scope) {
		return nil
	}
	rd := kafkaio.NewFetcher(w.conn, w.topics.Profiles, w.id, scope[r.cursor], 1<<20)
	i := r.cursor
	for failures := 0; i < len(scope); {
		msg, err := rd.Fetch(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			failures++
			if err := kafkaio.Backoff.Wait(r.ctx, failures); err != nil {
				return err
			}
			continue
		}
		failures = 0
		if msg.Offset < scope[i] {
			continue
		}
		for i < len(scope) && scope[i] < msg.Offset {
			i++ // compacted away since the scope was read: nothing to do
			r.done(scope[i-1], step{})
		}
		if i >= len(scope) || scope[i] != msg.Offset {
			continue
		}
		i++
		if _, d := w.control.Gate(r.tenant); d != nil {
			r.end(schemas.RunStopped + ": " + d.Reason)
			return nil
		}
		key, program, size := w.classify(msg)
		v, err := w.window.Admit(r.ctx, program, size)
		for err == nil && v == window.Defer {
			// A stalled program: a Run has no live latency to protect, so
			// it waits for the program instead of deferring.
			select {
			case <-r.ctx.Done():
				return r.ctx.Err()
			case <-time.After(time.Second):
			}
			v, err = w.window.Admit(r.ctx, program, size)
		}
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.open[msg.Offset] = true
		r.mu.Unlock()
		w.enqueue(&job{w: w, msg: msg, key: key, program: program, size: size, run: r})
	}
	// Wait for the records in flight.
	for {
		r.mu.Lock()
		open := len(r.open)
		r.mu.Unlock()
		if open == 0 {
			return nil
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// offsetAt is the first offset of the profiles partition written at or
// after t: the Run's scope ends there, the same for every instance.
func (w *partitionWorker) offsetAt(ctx context.Context, t time.Time) (int64, error) {
	var end int64
	err := kafkaio.Backoff.Do(ctx, "offset by time", func() error {
		res, err := w.conn.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			w.topics.Profiles: {kafka.TimeOffsetOf(w.id, t), kafka.LastOffsetOf(w.id)}}})
		if err != nil {
			return err
		}
		for _, po := range res.Topics[w.topics.Profiles] {
			if po.Error != nil {
				return po.Error
			}
			end = po.LastOffset
			for off := range po.Offsets { // -1 when nothing was written since t
				if off >= 0 && off < end {
					end = off
				}
			}
		}
		return nil
	}, kafkaio.Transient, nil)
	return end, err
}

// scopeOf reads the partition up to end and returns the offsets of the
// tenant's current profiles: the latest record per key, deletions out, and,
// as in the dry run's preview, values that are no profile at all (they
// have their dead letters) out.
func (w *partitionWorker) scopeOf(ctx context.Context, tenant string, end int64) ([]int64, error) {
	latest := map[string]int64{}
	prefix := tenant + "/"
	_, err := kafkaio.ReadPartitionTo(ctx, w.conn, w.topics.Profiles, w.id, end, func(m kafka.Message) {
		if !strings.HasPrefix(string(m.Key), prefix) {
			return
		}
		if m.Value == nil {
			delete(latest, string(m.Key))
			return
		}
		if _, err := w.codec.DecodeProfile(ctx, m.Value); err != nil && !decodeFailure(err).replayable {
			delete(latest, string(m.Key))
			return
		}
		latest[string(m.Key)] = m.Offset
	})
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(latest))
	for _, o := range latest {
		out = append(out, o)
	}
	slices.Sort(out)
	return out, nil
}
