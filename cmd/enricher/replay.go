package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
)

// cmdReplay puts dead letters back on their source topic, where the running
// service consumes them like any other event. A ledger of receipts on the
// DLQ (see processor/admin) makes a second run of the same replay write
// nothing.
func cmdReplay(args []string) error {
	s := newSettings("replay")
	var k kafkaFlags
	var f dlqFilter
	var o admin.ReplayOptions
	var dryRun, asJSON bool
	var by string
	k.bind(s)
	f.bind(s)
	s.BoolVar(&o.IncludeUnreplayable, "include-unreplayable", false, "also replay dead letters marked not replayable (e.g. after fixing the input upstream)")
	s.BoolVar(&o.IncludeSuperseded, "include-superseded", false, "also replay dead letters whose key has a newer event on the source topic (it would overwrite the newer answer)")
	s.IntVar(&o.MaxReplays, "max-replays", 3, "loop guard: refuse, and report, a record already replayed this many times")
	s.BoolVar(&dryRun, "dry-run", false, "write nothing: count by reason what would be replayed")
	s.BoolVar(&asJSON, "json", false, "print the summary as JSON")
	byFlag(s, &by)
	if err := parseFlags(s, args); err != nil {
		return err
	}
	filter, err := f.filter()
	if err != nil {
		return err
	}
	if o.MaxReplays < 1 {
		return badUsage("max-replays: %d is below 1", o.MaxReplays)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	ad, err := k.admin(ctx, controlplane.Auth{}, admin.Config{})
	if err != nil {
		return err
	}
	defer ad.Close()
	plan, err := ad.PlanReplay(ctx, filter, o)
	if err != nil {
		return usageOf(err)
	}
	sum := plan.Summary(dryRun)
	if !dryRun && plan.ToReplay() > 0 {
		prog := newProgress(os.Stderr)
		line := func(done, total int) string {
			return fmt.Sprintf("replay %s %d of %d written", bar(int64(done), int64(total), 20), done, total)
		}
		sum, err = ad.Replay(ctx, plan, by, func(done, total int) { prog.update(line(done, total)) })
		prog.done(line(sum.Replayed, plan.ToReplay()))
		if err != nil {
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
		printReplay(sum, o.MaxReplays)
	}
	if n := len(sum.LoopGuard); n > 0 {
		return exitError{exitPartial, fmt.Errorf("%d dead letters refused by the loop guard (already replayed %d times, --max-replays %d); fix their cause, then replay them with a higher --max-replays",
			n, o.MaxReplays, o.MaxReplays)}
	}
	return nil
}

func printReplay(s admin.ReplaySummary, maxReplays int) {
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
