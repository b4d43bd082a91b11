package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// TermsVersion names the data-privacy text the Connect page shows; the
// consent event records it.
const TermsVersion = "leadspace-data-privacy-2020-11"

// tenantRoutes are the pages of one tenant, under /t/{tenant}.
func tenantRoutes(s *Server) []route {
	return []route{
		{Path: "/{$}", Get: s.hub},
		{Path: "/connect", Get: s.connectPage, Post: s.connect},
		{Path: "/consent", Post: s.consent},
		{Path: "/map", Get: s.mapPage, Post: s.applyMap},
		{Path: "/run", Get: s.runPage, Post: s.startRun},
		{Path: "/run/preview", Get: s.runPreview},
		{Path: "/run/cancel", Post: s.cancelRun},
		{Path: "/run/progress.json", Get: s.runProgress},
		{Path: "/enrichments", Get: s.enrichmentsPage},
		{Path: "/data", Get: s.dataPage},
		{Path: "/data.csv", Get: s.dataCSV},
		{Path: "/data/{profile}", Get: s.profilePage},
		{Path: "/remove", Get: s.removePage, Post: s.remove},
	}
}

// tile is the Leadspace tile: the tenant's state in the product's words
// and the next step.
type tile struct {
	Tenant      string
	Label       string
	Badge       string
	Why         string
	Next, NextL string
	View        statusview.Tenant
}

func tileOf(v statusview.Tenant) tile {
	t := tile{Tenant: v.TenantID, View: v, Why: v.StateReason}
	base := "/t/" + url.PathEscape(v.TenantID)
	switch {
	case v.State == schemas.StateRemoved:
		t.Label, t.Badge, t.Next, t.NextL = "Removed", "neutral", base+"/connect", "Enrich my data"
	case v.State == schemas.StateNoConsent:
		t.Label, t.Badge, t.Next, t.NextL = "Needs consent", "warn", base+"/connect", "Give consent"
	case v.State == schemas.StatePaused && strings.HasPrefix(v.StateReason, controlplane.ReasonNoMapping):
		t.Label, t.Badge, t.Next, t.NextL, t.Why = "Needs mapping", "warn", base+"/map", "Map data", ""
	case v.State == schemas.StatePaused:
		t.Label, t.Badge, t.Next, t.NextL = "Paused", "bad", base+"/connect", "Connect again"
	case v.State == statusview.StateNeedsAttention:
		t.Label, t.Badge, t.Next, t.NextL = "Needs attention", "warn", base+"/map", "Check the mapping"
	case v.State == schemas.StateActive:
		t.Label, t.Badge, t.Next, t.NextL, t.Why = "Active", "ok", base+"/enrichments", "My enrichments", ""
	default:
		t.Label, t.Badge, t.Next, t.NextL, t.Why = "Not connected", "neutral", base+"/connect", "Enrich my data", ""
	}
	return t
}

// home lists the tenants the user administers, each with its tile.
func (s *Server) home(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	// Every tenant's status in one read: a read per tenant read all of
	// them each time (0.8 s for an operator's 500 tenants).
	all, _ := s.views.Status("")
	rows := make(map[string]statusview.Tenant, len(all))
	for _, v := range all {
		rows[v.TenantID] = v
	}
	tenants := rc.who.Tenants
	if rc.who.AllTenants {
		tenants = make([]string, 0, len(all))
		for _, v := range all {
			tenants = append(tenants, v.TenantID)
		}
	}
	if len(tenants) == 1 && !rc.who.Operator {
		http.Redirect(w, r, "/t/"+url.PathEscape(tenants[0])+"/", http.StatusFound)
		return
	}
	tiles := make([]tile, 0, len(tenants))
	for _, t := range tenants {
		v, ok := rows[t]
		if !ok {
			v = notConnected(t)
		}
		tiles = append(tiles, tileOf(v))
	}
	s.render(w, r, http.StatusOK, "home", rc, "Enrichment", map[string]any{"Tiles": tiles})
}

// hub is one tenant's enrichment hub: the Leadspace tile.
func (s *Server) hub(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v, st := s.tenantStatus(rc.tenant)
	s.render(w, r, http.StatusOK, "hub", rc, "Leadspace", map[string]any{"Tile": tileOf(v), "State": st, "Run": s.runState(rc.tenant, v), "Done": doneMessage(r)})
}

// form is a page's form state: its values and what was wrong.
type form struct {
	Values   url.Values
	Error    string
	Warnings []string
	Done     string
}

