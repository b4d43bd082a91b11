package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// An admin's session, command by command, against a running service.
func TestAdminCommandsAgainstARunningService(t *testing.T) {
	const token, n = "tok-admin-test-K4", 40
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stack, err := embedded.Start(ctx, embedded.Options{LeadspaceLatency: 5 * time.Millisecond, LeadspaceJitter: -1,
		Programs: []simulator.ProgramConfig{{ID: "acme", Tokens: []string{token}, TPS: 1000, Credits: simulator.Unlimited}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	env := map[string]string{"ENRICHER_ADMIN_KEY": "admin-key-for-test", "ACME_LEADSPACE_TOKEN": token, "WRONG_TOKEN": "tok-wrong"}
	run := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, code := cli(t, stack, env, args...)
		if code != 0 {
			t.Fatalf("enricher %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out, errOut
	}
	refused := func(want string, args ...string) {
		t.Helper()
		out, errOut, code := cli(t, stack, env, args...)
		if code == 0 || !strings.Contains(errOut, want) {
			t.Fatalf("enricher %s: exit %d, stderr %q; want a refusal saying %q (stdout %q)", strings.Join(args, " "), code, errOut, want, out)
		}
	}
	controlRecords := func() int {
		n := 0
		if err := processor.ReadAll(ctx, stack.Kafka, stack.Topics.Control, func(kafka.Message) { n++ }); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// connect refuses a token Leadspace rejects, and publishes nothing.
	refused("leadspace.unauthorized", "connect", "--tenant", "acme", "--token-ref", "env:WRONG_TOKEN")
	refused("plaintext token references are refused", "connect", "--tenant", "acme", "--token-ref", "plain:"+token)
	if got := controlRecords(); got != 0 {
		t.Fatalf("refused connects published %d control events", got)
	}
	run("connect", "--tenant", "acme", "--token-ref", "env:ACME_LEADSPACE_TOKEN", "--display-name", "Acme Leadspace")
	refused("min-confidence", "map", "--tenant", "acme", "--name", "CompanyName", "--min-confidence", "certain")
	refused("name:", "map", "--tenant", "acme", "--website", "Website")
	run("map", "--tenant", "acme", "--name", "CompanyName", "--website", "Website", "--location", "Location")
	run("consent", "give", "--tenant", "acme", "--by", "alice@acme.example", "--terms-version", "2020-11")

	show, _ := run("control", "show")
	for _, want := range []string{"acme", "ACTIVE", "env:ACME_LEADSPACE_TOKEN", "alice@acme.example", "name=CompanyName website=Website location=Location"} {
		if !strings.Contains(show, want) {
			t.Errorf("control show lacks %q:\n%s", want, show)
		}
	}

	seedProfiles(t, ctx, stack, n)
	svc := startRun(t, stack, env)
	before := waitStatus(t, stack, env, func(s processor.TenantView) bool { return s.Profiles == n })
	if before.Enriched+before.NotMatched+before.Skipped != n || before.Enriched == 0 || before.State != schemas.StateActive {
		t.Fatalf("status after %d profiles: %+v", n, before)
	}

	// A restart shows the same counts.
	svc.stop(t)
	svc = startRun(t, stack, env)
	time.Sleep(2 * time.Second) // several commit and status intervals
	after := waitStatus(t, stack, env, func(processor.TenantView) bool { return true })
	if after.Profiles != before.Profiles || after.Enriched != before.Enriched || after.NotMatched != before.NotMatched ||
		after.Skipped != before.Skipped || after.Failed != before.Failed || after.CreditsSpent != before.CreditsSpent {
		t.Fatalf("enricher status changed across a restart:\n before %+v\n after  %+v", before, after)
	}

	// Consent withdrawn: the tenant's state says so.
	run("consent", "withdraw", "--tenant", "acme")
	waitStatus(t, stack, env, func(s processor.TenantView) bool { return s.State == schemas.StateNoConsent })

	// Removal with purge withdraws what was published.
	run("remove", "--tenant", "acme", "--purge")
	deadline := time.Now().Add(30 * time.Second)
	for {
		latest := map[string]bool{}
		if err := processor.ReadAll(ctx, stack.Kafka, stack.Topics.Enriched, func(m kafka.Message) { latest[string(m.Key)] = m.Value != nil }); err != nil {
			t.Fatal(err)
		}
		live := 0
		for _, v := range latest {
			if v {
				live++
			}
		}
		if live == 0 && len(latest) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d enrichments still published after remove --purge", live, len(latest))
		}
		time.Sleep(200 * time.Millisecond)
	}
	svc.stop(t)
	if strings.Contains(svc.logs.String(), token) {
		t.Fatal("the token appears in the service's logs")
	}
}

func TestRunRefusesBadSettingsNamingThem(t *testing.T) {
	stack, err := embedded.Start(context.Background(), embedded.Options{Programs: []simulator.ProgramConfig{{ID: "p", Tokens: []string{"t"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"ENRICHER_BROKERS": ""}, "brokers: at least one"},
		{map[string]string{"ENRICHER_BROKERS": "no-port"}, "brokers: \"no-port\" is not host:port"},
		{map[string]string{"ENRICHER_SCHEMA_REGISTRY_URL": ""}, "schema-registry-url: required"},
		{map[string]string{"ENRICHER_LEADSPACE_TPS": "-3"}, "leadspace-tps:"},
		{map[string]string{"ENRICHER_SASL_MECHANISM": "GSSAPI"}, "sasl-mechanism:"},
		{map[string]string{"ENRICHER_SASL_MECHANISM": "PLAIN"}, "sasl-username/sasl-password: required"},
		{map[string]string{"ENRICHER_WINDOW": "0"}, "window:"},
		{map[string]string{"ENRICHER_COMMIT_INTERVAL": "soon"}, "ENRICHER_COMMIT_INTERVAL"},
		{map[string]string{"ENRICHER_LOG_FORMAT": "xml"}, "log-format:"},
		{map[string]string{"ENRICHER_TOKEN_SEAL_KEY": "not-a-key"}, "token-seal-key:"},
		{map[string]string{"ENRICHER_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1"}, "schema registry http://127.0.0.1:1"},
	}
	for _, c := range cases {
		_, errOut, code := cli(t, stack, c.env, "run")
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 1 naming %q", c.env, code, strings.TrimSpace(errOut), c.want)
		}
	}
}

func seedProfiles(t *testing.T, ctx context.Context, stack *embedded.Stack, n int) {
	t.Helper()
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		p := schemas.Profile{EventID: fmt.Sprint("ev-", i), TenantID: "acme", ProfileID: fmt.Sprint("p", i), Kind: "ACCOUNT",
			Attributes: map[string]string{"CompanyName": fmt.Sprintf("Northwind %d", i), "Website": fmt.Sprintf("northwind%d.example.org", i)},
			UnifiedAt:  time.Now().UTC().Truncate(time.Millisecond), Version: 1}
		v, err := stack.Codec.Encode(schemas.ProfileUnified, p.Native())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: stack.Topics.Profiles, Key: []byte("acme/" + p.ProfileID), Value: v})
	}
	if err := prod.Write(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// waitStatus polls `enricher status --json` until cond holds for acme.
func waitStatus(t *testing.T, stack *embedded.Stack, env map[string]string, cond func(processor.TenantView) bool) processor.TenantView {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, errOut, code := cli(t, stack, env, "status", "--json", "--tenant", "acme")
		if code != 0 {
			t.Fatalf("enricher status: exit %d: %s", code, errOut)
		}
		var rows []processor.TenantView
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("enricher status --json: %v\n%s", err, out)
		}
		if len(rows) == 1 && cond(rows[0]) {
			return rows[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reached the expected state; last: %s", out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
