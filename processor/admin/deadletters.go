package admin

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// The replay ledger lives on the dead letter topic itself. After a replay
// has written a dead letter back to its source topic (acked), it writes a
// replay receipt on the DLQ:
//
//	key:     the dead letter id
//	value:   null (a receipt is not a DeadLetter; Avro readers of the DLQ
//	         skip it, and its null value keeps it apart from every dead letter)
//	headers: enricher.replay.receipt = the dead letter id (the marker)
//	         enricher.replay.id      = the replay that wrote it
//	         enricher.replay.count   = the replay count the record was written with
//	         enricher.replay.topic   = where it went
//	         enricher.replay.at      = when (RFC 3339)
//	         enricher.replay.by      = who replayed it
//
// A replay reads the whole DLQ first and leaves out every dead letter that
// has a receipt, so running the same replay twice writes nothing the second
// time, across restarts and on any machine. Receipts follow their dead
// letters (written later, same retention), so they expire after them. The
// replayed record itself carries enricher.replay.of (the dead letter id)
// and the incremented enricher.replay.count. A crash between the replayed
// record and its receipt replays that record once more on the next run
// (at-least-once, like every output here); the pipeline's dedupe keeps an
// already answered profile from costing a second credit.
// Header names of the ledger and of replayed records.
const (
	HeaderReceipt  = "enricher.replay.receipt"
	HeaderReplayID = "enricher.replay.id"
	HeaderReplayTo = "enricher.replay.topic"
	HeaderReplayAt = "enricher.replay.at"
	HeaderReplayBy = "enricher.replay.by"
	HeaderReplayOf = "enricher.replay.of"
)

// ErrorClasses are the error classes written into dead letters.
var ErrorClasses = []string{"input", "retryable", "auth", "credits"}

// Stages are the pipeline stages a dead letter can come from.
var Stages = []string{schemas.StageDecode, schemas.StageValidate, schemas.StageMap, schemas.StageEnrich, schemas.StageEncode, schemas.StageProduce}

var reasonCode = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)

// DeadLetter is one dead letter as read from the DLQ, with its receipt
// when it was replayed.
type DeadLetter struct {
	Dead      schemas.Dead
	Partition int
	Offset    int64
	Receipt   *Receipt
}

// Receipt says a dead letter was replayed.
type Receipt struct {
	ReplayID string
	Count    int
	At       time.Time
	By       string
}

// ReplayCount is how often the dead letter's input was already replayed.
func (e *DeadLetter) ReplayCount() int {
	n := int(e.Dead.ReplayCount)
	for _, h := range e.Dead.OriginalHeaders {
		if h.Key == processor.HeaderReplayCount {
			if c, err := strconv.Atoi(string(h.Value)); err == nil && c > n {
				n = c
			}
		}
	}
	return n
}

// dlqContents is the dead letter topic read once: dead letters (one per id,
// oldest failure first) and the receipts of those replayed.
type dlqContents struct {
	letters     []*DeadLetter
	undecodable int
}

// readDLQ reads the dead letter topic to its current end.
func readDLQ(ctx context.Context, k processor.Kafka, topic string, codec *schemas.Codec) (*dlqContents, error) {
	byID := map[string]*DeadLetter{}
	receipts := map[string]Receipt{}
	c := &dlqContents{}
	err := processor.ReadAll(ctx, k, topic, func(m kafka.Message) {
		if m.Value == nil {
			if r, id, ok := receiptOf(m); ok {
				receipts[id] = r
			}
			return
		}
		d, err := codec.DecodeDead(ctx, m.Value)
		if err != nil {
			c.undecodable++
			return
		}
		if byID[d.ID] != nil {
			return // an at-least-once duplicate of the same dead letter
		}
		e := &DeadLetter{Dead: d, Partition: m.Partition, Offset: m.Offset}
		byID[d.ID] = e
		c.letters = append(c.letters, e)
	})
	if err != nil {
		return nil, readErr(topic, err)
	}
	for _, e := range c.letters {
		if r, ok := receipts[e.Dead.ID]; ok {
			e.Receipt = &r
		}
	}
	sort.SliceStable(c.letters, func(i, j int) bool { return c.letters[i].Dead.LastFailureAt.Before(c.letters[j].Dead.LastFailureAt) })
	return c, nil
}

