package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// tokenPolicyFlags are where the service may look for tokens: env names
// with a prefix, files in one directory. `enricher run` binds them (the
// service resolves references), and so does `connect`, which refuses a
// reference the service would refuse. The zero value is the defaults.
type tokenPolicyFlags struct {
	envPrefix, dir string
}

// bind adds --token-env-prefix and --token-dir to s.
func (p *tokenPolicyFlags) bind(s *settings) {
	s.StringVar(&p.envPrefix, "token-env-prefix", controlplane.DefaultTokenEnvPrefix,
		"env:NAME token references are resolved only for names with this prefix (so an event cannot read HOME or the service's own settings)")
	s.StringVar(&p.dir, "token-dir", "", "file:PATH token references are resolved only inside this directory (default: none, file references are refused)")
}

var envPrefixPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]*_$`)

// apply checks the settings and sets them on sources.
func (p *tokenPolicyFlags) apply(sources *controlplane.TokenSources) error {
	if p.envPrefix == "" {
		p.envPrefix = controlplane.DefaultTokenEnvPrefix
	}
	switch {
	case !envPrefixPattern.MatchString(p.envPrefix):
		return fmt.Errorf("token-env-prefix: %q must be upper case letters, digits and '_', ending in '_' (e.g. %s)", p.envPrefix, controlplane.DefaultTokenEnvPrefix)
	case strings.HasPrefix("ENRICHER_", p.envPrefix) || strings.HasPrefix(p.envPrefix, "ENRICHER_"):
		return fmt.Errorf("token-env-prefix: %q would let a control event read the service's own ENRICHER_ settings", p.envPrefix)
	}
	sources.EnvPrefix = p.envPrefix
	if p.dir == "" {
		return nil
	}
	dir, err := filepath.Abs(p.dir)
	if err != nil {
		return fmt.Errorf("token-dir: %w", err)
	}
	if dir == string(filepath.Separator) {
		return errors.New("token-dir: the root directory would let a control event read any file")
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("token-dir: %s is not a directory", p.dir)
	}
	sources.FileDir = dir
	return nil
}

// controlEventRow is one control record as `control show` lists it.
type controlEventRow struct {
	Key       string    `json:"key"`
	Partition int       `json:"partition"`
	Offset    int64     `json:"offset"`
	Sequence  int64     `json:"sequence,omitempty"`
	EventID   string    `json:"event_id,omitempty"`
	IssuedAt  time.Time `json:"issued_at,omitzero"`
	IssuedBy  string    `json:"issued_by,omitempty"`
	KeyID     string    `json:"key_id,omitempty"`
	Summary   string    `json:"summary,omitempty"`
	// Signature is verified, unverified (no key here to check it) or the
	// reason the service refuses the record.
	Signature string `json:"signature"`
	Detail    string `json:"detail,omitempty"`
	// Signed is what the signature covers: bytes (the encoded event), or
	// "canonical text (re-issue)" for the legacy scheme. Empty: unsigned.
	Signed string `json:"signed,omitempty"`
	// Service is what the service did with it, from its control record:
	// applied, refused, superseded, not applied (yet), or unknown.
	Service string `json:"service"`
}

// controlTenantRow is one tenant as `control show` shows it: the state and
// events the service applied, never an unverified event as the state.
type controlTenantRow struct {
	Tenant string `json:"tenant"`
	// State and StateReason are the service's, from the tenant/control
	// status record: what `enricher status` shows.
	State       string `json:"state"`
	StateReason string `json:"state_reason,omitempty"`
	Reported    bool   `json:"reported"`
	// Applied holds, per kind, the event the service applied; Lost the
	// kinds it applied whose event is no longer on the topic.
	Applied         map[string]*controlEventRow `json:"applied"`
	Lost            []string                    `json:"lost,omitempty"`
	Refused         int64                       `json:"refused_control_events"`
	RefusedByReason map[string]int64            `json:"refused_by_reason,omitempty"`
}

type controlView struct {
	Tenants []*controlTenantRow `json:"tenants"`
	Records []*controlEventRow  `json:"records"`
}

// cmdControl shows the control plane: each tenant as the service applied
// it (from its status records), and the control records, each verified with
// the admin's keys when given. Tokens are never shown.
func cmdControl(args []string) error {
	if len(args) == 0 || args[0] != "show" {
		return errors.New("usage: enricher control show [--tenant T] [--all] [--json]")
	}
	s := newSettings("control show")
	var k kafkaFlags
	var keys adminKeyFlags
	var signing signingKeyFlags
	var tenant string
	var asJSON, all bool
	k.bind(s)
	keys.bind(s)
	signing.bind(s)
	s.StringVar(&tenant, "tenant", "", "only this tenant")
	s.BoolVar(&all, "all", false, "list every record on the control topic, not only the last one of each key")
	s.BoolVar(&asJSON, "json", false, "print JSON")
	if err := s.parse(args[1:]); err != nil {
		return err
	}
	auth, err := keys.auth()
	if err != nil {
		return err
	}
	if err := signing.add(&auth); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	codec, err := k.codec(ctx)
	if err != nil {
		return err
	}
	records, err := controlplane.ReadLog(ctx, k.kafka(), k.topics.Control, codec, auth)
	if err != nil {
		return err
	}
	applied, err := controlplane.ReadApplied(ctx, k.kafka(), k.topics.Status, codec)
	if err != nil {
		return err
	}
	view := buildControlView(records, applied, tenant, all)
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(view)
	}
	if !auth.Enabled() {
		fmt.Fprintln(os.Stderr, "note: no admin key given: signatures were not checked (records say unverified); states are the service's")
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TENANT\tSTATE (SERVICE)\tCONNECTION\tTOKEN REF\tMAPPING\tCONSENT\tREFUSED EVENTS")
	for _, t := range view.Tenants {
		state := t.State
		if t.StateReason != "" {
			state += " (" + t.StateReason + ")"
		}
		col := func(kind string, f func(*controlEventRow) string) string {
			if slices.Contains(t.Lost, kind) {
				return "lost (applied, no longer on the topic)"
			}
			if r := t.Applied[kind]; r != nil {
				return f(r)
			}
			return "-"
		}
		connection := col(schemas.KindConnection, func(r *controlEventRow) string { return r.Summary })
		tokenRef := "-"
		if r := t.Applied[schemas.KindConnection]; r != nil {
			tokenRef = r.Detail
		}
		mapping := col(schemas.KindMapping, func(r *controlEventRow) string { return r.Summary })
		consent := col(schemas.KindConsent, func(r *controlEventRow) string {
			return r.Summary + " by " + r.IssuedBy + " " + r.IssuedAt.Format(time.RFC3339)
		})
		refused := fmt.Sprint(t.Refused)
		if len(t.RefusedByReason) > 0 {
			refused += " (" + formatCounts(t.RefusedByReason) + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Tenant, state, orDash(connection), orDash(tokenRef), mapping, consent, refused)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Println()
	w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KEY\tOFFSET\tSEQUENCE\tISSUED\tBY\tEVENT\tSIGNATURE\tSIGNED\tSERVICE")
	legacy := 0
	for _, r := range view.Records {
		if strings.HasPrefix(r.Signed, controlplane.SchemeCanonicalText) {
			legacy++
		}
		issued := "-"
		if !r.IssuedAt.IsZero() {
			issued = r.IssuedAt.Format(time.RFC3339)
		}
		signature := r.Signature
		if r.KeyID != "" && r.Signature == controlplane.VerdictVerified {
			signature += " (" + r.KeyID + ")"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Key, r.Offset, r.Sequence, issued, orDash(r.IssuedBy), orDash(r.Summary), signature, orDash(r.Signed), r.Service)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if legacy > 0 {
		fmt.Fprintf(os.Stderr, "note: %d listed events are signed over the legacy canonical text: re-issue them with the command that made them (docs/security-crypto.md)\n", legacy)
	}
	return nil
}

// buildControlView matches the control records with what the service says
// it applied. A tenant row shows only applied events (or, before the
// service reported on the tenant, verified ones marked so).
func buildControlView(records []controlplane.Record, applied map[string]schemas.Status, only string, all bool) controlView {
	tenants := map[string]*controlTenantRow{}
	row := func(id string) *controlTenantRow {
		t := tenants[id]
		if t == nil {
			t = &controlTenantRow{Tenant: id, State: "-", Applied: map[string]*controlEventRow{}}
			tenants[id] = t
		}
		return t
	}
	for id, s := range applied {
		t := row(id)
		t.State, t.StateReason, t.Reported = s.State, s.StateReason, true
		t.Refused, t.RefusedByReason = s.RefusedControl, s.RefusedByReason
	}
	last := map[string]int{} // key -> index of its last record: what compaction keeps
	for i, rec := range records {
		last[rec.Key] = i
	}
	seen := map[string]int64{} // key -> highest trusted sequence so far, as the service orders them
	rows := make([]*controlEventRow, len(records))
	for i, rec := range records {
		r := &controlEventRow{Key: rec.Key, Partition: rec.Partition, Offset: rec.Offset, Signature: rec.Verdict, Detail: rec.Detail}
		rows[i] = r
		tenant, kind, _ := strings.Cut(rec.Key, "/")
		s, reported := applied[tenant]
		if ev := rec.Event; ev != nil {
			r.Sequence, r.EventID, r.IssuedAt, r.IssuedBy, r.KeyID, r.Summary = ev.Sequence, ev.EventID, ev.IssuedAt, ev.IssuedBy, ev.KeyID, summarize(*ev)
			r.Signed = controlplane.SchemeLabel(*ev)
			if ev.Connection != nil {
				r.Detail = controlplane.RedactTokenRef(ev.Connection.TokenRef)
			}
		}
		before := seen[rec.Key]
		if rec.Event != nil && rec.Trusted() {
			seen[rec.Key] = max(before, rec.Event.Sequence)
		}
		signedHere := rec.Verdict == controlplane.VerdictVerified || rec.Verdict == controlplane.VerdictUnverified
		switch bar := max(before, s.ControlSequences[kind]); {
		case !reported:
			r.Service = "unknown (not reported)"
		case signedHere && rec.Event.Key() == rec.Key && rec.Event.EventID == s.AppliedControl[kind] && rec.Event.Sequence == s.ControlSequences[kind]:
			r.Service = "applied"
			row(tenant).Applied[kind] = r
		case !signedHere:
			r.Service = "refused"
		case !rec.Trusted():
			// Signed by a key this admin does not hold: pending, or refused
			// for it (the tenant's refusal counts say which).
			r.Service = "not applied"
		case rec.Event.Sequence <= before || (i == last[rec.Key] && rec.Event.Sequence <= bar):
			r.Service = fmt.Sprintf("refused (replay: sequence not above %d)", bar)
		case i < last[rec.Key] && rec.Verdict == controlplane.VerdictVerified:
			r.Service = "superseded"
		default:
			r.Service = "not applied (yet)"
		}
	}
	for id, s := range applied {
		t := tenants[id]
		for kind, eventID := range s.AppliedControl {
			if schemas.ValidKind(kind) && eventID != "" && t.Applied[kind] == nil {
				t.Lost = append(t.Lost, kind)
			}
		}
		slices.Sort(t.Lost)
	}
	// Before the service reported on a tenant, show its verified events,
	// marked: never an unverified one as the tenant's state.
	for key, i := range last {
		tenant, kind, _ := strings.Cut(key, "/")
		if rec := records[i]; rec.Event == nil || rec.Verdict != controlplane.VerdictVerified {
			continue
		}
		if t := row(tenant); !t.Reported {
			r := *rows[i]
			r.Summary += " (not applied yet)"
			t.Applied[kind] = &r
		}
	}
	var view controlView
	for id, t := range tenants {
		if only == "" || id == only {
			view.Tenants = append(view.Tenants, t)
		}
	}
	sort.Slice(view.Tenants, func(i, j int) bool { return view.Tenants[i].Tenant < view.Tenants[j].Tenant })
	for i, r := range rows {
		if tenant, _, ok := strings.Cut(r.Key, "/"); (all || i == last[r.Key]) && (only == "" || ok && tenant == only) {
			view.Records = append(view.Records, r)
		}
	}
	return view
}

// summarize says what an event sets, without any token.
func summarize(ev schemas.Control) string {
	switch {
	case ev.Connection != nil:
		return ev.Connection.DisplayName
	case ev.Consent != nil:
		if ev.Consent.Given {
			return "given"
		}
		return "withdrawn"
	case ev.Mapping != nil:
		m := ev.Mapping
		s := "name=" + m.NameAttribute
		if m.WebsiteAttribute != "" {
			s += " website=" + m.WebsiteAttribute
		}
		if m.LocationAttribute != "" {
			s += " location=" + m.LocationAttribute
		}
		if m.MinConfidence != "" {
			s += " min=" + m.MinConfidence
		}
		return s
	case ev.Removal != nil:
		if ev.Removal.Purge {
			return "removed with purge"
		}
		return "removed"
	case ev.Refresh != nil:
		switch {
		case ev.Refresh.Cancel:
			return "cancel run " + ev.Refresh.RunID
		case ev.Refresh.Force:
			return "run " + ev.Refresh.RunID + " (force)"
		}
		return "run " + ev.Refresh.RunID
	}
	return ""
}

func formatCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
