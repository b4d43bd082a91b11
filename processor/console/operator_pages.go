package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/admin"
)

// operatorRoutes are the operators' pages: every tenant's dead letters,
// replay and the control log.
func operatorRoutes(s *Server) []route {
	return []route{
		{Path: "/ops/deadletters", Get: s.deadLettersPage},
		{Path: "/ops/replay", Get: s.replayPage, Post: s.replay},
		{Path: "/ops/control", Get: s.controlPage},
	}
}

// filterOf reads the dead letter filters (tenant, reason, stage, class,
// since, until) of a query or form.
func filterOf(v url.Values) (admin.Filter, error) {
	f := admin.Filter{Tenant: strings.TrimSpace(v.Get("tenant")), Stage: v.Get("stage"), Class: v.Get("class")}
	f.Reasons = strings.FieldsFunc(v.Get("reason"), func(r rune) bool { return r == ',' || r == ' ' })
	for _, t := range []struct {
		key string
		at  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		raw := strings.TrimSpace(v.Get(t.key))
		if raw == "" {
			continue
		}
		var err error
		for _, layout := range []string{"2006-01-02T15:04", time.RFC3339, "2006-01-02"} {
			var at time.Time
			if at, err = time.ParseInLocation(layout, raw, time.UTC); err == nil {
				*t.at = at
				break
			}
		}
		if err != nil {
			return f, fmt.Errorf("%s: %q is not a time (YYYY-MM-DDTHH:MM, UTC)", t.key, raw)
		}
	}
	return f, f.Check()
}

func (s *Server) deadLettersPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	data := map[string]any{"Query": q, "Stages": admin.Stages, "Classes": admin.ErrorClasses, "Now": s.now()}
	f, err := filterOf(q)
	if err == nil {
		var list admin.DeadLetterList
		if list, err = s.views.DeadLetters(f); err == nil {
			// Newest first, at most a page: the DLQ may hold many.
			letters := list.Letters
			n := len(letters)
			shown := make([]*admin.DeadLetter, 0, min(n, 200))
			for i := n - 1; i >= 0 && len(shown) < 200; i-- {
				shown = append(shown, letters[i])
			}
			data["Letters"], data["Total"], data["Undecodable"] = shown, n, list.Undecodable
		}
	}
	if err != nil {
		data["Error"] = err.Error()
	}
	s.render(w, r, http.StatusOK, "deadletters", rc, "Dead letters", data)
}

// replayPage is the dry run: what a replay of the filtered dead letters
// would write, and what the loop guard refuses, before the operator
// confirms.
func (s *Server) replayPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	data := map[string]any{"Query": q, "Stages": admin.Stages, "Classes": admin.ErrorClasses, "Done": doneMessage(r)}
	if f, err := filterOf(q); err != nil {
		data["Error"] = err.Error()
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		plan, err := s.admin.PlanReplay(ctx, f, admin.ReplayOptions{})
		if err != nil {
			data["Error"] = userError(err)
		} else {
			data["Plan"] = plan.Summary(true)
		}
	}
	if rid := q.Get("replayed"); rid != "" {
		data["Replayed"] = q.Get("n")
		data["ReplayID"] = rid
	}
	s.render(w, r, http.StatusOK, "replay", rc, "Replay dead letters", data)
}

// replay plans again (the DLQ may have changed since the dry run) and
// writes; receipts make a second click write nothing more.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	_ = r.ParseForm()
	f, err := filterOf(r.PostForm)
	data := map[string]any{"Query": r.PostForm, "Stages": admin.Stages, "Classes": admin.ErrorClasses}
	if err != nil {
		data["Error"] = err.Error()
		s.render(w, r, http.StatusUnprocessableEntity, "replay", rc, "Replay dead letters", data)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	before := s.receipts(f)
	plan, err := s.admin.PlanReplay(ctx, f, admin.ReplayOptions{})
	var sum admin.ReplaySummary
	if err == nil {
		sum, err = s.admin.Replay(ctx, plan, rc.who.Name, nil)
	}
	if err != nil {
		data["Error"] = userError(err)
		s.render(w, r, http.StatusUnprocessableEntity, "replay", rc, "Replay dead letters", data)
		return
	}
	s.log.Info("console replay", zap.String("by", rc.who.Name), zap.String("replay", sum.ReplayID), zap.Int("replayed", sum.Replayed))
	back := url.Values{}
	for _, k := range []string{"tenant", "reason", "stage", "class", "since", "until"} {
		if v := r.PostForm.Get(k); v != "" {
			back.Set(k, v)
		}
	}
	back.Set("replayed", sum.ReplayID)
	back.Set("n", fmt.Sprint(sum.Replayed))
	if sum.ReplayID == "" {
		back.Set("replayed", "none")
	}
	s.waitReceipts(ctx, f, before+sum.Replayed)
	http.Redirect(w, r, "/ops/replay?"+back.Encode(), http.StatusSeeOther)
}

// receipts counts the dead letters f selects that were replayed.
func (s *Server) receipts(f admin.Filter) int {
	list, _ := s.views.DeadLetters(f)
	n := 0
	for _, e := range list.Letters {
		if e.Receipt != nil {
			n++
		}
	}
	return n
}

// waitReceipts waits (briefly) until the views hold want receipts, so the
// dry run after the redirect does not offer a replayed letter again.
func (s *Server) waitReceipts(ctx context.Context, f admin.Filter, want int) {
	awaitView(ctx, func() bool { return s.receipts(f) >= want })
}

// controlPage is `enricher control show`: each tenant as the service
// applied it, and the control records with their signature check.
func (s *Server) controlPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	tenant := strings.TrimSpace(q.Get("tenant"))
	data := map[string]any{"Query": q}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	v, err := s.admin.ControlLog(ctx, tenant, q.Get("all") == "1")
	if err != nil {
		data["Error"] = userError(err)
	} else {
		data["Log"] = v
	}
	s.render(w, r, http.StatusOK, "control", rc, "Control log", data)
}
