// Package processor is the enrichment pipeline: it consumes profile-unified,
// gates each profile on the tenant's connection, consent and mapping, maps
// the allowed fields, asks Leadspace, and publishes enriched-company events
// or dead letters, committing an offset only after its output was acked.
//
// The flow, one file each: follow.go (control and dedupe tables) ->
// processor.go (consumer group, fetch) -> window.go (ordering, backpressure)
// -> handler.go (decode, gate, map, dedupe, enrich) -> publish.go (produce)
// -> offsets.go (commit point).
package processor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Processor runs the pipeline for one instance of the consumer group.
type Processor struct {
	cfg       Config
	conn      connection
	codec     *schemas.Codec
	control   *ControlTable
	plane     *ControlPlane
	handler   *handler
	status    *statusTable
	published *published
	purges    *purger
	window    *window
	pub       *publisher
	metrics   *metrics
	log       *zap.Logger
	ready     atomic.Bool
	readyCh   chan struct{}
	inFlight  sync.WaitGroup // partition fetchers of the current generation
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
	p := &Processor{cfg: cfg, conn: conn, codec: codec, control: control, window: newWindow(cfg.Window), status: newStatusTable(),
		published: newPublished(), purges: newPurger(),
		log: cfg.Logger, readyCh: make(chan struct{})}
	p.handler = &handler{codec: codec, control: control, enricher: enricher, dedupe: newDedupe(), topics: cfg.Topics,
		log: cfg.Logger, now: time.Now, backoff: cfg.RetryBackoff}
	p.pub = newPublisher(conn, cfg.ProduceBatchTimeout, cfg.RetryBackoff, cfg.Logger)
	if p.plane, err = NewControlPlane(ControlPlaneConfig{Kafka: cfg.Kafka, Topics: cfg.Topics, Codec: codec, Auth: cfg.Auth,
		Table: control, Logger: cfg.Logger, Registerer: cfg.Registerer, StatusInterval: cfg.StatusInterval, RetryBackoff: cfg.RetryBackoff}); err != nil {
		return nil, err
	}
	p.metrics = newMetrics(cfg.Registerer, func() float64 { return float64(p.window.inFlight()) })
	return p, nil
}

// Ready is true once the control table caught up with the control topic;
// before that no profile is processed.
func (p *Processor) Ready() bool { return p.ready.Load() }

// ReadyC is closed when the processor becomes ready.
func (p *Processor) ReadyC() <-chan struct{} { return p.readyCh }

// Run processes until ctx ends, then stops fetching, lets in-flight work
// finish within ShutdownTimeout, commits what is done and returns nil.
func (p *Processor) Run(ctx context.Context) error {
	defer p.pub.close()
	tables, stopTables := context.WithCancel(context.Background())
	defer stopTables()
	// Three tables must be loaded before any profile is processed: control
	// (the gate, kept by the control plane), enriched (dedupe) and status
	// (counts to resume from).
	loaders := []struct {
		topic string
		apply func(kafka.Message)
	}{{p.cfg.Topics.Enriched, p.applyEnriched}, {p.cfg.Topics.Status, p.applyStatus}}
	tablesErr := make(chan error, len(loaders))
	var plane sync.WaitGroup
	plane.Go(func() { _ = p.plane.Run(tables) })
	defer func() { stopTables(); plane.Wait() }()
	loaded := []<-chan struct{}{p.plane.Ready()}
	for _, l := range loaders {
		ch := make(chan struct{})
		loaded = append(loaded, (<-chan struct{})(ch))
		go func() { tablesErr <- follow(tables, p.conn, l.topic, l.apply, func() { close(ch) }) }()
	}
	for _, ch := range loaded {
		select {
		case <-ch:
		case err := <-tablesErr:
			return fmt.Errorf("load tables: %w", err)
		case <-ctx.Done():
			return nil
		}
	}
	p.ready.Store(true)
	p.metrics.ready.Set(1)
	close(p.readyCh)
	p.log.Info("ready: control table and dedupe cache loaded", zap.Int("tenants", len(p.control.Snapshot())),
		zap.Int("dedupe_entries", p.handler.dedupe.size()))
	// A table that stops following would leave the gate frozen (a consent
	// withdrawal would never apply): stop the instance instead, so that it
	// is restarted and reloads.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var tableFailure error
	var background sync.WaitGroup
	background.Go(func() { p.queuePurges(tables) })
	background.Go(func() { p.runPurges(tables) })
	background.Go(func() {
		select {
		case err := <-tablesErr:
			if tables.Err() == nil {
				tableFailure = fmt.Errorf("a table stopped following its topic: %w", err)
				p.log.Error("stopping: tables no longer follow their topics", zap.Error(err))
				stopRun()
			}
		case <-tables.Done():
		}
	})
	err := p.consume(runCtx)
	stopTables()
	background.Wait()
	if tableFailure != nil {
		return tableFailure
	}
	return err
}

