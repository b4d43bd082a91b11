// Package controlplane is the tenants' side of the enricher: the control table
// folded from the leadspace-control topic (connection, consent, mapping,
// Runs, removals) and the gate it answers, the plane that keeps it and its
// status records, signing and verifying control events, sealed tokens and
// token references, and what admin commands read of the control log. It
// knows nothing of the pipeline or the consumer group.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	// Program is Credentials.Key(), made once per connection rather than
	// hashed again for every record.
	Program string
	Mapping schemas.Mapping
}

// Denial says why a tenant's data may not leave, and whether the tenant is
// connected at all (unconnected tenants get no output events).
type Denial struct {
	Reason    string
	Connected bool
	State     string // schemas.State*
	Detail    string // e.g. the pause cause and what to do
	// Cause is the stable code behind a pause (leadspace.unauthorized,
	// token.invalid, ...); empty otherwise.
	Cause string
}

// RunRequest is a tenant's latest applied refresh event: a Run to start,
// or (Cancel) to stop.
type RunRequest struct {
	ID          string
	Force       bool
	Cancel      bool
	RequestedAt time.Time
}

// Removal is a tenant's removal in effect (no connection issued after it).
type Removal struct {
	Tenant string
	At     time.Time
	Purge  bool
}

// Reserved entries of the tenant/control status record, beside the kinds.
const (
	// recordPause (applied_control) is the Leadspace pause (401, 427) of the
	// applied connection event, so that a restart does not lift it.
	recordPause = "pause"
	// recordRemovalAt (applied_control) is the applied removal's issue time:
	// if compaction loses the removal event, the tenant stays removed.
	recordRemovalAt = "removal_issued_at"
	// recordOffsetPrefix (control_sequences) + partition: the control-topic
	// offset below which every record of the tenant is in the record. A
	// restart counts no refusal twice, and tells a replay (at or above it)
	// from history (below it).
	recordOffsetPrefix = "@"
)

// keyState is what the table holds for one key (tenant/kind).
type keyState struct {
	ev  *schemas.Control // the applied event; nil: none, or lost
	raw []byte           // its record value, written again after a refusal
	seq int64            // the highest sequence applied (restored, or ev's)
	id  string           // the applied event's id
	// lost: the status record says an event was applied, but the topic no
	// longer holds it (compacted under a replay while no instance ran).
	lost bool
	// tailGenuine: the last record read under the key is the applied event,
	// so compaction keeps it. rewriting: a copy is on its way.
	tailGenuine, rewriting bool
}

// tenantControl is one tenant's keys, refusals and runtime pause.
type tenantControl struct {
	keys          map[string]*keyState // by kind
	credentials   leadspace.Credentials
	program       string // credentials.Key(), kept: the pipeline asks per record
	tokenErr      *TokenError
	pausedReason  string
	pausedToken   string // credentials key the pause applies to
	restoredPause struct{ connection, reason string }
	lostRemovalAt time.Time // a removal applied, then lost: still in effect

	grant  context.Context // live while the tenant is permitted
	revoke context.CancelFunc

	refused     int64
	refusedBy   map[string]int64
	lastRefused string
	through     map[int]int64 // control partition -> offset below which records are accounted
}

func (tc *tenantControl) key(kind string) *keyState {
	ks := tc.keys[kind]
	if ks == nil {
		ks = &keyState{}
		tc.keys[kind] = ks
	}
	return ks
}

func (tc *tenantControl) event(kind string) *schemas.Control {
	if ks := tc.keys[kind]; ks != nil {
		return ks.ev
	}
	return nil
}

func (tc *tenantControl) lost(kind string) bool {
	ks := tc.keys[kind]
	return ks != nil && ks.lost
}

// fresh is whether a record at partition/offset is new to the tenant's
// status record, and accounts it. Records without a position (Apply) are.
func (tc *tenantControl) fresh(partition int, offset int64) bool {
	if offset < 0 {
		return true
	}
	if offset < tc.through[partition] {
		return false
	}
	tc.through[partition] = offset + 1
	return true
}

func (tc *tenantControl) count(reason string) {
	tc.refused++
	tc.refusedBy[reason]++
	tc.lastRefused = reason
}

// Table is the in-memory view of the control topic: which tenants are
// connected, consented and mapped. It is the gate in front of every call.
//
// An event is applied only if its sequence is above the one applied for its
// key (tenant/kind); the applied sequences come back from the status topic
// at start (Restore), so a copy of an older event, even one compaction left
// as the only record of its key, never wins.
type Table struct {
	resolve TokenResolver
	now     func() time.Time

	mu      sync.RWMutex
	tenants map[string]*tenantControl
	changed chan struct{} // Changed(): applied changes, for the pipeline
	dirty   chan struct{} // anything the status record or a rewrite must reflect
}

