package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
)

// Publisher writes outputs in batches and calls back once the broker
// acknowledged them on all in-sync replicas. kafka-go's writer has no
// idempotent producer, so a retried write can duplicate: outputs are
// at-least-once, and consumers drop duplicates by event id.
//
// A broker outage is ridden out: transient failures are retried with
// backoff for as long as they last, and the instance reports itself not
// ready meanwhile. A failure that cannot pass (a record the broker refuses)
// is retried a few times, then stops the instance with its reason, so the
// input is redelivered to a fixed instance rather than retried forever.
type Publisher struct {
	w      *kafka.Writer
	log    *zap.Logger
	report func(error) // health: the last write's error, nil once writes succeed
	fatal  func(error) // stops the instance

	mu     sync.Mutex
	queue  []*publication // retries, and what take has not yet spread by lane
	wake   chan struct{}
	stop   chan struct{} // closed by close
	closed bool
	wg     sync.WaitGroup

	// lanes hold publications by lane (the input's Leadspace program),
	// taking turns into each batch: a big tenant's 500-output bulk answers
	// do not queue a small tenant's output behind them (issue 21).
	lanes map[string]*pubLane
	turns []*pubLane
}

// pubLane is one lane's publications, oldest first.
type pubLane struct {
	name string
	pubs []*publication
}

// publication is one input's outputs: all acknowledged, or none counted.
type publication struct {
	ctx      context.Context
	msgs     []kafka.Message
	done     func(error)
	attempts int // non-transient failures so far
}

// Produce tuning. The batch bytes never exceed the smallest
// max.message.bytes of the topics written (read at start): a bigger batch
// would be refused whole.
const (
	publishWorkers      = 4
	publishMaxBatch     = 2000
	publishMaxAttempts  = 5 // for failures that are not transient
	publishBatchTimeout = 2 * time.Millisecond
)

// publishWriterBatch is a partition's batch in kafka-go's writer, which
// allocates that many messages for every batch however few it holds: at
// 2,000 that was 300 KB per batch, 13% of what a 4-program backlog
// allocated.
const publishWriterBatch = 500

// coPartitioned sends a message with a partition number set to that
// partition (enriched-company and the DLQ mirror the input's partitions),
// and hashes the key like the Java client for the rest (Partition < 0).
type coPartitioned struct{ hash kafka.Murmur2Balancer }

func (b coPartitioned) Balance(msg kafka.Message, partitions ...int) int {
	if msg.Partition >= 0 && slices.Contains(partitions, msg.Partition) {
		return msg.Partition
	}
	return b.hash.Balance(msg, partitions...)
}

