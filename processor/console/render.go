package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// pages are the parsed templates, one set per page (the layout plus the
// page's own "content"), so pages cannot redefine each other's blocks.
type pages struct {
	byName map[string]*template.Template
}

func loadPages() (*pages, error) {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	// Files named part-*.html are partials that every page may use (embed
	// leaves out names starting with _).
	partials, err := fs.Glob(files, "templates/part-*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "part-") {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, append([]string{"templates/layout.html", n}, partials...)...)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		p.byName[base] = t
	}
	return p, nil
}

// view is what the layout gets: the page's data in Data.
type view struct {
	Title      string
	Who        Identity
	SignedIn   bool
	Tenant     string
	Nav        string
	Data       any
	Production bool
}

// render writes a page. It renders into a buffer first, so a template
// error is a clean 500, never half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, rc *reqCtx, title string, data any) {
	t := s.pages.byName[name]
	if t == nil {
		s.log.Error("console: no such page", zap.String("page", name))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Who: rc.who, SignedIn: rc.who.Subject != "", Tenant: rc.tenant, Nav: name, Data: data, Production: !s.cfg.Dev}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		s.log.Error("console: render", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

var funcs = template.FuncMap{
	"when":     when,
	"short":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") },
	"ago":      ago,
	"num":      num,
	"pct":      pct,
	"duration": humanDuration,
	"words":    words,
	"lower":    strings.ToLower,
	"add":      func(a, b int) int { return a + b },
	"sub":      func(a, b int) int { return a - b },
	"seconds":  func(s int64) time.Duration { return time.Duration(s) * time.Second },
	"list":     func(s ...string) []string { return s },
}

// timeOf reads the time a template passes, a time.Time or a *time.Time;
// ok is false for anything else.
func timeOf(t any) (tt time.Time, ok bool) {
	switch v := t.(type) {
	case time.Time:
		return v, true
	case *time.Time:
		if v != nil {
			return *v, true
		}
		return time.Time{}, true
	}
	return time.Time{}, false
}

// when formats an optional time the same way on every page (UTC).
func when(t any) string {
	tt, ok := timeOf(t)
	if !ok {
		return ""
	}
	if tt.IsZero() {
		return "never"
	}
	return tt.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago is a rough "3 min ago" for a time (UTC format in the title).
func ago(t any) string {
	tt, _ := timeOf(t)
	if tt.IsZero() {
		return ""
	}
	d := time.Since(tt)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	return humanDuration(d) + " ago"
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "under 1 s"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days"
}

// num writes an integer with thousands separators: 100,000.
func num(v any) string {
	var n int64
	switch x := v.(type) {
	case *int64:
		if x == nil {
			return ""
		}
		n = *x
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case int64:
		n = x
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// pct is part of whole in whole percent, 0 when whole is 0.
func pct(part, whole int64) int64 {
	if whole <= 0 {
		return 0
	}
	return min(100, part*100/whole)
}

// words turns a code (NOT_CONNECTED, map.missing_name) into words.
func words(code string) string {
	r := strings.NewReplacer("_", " ", ".", ": ")
	return strings.ToLower(r.Replace(code))
}