func (f form) Get(k string) string { return f.Values.Get(k) }

// Has is whether a checkbox or select value was chosen.
func (f form) Has(k, v string) bool { return slices.Contains(f.Values[k], v) }

func (s *Server) connectPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.showConnect(w, r, rc, http.StatusOK, form{Values: url.Values{}, Done: doneMessage(r)})
}

func (s *Server) showConnect(w http.ResponseWriter, r *http.Request, rc *reqCtx, status int, f form) {
	v, st := s.tenantStatus(rc.tenant)
	// The token is never put back into the form.
	f.Values.Del("token")
	s.render(w, r, status, "connect", rc, "Connect to Leadspace", map[string]any{"Form": f, "Tile": tileOf(v), "State": st, "Terms": TermsVersion})
}

// connect verifies the token with a real Leadspace call, publishes the
// connection, then the consent the admin ticked.
func (s *Server) connect(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_ = r.ParseForm()
	f := form{Values: r.PostForm}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	switch {
	case token == "":
		f.Error = "Enter your Leadspace token (the perpetual key of your Leadspace license)."
	case r.PostForm.Get("agree") != "yes":
		f.Error = "Tick I agree under Data privacy and compliance: without consent no data may leave for Leadspace."
	}
	if f.Error != "" {
		s.showConnect(w, r, rc, http.StatusUnprocessableEntity, f)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	if _, err := s.admin.Connect(ctx, admin.ConnectRequest{Tenant: rc.tenant, Token: token, By: rc.who.Name}); err != nil {
		f.Error = connectError(err)
		s.log.Info("console connect refused", zap.String("tenant", rc.tenant), zap.String("by", rc.who.Name), zap.String("why", f.Error))
		s.showConnect(w, r, rc, http.StatusUnprocessableEntity, f)
		return
	}
	if _, err := s.admin.Consent(ctx, admin.ConsentRequest{Tenant: rc.tenant, Given: true, TermsVersion: TermsVersion, By: rc.who.Name}); err != nil {
		f.Error = "Connected, but the consent could not be recorded: " + err.Error()
		s.showConnect(w, r, rc, http.StatusInternalServerError, f)
		return
	}
	s.waitView(ctx, rc.tenant, func(v statusview.Tenant) bool {
		return v.State != schemas.StateNotConnected && v.State != schemas.StateRemoved
	})
	http.Redirect(w, r, "/t/"+url.PathEscape(rc.tenant)+"/map?done=connected", http.StatusSeeOther)
}

// consent records consent for a tenant that is connected already.
func (s *Server) consent(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_ = r.ParseForm()
	f := form{Values: r.PostForm}
	if r.PostForm.Get("agree") != "yes" {
		f.Error = "Tick I agree under Data privacy and compliance to give consent."
		s.showConnect(w, r, rc, http.StatusUnprocessableEntity, f)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	if _, err := s.admin.Consent(ctx, admin.ConsentRequest{Tenant: rc.tenant, Given: true, TermsVersion: TermsVersion, By: rc.who.Name}); err != nil {
		f.Error = userError(err)
		s.showConnect(w, r, rc, http.StatusUnprocessableEntity, f)
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(rc.tenant)+"/?done=consent", http.StatusSeeOther)
}

// connectError says why a connection was refused, with the status code a
// Leadspace admin knows.
func connectError(err error) string {
	switch {
	case errors.Is(err, admin.ErrUnauthorized):
		return "Leadspace refused the token (401 Unauthorized): check that it is your active perpetual key. Nothing was saved."
	case errors.Is(err, admin.ErrCreditsExhausted):
		return "Leadspace refused the program (427: no credits left, or the program is not valid). Nothing was saved."
	}
	return userError(err)
}

// userError is an admin error's message; other errors are not shown in
// full (they may name internal addresses) but logged by the caller.
func userError(err error) string {
	for _, class := range []error{admin.ErrInvalid, admin.ErrRefused, admin.ErrNotConnected, admin.ErrUnknownTenant, admin.ErrToken,
		admin.ErrUnauthorized, admin.ErrCreditsExhausted, admin.ErrCannotSign} {
		if errors.Is(err, class) {
			return err.Error()
		}
	}
	return "The change could not be made: " + err.Error()
}

// doneMessage is the confirmation a redirect after a change asks for.
func doneMessage(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "connected":
		return "Connected to Leadspace, consent recorded. Next: map your data."
	case "consent":
		return "Consent recorded."
	case "mapped":
		return "Mapping applied."
	case "removed":
		return "The enrichment was removed: no more data leaves for Leadspace and scheduled refreshes stopped."
	case "cancelled":
		return "Cancel requested."
	}
	return ""
}

// mapRow is one additional field of the Map data form.
type mapRow struct {
	Index           int
	Role, Attribute string
}

func (s *Server) mapPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_, st := s.tenantStatus(rc.tenant)
	vals := url.Values{}
	if m := st.Mapping; m != nil {
		vals.Set("name", m.NameAttribute)
		i := 0
		for _, f := range []struct{ role, attr string }{{admin.RoleWebsite, m.WebsiteAttribute}, {admin.RoleLocation, m.LocationAttribute}} {
			if f.attr != "" {
				vals.Set(fmt.Sprintf("role%d", i), f.role)
				vals.Set(fmt.Sprintf("attr%d", i), f.attr)
				i++
			}
		}
		vals.Set("min_confidence", m.MinConfidence)
		if m.RefreshInterval > 0 {
			vals.Set("refresh_interval", m.RefreshInterval.String())
		}
	}
	s.showMap(w, r, rc, http.StatusOK, form{Values: vals, Done: doneMessage(r)})
}

