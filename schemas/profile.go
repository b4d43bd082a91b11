package schemas

import (
	"context"
	"time"
)

// Profile is a ProfileUnified event.
type Profile struct {
	EventID    string
	TenantID   string
	ProfileID  string
	Kind       string // ACCOUNT, CONTACT or UNKNOWN
	Attributes map[string]string
	UnifiedAt  time.Time
	Version    int64
}

// Native is the goavro form of p.
func (p Profile) Native() map[string]any {
	attrs := make(map[string]any, len(p.Attributes))
	for k, v := range p.Attributes {
		attrs[k] = v
	}
	kind := p.Kind
	if kind == "" {
		kind = "ACCOUNT"
	}
	return map[string]any{
		"event_id": p.EventID, "tenant_id": p.TenantID, "profile_id": p.ProfileID,
		"profile_kind": kind, "attributes": attrs, "unified_at": p.UnifiedAt, "version": p.Version,
	}
}

// DecodeProfile decodes a framed ProfileUnified value.
func (c *Codec) DecodeProfile(ctx context.Context, value []byte) (Profile, error) {
	return c.decodeProfile(ctx, value, false)
}

// DecodeProfileInPlace is DecodeProfile for the pipeline's hot path: the
// strings it returns share value's bytes instead of copying them (one
// allocation per string saved, a dozen per input), so value must not be
// changed while they live. The pipeline holds each input's value until it
// is done anyway, for its dead letter.
func (c *Codec) DecodeProfileInPlace(ctx context.Context, value []byte) (Profile, error) {
	return c.decodeProfile(ctx, value, true)
}

func (c *Codec) decodeProfile(ctx context.Context, value []byte, inPlace bool) (Profile, error) {
	if id, body, err := unframe(value); err == nil {
		if r, err := c.reader(ctx, id); err == nil && r.direct {
			return decodeProfileDirect(body, inPlace)
		}
	}
	m, err := c.Decode(ctx, ProfileUnified, value)
	if err != nil {
		return Profile{}, err
	}
	r := &record{m: m}
	p := Profile{
		EventID: r.str("event_id"), TenantID: r.str("tenant_id"), ProfileID: r.str("profile_id"),
		Kind: r.str("profile_kind"), Attributes: r.stringMap("attributes"),
		UnifiedAt: r.time("unified_at"), Version: r.long("version"),
	}
	return p, r.err
}