// NewTable builds an empty table. resolve turns a connection's token
// reference into the token; it runs when the event is applied, so a bad
// reference pauses the tenant instead of failing every event.
func NewTable(resolve TokenResolver) *Table {
	return &Table{resolve: resolve, now: time.Now, tenants: map[string]*tenantControl{},
		changed: make(chan struct{}, 1), dirty: make(chan struct{}, 1)}
}

func (t *Table) tenant(id string) *tenantControl {
	tc := t.tenants[id]
	if tc == nil {
		tc = &tenantControl{keys: map[string]*keyState{}, refusedBy: map[string]int64{}, through: map[int]int64{}}
		t.tenants[id] = tc
	}
	return tc
}

// Changed receives (coalesced, never blocking the table) after every change
// that may alter what the gate, Run or Removals answer: an applied event, a
// pause, catching up. One receiver: the pipeline, which re-checks its Runs,
// purges and paused programs.
func (t *Table) Changed() <-chan struct{} { return t.changed }

func (t *Table) notify(applied bool) {
	if applied {
		select {
		case t.changed <- struct{}{}:
		default:
		}
	}
	select {
	case t.dirty <- struct{}{}:
	default:
	}
}

// controlKey splits a control record key. Keys that are not tenant/kind
// with a known kind name no tenant: they never create one.
func controlKey(key []byte) (tenant, kind string, ok bool) {
	tenant, kind, ok = strings.Cut(string(key), "/")
	if !ok || tenant == "" || !schemas.ValidKind(kind) {
		return "", "", false
	}
	return tenant, kind, true
}

// Apply folds one event into the table as if read from the topic at an
// unknown position: a refusal is returned as *RefusedError and counted.
func (t *Table) Apply(ev schemas.Control) error {
	if ev.TenantID == "" || ev.Kind() == "" {
		return errors.New("control event without tenant or payload")
	}
	if err := (Auth{}).Verify(ev); err != nil {
		return err
	}
	_, err := t.fold(ev.TenantID, ev.Kind(), kafka.Message{Offset: -1}, &ev, nil)
	return err
}

// ApplyRecord decodes, verifies and applies one control-topic record. It
// returns the event when it changed the table, nil when it changed nothing
// (the applied event read again), or why it was refused. Refusals are
// counted for the tenant the key names, once per record even across
// restarts.
func (t *Table) ApplyRecord(codec *schemas.Codec, auth Auth, msg kafka.Message) (*schemas.Control, error) {
	tenant, kind, ok := controlKey(msg.Key)
	if !ok {
		return nil, refused(ReasonControlKey, "key %.60q is not tenant/kind", msg.Key)
	}
	var refusal *RefusedError
	var ev schemas.Control
	switch {
	case msg.Value == nil:
		refusal = refused(ReasonTombstone, "a tombstone would let compaction delete %s's %s event", tenant, kind)
	case len(msg.Value) == 0:
		refusal = refused(ReasonEmptyValue, "0-byte value")
	default:
		var err error
		if ev, err = codec.DecodeControl(context.Background(), msg.Value); err != nil {
			refusal = &RefusedError{Reason: ReasonUndecodable, Err: err}
		} else if ev.Key() != string(msg.Key) {
			refusal = refused(ReasonWrongKey, "the event of %.60q was written under %.60q", ev.Key(), msg.Key)
		} else if err := auth.Verify(ev); err != nil {
			if !errors.As(err, &refusal) {
				refusal = &RefusedError{Reason: ReasonBadSignature, Err: err}
			}
		}
	}
	if refusal != nil {
		return t.fold(tenant, kind, msg, nil, refusal)
	}
	return t.fold(tenant, kind, msg, &ev, nil)
}

