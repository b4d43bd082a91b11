package console

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/statusview"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// runState is the enrichment's state in the product's words: Not started,
// Queued, Refreshing, Successful, Failed (with the reason) or Canceled.
type runState struct {
	Label, Badge, Reason string
	Run                  *statusview.Run
	// Queued is a requested Run no partition reports yet.
	Queued *schemas.Refresh
}

// runStateOf reads the state from the tenant's current Run and the Run
// requested on the control topic that no partition reports yet (what
// `enricher refresh` calls pending).
func runStateOf(v statusview.Tenant, pending *schemas.Refresh) runState {
	run := v.Run
	switch {
	case pending != nil:
		return runState{Label: "Queued", Badge: "info", Queued: pending, Run: run}
	case run == nil:
		return runState{Label: "Not started", Badge: "neutral"}
	case run.Active():
		return runState{Label: "Refreshing", Badge: "info", Run: run}
	case run.Outcome == schemas.RunCompleted:
		return runState{Label: "Successful", Badge: "ok", Run: run}
	case run.Outcome == schemas.RunCancelled:
		return runState{Label: "Canceled", Badge: "neutral", Run: run}
	}
	return runState{Label: "Failed", Badge: "bad", Reason: run.Outcome, Run: run}
}

// runState is the tenant's runState now.
func (s *Server) runState(tenant string, v statusview.Tenant) runState {
	return runStateOf(v, s.views.PendingRun(tenant))
}

// progress is what the Run page's script polls.
type progress struct {
	RunID        string     `json:"run_id,omitempty"`
	State        string     `json:"state"`
	Reason       string     `json:"reason,omitempty"`
	Done         int64      `json:"done"`
	Scope        int64      `json:"scope"`
	Percent      int64      `json:"percent"`
	RecordsSpent int64      `json:"records_spent"`
	ETA          *time.Time `json:"eta,omitempty"`
	ETAText      string     `json:"eta_text,omitempty"`
	Active       bool       `json:"active"`
}

func progressOf(rs runState, now time.Time) progress {
	p := progress{State: rs.Label, Reason: rs.Reason, Active: rs.Label == "Queued" || rs.Label == "Refreshing"}
	if rs.Queued != nil {
		p.RunID = rs.Queued.RunID
		return p
	}
	if r := rs.Run; r != nil {
		p.RunID, p.Done, p.Scope, p.RecordsSpent, p.ETA = r.RunID, r.Done, max(r.Scope, 0), r.RecordsSpent, r.ETA
		p.Percent = pct(r.Done, r.Scope)
		if !r.Active() && r.Outcome == schemas.RunCompleted {
			p.Percent = 100
		}
		if r.ETA != nil && r.Active() {
			p.ETAText = "about " + humanDuration(max(r.ETA.Sub(now), time.Second)) + " left"
		}
	}
	return p
}

// runPage shows the current or last Run's progress and, when none is
// active, the way to a new one: its credits preview first (runPreview).
func (s *Server) runPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.showRun(w, r, rc, false)
}

// runPreview is the credits preview of a new Run (what `refresh --dry-run`
// prints) with the button that starts it. Like the dry run it reads the
// tenant's profiles from the topic, so it is a page of its own, asked for,
// not part of the Run page.
func (s *Server) runPreview(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	s.showRun(w, r, rc, true)
}

func (s *Server) showRun(w http.ResponseWriter, r *http.Request, rc *reqCtx, preview bool) {
	v, st := s.tenantStatus(rc.tenant)
	rs := s.runState(rc.tenant, v)
	p := progressOf(rs, s.now())
	canRun := !p.Active && (v.State == schemas.StateActive || v.State == statusview.StateNeedsAttention)
	force := r.URL.Query().Get("force") == "yes"
	data := map[string]any{"Tile": tileOf(v), "State": st, "RunState": rs, "Progress": p, "CanRun": canRun, "Force": force,
		"Form": form{Values: r.URL.Query(), Done: doneMessage(r)}}
	if preview && canRun {
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		pv, err := s.admin.PreviewRun(ctx, rc.tenant, force)
		if err != nil {
			data["PreviewError"] = userError(err)
		} else {
			data["Preview"] = pv
		}
	}
	s.render(w, r, http.StatusOK, "run", rc, "Run", data)
}

// startRun requests the Run the admin confirmed after the preview.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_ = r.ParseForm()
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	p, err := s.admin.StartRun(ctx, rc.tenant, r.PostForm.Get("force") == "yes", rc.who.Name)
	if err != nil {
		v, st := s.tenantStatus(rc.tenant)
		rs := s.runState(rc.tenant, v)
		s.render(w, r, http.StatusUnprocessableEntity, "run", rc, "Run", map[string]any{"Tile": tileOf(v), "State": st, "RunState": rs,
			"Progress": progressOf(rs, s.now()), "Form": form{Values: r.PostForm, Error: userError(err)}})
		return
	}
	s.log.Info("console run requested", zap.String("tenant", rc.tenant), zap.String("by", rc.who.Name), zap.String("run", p.Event.Refresh.RunID))
	s.waitRuns(ctx, rc.tenant, p.Event.Refresh.RunID)
	http.Redirect(w, r, "/t/"+url.PathEscape(rc.tenant)+"/run", http.StatusSeeOther)
}

// waitRuns waits (briefly) until the views show the Run just requested
// (pending or started), so the page after the redirect shows its progress.
func (s *Server) waitRuns(ctx context.Context, tenant, runID string) {
	awaitView(ctx, func() bool {
		v, _ := s.tenantStatus(tenant)
		p := s.views.PendingRun(tenant)
		return (p != nil && p.RunID == runID) || (v.Run != nil && v.Run.RunID == runID)
	})
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_ = r.ParseForm()
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	if _, err := s.admin.CancelRun(ctx, rc.tenant, r.PostForm.Get("run_id"), rc.who.Name); err != nil {
		v, st := s.tenantStatus(rc.tenant)
		rs := s.runState(rc.tenant, v)
		s.render(w, r, http.StatusUnprocessableEntity, "run", rc, "Run", map[string]any{"Tile": tileOf(v), "State": st, "RunState": rs,
			"Progress": progressOf(rs, s.now()), "Form": form{Values: r.PostForm, Error: userError(err)}})
		return
	}
	http.Redirect(w, r, "/t/"+url.PathEscape(rc.tenant)+"/run?done=cancelled", http.StatusSeeOther)
}

// runProgress is the Run's progress as JSON, for the page's script.
func (s *Server) runProgress(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v, _ := s.tenantStatus(rc.tenant)
	p := progressOf(s.runState(rc.tenant, v), s.now())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(p)
}

// enrichmentsPage is My enrichments: the tenant's state, counts and Runs.
func (s *Server) enrichmentsPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	v, st := s.tenantStatus(rc.tenant)
	runs := s.runs.Runs(rc.tenant)
	rs := s.runState(rc.tenant, v)
	s.render(w, r, http.StatusOK, "enrichments", rc, "My enrichments", map[string]any{"Tile": tileOf(v), "View": v, "State": st,
		"RunState": rs, "Runs": runs, "Skipped": statusview.TopReasons(v.SkippedReasons, 10)})
}

// previewEstimate formats the preview's time estimate.
func previewEstimate(p admin.RunPreview) string {
	return humanDuration(time.Duration(p.Estimate.Seconds * float64(time.Second)))
}

func init() { funcs["estimate"] = previewEstimate }
