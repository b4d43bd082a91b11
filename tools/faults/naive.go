package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// naiveLoop is the baseline of issue 10: the simplest correct consumer. One
// event at a time: fetch it (kafka-go Reader in its own group), decode it,
// make one Leadspace single call, encode the answer, produce it (acks=all,
// no batching), commit the offset. It runs for d on program-1's token and
// returns how many events it finished.
func naiveLoop(ctx context.Context, st *stack, d time.Duration) (done int, took time.Duration, n429 int, err error) {
	if _, err := st.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: "naive-enriched", NumPartitions: 6, ReplicationFactor: 1}}}); err != nil {
		return 0, 0, 0, err
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{st.bootstrap}, GroupID: "naive-loop", Topic: topicProfiles,
		StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	w := &kafka.Writer{Addr: kafka.TCP(st.bootstrap), Topic: "naive-enriched", RequiredAcks: kafka.RequireAll,
		BatchSize: 1, BatchTimeout: time.Millisecond}
	defer w.Close()
	hc := &http.Client{Timeout: 30 * time.Second}
	token := st.cfg.tokens[0]
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	// stop ends the loop: nil when the time is up, the error otherwise.
	stop := func(err error) (int, time.Duration, int, error) {
		if ctx.Err() != nil {
			err = nil
		}
		return done, time.Since(start), n429, err
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return stop(err)
		}
		p, err := st.codec.DecodeProfile(ctx, m.Value)
		if err != nil {
			continue
		}
		e := schemas.Enriched{EventID: "naive-" + p.EventID, TenantID: p.TenantID, ProfileID: p.ProfileID, InputFingerprint: "-",
			EnrichedAt: time.Now(), Lineage: schemas.Lineage{SourceTopic: m.Topic, SourcePartition: int32(m.Partition), SourceOffset: m.Offset,
				SourceEventID: p.EventID, ProfileVersion: p.Version}}
		name := strings.TrimSpace(p.Attributes[attrName])
		if name == "" {
			e.Status, e.SkipReason = schemas.StatusSkipped, "map.missing_company_name"
		} else {
			matched, err := naiveCall(ctx, hc, st.simURL, token, name, p.Attributes[attrWebsite], &n429)
			if err != nil {
				return stop(err)
			}
			e.Status = schemas.StatusNotMatched
			if matched {
				e.Status = schemas.StatusEnriched
			}
		}
		v, err := st.codec.Encode(schemas.EnrichedCompany, e.Native())
		if err != nil {
			return done, time.Since(start), n429, err
		}
		if err := w.WriteMessages(ctx, kafka.Message{Key: m.Key, Value: v}); err != nil {
			return stop(err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			return stop(err)
		}
		done++
	}
}

// naiveCall posts one single enrichment; a 429 waits a second and retries.
func naiveCall(ctx context.Context, hc *http.Client, base, token, name, website string, n429 *int) (bool, error) {
	body, _ := json.Marshal(map[string]any{"company": map[string]any{"name": name, "website": website}})
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/enrichment/enrich/single", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			*n429++
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("leadspace single: %s", resp.Status)
		}
		var res struct {
			Data struct {
				Status string `json:"enrichment_status"`
			} `json:"data"`
		}
		_ = json.Unmarshal(b, &res)
		return res.Data.Status != "Not Enriched", nil
	}
}