func receiptOf(m kafka.Message) (Receipt, string, bool) {
	var r Receipt
	id := ""
	for _, h := range m.Headers {
		switch h.Key {
		case HeaderReceipt:
			id = string(h.Value)
		case HeaderReplayID:
			r.ReplayID = string(h.Value)
		case processor.HeaderReplayCount:
			r.Count, _ = strconv.Atoi(string(h.Value))
		case HeaderReplayAt:
			r.At, _ = time.Parse(time.RFC3339Nano, string(h.Value))
		case HeaderReplayBy:
			r.By = string(h.Value)
		}
	}
	return r, id, id != "" && id == string(m.Key)
}

// receiptMessage is the ledger record of one replayed dead letter.
func receiptMessage(topic string, e *DeadLetter, replayID, by string, count int, at time.Time) kafka.Message {
	id := e.Dead.ID
	return kafka.Message{Topic: topic, Key: []byte(id), Value: nil, Headers: []kafka.Header{
		{Key: HeaderReceipt, Value: []byte(id)},
		{Key: HeaderReplayID, Value: []byte(replayID)},
		{Key: processor.HeaderReplayCount, Value: []byte(strconv.Itoa(count))},
		{Key: HeaderReplayTo, Value: []byte(e.Dead.SourceTopic)},
		{Key: HeaderReplayAt, Value: []byte(at.UTC().Format(time.RFC3339Nano))},
		{Key: HeaderReplayBy, Value: []byte(by)},
	}}
}

// Filter selects dead letters; listing and replay share it. Zero fields
// select everything.
type Filter struct {
	Tenant string
	// Reasons are reason codes (leadspace.unauthorized, gate.paused...).
	Reasons []string
	// Stage is one of Stages, Class one of ErrorClasses (any case).
	Stage, Class string
	// Since and Until bound the last failure: Since <= t < Until.
	Since, Until time.Time
}

