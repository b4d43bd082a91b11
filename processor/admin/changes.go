package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// ErrCannotSign: the admin holds keys that verify events but none that
// signs, so the service would refuse whatever it published.
var ErrCannotSign = errors.New("cannot sign")

// Published is a control event the admin wrote.
type Published struct {
	Event schemas.Control
	Topic string
	// Signed is false only when the admin holds no key at all
	// (development); then the event carries no signature.
	Signed bool
}

// session is one change between reading what the control and status
// topics know of the tenant and writing its event.
type session struct {
	a      *Admin
	tenant string
	known  controlplane.Tenant
}

// begin reads what the topics know of the tenant. Unless the change
// connects the tenant, a tenant never connected is refused: consent, a
// mapping, a removal or a Run cannot work without a connection.
func (a *Admin) begin(ctx context.Context, tenant string, connecting bool) (*session, error) {
	if err := CheckTenant(tenant); err != nil {
		return nil, err
	}
	if auth := a.cfg.Auth; auth.Enabled() && !auth.CanSign() {
		return nil, &adminError{class: ErrCannotSign, msg: "admin-signing-key: admin commands sign their events: give the Ed25519 private key (or the shared --admin-key)"}
	}
	known, err := controlplane.ReadTenant(ctx, a.cfg.Kafka, a.cfg.Topics, a.codec, a.cfg.Auth, tenant)
	if err != nil {
		return nil, err
	}
	if !connecting && !known.Connected {
		return nil, fail(ErrNotConnected, "tenant %s is not connected: run 'enricher connect' first", tenant)
	}
	return &session{a: a, tenant: tenant, known: known}, nil
}

// publish signs (when a key is set) and writes one control event by the
// author by. Its sequence is above every one seen for its key (on the
// control topic and applied by the service) and at least the clock in
// microseconds: a clock that went back cannot make it look like a replay,
// and two admins at once still pick different numbers.
func (s *session) publish(ctx context.Context, by string, ev schemas.Control) (Published, error) {
	if strings.TrimSpace(by) == "" {
		return Published{}, fail(ErrInvalid, "by: who makes the change is required; it is recorded in the event")
	}
	a := s.a
	ev.TenantID, ev.IssuedBy = s.tenant, by
	ev.IssuedAt = time.Now().UTC().Truncate(time.Millisecond)
	ev.EventID = fmt.Sprintf("%s-%s-%d", s.tenant, ev.Kind(), ev.IssuedAt.UnixNano())
	ev.Sequence = controlplane.NextSequence(s.known.Highest[ev.Kind()])
	p := Published{Topic: a.cfg.Topics.Control}
	if a.cfg.Auth.CanSign() {
		if err := a.cfg.Auth.Sign(&ev); err != nil {
			return p, err
		}
		p.Signed = true
	}
	published, err := a.prod.PublishControl(ctx, a.cfg.Topics.Control, ev)
	if err != nil {
		return p, err
	}
	p.Event = published
	s.known.Highest[ev.Kind()] = ev.Sequence
	a.log.Info("control event published", zapEvent(published)...)
	return p, nil
}

// change publishes one event for a tenant that must be connected.
func (a *Admin) change(ctx context.Context, tenant, by string, ev schemas.Control) (Published, error) {
	s, err := a.begin(ctx, tenant, false)
	if err != nil {
		return Published{}, err
	}
	return s.publish(ctx, by, ev)
}

// ConnectRequest connects a tenant to Leadspace. Give the token either as
// a reference the service resolves (TokenRef) or raw (Token, e.g. from a
// password field); a raw token is published sealed to Config.SealTo, as
// plain: only when Config.Tokens allows plaintext (development), and
// refused otherwise.
type ConnectRequest struct {
	Tenant string
	// DisplayName is shown to admins. Default: Leadspace.
	DisplayName string
	// TokenRef is env:NAME or file:PATH (within Config.Tokens).
	TokenRef string
	// Token is the raw token. It is never logged or returned.
	Token string
	// By is who connects; it becomes the event's issued_by.
	By string
}