// queuePurges hands each removal with purge in effect to the purger once.
func (p *Processor) queuePurges(ctx context.Context) {
	queued := map[Removal]bool{}
	for {
		for _, r := range p.control.Removals() {
			if r.Purge && !queued[r] {
				queued[r] = true
				p.purges.add(schemas.Control{TenantID: r.Tenant, IssuedAt: r.At, Removal: &schemas.Removal{Purge: true}})
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.control.Changed():
		}
	}
}

// applyEnriched warms the dedupe cache and the published-keys table from
// the enriched topic.
func (p *Processor) applyEnriched(msg kafka.Message) {
	if msg.Value == nil {
		p.handler.dedupe.forget(string(msg.Key))
		p.published.remove(string(msg.Key))
		return
	}
	e, err := p.codec.DecodeEnriched(context.Background(), msg.Value)
	if err != nil {
		return
	}
	p.published.put(e.TenantID, string(msg.Key), e.EnrichedAt)
	switch e.Status {
	case schemas.StatusEnriched:
		p.handler.dedupe.remember(string(msg.Key), e.InputFingerprint, outEnriched, e.EnrichedAt)
	case schemas.StatusNotMatched:
		p.handler.dedupe.remember(string(msg.Key), e.InputFingerprint, outNotMatched, e.EnrichedAt)
	}
}

// consume joins the group and runs one generation after another. kafka-go's
// ConsumerGroup makes generation boundaries explicit: a generation's context
// ends at a rebalance, and its commits carry its generation id, so the broker
// refuses them once another member owns the partitions (kafka-go issue 1398
// is what the Reader-with-GroupID path gets wrong).
func (p *Processor) consume(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: p.cfg.GroupID, Brokers: p.conn.brokers, Dialer: p.conn.dialer, Topics: []string{p.cfg.Topics.Profiles},
		StartOffset: kafka.FirstOffset, WatchPartitionChanges: true, JoinGroupBackoff: time.Second,
		HeartbeatInterval: 3 * time.Second, SessionTimeout: 30 * time.Second, RebalanceTimeout: 30 * time.Second,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) { p.log.Debug(fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("consumer group %s: %w", p.cfg.GroupID, err)
	}
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				break
			}
			p.log.Warn("join group failed, retrying", zap.String("group", p.cfg.GroupID), zap.Error(err))
			continue
		}
		p.startGeneration(ctx, gen)
	}
	// Drain before leaving the group: closing it would revoke the generation
	// and abandon the work we are about to finish and commit.
	p.inFlight.Wait()
	return group.Close()
}

// startGeneration starts one fetcher per assigned partition and a committer.
func (p *Processor) startGeneration(ctx context.Context, gen *kafka.Generation) {
	topic := p.cfg.Topics.Profiles
	assigned := gen.Assignments[topic]
	p.log.Info("generation started", zap.Int32("generation", gen.ID), zap.String("member", gen.MemberID), zap.Int("partitions", len(assigned)))
	c := &committer{proc: p, gen: gen, topic: topic, trackers: map[int]*offsetTracker{}}
	for _, a := range assigned {
		tr := newOffsetTracker(int32(a.ID), a.Offset, p.status.partition(int32(a.ID)))
		c.trackers[a.ID] = tr
		p.inFlight.Add(1)
		gen.Start(func(genCtx context.Context) {
			defer p.inFlight.Done()
			p.fetchPartition(ctx, genCtx, gen, a, tr, c)
		})
	}
	gen.Start(func(genCtx context.Context) {
		t := time.NewTicker(p.cfg.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-genCtx.Done():
				return
			case <-ctx.Done():
				return
			case <-t.C:
				c.commit(ctx)
			}
		}
	})
}

