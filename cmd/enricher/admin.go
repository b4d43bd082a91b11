package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// adminKeyFlags name the keys that verify control events: the service's,
// and an admin's for `control show`. With none, events are not checked.
type adminKeyFlags struct {
	key, file  string
	publicKeys string
}

func (a *adminKeyFlags) bind(s *settings) {
	s.StringVar(&a.key, "admin-key", "", "shared HMAC key that signs and verifies control events (every holder can sign: prefer --admin-public-keys); prefer the environment or --admin-key-file over a command-line value")
	s.StringVar(&a.file, "admin-key-file", "", "file holding the shared HMAC admin key")
	s.StringVar(&a.publicKeys, "admin-public-keys", "", "Ed25519 public keys (ed25519:..., comma-separated while keys rotate) that verify control events; 'enricher keys generate --admin' makes a pair")
}

func (a *adminKeyFlags) auth() (controlplane.Auth, error) {
	var auth controlplane.Auth
	switch {
	case a.key != "" && a.file != "":
		return auth, errors.New("admin-key, admin-key-file: set one, not both")
	case a.file != "":
		b, err := os.ReadFile(a.file)
		if err != nil {
			return auth, fmt.Errorf("admin-key-file: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return auth, fmt.Errorf("admin-key-file: %s is empty", a.file)
		}
		auth.Key = []byte(key)
	case a.key != "":
		auth.Key = []byte(a.key)
	}
	keys, err := controlplane.ParseAdminPublicKeys(a.publicKeys)
	if err != nil {
		return auth, fmt.Errorf("admin-public-keys: %w", err)
	}
	auth.PublicKeys = keys
	return auth, nil
}

// signingKeyFlags name an admin's Ed25519 private key. Only admin commands
// bind them: the service verifies with public keys and never signs.
type signingKeyFlags struct {
	key, file string
}

func (k *signingKeyFlags) bind(s *settings) {
	s.StringVar(&k.key, "admin-signing-key", "", "Ed25519 private key (ed25519-private:...) that signs control events; prefer the environment or --admin-signing-key-file")
	s.StringVar(&k.file, "admin-signing-key-file", "", "file holding the Ed25519 admin signing key")
}

// add puts the signing key, if any, into auth.
func (k *signingKeyFlags) add(auth *controlplane.Auth) error {
	key := k.key
	switch {
	case key != "" && k.file != "":
		return errors.New("admin-signing-key, admin-signing-key-file: set one, not both")
	case k.file != "":
		b, err := os.ReadFile(k.file)
		if err != nil {
			return fmt.Errorf("admin-signing-key-file: %w", err)
		}
		key = string(b)
	case key == "":
		return nil
	}
	priv, err := controlplane.ParseAdminSigningKey(key)
	if err != nil {
		return fmt.Errorf("admin-signing-key: %w", err)
	}
	auth.SigningKey = priv
	return nil
}

// adminFlags are what every command that writes control events needs.
type adminFlags struct {
	kafkaFlags
	adminKeyFlags
	signingKeyFlags
	tenant, by string
}

// newAdmin makes the settings of an admin command that writes one control
// event with publish (connect, consent, map, remove, refresh).
func newAdmin(command string) (*settings, *adminFlags) {
	s := newSettings(command)
	a := &adminFlags{}
	a.kafkaFlags.bind(s)
	a.adminKeyFlags.bind(s)
	a.signingKeyFlags.bind(s)
	s.StringVar(&a.tenant, "tenant", "", "tenant id (required)")
	by := os.Getenv("USER")
	if by == "" {
		by = "admin"
	}
	s.StringVar(&a.by, "by", by, "who makes the change; recorded in the event (consent audits)")
	return s, a
}

// adminSession is an admin command between reading what it needs to know
// of the tenant and writing its event.
type adminSession struct {
	a      *adminFlags
	ctx    context.Context
	cancel context.CancelFunc
	auth   controlplane.Auth
	codec  *schemas.Codec
	prod   *processor.Producer
	// known is what the control and status topics say of the tenant.
	known controlplane.Tenant
	// published is the last event written.
	published schemas.Control
}

// open connects and reads what the control and status topics know of the
// tenant. Unless the command connects the tenant, a tenant never connected
// is refused: consent, a mapping, a removal or a Run cannot work without a
// connection.
func (a *adminFlags) open(connecting bool) (*adminSession, error) {
	if a.tenant == "" || strings.Contains(a.tenant, "/") {
		return nil, errors.New("tenant: required, without '/'")
	}
	auth, err := a.auth()
	if err != nil {
		return nil, err
	}
	if err := a.signingKeyFlags.add(&auth); err != nil {
		return nil, err
	}
	if auth.Enabled() && !auth.CanSign() {
		return nil, errors.New("admin-signing-key: admin commands sign their events: give the Ed25519 private key (or the shared --admin-key)")
	}
	s := &adminSession{a: a, auth: auth}
	s.ctx, s.cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	if s.codec, err = a.codec(s.ctx); err != nil {
		return nil, err
	}
	if s.prod, err = processor.NewProducer(a.kafka(), s.codec); err != nil {
		return nil, err
	}
	if s.known, err = controlplane.ReadTenant(s.ctx, a.kafka(), a.topics, s.codec, auth, a.tenant); err != nil {
		return nil, err
	}
	if !connecting && !s.known.Connected {
		return nil, fmt.Errorf("tenant %s is not connected: run 'enricher connect' first", a.tenant)
	}
	ok = true
	return s, nil
}

func (s *adminSession) close() {
	if s.prod != nil {
		_ = s.prod.Close()
	}
	s.cancel()
}

// publish signs (when a key is set) and writes one control event. Its
// sequence is above every one seen for its key (on the control topic and
// applied by the service) and at least the clock in microseconds: a clock
// that went back cannot make it look like a replay, and two admins at once
// still pick different numbers.
func (s *adminSession) publish(ev schemas.Control) error {
	a := s.a
	ev.TenantID, ev.IssuedBy = a.tenant, a.by
	ev.IssuedAt = time.Now().UTC().Truncate(time.Millisecond)
	ev.EventID = fmt.Sprintf("%s-%s-%d", a.tenant, ev.Kind(), ev.IssuedAt.UnixNano())
	ev.Sequence = controlplane.NextSequence(s.known.Highest[ev.Kind()])
	signed := "unsigned (no admin key)"
	if s.auth.CanSign() {
		if err := s.auth.Sign(&ev); err != nil {
			return err
		}
		signed = "signed by " + ev.KeyID
	}
	published, err := s.prod.PublishControl(s.ctx, a.topics.Control, ev)
	if err != nil {
		return err
	}
	s.published = published
	fmt.Printf("published %s for tenant %s on %s, %s, sequence %d, event %s\n", ev.Kind(), a.tenant, a.topics.Control, signed, ev.Sequence, ev.EventID)
	return nil
}

// publish writes one control event for the tenant (see adminSession).
func (a *adminFlags) publish(ev schemas.Control) error {
	s, err := a.open(ev.Connection != nil)
	if err != nil {
		return err
	}
	defer s.close()
	return s.publish(ev)
}

// cmdConnect connects a tenant to Leadspace. It makes one real call with
// the token first and refuses to publish a token Leadspace rejects, or a
// reference the service would refuse to resolve.
func cmdConnect(args []string) error {
	s, a := newAdmin("connect")
	var ref, display, url, sealTo string
	var skipVerify, allowPlain bool
	var policy tokenPolicyFlags
	policy.bind(s)
	s.StringVar(&ref, "token-ref", "", "where the token is: env:NAME or file:PATH (required); the service resolves the same reference unless --seal-to is given")
	s.StringVar(&sealTo, "seal-to", "", "the service's public seal key: publish the token sealed to it (sealed:...) instead of the reference")
	s.StringVar(&display, "display-name", "Leadspace", "name shown to admins")
	s.StringVar(&url, "leadspace-url", leadspace.DefaultBaseURL, "Leadspace API gateway for the verification call")
	s.BoolVar(&skipVerify, "skip-verify", false, "publish without the verification call (e.g. no network to Leadspace here)")
	s.BoolVar(&allowPlain, "allow-plaintext-tokens", false, "accept plain:TOKEN references (development only)")
	if err := s.parse(args); err != nil {
		return err
	}
	if ref == "" {
		return errors.New("token-ref: required (env:NAME or file:PATH)")
	}
	sources := controlplane.TokenSources{AllowPlaintext: allowPlain}
	if err := policy.apply(&sources); err != nil {
		return err
	}
	// The same allowlist as the service's (same settings, same defaults):
	// a reference the service would refuse is refused here.
	token, err := sources.Resolver()(a.tenant, ref)
	if err != nil {
		return fmt.Errorf("token-ref: %w", err)
	}
	if sealTo != "" {
		if ref, err = controlplane.SealToken(sealTo, a.tenant, token); err != nil {
			return fmt.Errorf("seal-to: %w", err)
		}
	}
	conn := &schemas.Connection{DisplayName: display, TokenRef: ref}
	if !skipVerify {
		if err := verifyToken(url, token); err != nil {
			return err
		}
		conn.VerifiedAt = time.Now().UTC().Truncate(time.Millisecond)
		fmt.Println("token verified with a test call to Leadspace")
	}
	return a.publish(schemas.Control{Connection: conn})
}

func verifyToken(url, token string) error {
	cl, err := leadspace.New(leadspace.Config{BaseURL: url, MaxAttempts: 2})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = cl.Program(leadspace.Credentials{Token: token}).Verify(ctx)
	if err == nil {
		return nil
	}
	reason, _ := leadspace.ReasonOf(err)
	switch class, _ := leadspace.ClassOf(err); class {
	case leadspace.ClassAuth:
		return fmt.Errorf("refused: Leadspace does not accept the token (%s); nothing was published", reason)
	case leadspace.ClassCredits:
		return fmt.Errorf("refused: the Leadspace program has no credits or is not valid (%s); nothing was published", reason)
	}
	return fmt.Errorf("could not verify the token (%s): %w; retry, or use --skip-verify", reason, err)
}

func cmdConsent(args []string) error {
	if len(args) == 0 || (args[0] != "give" && args[0] != "withdraw") {
		return errors.New("usage: enricher consent give|withdraw --tenant T [--terms-version V]")
	}
	s, a := newAdmin("consent " + args[0])
	var terms string
	var wait time.Duration
	s.StringVar(&terms, "terms-version", "", "version of the data-privacy terms agreed to")
	if args[0] == "withdraw" {
		waitFlag(s, &wait)
	}
	if err := s.parse(args[1:]); err != nil {
		return err
	}
	ev := schemas.Control{Consent: &schemas.Consent{Given: args[0] == "give", TermsVersion: terms}}
	if args[0] == "give" {
		return a.publish(ev)
	}
	return a.publishAndWait(ev, wait)
}

var confidenceLevels = []string{"HIGH", "MEDIUM", "LOW", "VERY LOW"}

func cmdMap(args []string) error {
	s, a := newAdmin("map")
	var m schemas.Mapping
	var strict bool
	var sample int
	s.StringVar(&m.NameAttribute, "name", "", "profile attribute with the company name (required)")
	s.StringVar(&m.WebsiteAttribute, "website", "", "profile attribute with the company website")
	s.StringVar(&m.LocationAttribute, "location", "", "profile attribute with the company location (City, State, Country)")
	s.StringVar(&m.MinConfidence, "min-confidence", "", "lowest Leadspace match confidence to accept: HIGH, MEDIUM, LOW or VERY LOW")
	s.DurationVar(&m.RefreshInterval, "refresh-interval", 0, "re-ask Leadspace for unchanged profiles after this long (0: never)")
	s.BoolVar(&strict, "strict", false, "publish nothing when a mapped attribute occurs in none of the tenant's recent profiles (default: warn and publish)")
	s.IntVar(&sample, "sample", 500, "recent records per partition of the profiles topic to check the mapped attributes against (0: no check)")
	if err := s.parse(args); err != nil {
		return err
	}
	if err := validateMapping(m); err != nil {
		return err
	}
	if sample < 0 {
		return errors.New("sample: must not be negative")
	}
	m.MinConfidence = strings.ToUpper(m.MinConfidence)
	session, err := a.open(false)
	if err != nil {
		return err
	}
	defer session.close()
	if sample > 0 {
		got, err := processor.RecentAttributes(session.ctx, a.kafka(), a.topics.Profiles, session.codec, a.tenant, sample)
		if err != nil {
			return fmt.Errorf("reading recent profiles of %s to check the mapping: %w", a.tenant, err)
		}
		if err := checkMappedAttributes(a.tenant, m, got, strict); err != nil {
			return err
		}
	}
	return session.publish(schemas.Control{Mapping: &m})
}

// checkMappedAttributes warns (or, strict, refuses) when a mapped attribute
// occurs in none of the sampled profiles: the tenant would show ACTIVE while
// every profile is skipped. The attribute may still come later, so by
// default the mapping is published anyway.
func checkMappedAttributes(tenant string, m schemas.Mapping, got processor.AttributeSample, strict bool) error {
	if got.Profiles == 0 {
		fmt.Fprintf(os.Stderr, "note: no recent profiles of tenant %s to check the mapped attributes against\n", tenant)
		return nil
	}
	var missing []string
	for _, f := range []struct{ role, attr string }{{"name", m.NameAttribute}, {"website", m.WebsiteAttribute}, {"location", m.LocationAttribute}} {
		if f.attr != "" && got.Attributes[f.attr] == 0 {
			missing = append(missing, fmt.Sprintf("%s (%s)", f.attr, f.role))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s: in none of tenant %s's %d recent profiles; attributes seen: %s",
		strings.Join(missing, ", "), tenant, got.Profiles, seenAttributes(got, 12))
	if strict {
		return fmt.Errorf("%s; nothing was published (--strict)", msg)
	}
	fmt.Fprintf(os.Stderr, "warning: %s; publishing anyway (profiles without it are skipped; --strict refuses)\n", msg)
	return nil
}

// seenAttributes lists the most common attributes with their counts.
func seenAttributes(got processor.AttributeSample, limit int) string {
	names := make([]string, 0, len(got.Attributes))
	for name := range got.Attributes {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(got.Attributes[b], got.Attributes[a]), strings.Compare(a, b))
	})
	var parts []string
	for i, name := range names {
		if i == limit {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-limit))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", name, got.Attributes[name]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func validateMapping(m schemas.Mapping) error {
	switch {
	case strings.TrimSpace(m.NameAttribute) == "":
		return errors.New("name: the company name attribute is required")
	case m.WebsiteAttribute != "" && m.WebsiteAttribute == m.NameAttribute,
		m.LocationAttribute != "" && (m.LocationAttribute == m.NameAttribute || m.LocationAttribute == m.WebsiteAttribute):
		return errors.New("name, website, location: each must be a different attribute")
	case m.RefreshInterval < 0:
		return errors.New("refresh-interval: must not be negative")
	}
	if m.MinConfidence != "" {
		for _, l := range confidenceLevels {
			if strings.EqualFold(l, m.MinConfidence) {
				return nil
			}
		}
		return fmt.Errorf("min-confidence: %q is not one of %s", m.MinConfidence, strings.Join(confidenceLevels, ", "))
	}
	return nil
}

