package processor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/internal/group"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// consume joins the group and runs one generation after another until ctx
// ends, then leaves the group.
func (p *Processor) consume(ctx context.Context) error {
	member := group.NewMember(p.conn, p.cfg.Group, p.cfg.Topics.Profiles, p.log)
	member.Work = p.work
	var owned []int
	var last group.Assignment
	for {
		a, err := member.Join(ctx, owned)
		if err != nil {
			if ctx.Err() != nil {
				p.stopAll(member, last)
				member.Leave(context.Background())
				return nil
			}
			return fmt.Errorf("consumer group %s: %w", p.cfg.Group.ID, err)
		}
		if a.Members == 0 {
			if n, err := member.Members(ctx); err == nil {
				a.Members = n
			}
		}
		if a.Fleet == 0 {
			a.Fleet = a.Members
		}
		if a.Share == 0 { // an older leader: an even split
			a.Share = 1 / float64(max(a.Fleet, 1))
		}
		p.enricher.SetShare(a.Share)
		end := p.generation(ctx, member, a)
		owned, last = p.ownedIDs(), a
		if errors.Is(end, group.ErrFenced) {
			return fmt.Errorf("consumer group %s: %w", p.cfg.Group.ID, group.ErrFenced)
		}
		if ctx.Err() != nil {
			member.Leave(context.Background())
			p.releaseAll()
			return nil
		}
	}
}

// generation runs one assignment until the group rebalances, the member is
// dropped, or ctx ends, and returns why it ended.
//
// In a cooperative generation, partitions the member keeps from the
// generation before go on running (nothing stops for a member joining or
// leaving elsewhere); those it lost are finished and committed while the
// rest run, and then the member rejoins so that they can be assigned. An
// eager generation, and the end of every generation that is not a
// cooperative rebalance, finishes all in-flight work (heartbeats go on
// meanwhile) and commits it first.
func (p *Processor) generation(ctx context.Context, member *group.Member, a group.Assignment) error {
	log := p.log.With(zap.Int("generation", a.Generation))
	revoked := p.revoke(a)
	if len(revoked) > 0 && !a.Cooperative {
		// A member of an older version joined while this one worked
		// cooperatively: the plan ignored what we still run, so stop now.
		for _, w := range revoked {
			w.halt()
		}
	}
	added := p.unowned(a.Partitions)
	committed, err := member.Committed(ctx, added)
	if err != nil {
		drainAll(revoked, p.cfg.DrainTimeout)
		p.finishRevoked(revoked, member, a)
		return err
	}
	claims := p.journal.claims(ctx, added)
	workers := p.assign(ctx, a, added, committed, claims)
	log.Info("generation started", zap.String("member", a.MemberID), zap.Ints("partitions", a.Partitions),
		zap.Ints("added", added), zap.Int("revoked", len(revoked)), zap.Int("members", a.Members), zap.Int("fleet", a.Fleet),
		zap.Float64("rate_share", a.Share), zap.Bool("leader", a.Leader), zap.Bool("cooperative", a.Cooperative))
	p.metrics.generation.Set(float64(a.Generation))

	// Heartbeats run on their own, through commits and the drain: a slow
	// commit must never cost the member its session.
	beats, stopBeats := context.WithCancel(context.Background())
	defer stopBeats()
	ended := make(chan error, 1)
	go p.heartbeats(beats, member, a, ended)
	// Partitions that moved away finish beside the ones that stay.
	revokedDone := make(chan struct{})
	go func() {
		drainAll(revoked, p.cfg.DrainTimeout)
		close(revokedDone)
	}()
	commit := time.NewTicker(p.cfg.CommitInterval)
	defer commit.Stop()
	started := time.Now()
	var checkShares <-chan time.Time
	if a.Cooperative && a.Fleet > 1 {
		t := time.NewTicker(group.ShareCheck)
		defer t.Stop()
		checkShares = t.C
	}
	var end error
	for end == nil {
		select {
		case <-ctx.Done():
			end = errShutdown
		case end = <-ended:
		case <-checkShares:
			if time.Since(started) >= group.ShareSettle && p.wantsNewSplit(a) {
				end = errRejoin // a new split of the rate; nothing stops for it
				checkShares = nil
			}
		case <-revokedDone:
			revokedDone = nil
			if len(revoked) > 0 {
				p.finishRevoked(revoked, member, a)
				revoked = nil
				end = errRejoin // so that what this member gave up is assigned
			}
		case <-commit.C:
			if err := p.commit(ctx, member, a, workers, false); dropped(err) {
				end = err
			}
		}
	}
	dropped := dropped(end)
	if dropped {
		stopBeats()
		for _, w := range revoked {
			w.halt()
		}
	}
	if revokedDone != nil {
		<-revokedDone
		if dropped {
			p.release(revoked) // nothing to commit: the generation is gone
		} else {
			p.finishRevoked(revoked, member, a)
		}
	}
	if a.Cooperative && (errors.Is(end, errRebalance) || errors.Is(end, errRejoin)) {
		// Keep working: the next generation says what moves.
		log.Info("generation ended; its partitions go on while the member rejoins", zap.String("why", generationEnd(end)))
		return end
	}
	log.Info("generation ending", zap.String("why", generationEnd(end)))
	var wg sync.WaitGroup
	for _, w := range workers {
		if dropped {
			w.halt() // another member may own it already: stop at once
		}
		wg.Go(func() { w.drain(p.cfg.DrainTimeout) })
	}
	wg.Wait()
	if !dropped {
		_ = p.commit(context.Background(), member, a, workers, true)
	}
	stopBeats()
	p.release(workers)
	log.Info("generation ended", zap.String("why", generationEnd(end)))
	if errors.Is(end, errShutdown) || errors.Is(end, errRebalance) || errors.Is(end, errRejoin) {
		return end
	}
	if errors.Is(end, group.ErrFenced) {
		return group.ErrFenced
	}
	return end
}

