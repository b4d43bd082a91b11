package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Stable reasons why the gate let no data leave for a tenant.
const (
	ReasonNotConnected = "gate.not_connected"
	ReasonNoConsent    = "gate.no_consent"
	ReasonNoMapping    = "gate.no_mapping"
	ReasonRemoved      = "gate.removed"
	ReasonPaused       = "gate.paused"
)

// Permit is what the gate hands a job that may call Leadspace. Ctx ends the
// moment the tenant's permission does (consent withdrawn, enrichment removed,
// program paused), which cancels in-flight calls too.
type Permit struct {
	Ctx         context.Context
	TenantID    string
	Credentials leadspace.Credentials
	Mapping     schemas.Mapping
}

// Denial says why a tenant's data may not leave, and whether the tenant is
// connected at all (unconnected tenants get no output events).
type Denial struct {
	Reason    string
	Connected bool
	State     string // schemas.State*
	Detail    string // e.g. the pause cause
}

// tenantControl is the latest event of each kind for one tenant, plus the
// runtime pause set by Leadspace answers (401, 427).
type tenantControl struct {
	connection, consent, mapping, removal *schemas.Control
	credentials                           leadspace.Credentials
	tokenErr                              error
	pausedReason                          string
	pausedToken                           string // credentials key the pause applies to

	grant  context.Context // live while the tenant is permitted
	revoke context.CancelFunc

	refused     int64 // control events refused (forged, unsigned, replayed)
	lastRefused string
}

// ControlTable is the in-memory view of the control topic: which tenants are
// connected, consented and mapped. It is the gate in front of every call.
type ControlTable struct {
	resolve TokenResolver
	now     func() time.Time

	mu      sync.RWMutex
	tenants map[string]*tenantControl
}

// NewControlTable builds an empty table. resolve turns a connection's token
// reference into the token; it runs when the event is applied, so a bad
// reference pauses the tenant instead of failing every event.
func NewControlTable(resolve TokenResolver) *ControlTable {
	return &ControlTable{resolve: resolve, now: time.Now, tenants: map[string]*tenantControl{}}
}

// newer is whether ev supersedes the held event of its kind. Events are
// ordered by issue time, not offset: kinds live on different keys and so
// possibly different partitions of the control topic.
func newer(held *schemas.Control, ev schemas.Control) bool {
	return held == nil || !ev.IssuedAt.Before(held.IssuedAt)
}

// Apply folds one control event into the table.
func (t *ControlTable) Apply(ev schemas.Control) error {
	if ev.TenantID == "" {
		return errors.New("control event without tenant")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.tenants[ev.TenantID]
	if tc == nil {
		tc = &tenantControl{}
		t.tenants[ev.TenantID] = tc
	}
	e := ev
	switch {
	case ev.Connection != nil && newer(tc.connection, ev):
		tc.connection = &e
		tc.credentials, tc.tokenErr = leadspace.Credentials{}, nil
		token, err := t.resolve(ev.TenantID, ev.Connection.TokenRef)
		if err != nil {
			tc.tokenErr = err
		} else {
			tc.credentials = leadspace.Credentials{Token: token}
		}
		// A new connection (new token) lifts a pause caused by the old one.
		tc.pausedReason, tc.pausedToken = "", ""
	case ev.Consent != nil && newer(tc.consent, ev):
		tc.consent = &e
	case ev.Mapping != nil && newer(tc.mapping, ev):
		tc.mapping = &e
	case ev.Removal != nil && newer(tc.removal, ev):
		tc.removal = &e
	}
	t.refreshGrant(tc)
	return nil
}

// effective is whether an event is set and was issued after the last removal.
func (tc *tenantControl) effective(ev *schemas.Control) bool {
	return ev != nil && (tc.removal == nil || ev.IssuedAt.After(tc.removal.IssuedAt))
}

func (tc *tenantControl) denial() *Denial {
	connected := tc.effective(tc.connection)
	switch {
	case tc.removal != nil && !connected:
		return &Denial{Reason: ReasonRemoved, State: schemas.StateRemoved}
	case !connected:
		return &Denial{Reason: ReasonNotConnected, State: schemas.StateNotConnected}
	case !tc.effective(tc.consent) || !tc.consent.Consent.Given:
		return &Denial{Reason: ReasonNoConsent, Connected: true, State: schemas.StateNoConsent}
	case !tc.effective(tc.mapping) || tc.mapping.Mapping.NameAttribute == "":
		return &Denial{Reason: ReasonNoMapping, Connected: true, State: schemas.StatePaused, Detail: "no mapping set"}
	case tc.tokenErr != nil:
		return &Denial{Reason: ReasonPaused, Connected: true, State: schemas.StatePaused, Detail: "token reference: " + tc.tokenErr.Error()}
	case tc.pausedReason != "":
		return &Denial{Reason: ReasonPaused, Connected: true, State: schemas.StatePaused, Detail: tc.pausedReason}
	}
	return nil
}

// refreshGrant opens or revokes the tenant's grant context to match its state.
func (t *ControlTable) refreshGrant(tc *tenantControl) {
	permitted := tc.denial() == nil
	switch {
	case permitted && tc.grant == nil:
		tc.grant, tc.revoke = context.WithCancel(context.Background())
	case !permitted && tc.grant != nil:
		tc.revoke()
		tc.grant, tc.revoke = nil, nil
	}
}

// Gate decides whether a tenant's mapped data may leave now.
func (t *ControlTable) Gate(tenant string) (Permit, *Denial) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tc := t.tenants[tenant]
	if tc == nil {
		return Permit{}, &Denial{Reason: ReasonNotConnected, State: schemas.StateNotConnected}
	}
	if d := tc.denial(); d != nil {
		return Permit{}, d
	}
	return Permit{Ctx: tc.grant, TenantID: tenant, Credentials: tc.credentials, Mapping: *tc.mapping.Mapping}, nil
}