// Connect verifies the token with one real Leadspace call (unless
// Config.SkipVerify) and publishes the connection. A token Leadspace
// rejects comes back as ErrUnauthorized or ErrCreditsExhausted, with
// nothing published. Consent is a separate event (Consent).
func (a *Admin) Connect(ctx context.Context, r ConnectRequest) (Published, error) {
	if err := CheckTenant(r.Tenant); err != nil {
		return Published{}, err
	}
	ref, token := r.TokenRef, r.Token
	switch {
	case ref != "" && token != "":
		return Published{}, fail(ErrInvalid, "token, token-ref: give one, not both")
	case ref == "" && token == "":
		return Published{}, fail(ErrInvalid, "token-ref: required (env:NAME or file:PATH)")
	case ref != "":
		// The same allowlist as the service's: a reference the service
		// would refuse is refused here.
		resolved, err := a.cfg.Tokens.Resolver()(r.Tenant, ref)
		if err != nil {
			return Published{}, &adminError{class: ErrToken, msg: "token-ref: " + err.Error(), err: err}
		}
		token = resolved
	default:
		if err := controlplane.CheckBearerToken(token); err != nil {
			return Published{}, &adminError{class: ErrToken, msg: "token: " + err.Error(), err: err}
		}
		switch {
		case a.cfg.SealTo != "":
		case a.cfg.Tokens.AllowPlaintext:
			ref = "plain:" + token
		default:
			return Published{}, fail(ErrToken, "token: no seal key is configured to protect it, and plaintext tokens are refused outside development; configure the service's public seal key (--seal-to)")
		}
	}
	if a.cfg.SealTo != "" {
		sealed, err := controlplane.SealToken(a.cfg.SealTo, r.Tenant, token)
		if err != nil {
			return Published{}, fmt.Errorf("seal-to: %w", err)
		}
		ref = sealed
	}
	display := cmp.Or(r.DisplayName, "Leadspace")
	conn := &schemas.Connection{DisplayName: display, TokenRef: ref}
	if !a.cfg.SkipVerify {
		if err := a.verifyToken(ctx, token); err != nil {
			return Published{}, err
		}
		conn.VerifiedAt = time.Now().UTC().Truncate(time.Millisecond)
	}
	s, err := a.begin(ctx, r.Tenant, true)
	if err != nil {
		return Published{}, err
	}
	return s.publish(ctx, r.By, schemas.Control{Connection: conn})
}

// verifyToken makes one real call with the token.
func (a *Admin) verifyToken(ctx context.Context, token string) error {
	cl, err := leadspace.New(leadspace.Config{BaseURL: a.cfg.LeadspaceURL, MaxAttempts: 2})
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = cl.Program(leadspace.Credentials{Token: token}).Verify(ctx)
	if err == nil {
		return nil
	}
	reason, _ := leadspace.ReasonOf(err)
	switch class, _ := leadspace.ClassOf(err); class {
	case leadspace.ClassAuth:
		return fail(ErrUnauthorized, "refused: Leadspace does not accept the token (%s); nothing was published", reason)
	case leadspace.ClassCredits:
		return fail(ErrCreditsExhausted, "refused: the Leadspace program has no credits or is not valid (%s); nothing was published", reason)
	}
	return fmt.Errorf("could not verify the token (%s): %w; retry, or use --skip-verify", reason, err)
}

// ConsentRequest records that a tenant's admin gave or withdrew consent.
type ConsentRequest struct {
	Tenant string
	Given  bool
	// TermsVersion is the version of the data-privacy terms agreed to.
	TermsVersion string
	// By is who consents; the consent audit names them.
	By string
}

// Consent publishes a consent event for a connected tenant.
func (a *Admin) Consent(ctx context.Context, r ConsentRequest) (Published, error) {
	return a.change(ctx, r.Tenant, r.By, schemas.Control{Consent: &schemas.Consent{Given: r.Given, TermsVersion: r.TermsVersion}})
}

// Roles of mapped fields beyond the company name.
const (
	RoleWebsite  = "website"
	RoleLocation = "location"
)

// MaxMoreFields is how many fields may be mapped besides the company name:
// Leadspace matches a company on its name, website and location.
const MaxMoreFields = 2

// Field maps a profile attribute to a role (RoleWebsite, RoleLocation).
type Field struct {
	Role, Attribute string
}