// fold applies a verified event (or counts a refused record) under
// tenant/kind, read at msg's position.
func (t *Table) fold(tenant, kind string, msg kafka.Message, ev *schemas.Control, refusal *RefusedError) (*schemas.Control, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.tenant(tenant)
	ks := tc.key(kind)
	ks.rewriting = false
	fresh := tc.fresh(msg.Partition, msg.Offset)
	if refusal == nil {
		switch {
		case ev.Sequence == ks.seq && (ev.EventID == ks.id || ks.id == ""):
			// The applied event again: read back at start, or our own copy.
			ks.tailGenuine = true
			if msg.Value != nil {
				ks.raw = msg.Value
			}
			if ks.ev != nil {
				t.notify(false)
				return nil, nil
			}
		case ev.Sequence > ks.seq:
		default:
			refusal = refused(ReasonReplayed, "sequence %d is not above %d, applied for %s/%s", ev.Sequence, ks.seq, tenant, kind)
		}
	}
	if refusal != nil {
		ks.tailGenuine = false
		if fresh {
			tc.count(refusal.Reason)
		} else {
			refusal.Repeat = true
		}
		t.notify(false)
		return nil, refusal
	}
	e := *ev
	ks.ev, ks.raw, ks.seq, ks.id, ks.lost, ks.tailGenuine = &e, msg.Value, e.Sequence, e.EventID, false, true
	switch kind {
	case schemas.KindConnection:
		tc.credentials, tc.program, tc.tokenErr = leadspace.Credentials{}, "", nil
		if token, err := t.resolve(tenant, e.Connection.TokenRef); err != nil {
			if !errors.As(err, &tc.tokenErr) {
				tc.tokenErr = &TokenError{Reason: ReasonTokenUnresolvable, Err: err}
			}
		} else {
			tc.credentials = leadspace.Credentials{Token: token}
			tc.program = tc.credentials.Key()
		}
		// A new connection (new token) lifts a pause caused by the old one;
		// the connection the pause was recorded for keeps it.
		tc.pausedReason, tc.pausedToken = "", ""
		if r := tc.restoredPause; r.reason != "" && r.connection == e.EventID && tc.tokenErr == nil {
			tc.pausedReason, tc.pausedToken = r.reason, tc.program
		}
		tc.restoredPause.connection, tc.restoredPause.reason = "", ""
	case schemas.KindRemoval:
		tc.lostRemovalAt = time.Time{}
	}
	t.refreshGrant(tc)
	t.notify(true)
	return &e, nil
}

// Restore loads what the service applied before, from the tenants' control
// status records: sequences, applied event ids, refusal counts and pauses.
// Call it once, before any record is applied.
func (t *Table) Restore(records []schemas.Status) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range records {
		if r.Partition != schemas.ControlPartition || r.TenantID == "" || strings.Contains(r.TenantID, "/") {
			continue
		}
		tc := t.tenant(r.TenantID)
		for name, v := range r.ControlSequences {
			if p, ok := strings.CutPrefix(name, recordOffsetPrefix); ok {
				if n, err := strconv.Atoi(p); err == nil && v > tc.through[n] {
					tc.through[n] = v
				}
				continue
			}
			if schemas.ValidKind(name) {
				ks := tc.key(name)
				ks.seq, ks.id = v, r.AppliedControl[name]
			}
		}
		// Counts without an offset mark come from before the mark existed:
		// the refusals still on the topic are counted again from the log.
		if len(tc.through) > 0 {
			tc.refused, tc.lastRefused = r.RefusedControl, r.LastRefused
			for reason, n := range r.RefusedByReason {
				tc.refusedBy[reason] = n
			}
		}
		if reason := r.AppliedControl[recordPause]; reason != "" {
			tc.restoredPause.connection, tc.restoredPause.reason = r.AppliedControl[schemas.KindConnection], reason
		}
		if at, err := time.Parse(time.RFC3339Nano, r.AppliedControl[recordRemovalAt]); err == nil {
			tc.lostRemovalAt = at // cleared when the removal event itself is read
		}
	}
}

// settle runs once the table caught up with the control topic: a kind the
// status record says was applied but the topic no longer holds is lost, and
// the tenant fails closed on it (a lost removal stays in effect).
func (t *Table) settle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tc := range t.tenants {
		for _, ks := range tc.keys {
			ks.lost = ks.seq > 0 && ks.ev == nil
		}
		switch rm := tc.keys[schemas.KindRemoval]; {
		case rm == nil:
		case rm.ev != nil:
			tc.lostRemovalAt = time.Time{}
		case rm.lost && tc.lostRemovalAt.IsZero():
			tc.lostRemovalAt = t.now().UTC() // no time recorded: everything issued before now stays removed
		}
		t.refreshGrant(tc)
	}
	t.notify(true)
}

// removedAt is when the tenant's removal in force was issued, if any.
func (tc *tenantControl) removedAt() (time.Time, bool) {
	if rm := tc.event(schemas.KindRemoval); rm != nil {
		return rm.IssuedAt, true
	}
	if !tc.lostRemovalAt.IsZero() {
		return tc.lostRemovalAt, true
	}
	return time.Time{}, false
}

// effective is whether an event is set and was issued after the last removal.
func (tc *tenantControl) effective(ev *schemas.Control) bool {
	if ev == nil {
		return false
	}
	at, removed := tc.removedAt()
	return !removed || ev.IssuedAt.After(at)
}