// Known is whether the tenant ever had a connection (and so may have
// published enrichments that a profile deletion must withdraw).
func (t *ControlTable) Known(tenant string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tc := t.tenants[tenant]
	return tc != nil && tc.connection != nil
}

// Refuse records a control event that was not applied, for status.
func (t *ControlTable) Refuse(tenant, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.tenants[tenant]
	if tc == nil {
		tc = &tenantControl{}
		t.tenants[tenant] = tc
	}
	tc.refused++
	tc.lastRefused = reason
}

// Pause stops a tenant's calls after Leadspace refused its program (401 or
// 427) until a new connection event arrives. It applies only if the tenant
// still uses the credentials that failed.
func (t *ControlTable) Pause(tenant string, creds leadspace.Credentials, reason string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.tenants[tenant]
	if tc == nil || tc.credentials.Key() != creds.Key() || tc.pausedReason != "" {
		return false
	}
	tc.pausedReason, tc.pausedToken = reason, creds.Key()
	t.refreshGrant(tc)
	return true
}

// TenantState is one tenant's state for status and the admin view.
type TenantState struct {
	TenantID    string
	State       string
	Reason      string
	DisplayName string
	TokenRef    string // the reference, never the token
	Mapping     *schemas.Mapping
	ConsentBy   string
	ConsentAt   time.Time
	Refused     int64
	LastRefused string
}

// Snapshot lists every tenant's state.
func (t *ControlTable) Snapshot() []TenantState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]TenantState, 0, len(t.tenants))
	for id, tc := range t.tenants {
		s := TenantState{TenantID: id, State: schemas.StateActive, Refused: tc.refused, LastRefused: tc.lastRefused}
		if d := tc.denial(); d != nil {
			s.State, s.Reason = d.State, d.Reason
			if d.Detail != "" {
				s.Reason = fmt.Sprintf("%s: %s", d.Reason, d.Detail)
			}
		}
		if tc.connection != nil {
			s.DisplayName, s.TokenRef = tc.connection.Connection.DisplayName, redactRef(tc.connection.Connection.TokenRef)
		}
		if tc.mapping != nil {
			m := *tc.mapping.Mapping
			s.Mapping = &m
		}
		if tc.consent != nil {
			s.ConsentBy, s.ConsentAt = tc.consent.IssuedBy, tc.consent.IssuedAt
		}
		out = append(out, s)
	}
	return out
}

// ApplyRecord decodes, verifies and applies one control-topic record. It
// returns the applied event, nil for a tombstone, or why it was refused
// (the refusal is also counted for status).
func (t *ControlTable) ApplyRecord(codec *schemas.Codec, auth ControlAuth, msg kafka.Message) (*schemas.Control, error) {
	if msg.Value == nil {
		return nil, nil
	}
	ev, err := codec.DecodeControl(context.Background(), msg.Value)
	if err != nil {
		tenant, _, _ := strings.Cut(string(msg.Key), "/")
		t.Refuse(tenant, ReasonUndecodable)
		return nil, &RefusedError{ReasonUndecodable, err}
	}
	if string(msg.Key) != ev.Key() {
		t.Refuse(ev.TenantID, ReasonBadSignature)
		return nil, &RefusedError{ReasonBadSignature, fmt.Errorf("key %q does not match the event's tenant/kind %q", msg.Key, ev.Key())}
	}
	if err := auth.Verify(ev, msg.Time); err != nil {
		reason := ReasonBadSignature
		var re *RefusedError
		if errors.As(err, &re) {
			reason = re.Reason
		}
		t.Refuse(ev.TenantID, reason)
		return nil, err
	}
	if err := t.Apply(ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// LoadControl reads the whole control topic once into table, verifying each
// event with auth, as the service does before it becomes ready.
func LoadControl(ctx context.Context, k Kafka, topic string, codec *schemas.Codec, auth ControlAuth, table *ControlTable) error {
	return ReadAll(ctx, k, topic, func(m kafka.Message) { _, _ = table.ApplyRecord(codec, auth, m) })
}
