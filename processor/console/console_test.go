package console_test

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/processor/console"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// tenantPaths are every route of a tenant (console.TenantRoutes), with a
// concrete profile id.
func tenantPaths(tenant string) []string {
	var out []string
	for _, p := range console.TenantRoutePaths() {
		p = strings.ReplaceAll(p, "{profile}", "p0001")
		p = strings.TrimSuffix(p, "{$}")
		out = append(out, "/t/"+tenant+p)
	}
	return out
}

// TestConsoleTenantIsolation: the admin of tenant A asks for every route
// of tenant B, with GET and with POST (a full form): each answers 404,
// and no record appears on any topic.
func TestConsoleTenantIsolation(t *testing.T) {
	e := newEnv(t, envOpt{profiles: 3, noService: true})
	e.setUp(tenantA, tokenA)
	e.setUp(tenantB, tokenB)
	c := e.signIn(admins(tenantA))
	// A's own pages answer.
	for _, p := range []string{"/t/" + tenantA + "/", "/t/" + tenantA + "/map", "/t/" + tenantA + "/enrichments"} {
		if a := c.get(p); a.status != http.StatusOK {
			t.Fatalf("GET %s as admin of A: %d", p, a.status)
		}
	}
	before := e.topicEnds()
	form := url.Values{"token": {tokenB}, "agree": {"yes"}, "name": {"CompanyName"}, "confirm": {"yes"}, "purge": {"yes"}, "force": {"yes"}}
	paths := tenantPaths(tenantB)
	if len(paths) < 10 {
		t.Fatalf("only %d tenant routes: %v", len(paths), paths)
	}
	for _, p := range paths {
		if a := c.get(p); a.status != http.StatusNotFound {
			t.Errorf("GET %s as admin of A: %d, want 404", p, a.status)
		}
		if a := c.post(p, form); a.status != http.StatusNotFound {
			t.Errorf("POST %s as admin of A: %d, want 404", p, a.status)
		}
	}
	// A tenant nobody has heard of answers the same.
	if a := c.get("/t/tenant-zzz/"); a.status != http.StatusNotFound {
		t.Errorf("unknown tenant: %d", a.status)
	}
	// Operator pages do not exist for a tenant admin either.
	for _, p := range console.OperatorRoutePaths() {
		if a := c.get(p); a.status != http.StatusNotFound {
			t.Errorf("GET %s as a tenant admin: %d, want 404", p, a.status)
		}
		if a := c.post(p, url.Values{"tenant": {tenantB}}); a.status != http.StatusNotFound {
			t.Errorf("POST %s as a tenant admin: %d, want 404", p, a.status)
		}
	}
	if after := e.topicEnds(); !maps.Equal(before, after) {
		t.Fatalf("topics changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestConsoleCrossOriginPostRefused: a POST another site's page makes (the
// browser says so in Sec-Fetch-Site / Origin) is refused before anything
// runs, even with the admin's cookie.
func TestConsoleCrossOriginPostRefused(t *testing.T) {
	e := newEnv(t, envOpt{noService: true})
	e.setUp(tenantA, tokenA)
	c := e.signIn(admins(tenantA))
	before := e.topicEnds()
	for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/t/"+tenantA+"/remove", strings.NewReader("confirm=yes&purge=yes"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		if a := c.do(req); a.status != http.StatusForbidden {
			t.Errorf("cross-origin POST with %v: %d, want 403", h, a.status)
		}
	}
	if after := e.topicEnds(); !maps.Equal(before, after) {
		t.Fatalf("a cross-origin POST changed the topics")
	}
	v, _ := e.admin.Status(context.Background(), tenantA)
	if len(v) == 1 && v[0].State == schemas.StateRemoved {
		t.Fatal("tenant removed by a cross-origin POST")
	}
}

// TestConsoleSecurityHeaders: every answer carries a strict CSP without
// inline script or style, nosniff, no framing and a referrer policy; the
// pages hold no inline script or style attribute.
func TestConsoleSecurityHeaders(t *testing.T) {
	e := newEnv(t, envOpt{profiles: 2, noService: true})
	e.setUp(tenantA, tokenA)
	c := e.signIn(operator())
	before := e.topicEnds()
	for _, p := range append(tenantPaths(tenantA), "/", "/signin", "/static/console.css", "/ops/deadletters", "/ops/control", "/ops/replay", "/nope") {
		a := c.get(p)
		if a.status >= 500 {
			t.Errorf("%s: %d", p, a.status)
		}
		csp := a.header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", p, csp)
		}
		if a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Referrer-Policy") == "" || a.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, a.header)
		}
		if strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
			for _, bad := range []string{"<script>", "style=", "<style", "onclick=", "javascript:"} {
				if strings.Contains(a.body, bad) {
					t.Errorf("%s: page holds %q", p, bad)
				}
			}
		}
	}
	// No GET changes anything.
	if after := e.topicEnds(); !maps.Equal(before, after) {
		t.Fatalf("a GET changed the topics")
	}
}

