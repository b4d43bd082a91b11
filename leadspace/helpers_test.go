package leadspace

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

const (
	testToken     = "tok-SECRET-4f1d8a"
	testProgramID = "program-1"
	testSecret    = "oauth-SECRET-77c2"
)

// world is a simulator and a client pointed at it, tuned to run fast.
type world struct {
	sim    *simulator.Simulator
	client *Client
	logs   *observer.ObservedLogs
}

// fastSim is the simulator with small latencies; tweak adjusts it.
func newWorld(t testing.TB, tweakSim func(*simulator.Config), tweakClient func(*Config)) *world {
	t.Helper()
	scfg := simulator.Config{
		Programs: []simulator.ProgramConfig{{
			ID: testProgramID, Secret: testSecret, Tokens: []string{testToken},
			Credits: simulator.Unlimited, TPS: 1000,
		}},
		Latency:             2 * time.Millisecond,
		Jitter:              -1,
		BulkReadyAfterPolls: 1,
		SlowDelay:           5 * time.Second,
	}
	if tweakSim != nil {
		tweakSim(&scfg)
	}
	sim, err := simulator.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })

	core, logs := observer.New(zapcore.DebugLevel)
	ccfg := Config{
		BaseURL:        url,
		RequestTimeout: 2 * time.Second,
		TPS:            1000,
		BackoffBase:    2 * time.Millisecond,
		BackoffMax:     20 * time.Millisecond,
		BulkPollFirst:  5 * time.Millisecond,
		BulkPollMin:    5 * time.Millisecond,
		Breaker:        BreakerConfig{OpenTimeout: 200 * time.Millisecond},
		Logger:         zap.New(core),
	}
	if tweakClient != nil {
		tweakClient(&ccfg)
	}
	c, err := New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &world{sim: sim, client: c, logs: logs}
}

func (w *world) program() *Program { return w.client.Program(Credentials{Token: testToken}) }

func (w *world) oauthProgram() *Program {
	return w.client.Program(Credentials{OAuth: &OAuthCredentials{ProgramID: testProgramID, Secret: testSecret}})
}

// calls returns the simulator's log for one path.
func (w *world) calls(path string) []simulator.Call {
	var out []simulator.Call
	for _, c := range w.sim.Calls() {
		if c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

func statuses(calls []simulator.Call) []int {
	out := make([]int, len(calls))
	for i, c := range calls {
		out[i] = c.Status
	}
	return out
}

func contoso(id string) Request {
	return Request{ExternalID: id, Company: CompanyInput{Name: "Contoso", Website: "contoso.com"}}
}

func wantReason(t testing.TB, err error, class Class, reason string) {
	t.Helper()
	var e *Error
	if !errorsAs(err, &e) {
		t.Fatalf("error = %v, want *Error %s/%s", err, class, reason)
	}
	if e.Class != class || e.Reason != reason {
		t.Fatalf("error = %v (class %s, reason %s), want %s/%s", err, e.Class, e.Reason, class, reason)
	}
}

func errorsAs(err error, target **Error) bool { return errors.As(err, target) }

// submitWait submits one record and waits for its outcome.
func submitWait(t testing.TB, p *Program, ctx context.Context, req Request) Outcome {
	t.Helper()
	ch := make(chan Outcome, 1)
	p.Submit(ctx, req, func(o Outcome) { ch <- o })
	select {
	case o := <-ch:
		return o
	case <-time.After(30 * time.Second):
		t.Fatal("no outcome within 30 s")
		return Outcome{}
	}
}
