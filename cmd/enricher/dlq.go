package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// The replay ledger lives on the dead letter topic itself. After `enricher
// replay` has written a dead letter back to its source topic (acked), it
// writes a replay receipt on the DLQ:
//
//	key:     the dead letter id
//	value:   null (a receipt is not a DeadLetter; Avro readers of the DLQ
//	         skip it, and its null value keeps it apart from every dead letter)
//	headers: enricher.replay.receipt = the dead letter id (the marker)
//	         enricher.replay.id      = the replay that wrote it
//	         enricher.replay.count   = the replay count the record was written with
//	         enricher.replay.topic   = where it went
//	         enricher.replay.at      = when (RFC 3339)
//
// A replay reads the whole DLQ first and leaves out every dead letter that
// has a receipt, so running the same replay twice writes nothing the second
// time, across restarts of the tool and on any machine. Receipts follow
// their dead letters (written later, same retention), so they expire after
// them. The replayed record itself carries enricher.replay.of (the dead
// letter id) and the incremented enricher.replay.count. A crash between the
// replayed record and its receipt replays that record once more on the next
// run (at-least-once, like every output here); the pipeline's dedupe keeps
// an already answered profile from costing a second credit.
const (
	headerReceipt  = "enricher.replay.receipt"
	headerReplayID = "enricher.replay.id"
	headerReplayTo = "enricher.replay.topic"
	headerReplayAt = "enricher.replay.at"
	headerReplayOf = "enricher.replay.of"
)

// Error classes written into dead letters (README, "DeadLetter").
var errorClasses = []string{"input", "retryable", "auth", "credits"}

var stages = []string{schemas.StageDecode, schemas.StageValidate, schemas.StageMap, schemas.StageEnrich, schemas.StageEncode, schemas.StageProduce}

var reasonCode = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)

// deadEntry is one dead letter as read from the DLQ, with its receipt.
type deadEntry struct {
	dead      schemas.Dead
	partition int
	offset    int64
	receipt   *receipt
}

// receipt says a dead letter was replayed.
type receipt struct {
	replayID string
	count    int
	at       time.Time
}

// replayCount is how often the dead letter's input was already replayed.
func (e *deadEntry) replayCount() int {
	n := int(e.dead.ReplayCount)
	for _, h := range e.dead.OriginalHeaders {
		if h.Key == processor.HeaderReplayCount {
			if c, err := strconv.Atoi(string(h.Value)); err == nil && c > n {
				n = c
			}
		}
	}
	return n
}

// dlqContents is the dead letter topic read once: dead letters (one per id,
// in the order they were written) and the receipts of those replayed.
type dlqContents struct {
	letters     []*deadEntry
	undecodable int
}

// readDLQ reads the dead letter topic to its current end.
func readDLQ(ctx context.Context, k processor.Kafka, topic string, codec *schemas.Codec) (*dlqContents, error) {
	byID := map[string]*deadEntry{}
	receipts := map[string]receipt{}
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
		e := &deadEntry{dead: d, partition: m.Partition, offset: m.Offset}
		byID[d.ID] = e
		c.letters = append(c.letters, e)
	})
	if err != nil {
		return nil, readErr(topic, err)
	}
	for _, e := range c.letters {
		if r, ok := receipts[e.dead.ID]; ok {
			e.receipt = &r
		}
	}
	sort.SliceStable(c.letters, func(i, j int) bool { return c.letters[i].dead.LastFailureAt.Before(c.letters[j].dead.LastFailureAt) })
	return c, nil
}

func receiptOf(m kafka.Message) (receipt, string, bool) {
	var r receipt
	id := ""
	for _, h := range m.Headers {
		switch h.Key {
		case headerReceipt:
			id = string(h.Value)
		case headerReplayID:
			r.replayID = string(h.Value)
		case processor.HeaderReplayCount:
			r.count, _ = strconv.Atoi(string(h.Value))
		case headerReplayAt:
			r.at, _ = time.Parse(time.RFC3339Nano, string(h.Value))
		}
	}
	return r, id, id != "" && id == string(m.Key)
}