// TestConsoleRunQueuedAndCancelled: a Run requested while no service runs
// shows Queued with its progress endpoint; Cancel withdraws it, and both
// events carry the signed-in identity.
func TestConsoleRunQueuedAndCancelled(t *testing.T) {
	e := newEnv(t, envOpt{profiles: 5, noService: true})
	e.setUp(tenantA, tokenA)
	who := admins(tenantA)
	c := e.signIn(who)
	a := c.post("/t/"+tenantA+"/run", url.Values{})
	if a.status != http.StatusOK || !strings.Contains(a.body, `id="run-state">Queued<`) {
		t.Fatalf("after Run: %d %s", a.status, excerpt(a.body, "run-progress"))
	}
	p := c.get("/t/" + tenantA + "/run/progress.json")
	if !strings.Contains(p.body, `"state":"Queued"`) || !strings.Contains(p.body, `"active":true`) || p.header.Get("Content-Type") != "application/json" {
		t.Fatalf("progress: %s", p.body)
	}
	// A second Run while one is pending is refused on the page.
	if a := c.post("/t/"+tenantA+"/run", url.Values{}); a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "has not started yet") {
		t.Fatalf("second Run: %d %s", a.status, excerpt(a.body, "form-error"))
	}
	a = c.post("/t/"+tenantA+"/run/cancel", url.Values{})
	if a.status != http.StatusOK || !strings.Contains(a.body, "Cancel requested") {
		t.Fatalf("cancel: %d %s", a.status, excerpt(a.body, "alert"))
	}
	log, err := e.admin.ControlLog(context.Background(), tenantA, true)
	if err != nil {
		t.Fatal(err)
	}
	var refreshes []string
	for _, r := range log.Records {
		if r.Key == tenantA+"/"+schemas.KindRefresh {
			refreshes = append(refreshes, r.IssuedBy+": "+r.Summary)
		}
	}
	if len(refreshes) != 2 || !strings.HasPrefix(refreshes[0], who.Name) || !strings.HasPrefix(refreshes[1], who.Name) || !strings.Contains(refreshes[1], "cancel") {
		t.Fatalf("refresh events: %v", refreshes)
	}
	// My enrichments reads the followed topics: the cancel shows once it
	// has been followed.
	retrytest.Until(t, 10*time.Second, func() (bool, string) {
		a := c.get("/t/" + tenantA + "/enrichments")
		return strings.Contains(a.body, "Canceled"), "My enrichments does not show the cancelled Run: " + excerpt(a.body, "runs")
	})
}

// TestConsoleSessionCookie: the session cookie is __Host-, Secure,
// HttpOnly, SameSite and short-lived; signing out ends the session.
func TestConsoleSessionCookie(t *testing.T) {
	e := newEnv(t, envOpt{noService: true, consoleCfg: func(c *console.Config) { c.SessionLifetime = 30 * time.Minute }})
	link, _ := e.console.DevSignInLink(admins(tenantA))
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "__Host-") {
			session = ck
		}
	}
	switch {
	case session == nil:
		t.Fatalf("no __Host- cookie: %v", resp.Header["Set-Cookie"])
	case !session.Secure || !session.HttpOnly || session.Path != "/" || session.Domain != "":
		t.Fatalf("cookie attributes: %+v", session)
	case session.SameSite != http.SameSiteLaxMode && session.SameSite != http.SameSiteStrictMode:
		t.Fatalf("SameSite: %v", session.SameSite)
	case session.MaxAge <= 0 || session.MaxAge > 1800:
		t.Fatalf("MaxAge %d, want the configured 30 min", session.MaxAge)
	}
	// The link is good once.
	if resp, err := hc.Get(link); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second use of the link: %v %v", resp.StatusCode, err)
	}
	c := e.signIn(admins(tenantA))
	if a := c.get("/t/" + tenantA + "/"); a.status != http.StatusOK {
		t.Fatalf("signed in: %d", a.status)
	}
	if a := c.post("/signout", nil); a.url.Path != "/signedout" || !strings.Contains(a.body, "signed out") {
		t.Fatalf("sign out ended at %s", a.url)
	}
	if a := c.get("/t/" + tenantA + "/"); !strings.HasSuffix(a.url.Path, "/signin") {
		t.Fatalf("after sign-out: %s", a.url)
	}
}

