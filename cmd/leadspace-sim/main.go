// Command leadspace-sim serves the Leadspace simulator on a local address,
// for development and smoke tests:
//
//	leadspace-sim --addr 127.0.0.1:8089 --token t1 --token t2 --tps 30 --latency 120ms
//
// Each --token is one program ("program-1", "program-2", ...). Test
// controls live under /__sim/ (faults, reset, clock, calls).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		log.Fatalf("leadspace-sim: %v", err)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("leadspace-sim", flag.ContinueOnError)
	var tokens tokenList
	addr := fs.String("addr", "127.0.0.1:8089", "listen address")
	fs.Var(&tokens, "token", "perpetual API token of one program (repeatable)")
	tps := fs.Float64("tps", 30, "transactions per second per program")
	latency := fs.Duration("latency", 120*time.Millisecond, "latency of a single call")
	jitter := fs.Duration("jitter", 80*time.Millisecond, "deterministic latency jitter (negative: none)")
	credits := fs.Int64("credits", simulator.Unlimited, "credits per program (-1: unlimited)")
	seed := fs.Int64("seed", 1, "seed for generated ids")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(tokens) == 0 {
		return fmt.Errorf("at least one --token is required")
	}
	cfg := simulator.Config{Latency: *latency, Jitter: *jitter, Seed: *seed}
	if *latency == 0 {
		cfg.Latency = time.Nanosecond // zero means the default; keep "no latency" possible
	}
	for i, t := range tokens {
		cfg.Programs = append(cfg.Programs, simulator.ProgramConfig{
			ID: fmt.Sprintf("program-%d", i+1), Tokens: []string{t}, TPS: *tps, Credits: *credits,
		})
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		return err
	}
	url, err := sim.Start(*addr)
	if err != nil {
		return err
	}
	// Tokens are never logged; programs are named by id.
	log.Printf("leadspace simulator listening on %s with %d program(s)", url, len(tokens))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Printf("shutting down")
	return sim.Close()
}
