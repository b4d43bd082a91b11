package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
)

// refreshFlags are the settings of `enricher refresh`.
type refreshFlags struct {
	staleOnly, force, dryRun, wait, asJSON bool
	timeout                                time.Duration
	tps                                    float64
	bulkFrom                               int
}

// cmdRefresh requests a Run of a tenant (re-enrich its current profiles),
// previews one (--dry-run), follows one (--wait), or cancels one.
func cmdRefresh(args []string) error {
	if len(args) > 0 && args[0] == "cancel" {
		return cmdRefreshCancel(args[1:])
	}
	s, a := newAdmin("refresh")
	var f refreshFlags
	s.BoolVar(&f.staleOnly, "stale-only", false, "only profiles whose mapped inputs changed, never answered, or are stale by the mapping's refresh interval (the default)")
	s.BoolVar(&f.force, "force", false, "every mappable current profile asks Leadspace again, changed or not (spends a record each)")
	s.BoolVar(&f.dryRun, "dry-run", false, "publish nothing: preview the profiles in scope, the calls, the skips and the records and time it would take")
	s.BoolVar(&f.wait, "wait", false, "follow the Run until it ends: exit 0 on COMPLETED, 1 on CANCELLED, STOPPED or --timeout")
	s.BoolVar(&f.asJSON, "json", false, "with --dry-run: print the preview as JSON")
	s.DurationVar(&f.timeout, "timeout", time.Hour, "with --wait: give up (exit 1) after this long")
	s.Float64Var(&f.tps, "leadspace-tps", 30, "for the estimate: transactions per second of the tenant's Leadspace program (the published tier is 30)")
	s.IntVar(&f.bulkFrom, "leadspace-bulk-threshold", 20, "for the estimate: records waiting at which the service switches from single calls to bulk")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if err := checkTenant(a.tenant); err != nil {
		return err
	}
	switch {
	case f.staleOnly && f.force:
		return badUsage("stale-only, force: choose one")
	case f.tps <= 0 || f.tps > 10_000:
		return badUsage("leadspace-tps: %v is outside (0, 10000]", f.tps)
	case f.bulkFrom < 1:
		return badUsage("leadspace-bulk-threshold: %d is below 1", f.bulkFrom)
	case f.timeout <= 0:
		return badUsage("timeout: must be positive, got %s", f.timeout)
	case f.dryRun && f.wait:
		return badUsage("dry-run, wait: a dry run starts nothing to wait for")
	case f.asJSON && !f.dryRun:
		return badUsage("json: only with --dry-run")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	readCtx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	var (
		ad  *admin.Admin
		err error
	)
	if f.dryRun {
		// A preview signs nothing: the verifying keys are enough.
		auth, err := a.auth()
		if err != nil {
			return err
		}
		ad, err = a.kafkaFlags.admin(readCtx, auth, admin.Config{LeadspaceTPS: f.tps, BulkThreshold: f.bulkFrom})
		if err != nil {
			return err
		}
	} else if ad, err = a.open(readCtx, admin.Config{}); err != nil {
		return err
	}
	defer ad.Close()
	if f.dryRun {
		p, err := ad.PreviewRun(readCtx, a.tenant, f.force)
		if err != nil {
			return err
		}
		if f.asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		}
		return printPreview(p)
	}
	p, err := ad.StartRun(readCtx, a.tenant, f.force, a.by)
	if err != nil {
		return err
	}
	printPublished(p)
	runID := p.Event.Refresh.RunID
	mode := "stale-only"
	if f.force {
		mode = "force"
	}
	fmt.Printf("run %s requested for tenant %s (%s)\n", runID, a.tenant, mode)
	if !f.wait {
		fmt.Printf("follow it: enricher status --tenant %s (or run refresh with --wait)\n", a.tenant)
		return nil
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, f.timeout)
	defer cancelWait()
	return waitRun(waitCtx, ad, a.tenant, runID, f.timeout)
}

