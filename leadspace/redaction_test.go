package leadspace

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

// The token and the OAuth secret must never show up in errors, logs,
// metrics or String output, whatever goes wrong.
func TestSecretsNeverLeak(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := newWorld(t, nil, func(c *Config) {
		c.Registerer = reg
		c.MaxAttempts = 2
		c.RequestTimeout = 100 * time.Millisecond
		c.Breaker.ConsecutiveFailures = 3
	})
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
		}
	}
	ctx := context.Background()
	for _, p := range []*Program{w.program(), w.oauthProgram(),
		w.client.Program(Credentials{Token: testToken + "-wrong"}),
		w.client.Program(Credentials{OAuth: &OAuthCredentials{ProgramID: testProgramID, Secret: testSecret + "-wrong"}}),
		w.client.Program(Credentials{Token: testToken + "\r\nX-Injected: 1"}), // ReasonInvalidToken
	} {
		for _, name := range []string{simulator.Magic500, simulator.MagicSlow, "", "Contoso"} {
			_, err := p.Enrich(ctx, Request{ExternalID: "x", Company: CompanyInput{Name: name}})
			note(err)
		}
		_, err := p.EnrichBulk(ctx, []Request{{ExternalID: "a", Company: CompanyInput{Name: simulator.Magic503}}})
		note(err)
		note(p.Verify(ctx))
	}
	w.sim.InjectFault(simulator.Fault{Status: 401, Count: 2})
	_, err := w.oauthProgram().Enrich(ctx, contoso("y"))
	note(err)

	creds := Credentials{Token: testToken}
	oc := Credentials{OAuth: &OAuthCredentials{ProgramID: testProgramID, Secret: testSecret}}
	var out strings.Builder
	for _, s := range errs {
		out.WriteString(s + "\n")
	}
	for _, v := range []any{creds, oc, &creds} {
		fmt.Fprintf(&out, "%v %+v %#v %s\n", v, v, v, v)
	}
	for _, e := range w.logs.All() {
		out.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			fmt.Fprintf(&out, " %s=%v", k, v)
		}
		out.WriteString("\n")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		out.WriteString(f.String() + "\n")
	}
	if len(errs) < 10 || w.logs.Len() == 0 || len(families) == 0 {
		t.Fatalf("scan had too little to look at: %d errors, %d logs, %d metric families", len(errs), w.logs.Len(), len(families))
	}
	for _, secret := range []string{testToken, testSecret} {
		if strings.Contains(out.String(), secret) {
			t.Fatalf("secret %q leaked:\n%s", secret, out.String())
		}
	}
	if !strings.Contains(out.String(), creds.Key()) {
		t.Fatalf("program key %s should label logs and metrics", creds.Key())
	}
}

func TestCredentialsKeyIsStableAndDistinct(t *testing.T) {
	a, b := Credentials{Token: "t1"}, Credentials{Token: "t2"}
	if a.Key() != (Credentials{Token: "t1"}).Key() || a.Key() == b.Key() || len(a.Key()) != 16 {
		t.Fatalf("keys %s %s", a.Key(), b.Key())
	}
	if a.String() != "program:"+a.Key() {
		t.Fatalf("String = %s", a.String())
	}
}
