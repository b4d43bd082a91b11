// Package processor is the enrichment pipeline: it consumes profile-unified,
// gates each profile on the tenant's connection, consent and mapping, maps
// the allowed fields, asks Leadspace, and publishes enriched-company events
// or dead letters, committing an offset only after its output was acked.
//
// The flow, one file each: processor.go (tables, consumer group,
// generations) -> group.go + assign.go (membership) -> partition.go (per
// partition: restore its table, fetch, defer) -> window.go (memory bound,
// program shares) -> pipeline.go (key order, stages) -> handler.go (decode,
// gate, map, dedupe, outputs) -> publish.go (produce) -> offsets.go (commit
// point) -> status.go. table.go and restore.go hold each partition's keys;
// run.go is the Run (refresh); follow.go reads whole topics.
package processor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Processor runs the pipeline for one instance of the consumer group.
type Processor struct {
	cfg      Config
	conn     connection
	codec    *schemas.Codec
	control  *ControlTable
	plane    *ControlPlane
	enricher Enricher
	handler  *handler
	status   *statusTable
	runs     *runRequests
	purges   *removals
	names    *interner
	window   *window
	pub      *publisher
	pool     *pool
	journal  *journal
	metrics  *metrics
	health   *health
	log      *zap.Logger
	ready    atomic.Bool
	readyCh  chan struct{}

	// fail stops Run with an error that names an unrecoverable state.
	fail     func(error)
	failOnce sync.Once
	failure  error

	// programs maps credentials keys to their Program, for window shares.
	programs sync.Map

	mu      sync.Mutex
	states  map[int]*partitionState // partitions kept between generations
	workers map[int]*partitionWorker
	owned   ownership
}

// ownership is what this member holds, for metrics and readiness.
type ownership struct {
	generation int
	partitions int
	members    int
	since      time.Time // when the member last owned something (or started)
	joined     bool
}

// New builds a processor. The codec must have the profile, control, enriched
// and dead letter types registered.
func New(cfg Config, codec *schemas.Codec, control *ControlTable, enricher Enricher) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := cfg.Kafka.connect()
	if err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, conn: conn, codec: codec, control: control, enricher: enricher, status: newStatusTable(),
		runs: &runRequests{control: control}, purges: &removals{control: control}, names: newInterner(), log: cfg.Logger,
		readyCh: make(chan struct{}), states: map[int]*partitionState{}, workers: map[int]*partitionWorker{}, health: newHealth()}
	if p.plane, err = NewControlPlane(ControlPlaneConfig{Kafka: cfg.Kafka, Topics: cfg.Topics, Codec: codec, Auth: cfg.Auth,
		Table: control, Logger: cfg.Logger, Registerer: cfg.Registerer, StatusInterval: cfg.StatusInterval, RetryBackoff: cfg.RetryBackoff}); err != nil {
		return nil, err
	}
	p.owned.since = time.Now()
	p.journal = newJournal(p)
	p.window = newWindow(cfg.Window, cfg.MaxInFlightBytes, cfg.StallAfter, p.share)
	p.handler = &handler{codec: codec, control: control, topics: cfg.Topics, log: cfg.Logger, now: time.Now, names: p.names,
		backoff: cfg.RetryBackoff}
	p.metrics = newMetrics(cfg.Registerer, p)
	return p, nil
}

// Ready is true once the control table caught up with the control topic;
// before that no profile is processed.
func (p *Processor) Ready() bool { return p.ready.Load() }

// ReadyC is closed when the processor becomes ready.
func (p *Processor) ReadyC() <-chan struct{} { return p.readyCh }

// Health says why the instance cannot do its work now, or nil. /readyz
// answers 503 with it.
func (p *Processor) Health() error {
	if !p.ready.Load() {
		return errors.New("loading the control and status tables")
	}
	if err := p.health.err(); err != nil {
		return err
	}
	p.mu.Lock()
	o := p.owned
	p.mu.Unlock()
	idleLimit := 3 * p.cfg.Group.SessionTimeout
	if o.partitions == 0 && time.Since(o.since) > idleLimit && (o.members == 0 || o.members <= p.partitionCount()) {
		return fmt.Errorf("this member has owned no partition for %s (generation %d, %d members)",
			time.Since(o.since).Truncate(time.Second), o.generation, o.members)
	}
	return nil
}