// cmdRefreshCancel stops the tenant's active Run, or withdraws one that
// was requested and has not started.
func cmdRefreshCancel(args []string) error {
	s, a := newAdmin("refresh cancel")
	var runID string
	s.StringVar(&runID, "run-id", "", "the Run to cancel (default: the tenant's active or pending Run)")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	if err := checkTenant(a.tenant); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	ad, err := a.open(ctx, admin.Config{})
	if err != nil {
		return err
	}
	defer ad.Close()
	p, err := ad.CancelRun(ctx, a.tenant, runID, a.by)
	if err != nil {
		return err
	}
	printPublished(p)
	fmt.Printf("run %s of tenant %s: cancel requested\n", p.Event.Refresh.RunID, a.tenant)
	return nil
}

func printPreview(p admin.RunPreview) error {
	mode := "stale-only"
	if p.Force {
		mode = "force"
	}
	fmt.Printf("Run preview for tenant %s (%s); nothing was published\n\n", p.TenantID, mode)
	row := func(label string, n int, note string) { fmt.Printf("  %-24s %7d   %s\n", label, n, note) }
	row("profiles in scope", p.Profiles, "the tenant's current profiles (latest per key, deleted ones excluded)")
	row("would call Leadspace", p.WouldCall, fmt.Sprintf("new %d, changed %d, stale %d, forced %d", p.New, p.Changed, p.Stale, p.Forced))
	row("unchanged, no call", p.Unchanged, "same mapped inputs as the standing answer, still fresh")
	row("skipped, no call", p.Skipped, reasonList(p.SkippedReasons))
	row("input errors, no call", p.InputErrors, reasonList(p.InputErrorReasons)+" (dead letters)")
	if p.Invalid > 0 {
		row("not valid profiles", p.Invalid, reasonList(p.InvalidReasons)+" (dead letters, not in scope)")
	}
	fmt.Println()
	row("estimated records", p.Estimate.Records, "sent to Leadspace: what may cost credits")
	fmt.Printf("  %-24s %7s   %d transactions at %g/s\n", "estimated duration", short(time.Duration(p.Estimate.Seconds*float64(time.Second))),
		p.Estimate.Transactions, p.Estimate.TPS)
	fmt.Printf("\nassumption: %s\n", p.Estimate.Assumption)
	return nil
}

// reasonList prints reasons by count, most first: "a 3, b 1".
func reasonList(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	type rc struct {
		r string
		n int
	}
	var l []rc
	for r, n := range m {
		l = append(l, rc{r, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n || (l[i].n == l[j].n && l[i].r < l[j].r) })
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = fmt.Sprintf("%s %d", x.r, x.n)
	}
	return strings.Join(parts, ", ")
}

// waitRun follows the Run until it ends, drawing its progress: a bar on
// a terminal, plain lines otherwise.
func waitRun(ctx context.Context, ad *admin.Admin, tenant, runID string, timeout time.Duration) error {
	prog := newProgress(os.Stdout)
	last := "waiting for the service to start run " + runID
	prog.update(last)
	run, err := ad.WaitRun(ctx, tenant, runID, func(r *statusview.Run) {
		last = runLine(r, time.Now())
		if r.Active() {
			prog.update(last)
		}
	})
	prog.done(last)
	switch {
	case err == nil, run != nil && !run.Active():
		return err // COMPLETED, or how the Run ended
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("timeout: run %s has not ended after %s (%s); it goes on in the service", runID, timeout, last)
	case ctx.Err() != nil:
		return fmt.Errorf("stopped waiting for run %s; it goes on in the service", runID)
	}
	return err
}

// runLine is one line of a Run's progress.
func runLine(r *statusview.Run, now time.Time) string {
	if r.Scope < 0 {
		return fmt.Sprintf("run %s: reading the tenant's current profiles...", r.RunID)
	}
	line := fmt.Sprintf("run %s %s %d of %d profiles, %d records spent", r.RunID, bar(r.Done, r.Scope, 20), min(r.Done, r.Scope), r.Scope, r.RecordsSpent)
	switch {
	case !r.Active():
		line += ", " + r.Outcome
	case r.ETA != nil:
		line += fmt.Sprintf(", ETA %s (in %s)", r.ETA.Local().Format("15:04:05"), short(r.ETA.Sub(now)))
	}
	return line
}
