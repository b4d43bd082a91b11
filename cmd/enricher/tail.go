package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// cmdTail follows new outputs as the service writes them: enrichments and
// (unless --no-dead-letters) dead letters, decoded, one line each.
func cmdTail(args []string) error {
	s := newSettings("tail")
	var k kafkaFlags
	var tenant string
	var asJSON, fromStart, noDead bool
	var limit int
	k.bind(s)
	s.StringVar(&tenant, "tenant", "", "only this tenant")
	s.BoolVar(&asJSON, "json", false, "one JSON object per line")
	s.BoolVar(&fromStart, "from-beginning", false, "print what the topics hold first, then follow")
	s.BoolVar(&noDead, "no-dead-letters", false, "enrichments only")
	s.IntVar(&limit, "limit", 0, "exit after this many records (0: follow until Ctrl-C)")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if tenant != "" {
		if err := checkTenant(tenant); err != nil {
			return err
		}
	}
	if limit < 0 {
		return badUsage("limit: %d is negative", limit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	setup, cancelSetup := context.WithTimeout(ctx, time.Minute)
	defer cancelSetup()
	codec, err := k.codec(setup)
	if err != nil {
		return err
	}
	if tenant != "" {
		if _, err := loadTenant(setup, &k, codec, controlplane.Auth{}, tenant); err != nil {
			return err
		}
	}
	topics := []string{k.topics.Enriched}
	if !noDead {
		topics = append(topics, k.topics.DeadLetters)
	}
	// Start at the end each topic has now: only what comes after is new.
	starts := map[string]map[int]int64{}
	cl, err := k.kafka().Client()
	if err != nil {
		return err
	}
	defer processor.CloseClient(cl)
	if tr, ok := cl.Transport.(*kafka.Transport); ok {
		defer tr.CloseIdleConnections() // or it polls metadata until the process ends
	}
	for _, t := range topics {
		starts[t] = map[int]int64{}
		if fromStart {
			continue
		}
		if starts[t], err = processor.TopicEnds(setup, cl, t); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	printed := 0
	out := json.NewEncoder(os.Stdout)
	show := func(topic string, m kafka.Message) {
		if m.Offset < starts[topic][m.Partition] || (tenant != "" && !strings.HasPrefix(string(m.Key), tenant+"/")) {
			return
		}
		line, obj := describe(ctx, codec, topic == k.topics.DeadLetters, m)
		if line == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if limit > 0 && printed >= limit {
			return
		}
		if asJSON {
			_ = out.Encode(obj)
		} else {
			fmt.Printf("%s  %s\n", m.Time.Local().Format("15:04:05.000"), line)
		}
		printed++
		if limit > 0 && printed >= limit {
			cancel()
		}
	}
	errs := make(chan error, len(topics))
	for _, t := range topics {
		go func() {
			errs <- processor.Follow(ctx, k.kafka(), t, func(m kafka.Message) { show(t, m) }, func() {})
		}()
	}
	fmt.Fprintf(os.Stderr, "following %s (Ctrl-C to stop)\n", strings.Join(topics, " and "))
	for range topics {
		if err := <-errs; err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

// describe decodes one output into a line and a JSON object; "" for what
// is not an output (a replay receipt, a value that does not decode).
func describe(ctx context.Context, codec *schemas.Codec, dead bool, m kafka.Message) (string, any) {
	switch {
	case dead && m.Value == nil:
		return "", nil // a replay receipt
	case dead:
		d, err := codec.DecodeDead(ctx, m.Value)
		if err != nil {
			return "", nil
		}
		line := fmt.Sprintf("DEAD_LETTER  %s  %s %s (%s)", string(d.OriginalKey), d.Stage, d.Reason, d.ErrorClass)
		return line, map[string]any{"type": "dead_letter", "original_key": string(d.OriginalKey), "dead_letter_id": d.ID,
			"stage": d.Stage, "reason": d.Reason, "error_class": d.ErrorClass, "replayable": d.Replayable, "replay_count": d.ReplayCount}
	case m.Value == nil:
		return fmt.Sprintf("WITHDRAWN    %s", m.Key), map[string]any{"type": "withdrawn", "key": string(m.Key)}
	}
	e, err := codec.DecodeEnriched(ctx, m.Value)
	if err != nil {
		return "", nil
	}
	detail := ""
	switch {
	case e.Company != nil:
		detail = fmt.Sprintf("%s, %s", e.Company.Name, orDash(e.Company.Industry))
	case e.SkipReason != "":
		detail = e.SkipReason
	case e.Sent != nil:
		detail = "sent: " + e.Sent.Name
	}
	return fmt.Sprintf("%-12s %s/%s  %s  %s", e.Status, e.TenantID, e.ProfileID, orDash(e.Confidence), detail),
		map[string]any{"type": "enriched", "enrichment": e}
}

// topicEnds is the next offset of every partition of a topic now.