// mapRows are the form's additional fields: at least the two the product
// allows, one more each time the admin adds a field.
func mapRows(v url.Values) []mapRow {
	n, _ := strconv.Atoi(v.Get("rows"))
	n = max(admin.MaxMoreFields, min(n, 5))
	for i := n; i < 5; i++ {
		if v.Get(fmt.Sprintf("attr%d", i)) != "" {
			n = i + 1
		}
	}
	rows := make([]mapRow, n)
	for i := range rows {
		rows[i] = mapRow{Index: i, Role: v.Get(fmt.Sprintf("role%d", i)), Attribute: v.Get(fmt.Sprintf("attr%d", i))}
		if rows[i].Role == "" {
			rows[i].Role = []string{admin.RoleWebsite, admin.RoleLocation}[i%2]
		}
	}
	return rows
}

func (s *Server) showMap(w http.ResponseWriter, r *http.Request, rc *reqCtx, status int, f form) {
	v, st := s.tenantStatus(rc.tenant)
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	attrs, err := s.admin.RecentAttributes(ctx, rc.tenant, admin.DefaultSample)
	if err != nil {
		s.log.Warn("console: recent attributes", zap.String("tenant", rc.tenant), zap.Error(err))
	}
	rows := mapRows(f.Values)
	s.render(w, r, status, "map", rc, "Map data", map[string]any{"Form": f, "Rows": rows, "Attributes": attrs, "Tile": tileOf(v), "State": st,
		"Levels": admin.ConfidenceLevels, "Intervals": refreshIntervals, "MaxMore": admin.MaxMoreFields, "NextRows": len(rows) + 1})
}

// refreshIntervals are the choices of the refresh interval.
var refreshIntervals = []struct{ Value, Label string }{
	{"", "Never (only changed profiles)"}, {"24h0m0s", "Every day"}, {"168h0m0s", "Every week"}, {"720h0m0s", "Every 30 days"},
}

