package main

import (
	"fmt"
	"io"
	"strings"
)

// printScenario writes one scenario's figures and checks.
func printScenario(w io.Writer, rep *scenarioReport) {
	fmt.Fprintf(w, "=== %s: %s (%.0fs)\n", rep.Name, rep.Title, rep.Seconds)
	if r := rep.Results; r != nil {
		fmt.Fprintf(w, "  inputs %d (keys %d, harness retry copies %d), outputs %d\n", r.Inputs, r.Keys, r.InputCopies, r.Outputs)
		fmt.Fprintf(w, "  lost %d (final state %d, events %d; %d already committed, %d not yet)  dead letters %d %v (latest version on DLQ: %d keys)\n",
			r.Lost, r.LostFinal, r.LostEvents, r.LostCommitted, r.Lost-r.LostCommitted, r.DeadLetters, r.DeadLetterReasons, r.DeadLatest)
		if r.SkipsStanding > 0 {
			fmt.Fprintf(w, "  standing skips (no consent, final SKIPPED of an older version): %d keys\n", r.SkipsStanding)
		}
		for _, ex := range r.LostExamples {
			fmt.Fprintf(w, "    e.g. %s\n", ex)
		}
		fmt.Fprintf(w, "  duplicates %d  keys backwards %d (%d records)  event_id mismatches %d\n", r.Duplicates, r.Backwards, r.BackwardsRecords, r.IDMismatch)
		fmt.Fprintf(w, "  needed %d  received %d  wasted %d (%.2f%%)  re-sent after published %d  needed never sent %d  leaked (no consent) %d\n",
			r.Needed, r.Received, r.Wasted, r.WastedRatio*100, r.ResentPublished, r.NeededNotSent, r.Leaked)
		for _, prog := range sortedKeys(r.Programs) {
			p := r.Programs[prog]
			fmt.Fprintf(w, "  %s: %d calls (%d single, %d bulk submits, %d polls), %d records, %d x 429, %d x 5xx, max %d calls/s, %.1f records/bulk, %.2f polls/bulk\n",
				prog, p.Calls, p.Singles, p.Submits, p.Polls, p.Received, p.Status429, p.Status5xx, p.MaxPerSecond, p.PerBulk, p.PollsPerBulk)
		}
		if len(r.GateInjected) > 0 {
			fmt.Fprintf(w, "  fault gate answered itself: %v\n", r.GateInjected)
		}
		fmt.Fprintf(w, "  throughput per %ds (distinct outputs):\n", r.BucketS)
		for _, t := range sortedKeys(r.Throughput) {
			fmt.Fprintf(w, "    %-9s %s\n", t, joinInts(r.Throughput[t]))
		}
		fmt.Fprintf(w, "  longest stall %.1fs (from t+%.1fs); after last kill: owned and advancing in %.1fs; generations %v; commits refused %d\n",
			r.Progress.LongestStallS, r.Progress.StallFromS, r.Progress.RecoveredAfterLastKillS, r.Generations, r.CommitsRefused)
		fmt.Fprintf(w, "  instances: %s\n", strings.Join(r.InstanceExits, "; "))
		if len(r.Extra) > 0 {
			fmt.Fprintf(w, "  %v\n", r.Extra)
		}
	}
	for _, n := range rep.Commands {
		fmt.Fprintf(w, "  . %s\n", n)
	}
	for _, c := range rep.Checks {
		mark := "PASS"
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, c.Name, c.Detail)
	}
	fmt.Fprintln(w)
}

// printSummary writes one line per check and returns how many failed.
func printSummary(w io.Writer, reps []*scenarioReport) int {
	failed, passed := 0, 0
	fmt.Fprintln(w, "=== summary")
	for _, rep := range reps {
		for _, c := range rep.Checks {
			mark := "PASS"
			if !c.OK {
				mark = "FAIL"
				failed++
			} else {
				passed++
			}
			fmt.Fprintf(w, "  %s  %-14s %s\n", mark, rep.Name, c.Name)
		}
	}
	// The plain closing line CI reads.
	fmt.Fprintf(w, "faults: %d passed, %d failed\n", passed, failed)
	return failed
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " ")
}