// wantsNewSplit says whether this member's work has moved away from what
// the leader counted for it when it split the rate (share.go).
func (p *Processor) wantsNewSplit(a group.Assignment) bool {
	var unread int64
	for _, w := range p.work() {
		unread += w.Unread
	}
	if !group.SplitOutdated(a, a.Counted, unread) {
		return false
	}
	p.log.Info("this member's work moved away from the split of the Leadspace rate; it rejoins for a new split",
		zap.Int64("counted_unread", a.Counted), zap.Int64("unread", unread), zap.Float64("rate_share", a.Share))
	return true
}

// work reports each running partition's work for the split of the rate:
// unread records past the fetch position, deferred ones, and those in
// flight. A partition whose reader has not fetched yet is left out; the
// leader reads its committed lag instead.
func (p *Processor) work() []group.PartitionWork {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]group.PartitionWork, 0, len(p.workers))
	for id, w := range p.workers {
		if left, ok := w.work(); ok {
			out = append(out, group.PartitionWork{Partition: id, WorkLeft: left})
		}
	}
	return out
}

// drainAll drains workers in parallel.
func drainAll(workers map[int]*partitionWorker, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.drain(timeout) })
	}
	wg.Wait()
}

// finishRevoked commits what drained workers finished and lets their
// partitions go.
func (p *Processor) finishRevoked(revoked map[int]*partitionWorker, member *group.Member, a group.Assignment) {
	if len(revoked) == 0 {
		return
	}
	_ = p.commit(context.Background(), member, a, revoked, true)
	p.release(revoked)
}

// stopAll finishes the partitions still running when the member leaves
// while it rejoins (a cooperative rebalance), and commits them with the
// last generation: the coordinator takes commits of a generation that is
// rebalancing.
func (p *Processor) stopAll(member *group.Member, last group.Assignment) {
	p.mu.Lock()
	workers := maps.Clone(p.workers)
	p.mu.Unlock()
	if len(workers) == 0 {
		return
	}
	drainAll(workers, p.cfg.DrainTimeout)
	_ = p.commit(context.Background(), member, last, workers, true)
	p.release(workers)
}

