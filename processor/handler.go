package processor

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Enricher asks Leadspace about one company under a program's credentials.
// *leadspace.Client satisfies it through LeadspaceEnricher.
type Enricher interface {
	Enrich(ctx context.Context, creds leadspace.Credentials, req leadspace.Request) (leadspace.Result, error)
}

// LeadspaceEnricher routes each call to the program (rate limiter, breaker,
// batcher) of its credentials.
type LeadspaceEnricher struct{ Client *leadspace.Client }

// Enrich implements Enricher.
func (e LeadspaceEnricher) Enrich(ctx context.Context, creds leadspace.Credentials, req leadspace.Request) (leadspace.Result, error) {
	return e.Client.Program(creds).Enrich(ctx, req)
}

// Outcomes of one input, as counted in metrics and status.
const (
	outEnriched   = "enriched"
	outNotMatched = "not_matched"
	outSkipped    = "skipped"
	outDead       = "dead_letter"
	outTombstone  = "tombstone"
	outUnchanged  = "unchanged"
	outIgnored    = "ignored"
)

// result is what one input turns into: the messages to publish (all or
// nothing before the offset is done) and what to count.
type result struct {
	messages []kafka.Message
	outcome  string
	// countAs is the status bucket when it differs from outcome: an
	// unchanged profile counts as what its standing answer was.
	countAs string
	reason  string
	tenant  string
	records int // records sent to Leadspace
}

// handler turns one input record into its outputs. It holds no per-record
// state; side effects are its return value, so it is easy to test.
type handler struct {
	codec    *schemas.Codec
	control  *ControlTable
	enricher Enricher
	dedupe   *dedupe
	topics   Topics
	log      *zap.Logger
	now      func() time.Time
	// backoff between calls while the breaker is open or the registry is down.
	backoff time.Duration
}

// handle processes one input. It returns an error only when ctx ended first:
// the input then stays unfinished and is not committed.
func (h *handler) handle(ctx context.Context, msg kafka.Message) (result, error) {
	if msg.Value == nil {
		return h.tombstone(msg)
	}
	var profile schemas.Profile
	for attempt := 1; ; attempt++ {
		var err error
		profile, err = h.codec.DecodeProfile(ctx, msg.Value)
		if err == nil {
			break
		}
		se := decodeFailure(err)
		if !se.replayable { // a bad value never gets better: dead letter, move on
			return h.dead(msg, se, "", "")
		}
		h.log.Warn("schema registry unavailable, retrying", zap.Error(err), zap.Int("attempt", attempt))
		if err := h.sleep(ctx, attempt); err != nil {
			return result{}, err
		}
	}
	if se := validate(msg, profile); se != nil {
		return h.dead(msg, se, profile.TenantID, profile.ProfileID)
	}
	return h.enrich(ctx, msg, profile)
}

func validate(msg kafka.Message, p schemas.Profile) *stageError {
	if p.TenantID == "" || p.ProfileID == "" || p.EventID == "" {
		return &stageError{stage: schemas.StageValidate, reason: ReasonMissingIDs, class: classInput,
			err: errors.New("event_id, tenant_id and profile_id are required")}
	}
	if string(msg.Key) != p.TenantID+"/"+p.ProfileID {
		return &stageError{stage: schemas.StageValidate, reason: ReasonKeyMismatch, class: classInput,
			err: fmt.Errorf("key %q does not name the value's tenant/profile", truncate(string(msg.Key), 200))}
	}
	return nil
}

// tombstone withdraws a deleted profile's enrichment.
func (h *handler) tombstone(msg kafka.Message) (result, error) {
	tenant, _, ok := splitKey(msg.Key)
	if !ok {
		return h.dead(msg, &stageError{stage: schemas.StageValidate, reason: ReasonMalformedKey, class: classInput,
			err: errors.New("a tombstone's key must be tenant/profile")}, "", "")
	}
	if !h.control.Known(tenant) {
		return result{outcome: outIgnored, tenant: tenant, reason: ReasonNotConnected}, nil
	}
	h.dedupe.forget(string(msg.Key))
	return result{outcome: outTombstone, tenant: tenant,
		messages: []kafka.Message{{Topic: h.topics.Enriched, Key: msg.Key, Value: nil}}}, nil
}