// receiptMessage is the ledger record of one replayed dead letter.
func receiptMessage(topic string, e *deadEntry, replayID string, count int, at time.Time) kafka.Message {
	id := e.dead.ID
	return kafka.Message{Topic: topic, Key: []byte(id), Value: nil, Headers: []kafka.Header{
		{Key: headerReceipt, Value: []byte(id)},
		{Key: headerReplayID, Value: []byte(replayID)},
		{Key: processor.HeaderReplayCount, Value: []byte(strconv.Itoa(count))},
		{Key: headerReplayTo, Value: []byte(e.dead.SourceTopic)},
		{Key: headerReplayAt, Value: []byte(at.UTC().Format(time.RFC3339Nano))},
	}}
}

// dlqFilter selects dead letters; replay and `dlq list` share it.
type dlqFilter struct {
	tenant, reasons, stage, class string
	since, until                  timeFlag
}

func (f *dlqFilter) bind(s *settings) {
	s.StringVar(&f.tenant, "tenant", "", "only this tenant's dead letters")
	s.StringVar(&f.reasons, "reason", "", "only these reason codes, comma-separated (e.g. leadspace.unauthorized,gate.paused)")
	s.StringVar(&f.stage, "stage", "", "only this stage: "+strings.Join(stages, ", "))
	s.StringVar(&f.class, "error-class", "", "only this error class: "+strings.Join(errorClasses, ", "))
	s.Var(&f.since, "since", "only dead letters that last failed at or after this time: RFC 3339 (2026-03-01T12:00:00Z) or a duration ago (2h)")
	s.Var(&f.until, "until", "only dead letters that last failed before this time: RFC 3339 or a duration ago")
}

// check validates the filter, naming the flag at fault.
func (f *dlqFilter) check() error {
	if f.tenant != "" && strings.Contains(f.tenant, "/") {
		return badUsage("tenant: %q must not contain '/'", f.tenant)
	}
	for _, r := range f.reasonList() {
		if !reasonCode.MatchString(r) {
			return badUsage("reason: %q is not a reason code (like leadspace.unauthorized; see 'enricher dlq list')", r)
		}
	}
	if f.stage != "" {
		f.stage = strings.ToUpper(f.stage)
		if !slices.Contains(stages, f.stage) {
			return badUsage("stage: %q is not one of %s", f.stage, strings.Join(stages, ", "))
		}
	}
	if f.class != "" {
		f.class = strings.ToLower(f.class)
		if !slices.Contains(errorClasses, f.class) {
			return badUsage("error-class: %q is not one of %s", f.class, strings.Join(errorClasses, ", "))
		}
	}
	if !f.since.t.IsZero() && !f.until.t.IsZero() && !f.since.t.Before(f.until.t) {
		return badUsage("since, until: since (%s) must be before until (%s)", f.since.t.Format(time.RFC3339), f.until.t.Format(time.RFC3339))
	}
	return nil
}

