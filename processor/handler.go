package processor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/leadspace/retry"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/internal/table"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Enricher is the Leadspace side as the pipeline sees it: one Program per
// set of credentials, and this instance's share of their rate.
type Enricher interface {
	Program(creds leadspace.Credentials) Program
	SetShare(share float64)
}

// Program is one Leadspace program: it takes records and calls back with
// each one's outcome, and says how many records it wants in flight.
type Program interface {
	Submit(ctx context.Context, req leadspace.Request, done func(leadspace.Outcome))
	// Resume asks an earlier bulk (path) for req's answer before sending
	// it again (see journal.go).
	Resume(ctx context.Context, req leadspace.Request, path string, done func(leadspace.Outcome))
	Capacity() int
	Key() string
}

// LeadspaceEnricher adapts *leadspace.Client to Enricher.
type LeadspaceEnricher struct{ Client *leadspace.Client }

// Program implements Enricher.
func (e LeadspaceEnricher) Program(creds leadspace.Credentials) Program {
	return e.Client.Program(creds)
}

// SetShare implements Enricher.
func (e LeadspaceEnricher) SetShare(share float64) { e.Client.SetShare(share) }

// Outcomes of one input, as counted in metrics.
const (
	outEnriched   = "enriched"
	outNotMatched = "not_matched"
	outSkipped    = "skipped"
	outDead       = "dead_letter"
	outTombstone  = "tombstone"
	outUnchanged  = "unchanged"
	outIgnored    = "ignored"
	// outSuperseded: the key already holds the outcome of this input or of
	// a newer one (a redelivery after a crash or a rebalance, or an older
	// version arriving late): nothing is called and nothing published, so
	// the key never moves backwards and no credit is spent twice.
	outSuperseded = "superseded"
)

// ReasonPanic is the dead letter reason of an input whose processing
// panicked: a bug of ours, kept replayable for when it is fixed.
const ReasonPanic = "internal.panic"

// step is what one stage decided for an input: the messages to publish
// (all acknowledged before the input counts as done), how the key's state
// changes once they are, and what to count. call, when set, means Leadspace
// must answer first.
type step struct {
	out     []kafka.Message
	state   *table.Entry // the key's new state; nil: unchanged
	remove  bool         // the key's profile was deleted
	outcome string
	reason  string
	tenant  string
	call    *callPlan
	// retryAfter asks for the input to be tried again after a wait (the
	// schema registry is unreachable: the value may well be fine).
	retryAfter time.Duration
}

// callPlan is an input that needs Leadspace.
type callPlan struct {
	permit  controlplane.Permit
	profile schemas.Profile
	mapped  mapped
	req     leadspace.Request
}

// handler decides what each input becomes. It holds no per-record state:
// its answers are steps, so it is easy to test.
type handler struct {
	codec   *schemas.Codec
	control *controlplane.Table
	topics  Topics
	log     *zap.Logger
	now     func() time.Time
	names   *table.Interner
	// deadLetterLimit is the largest dead letter the DLQ topic accepts.
	deadLetterLimit int
	// registryRetry paces an input while the schema registry is down:
	// from RetryBackoff, doubling six times at most, and never over 30s.
	registryRetry retry.Schedule
}

// prepare is the first stage: decode, validate, gate, map, and check the
// key's table for an answer that still stands.
func (h *handler) prepare(j *job) step {
	msg := j.msg
	if msg.Value == nil {
		return h.tombstone(j)
	}
	if len(msg.Value) == 0 {
		// Only a null value deletes a profile; an empty one is a mistake.
		return h.dead(j, &stageError{stage: schemas.StageDecode, reason: schemas.ReasonEmptyValue, class: classInput,
			err: errors.New("the value is empty (0 bytes); only a null value is a tombstone")}, schemas.Profile{})
	}
	profile, err := h.codec.DecodeProfileInPlace(context.Background(), msg.Value)
	if err != nil {
		se := decodeFailure(err)
		if se.replayable { // the registry is unreachable: the value may be fine
			j.attempts++
			h.log.Warn("schema registry unavailable; the input waits", zap.Error(err), zap.Int("attempt", j.attempts))
			return step{retryAfter: h.registryRetry.Step(j.attempts)}
		}
		return h.dead(j, se, schemas.Profile{})
	}
	if se := validate(msg, profile); se != nil {
		return h.dead(j, se, profile)
	}
	st, held := j.w.table.Get(j.key)
	if j.run == nil && held && (msg.Offset <= st.Offset || (profile.Version > 0 && st.Version > profile.Version)) {
		return step{outcome: outSuperseded, tenant: profile.TenantID}
	}
	if j.run != nil && held && st.Offset > msg.Offset {
		// Live traffic brought a newer version since the Run was asked for.
		return step{outcome: outSuperseded, tenant: profile.TenantID}
	}
	permit, denial := h.control.Gate(profile.TenantID)
	if denial != nil {
		return h.denied(j, profile, denial, st, held)
	}
	m, skip, err := mapProfile(profile, permit.Mapping)
	if err != nil {
		var se *stageError
		errors.As(err, &se)
		return h.dead(j, se, profile)
	}
	if skip != "" {
		return h.skipped(j, profile, m.fingerprint, skip, st, held)
	}
	if held && !st.Failed && st.Fingerprint == fingerprintBits(m.fingerprint) &&
		(st.Outcome == table.OutcomeEnriched || st.Outcome == table.OutcomeNotMatched) && h.stands(j, st, permit.Mapping) {
		next := st
		next.Offset, next.Version = msg.Offset, profile.Version
		if j.run != nil {
			j.run.inherited(msg.Offset, st.AnsweredAt)
		}
		return step{outcome: outUnchanged, tenant: profile.TenantID, state: &next}
	}
	// The attributes are mapped: the call does not keep them (a map per
	// record in flight, where tens of thousands are).
	profile.Attributes = nil
	return step{tenant: profile.TenantID, call: &callPlan{permit: permit, profile: profile, mapped: m,
		req: leadspace.Request{ExternalID: enrichmentID(profile.TenantID, profile.ProfileID), Company: m.input}}}
}

