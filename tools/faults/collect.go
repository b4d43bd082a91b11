package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// record is one Kafka record as read back.
type record struct {
	partition int
	offset    int64
	at        time.Time // the record's timestamp (set by its producer)
	key       string
	value     []byte
}

// partitions lists a topic's partition ids.
func partitionsOf(ctx context.Context, cl *kafka.Client, topic string) ([]int, error) {
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	for _, t := range md.Topics {
		if t.Name == topic {
			if t.Error != nil {
				return nil, t.Error
			}
			var ids []int
			for _, p := range t.Partitions {
				ids = append(ids, p.ID)
			}
			sort.Ints(ids)
			return ids, nil
		}
	}
	return nil, fmt.Errorf("topic %s not found", topic)
}

// endOffsets returns each partition's log end offset (high watermark).
func endOffsets(ctx context.Context, cl *kafka.Client, topic string, parts []int) (map[int]int64, error) {
	req := make([]kafka.OffsetRequest, len(parts))
	for i, p := range parts {
		req[i] = kafka.LastOffsetOf(p)
	}
	resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		out[po.Partition] = po.LastOffset
	}
	return out, nil
}

// committedOffsets returns the group's committed offset per partition (-1: none).
func committedOffsets(ctx context.Context, cl *kafka.Client, group, topic string, parts []int) (map[int]int64, error) {
	resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	out := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

// readAll reads every partition of topic from the beginning to the end
// offsets seen at the call, in offset order per partition.
func readAll(ctx context.Context, bootstrap string, cl *kafka.Client, topic string) ([]record, error) {
	parts, err := partitionsOf(ctx, cl, topic)
	if err != nil {
		return nil, err
	}
	ends, err := endOffsets(ctx, cl, topic, parts)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var out []record
	var firstErr error
	var wg sync.WaitGroup
	for _, p := range parts {
		if ends[p] == 0 {
			continue
		}
		wg.Go(func() {
			recs, err := readPartition(ctx, bootstrap, topic, p, 0, ends[p])
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			out = append(out, recs...)
		})
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].partition != out[j].partition {
			return out[i].partition < out[j].partition
		}
		return out[i].offset < out[j].offset
	})
	return out, firstErr
}

// readPartition reads [from, end) of one partition.
func readPartition(ctx context.Context, bootstrap, topic string, p int, from, end int64) ([]record, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: p,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var out []record
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return out, fmt.Errorf("read %s[%d] at %d of %d: %w", topic, p, from+int64(len(out)), end, err)
		}
		out = append(out, record{partition: m.Partition, offset: m.Offset, at: m.Time, key: string(m.Key), value: m.Value})
		if m.Offset >= end-1 {
			return out, nil
		}
	}
}

// simCall is one entry of the simulator's request log (GET /__sim/calls).
type simCall struct {
	Time    time.Time `json:"time"`
	Program string    `json:"program"`
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Status  int       `json:"status"`
	Bulk    bool      `json:"bulk"`
	Records []struct {
		ExternalID string `json:"external_id"`
		Company    struct {
			Name string `json:"name"`
		} `json:"company"`
	} `json:"records"`
}

func (c simCall) isSingle() bool { return c.Path == "/enrichment/enrich/single" }
func (c simCall) isSubmit() bool { return c.Path == "/enrichment/enrich/bulk" }
func (c simCall) isPoll() bool   { return strings.HasPrefix(c.Path, "/v3/enrichment/results/") }

// kind names the call for the call logs: single, submit, poll or other.
func (c simCall) kind() string {
	switch {
	case c.isSingle():
		return "single"
	case c.isSubmit():
		return "submit"
	case c.isPoll():
		return "poll"
	}
	return "other"
}

// received is how many records the simulator took for enrichment (and so
// counted as received, what the program's owner pays for): a single call
// that reached enrichment (200, or 0 when the client gave up during the
// simulated latency) and a bulk submit answered 202.
func (c simCall) received() int {
	switch {
	case c.isSingle() && (c.Status == http.StatusOK || c.Status == 0):
		return len(c.Records)
	case c.isSubmit() && c.Status == http.StatusAccepted:
		return len(c.Records)
	}
	return 0
}

// fetchCalls reads the simulator's request log.
func fetchCalls(ctx context.Context, simURL string) ([]simCall, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, simURL+"/__sim/calls", nil)
	hc := &http.Client{Timeout: 5 * time.Minute}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /__sim/calls: %s", resp.Status)
	}
	var calls []simCall
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		return nil, fmt.Errorf("decode /__sim/calls: %w", err)
	}
	return calls, nil
}

// resetSim forgets the simulator's calls, jobs and rate buckets (only while
// no instance runs).
func resetSim(ctx context.Context, simURL string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, simURL+"/__sim/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST /__sim/reset: %s", resp.Status)
	}
	return nil
}
