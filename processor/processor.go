// Package processor is the enrichment pipeline: it consumes profile-unified,
// gates each profile on the tenant's connection, consent and mapping, maps
// the allowed fields, asks Leadspace, and publishes enriched-company events
// or dead letters, committing an offset only after its output was acked.
//
// The flow, one file each: processor.go (start, tables, topics) ->
// generation.go (the consumer group's generations: cooperative handovers,
// commits; membership, assignment and the rate's split are package
// internal/group) -> partition.go (per partition: restore its table, fetch,
// defer; the window is package internal/window) -> pipeline.go (key order,
// stages) -> handler.go (decode, gate, map, dedupe, outputs) -> the
// publisher (internal/kafkaio) -> the commit point (internal/offsets) ->
// status.go. restore.go fills each partition's table (internal/table); run.go
// is the Run (refresh). The control plane (package controlplane) gates; Kafka
// plumbing is internal/kafkaio. docs/package-layout.md draws the packages.
package processor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace/retry"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/processor/internal/table"
	"github.com/enrichment/leadspace-enricher/processor/internal/window"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Processor runs the pipeline for one instance of the consumer group.
type Processor struct {
	cfg      Config
	conn     kafkaio.Conn
	codec    *schemas.Codec
	control  *controlplane.Table
	plane    *controlplane.Plane
	enricher Enricher
	handler  *handler
	status   *statusTable
	runs     *runRequests
	purges   *removals
	names    *table.Interner
	window   *window.Window
	pub      *kafkaio.Publisher
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

	programs *programs

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
func New(cfg Config, codec *schemas.Codec, control *controlplane.Table, enricher Enricher) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := cfg.Kafka.Connect()
	if err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg, conn: conn, codec: codec, control: control, enricher: enricher, status: newStatusTable(),
		runs: &runRequests{control: control}, purges: &removals{control: control}, names: table.NewInterner(), log: cfg.Logger,
		readyCh: make(chan struct{}), states: map[int]*partitionState{}, workers: map[int]*partitionWorker{}, health: newHealth()}
	if p.plane, err = controlplane.New(controlplane.Config{Kafka: cfg.Kafka, Topics: cfg.Topics, Codec: codec, Auth: cfg.Auth,
		Table: control, Logger: cfg.Logger, Registerer: cfg.Registerer, StatusInterval: cfg.StatusInterval, RetryBackoff: cfg.RetryBackoff}); err != nil {
		return nil, err
	}
	p.owned.since = time.Now()
	p.journal = newJournal(conn, codec, cfg.Topics, cfg.Logger)
	p.programs = &programs{control: control, enricher: enricher, fallback: cfg.Window}
	p.window = window.New(cfg.Window, cfg.MaxInFlightBytes, cfg.StallAfter, p.programs.share)
	p.handler = &handler{codec: codec, control: control, topics: cfg.Topics, log: cfg.Logger, now: time.Now, names: p.names,
		registryRetry: retry.Schedule{First: cfg.RetryBackoff, Max: min(cfg.RetryBackoff<<6, 30*time.Second)}}
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
	defer p.conn.Close()
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
	p.pub = kafkaio.NewPublisher(p.conn, limits.batch, p.log, func(err error) { p.health.set("produce", err) }, p.fail)
	p.journal.pub = p.pub
	p.pool = newPool(max(4, 2*runtime.GOMAXPROCS(0)))
	defer func() {
		p.pool.close()
		_ = p.pub.Close()
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
		_ = kafkaio.FollowConn(tables, p.conn, p.cfg.Topics.Status, p.applyStatus, func() { close(statusLoaded) },
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
	err := kafkaio.Backoff.Do(ctx, "read the topics", func() error {
		var err error
		counts, err = kafkaio.PartitionCounts(ctx, p.conn, t.Profiles, t.Enriched, t.DeadLetters)
		if err == nil {
			maxBytes, err = kafkaio.MaxMessageBytes(ctx, p.conn, t.Enriched, t.DeadLetters, t.Status)
		}
		p.health.set("topics", err)
		return err
	}, func(err error) bool { return kafkaio.Transient(err) || errors.Is(err, kafkaio.ErrTopicMissing) }, func(err error, n int) {
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
	if _, err := kafkaio.PartitionCounts(ctx, p.conn, t.Journal); err != nil {
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

// newPartitionState starts a partition's memory: an empty table, and the
// counts of its last status records (credits, Runs) to go on from.
func (p *Processor) newPartitionState(id int) *partitionState {
	st := &partitionState{id: id, table: table.New(p.names, 0), credits: map[string]int64{},
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

// partitionCount is the input topic's partition count, as last seen.
func (p *Processor) partitionCount() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := kafkaio.PartitionCounts(ctx, p.conn, p.cfg.Topics.Profiles)
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

// workerDeps are what partition workers use of the instance, handed to each
// at construction.
func (p *Processor) workerDeps() workerDeps {
	return workerDeps{conn: p.conn, codec: p.codec, topics: p.cfg.Topics, control: p.control, requests: p.runs, purges: p.purges,
		programs: p.programs, window: p.window, pool: p.pool, pub: p.pub, handler: p.handler, journal: p.journal,
		metrics: p.metrics, health: p.health, enricher: p.enricher}
}