// stands says whether a key's answer for an unchanged input still holds:
// fresh under the tenant's refresh interval, and, in a forced Run, made
// after the Run was asked for.
func (h *handler) stands(j *job, st table.Entry, m schemas.Mapping) bool {
	at := time.UnixMilli(st.AnsweredAt)
	if j.run != nil && j.run.force {
		return !at.Before(j.run.requestedAt)
	}
	return m.RefreshInterval <= 0 || h.now().Sub(at) < m.RefreshInterval
}

// answered is the second stage: Leadspace's outcome becomes the output.
func (h *handler) answered(j *job, plan *callPlan, o leadspace.Outcome) step {
	p := plan.profile
	if o.Err == nil {
		if _, denial := h.control.Gate(p.TenantID); denial != nil {
			// Consent went, or the tenant was removed or paused, while the
			// call was out: publish nothing the tenant no longer allows.
			st, held := j.w.table.Get(j.key)
			return h.denied(j, p, denial, st, held)
		}
		e := schemas.Enriched{Sent: sentOf(plan.mapped.input), InputFingerprint: plan.mapped.fingerprint, Confidence: o.Confidence,
			EnrichmentID: plan.req.ExternalID}
		outcome, code := outEnriched, table.OutcomeEnriched
		if !o.Matched || belowConfidence(o.Confidence, plan.permit.Mapping.MinConfidence) {
			e.Status, outcome, code = schemas.StatusNotMatched, outNotMatched, table.OutcomeNotMatched
		} else {
			e.Status, e.Company = schemas.StatusEnriched, firmographics(o.Company)
		}
		return h.output(j, p, e, outcome, "", code)
	}
	se := enrichFailure(o)
	if se.class == classAuth || se.class == classCredits {
		if h.control.Pause(p.TenantID, plan.permit.Credentials, se.reason) {
			h.log.Warn("leadspace refused the tenant's program; tenant paused until a new connection event",
				zap.String("tenant", p.TenantID), zap.String("reason", se.reason), zap.Stringer("program", plan.permit.Credentials))
		}
	}
	return h.dead(j, se, p)
}

func validate(msg kafka.Message, p schemas.Profile) *stageError {
	if p.TenantID == "" || p.ProfileID == "" || p.EventID == "" {
		return &stageError{stage: schemas.StageValidate, reason: ReasonMissingIDs, class: classInput,
			err: errors.New("event_id, tenant_id and profile_id are required")}
	}
	if !utf8.ValidString(p.TenantID) || !utf8.ValidString(p.ProfileID) || !utf8.ValidString(p.EventID) {
		return &stageError{stage: schemas.StageValidate, reason: ReasonInvalidText, class: classInput,
			err: errors.New("event_id, tenant_id and profile_id must be valid UTF-8")}
	}
	if strings.Contains(p.TenantID, "/") {
		return &stageError{stage: schemas.StageValidate, reason: ReasonMalformedKey, class: classInput,
			err: errors.New("tenant_id must not contain '/'")}
	}
	if string(msg.Key) != p.TenantID+"/"+p.ProfileID {
		return &stageError{stage: schemas.StageValidate, reason: ReasonKeyMismatch, class: classInput,
			err: fmt.Errorf("key %q does not name the value's tenant/profile", truncate(strings.ToValidUTF8(string(msg.Key), "\uFFFD"), 200))}
	}
	return nil
}

