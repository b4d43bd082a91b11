package console

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// dataQuery reads View enriched data's filters from the URL.
func (s *Server) dataQuery(q url.Values) (admin.EnrichmentQuery, int) {
	eq := admin.EnrichmentQuery{Status: q.Get("status"), Search: strings.TrimSpace(q.Get("q")), Sort: q.Get("sort"), Desc: q.Get("desc") == "1"}
	switch eq.Status {
	case schemas.StatusEnriched, schemas.StatusNotMatched, schemas.StatusSkipped:
	default:
		eq.Status = ""
	}
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	eq.Offset, eq.Limit = (page-1)*s.cfg.PageSize, s.cfg.PageSize
	return eq, page
}

// column is a sortable column head with the link that sorts by it.
type column struct {
	Label, Key, Href string
	Sorted, Desc     bool
	Num              bool
}

// dataPage is View enriched data: a paged, sortable table of the tenant's
// current enrichments, filtered by status and profile id.
func (s *Server) dataPage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	q := r.URL.Query()
	eq, page := s.dataQuery(q)
	res, err := s.views.Enrichments(rc.tenant, eq)
	if err != nil && !errors.Is(err, admin.ErrUnknownTenant) {
		s.log.Warn("console: enrichments", zap.Error(err))
	}
	link := func(change map[string]string) string {
		v := url.Values{}
		for _, k := range []string{"status", "q", "sort", "desc", "page"} {
			if q.Get(k) != "" {
				v.Set(k, q.Get(k))
			}
		}
		for k, val := range change {
			if val == "" {
				v.Del(k)
			} else {
				v.Set(k, val)
			}
		}
		if len(v) == 0 {
			return "data"
		}
		return "data?" + v.Encode()
	}
	sortKey := eq.Sort
	if sortKey == "" {
		sortKey = "profile"
	}
	var cols []column
	for _, c := range []struct{ label, key string }{{"Profile", "profile"}, {"Status", "status"}, {"Confidence", "confidence"}, {"Company", "company"}, {"", ""}, {"", ""}, {"", ""}, {"Enriched at", "enriched_at"}} {
		col := column{Label: c.label, Key: c.key}
		if c.key != "" {
			desc := ""
			if sortKey == c.key && !eq.Desc {
				desc = "1"
			}
			col.Href, col.Sorted, col.Desc = link(map[string]string{"sort": c.key, "desc": desc, "page": ""}), sortKey == c.key, eq.Desc
		}
		cols = append(cols, col)
	}
	cols[4].Label, cols[5].Label, cols[6].Label = "Industry", "Employees", "Location"
	pages := max(1, (res.Matching+s.cfg.PageSize-1)/s.cfg.PageSize)
	data := map[string]any{"Rows": res.Rows, "Page": page, "Pages": pages, "Matched": res.Matching, "Total": res.All,
		"ByStatus": res.Counts, "Cols": cols, "Query": q, "From": eq.Offset + 1, "To": eq.Offset + len(res.Rows),
		"CSV": "data.csv" + strings.TrimPrefix(link(map[string]string{"page": ""}), "data")}
	if page > 1 {
		data["Prev"] = link(map[string]string{"page": strconv.Itoa(page - 1)})
	}
	if page < pages {
		data["Next"] = link(map[string]string{"page": strconv.Itoa(page + 1)})
	}
	s.render(w, r, http.StatusOK, "data", rc, "View enriched data", data)
}

// dataCSV downloads the filtered enrichments (every page) as CSV. Cells
// that a spreadsheet would run as a formula are quoted with a leading '.
func (s *Server) dataCSV(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	eq, _ := s.dataQuery(r.URL.Query())
	eq.Offset, eq.Limit = 0, 0
	res, err := s.views.Enrichments(rc.tenant, eq)
	var records []schemas.Enriched
	if err == nil {
		records, err = s.views.EnrichedRecords(r.Context(), res.Rows)
	}
	if err != nil && !errors.Is(err, admin.ErrUnknownTenant) {
		s.log.Warn("console: csv", zap.Error(err))
		http.Error(w, "the enrichments could not be read", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="enrichments-`+safeFileName(rc.tenant)+`.csv"`)
	if err := admin.WriteEnrichedCSV(w, records); err != nil {
		s.log.Warn("console: csv", zap.Error(err))
	}
}

func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// profilePage is one profile's enrichment: what was sent, the
// firmographics, confidence and lineage.
func (s *Server) profilePage(w http.ResponseWriter, r *http.Request, rc *reqCtx) {
	id := r.PathValue("profile")
	e, err := s.views.Enrichment(r.Context(), rc.tenant, id)
	if err != nil {
		s.notFound(w, r)
		return
	}
	s.render(w, r, http.StatusOK, "profile", rc, "Profile "+id, map[string]any{"E": e})
}