func (h *handler) enrich(ctx context.Context, msg kafka.Message, p schemas.Profile) (result, error) {
	permit, denial := h.control.Gate(p.TenantID)
	if denial != nil {
		return h.denied(msg, p, denial)
	}
	m, skip, err := mapProfile(p, permit.Mapping)
	if err != nil {
		var se *stageError
		errors.As(err, &se)
		return h.dead(msg, se, p.TenantID, p.ProfileID)
	}
	if skip != "" {
		return h.output(msg, p, schemas.Enriched{Status: schemas.StatusSkipped, SkipReason: skip}, outSkipped, skip)
	}
	key := string(msg.Key)
	if prior := h.dedupe.fresh(key, m.fingerprint, permit.Mapping.RefreshInterval, h.now()); prior != "" {
		return result{outcome: outUnchanged, countAs: prior, tenant: p.TenantID}, nil
	}

	req := leadspace.Request{ExternalID: enrichmentID(p.TenantID, p.ProfileID), Company: m.input}
	var first time.Time
	for attempt := 1; ; attempt++ {
		res, err := h.call(ctx, permit, req)
		if err == nil {
			r, err := h.answered(msg, p, m, res)
			if err == nil && (r.outcome == outEnriched || r.outcome == outNotMatched) {
				h.dedupe.remember(key, m.fingerprint, r.outcome, h.now())
			}
			return r, err
		}
		if ctx.Err() != nil {
			return result{}, ctx.Err()
		}
		if permit.Ctx.Err() != nil { // consent withdrawn or program paused mid-call
			next, denial := h.control.Gate(p.TenantID)
			if denial != nil {
				return h.denied(msg, p, denial)
			}
			permit = next
			continue
		}
		if first.IsZero() {
			first = h.now()
		}
		if errors.Is(err, leadspace.ErrBreakerOpen) {
			// Leadspace is down for this program: wait, do not flood the DLQ.
			if err := h.sleep(ctx, attempt); err != nil {
				return result{}, err
			}
			continue
		}
		se := enrichFailure(err)
		se.attempts, se.firstFailure = attempt, first
		if se.class == classAuth || se.class == classCredits {
			if h.control.Pause(p.TenantID, permit.Credentials, se.reason) {
				h.log.Warn("leadspace refused the tenant's program; tenant paused until a new connection event",
					zap.String("tenant", p.TenantID), zap.String("reason", se.reason), zap.Stringer("program", permit.Credentials))
			}
		}
		r, derr := h.dead(msg, se, p.TenantID, p.ProfileID)
		r.records = 1
		return r, derr
	}
}

// call runs one Leadspace call under both the job's and the tenant's grant.
func (h *handler) call(ctx context.Context, permit Permit, req leadspace.Request) (leadspace.Result, error) {
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(permit.Ctx, cancel)
	defer stop()
	return h.enricher.Enrich(callCtx, permit.Credentials, req)
}

// denied handles a tenant whose data may not leave: connected tenants get a
// SKIPPED event saying why; tenants never connected (or removed) get none.
func (h *handler) denied(msg kafka.Message, p schemas.Profile, d *Denial) (result, error) {
	switch {
	case d.Reason == ReasonRemoved:
		// Nothing is published for a removed tenant, but its pending events
		// are counted as skipped.
		return result{outcome: outSkipped, tenant: p.TenantID, reason: d.Reason}, nil
	case !d.Connected:
		return result{outcome: outIgnored, tenant: p.TenantID, reason: d.Reason}, nil
	}
	if d.Reason == ReasonPaused {
		// Paused by Leadspace (401/427) or an unresolvable token: replayable once fixed.
		se := &stageError{stage: schemas.StageEnrich, reason: ReasonPaused, class: classAuth, replayable: true, attempts: 0,
			err: fmt.Errorf("tenant paused: %s", d.Detail)}
		return h.dead(msg, se, p.TenantID, p.ProfileID)
	}
	return h.output(msg, p, schemas.Enriched{Status: schemas.StatusSkipped, SkipReason: d.Reason}, outSkipped, d.Reason)
}

