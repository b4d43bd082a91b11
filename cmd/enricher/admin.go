package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
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
// event (connect, consent, map, remove, refresh).
func newAdmin(command string) (*settings, *adminFlags) {
	s := newSettings(command)
	a := &adminFlags{}
	a.kafkaFlags.bind(s)
	a.adminKeyFlags.bind(s)
	a.signingKeyFlags.bind(s)
	s.StringVar(&a.tenant, "tenant", "", "tenant id (required)")
	byFlag(s, &a.by)
	return s, a
}

// byFlag binds --by, the author recorded in what a command writes.
func byFlag(s *settings, by *string) {
	def := os.Getenv("USER")
	if def == "" {
		def = "admin"
	}
	s.StringVar(by, "by", def, "who makes the change; recorded in the event (consent audits)")
}

// signedAuth is the keys that verify and the key that signs.
func (a *adminFlags) signedAuth() (controlplane.Auth, error) {
	auth, err := a.auth()
	if err != nil {
		return auth, err
	}
	return auth, a.signingKeyFlags.add(&auth)
}

// open opens the admin package with the command's settings in cfg.
func (a *adminFlags) open(ctx context.Context, cfg admin.Config) (*admin.Admin, error) {
	auth, err := a.signedAuth()
	if err != nil {
		return nil, err
	}
	return a.kafkaFlags.admin(ctx, auth, cfg)
}

// printPublished says what a change wrote.
func printPublished(p admin.Published) {
	ev := p.Event
	signed := "unsigned (no admin key)"
	if p.Signed {
		signed = "signed by " + ev.KeyID
	}
	fmt.Printf("published %s for tenant %s on %s, %s, sequence %d, event %s\n", ev.Kind(), ev.TenantID, p.Topic, signed, ev.Sequence, ev.EventID)
}

// adminTimeout bounds an admin command's reads and its write.
const adminTimeout = 2 * time.Minute

// cmdConnect connects a tenant to Leadspace. It makes one real call with
// the token first and refuses to publish a token Leadspace rejects, or a
// reference the service would refuse to resolve.
func cmdConnect(args []string) error {
	s, a := newAdmin("connect")
	var ref, display string
	var cfg admin.Config
	var allowPlain bool
	var policy tokenPolicyFlags
	policy.bind(s)
	s.StringVar(&ref, "token-ref", "", "where the token is: env:NAME or file:PATH (required); the service resolves the same reference unless --seal-to is given")
	s.StringVar(&cfg.SealTo, "seal-to", "", "the service's public seal key: publish the token sealed to it (sealed:...) instead of the reference")
	s.StringVar(&display, "display-name", "Leadspace", "name shown to admins")
	s.StringVar(&cfg.LeadspaceURL, "leadspace-url", leadspace.DefaultBaseURL, "Leadspace API gateway for the verification call")
	s.BoolVar(&cfg.SkipVerify, "skip-verify", false, "publish without the verification call (e.g. no network to Leadspace here)")
	s.BoolVar(&allowPlain, "allow-plaintext-tokens", false, "accept plain:TOKEN references (development only)")
	if err := s.parse(args); err != nil {
		return err
	}
	if ref == "" {
		return errors.New("token-ref: required (env:NAME or file:PATH)")
	}
	cfg.Tokens.AllowPlaintext = allowPlain
	if err := policy.apply(&cfg.Tokens); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	ad, err := a.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer ad.Close()
	p, err := ad.Connect(ctx, admin.ConnectRequest{Tenant: a.tenant, DisplayName: display, TokenRef: ref, By: a.by})
	if err != nil {
		return err
	}
	if !cfg.SkipVerify {
		fmt.Println("token verified with a test call to Leadspace")
	}
	printPublished(p)
	return nil
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
	return a.change(wait, func(ctx context.Context, ad *admin.Admin) (admin.Published, error) {
		return ad.Consent(ctx, admin.ConsentRequest{Tenant: a.tenant, Given: args[0] == "give", TermsVersion: terms, By: a.by})
	})
}

