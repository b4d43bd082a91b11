package schemas

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Kinds of control events; each is one key (tenant/kind) on the compacted topic.
const (
	KindConnection = "connection"
	KindConsent    = "consent"
	KindMapping    = "mapping"
	KindRemoval    = "removal"
	KindRefresh    = "refresh"
)

// Connection connects a tenant to a Leadspace program.
type Connection struct {
	DisplayName string
	TokenRef    string // env:NAME, file:PATH, sealed:BASE64 or plain:TOKEN (dev only)
	VerifiedAt  time.Time
}

// Consent records the admin's agreement (or its withdrawal) that mapped data
// may leave the platform for Leadspace.
type Consent struct {
	Given        bool
	TermsVersion string
}

// Mapping says which profile attributes are sent.
type Mapping struct {
	NameAttribute     string
	WebsiteAttribute  string
	LocationAttribute string
	MinConfidence     string
	RefreshInterval   time.Duration
}

// Removal removes the enrichment, optionally withdrawing what was published.
type Removal struct{ Purge bool }

// Refresh asks for a Run over the tenant's current profiles, or (Cancel)
// stops the Run it names. The latest refresh event of a tenant wins.
type Refresh struct {
	RunID  string
	Force  bool
	Cancel bool
}

// Control is a ControlEvent. Exactly one of the payload pointers is set.
type Control struct {
	EventID    string
	TenantID   string
	IssuedAt   time.Time
	IssuedBy   string
	Connection *Connection
	Consent    *Consent
	Mapping    *Mapping
	Removal    *Removal
	Refresh    *Refresh
	Signature  string
	// Sequence orders the events of one key (tenant/kind): the service
	// applies an event only above the sequence it applied last for the key.
	Sequence int64
	// KeyID names the admin key that signed (ed25519:... or hmac:...).
	KeyID string

	// read is the signed form as written, for an event DecodeControl read
	// with a bytes signature (see SignedForm).
	read *readForm
}

// Kinds lists every control kind, in the order admins usually issue them.
func Kinds() []string {
	return []string{KindConnection, KindMapping, KindConsent, KindRemoval, KindRefresh}
}

// ValidKind is whether kind names a control kind.
func ValidKind(kind string) bool {
	for _, k := range Kinds() {
		if k == kind {
			return true
		}
	}
	return false
}

// Kind is the payload's kind, which is also the second half of the key.
func (c Control) Kind() string {
	switch {
	case c.Connection != nil:
		return KindConnection
	case c.Consent != nil:
		return KindConsent
	case c.Mapping != nil:
		return KindMapping
	case c.Removal != nil:
		return KindRemoval
	case c.Refresh != nil:
		return KindRefresh
	}
	return ""
}

// Key is the record key: tenant/kind.
func (c Control) Key() string { return c.TenantID + "/" + c.Kind() }

const controlNS = "com.enrichment.leadspace.control."

// payloadNative is the union branch of the payload.
func (c Control) payloadNative() (any, error) {
	switch {
	case c.Connection != nil:
		return map[string]any{controlNS + "ConnectionUpserted": map[string]any{
			"display_name": c.Connection.DisplayName, "token_ref": c.Connection.TokenRef, "verified_at": optTime(c.Connection.VerifiedAt)}}, nil
	case c.Consent != nil:
		return map[string]any{controlNS + "ConsentChanged": map[string]any{"given": c.Consent.Given, "terms_version": c.Consent.TermsVersion}}, nil
	case c.Mapping != nil:
		var interval *int64
		if c.Mapping.RefreshInterval > 0 {
			s := int64(c.Mapping.RefreshInterval / time.Second)
			interval = &s
		}
		return map[string]any{controlNS + "MappingSet": map[string]any{
			"name_attribute": c.Mapping.NameAttribute, "website_attribute": optString(c.Mapping.WebsiteAttribute),
			"location_attribute": optString(c.Mapping.LocationAttribute), "min_confidence": optString(c.Mapping.MinConfidence),
			"refresh_interval_seconds": optLong(interval)}}, nil
	case c.Removal != nil:
		return map[string]any{controlNS + "EnrichmentRemoved": map[string]any{"purge": c.Removal.Purge}}, nil
	case c.Refresh != nil:
		return map[string]any{controlNS + "RefreshRequested": map[string]any{"run_id": c.Refresh.RunID, "force": c.Refresh.Force, "cancel": c.Refresh.Cancel}}, nil
	}
	return nil, fmt.Errorf("schemas: control event for tenant %q has no payload", c.TenantID)
}

// Native is the goavro form of c.
func (c Control) Native() (map[string]any, error) {
	payload, err := c.payloadNative()
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"event_id": c.EventID, "tenant_id": c.TenantID, "issued_at": c.IssuedAt, "issued_by": c.IssuedBy,
		"payload": payload, "signature": optString(c.Signature), "sequence": c.Sequence, "key_id": optString(c.KeyID),
	}, nil
}

// DecodeControl decodes a framed ControlEvent value.
func (c *Codec) DecodeControl(ctx context.Context, value []byte) (Control, error) {
	m, writer, err := c.decode(ctx, ControlEvent, value)
	if err != nil {
		return Control{}, err
	}
	r := &record{m: m}
	ev := Control{EventID: r.str("event_id"), TenantID: r.str("tenant_id"), IssuedAt: r.time("issued_at"),
		IssuedBy: r.str("issued_by"), Signature: r.str("signature"), Sequence: r.long("sequence"), KeyID: r.str("key_id")}
	union, _ := m["payload"].(map[string]any)
	for name, v := range union {
		p := &record{m: asMap(v)}
		switch name {
		case controlNS + "ConnectionUpserted":
			ev.Connection = &Connection{DisplayName: p.str("display_name"), TokenRef: p.str("token_ref"), VerifiedAt: p.time("verified_at")}
		case controlNS + "ConsentChanged":
			ev.Consent = &Consent{Given: p.boolean("given"), TermsVersion: p.str("terms_version")}
		case controlNS + "MappingSet":
			ev.Mapping = &Mapping{NameAttribute: p.str("name_attribute"), WebsiteAttribute: p.str("website_attribute"),
				LocationAttribute: p.str("location_attribute"), MinConfidence: p.str("min_confidence"),
				RefreshInterval: time.Duration(p.long("refresh_interval_seconds")) * time.Second}
		case controlNS + "EnrichmentRemoved":
			ev.Removal = &Removal{Purge: p.boolean("purge")}
		case controlNS + "RefreshRequested":
			ev.Refresh = &Refresh{RunID: p.str("run_id"), Force: p.boolean("force"), Cancel: p.boolean("cancel")}
		}
		if p.err != nil {
			return Control{}, p.err
		}
	}
	if r.err == nil && ev.Kind() == "" {
		r.fail("payload", "a known control payload")
	}
	if r.err == nil && strings.HasPrefix(ev.Signature, BytesSignaturePrefix) {
		ev.read = readSignedForm(ev, writer, m)
	}
	return ev, r.err
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