func (tc *tenantControl) denial() *Denial {
	connection, consent, mapping := tc.event(schemas.KindConnection), tc.event(schemas.KindConsent), tc.event(schemas.KindMapping)
	connected := tc.effective(connection)
	_, removed := tc.removedAt()
	lostNote := func(kind string) string {
		if tc.lost(kind) {
			return fmt.Sprintf("the applied %s event (sequence %d) is no longer on the control topic; issue it again", kind, tc.keys[kind].seq)
		}
		return ""
	}
	switch {
	case removed && !connected:
		return &Denial{Reason: ReasonRemoved, State: schemas.StateRemoved, Detail: lostNote(schemas.KindRemoval)}
	case !connected:
		return &Denial{Reason: ReasonNotConnected, State: schemas.StateNotConnected, Detail: lostNote(schemas.KindConnection)}
	case !tc.effective(consent) || !consent.Consent.Given:
		return &Denial{Reason: ReasonNoConsent, Connected: true, State: schemas.StateNoConsent, Detail: lostNote(schemas.KindConsent)}
	case !tc.effective(mapping) || mapping.Mapping.NameAttribute == "":
		detail := lostNote(schemas.KindMapping)
		if detail == "" {
			detail = "no mapping set"
		}
		return &Denial{Reason: ReasonNoMapping, Connected: true, State: schemas.StatePaused, Detail: detail}
	case tc.tokenErr != nil:
		return &Denial{Reason: ReasonPaused, Connected: true, State: schemas.StatePaused, Cause: tc.tokenErr.Reason, Detail: tc.tokenErr.Error()}
	case tc.pausedReason != "":
		return &Denial{Reason: ReasonPaused, Connected: true, State: schemas.StatePaused, Cause: tc.pausedReason, Detail: tc.pausedReason}
	}
	return nil
}

// refreshGrant opens or revokes the tenant's grant context to match its state.
func (t *Table) refreshGrant(tc *tenantControl) {
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
func (t *Table) Gate(tenant string) (Permit, *Denial) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tc := t.tenants[tenant]
	if tc == nil {
		return Permit{}, &Denial{Reason: ReasonNotConnected, State: schemas.StateNotConnected}
	}
	if d := tc.denial(); d != nil {
		return Permit{}, d
	}
	return Permit{Ctx: tc.grant, TenantID: tenant, Credentials: tc.credentials, Program: tc.program,
		Mapping: *tc.event(schemas.KindMapping).Mapping}, nil
}

// ProgramOf is the tenant's credentials key (leadspace.Credentials.Key)
// when the tenant may call Leadspace now, so the pipeline can account
// in-flight work per program before it decodes anything.
func (t *Table) ProgramOf(tenant string) (key string, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tc := t.tenants[tenant]
	if tc == nil || tc.denial() != nil {
		return "", false
	}
	return tc.program, true
}

// Run is the tenant's latest applied refresh event. The gate still decides
// whether the Run may call Leadspace.
func (t *Table) Run(tenant string) (RunRequest, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tc := t.tenants[tenant]
	if tc == nil {
		return RunRequest{}, false
	}
	ev := tc.event(schemas.KindRefresh)
	if ev == nil {
		return RunRequest{}, false
	}
	return RunRequest{ID: ev.Refresh.RunID, Force: ev.Refresh.Force, Cancel: ev.Refresh.Cancel, RequestedAt: ev.IssuedAt}, true
}

// Removals lists the removals in effect: tenants removed and not connected
// again since. A removal whose event was lost to compaction is listed
// without purge (its purge ran when it was applied).
func (t *Table) Removals() []Removal {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []Removal
	for id, tc := range t.tenants {
		at, removed := tc.removedAt()
		if !removed || tc.effective(tc.event(schemas.KindConnection)) {
			continue
		}
		r := Removal{Tenant: id, At: at}
		if rm := tc.event(schemas.KindRemoval); rm != nil {
			r.Purge = rm.Removal.Purge
		}
		out = append(out, r)
	}
	return out
}

// Known is whether the tenant ever had a connection (and so may have
// published enrichments that a profile deletion must withdraw).
func (t *Table) Known(tenant string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tc := t.tenants[tenant]
	if tc == nil {
		return false
	}
	ks := tc.keys[schemas.KindConnection]
	return ks != nil && (ks.ev != nil || ks.seq > 0)
}

