package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// adminKeyFlags name the key that signs (admin commands) and verifies (the
// service) control events.
type adminKeyFlags struct {
	key, file string
}

func (a *adminKeyFlags) bind(s *settings) {
	s.StringVar(&a.key, "admin-key", "", "HMAC key that signs control events; prefer the environment or --admin-key-file over a command-line value")
	s.StringVar(&a.file, "admin-key-file", "", "file holding the admin key")
}

func (a *adminKeyFlags) auth() (processor.ControlAuth, error) {
	switch {
	case a.key != "" && a.file != "":
		return processor.ControlAuth{}, errors.New("admin-key, admin-key-file: set one, not both")
	case a.file != "":
		b, err := os.ReadFile(a.file)
		if err != nil {
			return processor.ControlAuth{}, fmt.Errorf("admin-key-file: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return processor.ControlAuth{}, fmt.Errorf("admin-key-file: %s is empty", a.file)
		}
		return processor.ControlAuth{Key: []byte(key)}, nil
	}
	return processor.ControlAuth{Key: []byte(a.key)}, nil
}

// adminFlags are what every command that writes control events needs.
type adminFlags struct {
	kafkaFlags
	adminKeyFlags
	tenant, by string
}

func newAdmin(command string) (*settings, *adminFlags) {
	s := newSettings(command)
	a := &adminFlags{}
	a.kafkaFlags.bind(s)
	a.adminKeyFlags.bind(s)
	s.StringVar(&a.tenant, "tenant", "", "tenant id (required)")
	by := os.Getenv("USER")
	if by == "" {
		by = "admin"
	}
	s.StringVar(&a.by, "by", by, "who makes the change; recorded in the event (consent audits)")
	return s, a
}

// publish signs (when a key is set) and writes one control event.
func (a *adminFlags) publish(ev schemas.Control) error {
	if a.tenant == "" || strings.Contains(a.tenant, "/") {
		return errors.New("tenant: required, without '/'")
	}
	auth, err := a.auth()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	codec, err := a.codec(ctx)
	if err != nil {
		return err
	}
	prod, err := processor.NewProducer(a.kafka(), codec)
	if err != nil {
		return err
	}
	defer prod.Close()
	ev.TenantID, ev.IssuedBy = a.tenant, a.by
	ev.IssuedAt = time.Now().UTC().Truncate(time.Millisecond)
	ev.EventID = fmt.Sprintf("%s-%s-%d", a.tenant, ev.Kind(), ev.IssuedAt.UnixNano())
	if auth.Enabled() {
		auth.Sign(&ev)
	}
	if _, err := prod.PublishControl(ctx, a.topics.Control, ev); err != nil {
		return err
	}
	signed := "unsigned (no admin key)"
	if auth.Enabled() {
		signed = "signed"
	}
	fmt.Printf("published %s for tenant %s on %s, %s, event %s\n", ev.Kind(), a.tenant, a.topics.Control, signed, ev.EventID)
	return nil
}

// cmdConnect connects a tenant to Leadspace. It makes one real call with
// the token first and refuses to publish a token Leadspace rejects.
func cmdConnect(args []string) error {
	s, a := newAdmin("connect")
	var ref, display, url, sealTo string
	var skipVerify, allowPlain bool
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
	token, err := processor.TokenSources{AllowPlaintext: allowPlain}.Resolver()(a.tenant, ref)
	if err != nil {
		return fmt.Errorf("token-ref: %w", err)
	}
	if sealTo != "" {
		if ref, err = processor.SealToken(sealTo, a.tenant, token); err != nil {
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
	s.StringVar(&terms, "terms-version", "", "version of the data-privacy terms agreed to")
	if err := s.parse(args[1:]); err != nil {
		return err
	}
	return a.publish(schemas.Control{Consent: &schemas.Consent{Given: args[0] == "give", TermsVersion: terms}})
}

var confidenceLevels = []string{"HIGH", "MEDIUM", "LOW", "VERY LOW"}

func cmdMap(args []string) error {
	s, a := newAdmin("map")
	var m schemas.Mapping
	s.StringVar(&m.NameAttribute, "name", "", "profile attribute with the company name (required)")
	s.StringVar(&m.WebsiteAttribute, "website", "", "profile attribute with the company website")
	s.StringVar(&m.LocationAttribute, "location", "", "profile attribute with the company location (City, State, Country)")
	s.StringVar(&m.MinConfidence, "min-confidence", "", "lowest Leadspace match confidence to accept: HIGH, MEDIUM, LOW or VERY LOW")
	s.DurationVar(&m.RefreshInterval, "refresh-interval", 0, "re-ask Leadspace for unchanged profiles after this long (0: never)")
	if err := s.parse(args); err != nil {
		return err
	}
	if err := validateMapping(m); err != nil {
		return err
	}
	m.MinConfidence = strings.ToUpper(m.MinConfidence)
	return a.publish(schemas.Control{Mapping: &m})
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
	s.BoolVar(&purge, "purge", false, "also withdraw the tenant's published enrichments (tombstones on the enriched topic)")
	if err := s.parse(args); err != nil {
		return err
	}
	return a.publish(schemas.Control{Removal: &schemas.Removal{Purge: purge}})
}

// cmdKeys makes the key pair for sealed tokens.
func cmdKeys(args []string) error {
	if len(args) == 0 || args[0] != "generate" {
		return errors.New("usage: enricher keys generate")
	}
	private, public, err := processor.GenerateSealKey()
	if err != nil {
		return err
	}
	fmt.Printf("# Give the private key to the service only (ENRICHER_TOKEN_SEAL_KEY or --token-seal-key-file).\n")
	fmt.Printf("# Admins seal tokens to the public key: enricher connect --seal-to PUBLIC ...\n")
	fmt.Printf("private: %s\npublic:  %s\n", private, public)
	return nil
}
