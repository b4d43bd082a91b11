package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/console"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// chromiumPath is Debian's chromium. Without it the browser tests skip
// locally and fail in CI (CI set), where .ci/run installs it.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium): the console's browser tests must run in CI")
	}
	t.Skip("chromium is not installed; the browser tests run where it is (and must in CI)")
	return ""
}

// browser is one headless Chromium with a fresh profile, driven over the
// DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context
	e   *env
	// shots is where screenshots go (CONSOLE_SCREENSHOTS), "" for none.
	shots string
}

func newBrowser(t *testing.T, e *env) *browser {
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 860)}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, ctx: ctx, e: e, shots: os.Getenv("CONSOLE_SCREENSHOTS")}
	if b.shots != "" && !filepath.IsAbs(b.shots) {
		// Relative to the repository root, not the package directory.
		b.shots = filepath.Join("..", "..", b.shots)
	}
	return b
}

// do runs steps with a time limit.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		b.t.Fatalf("%s: %v\npage: %.1500s", what, err, html)
	}
}

// open navigates to a console path and waits for the page.
func (b *browser) open(path string, waitFor string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.e.url+path), chromedp.WaitVisible(chromedp.CSS(waitFor)))
}

// text is an element's text, trimmed.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// eval runs a script in the page and returns its value.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