// Pause stops a tenant's calls after Leadspace refused its program (401 or
// 427) until a new connection event arrives. It applies only if the tenant
// still uses the credentials that failed. The pause is kept in the tenant's
// control status record, so a restart does not lift it.
func (t *Table) Pause(tenant string, creds leadspace.Credentials, reason string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	tc := t.tenants[tenant]
	if tc == nil || tc.program != creds.Key() || tc.pausedReason != "" {
		return false
	}
	tc.pausedReason, tc.pausedToken = reason, tc.program
	t.refreshGrant(tc)
	t.notify(true)
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
	// RefusedByReason counts refused control records by reason.
	RefusedByReason map[string]int64 `json:",omitempty"`
	// Sequences and Applied are the applied sequence and event id per kind.
	Sequences map[string]int64  `json:",omitempty"`
	Applied   map[string]string `json:",omitempty"`
	// Lost lists kinds whose applied event is no longer on the topic.
	Lost []string `json:",omitempty"`
}

// Snapshot lists every tenant's state.
func (t *Table) Snapshot() []TenantState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]TenantState, 0, len(t.tenants))
	for id, tc := range t.tenants {
		out = append(out, tc.state(id))
	}
	return out
}

func (tc *tenantControl) state(id string) TenantState {
	s := TenantState{TenantID: id, State: schemas.StateActive, Refused: tc.refused, LastRefused: tc.lastRefused,
		RefusedByReason: map[string]int64{}, Sequences: map[string]int64{}, Applied: map[string]string{}}
	if d := tc.denial(); d != nil {
		s.State, s.Reason = d.State, d.Reason
		if d.Detail != "" {
			s.Reason = fmt.Sprintf("%s: %s", d.Reason, d.Detail)
		}
	}
	for reason, n := range tc.refusedBy {
		s.RefusedByReason[reason] = n
	}
	for _, kind := range schemas.Kinds() {
		ks := tc.keys[kind]
		if ks == nil || ks.seq == 0 {
			continue
		}
		s.Sequences[kind], s.Applied[kind] = ks.seq, ks.id
		if ks.lost {
			s.Lost = append(s.Lost, kind)
		}
	}
	if c := tc.event(schemas.KindConnection); c != nil {
		s.DisplayName, s.TokenRef = c.Connection.DisplayName, redactRef(c.Connection.TokenRef)
	}
	if m := tc.event(schemas.KindMapping); m != nil {
		mm := *m.Mapping
		s.Mapping = &mm
	}
	if c := tc.event(schemas.KindConsent); c != nil {
		s.ConsentBy, s.ConsentAt = c.IssuedBy, c.IssuedAt
	}
	return s
}

// controlRecords are the tenants' control status records as they stand:
// state, refusals, applied sequences and ids, the pause, the offset marks.
// Tenants with nothing applied and nothing refused have none.
func (t *Table) controlRecords() []schemas.Status {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]schemas.Status, 0, len(t.tenants))
	for id, tc := range t.tenants {
		st := tc.state(id)
		if len(st.Sequences) == 0 && st.Refused == 0 {
			continue
		}
		r := schemas.Status{TenantID: id, Partition: schemas.ControlPartition, State: st.State, StateReason: st.Reason,
			CommittedOffset: -1, RefusedControl: st.Refused, LastRefused: st.LastRefused, RefusedByReason: st.RefusedByReason,
			ControlSequences: st.Sequences, AppliedControl: st.Applied}
		for p, off := range tc.through {
			r.ControlSequences[recordOffsetPrefix+strconv.Itoa(p)] = off
		}
		if tc.pausedReason != "" {
			r.AppliedControl[recordPause] = tc.pausedReason
		}
		if at, removed := tc.removedAt(); removed {
			r.AppliedControl[recordRemovalAt] = at.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, r)
	}
	return out
}

// rewrites lists, for each key whose last record is not the applied event
// (a replay, a forgery, a tombstone was written after it), a copy of the
// applied event's record, so that compaction keeps the genuine one. Each is
// listed once until the next record of its key is read.
func (t *Table) rewrites(topic string) []kafka.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []kafka.Message
	for id, tc := range t.tenants {
		for kind, ks := range tc.keys {
			if ks.tailGenuine || ks.rewriting || ks.ev == nil || ks.raw == nil {
				continue
			}
			ks.rewriting = true
			out = append(out, kafka.Message{Topic: topic, Key: []byte(id + "/" + kind), Value: ks.raw})
		}
	}
	return out
}

// rewriteFailed makes the keys of msgs due for a rewrite again.
func (t *Table) rewriteFailed(msgs []kafka.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		if tenant, kind, ok := controlKey(m.Key); ok {
			if tc := t.tenants[tenant]; tc != nil && tc.keys[kind] != nil {
				tc.keys[kind].rewriting = false
			}
		}
	}
}