// change opens the admin package, makes one change and prints it; with
// wait, it then waits until the running service applied it.
func (a *adminFlags) change(wait time.Duration, do func(context.Context, *admin.Admin) (admin.Published, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	ad, err := a.open(ctx, admin.Config{})
	if err != nil {
		return err
	}
	defer ad.Close()
	p, err := do(ctx, ad)
	if err != nil {
		return err
	}
	printPublished(p)
	return waitApplied(ad, p, wait)
}

func cmdMap(args []string) error {
	s, a := newAdmin("map")
	var r admin.MapRequest
	var website, location string
	s.StringVar(&r.Name, "name", "", "profile attribute with the company name (required)")
	s.StringVar(&website, "website", "", "profile attribute with the company website")
	s.StringVar(&location, "location", "", "profile attribute with the company location (City, State, Country)")
	s.StringVar(&r.MinConfidence, "min-confidence", "", "lowest Leadspace match confidence to accept: "+strings.Join(admin.ConfidenceLevels, ", "))
	s.DurationVar(&r.RefreshInterval, "refresh-interval", 0, "re-ask Leadspace for unchanged profiles after this long (0: never)")
	s.BoolVar(&r.Strict, "strict", false, "publish nothing when a mapped attribute occurs in none of the tenant's recent profiles (default: warn and publish)")
	s.IntVar(&r.Sample, "sample", admin.DefaultSample, "recent records per partition of the profiles topic to check the mapped attributes against (0: no check)")
	if err := s.parse(args); err != nil {
		return err
	}
	if r.Sample < 0 {
		return errors.New("sample: must not be negative")
	}
	if r.Sample == 0 {
		r.Sample = -1
	}
	if website != "" {
		r.More = append(r.More, admin.Field{Role: admin.RoleWebsite, Attribute: website})
	}
	if location != "" {
		r.More = append(r.More, admin.Field{Role: admin.RoleLocation, Attribute: location})
	}
	r.Tenant, r.By = a.tenant, a.by
	if _, err := r.Mapping(); err != nil {
		return err // before connecting: a bad mapping needs no broker to be refused
	}
	return a.change(0, func(ctx context.Context, ad *admin.Admin) (admin.Published, error) {
		p, warnings, err := ad.Map(ctx, r)
		for _, w := range warnings {
			if w.Code == admin.WarnNoProfiles {
				fmt.Fprintf(os.Stderr, "note: %s\n", w.Message)
			} else {
				fmt.Fprintf(os.Stderr, "warning: %s; publishing anyway (profiles without it are skipped; --strict refuses)\n", w.Message)
			}
		}
		return p, err
	})
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
	return a.change(wait, func(ctx context.Context, ad *admin.Admin) (admin.Published, error) {
		return ad.Remove(ctx, a.tenant, purge, a.by)
	})
}

// waitFlag binds --wait-applied, for the commands that stop data leaving.
func waitFlag(s *settings, wait *time.Duration) {
	s.DurationVar(wait, "wait-applied", 30*time.Second, "wait until the running service has applied the change, so nothing leaves for Leadspace after the command returns (0: do not wait)")
}

// waitApplied waits until the service applied p: from then on its calls
// for the tenant are stopped. Without a running service the wait times
// out with a warning; the change applies when the service starts.
func waitApplied(ad *admin.Admin, p admin.Published, wait time.Duration) error {
	if wait <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ad.WaitApplied(ctx, p); err != nil {
		fmt.Fprintf(os.Stderr, "warning: no running enricher applied the %s within %s (is the service running?); it applies when the service reads the control topic\n", p.Event.Kind(), wait)
		return nil
	}
	fmt.Printf("applied by the service: no call for tenant %s is made after this\n", p.Event.TenantID)
	return nil
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