// tombstone withdraws a deleted profile's enrichment.
func (h *handler) tombstone(j *job) step {
	tenant, _, ok := splitKey(j.msg.Key)
	if !ok {
		return h.dead(j, &stageError{stage: schemas.StageValidate, reason: ReasonMalformedKey, class: classInput,
			err: errors.New("a tombstone's key must be tenant/profile")}, schemas.Profile{})
	}
	st, held := j.w.table.Get(j.key)
	if held && j.msg.Offset <= st.Offset {
		return step{outcome: outSuperseded, tenant: tenant}
	}
	if !held && !h.control.Known(tenant) {
		return step{outcome: outIgnored, tenant: tenant, reason: controlplane.ReasonNotConnected}
	}
	rs := table.State{Offset: j.msg.Offset}
	return step{outcome: outTombstone, tenant: tenant, remove: true,
		out: []kafka.Message{{Topic: h.topics.Enriched, Partition: j.msg.Partition, Key: j.msg.Key, Value: nil,
			Headers: []kafka.Header{{Key: table.HeaderState, Value: rs.Encode()}}}}}
}

// denied handles a tenant whose data may not leave: connected tenants get a
// SKIPPED event saying why; tenants never connected or removed get none;
// paused tenants' inputs wait in the DLQ for a replay.
func (h *handler) denied(j *job, p schemas.Profile, d *controlplane.Denial, st table.Entry, held bool) step {
	switch {
	case d.Reason == controlplane.ReasonRemoved:
		return step{outcome: outSkipped, tenant: p.TenantID, reason: d.Reason}
	case !d.Connected:
		return step{outcome: outIgnored, tenant: p.TenantID, reason: d.Reason}
	case d.Reason == controlplane.ReasonPaused:
		se := &stageError{stage: schemas.StageEnrich, reason: controlplane.ReasonPaused, class: classAuth, replayable: true,
			err: fmt.Errorf("tenant paused: %s", d.Detail)}
		return h.dead(j, se, p)
	}
	// Without a permit the mapping is not applied: the skip's fingerprint is
	// empty, so a tenant without consent gets one SKIPPED event per profile.
	return h.skipped(j, p, "", d.Reason, st, held)
}

// skipped publishes a SKIPPED event, unless the key's standing output is
// the same skip of the same input: then nothing new is published.
func (h *handler) skipped(j *job, p schemas.Profile, fp, reason string, st table.Entry, held bool) step {
	bits := fingerprintBits(fp)
	if held && !st.Failed && st.Outcome == table.OutcomeSkipped && st.Reason == h.names.ID(reason) && st.Fingerprint == bits {
		next := st
		next.Offset, next.Version = j.msg.Offset, p.Version
		return step{outcome: outUnchanged, tenant: p.TenantID, reason: reason, state: &next}
	}
	return h.output(j, p, schemas.Enriched{Status: schemas.StatusSkipped, SkipReason: reason, InputFingerprint: fp},
		outSkipped, reason, table.OutcomeSkipped)
}

// output encodes one EnrichedCompany event for the input, on the input's
// partition number of enriched-company (the topics are co-partitioned).
func (h *handler) output(j *job, p schemas.Profile, e schemas.Enriched, outcome, reason string, code uint8) step {
	msg := j.msg
	now := h.now().UTC().Truncate(time.Millisecond)
	e.EventID = outputEventID(p.EventID)
	if e.EnrichmentID == "" { // the call's external id, when there was one
		e.EnrichmentID = enrichmentID(p.TenantID, p.ProfileID)
	}
	e.TenantID, e.ProfileID = p.TenantID, p.ProfileID
	if e.InputFingerprint == "" {
		e.InputFingerprint = "-"
	}
	e.EnrichedAt = now
	e.Lineage = schemas.Lineage{SourceTopic: msg.Topic, SourcePartition: int32(msg.Partition), SourceOffset: msg.Offset,
		SourceEventID: p.EventID, ProfileVersion: p.Version}
	value, err := h.codec.EncodeEnriched(e)
	if err != nil {
		return h.dead(j, &stageError{stage: schemas.StageEncode, reason: "encode.failed", class: classInput, err: err}, p)
	}
	st := table.Entry{Fingerprint: fingerprintBits(e.InputFingerprint), Offset: msg.Offset, Version: p.Version,
		AnsweredAt: now.UnixMilli(), Tenant: h.names.ID(p.TenantID), Reason: h.names.ID(reason), Outcome: code}
	rs := table.State{Outcome: code, Fingerprint: st.Fingerprint, Offset: st.Offset, Version: st.Version,
		AnsweredAt: st.AnsweredAt, Reason: reason}
	return step{outcome: outcome, reason: reason, tenant: p.TenantID, state: &st,
		out: []kafka.Message{{Topic: h.topics.Enriched, Partition: msg.Partition, Key: msg.Key, Value: value,
			Headers: []kafka.Header{{Key: table.HeaderState, Value: rs.Encode()}}}}}
}