// applyMap adds a field row (op=add, nothing published) or applies the
// mapping through admin.Map, which refuses a missing name and a third
// field and warns about attributes no recent profile has.
func (s *Server) applyMap(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_ = r.ParseForm()
	f := form{Values: r.PostForm}
	rows := mapRows(r.PostForm)
	if r.PostForm.Get("op") == "add" {
		f.Values.Set("rows", strconv.Itoa(len(rows)+1))
		s.showMap(w, r, rc, http.StatusOK, f)
		return
	}
	req := admin.MapRequest{Tenant: rc.tenant, Name: strings.TrimSpace(r.PostForm.Get("name")), MinConfidence: r.PostForm.Get("min_confidence"), By: rc.who.Name}
	for _, row := range rows {
		if a := strings.TrimSpace(row.Attribute); a != "" {
			req.More = append(req.More, admin.Field{Role: row.Role, Attribute: a})
		}
	}
	if iv := r.PostForm.Get("refresh_interval"); iv != "" {
		d, err := time.ParseDuration(iv)
		if err != nil {
			f.Error = "Refresh interval: " + err.Error()
			s.showMap(w, r, rc, http.StatusUnprocessableEntity, f)
			return
		}
		req.RefreshInterval = d
	}
	if req.Name == "" {
		f.Error = "Company name is required: choose the profile attribute that holds it."
		s.showMap(w, r, rc, http.StatusUnprocessableEntity, f)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	_, warnings, err := s.admin.Map(ctx, req)
	if err != nil {
		f.Error = mapError(err)
		s.showMap(w, r, rc, http.StatusUnprocessableEntity, f)
		return
	}
	s.waitView(ctx, rc.tenant, func(statusview.Tenant) bool {
		_, st := s.tenantStatus(rc.tenant)
		return st.Mapping != nil && st.Mapping.NameAttribute == req.Name
	})
	if len(warnings) > 0 {
		f.Done = "Mapping applied, with warnings."
		for _, w := range warnings {
			f.Warnings = append(f.Warnings, w.Message)
		}
		s.showMap(w, r, rc, http.StatusOK, f)
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(rc.tenant)+"/map?done=mapped", http.StatusSeeOther)
}

func mapError(err error) string {
	msg := userError(err)
	if errors.Is(err, admin.ErrInvalid) && strings.Contains(msg, "a third is refused") {
		return fmt.Sprintf("At most %d fields besides the company name: Company website and Company location. Remove the extra field.", admin.MaxMoreFields)
	}
	return msg
}

// waitView waits (briefly) until the views show a change just published,
// so the page after the redirect shows it.
func (s *Server) waitView(ctx context.Context, tenant string, ok func(statusview.Tenant) bool) {
	awaitView(ctx, func() bool {
		v, _ := s.tenantStatus(tenant)
		return ok(v)
	})
}

// awaitView polls the followed views until done, for at most 5 s: a change
// the console publishes reaches them through the topics a moment later.
func awaitView(ctx context.Context, done func() bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for !done() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) removePage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v, _ := s.tenantStatus(rc.tenant)
	s.render(w, r, http.StatusOK, "remove", rc, "Remove enrichment", map[string]any{"Tile": tileOf(v), "Form": form{Values: url.Values{}, Done: doneMessage(r)}})
}

// remove publishes the removal and waits until the service applied it, so
// that once the page says removed, no call for the tenant is made.
func (s *Server) remove(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_ = r.ParseForm()
	f := form{Values: r.PostForm}
	v, _ := s.tenantStatus(rc.tenant)
	if r.PostForm.Get("confirm") != "yes" {
		f.Error = "Tick the confirmation to remove the enrichment."
		s.render(w, r, http.StatusUnprocessableEntity, "remove", rc, "Remove enrichment", map[string]any{"Tile": tileOf(v), "Form": f})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	p, err := s.admin.Remove(ctx, rc.tenant, r.PostForm.Get("purge") == "yes", rc.who.Name)
	if err != nil {
		f.Error = userError(err)
		s.render(w, r, http.StatusUnprocessableEntity, "remove", rc, "Remove enrichment", map[string]any{"Tile": tileOf(v), "Form": f})
		return
	}
	wait, cancelWait := context.WithTimeout(ctx, 30*time.Second)
	defer cancelWait()
	if err := s.admin.WaitApplied(wait, p); err != nil {
		f.Warnings = []string{"The removal is published, but no running enrichment service applied it within 30 s (is it running?). It applies when the service reads the control topic."}
		f.Done = "Removal published."
		s.render(w, r, http.StatusOK, "remove", rc, "Remove enrichment", map[string]any{"Tile": tileOf(v), "Form": f})
		return
	}
	s.waitView(ctx, rc.tenant, func(v statusview.Tenant) bool { return v.State == schemas.StateRemoved })
	http.Redirect(w, r, "/t/"+url.PathEscape(rc.tenant)+"/remove?done=removed", http.StatusSeeOther)
}

// tenantStatus is the tenant as `enricher status` shows it, with its
// control state (mapping, consent); a tenant no topic knows yet is not
// connected.
func (s *Server) tenantStatus(tenant string) (statusview.Tenant, controlplane.TenantState) {
	st, _ := s.views.Tenant(tenant)
	rows, err := s.views.Status(tenant)
	if err != nil || len(rows) == 0 {
		return notConnected(tenant), st
	}
	return rows[0], st
}

// notConnected is the status of a tenant the topics hold nothing of.
func notConnected(tenant string) statusview.Tenant {
	return statusview.Tenant{TenantID: tenant, State: schemas.StateNotConnected, SkippedReasons: map[string]int64{}}
}
