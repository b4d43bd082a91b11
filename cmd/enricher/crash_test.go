package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
)

// An instance killed while Leadspace processes its bulks has paid for
// them; the instance that takes over reads the journaled bulks instead of
// paying again. The simulator's count is the witness.
func TestAKillWhileBulksAreOutPaysForNothingTwice(t *testing.T) {
	const token, n = "tok-crash-test-3Kq9", 2000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stack := startAcme(t, ctx, embedded.Options{
		Programs:         []simulator.ProgramConfig{{ID: "acme", Tokens: []string{token}, TPS: 1000, Credits: simulator.Unlimited}},
		LeadspaceLatency: 5 * time.Millisecond, LeadspaceJitter: -1,
		// Bulks take long enough for the kill to land while they are out.
		BulkReadyAfter: 4 * time.Second,
	}, n)
	env := map[string]string{"LEADSPACE_TOKEN_ACME": token, "ENRICHER_LEADSPACE_TPS": "1000"}
	first := startRun(t, stack, env)

	// Kill it once every record was accepted in a bulk, before the results.
	for stack.Simulator.RecordsReceived("acme") < n-n/40-5 { // blank names are skipped
		select {
		case err := <-first.exited:
			t.Fatalf("enricher run exited early (%v):\n%s", err, first.logs.String())
		case <-ctx.Done():
			t.Fatalf("only %d records reached Leadspace:\n%s", stack.Simulator.RecordsReceived("acme"), first.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The journal is written just after a bulk is accepted; a kill in
	// those milliseconds loses that bulk (in production, a small window of
	// each bulk's cycle). Let the journal catch up first: every record paid
	// for is journaled, or its answer (a single call's) published.
	for journaled(t, ctx, stack)+outputs(t, ctx, stack) < stack.Simulator.RecordsReceived("acme") {
		select {
		case <-ctx.Done():
			t.Fatalf("the journal holds %d records of %d accepted", journaled(t, ctx, stack), stack.Simulator.RecordsReceived("acme"))
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = first.cmd.Process.Signal(syscall.SIGKILL)
	<-first.exited
	paid := stack.Simulator.RecordsReceived("acme")
	published := outputs(t, ctx, stack)
	if published > n/2 {
		t.Fatalf("%d of %d outputs were published before the kill; the kill must land while the bulks are out", published, n)
	}

	second := startRun(t, stack, env)
	for outputs(t, ctx, stack) < n {
		select {
		case err := <-second.exited:
			t.Fatalf("enricher run exited early (%v):\n%s", err, second.logs.String())
		case <-ctx.Done():
			t.Fatalf("only %d of %d outputs after the restart:\n%s", outputs(t, ctx, stack), n, second.logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	second.stop(t)
	if again := stack.Simulator.RecordsReceived("acme") - paid; again > n/100 {
		t.Fatalf("after the kill, Leadspace received %d more records for %d inputs whose bulks were already paid for", again, paid)
	}
	t.Logf("%d records paid before the kill (%d outputs published), %d after it", paid, published, stack.Simulator.RecordsReceived("acme")-paid)
}

// outputs counts the distinct keys on the enriched topic.
func outputs(t *testing.T, ctx context.Context, stack *embedded.Stack) int {
	t.Helper()
	keys := map[string]bool{}
	if err := processor.ReadAll(ctx, stack.Kafka, stack.Topics.Enriched, func(m kafka.Message) { keys[string(m.Key)] = true }); err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// journaled counts the input records the journal's live entries hold.
func journaled(t *testing.T, ctx context.Context, stack *embedded.Stack) int {
	t.Helper()
	latest := map[string][]byte{}
	if err := processor.ReadAll(ctx, stack.Kafka, stack.Topics.WithDefaults().Journal, func(m kafka.Message) { latest[string(m.Key)] = m.Value }); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range latest {
		if v == nil {
			continue
		}
		b, err := stack.Codec.DecodeBulk(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		n += len(b.Inputs)
	}
	return n
}
