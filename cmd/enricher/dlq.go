package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
)

// dlqFilter is the flags that select dead letters; replay and `dlq list`
// share them.
type dlqFilter struct {
	tenant, reasons, stage, class string
	since, until                  timeFlag
}

func (f *dlqFilter) bind(s *settings) {
	s.StringVar(&f.tenant, "tenant", "", "only this tenant's dead letters")
	s.StringVar(&f.reasons, "reason", "", "only these reason codes, comma-separated (e.g. leadspace.unauthorized,gate.paused)")
	s.StringVar(&f.stage, "stage", "", "only this stage: "+strings.Join(admin.Stages, ", "))
	s.StringVar(&f.class, "error-class", "", "only this error class: "+strings.Join(admin.ErrorClasses, ", "))
	s.Var(&f.since, "since", "only dead letters that last failed at or after this time: RFC 3339 (2026-03-01T12:00:00Z) or a duration ago (2h)")
	s.Var(&f.until, "until", "only dead letters that last failed before this time: RFC 3339 or a duration ago")
}

// filter is the admin package's filter, checked: bad input exits 2.
func (f *dlqFilter) filter() (admin.Filter, error) {
	var l list
	_ = l.Set(f.reasons)
	out := admin.Filter{Tenant: f.tenant, Reasons: l, Stage: f.stage, Class: f.class, Since: f.since.t, Until: f.until.t}
	return out, usageOf(out.Check())
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
	filter, err := f.filter()
	if err != nil {
		return err
	}
	if limit < 0 {
		return badUsage("limit: %d is negative", limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	ad, err := k.admin(ctx, controlplane.Auth{}, admin.Config{})
	if err != nil {
		return err
	}
	defer ad.Close()
	found, err := ad.DeadLetters(ctx, filter)
	if err != nil {
		return usageOf(err)
	}
	rows := found.Letters
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
		d := e.Dead
		done := "-"
		if r := e.Receipt; r != nil {
			replayed++
			done = fmt.Sprintf("yes, %s ago", short(now.Sub(r.At)))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%d\t%s\n", d.ID[:8], cell(string(d.OriginalKey), 40), d.Stage, d.Reason, d.ErrorClass,
			d.Replayable, short(now.Sub(d.LastFailureAt)), e.ReplayCount(), done)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Printf("\n%d of %d matching dead letters shown (%d of them replayed already)", len(rows), matched, replayed)
	if len(rows) < matched {
		fmt.Printf("; --limit 0 shows all")
	}
	fmt.Println()
	if found.Undecodable > 0 {
		fmt.Fprintf(os.Stderr, "note: %d records on %s are not DeadLetter values and were left out\n", found.Undecodable, k.topics.DeadLetters)
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

func printDLQJSON(rows []*admin.DeadLetter, now time.Time) error {
	out := make([]deadJSON, 0, len(rows))
	for _, e := range rows {
		d := e.Dead
		j := deadJSON{DeadLetterID: d.ID, Key: string(d.OriginalKey), TenantID: d.TenantID, ProfileID: d.ProfileID,
			SourceTopic: d.SourceTopic, SourcePartition: d.SourcePartition, SourceOffset: d.SourceOffset, Stage: d.Stage,
			Reason: d.Reason, ErrorClass: d.ErrorClass, ErrorMessage: d.ErrorMessage, Replayable: d.Replayable,
			Attempts: d.Attempts, FirstFailureAt: d.FirstFailureAt, LastFailureAt: d.LastFailureAt,
			AgeSeconds: int64(now.Sub(d.LastFailureAt) / time.Second), ReplayCount: e.ReplayCount()}
		if r := e.Receipt; r != nil {
			at := r.At
			j.ReplayedAt, j.ReplayID = &at, r.ReplayID
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