// shot saves a screenshot of the page as name.png when CONSOLE_SCREENSHOTS
// is set.
func (b *browser) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, "console-"+name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func number(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 10, 64)
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// TestConsoleBrowserFlow drives the product page's flow in Chromium on the
// embedded stack with a running service: Connect (refused without I
// agree, 401 for a wrong token), Map data (refused without a company name
// and with a third field), Run (the preview, then the bar to 100 %), My
// enrichments and View enriched data (what status and show report),
// Remove (no call to Leadspace afterwards), and an operator replaying a
// dead letter (its output once). With CONSOLE_SCREENSHOTS=docs/screenshots
// it saves a screenshot of every screen.
func TestConsoleBrowserFlow(t *testing.T) {
	const profiles = 40
	e := newEnv(t, envOpt{})
	ctx := context.Background()
	b := newBrowser(t, e)

	// Tenant B's dead letters: Leadspace refuses its token (401) for a
	// while; then it is connected again.
	e.setUp(tenantB, tokenB)
	e.stack.Simulator.InjectFault(simulator.Fault{Program: tenantB, Status: 401, Count: -1})
	e.seedProfiles(3, nil, tenantB)
	retrytest.Wait(t, 60*time.Second, "tenant B's dead letters", func() bool {
		l, err := e.admin.DeadLetters(ctx, admin.Filter{Tenant: tenantB})
		return err == nil && len(l.Letters) == 3
	})
	e.stack.Simulator.Reset()
	if _, err := e.admin.Connect(ctx, admin.ConnectRequest{Tenant: tenantB, Token: tokenB, By: "setup"}); err != nil {
		t.Fatal(err)
	}
	retrytest.Wait(t, 30*time.Second, "tenant B active again", func() bool {
		v, err := e.admin.Status(ctx, tenantB)
		return err == nil && v[0].State == schemas.StateActive
	})

	// Tenant A's profiles are there before it is connected: the Run
	// enriches them.
	e.seedProfiles(profiles, nil, tenantA)

	link, err := e.console.DevSignInLink(operatorOf(tenantA, tenantB))
	if err != nil {
		t.Fatal(err)
	}
	b.do("sign in", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(".tile")))
	b.shot("home")
	b.open("/t/"+tenantA+"/", ".state")
	if got := b.text(".page-head .state"); got != "Not connected" {
		t.Fatalf("tile of a new tenant: %q", got)
	}
	b.shot("hub")

	// Connect without I agree: refused, nothing published.
	b.open("/t/"+tenantA+"/connect", "#connect-form")
	b.do("connect without I agree", chromedp.SendKeys(chromedp.CSS("#token"), tokenA), chromedp.Click(chromedp.CSS("#connect")),
		chromedp.WaitVisible(chromedp.CSS("#form-error")))
	if msg := b.text("#form-error"); !strings.Contains(msg, "I agree") {
		t.Fatalf("without I agree: %q", msg)
	}
	if v := eval[string](b, `document.getElementById("token").value`); v != "" {
		t.Fatal("the token was put back into the form")
	}
	// A wrong token: Leadspace's 401 on the form.
	b.open("/t/"+tenantA+"/connect", "#connect-form")
	b.do("connect with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-a-valid-token"), chromedp.Click(chromedp.CSS("#agree")),
		chromedp.Click(chromedp.CSS("#connect")), chromedp.WaitVisible(chromedp.CSS("#form-error")))
	if msg := b.text("#form-error"); !strings.Contains(msg, "401") {
		t.Fatalf("wrong token: %q", msg)
	}
	b.shot("connect")
	if st, _ := e.admin.Status(ctx, tenantA); len(st) > 0 && st[0].State != schemas.StateNotConnected {
		t.Fatalf("a refused connect changed the tenant: %s", st[0].State)
	}
	// The right token, I agree: connected, on to Map data.
	b.open("/t/"+tenantA+"/connect", "#connect-form")
	b.do("connect", chromedp.SendKeys(chromedp.CSS("#token"), tokenA), chromedp.Click(chromedp.CSS("#agree")),
		chromedp.Click(chromedp.CSS("#connect")), chromedp.WaitVisible(chromedp.CSS("#map-form")))

	// Map without a company name: refused.
	b.open("/t/"+tenantA+"/map", "#map-form")
	b.do("map without a name", chromedp.SendKeys(chromedp.CSS("#attr0"), "Website"), chromedp.Click(chromedp.CSS("#apply")),
		chromedp.WaitVisible(chromedp.CSS("#form-error")))
	if msg := b.text("#form-error"); !strings.Contains(msg, "Company name is required") {
		t.Fatalf("map without a name: %q", msg)
	}
	// A third field: Add field, fill three, Apply: refused.
	b.open("/t/"+tenantA+"/map", "#map-form")
	b.do("add a third field", chromedp.SendKeys(chromedp.CSS("#name"), "CompanyName"), chromedp.Click(chromedp.CSS("#add-field")),
		chromedp.WaitVisible(chromedp.CSS("#attr2")))
	b.do("apply three fields", chromedp.SendKeys(chromedp.CSS("#attr0"), "Website"), chromedp.SetValue(chromedp.CSS("#role1"), "location"),
		chromedp.SendKeys(chromedp.CSS("#attr1"), "Location"), chromedp.SendKeys(chromedp.CSS("#attr2"), "CompanyName2"),
		chromedp.Click(chromedp.CSS("#apply")), chromedp.WaitVisible(chromedp.CSS("#form-error")))
	if msg := b.text("#form-error"); !strings.Contains(msg, "At most 2") {
		t.Fatalf("a third field: %q", msg)
	}
	b.shot("map-refused")
	// Name, website and location: applied.
	b.open("/t/"+tenantA+"/map", "#map-form")
	b.do("apply the mapping", chromedp.SendKeys(chromedp.CSS("#name"), "CompanyName"), chromedp.SendKeys(chromedp.CSS("#attr0"), "Website"),
		chromedp.SetValue(chromedp.CSS("#role1"), "location"), chromedp.SendKeys(chromedp.CSS("#attr1"), "Location"),
		chromedp.Click(chromedp.CSS("#apply")), chromedp.WaitVisible(chromedp.CSS("#form-done")))
	b.shot("map")
	retrytest.Wait(t, 30*time.Second, "tenant A active", func() bool {
		v, err := e.admin.Status(ctx, tenantA)
		return err == nil && v[0].State == schemas.StateActive
	})

	// Run: the credits preview first, then the bar to 100 %.
	b.open("/t/"+tenantA+"/run", "#start")
	b.do("ask for a Run", chromedp.Click(chromedp.CSS("#start")), chromedp.WaitVisible(chromedp.CSS("#preview")))
	if n := number(t, b.text("#preview-calls")); n != profiles {
		t.Fatalf("the preview would call for %d profiles, want %d", n, profiles)
	}
	preview, err := e.admin.PreviewRun(ctx, tenantA, false)
	if err != nil || int64(preview.WouldCall) != profiles || number(t, b.text("#preview-records")) != int64(preview.Estimate.Records) {
		t.Fatalf("the page's preview differs from refresh --dry-run's: %+v %v", preview, err)
	}
	b.shot("run-preview")
	b.do("start the Run", chromedp.Click(chromedp.CSS("#run")), chromedp.WaitVisible(chromedp.CSS("#run-bar")))
	b.shot("run-progress")
	retrytest.Until(t, 90*time.Second, func() (bool, string) {
		// One read of the bar, the state and the counts. While the page
		// reloads (the script reloads it when the Run ends) the read fails:
		// that is "not yet", not a failure.
		type progressBar struct {
			Value       float64
			State, Meta string
		}
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		bar, err := chromedp.Run(ctx, chromedp.Evaluate[progressBar](`(() => {
			const text = s => ((document.querySelector(s) || {}).textContent || "").trim();
			return {Value: (document.getElementById("run-bar") || {}).value || 0, State: text("#run-state"), Meta: text(".progress-meta")};
		})()`))
		if err != nil {
			return false, "the bar at 100 %: " + err.Error()
		}
		return bar.Value >= 100 && bar.State == "Successful", fmt.Sprintf("the bar at 100 %%: %.0f %%, %s, %s", bar.Value, bar.State, bar.Meta)
	})
	if got := b.text("#run-done") + " of " + b.text("#run-scope"); got != fmt.Sprintf("%d of %d", profiles, profiles) {
		t.Fatalf("finished Run shows %s", got)
	}
	b.shot("run-done")

	// My enrichments says what `enricher status --json` says.
	status, err := e.admin.Status(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	st := status[0]
	b.open("/t/"+tenantA+"/enrichments", "#enriched-count")
	if got := number(t, b.text("#enriched-count")); got != st.Enriched || st.Enriched == 0 {
		t.Fatalf("My enrichments shows %d enriched, status says %d", got, st.Enriched)
	}
	if got := eval[string](b, `document.getElementById("last-refresh").dataset.at`); st.LastRefreshAt == nil || got != st.LastRefreshAt.UTC().Format("2006-01-02T15:04:05.000Z07:00") {
		t.Fatalf("last refresh %q, status says %v", got, st.LastRefreshAt)
	}
	if got := b.text("#enrichment-state"); got != "Successful" {
		t.Fatalf("enrichment state %q", got)
	}
	b.shot("enrichments")

	// View enriched data shows the rows `enricher show` prints.
	rows, err := e.admin.Enrichments(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	b.open("/t/"+tenantA+"/data", "#enrichments")
	shown := eval[[]string](b, `Array.from(document.querySelectorAll("#enrichments tbody tr")).map(r => r.cells[0].innerText.trim() + " " + r.cells[1].innerText.trim().split(" ")[0])`)
	if len(shown) != min(len(rows), 50) {
		t.Fatalf("%d rows on the page, show lists %d", len(shown), len(rows))
	}
	for i, s := range shown {
		want := rows[i].ProfileID + " " + strings.ToLower(strings.ReplaceAll(rows[i].Status, "_", " "))
		if !strings.HasPrefix(want, s) && s != want {
			t.Fatalf("row %d: page %q, show %q", i, s, want)
		}
	}
	b.shot("data")
	b.open("/t/"+tenantA+"/data/"+rows[0].ProfileID, "#profile-id")
	b.shot("profile")

	// Operators: tenant B's dead letters, replayed from the console, get
	// their output once.
	b.open("/ops/deadletters?tenant="+tenantB, "#deadletters")
	b.shot("deadletters")
	b.open("/ops/replay?tenant="+tenantB, "#plan")
	if n := number(t, b.text("#would-replay")); n != 3 {
		t.Fatalf("dry run would replay %d, want 3", n)
	}
	b.shot("replay")
	b.do("replay", chromedp.Click(chromedp.CSS("#replay")), chromedp.WaitVisible(chromedp.CSS("#replay-done")))
	retrytest.Wait(t, 60*time.Second, "tenant B's replayed profiles answered", func() bool { return len(e.outputs(tenantB)) == 3 })
	for key, n := range e.outputs(tenantB) {
		if n != 1 {
			t.Fatalf("%s has %d outputs after the replay, want 1", key, n)
		}
	}
	b.open("/ops/replay?tenant="+tenantB, "#plan")
	if n := number(t, b.text("#would-replay")); n != 0 || number(t, b.text("#already-replayed")) != 3 {
		t.Fatalf("after the replay the dry run still offers %d", n)
	}
	b.open("/ops/control", "#control-records")
	b.shot("control")

	// Remove: after it, Leadspace gets no call for tenant A, even for new
	// profiles.
	b.open("/t/"+tenantA+"/remove", "#remove-form")
	b.shot("remove")
	b.do("remove without confirming", chromedp.Click(chromedp.CSS("#remove")), chromedp.WaitVisible(chromedp.CSS("#form-error")))
	b.open("/t/"+tenantA+"/remove", "#remove-form")
	b.do("remove", chromedp.Click(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#remove")), chromedp.WaitVisible(chromedp.CSS("#form-done")))
	callsBefore := e.callsOf(tenantA)
	e.seedProfiles(profiles+10, func(i int) map[string]string {
		return map[string]string{"CompanyName": fmt.Sprintf("Changed %d Inc", i), "Website": fmt.Sprintf("changed%d.com", i), "Location": "Oslo, NO"}
	}, tenantA, tenantB)
	e.waitConsumed()
	if after := e.callsOf(tenantA); after != callsBefore {
		t.Fatalf("Leadspace got %d calls for tenant A after Remove", after-callsBefore)
	}
	b.open("/t/"+tenantA+"/", ".state")
	if got := b.text(".page-head .state"); got != "Removed" {
		t.Fatalf("tile after Remove: %q", got)
	}
}

func operatorOf(tenants ...string) (id console.Identity) {
	id = operator()
	id.AllTenants, id.Tenants = false, tenants
	return id
}

// outputs counts the records on the enriched topic per key of a tenant.
func (e *env) outputs(tenant string) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	err := processor.ReadAll(context.Background(), e.stack.Kafka, e.stack.Topics.Enriched, func(m kafka.Message) {
		if strings.HasPrefix(string(m.Key), tenant+"/") && m.Value != nil {
			out[string(m.Key)]++
		}
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// callsOf counts the simulator's logged calls of a tenant's program.
func (e *env) callsOf(tenant string) int {
	n := 0
	for _, c := range e.stack.Simulator.Calls() {
		if c.Program == tenant {
			n++
		}
	}
	return n
}

// waitConsumed waits until the service committed every record now on the
// profiles topic: whatever it would send for them, it has sent.
func (e *env) waitConsumed() {
	e.t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(e.stack.Kafka.Brokers...)}
	ends, err := processor.TopicEnds(context.Background(), cl, e.stack.Topics.Profiles)
	if err != nil {
		e.t.Fatal(err)
	}
	parts := make([]int, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	retrytest.Wait(e.t, 60*time.Second, "the service to commit the profiles", func() bool {
		resp, err := cl.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{GroupID: e.group, Topics: map[string][]int{e.stack.Topics.Profiles: parts}})
		if err != nil || resp.Error != nil {
			return false
		}
		for _, p := range resp.Topics[e.stack.Topics.Profiles] {
			if p.CommittedOffset < ends[p.Partition] {
				return false
			}
		}
		return true
	})
}