// TestConsoleSignInRequired: without a session a page redirects to sign
// in and a POST is refused.
func TestConsoleSignInRequired(t *testing.T) {
	e := newEnv(t, envOpt{noService: true})
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(e.url + "/t/" + tenantA + "/data")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/signin?next=") {
		t.Fatalf("GET without session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = hc.PostForm(e.url+"/t/"+tenantA+"/remove", url.Values{"confirm": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST without session: %d", resp.StatusCode)
	}
}

// TestConsoleConnectRefusals: no I agree, no token, a token Leadspace
// refuses (401): each stays on the form with a message and publishes
// nothing; the token is never put back into the page.
func TestConsoleConnectRefusals(t *testing.T) {
	e := newEnv(t, envOpt{noService: true})
	c := e.signIn(admins(tenantA))
	before := e.topicEnds()
	a := c.post("/t/"+tenantA+"/connect", url.Values{"token": {tokenA}})
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "I agree") {
		t.Fatalf("without I agree: %d", a.status)
	}
	if strings.Contains(a.body, tokenA) {
		t.Fatal("the token was written back into the page")
	}
	a = c.post("/t/"+tenantA+"/connect", url.Values{"token": {"wrong-token-123"}, "agree": {"yes"}})
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "401") {
		t.Fatalf("wrong token: %d %s", a.status, excerpt(a.body, "alert"))
	}
	if strings.Contains(a.body, "wrong-token-123") {
		t.Fatal("the wrong token was written back into the page")
	}
	if after := e.topicEnds(); !maps.Equal(before, after) {
		t.Fatal("a refused connect published something")
	}
}

// TestConsoleIssuedByIsTheSignedInIdentity: a connect from the console is
// signed, and carries the identity as issued_by (a form field cannot set
// it).
func TestConsoleIssuedByIsTheSignedInIdentity(t *testing.T) {
	e := newEnv(t, envOpt{noService: true})
	who := admins(tenantA)
	c := e.signIn(who)
	a := c.post("/t/"+tenantA+"/connect", url.Values{"token": {tokenA}, "agree": {"yes"}, "by": {"mallory"}, "issued_by": {"mallory"}})
	if a.status != http.StatusOK {
		t.Fatalf("connect: %d %s", a.status, excerpt(a.body, "alert"))
	}
	log, err := e.admin.ControlLog(context.Background(), tenantA, true)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, r := range log.Records {
		kinds[r.Key] = r.IssuedBy
		if r.Signature != "verified" {
			t.Errorf("%s: signature %s", r.Key, r.Signature)
		}
	}
	for _, k := range []string{tenantA + "/" + schemas.KindConnection, tenantA + "/" + schemas.KindConsent} {
		if kinds[k] != who.Name {
			t.Errorf("%s issued by %q, want %q (all: %v)", k, kinds[k], who.Name, kinds)
		}
	}
}

