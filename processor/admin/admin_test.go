package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

const goodToken, brokeToken = "tok-admin-pkg-G00D", "tok-admin-pkg-BR0KE"

// stack starts the embedded stack with a program for goodToken and one
// without credits for brokeToken.
func stack(t *testing.T) *embedded.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := embedded.Start(ctx, embedded.Options{LeadspaceLatency: time.Millisecond, LeadspaceJitter: -1, Programs: []simulator.ProgramConfig{
		{ID: "good", Tokens: []string{goodToken}, TPS: 1000, Credits: simulator.Unlimited},
		{ID: "broke", Tokens: []string{brokeToken}, TPS: 1000, Credits: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// signedAdmin opens an Admin on the stack that signs with a new Ed25519
// key; the ControlAuth returned verifies with its public key only, as the
// service does.
func signedAdmin(t *testing.T, s *embedded.Stack, cfg Config) (*Admin, controlplane.Auth) {
	t.Helper()
	private, public, _, err := controlplane.GenerateAdminKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := controlplane.ParseAdminSigningKey(private)
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := controlplane.ParseAdminPublicKeys(public)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka, cfg.Topics, cfg.Codec, cfg.LeadspaceURL = s.Kafka, s.Topics, s.Codec, s.LeadspaceURL
	cfg.Auth = controlplane.Auth{PublicKeys: pubs, SigningKey: priv}
	a, err := Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, controlplane.Auth{PublicKeys: pubs}
}

// connectedAdmin is signedAdmin after connecting tenant acme (by alice).
func connectedAdmin(t *testing.T, s *embedded.Stack) (*Admin, controlplane.Auth) {
	t.Helper()
	t.Setenv("LEADSPACE_TOKEN_ACME", goodToken)
	a, auth := signedAdmin(t, s, Config{})
	if _, err := a.Connect(context.Background(), ConnectRequest{Tenant: "acme", TokenRef: "env:LEADSPACE_TOKEN_ACME", By: "alice"}); err != nil {
		t.Fatal(err)
	}
	return a, auth
}

func controlLog(t *testing.T, s *embedded.Stack, auth controlplane.Auth) []controlplane.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	records, err := controlplane.ReadLog(ctx, s.Kafka, s.Topics.Control, s.Codec, auth)
	if err != nil {
		t.Fatal(err)
	}
	return records
}

func TestAdminRefusesATenantNeverConnected(t *testing.T) {
	s := stack(t)
	a, auth := signedAdmin(t, s, Config{})
	ctx := context.Background()
	for name, change := range map[string]func() error{
		"consent": func() error {
			_, err := a.Consent(ctx, ConsentRequest{Tenant: "acme", Given: true, By: "alice"})
			return err
		},
		"map": func() error {
			_, _, err := a.Map(ctx, MapRequest{Tenant: "acme", Name: "CompanyName", By: "alice"})
			return err
		},
		"remove": func() error {
			_, err := a.Remove(ctx, "acme", true, "alice")
			return err
		},
	} {
		if err := change(); !errors.Is(err, ErrNotConnected) {
			t.Errorf("%s of a tenant never connected: %v, want ErrNotConnected", name, err)
		}
	}
	for name, read := range map[string]func() error{
		"run":    func() error { _, err := a.StartRun(ctx, "acme", false, "alice"); return err },
		"status": func() error { _, err := a.Status(ctx, "acme"); return err },
		"show":   func() error { _, err := a.Enrichments(ctx, "acme"); return err },
	} {
		if err := read(); !errors.Is(err, ErrUnknownTenant) {
			t.Errorf("%s of a tenant never connected: %v, want ErrUnknownTenant", name, err)
		}
	}
	if n := len(controlLog(t, s, auth)); n != 0 {
		t.Fatalf("refused changes published %d control events", n)
	}
}

func TestConnectRefusesWhatLeadspaceRefusesAndPublishesNothing(t *testing.T) {
	s := stack(t)
	t.Setenv("LEADSPACE_TOKEN_WRONG", "tok-admin-pkg-WR0NG")
	t.Setenv("LEADSPACE_TOKEN_BROKE", brokeToken)
	a, auth := signedAdmin(t, s, Config{})
	ctx := context.Background()
	_, err := a.Connect(ctx, ConnectRequest{Tenant: "acme", TokenRef: "env:LEADSPACE_TOKEN_WRONG", By: "alice"})
	if !errors.Is(err, ErrUnauthorized) || strings.Contains(err.Error(), "WR0NG") {
		t.Errorf("a token Leadspace refuses (401): %v, want ErrUnauthorized without the token", err)
	}
	_, err = a.Connect(ctx, ConnectRequest{Tenant: "acme", TokenRef: "env:LEADSPACE_TOKEN_BROKE", By: "alice"})
	if !errors.Is(err, ErrCreditsExhausted) || strings.Contains(err.Error(), brokeToken) {
		t.Errorf("a program without credits: %v, want ErrCreditsExhausted without the token", err)
	}
	// A raw token with neither a seal key nor plaintext allowed: refused
	// before any call.
	_, err = a.Connect(ctx, ConnectRequest{Tenant: "acme", Token: goodToken, By: "alice"})
	if !errors.Is(err, ErrToken) || strings.Contains(err.Error(), goodToken) {
		t.Errorf("a raw token without a seal key: %v, want ErrToken", err)
	}
	if _, err = a.Connect(ctx, ConnectRequest{Tenant: "acme", TokenRef: "env:HOME", By: "alice"}); !errors.Is(err, ErrToken) {
		t.Errorf("a reference the service would refuse: %v, want ErrToken", err)
	}
	if n := len(controlLog(t, s, auth)); n != 0 {
		t.Fatalf("refused connections published %d control events", n)
	}
	if got := s.Simulator.Calls(); len(got) != 2 {
		t.Errorf("Leadspace got %d calls, want the 2 verifications", len(got))
	}
}

// The author of every change is the issued_by of its signed event, and the
// service's public key verifies it.
func TestTheAuthorReachesTheSignedEvent(t *testing.T) {
	s := stack(t)
	_, sealPublic, err := controlplane.GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	a, auth := signedAdmin(t, s, Config{SealTo: sealPublic})
	ctx := context.Background()
	conn, err := a.Connect(ctx, ConnectRequest{Tenant: "acme", Token: goodToken, By: "alice@acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	if ref := conn.Event.Connection.TokenRef; !strings.HasPrefix(ref, "sealed:") || strings.Contains(ref, goodToken) {
		t.Fatalf("a raw token with a seal key was published as %.20q...", ref)
	}
	if _, err := a.Consent(ctx, ConsentRequest{Tenant: "acme", Given: true, TermsVersion: "2026-01", By: "bob@acme.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Consent(ctx, ConsentRequest{Tenant: "acme", Given: true}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a change without an author: %v, want ErrInvalid", err)
	}
	by := map[string]string{}
	for _, r := range controlLog(t, s, auth) {
		if r.Verdict != controlplane.VerdictVerified {
			t.Fatalf("record %s: %s (%s), want verified by the public key", r.Key, r.Verdict, r.Detail)
		}
		by[r.Event.Kind()] = r.Event.IssuedBy
	}
	if by[schemas.KindConnection] != "alice@acme.example" || by[schemas.KindConsent] != "bob@acme.example" || len(by) != 2 {
		t.Fatalf("issued_by per kind: %v", by)
	}
}

func TestMapTakesANameAndAtMostTwoMoreFields(t *testing.T) {
	web, loc := Field{RoleWebsite, "Website"}, Field{RoleLocation, "City"}
	for _, c := range []struct {
		name string
		r    MapRequest
		want string // "" accepted
	}{
		{"name only", MapRequest{Name: "CompanyName"}, ""},
		{"name and two more", MapRequest{Name: "CompanyName", More: []Field{web, loc}, MinConfidence: "low"}, ""},
		{"no name", MapRequest{More: []Field{web}}, "name: the company name attribute is required"},
		{"a third field", MapRequest{Name: "CompanyName", More: []Field{web, loc, {RoleWebsite, "Domain"}}}, "a third is refused"},
		{"a role twice", MapRequest{Name: "CompanyName", More: []Field{web, {RoleWebsite, "Domain"}}}, "website is mapped twice"},
		{"an unknown role", MapRequest{Name: "CompanyName", More: []Field{{"phone", "Phone"}}}, `"phone" is not website or location`},
		{"the same attribute twice", MapRequest{Name: "CompanyName", More: []Field{{RoleWebsite, "CompanyName"}}}, "each must be a different attribute"},
		{"a confidence Leadspace has not", MapRequest{Name: "CompanyName", MinConfidence: "certain"}, "min-confidence"},
	} {
		m, err := c.r.Mapping()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want ErrInvalid saying %q", c.name, err, c.want)
		case c.name == "name and two more" && (m.WebsiteAttribute != "Website" || m.LocationAttribute != "City" || m.MinConfidence != "LOW"):
			t.Errorf("%s: %+v", c.name, m)
		}
	}
}

// Map checks the attributes against the tenant's recent profiles: one no
// profile holds is a warning, or with Strict a refusal.
func TestMapWarnsOfAnAttributeNoProfileHolds(t *testing.T) {
	s := stack(t)
	a, auth := connectedAdmin(t, s)
	ctx := context.Background()
	writeProfiles(t, s, 10)
	got, err := a.RecentAttributes(ctx, "acme", 0)
	if err != nil || got.Profiles != 10 || got.Has("CompanyName") != 10 || got.Counts[0].Profiles != 10 {
		t.Fatalf("recent attributes: %+v, %v", got, err)
	}
	r := MapRequest{Tenant: "acme", Name: "CompanyName", More: []Field{{RoleLocation, "Location"}}, By: "alice", Strict: true}
	if _, _, err := a.Map(ctx, r); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "Location (location): in none of tenant acme's 10 recent profiles") {
		t.Fatalf("strict map of an attribute no profile holds: %v", err)
	}
	r.Strict = false
	p, warnings, err := a.Map(ctx, r)
	if err != nil || len(warnings) != 1 || warnings[0].Code != WarnAttributeMissing || p.Event.Mapping.LocationAttribute != "Location" {
		t.Fatalf("map with a warning: %+v, %v, %v", p, warnings, err)
	}
	if n := len(controlLog(t, s, auth)); n != 2 {
		t.Fatalf("%d control events, want the connection and one mapping", n)
	}
}

func writeProfiles(t *testing.T, s *embedded.Stack, n int) {
	t.Helper()
	var msgs []kafka.Message
	for i := range n {
		p := company("acme", fmt.Sprint("p", i), fmt.Sprint("Northwind ", i), fmt.Sprintf("northwind%d.example.org", i))
		p.Kind, p.UnifiedAt, p.Version = "ACCOUNT", time.Now().UTC().Truncate(time.Millisecond), 1
		v, err := s.Codec.Encode(schemas.ProfileUnified, p.Native())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: s.Topics.Profiles, Key: []byte("acme/" + p.ProfileID), Value: v})
	}
	write(t, s, msgs...)
}

