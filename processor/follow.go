package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// follow reads every partition of a compacted topic from its start, calls
// apply for each record in partition order, calls caughtUp once every
// partition reached the end it had when follow started, and then keeps
// following new records until ctx ends. It is how an instance builds its
// tables (control, dedupe) without a consumer group: every instance needs
// all partitions.
func follow(ctx context.Context, conn connection, topic string, apply func(kafka.Message), caughtUp func()) error {
	ends, err := retryTransient(ctx, func() (map[int]span, error) { return partitionEnds(ctx, conn, topic) })
	if err != nil {
		return err
	}
	var pending sync.WaitGroup
	pending.Add(len(ends))
	go func() {
		pending.Wait()
		if ctx.Err() == nil {
			caughtUp()
		}
	}()
	errs := make(chan error, len(ends))
	for partition, end := range ends {
		go func() {
			errs <- followPartition(ctx, conn, topic, partition, end, apply, pending.Done)
		}()
	}
	var first error
	for range ends {
		if err := <-errs; err != nil && first == nil && !errors.Is(err, context.Canceled) {
			first = err
		}
	}
	return first
}

type span struct{ first, end int64 }

// retryTransient retries what a broker may refuse for a moment: a topic just
// created has no leader yet, a leader moves during a roll. It gives up after
// 30 s or on the first error that is not temporary.
func retryTransient[T any](ctx context.Context, f func() (T, error)) (T, error) {
	deadline := time.Now().Add(30 * time.Second)
	wait := 50 * time.Millisecond
	for {
		v, err := f()
		var kerr kafka.Error
		temporary := errors.As(err, &kerr) && kerr.Temporary()
		if err == nil || !temporary || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Second)
	}
}

// partitionEnds lists each partition's first and next offset now.
func partitionEnds(ctx context.Context, conn connection, topic string) (map[int]span, error) {
	cl := conn.client()
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		var terr error
		if len(meta.Topics) == 1 {
			terr = meta.Topics[0].Error
		}
		return nil, fmt.Errorf("topic %s is not available: %v", topic, terr)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	ends := map[int]span{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		ends[po.Partition] = span{first: po.FirstOffset, end: po.LastOffset}
	}
	return ends, nil
}

func followPartition(ctx context.Context, conn connection, topic string, partition int, s span, apply func(kafka.Message), caughtUp func()) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: conn.brokers, Dialer: conn.dialer, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20,
		// Short waits keep changes (a consent withdrawal) visible within a second.
		MaxWait: 200 * time.Millisecond, ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: 500 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return err
	}
	var once sync.Once
	if s.end <= s.first {
		once.Do(caughtUp)
	}
	for {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			once.Do(caughtUp) // release waiters; ctx is over
			return err
		}
		apply(msg)
		if msg.Offset+1 >= s.end {
			once.Do(caughtUp)
		}
	}
}
