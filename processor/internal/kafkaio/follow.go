package kafkaio

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// FollowConn reads every partition of a compacted topic from its start, calls
// apply for each record in partition order, calls caughtUp once every
// partition reached the end it had when follow started, and then keeps
// following new records until ctx ends. It is how an instance builds the
// tables every instance needs whole (control, status) without a consumer
// group. It rides out broker outages of any length and returns only when
// ctx ends.
// It reports its health to report (may be nil): report(err) while it
// cannot read the topic, report(nil) once it can again.
func FollowConn(ctx context.Context, conn Conn, topic string, apply func(kafka.Message), caughtUp func(), report func(error)) error {
	if report == nil {
		report = func(error) {}
	}
	var ends map[int]Span
	err := Backoff.Do(ctx, "list partitions of "+topic, func() (err error) {
		ends, err = Spans(ctx, conn, topic)
		report(err)
		return err
	}, func(error) bool { return true }, nil)
	if err != nil {
		return nil // ctx ended
	}
	var pending sync.WaitGroup
	pending.Add(len(ends))
	go func() {
		pending.Wait()
		if ctx.Err() == nil {
			caughtUp()
		}
	}()
	var health partitionHealth
	health.report = report
	var wg sync.WaitGroup
	for partition, end := range ends {
		wg.Go(func() { followPartition(ctx, conn, topic, partition, end, apply, pending.Done, &health) })
	}
	wg.Wait()
	return nil
}

// partitionHealth folds the partitions' read errors into one report: healthy
// only when no partition is failing.
type partitionHealth struct {
	mu      sync.Mutex
	failing map[int]error
	report  func(error)
}

func (h *partitionHealth) set(partition int, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing == nil {
		h.failing = map[int]error{}
	}
	_, was := h.failing[partition]
	if err == nil {
		if !was {
			return
		}
		delete(h.failing, partition)
	} else {
		h.failing[partition] = err
	}
	for p, e := range h.failing {
		h.report(fmt.Errorf("partition %d: %w", p, e))
		return
	}
	h.report(nil)
}

type Span struct{ First, End int64 }

// idleEnd is how long a read waits for the next record below a partition's
// end before it takes the rest for gaps: compaction can remove the records
// just below the end of an idle partition.
const idleEnd = 5 * time.Second

// Spans lists each partition's first and next offset now.
func Spans(ctx context.Context, conn Conn, topic string) (map[int]Span, error) {
	return ClientSpans(ctx, conn.Client(), topic)
}

func ClientSpans(ctx context.Context, cl *kafka.Client, topic string) (map[int]Span, error) {
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		var terr error
		if len(meta.Topics) == 1 {
			terr = meta.Topics[0].Error
		}
		return nil, fmt.Errorf("topic %s is not available: %w", topic, terr)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	ends := map[int]Span{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		ends[po.Partition] = Span{First: po.FirstOffset, End: po.LastOffset}
	}
	return ends, nil
}

// PartitionSpan is one partition's first and next offset now, retried
// through outages until ctx ends.
func PartitionSpan(ctx context.Context, conn Conn, topic string, partition int) (Span, error) {
	var s Span
	err := Backoff.Do(ctx, fmt.Sprintf("offsets of %s/%d", topic, partition), func() error {
		res, err := conn.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)}}})
		if err != nil {
			return err
		}
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				return po.Error
			}
			if po.Partition == partition {
				s = Span{First: po.FirstOffset, End: po.LastOffset}
				return nil
			}
		}
		return fmt.Errorf("no offsets for %s/%d", topic, partition)
	}, Transient, nil)
	return s, err
}

// ReadPartition reads one partition from offset from (or its first offset,
// if later) up to the end it has when called, and returns the next offset
// to read. It rides out outages until ctx ends.
func ReadPartition(ctx context.Context, conn Conn, topic string, partition int, from int64, apply func(kafka.Message)) (int64, error) {
	return readRange(ctx, conn, topic, partition, from, -1, nil, apply)
}

// ReadHeaders is readPartition for readers that need keys and headers
// only: values are copied only where needValue says so.
func ReadHeaders(ctx context.Context, conn Conn, topic string, partition int, from int64, needValue func([]kafka.Header) bool, apply func(kafka.Message)) (int64, error) {
	return readRange(ctx, conn, topic, partition, from, -1, func(h []kafka.Header) bool { return needValue == nil || !needValue(h) }, apply)
}

// ReadPartitionTo reads one partition from its first offset up to end.
func ReadPartitionTo(ctx context.Context, conn Conn, topic string, partition int, end int64, apply func(kafka.Message)) (int64, error) {
	return readRange(ctx, conn, topic, partition, 0, end, nil, apply)
}

// readRange reads [from, until) of a partition; until < 0 means its end now.
func readRange(ctx context.Context, conn Conn, topic string, partition int, from, until int64, skipValue func([]kafka.Header) bool, apply func(kafka.Message)) (int64, error) {
	s, err := PartitionSpan(ctx, conn, topic, partition)
	if err != nil {
		return from, err
	}
	if until >= 0 && until < s.End {
		s.End = until
	}
	start := max(from, s.First)
	if start >= s.End {
		return max(from, s.End), nil
	}
	f := NewFetcher(conn, topic, partition, start, 4<<20)
	f.skipValue = skipValue
	next := start
	for failures := 0; next < s.End; {
		fctx, cancel := context.WithTimeout(ctx, idleEnd)
		msg, err := f.Fetch(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return next, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) && failures == 0 {
				// Nothing more arrives: the offsets left below the end are
				// gaps (compacted records, transaction markers).
				return s.End, nil
			}
			// Pace the retries against a broker that is away.
			failures++
			if err := Backoff.Wait(ctx, failures); err != nil {
				return next, err
			}
			continue
		}
		failures = 0
		if msg.Offset >= s.End {
			break
		}
		apply(msg)
		next = msg.Offset + 1
	}
	return next, nil
}

func followPartition(ctx context.Context, conn Conn, topic string, partition int, s Span, apply func(kafka.Message), caughtUp func(), health *partitionHealth) {
	f := NewFetcher(conn, topic, partition, s.First, 1<<20)
	var once sync.Once
	if s.End <= s.First {
		once.Do(caughtUp)
	}
	failures := 0
	for {
		fctx, cancel := context.WithTimeout(ctx, idleEnd)
		msg, err := f.Fetch(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				once.Do(caughtUp) // release waiters; ctx is over
				return
			}
			if errors.Is(err, context.DeadlineExceeded) && failures == 0 {
				once.Do(caughtUp) // idle: what is left below the end are gaps
				continue
			}
			health.set(partition, err)
			failures++
			if errors.Is(Backoff.Wait(ctx, failures), context.Canceled) {
				once.Do(caughtUp)
				return
			}
			continue
		}
		if failures > 0 {
			failures = 0
			health.set(partition, nil)
		}
		apply(msg)
		if msg.Offset+1 >= s.End {
			once.Do(caughtUp)
		}
	}
}