func cmdRemove(args []string) error {
	s, a := newAdmin("remove")
	var purge bool
	var wait time.Duration
	s.BoolVar(&purge, "purge", false, "also withdraw the tenant's published enrichments (tombstones on the enriched topic)")
	waitFlag(s, &wait)
	if err := s.parse(args); err != nil {
		return err
	}
	return a.publishAndWait(schemas.Control{Removal: &schemas.Removal{Purge: purge}}, wait)
}

// waitFlag binds --wait-applied, for the commands that stop data leaving.
func waitFlag(s *settings, wait *time.Duration) {
	s.DurationVar(wait, "wait-applied", 30*time.Second, "wait until the running service has applied the change, so nothing leaves for Leadspace after the command returns (0: do not wait)")
}

// publishAndWait publishes ev, then waits until the service's control
// record on the status topic says it applied it: from then on its calls
// for the tenant are stopped. Without a running service the wait times out
// with a warning; the change applies when the service starts.
func (a *adminFlags) publishAndWait(ev schemas.Control, wait time.Duration) error {
	s, err := a.open(false)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.publish(ev); err != nil {
		return err
	}
	if wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for {
		records, err := controlplane.ReadApplied(ctx, a.kafka(), a.topics.Status, s.codec)
		if err == nil && records[a.tenant].AppliedControl[ev.Kind()] == s.published.EventID {
			fmt.Printf("applied by the service: no call for tenant %s is made after this\n", a.tenant)
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "warning: no running enricher applied the %s within %s (is the service running?); it applies when the service reads the control topic\n", ev.Kind(), wait)
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cmdKeys makes key pairs: the seal key for sealed tokens, or (--admin) an
// Ed25519 admin key that signs control events.
func cmdKeys(args []string) error {
	if len(args) == 0 || args[0] != "generate" {
		return errors.New("usage: enricher keys generate [--admin]")
	}
	s := newSettings("keys generate")
	var admin bool
	s.BoolVar(&admin, "admin", false, "make an Ed25519 admin key pair (signs control events) instead of the token seal key pair")
	if err := s.parse(args[1:]); err != nil {
		return err
	}
	if admin {
		private, public, id, err := controlplane.GenerateAdminKey()
		if err != nil {
			return err
		}
		fmt.Printf("# Admins sign control events with the private key (ENRICHER_ADMIN_SIGNING_KEY or --admin-signing-key-file).\n")
		fmt.Printf("# The service verifies with the public key only (ENRICHER_ADMIN_PUBLIC_KEYS; list old and new while keys rotate).\n")
		fmt.Printf("private: %s\npublic:  %s\nkey id:  %s\n", private, public, id)
		return nil
	}
	private, public, err := controlplane.GenerateSealKey()
	if err != nil {
		return err
	}
	fmt.Printf("# Give the private key to the service only (ENRICHER_TOKEN_SEAL_KEY or --token-seal-key-file).\n")
	fmt.Printf("# Admins seal tokens to the public key: enricher connect --seal-to PUBLIC ...\n")
	fmt.Printf("private: %s\npublic:  %s\n", private, public)
	return nil
}