// answered turns a Leadspace result into an ENRICHED or NOT_MATCHED event.
func (h *handler) answered(msg kafka.Message, p schemas.Profile, m mapped, res leadspace.Result) (result, error) {
	permit, _ := h.control.Gate(p.TenantID)
	e := schemas.Enriched{Sent: sentOf(m.input), InputFingerprint: m.fingerprint, Confidence: res.Confidence}
	outcome := outEnriched
	if !res.Matched || belowConfidence(res.Confidence, permit.Mapping.MinConfidence) {
		e.Status, outcome = schemas.StatusNotMatched, outNotMatched
	} else {
		e.Status, e.Company = schemas.StatusEnriched, firmographics(res.Company)
	}
	r, err := h.output(msg, p, e, outcome, "")
	r.records = 1
	return r, err
}

// output encodes one EnrichedCompany event for the input.
func (h *handler) output(msg kafka.Message, p schemas.Profile, e schemas.Enriched, outcome, reason string) (result, error) {
	e.EventID = outputEventID(p.EventID)
	e.EnrichmentID = enrichmentID(p.TenantID, p.ProfileID)
	e.TenantID, e.ProfileID = p.TenantID, p.ProfileID
	if e.InputFingerprint == "" {
		e.InputFingerprint = "-"
	}
	e.EnrichedAt = h.now()
	e.Lineage = schemas.Lineage{SourceTopic: msg.Topic, SourcePartition: int32(msg.Partition), SourceOffset: msg.Offset,
		SourceEventID: p.EventID, ProfileVersion: p.Version}
	value, err := h.codec.Encode(schemas.EnrichedCompany, e.Native())
	if err != nil {
		return h.dead(msg, &stageError{stage: schemas.StageEncode, reason: "encode.failed", class: classInput, err: err}, p.TenantID, p.ProfileID)
	}
	return result{outcome: outcome, reason: reason, tenant: p.TenantID,
		messages: []kafka.Message{{Topic: h.topics.Enriched, Key: msg.Key, Value: value}}}, nil
}

func (h *handler) dead(msg kafka.Message, se *stageError, tenant, profile string) (result, error) {
	out, err := h.deadLetter(msg, se, tenant, profile)
	if err != nil {
		return result{}, fmt.Errorf("encode dead letter: %w", err)
	}
	if tenant == "" {
		tenant, _, _ = splitKey(msg.Key)
	}
	h.log.Info("dead letter", zap.String("tenant", tenant), zap.String("profile", profile), zap.String("topic", msg.Topic),
		zap.Int("partition", msg.Partition), zap.Int64("offset", msg.Offset), zap.String("stage", se.stage),
		zap.String("reason", se.reason), zap.String("class", se.class))
	return result{outcome: outDead, reason: se.reason, tenant: tenant, messages: []kafka.Message{out}}, nil
}

// sleep waits a capped, jittered backoff.
func (h *handler) sleep(ctx context.Context, attempt int) error {
	d := h.backoff << min(attempt-1, 5)
	d = d/2 + rand.N(d/2+1)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
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

func firmographics(c leadspace.Company) *schemas.Firmographics {
	f := &schemas.Firmographics{
		LeadspaceID: c.ID, Name: c.Name, Website: c.Website, Description: c.Description,
		Industry: c.Industry, SubIndustry: c.SubIndustry, SIC: c.SIC, SICDesc: c.SICDescription,
		NAICS: c.NAICS, NAICSDesc: c.NAICSDescription, EmployeesRange: c.EmployeesRange, RevenueRange: c.RevenueRange,
		Phone: c.Phone, LinkedInURL: c.LinkedInURL, Ownership: c.Ownership, Technologies: c.Technologies,
	}
	if c.Employees > 0 {
		v := c.Employees
		f.Employees = &v
	}
	if c.Revenue > 0 {
		v := c.Revenue
		f.RevenueUSD = &v
	}
	if a := c.Address; a != (leadspace.Address{}) {
		f.Address = &schemas.Address{Street: a.Street, City: a.City, State: a.State, PostalCode: a.PostalCode, Country: a.Country}
	}
	return f
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
