// Command leadspace-sim serves the Leadspace simulator on a local address,
// for development, smoke tests and benchmarks:
//
//	leadspace-sim --addr 127.0.0.1:8089 --token t1 --program acme=t2,t3 --tps 30 --latency 120ms
//
// Each --token is one program ("program-1", "program-2", ...); each
// --program id=token[,token] is one program with that id and its tokens.
// The first line on stdout is the base URL (scripts read it, useful with
// --addr 127.0.0.1:0); logs go to stderr and never show a token. Test
// controls live under /__sim/ (faults, reset, clock, calls, stats).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

type tokenList []string

func (t *tokenList) String() string { return fmt.Sprintf("%d token(s)", len(*t)) }

func (t *tokenList) Set(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("empty token")
	}
	*t = append(*t, v)
	return nil
}

// programList collects --program id=token[,token] as given; parsePrograms
// checks them afterwards, since the flag package would quote a refused
// value, token included, in its error.
type programList []string

func (p *programList) String() string { return fmt.Sprintf("%d program(s)", len(*p)) }

func (p *programList) Set(v string) error { *p = append(*p, v); return nil }

func parsePrograms(specs []string) ([]simulator.ProgramConfig, error) {
	var out []simulator.ProgramConfig
	for i, v := range specs {
		id, tokens, ok := strings.Cut(v, "=")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, fmt.Errorf("--program #%d: want id=token[,token]", i+1)
		}
		pc := simulator.ProgramConfig{ID: id}
		for _, t := range strings.Split(tokens, ",") {
			if strings.TrimSpace(t) == "" {
				return nil, fmt.Errorf("--program %s: empty token", id)
			}
			pc.Tokens = append(pc.Tokens, t)
		}
		out = append(out, pc)
	}
	return out, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: usage printed, exit 0
		}
		fmt.Fprintf(os.Stderr, "leadspace-sim: %v\n", err)
		os.Exit(2)
	}
}

// run serves until ctx ends. The base URL is the first line on stdout.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("leadspace-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		tokens   tokenList
		programs programList
	)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address (port 0 picks a free one)")
	fs.Var(&tokens, "token", "perpetual API token of one program, named program-N (repeatable)")
	fs.Var(&programs, "program", "one program: id=token[,token] (repeatable)")
	tps := fs.Float64("tps", 30, "transactions per second per program (bucket burst = tps)")
	latency := fs.Duration("latency", 120*time.Millisecond, "latency of a single call")
	jitter := fs.Duration("jitter", 80*time.Millisecond, "deterministic latency jitter (negative: none)")
	credits := fs.Int64("credits", simulator.Unlimited, "credits per program (-1: unlimited)")
	seed := fs.Int64("seed", 1, "seed for generated ids")
	readyAfter := fs.Duration("bulk-ready-after", time.Second, "a bulk's results are ready this long after its submit")
	readyPolls := fs.Int("bulk-ready-after-polls", 0, "if > 0, results are ready after this many polls instead (deterministic tests)")
	freePolls := fs.Bool("free-polls", false, "polls take no token from the program's bucket (UNCERTAIN in the research notes)")
	logLimit := fs.Int("call-log-limit", 100_000, "newest calls kept in the call log (0: all); /__sim/stats stay exact")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	named, err := parsePrograms(programs)
	if err != nil {
		return err
	}
	if len(tokens) == 0 && len(named) == 0 {
		return fmt.Errorf("at least one --token or --program is required")
	}
	cfg := simulator.Config{Latency: *latency, Jitter: *jitter, Seed: *seed, BulkReadyAfter: *readyAfter,
		BulkReadyAfterPolls: *readyPolls, FreePolls: *freePolls, CallLogLimit: *logLimit}
	if *latency == 0 {
		cfg.Latency = time.Nanosecond // zero means the default; keep "no latency" possible
	}
	if *readyAfter == 0 {
		cfg.BulkReadyAfter = -1 // ready at once, not the default
	}
	for i, t := range tokens {
		cfg.Programs = append(cfg.Programs, simulator.ProgramConfig{ID: fmt.Sprintf("program-%d", i+1), Tokens: []string{t}})
	}
	cfg.Programs = append(cfg.Programs, named...)
	for i := range cfg.Programs {
		cfg.Programs[i].TPS, cfg.Programs[i].Credits = *tps, *credits
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		return err
	}
	url, err := sim.Start(*addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, url)
	// Tokens are never logged; programs are named by id.
	lg := log.New(stderr, "", log.LstdFlags)
	ids := make([]string, len(cfg.Programs))
	for i, p := range cfg.Programs {
		ids[i] = p.ID
	}
	lg.Printf("leadspace simulator listening on %s with program(s) %s", url, strings.Join(ids, ", "))
	<-ctx.Done()
	lg.Printf("shutting down")
	return sim.Close()
}