func (f *dlqFilter) reasonList() []string {
	var out []string
	for _, r := range strings.Split(f.reasons, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

func (f *dlqFilter) match(d schemas.Dead) bool {
	if f.tenant != "" && d.TenantID != f.tenant {
		return false
	}
	if rs := f.reasonList(); len(rs) > 0 && !slices.Contains(rs, d.Reason) {
		return false
	}
	switch {
	case f.stage != "" && d.Stage != f.stage,
		f.class != "" && d.ErrorClass != f.class,
		!f.since.t.IsZero() && d.LastFailureAt.Before(f.since.t),
		!f.until.t.IsZero() && !d.LastFailureAt.Before(f.until.t):
		return false
	}
	return true
}

// timeFlag is an absolute time (RFC 3339) or a duration before now.
type timeFlag struct {
	t   time.Time
	raw string
}

func (f *timeFlag) String() string { return f.raw }

func (f *timeFlag) Set(v string) error {
	f.raw = v
	if v == "" {
		f.t = time.Time{}
		return nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		f.t = t
		return nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		f.t = time.Now().Add(-d)
		return nil
	}
	return fmt.Errorf("%q is neither an RFC 3339 time (2026-03-01T12:00:00Z) nor a duration ago (90m)", v)
}

// cmdDLQ lists dead letters: why, where and when each failed, how often it
// was replayed, and whether this one was replayed already.
func cmdDLQ(args []string) error {
	if len(args) == 0 || args[0] != "list" {
		return badUsage("usage: enricher dlq list [--tenant T] [--reason R] [flags]")
	}
	s := newSettings("dlq list")
	var k kafkaFlags
	var f dlqFilter
	var limit int
	var asJSON bool
	k.bind(s)
	f.bind(s)
	s.IntVar(&limit, "limit", 100, "show the newest N (0: all)")
	s.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parseFlags(s, args[1:]); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if limit < 0 {
		return badUsage("limit: %d is negative", limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	var rows []*deadEntry
	for _, e := range contents.letters {
		if f.match(e.dead) {
			rows = append(rows, e)
		}
	}
	matched := len(rows)
	if limit > 0 && len(rows) > limit {
		rows = rows[len(rows)-limit:]
	}
	now := time.Now()
	if asJSON {
		return printDLQJSON(rows, now)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEAD LETTER\tKEY\tSTAGE\tREASON\tCLASS\tREPLAYABLE\tAGE\tREPLAYS\tREPLAYED")
	replayed := 0
	for _, e := range rows {
		d := e.dead
		done := "-"
		if r := e.receipt; r != nil {
			replayed++
			done = fmt.Sprintf("yes, %s ago", short(now.Sub(r.at)))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%d\t%s\n", d.ID[:8], cell(string(d.OriginalKey), 40), d.Stage, d.Reason, d.ErrorClass,
			d.Replayable, short(now.Sub(d.LastFailureAt)), e.replayCount(), done)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("\n%d of %d matching dead letters shown (%d of them replayed already)", len(rows), matched, replayed)
	if len(rows) < matched {
		fmt.Printf("; --limit 0 shows all")
	}
	fmt.Println()
	if contents.undecodable > 0 {
		fmt.Fprintf(os.Stderr, "note: %d records on %s are not DeadLetter values and were left out\n", contents.undecodable, k.topics.DeadLetters)
	}
	return nil
}

// deadJSON is a dead letter as `dlq list --json` prints it; names follow the
// DeadLetter Avro fields.
type deadJSON struct {
	DeadLetterID    string     `json:"dead_letter_id"`
	Key             string     `json:"original_key"`
	TenantID        string     `json:"tenant_id,omitempty"`
	ProfileID       string     `json:"profile_id,omitempty"`
	SourceTopic     string     `json:"source_topic"`
	SourcePartition int32      `json:"source_partition"`
	SourceOffset    int64      `json:"source_offset"`
	Stage           string     `json:"stage"`
	Reason          string     `json:"reason"`
	ErrorClass      string     `json:"error_class"`
	ErrorMessage    string     `json:"error_message"`
	Replayable      bool       `json:"replayable"`
	Attempts        int32      `json:"attempts"`
	FirstFailureAt  time.Time  `json:"first_failure_at"`
	LastFailureAt   time.Time  `json:"last_failure_at"`
	AgeSeconds      int64      `json:"age_seconds"`
	ReplayCount     int        `json:"replay_count"`
	ReplayedAt      *time.Time `json:"replayed_at,omitempty"`
	ReplayID        string     `json:"replay_id,omitempty"`
}

func printDLQJSON(rows []*deadEntry, now time.Time) error {
	out := make([]deadJSON, 0, len(rows))
	for _, e := range rows {
		d := e.dead
		j := deadJSON{DeadLetterID: d.ID, Key: string(d.OriginalKey), TenantID: d.TenantID, ProfileID: d.ProfileID,
			SourceTopic: d.SourceTopic, SourcePartition: d.SourcePartition, SourceOffset: d.SourceOffset, Stage: d.Stage,
			Reason: d.Reason, ErrorClass: d.ErrorClass, ErrorMessage: d.ErrorMessage, Replayable: d.Replayable,
			Attempts: d.Attempts, FirstFailureAt: d.FirstFailureAt, LastFailureAt: d.LastFailureAt,
			AgeSeconds: int64(now.Sub(d.LastFailureAt) / time.Second), ReplayCount: e.replayCount()}
		if r := e.receipt; r != nil {
			at := r.at
			j.ReplayedAt, j.ReplayID = &at, r.replayID
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
