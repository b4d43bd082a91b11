package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// replayBatch is how many records are written (and acked) before their
// receipts: a crash loses at most one batch's receipts.
const replayBatch = 500

// cmdReplay puts dead letters back on their source topic, where the running
// service consumes them like any other event. See dlq.go for the ledger that
// makes a second run of the same replay write nothing.
func cmdReplay(args []string) error {
	s := newSettings("replay")
	var k kafkaFlags
	var f dlqFilter
	var o replayOptions
	var dryRun, asJSON bool
	k.bind(s)
	f.bind(s)
	s.BoolVar(&o.includeUnreplayable, "include-unreplayable", false, "also replay dead letters marked not replayable (e.g. after fixing the input upstream)")
	s.BoolVar(&o.includeSuperseded, "include-superseded", false, "also replay dead letters whose key has a newer event on the source topic (it would overwrite the newer answer)")
	s.IntVar(&o.maxReplays, "max-replays", 3, "loop guard: refuse, and report, a record already replayed this many times")
	s.BoolVar(&dryRun, "dry-run", false, "write nothing: count by reason what would be replayed")
	s.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if o.maxReplays < 1 {
		return badUsage("max-replays: %d is below 1", o.maxReplays)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	codec, err := k.codec(ctx)
	if err != nil {
		return err
	}
	contents, err := readDLQ(ctx, k.kafka(), k.topics.DeadLetters, codec)
	if err != nil {
		return err
	}
	if err := requireTenant(ctx, &k, codec, contents, f.tenant); err != nil {
		return err
	}
	plan := planReplay(contents.letters, f, o)
	if !o.includeSuperseded && len(plan.replay) > 0 {
		latest, err := latestSourceOffsets(ctx, k.kafka(), plan.replay)
		if err != nil {
			return err
		}
		plan.dropSuperseded(latest)
	}
	sum := plan.summary(dryRun)
	if !dryRun && len(plan.replay) > 0 {
		if err := writeReplay(ctx, &k, codec, plan, &sum); err != nil {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	} else {
		printReplay(sum, o.maxReplays)
	}
	if n := len(sum.LoopGuard); n > 0 {
		return exitError{exitPartial, fmt.Errorf("%d dead letters refused by the loop guard (already replayed %d times, --max-replays %d); fix their cause, then replay them with a higher --max-replays",
			n, o.maxReplays, o.maxReplays)}
	}
	return nil
}

type replayOptions struct {
	includeUnreplayable, includeSuperseded bool
	maxReplays                             int
}

func hasTenant(c *dlqContents, tenant string) bool {
	for _, e := range c.letters {
		if e.dead.TenantID == tenant {
			return true
		}
	}
	return false
}

// requireTenant answers a filter on a tenant without dead letters as every
// command answers for that tenant: an unknown one is an error.
func requireTenant(ctx context.Context, k *kafkaFlags, codec *schemas.Codec, c *dlqContents, tenant string) error {
	if tenant == "" || hasTenant(c, tenant) {
		return nil
	}
	_, err := loadTenant(ctx, k, codec, controlplane.Auth{}, tenant)
	return err
}

// replayPlan is what a replay does with each dead letter the filter selects.
type replayPlan struct {
	replay          []*deadEntry
	alreadyReplayed int
	notReplayable   map[string]int
	truncated       int
	superseded      int
	loopGuard       []*deadEntry
}

// planReplay decides, dead letter by dead letter in the order they were
// written: not selected by the filter; replayed already (a receipt);
// not replayable; cut to fit the DLQ (the original value is lost); at the
// loop guard's limit; or to be replayed.
func planReplay(letters []*deadEntry, f dlqFilter, o replayOptions) *replayPlan {
	p := &replayPlan{notReplayable: map[string]int{}}
	for _, e := range letters {
		d := e.dead
		switch {
		case !f.match(d):
		case e.receipt != nil:
			p.alreadyReplayed++
		case !d.Replayable && !o.includeUnreplayable:
			p.notReplayable[d.Reason]++
		case d.OriginalValueTruncated || d.SourceTopic == "":
			p.truncated++
		case e.replayCount() >= o.maxReplays:
			p.loopGuard = append(p.loopGuard, e)
		default:
			p.replay = append(p.replay, e)
		}
	}
	return p
}

// dropSuperseded leaves out dead letters whose key has a newer record on
// the same source partition: replaying the old event would overwrite the
// answer to the newer one.
func (p *replayPlan) dropSuperseded(latest map[sourceKey]int64) {
	kept := p.replay[:0]
	for _, e := range p.replay {
		d := e.dead
		if off, ok := latest[sourceKey{d.SourceTopic, d.SourcePartition, string(d.OriginalKey)}]; ok && off > d.SourceOffset {
			p.superseded++
			continue
		}
		kept = append(kept, e)
	}
	p.replay = kept
}

type sourceKey struct {
	topic     string
	partition int32
	key       string
}

// latestSourceOffsets finds, on each source topic, the latest offset of
// every key about to be replayed.
func latestSourceOffsets(ctx context.Context, k processor.Kafka, replay []*deadEntry) (map[sourceKey]int64, error) {
	wanted := map[string]map[string]bool{}
	for _, e := range replay {
		t := e.dead.SourceTopic
		if wanted[t] == nil {
			wanted[t] = map[string]bool{}
		}
		wanted[t][string(e.dead.OriginalKey)] = true
	}
	latest := map[sourceKey]int64{}
	for topic, keys := range wanted {
		err := processor.ReadAll(ctx, k, topic, func(m kafka.Message) {
			if keys[string(m.Key)] {
				latest[sourceKey{topic, int32(m.Partition), string(m.Key)}] = m.Offset
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return latest, nil
}

// replaySummary is what a replay did (or, dry, would do).
type replaySummary struct {
	ReplayID        string         `json:"replay_id,omitempty"`
	DryRun          bool           `json:"dry_run"`
	Replayed        int            `json:"replayed"`
	ByReason        map[string]int `json:"by_reason"`
	AlreadyReplayed int            `json:"already_replayed"`
	NotReplayable   map[string]int `json:"not_replayable"`
	Truncated       int            `json:"truncated"`
	Superseded      int            `json:"superseded"`
	LoopGuard       []loopGuarded  `json:"loop_guard_refused"`
}

type loopGuarded struct {
	DeadLetterID string `json:"dead_letter_id"`
	Key          string `json:"original_key"`
	Reason       string `json:"reason"`
	ReplayCount  int    `json:"replay_count"`
}

func (p *replayPlan) summary(dry bool) replaySummary {
	s := replaySummary{DryRun: dry, ByReason: map[string]int{}, AlreadyReplayed: p.alreadyReplayed,
		NotReplayable: p.notReplayable, Truncated: p.truncated, Superseded: p.superseded, LoopGuard: []loopGuarded{}}
	for _, e := range p.replay {
		s.ByReason[e.dead.Reason]++
	}
	if dry {
		s.Replayed = len(p.replay)
	}
	for _, e := range p.loopGuard {
		s.LoopGuard = append(s.LoopGuard, loopGuarded{e.dead.ID, string(e.dead.OriginalKey), e.dead.Reason, e.replayCount()})
	}
	return s
}

// replayedMessage is the dead letter's input as it was, with the replay
// count incremented and the dead letter it came from named.
func replayedMessage(e *deadEntry, count int) kafka.Message {
	d := e.dead
	m := kafka.Message{Topic: d.SourceTopic, Key: d.OriginalKey, Value: d.OriginalValue}
	for _, h := range d.OriginalHeaders {
		if h.Key == processor.HeaderReplayCount || h.Key == headerReplayOf {
			continue
		}
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	m.Headers = append(m.Headers,
		kafka.Header{Key: processor.HeaderReplayCount, Value: []byte(strconv.Itoa(count))},
		kafka.Header{Key: headerReplayOf, Value: []byte(d.ID)})
	return m
}

// writeReplay writes the plan batch by batch: the records (acked by all
// in-sync replicas), then their receipts.
func writeReplay(ctx context.Context, k *kafkaFlags, codec *schemas.Codec, plan *replayPlan, sum *replaySummary) error {
	prod, err := processor.NewProducer(k.kafka(), codec)
	if err != nil {
		return err
	}
	defer prod.Close()
	now := time.Now()
	sum.ReplayID = "replay-" + newRunID(now)[len("run-"):]
	prog := newProgress(os.Stderr)
	total := int64(len(plan.replay))
	for start := 0; start < len(plan.replay); start += replayBatch {
		batch := plan.replay[start:min(start+replayBatch, len(plan.replay))]
		records := make([]kafka.Message, len(batch))
		receipts := make([]kafka.Message, len(batch))
		for i, e := range batch {
			count := e.replayCount() + 1
			records[i] = replayedMessage(e, count)
			receipts[i] = receiptMessage(k.topics.DeadLetters, e, sum.ReplayID, count, time.Now())
		}
		if err := prod.Write(ctx, records...); err != nil {
			return fmt.Errorf("replay: %d of %d written, then: %w (run the same replay again: what was written has receipts)", sum.Replayed, total, err)
		}
		if err := prod.Write(ctx, receipts...); err != nil {
			return fmt.Errorf("replay: %d records written but their receipts were not (%w); a second run would replay them once more", len(batch), err)
		}
		sum.Replayed += len(batch)
		prog.update(fmt.Sprintf("replay %s %d of %d written", bar(int64(sum.Replayed), total, 20), sum.Replayed, total))
	}
	prog.done(fmt.Sprintf("replay %s %d of %d written", bar(int64(sum.Replayed), total, 20), sum.Replayed, total))
	return nil
}

func printReplay(s replaySummary, maxReplays int) {
	verb := "replayed"
	if s.DryRun {
		verb = "would replay"
	}
	if s.DryRun {
		fmt.Println("dry run: nothing was written")
	} else if s.ReplayID != "" {
		fmt.Printf("replay %s\n", s.ReplayID)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%s\t%d\t%s\n", verb, s.Replayed, reasonList(s.ByReason))
	fmt.Fprintf(w, "already replayed\t%d\t(a receipt on the DLQ; not written again)\n", s.AlreadyReplayed)
	n := 0
	for _, c := range s.NotReplayable {
		n += c
	}
	fmt.Fprintf(w, "not replayable\t%d\t%s\n", n, reasonList(s.NotReplayable)+" (--include-unreplayable)")
	fmt.Fprintf(w, "superseded\t%d\t(a newer event of the same key; --include-superseded)\n", s.Superseded)
	fmt.Fprintf(w, "value cut, cannot replay\t%d\t\n", s.Truncated)
	fmt.Fprintf(w, "refused by the loop guard\t%d\t(replayed %d times already)\n", len(s.LoopGuard), maxReplays)
	_ = w.Flush()
	for i, g := range s.LoopGuard {
		if i == 20 {
			fmt.Printf("  ... and %d more (--json lists all)\n", len(s.LoopGuard)-20)
			break
		}
		fmt.Printf("  refused: dead letter %s, key %s, %s, replayed %d times\n", g.DeadLetterID, g.Key, g.Reason, g.ReplayCount)
	}
}
