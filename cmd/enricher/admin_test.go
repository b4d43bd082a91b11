package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// An admin's session, command by command, against a running service.
// Admins sign with an Ed25519 key; the service holds only its public key.
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
	private, public, keyID, err := controlplane.GenerateAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	// One environment for both: the service reads the public key, the admin
	// commands the private one.
	env := map[string]string{"ENRICHER_ADMIN_SIGNING_KEY": private, "ENRICHER_ADMIN_PUBLIC_KEYS": public,
		"LEADSPACE_TOKEN_ACME": token, "LEADSPACE_TOKEN_WRONG": "tok-wrong"}
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

	// Nothing can work before the tenant is connected.
	notConnected := "tenant acme is not connected: run 'enricher connect' first"
	refused(notConnected, "consent", "give", "--tenant", "acme")
	refused(notConnected, "consent", "withdraw", "--tenant", "acme")
	refused(notConnected, "map", "--tenant", "acme", "--name", "CompanyName")
	refused(notConnected, "remove", "--tenant", "acme")
	// connect refuses a token Leadspace rejects, and references the service
	// would refuse to resolve; it publishes nothing.
	refused("leadspace.unauthorized", "connect", "--tenant", "acme", "--token-ref", "env:LEADSPACE_TOKEN_WRONG")
	refused("plaintext token references are refused", "connect", "--tenant", "acme", "--token-ref", "plain:"+token)
	refused("token.refused: env:HOME", "connect", "--tenant", "acme", "--token-ref", "env:HOME")
	refused("token.refused: file: references are refused", "connect", "--tenant", "acme", "--token-ref", "file:/etc/passwd")
	if got := controlRecords(); got != 0 {
		t.Fatalf("refused commands published %d control events", got)
	}

	seedProfiles(t, ctx, stack, n)
	connected, _ := run("connect", "--tenant", "acme", "--token-ref", "env:LEADSPACE_TOKEN_ACME", "--display-name", "Acme Leadspace")
	if !strings.Contains(connected, "signed by "+keyID) {
		t.Fatalf("connect did not sign with the admin key %s:\n%s", keyID, connected)
	}
	refused("min-confidence", "map", "--tenant", "acme", "--name", "CompanyName", "--min-confidence", "certain")
	refused("name:", "map", "--tenant", "acme", "--website", "Website")
	// A mapped attribute no recent profile holds: refused with --strict,
	// published with a warning without.
	refused("NoSuchField (name): in none of tenant acme's 40 recent profiles; attributes seen: CompanyName (40), Website (40)",
		"map", "--tenant", "acme", "--name", "NoSuchField", "--strict")
	before := controlRecords()
	_, warned := run("map", "--tenant", "acme", "--name", "CompanyName", "--website", "Website", "--location", "Location")
	if !strings.Contains(warned, "warning: Location (location): in none of tenant acme's 40 recent profiles") {
		t.Fatalf("map did not warn about an attribute no profile holds: %q", warned)
	}
	if got := controlRecords(); got != before+1 {
		t.Fatalf("map with a warning published %d events, want 1", got-before)
	}
	run("consent", "give", "--tenant", "acme", "--by", "alice@acme.example", "--terms-version", "2020-11")

	// Before the service ran, control show has no state from it.
	show, _ := run("control", "show")
	if !strings.Contains(show, "(not applied yet)") || !strings.Contains(show, "unknown (not reported)") {
		t.Errorf("control show before the service ran:\n%s", show)
	}

	svc := startRun(t, stack, env)
	before2 := waitStatus(t, stack, env, func(s statusview.Tenant) bool { return s.Profiles == n })
	if before2.Enriched+before2.NotMatched+before2.Skipped != n || before2.Enriched == 0 || before2.State != schemas.StateActive {
		t.Fatalf("status after %d profiles: %+v", n, before2)
	}

	// A forged withdrawal (another Ed25519 key) changes nothing, and
	// control show never presents it as the state.
	otherPrivate, _, _, err := controlplane.GenerateAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := controlplane.ParseAdminSigningKey(otherPrivate)
	if err != nil {
		t.Fatal(err)
	}
	forged := schemas.Control{EventID: "forged-1", TenantID: "acme", IssuedBy: "mallory", IssuedAt: time.Now().UTC().Truncate(time.Millisecond),
		Consent: &schemas.Consent{Given: false}}
	if err := (controlplane.Auth{SigningKey: other}).Sign(&forged); err != nil {
		t.Fatal(err)
	}
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := prod.PublishControl(ctx, stack.Topics.Control, forged); err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, stack, env, func(s statusview.Tenant) bool { return s.RefusedControlEvents == 1 })
	if st.State != schemas.StateActive || st.RefusedByReason[controlplane.ReasonUnknownKey] != 1 {
		t.Fatalf("after a forged withdrawal: %+v", st)
	}
	view := controlShow(t, stack, env, "--all")
	acme := view.tenant(t, "acme")
	if acme.State != st.State || acme.StateReason != st.StateReason || acme.Refused != st.RefusedControlEvents {
		t.Errorf("control show says %s %q (refused %d), status says %s %q (refused %d)",
			acme.State, acme.StateReason, acme.Refused, st.State, st.StateReason, st.RefusedControlEvents)
	}
	if c := acme.Applied[schemas.KindConsent]; c == nil || c.Summary != "given" || c.IssuedBy != "alice@acme.example" || c.Signature != controlplane.VerdictVerified ||
		c.Signed != controlplane.SchemeBytes {
		t.Errorf("control show's applied consent: %+v", c)
	}
	for _, r := range view.Records {
		if r.EventID == "forged-1" && (r.Signature != controlplane.VerdictUnverified || r.Service == "applied") {
			t.Errorf("the forged withdrawal is listed as %s, %s", r.Signature, r.Service)
		}
	}
	text, _ := run("control", "show")
	for _, want := range []string{"ACTIVE", "env:LEADSPACE_TOKEN_ACME", "alice@acme.example", "name=CompanyName website=Website location=Location",
		"verified (" + keyID + ")", "control.unknown_key 1", "SIGNED"} {
		if !strings.Contains(text, want) {
			t.Errorf("control show lacks %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "acme/") && !slices.Contains(strings.Fields(line), controlplane.SchemeBytes) {
			t.Errorf("control show does not say the event is signed over its bytes: %s", line)
		}
	}

	// A restart shows the same counts.
	svc.stop(t)
	restarted := time.Now().Truncate(time.Millisecond)
	svc = startRun(t, stack, env)
	// Once the restarted service wrote the tenant's status again, what a
	// restart changes is on the topic.
	after := waitStatus(t, stack, env, func(s statusview.Tenant) bool { return s.UpdatedAt != nil && !s.UpdatedAt.Before(restarted) })
	if after.Profiles != before2.Profiles || after.Enriched != before2.Enriched || after.NotMatched != before2.NotMatched ||
		after.Skipped != before2.Skipped || after.Failed != before2.Failed || after.CreditsSpent != before2.CreditsSpent ||
		after.RefusedControlEvents != 1 {
		t.Fatalf("enricher status changed across a restart:\n before %+v\n after  %+v", before2, after)
	}

	// Consent withdrawn: the command returns once the service applied it,
	// and the tenant's state says so, in both views.
	if withdrawn, _ := run("consent", "withdraw", "--tenant", "acme"); !strings.Contains(withdrawn, "applied by the service") {
		t.Errorf("consent withdraw returned before the service applied it:\n%s", withdrawn)
	}
	st = waitStatus(t, stack, env, func(s statusview.Tenant) bool { return s.State == schemas.StateNoConsent })
	if got := controlShow(t, stack, env).tenant(t, "acme"); got.State != st.State || got.Applied[schemas.KindConsent].Summary != "withdrawn" {
		t.Errorf("control show after the withdrawal: %s, consent %+v", got.State, got.Applied[schemas.KindConsent])
	}

	// Removal with purge withdraws what was published.
	run("remove", "--tenant", "acme", "--purge")
	retrytest.Until(t, 30*time.Second, func() (bool, string) {
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
		return live == 0 && len(latest) == n, fmt.Sprintf("%d of %d enrichments still published after remove --purge", live, len(latest))
	})
	svc.stop(t)
	if strings.Contains(svc.logs.String(), token) {
		t.Fatal("the token appears in the service's logs")
	}
}