// Run processes until ctx ends, then stops fetching, lets in-flight work
// finish within DrainTimeout, commits what is done, leaves the group and
// returns nil. It returns an error only for a state it cannot recover from,
// which it names; broker and Leadspace outages are waited out.
func (p *Processor) Run(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer p.conn.close()
	p.fail = func(err error) {
		p.failOnce.Do(func() {
			p.failure = err
			p.log.Error("stopping: unrecoverable", zap.Error(err))
			stop()
		})
	}
	if !p.cfg.Auth.Enabled() {
		p.log.Warn("control events are not authenticated: anyone who can write to the control topic can change consent and tokens; set an admin key",
			zap.String("topic", p.cfg.Topics.Control))
	}
	limits, err := p.checkTopics(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return p.failure
		}
		return err
	}
	p.handler.deadLetterLimit = limits.deadLetter
	p.pub = newPublisher(p.conn, limits.batch, p.log, func(err error) { p.health.set("produce", err) }, p.fail)
	p.pool = newPool(max(4, 2*runtime.GOMAXPROCS(0)))
	defer func() {
		p.pool.close()
		_ = p.pub.close()
	}()

	tables, stopTables := context.WithCancel(context.Background())
	defer stopTables()
	var background sync.WaitGroup
	defer background.Wait()
	defer stopTables()
	// The control plane keeps the gate (connections, consent, mappings,
	// Runs, removals) and the tenants' control records; the status table
	// gives each partition the counts to go on from.
	statusLoaded := make(chan struct{})
	background.Go(func() { _ = p.plane.Run(tables) })
	background.Go(func() {
		_ = followWith(tables, p.conn, p.cfg.Topics.Status, p.applyStatus, func() { close(statusLoaded) },
			func(err error) { p.health.set("status table", err) })
	})
	for _, ch := range []<-chan struct{}{p.plane.Ready(), statusLoaded} {
		select {
		case <-ch:
		case <-ctx.Done():
			return p.failure
		}
	}
	p.ready.Store(true)
	p.metrics.ready.Set(1)
	close(p.readyCh)
	p.log.Info("ready: control and status tables loaded", zap.Int("tenants", len(p.control.Snapshot())))
	err = p.consume(ctx)
	if p.failure != nil {
		return p.failure
	}
	return err
}

// topicLimits are what the output topics accept.
type topicLimits struct {
	batch      int // bytes of one produce batch
	deadLetter int // bytes of one dead letter
}

// checkTopics refuses to start on topics that break the design's
// assumptions, and reads the size limits outputs must respect. A broker
// that cannot be reached is waited for.
func (p *Processor) checkTopics(ctx context.Context) (topicLimits, error) {
	t := p.cfg.Topics
	var counts map[string]int
	var maxBytes map[string]int
	err := dependencyBackoff.retry(ctx, "read the topics", func() error {
		var err error
		counts, err = partitionCounts(ctx, p.conn, t.Profiles, t.Enriched, t.DeadLetters)
		if err == nil {
			maxBytes, err = maxMessageBytes(ctx, p.conn, t.Enriched, t.DeadLetters, t.Status)
		}
		p.health.set("topics", err)
		return err
	}, func(err error) bool { return transient(err) || errors.Is(err, errTopicMissing) }, func(err error, n int) {
		p.log.Warn("waiting for the topics", zap.Error(err), zap.Int("attempt", n))
	})
	if err != nil {
		return topicLimits{}, err
	}
	// enriched-company and the DLQ mirror the input's partitions: a key's
	// outputs are on the same partition number as its input, so an instance
	// rebuilds a partition's table from those partitions alone.
	for _, other := range []string{t.Enriched, t.DeadLetters} {
		if counts[other] != counts[t.Profiles] {
			return topicLimits{}, fmt.Errorf("topic %s has %d partitions but %s has %d; the enricher needs the same number (outputs are co-partitioned with the input): recreate %s with %d partitions",
				other, counts[other], t.Profiles, counts[t.Profiles], other, counts[t.Profiles])
		}
	}
	if _, err := partitionCounts(ctx, p.conn, t.Journal); err != nil {
		p.journal.disabled.Store(true)
		p.log.Warn("no journal topic: answers of bulks in flight when an instance dies are paid for again; create it with 'enricher topics create'",
			zap.String("topic", t.Journal), zap.Error(err))
	}
	smallest := int(^uint(0) >> 1)
	for _, n := range maxBytes {
		smallest = min(smallest, n)
	}
	// Room for the batch's framing, and for the batch that kafka-go fills
	// up to BatchBytes before it checks.
	batch := smallest - 16<<10
	return topicLimits{batch: batch, deadLetter: min(maxBytes[t.DeadLetters], smallest) - 32<<10}, nil
}

