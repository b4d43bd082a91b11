package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// seedFlags are the settings of `enricher seed`.
type seedFlags struct {
	kafkaFlags
	adminKeyFlags
	tenant, tokenRef    string
	profiles, badEvents int
	consent             bool
	timeout             time.Duration
}

func (f *seedFlags) bind(s *settings) {
	f.kafkaFlags.bind(s)
	f.adminKeyFlags.bind(s)
	s.StringVar(&f.tenant, "tenant", "tenant-1", "tenant to seed")
	s.StringVar(&f.tokenRef, "token-ref", "", "reference to the tenant's Leadspace token: env:NAME or file:PATH as the service resolves it, plain:TOKEN only for services run with --allow-plaintext-tokens (required)")
	s.IntVar(&f.profiles, "profiles", 100, "demo company profiles to write (about one in forty has a blank name and must come out SKIPPED)")
	s.IntVar(&f.badEvents, "bad-events", 0, "undecodable values to write as well (they must reach the DLQ)")
	s.BoolVar(&f.consent, "consent", true, "record the tenant's consent (false: connection and mapping only, nothing may leave)")
	s.DurationVar(&f.timeout, "timeout", time.Minute, "give up when Kafka or the registry do not answer within this time")
}

// cmdSeed writes demo data to a real cluster, as `enricher dev` does to its
// embedded one: one tenant's connection, mapping and consent on the control
// topic, then demo profiles (and, if asked, undecodable values) on the
// profiles topic. It is for smoke tests and demos: the connection is not
// verified with a Leadspace call.
func cmdSeed(args []string) error {
	s := newSettings("seed")
	var f seedFlags
	f.bind(s)
	if err := s.parse(args); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(f.tenant) == "" || strings.Contains(f.tenant, "/"):
		return fmt.Errorf("tenant: %q must be non-blank and without '/' (keys are tenant/profile)", f.tenant)
	case f.tokenRef == "":
		return errors.New("token-ref: required (e.g. env:LEADSPACE_TOKEN_DEMO, with LEADSPACE_TOKEN_DEMO set for the service)")
	case !validTokenRef(f.tokenRef):
		return fmt.Errorf("token-ref: %s is not env:NAME, file:PATH, sealed:DATA or plain:TOKEN", shownTokenRef(f.tokenRef))
	case f.profiles < 0 || f.badEvents < 0:
		return errors.New("profiles, bad-events: must not be negative")
	}
	if err := positive("timeout", f.timeout); err != nil {
		return err
	}
	k := f.kafka()
	if err := k.Validate(); err != nil {
		return err
	}
	auth, err := f.auth()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	codec, err := f.codec(ctx)
	if err != nil {
		return err
	}
	prod, err := processor.NewProducer(k, codec)
	if err != nil {
		return err
	}
	defer prod.Close()
	t := f.topics.WithDefaults()
	now := time.Now().UTC().Truncate(time.Millisecond)
	events := tenantControl(f.tenant, f.tokenRef, f.consent, now)
	if err := publishControl(ctx, prod, t.Control, auth, events); err != nil {
		return err
	}
	msgs, err := demoMessages(codec, t.Profiles, []string{f.tenant}, f.profiles, f.badEvents, now)
	if err != nil {
		return err
	}
	if err := writeBatches(ctx, prod, msgs); err != nil {
		return err
	}
	kinds := make([]string, len(events))
	for i, ev := range events {
		kinds[i] = ev.Kind()
	}
	signed := "unsigned (no admin key)"
	if auth.Enabled() {
		signed = "signed"
	}
	fmt.Printf("seeded tenant %s: %s (token %s, %s) on %s; %d profiles and %d bad events on %s\n",
		f.tenant, strings.Join(kinds, ", "), shownTokenRef(f.tokenRef), signed, t.Control, f.profiles, f.badEvents, t.Profiles)
	return nil
}

func validTokenRef(ref string) bool {
	scheme, rest, ok := strings.Cut(ref, ":")
	if !ok || rest == "" {
		return false
	}
	switch scheme {
	case "env", "file", "sealed", "plain":
		return true
	}
	return false
}

// shownTokenRef is a reference fit for output: env and file references name
// where the token is, any other scheme may carry the token itself.
func shownTokenRef(ref string) string {
	scheme, _, _ := strings.Cut(ref, ":")
	if scheme == "env" || scheme == "file" {
		return ref
	}
	return scheme + ":[redacted]"
}

// tenantControl is what an admin publishes to switch enrichment on for a
// tenant: a connection, the demo mapping and, if given, consent.
func tenantControl(tenant, tokenRef string, consent bool, now time.Time) []schemas.Control {
	admin := "admin@" + tenant
	events := []schemas.Control{
		{TenantID: tenant, IssuedBy: admin, Connection: &schemas.Connection{DisplayName: "Leadspace (" + tenant + ")",
			TokenRef: tokenRef, VerifiedAt: now}},
		{TenantID: tenant, IssuedBy: admin, Mapping: &schemas.Mapping{NameAttribute: demoNameAttr,
			WebsiteAttribute: demoWebsiteAttr, LocationAttribute: demoLocationAttr}},
	}
	if consent {
		events = append(events, schemas.Control{TenantID: tenant, IssuedBy: admin, Consent: &schemas.Consent{Given: true, TermsVersion: "dev"}})
	}
	for i := range events {
		events[i].IssuedAt = now
	}
	return events
}

// publishControl writes control events in order, signed when auth has a key.
func publishControl(ctx context.Context, prod *processor.Producer, topic string, auth controlplane.Auth, events []schemas.Control) error {
	for _, ev := range events {
		if auth.Enabled() {
			// The signature covers the event id: set it before signing.
			if ev.EventID == "" {
				ev.EventID = fmt.Sprintf("%s-%s-%d", ev.TenantID, ev.Kind(), ev.IssuedAt.UnixNano())
			}
			auth.Sign(&ev)
		}
		if _, err := prod.PublishControl(ctx, topic, ev); err != nil {
			return err
		}
	}
	return nil
}

// demoMessages encodes demo profiles, the i-th for tenants[i % len(tenants)],
// followed by badEvents undecodable values spread evenly over the tenants.
func demoMessages(codec *schemas.Codec, topic string, tenants []string, profiles, badEvents int, now time.Time) ([]kafka.Message, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([]kafka.Message, 0, profiles+badEvents)
	for i := 0; i < profiles; i++ {
		p := demoProfile(rng, tenants[i%len(tenants)], i, now)
		value, err := codec.Encode(schemas.ProfileUnified, p.Native())
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, kafka.Message{Topic: topic, Key: []byte(p.TenantID + "/" + p.ProfileID), Value: value})
	}
	for i, t := range tenants {
		n := badEvents / len(tenants)
		if i < badEvents%len(tenants) {
			n++
		}
		msgs = append(msgs, demoBadEvents(topic, t, n)...)
	}
	return msgs, nil
}

// writeBatches writes msgs a thousand at a time.
func writeBatches(ctx context.Context, prod *processor.Producer, msgs []kafka.Message) error {
	for len(msgs) > 0 {
		n := min(len(msgs), 1000)
		if err := prod.Write(ctx, msgs[:n]...); err != nil {
			return fmt.Errorf("seed profiles: %w", err)
		}
		msgs = msgs[n:]
	}
	return nil
}