// controlShow runs `enricher control show --json`.
func controlShow(t *testing.T, stack *embedded.Stack, env map[string]string, args ...string) controlView {
	t.Helper()
	out, errOut, code := cli(t, stack, env, append([]string{"control", "show", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("enricher control show: exit %d: %s", code, errOut)
	}
	var v controlView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("control show --json: %v\n%s", err, out)
	}
	return v
}

func (v controlView) tenant(t *testing.T, id string) *controlTenantRow {
	t.Helper()
	for _, r := range v.Tenants {
		if r.Tenant == id {
			return r
		}
	}
	t.Fatalf("control show has no tenant %s", id)
	return nil
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
		{map[string]string{"ENRICHER_TOKEN_ENV_PREFIX": "ENRICHER_"}, "token-env-prefix: \"ENRICHER_\" would let a control event read the service's own"},
		{map[string]string{"ENRICHER_TOKEN_ENV_PREFIX": "ENRICHER_TOKEN_"}, "token-env-prefix: \"ENRICHER_TOKEN_\" would let"},
		{map[string]string{"ENRICHER_TOKEN_ENV_PREFIX": "tokens"}, "token-env-prefix: \"tokens\" must be upper case"},
		{map[string]string{"ENRICHER_TOKEN_DIR": "/no/such/dir"}, "token-dir: /no/such/dir is not a directory"},
		{map[string]string{"ENRICHER_TOKEN_DIR": "/"}, "token-dir: the root directory"},
		{map[string]string{"ENRICHER_ADMIN_PUBLIC_KEYS": "ed25519:AAAA"}, "admin-public-keys: key 1 is not an Ed25519 public key"},
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
func waitStatus(t *testing.T, stack *embedded.Stack, env map[string]string, cond func(statusview.Tenant) bool) statusview.Tenant {
	t.Helper()
	var row statusview.Tenant
	retrytest.Until(t, 60*time.Second, func() (bool, string) {
		out, errOut, code := cli(t, stack, env, "status", "--json", "--tenant", "acme")
		if code != 0 {
			t.Fatalf("enricher status: exit %d: %s", code, errOut)
		}
		var rows []statusview.Tenant
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("enricher status --json: %v\n%s", err, out)
		}
		if len(rows) == 1 && cond(rows[0]) {
			row = rows[0]
			return true, ""
		}
		return false, "status never reached the expected state; last: " + out
	})
	return row
}

// control show tells the applied event, its copies, history, a replay, a
// forgery and a lost event apart, from the log and the service's record.
func TestControlShowMatchesRecordsWithWhatTheServiceApplied(t *testing.T) {
	at := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	ev := func(tenant, id string, seq int64, c schemas.Control) *schemas.Control {
		c.TenantID, c.EventID, c.Sequence, c.IssuedAt, c.IssuedBy = tenant, id, seq, at, "admin"
		return &c
	}
	give := ev("acme", "give", 2, schemas.Control{Consent: &schemas.Consent{Given: true}, Signature: "bytes:c2ln"})
	withdraw := ev("acme", "withdraw", 3, schemas.Control{Consent: &schemas.Consent{Given: false}, Signature: "c2ln"})
	rec := func(offset int64, key string, e *schemas.Control, verdict string) controlplane.Record {
		return controlplane.Record{Key: key, Offset: offset, Event: e, Verdict: verdict, KeysHere: true}
	}
	records := []controlplane.Record{
		rec(0, "acme/connection", ev("acme", "conn", 1, schemas.Control{Connection: &schemas.Connection{DisplayName: "Acme", TokenRef: "plain:tok-SECRET"}}), controlplane.VerdictVerified),
		rec(1, "acme/consent", give, controlplane.VerdictVerified),
		rec(2, "acme/consent", withdraw, controlplane.VerdictVerified),
		rec(3, "acme/consent", give, controlplane.VerdictVerified),     // the replay
		rec(4, "acme/consent", withdraw, controlplane.VerdictVerified), // the service's copy
		rec(5, "acme/mapping", ev("acme", "forged", 99, schemas.Control{Mapping: &schemas.Mapping{NameAttribute: "X"}}), controlplane.VerdictUnverified),
		rec(6, "acme/removal", nil, controlplane.ReasonTombstone),
		rec(7, "globex/consent", ev("globex", "g", 5, schemas.Control{Consent: &schemas.Consent{Given: true}}), controlplane.VerdictVerified),
	}
	applied := map[string]schemas.Status{"acme": {TenantID: "acme", Partition: schemas.ControlPartition, State: schemas.StateNoConsent,
		StateReason: "gate.no_consent", RefusedControl: 3,
		ControlSequences: map[string]int64{"connection": 1, "consent": 3, "mapping": 2, "@0": 7},
		AppliedControl:   map[string]string{"connection": "conn", "consent": "withdraw", "mapping": "map-1"}}}
	view := buildControlView(records, applied, "", true)
	want := []string{"applied", "superseded", "applied", "refused (replay: sequence not above 3)", "applied", "not applied", "refused",
		"unknown (not reported)"}
	// What each signature covers: the encoded event, or the legacy text.
	signed := []string{"", "bytes", "canonical text (re-issue)", "bytes", "canonical text (re-issue)", "", "", ""}
	for i, r := range view.Records {
		if r.Service != want[i] {
			t.Errorf("record %d (%s): %q, want %q", r.Offset, r.Key, r.Service, want[i])
		}
		if r.Signed != signed[i] {
			t.Errorf("record %d (%s): signed %q, want %q", r.Offset, r.Key, r.Signed, signed[i])
		}
		if strings.Contains(r.Detail, "tok-SECRET") {
			t.Errorf("record %d shows the token: %q", r.Offset, r.Detail)
		}
	}
	acme, globex := view.tenant(t, "acme"), view.tenant(t, "globex")
	if acme.State != schemas.StateNoConsent || acme.Applied["consent"].Summary != "withdrawn" || acme.Applied["mapping"] != nil ||
		!slices.Equal(acme.Lost, []string{"mapping"}) {
		t.Errorf("acme: %+v (consent %+v)", acme, acme.Applied["consent"])
	}
	if globex.Reported || globex.Applied["consent"].Summary != "given (not applied yet)" {
		t.Errorf("globex, not reported by the service: %+v", globex)
	}
	if latest := buildControlView(records, applied, "acme", false); len(latest.Records) != 4 || len(latest.Tenants) != 1 {
		t.Errorf("the latest record of each of acme's keys: %d records, %d tenants", len(latest.Records), len(latest.Tenants))
	}
}
