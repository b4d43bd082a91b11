package processor

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// statusTable is the status topic read into memory: the last record of
// every tenant/partition. A new partition owner resumes its counts from it.
type statusTable struct {
	mu      sync.RWMutex
	records map[string]schemas.Status
}

func newStatusTable() *statusTable { return &statusTable{records: map[string]schemas.Status{}} }

func statusKey(tenant string, partition int32) string {
	if partition == schemas.ControlPartition {
		return tenant + "/control"
	}
	return tenant + "/" + strconv.Itoa(int(partition))
}

func (t *statusTable) put(s schemas.Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.records[statusKey(s.TenantID, s.Partition)] = s
}

// partition returns every tenant's counts on one partition.
func (t *statusTable) partition(p int32) map[string]schemas.Status {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := map[string]schemas.Status{}
	for _, s := range t.records {
		if s.Partition == p {
			out[s.TenantID] = s
		}
	}
	return out
}

// ReadStatus reads the whole status topic once: the latest record per key.
func ReadStatus(ctx context.Context, k Kafka, topic string, codec *schemas.Codec) ([]schemas.Status, error) {
	latest := map[string]schemas.Status{}
	err := ReadAll(ctx, k, topic, func(m kafka.Message) {
		if s, err := codec.DecodeStatus(ctx, m.Value); err == nil {
			latest[string(m.Key)] = s
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]schemas.Status, 0, len(latest))
	for _, s := range latest {
		out = append(out, s)
	}
	return out, nil
}

// writeStatus encodes and publishes status records, acked.
func (p *Processor) writeStatus(ctx context.Context, records []schemas.Status) error {
	if len(records) == 0 {
		return nil
	}
	states := map[string]controlplane.TenantState{}
	for _, s := range p.control.Snapshot() {
		states[s.TenantID] = s
	}
	msgs := make([]kafka.Message, 0, len(records))
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, s := range records {
		st, ok := states[s.TenantID]
		s.State, s.StateReason = schemas.StateNotConnected, ""
		if ok {
			s.State, s.StateReason = st.State, st.Reason
		}
		s.UpdatedAt = now
		value, err := p.codec.Encode(schemas.EnrichmentStatus, s.Native())
		if err != nil {
			return err
		}
		msgs = append(msgs, kafka.Message{Topic: p.cfg.Topics.Status, Partition: -1, Key: []byte(statusKey(s.TenantID, s.Partition)), Value: value})
	}
	if err := p.pub.Publish(ctx, msgs); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	for _, s := range records {
		p.status.put(s)
	}
	return nil
}

func (p *Processor) applyStatus(msg kafka.Message) {
	if msg.Value == nil {
		return
	}
	s, err := p.codec.DecodeStatus(context.Background(), msg.Value)
	if err != nil || !strings.HasPrefix(string(msg.Key), s.TenantID+"/") {
		return
	}
	p.status.put(s)
}