// fetchPartition feeds one partition into the window until the generation
// or the run ends, then settles the partition's in-flight work.
func (p *Processor) fetchPartition(runCtx, genCtx context.Context, gen *kafka.Generation, a kafka.PartitionAssignment, tr *offsetTracker, c *committer) {
	topic := p.cfg.Topics.Profiles
	log := p.log.With(zap.String("topic", topic), zap.Int("partition", a.ID), zap.Int32("generation", gen.ID))
	fetchCtx, stopFetch := context.WithCancel(runCtx)
	defer stopFetch()
	stopOnRevoke := context.AfterFunc(genCtx, stopFetch)
	defer stopOnRevoke()
	// Jobs outlive fetching on shutdown (to finish and commit) but not a
	// revoke: the new owner must not race our late outputs for the same keys.
	jobCtx, cancelJobs := context.WithCancel(context.Background())
	defer cancelJobs()
	cancelOnRevoke := context.AfterFunc(genCtx, func() {
		if runCtx.Err() == nil {
			cancelJobs()
		}
	})
	defer cancelOnRevoke()

	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: p.conn.brokers, Dialer: p.conn.dialer, Topic: topic, Partition: a.ID,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 250 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(a.Offset); err != nil {
		log.Error("set offset", zap.Int64("offset", a.Offset), zap.Error(err))
		return
	}
	log.Info("partition assigned", zap.Int64("offset", a.Offset))

	var jobs sync.WaitGroup
	for {
		msg, err := r.FetchMessage(fetchCtx)
		if err != nil {
			if fetchCtx.Err() == nil {
				log.Error("fetch failed", zap.Error(err))
			}
			break
		}
		tr.fetched(msg.Offset)
		jobs.Add(1)
		key := string(msg.Key)
		if msg.Key == nil {
			key = "\x00" + strconv.Itoa(msg.Partition) + "/" + strconv.FormatInt(msg.Offset, 10)
		}
		if err := p.window.submit(fetchCtx, key, func() {
			defer jobs.Done()
			p.process(jobCtx, msg, tr)
		}); err != nil {
			jobs.Done()
			break
		}
	}

	// Settle: on shutdown give in-flight work ShutdownTimeout to finish; on a
	// revoke it was cancelled above and returns at once.
	settled := make(chan struct{})
	go func() { jobs.Wait(); close(settled) }()
	select {
	case <-settled:
	case <-time.After(p.cfg.ShutdownTimeout):
		log.Warn("in-flight work did not finish in time; it will be redelivered", zap.Int64s("unfinished", tr.unfinished()))
		cancelJobs()
		<-settled
	}
	c.commitPartition(context.Background(), a.ID)
	log.Info("partition released", zap.Int64s("unfinished", tr.unfinished()))
}

// process runs one input through the handler and the publisher, then marks
// its offset done. Anything short of an acked output leaves it unfinished.
func (p *Processor) process(ctx context.Context, msg kafka.Message, tr *offsetTracker) {
	res, err := p.handler.handle(ctx, msg)
	if err != nil {
		return
	}
	if err := p.pub.publish(ctx, res.messages); err != nil {
		return
	}
	counted := res.outcome
	if res.countAs != "" {
		counted = res.countAs
	}
	tr.done(msg.Offset, finished{tenant: res.tenant, outcome: counted, records: res.records, at: time.Now().UTC().Truncate(time.Millisecond)})
	p.metrics.outcomes.WithLabelValues(res.tenant, res.outcome, res.reason).Inc()
	if res.records > 0 {
		p.metrics.records.WithLabelValues(res.tenant).Add(float64(res.records))
	}
}

// committer commits the generation's finished offsets, each partition's
// status records first: counts then always cover at least what was committed.
type committer struct {
	mu       sync.Mutex
	proc     *Processor
	gen      *kafka.Generation
	topic    string
	trackers map[int]*offsetTracker
}

func (c *committer) commit(ctx context.Context) { c.commitOnly(ctx, nil) }

func (c *committer) commitPartition(ctx context.Context, id int) { c.commitOnly(ctx, &id) }

func (c *committer) commitOnly(ctx context.Context, only *int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proc
	offsets := map[int]int64{}
	var statuses []schemas.Status
	for id, tr := range c.trackers {
		if only != nil && id != *only {
			continue
		}
		if next, moved := tr.commitPoint(); moved {
			offsets[id] = next
			statuses = append(statuses, tr.statusAt(next)...)
		}
	}
	if len(offsets) == 0 {
		return
	}
	redo := func() {
		for _, s := range statuses {
			c.trackers[int(s.Partition)].redo([]schemas.Status{s})
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := p.writeStatus(ctx, statuses); err != nil {
		p.log.Warn("status not written; commit postponed", zap.Error(err))
		redo()
		return
	}
	if err := c.gen.CommitOffsets(map[string]map[int]int64{c.topic: offsets}); err != nil {
		// Refused after a rebalance: the partitions are someone else's now.
		p.metrics.committed.WithLabelValues("refused").Inc()
		p.log.Info("commit not accepted", zap.Int32("generation", c.gen.ID), zap.Error(err))
		redo()
		return
	}
	p.metrics.committed.WithLabelValues("ok").Inc()
	for id, next := range offsets {
		c.trackers[id].committedTo(next)
	}
}
