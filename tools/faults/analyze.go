package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// tenantRule is what a tenant's final state must be.
type tenantRule struct {
	program string // the program its token belongs to ("program-1")
	consent bool   // false: nothing may leave; every output SKIPPED
	// anyStatus: consent was withdrawn mid-run, so a key may end ENRICHED,
	// NOT_MATCHED or SKIPPED; it must still reflect its latest version.
	anyStatus bool
}

// outputEventID is the documented derivation of an output's event_id from
// its input's event id (processor/ids.go): a name-based UUID over SHA-256 of
// "enriched-company", NUL, the input event id, NUL. It is the contract that
// lets consumers drop duplicates, so the suite checks it independently.
func outputEventID(inputEventID string) string {
	h := sha256.New()
	for _, p := range []string{"enriched-company", inputEventID} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	s := hex.EncodeToString(b)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// inRec is one input as read back from the profiles topic.
type inRec struct {
	*input
	partition int
	offset    int64
	at        time.Time
}

// results is every figure of one scenario. Definitions are on the fields.
type results struct {
	Inputs int `json:"inputs"` // distinct input events on the profiles topic
	// InputCopies: extra copies of an input the harness wrote while retrying
	// through a broker outage (same event id twice on the topic).
	InputCopies int `json:"input_copies"`
	Keys        int `json:"keys"`
	Outputs     int `json:"outputs"` // enriched-company records (not tombstones)

	// Lost counts input events that were lost (the union of the two below).
	Lost int `json:"lost"`
	// LostFinal: keys whose final record on enriched-company (the highest
	// offset of the key's partition: what a compacted read ends with) does
	// not reflect the key's latest input version: for a tenant with consent,
	// ENRICHED or NOT_MATCHED (SKIPPED map.missing_company_name when the
	// name is blank) with lineage.profile_version = the latest version; for
	// a tenant without consent, SKIPPED (any version: see SkipsStanding).
	// Keys whose latest input went to the DLQ are excluded (they are dead
	// letters, not lost).
	LostFinal int `json:"lost_final_state"`
	// LostEvents: input events not on the DLQ with neither an output whose
	// event_id is derived from theirs nor an output of a newer version of
	// their key (for a tenant without consent: nor a final SKIPPED record
	// of their key, which answers every version).
	LostEvents int `json:"lost_events"`
	// SkipsStanding: keys of tenants without consent whose final SKIPPED
	// record names an older version than the latest input (the service
	// kept its standing skip instead of publishing the same skip again).
	// Not a loss; shown so the behaviour is visible.
	SkipsStanding int      `json:"skips_standing"`
	LostExamples  []string `json:"lost_examples,omitempty"`
	// LostCommitted: of the lost input events, those below their
	// partition's committed offset at the end: the group will never
	// deliver them again (a real loss). The rest were not committed yet
	// (a stall: an instance that comes back would process them).
	LostCommitted int `json:"lost_committed"`

	// DeadLetters: DLQ records of this run's inputs, by reason code.
	DeadLetters       int            `json:"dead_letters"`
	DeadLetterReasons map[string]int `json:"dead_letter_reasons,omitempty"`
	DeadLatest        int            `json:"dead_latest_version"` // keys whose latest input is on the DLQ

	// Duplicates: output records beyond one per distinct output event_id
	// (and beyond one more per extra copy of its input, see InputCopies).
	Duplicates int `json:"duplicates"`
	// IDMismatch: outputs whose event_id is not the one derived from
	// lineage.source_event_id (the deterministic-id contract).
	IDMismatch int `json:"event_id_mismatches"`
	// Backwards: keys that, on their enriched-company partition in offset
	// order, have a record whose lineage.profile_version is lower than an
	// earlier record's; BackwardsRecords counts such records.
	Backwards        int `json:"keys_backwards"`
	BackwardsRecords int `json:"records_backwards"`

	// Needed: distinct input versions that required a Leadspace call (a
	// tenant with consent, a non-blank company name). For a tenant whose
	// consent was withdrawn mid-run: the versions sent at least once.
	Needed int `json:"needed"`
	// Received: records the simulator took (single calls that reached
	// enrichment, records of bulk submits answered 202), all programs.
	Received int `json:"received"`
	// Wasted: records received beyond one per input version, plus records
	// no input version of this run explains. Its ratio is Wasted / Needed.
	Wasted      int     `json:"wasted"`
	WastedRatio float64 `json:"wasted_ratio"`
	// ResentPublished: received records whose input version already had
	// its output on enriched-company when the call arrived.
	ResentPublished int `json:"resent_after_published"`
	// NeededNotSent: needed input versions the simulator never received.
	NeededNotSent int `json:"needed_not_received"`
	// Leaked: records of a tenant without consent that reached Leadspace.
	Leaked int `json:"leaked_without_consent"`

	// Calls per program as the simulator logged them.
	Programs map[string]*programCalls `json:"programs"`
	// GateInjected: calls the fault gate answered itself (the outage), per program.
	GateInjected map[string]int `json:"gate_injected,omitempty"`

	// Throughput: distinct outputs per tenant in consecutive buckets of
	// BucketS seconds from the start of writing (by output record time).
	BucketS    int              `json:"bucket_s"`
	Throughput map[string][]int `json:"throughput"`

	Progress    progress `json:"progress"`
	Generations []int    `json:"generations"`
	// CommitsRefused: "commit not accepted" lines in the instances' logs.
	CommitsRefused int      `json:"commits_refused"`
	InstanceExits  []string `json:"instance_exits"`
	Kills          int      `json:"kills"`

	// Scenario-specific figures (outage, shared token, bulk withdrawal).
	Extra map[string]any `json:"extra,omitempty"`
}

// programCalls sums one program's calls.
type programCalls struct {
	Calls        int     `json:"calls"`
	Singles      int     `json:"singles"`
	Submits      int     `json:"bulk_submits"`
	Polls        int     `json:"polls"`
	Received     int     `json:"records_received"`
	Status429    int     `json:"status_429"`
	Status5xx    int     `json:"status_5xx"`
	MaxPerSecond int     `json:"max_calls_in_a_second"`
	PerBulk      float64 `json:"records_per_bulk"`
	PollsPerBulk float64 `json:"polls_per_bulk"`
}

// analysisInput is everything collected after a run.
type analysisInput struct {
	w        *workload
	rules    map[string]tenantRule
	inputs   []record
	outputs  []record
	dlq      []record
	calls    []simCall
	t0       time.Time // start of writing
	bucket   time.Duration
	codec    *schemas.Codec
	gate     map[string]int
	progress progress
	// committed: the group's committed offset per input partition at the end.
	committed map[int]int64
}

func analyze(ctx context.Context, a analysisInput) (*results, error) {
	r := &results{DeadLetterReasons: map[string]int{}, Programs: map[string]*programCalls{}, Throughput: map[string][]int{},
		GateInjected: a.gate, BucketS: int(a.bucket / time.Second), Progress: a.progress, Extra: map[string]any{}}
	byEvent := map[string]*input{}
	for _, in := range a.w.inputs {
		byEvent[in.eventID] = in
	}
	// Inputs as written.
	ins := map[string]*inRec{}
	// copies: extra copies of an input on the topic (the harness's writes
	// are at-least-once too); each may fairly cause one more output and one
	// more call, so duplicates and waste leave them out.
	copies := map[string]int{}
	byPos := map[[2]int64]*inRec{}
	latest := map[string]*inRec{}
	for _, rec := range a.inputs {
		p, err := a.codec.DecodeProfile(ctx, rec.value)
		if err != nil {
			continue
		}
		in := byEvent[p.EventID]
		if in == nil {
			continue
		}
		if ins[p.EventID] != nil {
			r.InputCopies++
			copies[p.EventID]++
			byPos[[2]int64{int64(rec.partition), rec.offset}] = ins[p.EventID]
			continue
		}
		ir := &inRec{input: in, partition: rec.partition, offset: rec.offset, at: rec.at}
		ins[p.EventID] = ir
		byPos[[2]int64{int64(rec.partition), rec.offset}] = ir
		if l := latest[in.key]; l == nil || in.version > l.version {
			latest[in.key] = ir
		}
	}
	r.Inputs, r.Keys = len(ins), len(latest)

	// Dead letters.
	dead := map[string]bool{} // input event ids on the DLQ
	for _, rec := range a.dlq {
		d, err := a.codec.DecodeDead(ctx, rec.value)
		if err != nil || d.SourceTopic != topicProfiles {
			continue
		}
		ir := byPos[[2]int64{int64(d.SourcePartition), d.SourceOffset}]
		if ir == nil {
			continue
		}
		r.DeadLetters++
		r.DeadLetterReasons[d.Reason]++
		dead[ir.eventID] = true
	}

	// Outputs, in offset order per partition.
	type finalRec struct {
		e      schemas.Enriched
		offset int64
	}
	final := map[string]finalRec{}
	maxVer := map[string]int64{}
	backKeys := map[string]bool{}
	outIDs := map[string]int{}
	firstOut := map[string]time.Time{} // output event id -> first record time
	answered := map[string]time.Time{} // key/version -> first ENRICHED or NOT_MATCHED output time
	newerOut := map[string]int64{}     // key -> highest version with an output
	for _, rec := range a.outputs {
		if rec.value == nil {
			continue
		}
		e, err := a.codec.DecodeEnriched(ctx, rec.value)
		if err != nil {
			continue
		}
		r.Outputs++
		outIDs[e.EventID]++
		if outputEventID(e.Lineage.SourceEventID) != e.EventID {
			r.IDMismatch++
		}
		if t, ok := firstOut[e.EventID]; !ok || rec.at.Before(t) {
			firstOut[e.EventID] = rec.at
			if !ok {
				b := int(rec.at.Sub(a.t0) / a.bucket)
				if b < 0 {
					b = 0
				}
				tp := r.Throughput[e.TenantID]
				for len(tp) <= b {
					tp = append(tp, 0)
				}
				tp[b]++
				r.Throughput[e.TenantID] = tp
			}
		}
		v := e.Lineage.ProfileVersion
		if m, ok := maxVer[rec.key]; ok && v < m {
			backKeys[rec.key] = true
			r.BackwardsRecords++
		} else {
			maxVer[rec.key] = v
		}
		if v > newerOut[rec.key] {
			newerOut[rec.key] = v
		}
		if f, ok := final[rec.key]; !ok || rec.offset > f.offset {
			final[rec.key] = finalRec{e: e, offset: rec.offset}
		}
		if e.Status == schemas.StatusEnriched || e.Status == schemas.StatusNotMatched {
			kv := rec.key + "#" + itoa(v)
			if t, ok := answered[kv]; !ok || rec.at.Before(t) {
				answered[kv] = rec.at
			}
		}
	}
	r.Backwards = len(backKeys)
	allowed := map[string]int{}
	for id, n := range copies {
		allowed[outputEventID(id)] = n
	}
	for id, n := range outIDs {
		r.Duplicates += max(0, n-1-allowed[id])
	}

	// Lost.
	lost := map[string]bool{}
	for key, l := range latest {
		if dead[l.eventID] {
			r.DeadLatest++
			continue
		}
		rule := a.rules[l.tenant]
		f, ok := final[key]
		good := ok && f.e.Lineage.ProfileVersion == l.version
		if !rule.consent && ok && f.e.Status == schemas.StatusSkipped {
			// Without consent the answer is "SKIPPED" whatever the version:
			// the service may keep its standing skip for a newer version
			// (unchanged skips publish nothing new, issue 10 §4).
			if f.e.Lineage.ProfileVersion != l.version {
				r.SkipsStanding++
			}
			good = true
		}
		if good && !rule.anyStatus {
			switch {
			case !rule.consent:
				good = f.e.Status == schemas.StatusSkipped
			case l.name == "":
				good = f.e.Status == schemas.StatusSkipped
			default:
				good = f.e.Status == schemas.StatusEnriched || f.e.Status == schemas.StatusNotMatched
			}
		}
		if !good {
			r.LostFinal++
			lost[l.eventID] = true
			if len(r.LostExamples) < 5 {
				why := "no output"
				if ok {
					why = fmt.Sprintf("final record v%d %s %s at %s[%d]@%d", f.e.Lineage.ProfileVersion, f.e.Status, f.e.SkipReason, topicEnriched, l.partition, f.offset)
				}
				r.LostExamples = append(r.LostExamples, fmt.Sprintf("%s latest v%d: %s", key, l.version, why))
			}
		}
	}
	for id, ir := range ins {
		if dead[id] || outIDs[outputEventID(id)] > 0 || newerOut[ir.key] > ir.version {
			continue
		}
		if f, ok := final[ir.key]; ok && !a.rules[ir.tenant].consent && f.e.Status == schemas.StatusSkipped {
			continue // answered by the key's standing SKIPPED (no consent)
		}
		r.LostEvents++
		lost[id] = true
	}
	r.Lost = len(lost)
	for id := range lost {
		if ir := ins[id]; ir != nil && a.committed != nil && ir.offset < a.committed[ir.partition] {
			r.LostCommitted++
		}
	}
	for id := range lost {
		if len(r.LostExamples) >= 5 {
			break
		}
		if ir := ins[id]; ir != nil && latest[ir.key] != ir {
			r.LostExamples = append(r.LostExamples, fmt.Sprintf("%s v%d: no output and no newer version's output", ir.key, ir.version))
		}
	}

	// Leadspace calls.
	perVersion := map[*input]int{}
	perSecond := map[string]map[int64]int{}
	for _, c := range a.calls {
		if c.Program == "" {
			continue
		}
		pc := r.Programs[c.Program]
		if pc == nil {
			pc = &programCalls{}
			r.Programs[c.Program] = pc
			perSecond[c.Program] = map[int64]int{}
		}
		pc.Calls++
		perSecond[c.Program][c.Time.Unix()]++
		switch {
		case c.isSingle():
			pc.Singles++
		case c.isSubmit():
			pc.Submits++
		case c.isPoll():
			pc.Polls++
		}
		if c.Status == 429 {
			pc.Status429++
		}
		if c.Status >= 500 {
			pc.Status5xx++
		}
		n := c.received()
		pc.Received += n
		r.Received += n
		if n == 0 {
			continue
		}
		for _, rec := range c.Records {
			in := a.w.byName[strings.TrimSpace(rec.Company.Name)]
			if in == nil {
				r.Wasted++ // nothing of this run asked for it
				continue
			}
			if rule := a.rules[in.tenant]; !rule.consent {
				r.Leaked++
			}
			perVersion[in]++
			if t, ok := answered[in.key+"#"+itoa(in.version)]; ok && t.Before(c.Time) {
				r.ResentPublished++
			}
		}
	}
	for prog, pc := range r.Programs {
		for _, n := range perSecond[prog] {
			pc.MaxPerSecond = max(pc.MaxPerSecond, n)
		}
		if pc.Submits > 0 {
			pc.PerBulk = float64(pc.Received-pc.Singles) / float64(pc.Submits)
			pc.PollsPerBulk = float64(pc.Polls) / float64(pc.Submits)
		}
	}
	seen := map[*input]bool{}
	for _, ir := range ins {
		in := ir.input
		if seen[in] {
			continue
		}
		seen[in] = true
		rule := a.rules[in.tenant]
		switch {
		case !rule.consent || in.name == "":
		case rule.anyStatus:
			if perVersion[in] > 0 {
				r.Needed++
			}
		default:
			r.Needed++
			if perVersion[in] == 0 && !dead[in.eventID] {
				r.NeededNotSent++
			}
		}
		if extra := perVersion[in] - 1 - copies[in.eventID]; extra > 0 {
			r.Wasted += extra
		}
	}
	if r.Needed > 0 {
		r.WastedRatio = float64(r.Wasted) / float64(r.Needed)
	}
	return r, nil
}

func itoa(v int64) string {
	const digits = "0123456789"
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b []byte
	for v > 0 {
		b = append([]byte{digits[v%10]}, b...)
		v /= 10
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