var (
	errShutdown  = errors.New("shutdown")
	errRebalance = errors.New("rebalance")
	// errRejoin: the member gave partitions up and rejoins, so that the
	// group assigns them.
	errRejoin = errors.New("rejoin")
)

// dropped says whether an error means the group no longer counts this
// member in the generation: its partitions may be someone else's already.
func dropped(err error) bool {
	return err != nil && (errors.Is(err, kafka.UnknownMemberId) || errors.Is(err, kafka.IllegalGeneration) ||
		errors.Is(err, group.ErrFenced) || errors.Is(err, errSessionLost))
}

// errSessionLost: no heartbeat reached the coordinator for a whole session.
var errSessionLost = errors.New("no heartbeat reached the coordinator for a whole session timeout")

// heartbeats keeps the member's session alive until ctx ends. The first
// sign that the generation is over is sent on ended: a rebalance, or the
// member dropped. After a rebalance it goes on beating (the member is
// draining); after a drop it stops.
func (p *Processor) heartbeats(ctx context.Context, member *group.Member, a group.Assignment, ended chan<- error) {
	t := time.NewTicker(group.HeartbeatEvery(p.cfg.Group.HeartbeatInterval, a))
	defer t.Stop()
	log := p.log.With(zap.Int("generation", a.Generation))
	last := time.Now()
	signalled := false
	signal := func(err error) {
		if !signalled {
			signalled = true
			ended <- err
		}
	}
	failing := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		begin := time.Now()
		err := member.Heartbeat(ctx, a)
		if took := time.Since(begin); took > p.cfg.Group.HeartbeatInterval {
			log.Warn("a heartbeat took longer than the heartbeat interval", zap.Duration("took", took), zap.Error(err))
		}
		switch {
		case err == nil, errors.Is(err, kafka.RebalanceInProgress):
			last = time.Now()
			if failing > 0 {
				log.Info("heartbeats reach the coordinator again", zap.Int("failed", failing))
				failing = 0
			}
			p.health.set("group", nil)
			if err != nil {
				signal(errRebalance)
			}
		case dropped(err):
			log.Info("heartbeat refused: the member is out of the generation", zap.Error(err))
			signal(err)
			return
		case ctx.Err() != nil:
			return
		case time.Since(last) > p.cfg.Group.SessionTimeout:
			// The group has moved on without us: stop before a new
			// owner's work and ours overlap.
			signal(fmt.Errorf("%w (%s): %v", errSessionLost, time.Since(last).Truncate(time.Second), err))
			return
		default:
			if failing++; failing == 1 || failing%10 == 0 {
				log.Warn("heartbeat failed; retrying", zap.Error(err), zap.Int("failures", failing))
			}
			p.health.set("group", fmt.Errorf("heartbeat: %w", err))
		}
	}
}

// generationEnd says in words why a generation ended, for the log.
func generationEnd(err error) string {
	switch {
	case errors.Is(err, errShutdown):
		return "the instance is stopping"
	case errors.Is(err, errRebalance):
		return "the coordinator started a rebalance (a member joined, left or timed out, or partitions changed)"
	case errors.Is(err, errRejoin):
		return "this member rejoins: to hand over partitions it finished, or to split the Leadspace rate anew"
	case errors.Is(err, kafka.UnknownMemberId), errors.Is(err, kafka.IllegalGeneration):
		return "the coordinator dropped this member (its session expired): " + err.Error()
	case errors.Is(err, group.ErrFenced):
		return group.ErrFenced.Error()
	case errors.Is(err, errSessionLost):
		return err.Error()
	}
	return err.Error()
}