// programOf is the program a tenant's records call now, "" if none: what
// their share of the window is accounted against before they are decoded.
func (p *Processor) programOf(tenant string) string {
	key, ok := p.control.ProgramOf(tenant)
	if !ok {
		return ""
	}
	if _, known := p.programs.Load(key); !known {
		if permit, denial := p.control.Gate(tenant); denial == nil {
			p.programs.Store(key, p.enricher.Program(permit.Credentials))
		}
	}
	return key
}

// share is a program's share of the window: what it needs in flight to
// keep its admitted rate busy with full bulks.
func (p *Processor) share(program string) int {
	if prog, ok := p.programs.Load(program); ok {
		return prog.(Program).Capacity()
	}
	return p.cfg.Window
}

// consume joins the group and runs one generation after another until ctx
// ends, then leaves the group.
func (p *Processor) consume(ctx context.Context) error {
	member := newGroupMember(p.conn, p.cfg.Group, p.cfg.Topics.Profiles, p.log)
	var owned []int
	var last assignment
	for {
		a, err := member.join(ctx, owned)
		if err != nil {
			if ctx.Err() != nil {
				p.stopAll(member, last)
				member.leave(context.Background())
				return nil
			}
			return fmt.Errorf("consumer group %s: %w", p.cfg.Group.ID, err)
		}
		if a.members == 0 {
			if n, err := member.members(ctx); err == nil {
				a.members = n
			}
		}
		if a.fleet == 0 {
			a.fleet = a.members
		}
		if a.share == 0 { // an older leader: an even split
			a.share = 1 / float64(max(a.fleet, 1))
		}
		p.enricher.SetShare(a.share)
		end := p.generation(ctx, member, a)
		owned, last = p.ownedIDs(), a
		if errors.Is(end, errFenced) {
			return fmt.Errorf("consumer group %s: %w", p.cfg.Group.ID, errFenced)
		}
		if ctx.Err() != nil {
			member.leave(context.Background())
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
func (p *Processor) generation(ctx context.Context, member *groupMember, a assignment) error {
	log := p.log.With(zap.Int("generation", a.generation))
	revoked := p.revoke(a)
	if len(revoked) > 0 && !a.cooperative {
		// A member of an older version joined while this one worked
		// cooperatively: the plan ignored what we still run, so stop now.
		for _, w := range revoked {
			w.cancel()
		}
	}
	added := p.unowned(a.partitions)
	committed, err := member.committed(ctx, added)
	if err != nil {
		drainAll(revoked, p.cfg.DrainTimeout)
		p.finishRevoked(revoked, member, a)
		return err
	}
	claims := p.journal.claims(ctx, added)
	workers := p.assign(ctx, a, added, committed, claims)
	log.Info("generation started", zap.String("member", a.memberID), zap.Ints("partitions", a.partitions),
		zap.Ints("added", added), zap.Int("revoked", len(revoked)), zap.Int("members", a.members), zap.Int("fleet", a.fleet),
		zap.Float64("rate_share", a.share), zap.Bool("leader", a.leader), zap.Bool("cooperative", a.cooperative))
	p.metrics.generation.Set(float64(a.generation))

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
	if a.leader && a.cooperative && a.split != nil {
		t := time.NewTicker(shareCheck)
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
			if time.Since(started) >= shareSettle && p.sharesDrifted(ctx, member, a.split) {
				end = errRejoin // a new split of the rate; nothing stops for it
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
			w.cancel()
		}
	}
	if revokedDone != nil {
		<-revokedDone
		if dropped {
			member = nil
		}
		p.finishRevoked(revoked, member, a)
	}
	if a.cooperative && (errors.Is(end, errRebalance) || errors.Is(end, errRejoin)) {
		// Keep working: the next generation says what moves.
		log.Info("generation ended; its partitions go on while the member rejoins", zap.String("why", generationEnd(end)))
		return end
	}
	log.Info("generation ending", zap.String("why", generationEnd(end)))
	var wg sync.WaitGroup
	for _, w := range workers {
		if dropped {
			w.cancel() // another member may own it already: stop at once
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
	if errors.Is(end, errFenced) {
		return errFenced
	}
	return end
}

// sharesDrifted says whether the lags have moved far enough from the
// leader's split of the rate to split it anew (share.go).
func (p *Processor) sharesDrifted(ctx context.Context, member *groupMember, sp *split) bool {
	lag, err := member.lags(ctx, sp.partitions)
	if err != nil {
		return false
	}
	members := make([]groupPeer, len(sp.members))
	for i, m := range sp.members {
		members[i] = groupPeer{id: m.id, instance: m.instance} // what they own now is what they were assigned
	}
	if !drifted(sp.shares, rateShares(members, sp.plan, lag)) {
		return false
	}
	p.log.Info("the backlog moved away from the split of the Leadspace rate; the leader rejoins to split it anew")
	return true
}

// drainAll drains workers in parallel.
func drainAll(workers map[int]*partitionWorker, timeout time.Duration) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() { w.drain(timeout) })
	}
	wg.Wait()
}

// finishRevoked commits what drained workers finished (unless member is
// nil: the member was dropped) and lets their partitions go.
func (p *Processor) finishRevoked(revoked map[int]*partitionWorker, member *groupMember, a assignment) {
	if len(revoked) == 0 {
		return
	}
	if member != nil {
		_ = p.commit(context.Background(), member, a, revoked, true)
	}
	p.release(revoked)
}

// stopAll finishes the partitions still running when the member leaves
// while it rejoins (a cooperative rebalance), and commits them with the
// last generation: the coordinator takes commits of a generation that is
// rebalancing.
func (p *Processor) stopAll(member *groupMember, last assignment) {
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
		errors.Is(err, errFenced) || errors.Is(err, errSessionLost))
}

// errSessionLost: no heartbeat reached the coordinator for a whole session.
var errSessionLost = errors.New("no heartbeat reached the coordinator for a whole session timeout")

// heartbeats keeps the member's session alive until ctx ends. The first
// sign that the generation is over is sent on ended: a rebalance, or the
// member dropped. After a rebalance it goes on beating (the member is
// draining); after a drop it stops.
func (p *Processor) heartbeats(ctx context.Context, member *groupMember, a assignment, ended chan<- error) {
	t := time.NewTicker(p.cfg.Group.HeartbeatInterval)
	defer t.Stop()
	log := p.log.With(zap.Int("generation", a.generation))
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
		err := member.heartbeat(ctx, a)
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
	case errors.Is(err, errFenced):
		return errFenced.Error()
	case errors.Is(err, errSessionLost):
		return err.Error()
	}
	return err.Error()
}