// ConfidenceLevels are Leadspace's match confidences, best first.
var ConfidenceLevels = []string{"HIGH", "MEDIUM", "LOW", "VERY LOW"}

// DefaultSample is how many recent records per partition of the profiles
// topic Map checks the mapped attributes against.
const DefaultSample = 500

// MapRequest sets which profile attributes are sent to Leadspace.
type MapRequest struct {
	Tenant string
	// Name is the attribute with the company name (required).
	Name string
	// More are at most MaxMoreFields further fields, one per role; a
	// third is refused.
	More []Field
	// MinConfidence is the lowest match confidence to accept (one of
	// ConfidenceLevels, any case; "" accepts every match).
	MinConfidence string
	// RefreshInterval re-asks Leadspace for unchanged profiles after this
	// long (0: never).
	RefreshInterval time.Duration
	// Strict refuses a mapping whose attribute occurs in none of the
	// tenant's recent profiles; by default that is a warning.
	Strict bool
	// Sample is the recent records per partition to check against: 0 is
	// DefaultSample, negative skips the check.
	Sample int
	By     string
}

// Warning is something the admin should know about a change that was
// published anyway.
type Warning struct {
	// Code is WarnNoProfiles or WarnAttributeMissing.
	Code    string
	Message string
}

// Warning codes.
const (
	WarnNoProfiles       = "no_recent_profiles"
	WarnAttributeMissing = "attribute_missing"
)

// Mapping checks r and returns the mapping it asks for.
func (r MapRequest) Mapping() (schemas.Mapping, error) {
	m := schemas.Mapping{NameAttribute: r.Name, MinConfidence: strings.ToUpper(r.MinConfidence), RefreshInterval: r.RefreshInterval}
	if strings.TrimSpace(r.Name) == "" {
		return m, fail(ErrInvalid, "name: the company name attribute is required")
	}
	if len(r.More) > MaxMoreFields {
		return m, fail(ErrInvalid, "fields: at most %d more besides the company name (website and location); a third is refused", MaxMoreFields)
	}
	for _, f := range r.More {
		if f.Attribute == "" {
			continue
		}
		var slot *string
		switch f.Role {
		case RoleWebsite:
			slot = &m.WebsiteAttribute
		case RoleLocation:
			slot = &m.LocationAttribute
		default:
			return m, fail(ErrInvalid, "fields: %q is not website or location", f.Role)
		}
		if *slot != "" {
			return m, fail(ErrInvalid, "fields: %s is mapped twice", f.Role)
		}
		*slot = f.Attribute
	}
	switch {
	case m.WebsiteAttribute != "" && m.WebsiteAttribute == m.NameAttribute,
		m.LocationAttribute != "" && (m.LocationAttribute == m.NameAttribute || m.LocationAttribute == m.WebsiteAttribute):
		return m, fail(ErrInvalid, "name, website, location: each must be a different attribute")
	case m.RefreshInterval < 0:
		return m, fail(ErrInvalid, "refresh-interval: must not be negative")
	case m.MinConfidence != "" && !slices.Contains(ConfidenceLevels, m.MinConfidence):
		return m, fail(ErrInvalid, "min-confidence: %q is not one of %s", r.MinConfidence, strings.Join(ConfidenceLevels, ", "))
	}
	return m, nil
}

// Map publishes a mapping for a connected tenant after checking its
// attributes against the tenant's recent profiles: an attribute found in
// none is a warning (the tenant would show ACTIVE while every profile is
// skipped), or with Strict a refusal with nothing published.
func (a *Admin) Map(ctx context.Context, r MapRequest) (Published, []Warning, error) {
	m, err := r.Mapping()
	if err != nil {
		return Published{}, nil, err
	}
	s, err := a.begin(ctx, r.Tenant, false)
	if err != nil {
		return Published{}, nil, err
	}
	var warnings []Warning
	if r.Sample >= 0 {
		got, err := a.RecentAttributes(ctx, r.Tenant, cmp.Or(r.Sample, DefaultSample))
		if err != nil {
			return Published{}, nil, fmt.Errorf("reading recent profiles of %s to check the mapping: %w", r.Tenant, err)
		}
		if warnings, err = checkMapped(r.Tenant, m, got, r.Strict); err != nil {
			return Published{}, nil, err
		}
	}
	p, err := s.publish(ctx, r.By, schemas.Control{Mapping: &m})
	return p, warnings, err
}