// assign starts a worker per added partition, reusing what the instance
// kept of partitions it owned before, and returns the generation's
// workers: those kept running from the generation before, and the added.
func (p *Processor) assign(ctx context.Context, a group.Assignment, added []int, committed map[int]int64, claims map[int]map[int64]string) map[int]*partitionWorker {
	starts := map[int]int64{}
	for _, id := range added {
		starts[id] = committed[id]
		if starts[id] < 0 { // nothing committed yet: from the first offset there is
			starts[id] = 0
			if s, err := kafkaio.PartitionSpan(ctx, p.conn, p.cfg.Topics.Profiles, id); err == nil {
				starts[id] = s.First
			}
		}
	}
	deps := p.workerDeps()
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := map[int]bool{}
	for _, id := range a.Partitions {
		keep[id] = true
	}
	for id := range p.states {
		if !keep[id] {
			delete(p.states, id) // another member has it: memory follows ownership
		}
	}
	workers := map[int]*partitionWorker{}
	for id, w := range p.workers {
		if keep[id] {
			workers[id] = w
		}
	}
	for _, id := range added {
		st := p.states[id]
		if st == nil {
			st = p.newPartitionState(id)
			p.states[id] = st
		}
		w := newPartitionWorker(deps, p.log, st, starts[id], claims[id])
		workers[id] = w
		w.start()
	}
	p.workers = workers
	p.owned.generation, p.owned.partitions, p.owned.members, p.owned.joined = a.Generation, len(a.Partitions), a.Members, true
	if len(a.Partitions) > 0 {
		p.owned.since = time.Now()
	}
	return workers
}

// revoke takes the running partitions that a's assignment does not hold
// out of the running set, for the caller to finish.
func (p *Processor) revoke(a group.Assignment) map[int]*partitionWorker {
	keep := map[int]bool{}
	for _, id := range a.Partitions {
		keep[id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]*partitionWorker{}
	for id, w := range p.workers {
		if !keep[id] {
			out[id] = w
			delete(p.workers, id)
		}
	}
	return out
}

// unowned lists the partitions among ids that no worker runs.
func (p *Processor) unowned(ids []int) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, id := range ids {
		if p.workers[id] == nil {
			out = append(out, id)
		}
	}
	return out
}

// ownedIDs lists the partitions this member works on now, sorted: what it
// tells the group it owns when it (re)joins.
func (p *Processor) ownedIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]int, 0, len(p.workers))
	for id := range p.workers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// release keeps the released partitions' state for the next generation,
// marking how far their tables are: everything this instance wrote is in
// them, so the next restore starts at the topics' current ends.
func (p *Processor) release(workers map[int]*partitionWorker) {
	for _, w := range workers {
		w.released()
	}
	p.mu.Lock()
	for id, w := range workers {
		if p.workers[id] == w {
			delete(p.workers, id)
		}
	}
	p.owned.partitions = len(p.workers)
	p.mu.Unlock()
}

// releaseAll drops every partition's state (the instance is leaving).
func (p *Processor) releaseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states = map[int]*partitionState{}
}

// commit writes the status records of every partition whose counts moved,
// then commits the partitions' commit points: the status topic always
// covers at least what was committed.
func (p *Processor) commit(ctx context.Context, member *group.Member, a group.Assignment, workers map[int]*partitionWorker, final bool) error {
	offsets := map[int]int64{}
	var records []schemas.Status
	for id, w := range workers {
		next, moved, recs := w.toCommit()
		if moved {
			offsets[id] = next
		}
		records = append(records, recs...)
	}
	if len(offsets) == 0 && len(records) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.writeStatus(wctx, records); err != nil {
		p.log.Warn("status not written; commit postponed", zap.Error(err))
		for _, s := range records {
			if w := workers[int(s.Partition)]; w != nil {
				w.unwritten(s.TenantID)
			}
		}
		return nil
	}
	if err := member.Commit(wctx, a, offsets); err != nil {
		p.metrics.committed.WithLabelValues("refused").Inc()
		p.log.Info("commit not accepted", zap.Int("generation", a.Generation), zap.Error(err), zap.Bool("final", final))
		return err
	}
	p.metrics.committed.WithLabelValues("ok").Inc()
	for id, next := range offsets {
		workers[id].committed(next)
	}
	return nil
}
