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

	"github.com/enrichment/leadspace-enricher/processor/admin"
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
	ad, err := k.admin(ctx, auth, admin.Config{})
	if err != nil {
		return err
	}
	defer ad.Close()
	view, err := ad.ControlLog(ctx, tenant, all)
	if err != nil {
		return err
	}
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
		col := func(kind string, f func(*admin.ControlEvent) string) string {
			if slices.Contains(t.Lost, kind) {
				return "lost (applied, no longer on the topic)"
			}
			if r := t.Applied[kind]; r != nil {
				return f(r)
			}
			return "-"
		}
		connection := col(schemas.KindConnection, func(r *admin.ControlEvent) string { return r.Summary })
		tokenRef := "-"
		if r := t.Applied[schemas.KindConnection]; r != nil {
			tokenRef = r.Detail
		}
		mapping := col(schemas.KindMapping, func(r *admin.ControlEvent) string { return r.Summary })
		consent := col(schemas.KindConsent, func(r *admin.ControlEvent) string {
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
		issued := "-"
		if !r.IssuedAt.IsZero() {
			issued = r.IssuedAt.Format(time.RFC3339)
		}
		if strings.HasPrefix(r.Signed, controlplane.SchemeCanonicalText) {
			legacy++
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