func write(t *testing.T, s *embedded.Stack, msgs ...kafka.Message) {
	t.Helper()
	prod, err := processor.NewProducer(s.Kafka, s.Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.Write(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// A Run is previewed, requested once (a second request while it is
// pending is refused) and withdrawn; the views show it pending.
func TestRunsArePreviewedRequestedOnceAndCancelled(t *testing.T) {
	s := stack(t)
	a, _ := connectedAdmin(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := a.StartRun(ctx, "acme", false, "alice"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no consent") {
		t.Fatalf("a Run without consent: %v", err)
	}
	if _, err := a.Consent(ctx, ConsentRequest{Tenant: "acme", Given: true, By: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Map(ctx, MapRequest{Tenant: "acme", Name: "CompanyName", More: []Field{{RoleWebsite, "Website"}}, By: "alice"}); err != nil {
		t.Fatal(err)
	}
	writeProfiles(t, s, 30)
	p, err := a.PreviewRun(ctx, "acme", false)
	if err != nil || p.Profiles != 30 || p.WouldCall != 30 || p.New != 30 || p.Estimate.Mode != "bulk" || p.Estimate.Records != 30 {
		t.Fatalf("preview: %+v, %v", p, err)
	}
	if _, err := a.CancelRun(ctx, "acme", "", "alice"); !errors.Is(err, ErrRefused) {
		t.Fatalf("cancel without a Run: %v", err)
	}
	run, err := a.StartRun(ctx, "acme", true, "bob")
	if err != nil || run.Event.IssuedBy != "bob" || !run.Event.Refresh.Force || !strings.HasPrefix(run.Event.Refresh.RunID, "run-") {
		t.Fatalf("start: %+v, %v", run, err)
	}
	if _, err := a.StartRun(ctx, "acme", false, "bob"); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "has not started yet") {
		t.Fatalf("a second Run while one is pending: %v", err)
	}
	v, err := a.Follow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := v.PendingRun("acme"); r == nil || r.RunID != run.Event.Refresh.RunID {
		t.Fatalf("views' pending Run: %+v", r)
	}
	c, err := a.CancelRun(ctx, "acme", "run-other", "bob")
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("cancel of another Run: %+v, %v", c, err)
	}
	if c, err = a.CancelRun(ctx, "acme", "", "bob"); err != nil || !c.Event.Refresh.Cancel || c.Event.Refresh.RunID != run.Event.Refresh.RunID {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	retrytest.Until(t, 20*time.Second, func() (bool, string) {
		return v.PendingRun("acme") == nil, "the withdrawn Run is still pending in the views"
	})
}

func TestConfigIsValidatedNamingTheSetting(t *testing.T) {
	k := processor.Kafka{Brokers: []string{"localhost:9092"}}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Kafka: k, Registry: Registry{URL: "http://registry"}}, ""},
		{Config{Registry: Registry{URL: "http://registry"}}, "brokers"},
		{Config{Kafka: k}, "schema-registry-url"},
		{Config{Kafka: k, Registry: Registry{URL: "http://registry"}, LeadspaceTPS: -1}, "leadspace-tps"},
		{Config{Kafka: k, Registry: Registry{URL: "http://registry"}, BulkThreshold: -3}, "leadspace-bulk-threshold"},
	} {
		err := c.cfg.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}