func NewPublisher(conn Conn, batchBytes int, log *zap.Logger, report, fatal func(error)) *Publisher {
	p := &Publisher{
		w: &kafka.Writer{
			Addr:         kafka.TCP(conn.Brokers...),
			Balancer:     coPartitioned{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: publishBatchTimeout,
			BatchSize:    publishWriterBatch,
			BatchBytes:   int64(batchBytes),
			MaxAttempts:  3,
			Transport:    conn.Transport,
		},
		log: log, report: report, fatal: fatal, wake: make(chan struct{}, 1), stop: make(chan struct{}), lanes: map[string]*pubLane{},
	}
	for range publishWorkers {
		p.wg.Go(p.work)
	}
	return p
}

// Send queues msgs; done is called once with nil when all were
// acknowledged, or with ctx's error if ctx ended first. An empty msgs is
// done at once.
func (p *Publisher) Send(ctx context.Context, msgs []kafka.Message, done func(error)) {
	p.SendIn(ctx, "", msgs, done)
}

// SendIn is Send in a lane (the input's Leadspace program): lanes take
// turns into each batch.
func (p *Publisher) SendIn(ctx context.Context, lane string, msgs []kafka.Message, done func(error)) {
	if len(msgs) == 0 {
		done(nil)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		done(errors.New("publisher closed"))
		return
	}
	l := p.lanes[lane]
	if l == nil {
		l = &pubLane{name: lane}
		p.lanes[lane] = l
		p.turns = append(p.turns, l)
	}
	l.pubs = append(l.pubs, &publication{ctx: ctx, msgs: msgs, done: done})
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Publish writes msgs and waits for their acknowledgement.
func (p *Publisher) Publish(ctx context.Context, msgs []kafka.Message) error {
	errc := make(chan error, 1)
	p.Send(ctx, msgs, func(err error) { errc <- err })
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// take removes up to publishMaxBatch messages' worth of publications.
func (p *Publisher) take() ([]*publication, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.closeQueuedLocked()
		return nil, false
	}
	p.spreadLocked()
	if len(p.queue) == 0 {
		return nil, true
	}
	n, size := 0, 0
	for n < len(p.queue) && (n == 0 || size+len(p.queue[n].msgs) <= publishMaxBatch) {
		size += len(p.queue[n].msgs)
		n++
	}
	batch := p.queue[:n:n]
	p.queue = p.queue[n:]
	if len(p.queue) > 0 || len(p.turns) > 0 {
		select {
		case p.wake <- struct{}{}: // more for another worker
		default:
		}
	}
	return batch, true
}

func (p *Publisher) work() {
	failures := 0
	for {
		batch, open := p.take()
		if batch == nil {
			if !open {
				return
			}
			select {
			case <-p.wake:
			case <-p.stop:
			}
			continue
		}
		n := 0
		for _, pub := range batch {
			n += len(pub.msgs)
		}
		live := make([]*publication, 0, len(batch))
		msgs := make([]kafka.Message, 0, n)
		for _, pub := range batch {
			if err := pub.ctx.Err(); err != nil {
				pub.done(err)
				continue
			}
			live = append(live, pub)
			msgs = append(msgs, pub.msgs...)
		}
		if len(live) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := p.w.WriteMessages(ctx, msgs...)
		cancel()
		if err == nil {
			failures = 0
			p.report(nil)
			for _, pub := range live {
				pub.done(nil)
			}
			continue
		}
		// Work out which publications failed: WriteErrors is aligned with msgs.
		var werrs kafka.WriteErrors
		var retry []*publication
		i := 0
		for _, pub := range live {
			var perr error
			if errors.As(err, &werrs) && len(werrs) == len(msgs) {
				perr = errors.Join(werrs[i : i+len(pub.msgs)]...)
			} else {
				perr = err
			}
			i += len(pub.msgs)
			switch {
			case perr == nil:
				pub.done(nil)
			case Transient(perr):
				retry = append(retry, pub)
			default:
				pub.attempts++
				if pub.attempts >= publishMaxAttempts {
					p.fatal(fmt.Errorf("the broker refused an output %d times (topic %s): %w", pub.attempts, pub.msgs[0].Topic, perr))
					pub.done(perr)
					continue
				}
				retry = append(retry, pub)
			}
		}
		if len(retry) == 0 {
			continue
		}
		failures++
		p.report(fmt.Errorf("produce failed: %w", err))
		p.log.Warn("produce failed; retrying", zap.Error(err), zap.Int("outputs", len(retry)), zap.Int("failures", failures))
		p.mu.Lock()
		p.queue = append(retry, p.queue...)
		p.mu.Unlock()
		stopped, cancelWait := context.WithCancel(context.Background())
		go func() {
			select {
			case <-p.stop:
				cancelWait()
			case <-stopped.Done():
			}
		}()
		_ = Backoff.Wait(stopped, failures)
		cancelWait()
	}
}

// spreadLocked appends the lanes' publications to the queue, a turn each,
// up to a batch's worth.
func (p *Publisher) spreadLocked() {
	size := 0
	for _, pub := range p.queue {
		size += len(pub.msgs)
	}
	for len(p.turns) > 0 && size < publishMaxBatch {
		l := p.turns[0]
		p.turns[0] = nil
		p.turns = p.turns[1:]
		pub := l.pubs[0]
		l.pubs[0] = nil
		l.pubs = l.pubs[1:]
		p.queue = append(p.queue, pub)
		size += len(pub.msgs)
		if len(l.pubs) > 0 {
			p.turns = append(p.turns, l)
		} else {
			delete(p.lanes, l.name)
		}
	}
}

// closeQueuedLocked fails every publication not yet written.
func (p *Publisher) closeQueuedLocked() {
	for _, pub := range p.queue {
		pub.done(errors.New("publisher closed"))
	}
	p.queue = nil
	for _, l := range p.turns {
		for _, pub := range l.pubs {
			pub.done(errors.New("publisher closed"))
		}
	}
	p.turns = nil
	clear(p.lanes)
}

// Close stops the workers after the queue is empty and closes the writer.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	p.closeQueuedLocked()
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
	return p.w.Close()
}
