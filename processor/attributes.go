package processor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/internal/kafkaio"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// AttributeSample is what the tail of the profiles topic shows of one
// tenant's profiles.
type AttributeSample struct {
	// Profiles is how many distinct profiles of the tenant were seen.
	Profiles int
	// Attributes counts, per attribute name, the profiles holding a
	// non-blank value for it.
	Attributes map[string]int
}

// RecentAttributes reads the last perPartition records of every partition
// of the profiles topic and samples the tenant's profiles (latest per key,
// deletions dropped): enough to tell whether a mapped attribute exists.
func RecentAttributes(ctx context.Context, k Kafka, topic string, codec *schemas.Codec, tenant string, perPartition int) (AttributeSample, error) {
	conn, err := k.Connect()
	if err != nil {
		return AttributeSample{}, err
	}
	ends, err := kafkaio.Spans(ctx, conn, topic)
	if err != nil {
		return AttributeSample{}, err
	}
	var mu sync.Mutex
	latest := map[string]map[string]string{}
	errs := make(chan error, len(ends))
	prefix := []byte(tenant + "/")
	for partition, s := range ends {
		go func() {
			errs <- readTail(ctx, conn, topic, partition, max(s.First, s.End-int64(perPartition)), s.End, func(m kafka.Message) {
				if len(m.Key) <= len(prefix) || string(m.Key[:len(prefix)]) != string(prefix) {
					return
				}
				var attrs map[string]string
				if m.Value != nil {
					p, err := codec.DecodeProfile(ctx, m.Value)
					if err != nil || p.TenantID != tenant {
						return
					}
					attrs = p.Attributes
				}
				mu.Lock()
				defer mu.Unlock()
				latest[string(m.Key)] = attrs
			})
		}()
	}
	for range ends {
		if err := <-errs; err != nil {
			return AttributeSample{}, err
		}
	}
	sample := AttributeSample{Attributes: map[string]int{}}
	for _, attrs := range latest {
		if attrs == nil {
			continue
		}
		sample.Profiles++
		for name, v := range attrs {
			if strings.TrimSpace(v) != "" {
				sample.Attributes[name]++
			}
		}
	}
	return sample, nil
}

// readTail reads one partition from offset from up to (not including) end.
func readTail(ctx context.Context, conn kafkaio.Conn, topic string, partition int, from, end int64, apply func(kafka.Message)) error {
	if from >= end {
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: conn.Brokers, Dialer: conn.Dialer, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return err
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		apply(m)
		if m.Offset+1 >= end {
			return nil
		}
	}
}