// Check validates the filter and normalizes its case, naming the field at
// fault (as the flag it comes from).
func (f *Filter) Check() error {
	if f.Tenant != "" && strings.Contains(f.Tenant, "/") {
		return fail(ErrInvalid, "tenant: %q must not contain '/'", f.Tenant)
	}
	for _, r := range f.Reasons {
		if !reasonCode.MatchString(r) {
			return fail(ErrInvalid, "reason: %q is not a reason code (like leadspace.unauthorized; see 'enricher dlq list')", r)
		}
	}
	if f.Stage != "" {
		f.Stage = strings.ToUpper(f.Stage)
		if !slices.Contains(Stages, f.Stage) {
			return fail(ErrInvalid, "stage: %q is not one of %s", f.Stage, strings.Join(Stages, ", "))
		}
	}
	if f.Class != "" {
		f.Class = strings.ToLower(f.Class)
		if !slices.Contains(ErrorClasses, f.Class) {
			return fail(ErrInvalid, "error-class: %q is not one of %s", f.Class, strings.Join(ErrorClasses, ", "))
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return fail(ErrInvalid, "since, until: since (%s) must be before until (%s)", f.Since.Format(time.RFC3339), f.Until.Format(time.RFC3339))
	}
	return nil
}

// Match is whether the filter selects d.
func (f Filter) Match(d schemas.Dead) bool {
	switch {
	case f.Tenant != "" && d.TenantID != f.Tenant,
		len(f.Reasons) > 0 && !slices.Contains(f.Reasons, d.Reason),
		f.Stage != "" && d.Stage != f.Stage,
		f.Class != "" && d.ErrorClass != f.Class,
		!f.Since.IsZero() && d.LastFailureAt.Before(f.Since),
		!f.Until.IsZero() && !d.LastFailureAt.Before(f.Until):
		return false
	}
	return true
}

// DeadLetterList is the dead letters a filter selects, oldest failure first.
type DeadLetterList struct {
	Letters []*DeadLetter
	// Undecodable counts records on the DLQ that are no DeadLetter values.
	Undecodable int
}

// DeadLetters reads the dead letter topic and returns what f selects. A
// filter on a tenant the topics know nothing of is ErrUnknownTenant.
func (a *Admin) DeadLetters(ctx context.Context, f Filter) (DeadLetterList, error) {
	if err := f.Check(); err != nil {
		return DeadLetterList{}, err
	}
	c, err := a.readDLQ(ctx, f.Tenant)
	if err != nil {
		return DeadLetterList{}, err
	}
	out := DeadLetterList{Undecodable: c.undecodable}
	for _, e := range c.letters {
		if f.Match(e.Dead) {
			out.Letters = append(out.Letters, e)
		}
	}
	return out, nil
}

// readDLQ reads the DLQ and answers a filter on a tenant without dead
// letters as every command answers for that tenant: an unknown one is an
// error.
func (a *Admin) readDLQ(ctx context.Context, tenant string) (*dlqContents, error) {
	c, err := readDLQ(ctx, a.cfg.Kafka, a.cfg.Topics.DeadLetters, a.codec)
	if err != nil {
		return nil, err
	}
	if tenant == "" || slices.ContainsFunc(c.letters, func(e *DeadLetter) bool { return e.Dead.TenantID == tenant }) {
		return c, nil
	}
	if _, err := loadTenant(ctx, a.cfg.Kafka, a.cfg.Topics.Control, a.codec, controlplane.Auth{}, tenant); err != nil {
		return nil, err
	}
	return c, nil
}

// ReplayOptions widen what a replay takes.
type ReplayOptions struct {
	// IncludeUnreplayable also replays dead letters marked not replayable
	// (e.g. after fixing the input upstream).
	IncludeUnreplayable bool
	// IncludeSuperseded also replays dead letters whose key has a newer
	// event on the source topic (it would overwrite the newer answer).
	IncludeSuperseded bool
	// MaxReplays is the loop guard: a record already replayed this many
	// times is refused and reported. Default: 3.
	MaxReplays int
}

// ReplayPlan is what a replay does with each dead letter the filter
// selects. Make it with PlanReplay; Summary shows it (the dry run).
type ReplayPlan struct {
	opts            ReplayOptions
	replay          []*DeadLetter
	alreadyReplayed int
	notReplayable   map[string]int
	truncated       int
	superseded      int
	loopGuard       []*DeadLetter
}

// PlanReplay reads the DLQ (and, unless IncludeSuperseded, the source
// topics of what it would replay) and decides for each selected dead
// letter; it writes nothing.
func (a *Admin) PlanReplay(ctx context.Context, f Filter, o ReplayOptions) (*ReplayPlan, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	if o.MaxReplays == 0 {
		o.MaxReplays = 3
	}
	if o.MaxReplays < 1 {
		return nil, fail(ErrInvalid, "max-replays: %d is below 1", o.MaxReplays)
	}
	c, err := a.readDLQ(ctx, f.Tenant)
	if err != nil {
		return nil, err
	}
	p := planReplay(c.letters, f, o)
	if !o.IncludeSuperseded && len(p.replay) > 0 {
		latest, err := latestSourceOffsets(ctx, a.cfg.Kafka, p.replay)
		if err != nil {
			return nil, err
		}
		p.dropSuperseded(latest)
	}
	return p, nil
}

// planReplay decides, dead letter by dead letter in the order they were
// written: not selected by the filter; replayed already (a receipt);
// not replayable; cut to fit the DLQ (the original value is lost); at the
// loop guard's limit; or to be replayed.
func planReplay(letters []*DeadLetter, f Filter, o ReplayOptions) *ReplayPlan {
	p := &ReplayPlan{opts: o, notReplayable: map[string]int{}}
	for _, e := range letters {
		d := e.Dead
		switch {
		case !f.Match(d):
		case e.Receipt != nil:
			p.alreadyReplayed++
		case !d.Replayable && !o.IncludeUnreplayable:
			p.notReplayable[d.Reason]++
		case d.OriginalValueTruncated || d.SourceTopic == "":
			p.truncated++
		case e.ReplayCount() >= o.MaxReplays:
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
func (p *ReplayPlan) dropSuperseded(latest map[sourceKey]int64) {
	kept := p.replay[:0]
	for _, e := range p.replay {
		d := e.Dead
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
func latestSourceOffsets(ctx context.Context, k processor.Kafka, replay []*DeadLetter) (map[sourceKey]int64, error) {
	wanted := map[string]map[string]bool{}
	for _, e := range replay {
		t := e.Dead.SourceTopic
		if wanted[t] == nil {
			wanted[t] = map[string]bool{}
		}
		wanted[t][string(e.Dead.OriginalKey)] = true
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

// ReplaySummary is what a replay did (or, dry, would do).
type ReplaySummary struct {
	ReplayID        string         `json:"replay_id,omitempty"`
	DryRun          bool           `json:"dry_run"`
	Replayed        int            `json:"replayed"`
	ByReason        map[string]int `json:"by_reason"`
	AlreadyReplayed int            `json:"already_replayed"`
	NotReplayable   map[string]int `json:"not_replayable"`
	Truncated       int            `json:"truncated"`
	Superseded      int            `json:"superseded"`
	MaxReplays      int            `json:"max_replays"`
	LoopGuard       []LoopGuarded  `json:"loop_guard_refused"`
}

// LoopGuarded is a dead letter the loop guard refused.
type LoopGuarded struct {
	DeadLetterID string `json:"dead_letter_id"`
	Key          string `json:"original_key"`
	Reason       string `json:"reason"`
	ReplayCount  int    `json:"replay_count"`
}

// ToReplay is how many dead letters the plan would write.
func (p *ReplayPlan) ToReplay() int { return len(p.replay) }

// Summary is the plan's counts; dry, Replayed is what would be replayed.
func (p *ReplayPlan) Summary(dry bool) ReplaySummary {
	s := ReplaySummary{DryRun: dry, ByReason: map[string]int{}, AlreadyReplayed: p.alreadyReplayed, MaxReplays: p.opts.MaxReplays,
		NotReplayable: p.notReplayable, Truncated: p.truncated, Superseded: p.superseded, LoopGuard: []LoopGuarded{}}
	for _, e := range p.replay {
		s.ByReason[e.Dead.Reason]++
	}
	if dry {
		s.Replayed = len(p.replay)
	}
	for _, e := range p.loopGuard {
		s.LoopGuard = append(s.LoopGuard, LoopGuarded{e.Dead.ID, string(e.Dead.OriginalKey), e.Dead.Reason, e.ReplayCount()})
	}
	return s
}

// replayedMessage is the dead letter's input as it was, with the replay
// count incremented and the dead letter it came from named.
func replayedMessage(e *DeadLetter, count int) kafka.Message {
	d := e.Dead
	m := kafka.Message{Topic: d.SourceTopic, Key: d.OriginalKey, Value: d.OriginalValue}
	for _, h := range d.OriginalHeaders {
		if h.Key == processor.HeaderReplayCount || h.Key == HeaderReplayOf {
			continue
		}
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	m.Headers = append(m.Headers,
		kafka.Header{Key: processor.HeaderReplayCount, Value: []byte(strconv.Itoa(count))},
		kafka.Header{Key: HeaderReplayOf, Value: []byte(d.ID)})
	return m
}

// replayBatch is how many records are written (and acked) before their
// receipts: a crash loses at most one batch's receipts.
const replayBatch = 500

// Replay writes the plan batch by batch: the records (acked by all
// in-sync replicas), then their receipts naming by. progress, when not
// nil, is called after each batch. On an error the summary says how many
// were written; running the same replay again writes only the rest.
func (a *Admin) Replay(ctx context.Context, p *ReplayPlan, by string, progress func(done, total int)) (ReplaySummary, error) {
	sum := p.Summary(false)
	if len(p.replay) == 0 {
		return sum, nil
	}
	if strings.TrimSpace(by) == "" {
		return sum, fail(ErrInvalid, "by: who replays is required; it is recorded in the receipts")
	}
	sum.ReplayID = "replay-" + NewRunID(time.Now())[len("run-"):]
	total := len(p.replay)
	for start := 0; start < total; start += replayBatch {
		batch := p.replay[start:min(start+replayBatch, total)]
		records := make([]kafka.Message, len(batch))
		receipts := make([]kafka.Message, len(batch))
		for i, e := range batch {
			count := e.ReplayCount() + 1
			records[i] = replayedMessage(e, count)
			receipts[i] = receiptMessage(a.cfg.Topics.DeadLetters, e, sum.ReplayID, by, count, time.Now())
		}
		if err := a.prod.Write(ctx, records...); err != nil {
			return sum, fmt.Errorf("replay: %d of %d written, then: %w (run the same replay again: what was written has receipts)", sum.Replayed, total, err)
		}
		if err := a.prod.Write(ctx, receipts...); err != nil {
			return sum, fmt.Errorf("replay: %d records written but their receipts were not (%w); a second run would replay them once more", len(batch), err)
		}
		sum.Replayed += len(batch)
		if progress != nil {
			progress(sum.Replayed, total)
		}
	}
	a.log.Info("dead letters replayed", zapReplay(sum, by)...)
	return sum, nil
}