// TestConsoleMapRefusals: no company name, and a third field besides it,
// are refused with a message and nothing published; two are applied.
func TestConsoleMapRefusals(t *testing.T) {
	e := newEnv(t, envOpt{profiles: 3, noService: true})
	e.setUp(tenantA, tokenA)
	c := e.signIn(admins(tenantA))
	before := e.topicEnds()
	a := c.post("/t/"+tenantA+"/map", url.Values{"role0": {"website"}, "attr0": {"Website"}, "op": {"apply"}})
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "Company name is required") {
		t.Fatalf("no name: %d %s", a.status, excerpt(a.body, "alert"))
	}
	// Add field renders a third row and publishes nothing.
	a = c.post("/t/"+tenantA+"/map", url.Values{"name": {"CompanyName"}, "rows": {"2"}, "op": {"add"}})
	if a.status != http.StatusOK || !strings.Contains(a.body, `name="attr2"`) {
		t.Fatalf("add field: %d", a.status)
	}
	a = c.post("/t/"+tenantA+"/map", url.Values{"name": {"CompanyName"}, "rows": {"3"}, "op": {"apply"},
		"role0": {"website"}, "attr0": {"Website"}, "role1": {"location"}, "attr1": {"Location"}, "role2": {"website"}, "attr2": {"Other"}})
	if a.status != http.StatusUnprocessableEntity || !strings.Contains(a.body, "At most 2 fields") {
		t.Fatalf("third field: %d %s", a.status, excerpt(a.body, "alert"))
	}
	if after := e.topicEnds(); !maps.Equal(before, after) {
		t.Fatal("a refused mapping published something")
	}
	a = c.post("/t/"+tenantA+"/map", url.Values{"name": {"CompanyName"}, "op": {"apply"}, "role0": {"website"}, "attr0": {"Website"},
		"role1": {"location"}, "attr1": {"NoSuchAttr"}, "min_confidence": {"MEDIUM"}, "refresh_interval": {"168h0m0s"}})
	if a.status != http.StatusOK || !strings.Contains(a.body, "NoSuchAttr") || !strings.Contains(a.body, "Warning") {
		t.Fatalf("apply with an unknown attribute: %d, want the map command's warning: %s", a.status, excerpt(a.body, "alert"))
	}
	log, _ := e.admin.ControlLog(context.Background(), tenantA, false)
	var found bool
	for _, r := range log.Records {
		if r.Key == tenantA+"/"+schemas.KindMapping && strings.Contains(r.Summary, "NoSuchAttr") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the mapping was not published: %+v", log.Records)
	}
}

// TestConsoleEscapesUntrustedData: a company name and profile id with
// markup, from profiles and Leadspace, are shown as text everywhere.
func TestConsoleEscapesUntrustedData(t *testing.T) {
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	e := newEnv(t, envOpt{})
	e.setUp(tenantA, tokenA)
	e.seedProfiles(2, func(i int) map[string]string {
		return map[string]string{"CompanyName": evil + " Ltd", "Website": "contoso.com", evil: "x"}
	}, tenantA)
	retrytest.Wait(t, 30*time.Second, "the profiles enriched", func() bool {
		v, err := e.admin.Status(context.Background(), tenantA)
		return err == nil && len(v) == 1 && v[0].Enriched+v[0].NotMatched+v[0].Skipped >= 2
	})
	c := e.signIn(admins(tenantA))
	retrytest.Wait(t, 10*time.Second, "the console's views", func() bool {
		return strings.Contains(c.get("/t/"+tenantA+"/data").body, "p0001")
	})
	for _, p := range []string{"/t/" + tenantA + "/data", "/t/" + tenantA + "/data/p0001", "/t/" + tenantA + "/map"} {
		a := c.get(p)
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d", p, a.status)
		}
		if strings.Contains(a.body, "<script>alert") || strings.Contains(a.body, "<img src=x") {
			t.Fatalf("%s shows untrusted markup unescaped", p)
		}
	}
	if a := c.get("/t/" + tenantA + "/data/p0001"); !strings.Contains(a.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("the profile page does not show the name escaped: %s", excerpt(a.body, "sent"))
	}
}

// TestConsoleCSVDownload: the CSV has `enricher show --csv`'s columns and
// a row per current enrichment; a cell a spreadsheet would evaluate is
// defused.
func TestConsoleCSVDownload(t *testing.T) {
	e := newEnv(t, envOpt{})
	e.setUp(tenantA, tokenA)
	e.seedProfiles(4, func(i int) map[string]string {
		return map[string]string{"CompanyName": "=HYPERLINK(\"http://x\") " + string(rune('A'+i)), "Website": "contoso.com"}
	}, tenantA)
	c := e.signIn(admins(tenantA))
	retrytest.Wait(t, 30*time.Second, "four enrichments in the console", func() bool {
		return strings.Count(c.get("/t/"+tenantA+"/data.csv").body, "\n") == 5
	})
	a := c.get("/t/" + tenantA + "/data.csv?status=ENRICHED")
	if !strings.HasPrefix(a.body, "tenant_id,profile_id,status,skip_reason,confidence") || a.header.Get("Content-Disposition") == "" {
		t.Fatalf("csv: %.200s", a.body)
	}
	if strings.Contains(a.body, ",=HYPERLINK") || strings.Contains(a.body, "\n=") {
		t.Fatalf("a formula cell is not defused: %s", a.body)
	}
}

func excerpt(body, near string) string {
	i := strings.Index(body, near)
	if i < 0 {
		return body[:min(len(body), 300)]
	}
	return body[i:min(len(body), i+400)]
}