// assign starts a worker per added partition, reusing what the instance
// kept of partitions it owned before, and returns the generation's
// workers: those kept running from the generation before, and the added.
func (p *Processor) assign(ctx context.Context, a assignment, added []int, committed map[int]int64, claims map[int]map[int64]string) map[int]*partitionWorker {
	starts := map[int]int64{}
	for _, id := range added {
		starts[id] = committed[id]
		if starts[id] < 0 { // nothing committed yet: from the first offset there is
			starts[id] = 0
			if s, err := partitionSpan(ctx, p.conn, p.cfg.Topics.Profiles, id); err == nil {
				starts[id] = s.first
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := map[int]bool{}
	for _, id := range a.partitions {
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
		w := newPartitionWorker(p, st, starts[id])
		w.claims = claims[id]
		workers[id] = w
		w.start()
	}
	p.workers = workers
	p.owned.generation, p.owned.partitions, p.owned.members, p.owned.joined = a.generation, len(a.partitions), a.members, true
	if len(a.partitions) > 0 {
		p.owned.since = time.Now()
	}
	return workers
}

// revoke takes the running partitions that a's assignment does not hold
// out of the running set, for the caller to finish.
func (p *Processor) revoke(a assignment) map[int]*partitionWorker {
	keep := map[int]bool{}
	for _, id := range a.partitions {
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

// newPartitionState starts a partition's memory: an empty table, and the
// counts of its last status records (credits, Runs) to go on from.
func (p *Processor) newPartitionState(id int) *partitionState {
	st := &partitionState{id: id, table: newTable(p.names, 0), credits: map[string]int64{},
		runs: map[string]*schemas.RunProgress{}, refresh: map[string]time.Time{},
		restorer: &restorer{conn: p.conn, codec: p.codec, topics: p.cfg.Topics, names: p.names, partition: id}}
	for tenant, s := range p.status.partition(int32(id)) {
		st.credits[tenant] = s.CreditsSpent
		st.refresh[tenant] = s.LastRefreshAt
		if s.Run != nil {
			r := *s.Run
			st.runs[tenant] = &r
		}
	}
	return st
}

// release keeps the released partitions' state for the next generation,
// marking how far their tables are: everything this instance wrote is in
// them, so the next restore starts at the topics' current ends.
func (p *Processor) release(workers map[int]*partitionWorker) {
	for id, w := range workers {
		if !w.restored.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if s, err := partitionSpan(ctx, p.conn, p.cfg.Topics.Enriched, id); err == nil {
			w.state.restorer.enrichedNext = s.end
		}
		if s, err := partitionSpan(ctx, p.conn, p.cfg.Topics.DeadLetters, id); err == nil {
			w.state.restorer.deadNext = s.end
		}
		cancel()
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
func (p *Processor) commit(ctx context.Context, member *groupMember, a assignment, workers map[int]*partitionWorker, final bool) error {
	offsets := map[int]int64{}
	var records []schemas.Status
	for id, w := range workers {
		next, moved := w.tracker.commitPoint()
		if moved {
			offsets[id] = next
		}
		records = append(records, w.statusRecords(next, false)...)
		w.tracker.caughtUp()
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
				w.table.markDirty(s.TenantID)
			}
		}
		return nil
	}
	if err := member.commit(wctx, a, offsets); err != nil {
		p.metrics.committed.WithLabelValues("refused").Inc()
		p.log.Info("commit not accepted", zap.Int("generation", a.generation), zap.Error(err), zap.Bool("final", final))
		return err
	}
	p.metrics.committed.WithLabelValues("ok").Inc()
	for id, next := range offsets {
		workers[id].tracker.committedTo(next)
	}
	return nil
}

// partitionCount is the input topic's partition count, as last seen.
func (p *Processor) partitionCount() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := partitionCounts(ctx, p.conn, p.cfg.Topics.Profiles)
	if err != nil {
		return 0
	}
	return counts[p.cfg.Topics.Profiles]
}

// ownedPartitions lists the partitions this member works on, for metrics.
func (p *Processor) ownedPartitions() []*partitionWorker {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*partitionWorker, 0, len(p.workers))
	for _, w := range p.workers {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// purgeRule says which tenants' published enrichments a removal with purge
// withdraws.
func (p *Processor) purgeRule() purgeRule { return p.purges.before }