// dead turns a failure into a dead letter; a key with a valid profile keeps
// its standing answer but is marked failed until a later input succeeds.
func (h *handler) dead(j *job, se *stageError, p schemas.Profile) step {
	tenant, profile := p.TenantID, p.ProfileID
	if tenant == "" {
		tenant, profile, _ = splitKey(j.msg.Key)
	}
	// Every string we publish is valid UTF-8: an id that is not stays out.
	valid := utf8.ValidString(tenant) && utf8.ValidString(profile) && !strings.Contains(tenant, "/")
	if !utf8.ValidString(tenant) || strings.Contains(tenant, "/") {
		tenant = ""
	}
	if !utf8.ValidString(profile) {
		profile = ""
	}
	out, err := h.deadLetter(j.msg, se, tenant, profile)
	if err != nil {
		// The contract's own encoder failed: nothing can be published for
		// this input; it stays unfinished and the instance reports why.
		h.log.Error("dead letter not encodable", zap.Error(err))
		return step{outcome: outDead, reason: se.reason, tenant: tenant, retryAfter: time.Minute}
	}
	h.log.Info("dead letter", zap.String("tenant", tenant), zap.String("profile", profile), zap.String("topic", j.msg.Topic),
		zap.Int("partition", j.msg.Partition), zap.Int64("offset", j.msg.Offset), zap.String("stage", se.stage),
		zap.String("reason", se.reason), zap.String("class", se.class))
	s := step{outcome: outDead, reason: se.reason, tenant: tenant, out: []kafka.Message{out}}
	if valid && tenant != "" && p.TenantID != "" {
		st, held := j.w.table.Get(j.key)
		if !held {
			st = table.Entry{Tenant: h.names.ID(tenant)}
		}
		st.Offset, st.Version, st.Failed = j.msg.Offset, p.Version, true
		s.state = &st
	}
	return s
}

var confidenceRank = map[string]int{"VERY LOW": 1, "LOW": 2, "MEDIUM": 3, "HIGH": 4}

// belowConfidence compares Leadspace's bucket with the tenant's minimum.
// Unknown (customised) bucket names never reject a match.
func belowConfidence(level, minimum string) bool {
	want, ok := confidenceRank[strings.ToUpper(minimum)]
	if !ok {
		return false
	}
	got, ok := confidenceRank[strings.ToUpper(level)]
	return ok && got < want
}

// firmographics copies Leadspace's company into the contract, keeping only
// valid UTF-8 (a malformed answer must not make our output undecodable).
// The company, its address and its numbers are one allocation, and the
// technologies are shared unless one needs mending: this runs once per
// answered record.
func firmographics(c leadspace.Company) *schemas.Firmographics {
	v := func(s string) string {
		if utf8.ValidString(s) { // fast for ASCII; ToValidUTF8 walks rune by rune
			return s
		}
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	box := &struct {
		f                   schemas.Firmographics
		address             schemas.Address
		employees, revenues int64
	}{}
	f := &box.f
	*f = schemas.Firmographics{
		LeadspaceID: v(c.ID), Name: v(c.Name), Website: v(c.Website), Description: v(c.Description),
		Industry: v(c.Industry), SubIndustry: v(c.SubIndustry), SIC: v(c.SIC), SICDesc: v(c.SICDescription),
		NAICS: v(c.NAICS), NAICSDesc: v(c.NAICSDescription), EmployeesRange: v(c.EmployeesRange), RevenueRange: v(c.RevenueRange),
		Phone: v(c.Phone), LinkedInURL: v(c.LinkedInURL), Ownership: v(c.Ownership), Technologies: c.Technologies,
	}
	if slices.ContainsFunc(c.Technologies, func(t string) bool { return !utf8.ValidString(t) }) {
		f.Technologies = make([]string, len(c.Technologies))
		for i, t := range c.Technologies {
			f.Technologies[i] = v(t)
		}
	}
	if c.Employees > 0 {
		box.employees = c.Employees
		f.Employees = &box.employees
	}
	if c.Revenue > 0 {
		box.revenues = c.Revenue
		f.RevenueUSD = &box.revenues
	}
	if a := c.Address; a != (leadspace.Address{}) {
		box.address = schemas.Address{Street: v(a.Street), City: v(a.City), State: v(a.State), PostalCode: v(a.PostalCode), Country: v(a.Country)}
		f.Address = &box.address
	}
	if len(f.Technologies) == 0 {
		f.Technologies = nil
	}
	return f
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