// Attributes is what the tail of the profiles topic shows of a tenant's
// profiles: the attribute choices for a mapping.
type Attributes struct {
	// Profiles is how many distinct profiles were sampled.
	Profiles int
	// Counts holds each attribute with the profiles holding a non-blank
	// value for it, most common first.
	Counts []AttributeCount
}

// AttributeCount is one attribute of Attributes.
type AttributeCount struct {
	Name     string
	Profiles int
}

// Has is how many sampled profiles hold the attribute.
func (at Attributes) Has(name string) int {
	for _, c := range at.Counts {
		if c.Name == name {
			return c.Profiles
		}
	}
	return 0
}

// RecentAttributes samples the last perPartition records of every
// partition of the profiles topic for the tenant's attributes.
func (a *Admin) RecentAttributes(ctx context.Context, tenant string, perPartition int) (Attributes, error) {
	if err := CheckTenant(tenant); err != nil {
		return Attributes{}, err
	}
	got, err := processor.RecentAttributes(ctx, a.cfg.Kafka, a.cfg.Topics.Profiles, a.codec, tenant, cmp.Or(perPartition, DefaultSample))
	if err != nil {
		return Attributes{}, err
	}
	out := Attributes{Profiles: got.Profiles, Counts: make([]AttributeCount, 0, len(got.Attributes))}
	for name, n := range got.Attributes {
		out.Counts = append(out.Counts, AttributeCount{name, n})
	}
	slices.SortFunc(out.Counts, func(x, y AttributeCount) int {
		return cmp.Or(cmp.Compare(y.Profiles, x.Profiles), strings.Compare(x.Name, y.Name))
	})
	return out, nil
}

func checkMapped(tenant string, m schemas.Mapping, got Attributes, strict bool) ([]Warning, error) {
	if got.Profiles == 0 {
		return []Warning{{WarnNoProfiles, fmt.Sprintf("no recent profiles of tenant %s to check the mapped attributes against", tenant)}}, nil
	}
	var missing []string
	for _, f := range []struct{ role, attr string }{{"name", m.NameAttribute}, {"website", m.WebsiteAttribute}, {"location", m.LocationAttribute}} {
		if f.attr != "" && got.Has(f.attr) == 0 {
			missing = append(missing, fmt.Sprintf("%s (%s)", f.attr, f.role))
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	msg := fmt.Sprintf("%s: in none of tenant %s's %d recent profiles; attributes seen: %s",
		strings.Join(missing, ", "), tenant, got.Profiles, seenAttributes(got, 12))
	if strict {
		return nil, fail(ErrRefused, "%s; nothing was published (--strict)", msg)
	}
	return []Warning{{WarnAttributeMissing, msg}}, nil
}

// seenAttributes lists the most common attributes with their counts.
func seenAttributes(got Attributes, limit int) string {
	var parts []string
	for i, c := range got.Counts {
		if i == limit {
			parts = append(parts, fmt.Sprintf("and %d more", len(got.Counts)-limit))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", c.Name, c.Profiles))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Remove stops a connected tenant's enrichment; purge also withdraws its
// published enrichments (tombstones on the enriched topic).
func (a *Admin) Remove(ctx context.Context, tenant string, purge bool, by string) (Published, error) {
	return a.change(ctx, tenant, by, schemas.Control{Removal: &schemas.Removal{Purge: purge}})
}

// WaitApplied waits until the service's control record on the status topic
// says it applied p: from then on its calls for the tenant follow it. It
// returns ctx's error when no running service applied it in time (the
// change applies when the service starts).
func (a *Admin) WaitApplied(ctx context.Context, p Published) error {
	tenant, kind := p.Event.TenantID, p.Event.Kind()
	for {
		records, err := controlplane.ReadApplied(ctx, a.cfg.Kafka, a.cfg.Topics.Status, a.codec)
		if err == nil && records[tenant].AppliedControl[kind] == p.Event.EventID {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
