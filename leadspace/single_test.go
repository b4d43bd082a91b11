package leadspace

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
)

func TestSingleMatchSendsOnlyMappedFields(t *testing.T) {
	w := newWorld(t, nil, nil)
	req := Request{ExternalID: "p-1", Company: CompanyInput{
		Name: "Contoso", Website: "contoso.com", Address: &Address{City: "Boston", Country: "US"},
	}}
	res, err := w.program().Enrich(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Matched || res.Status != "Company Enriched" || res.Confidence != "HIGH" || res.ExternalID != "p-1" {
		t.Fatalf("result = %+v", res)
	}
	c := res.Company
	if c.ID == "" || c.Name != "Contoso" || c.Website != "contoso.com" || c.Industry == "" || c.SIC == "" ||
		c.NAICS == "" || c.Employees == 0 || c.EmployeesRange == "" || c.Revenue == 0 || c.RevenueRange == "" ||
		c.Address.City == "" || c.Address.State == "" || len(c.Technologies) < 3 || c.LinkedInURL == "" {
		t.Fatalf("firmographics incomplete: %+v", c)
	}
	calls := w.calls("/enrichment/enrich/single")
	if len(calls) != 1 || len(calls[0].Records) != 1 {
		t.Fatalf("calls = %+v", calls)
	}
	want := map[string]any{
		"external_id": "p-1",
		"company": map[string]any{
			"name": "Contoso", "website": "contoso.com",
			"address": map[string]any{"city": "Boston", "country": "US"},
		},
	}
	if got := calls[0].Records[0]; !reflect.DeepEqual(got, want) {
		t.Fatalf("sent %v, want exactly %v", got, want)
	}
}

func TestNotEnrichedIsAResultNotAnError(t *testing.T) {
	for _, style := range []string{"empty", "absent", "null"} {
		t.Run(style, func(t *testing.T) {
			w := newWorld(t, func(c *simulator.Config) { c.NoMatchCompany = style }, nil)
			for _, in := range []CompanyInput{
				{Name: "Nomatch Industries"},
				{Name: "Acme", Website: "acme.invalid"},
			} {
				res, err := w.program().Enrich(context.Background(), Request{ExternalID: "x", Company: in})
				if err != nil {
					t.Fatal(err)
				}
				if res.Matched || res.Status != "Not Enriched" || res.Confidence != "" || res.Company.ID != "" {
					t.Fatalf("%+v -> %+v", in, res)
				}
			}
		})
	}
}

func TestConfidenceThresholdGivesNotEnriched(t *testing.T) {
	w := newWorld(t, func(c *simulator.Config) { c.Programs[0].ConfidenceThreshold = "MEDIUM" }, nil)
	res, err := w.program().Enrich(context.Background(), Request{ExternalID: "x", Company: CompanyInput{Name: "Contoso"}})
	if err != nil || res.Matched {
		t.Fatalf("name-only (LOW) below MEDIUM threshold: %+v, %v", res, err)
	}
}

func TestInputRejectedIsNotRetried(t *testing.T) {
	w := newWorld(t, nil, nil)
	_, err := w.program().Enrich(context.Background(), Request{ExternalID: "x", Company: CompanyInput{Website: "contoso.com"}})
	wantReason(t, err, ClassInput, ReasonInputRejected)
	var e *Error
	errors.As(err, &e)
	if e.StatusCode != 400 || e.TrackingID == "" {
		t.Fatalf("error lacks status or tracking id: %+v", e)
	}
	if got := statuses(w.calls("/enrichment/enrich/single")); !reflect.DeepEqual(got, []int{400}) {
		t.Fatalf("calls = %v, want one 400", got)
	}
}

func TestPerpetualToken401FailsAtOnce(t *testing.T) {
	w := newWorld(t, nil, nil)
	p := w.client.Program(Credentials{Token: "not-a-known-token"})
	_, err := p.Enrich(context.Background(), contoso("x"))
	wantReason(t, err, ClassAuth, ReasonUnauthorized)
	if got := statuses(w.calls("/enrichment/enrich/single")); !reflect.DeepEqual(got, []int{401}) {
		t.Fatalf("calls = %v, want one 401", got)
	}
}

func TestOAuthIssuesRefreshesAndReauthenticatesOnce(t *testing.T) {
	w := newWorld(t, nil, nil)
	p := w.oauthProgram()
	if _, err := p.Enrich(context.Background(), contoso("a")); err != nil {
		t.Fatal(err)
	}
	// The gateway's clock jumps past the token's 24 h life: the next call
	// gets a 401, the client renews once and succeeds.
	w.sim.Advance(25 * time.Hour)
	if _, err := p.Enrich(context.Background(), contoso("b")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range w.sim.Calls() {
		got = append(got, c.Method+" "+c.Path+" "+http.StatusText(c.Status))
	}
	want := []string{
		"POST /oauth/authorize OK",
		"POST /enrichment/enrich/single OK",
		"POST /enrichment/enrich/single Unauthorized",
		"PUT /oauth/authorize OK",
		"POST /enrichment/enrich/single OK",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls:\n%q\nwant:\n%q", got, want)
	}
}

func TestOAuth401AfterReauthIsAuthError(t *testing.T) {
	w := newWorld(t, nil, nil)
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 401, Count: 5})
	_, err := w.oauthProgram().Enrich(context.Background(), contoso("a"))
	wantReason(t, err, ClassAuth, ReasonUnauthorized)
	if n := len(w.calls("/enrichment/enrich/single")); n != 2 {
		t.Fatalf("single calls = %d, want 2 (one re-authentication)", n)
	}
}

func TestOAuthWrongSecretIsAuthError(t *testing.T) {
	w := newWorld(t, nil, nil)
	p := w.client.Program(Credentials{OAuth: &OAuthCredentials{ProgramID: testProgramID, Secret: "wrong"}})
	_, err := p.Enrich(context.Background(), contoso("a"))
	wantReason(t, err, ClassAuth, ReasonUnauthorized)
	if n := len(w.calls("/enrichment/enrich/single")); n != 0 {
		t.Fatalf("single calls = %d, want none without a token", n)
	}
}

func TestCreditsExhausted427IsTerminal(t *testing.T) {
	w := newWorld(t, func(c *simulator.Config) { c.Programs[0].Credits = 1 }, nil)
	p := w.program()
	if _, err := p.Enrich(context.Background(), contoso("a")); err != nil {
		t.Fatal(err)
	}
	_, err := p.Enrich(context.Background(), contoso("b"))
	wantReason(t, err, ClassCredits, ReasonCreditsExhausted)
	if got := statuses(w.calls("/enrichment/enrich/single")); !reflect.DeepEqual(got, []int{200, 427}) {
		t.Fatalf("calls = %v", got)
	}
}

func Test429StormSlowsTheLimiterAndSucceeds(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.MaxAttempts = 6; c.TPS = 50 })
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 429, Count: 4})
	p := w.program()
	res, err := p.Enrich(context.Background(), contoso("a"))
	if err != nil || !res.Matched {
		t.Fatalf("%+v, %v", res, err)
	}
	st := p.Stats()
	if st.RateLimited != 4 || st.Retries != 4 {
		t.Fatalf("stats = %+v, want 4 rate-limited, 4 retries", st)
	}
	if st.TPS >= 50 {
		t.Fatalf("limiter at %.1f TPS, want it slowed below 50", st.TPS)
	}
	if st.BreakerState != "closed" {
		t.Fatalf("429 must not trip the breaker: %s", st.BreakerState)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	w := newWorld(t, func(c *simulator.Config) { c.EmitRetryAfter = true }, nil)
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 429, Count: 1})
	if _, err := w.program().Enrich(context.Background(), contoso("a")); err != nil {
		t.Fatal(err)
	}
	calls := w.calls("/enrichment/enrich/single")
	if len(calls) != 2 {
		t.Fatalf("calls = %v", statuses(calls))
	}
	if gap := calls[1].Time.Sub(calls[0].Time); gap < 900*time.Millisecond {
		t.Fatalf("retried after %s, want >= Retry-After 1s", gap)
	}
}

func Test5xxBurstIsRetried(t *testing.T) {
	w := newWorld(t, nil, nil)
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 503, Count: 1})
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Status: 502, Count: 1})
	res, err := w.program().Enrich(context.Background(), contoso("a"))
	if err != nil || !res.Matched {
		t.Fatalf("%+v, %v", res, err)
	}
	if got := statuses(w.calls("/enrichment/enrich/single")); !reflect.DeepEqual(got, []int{503, 502, 200}) {
		t.Fatalf("calls = %v", got)
	}
}

func TestPersistent5xxExhaustsRetries(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.MaxAttempts = 4 })
	_, err := w.program().Enrich(context.Background(), Request{ExternalID: "x", Company: CompanyInput{Name: simulator.Magic500}})
	wantReason(t, err, ClassRetryable, ReasonRetriesExhausted)
	if n := len(w.calls("/enrichment/enrich/single")); n != 4 {
		t.Fatalf("calls = %d, want MaxAttempts = 4", n)
	}
	if err == nil {
		t.Fatal("no error")
	}
	var inner *Error
	if !errors.As(errors.Unwrap(err), &inner) || inner.Reason != ReasonServerError {
		t.Fatalf("last cause = %v, want a server error", errors.Unwrap(err))
	}
}

func TestTimeoutIsRetriedThenReported(t *testing.T) {
	w := newWorld(t, nil, func(c *Config) { c.RequestTimeout = 100 * time.Millisecond; c.MaxAttempts = 2 })
	start := time.Now()
	_, err := w.program().Enrich(context.Background(), Request{ExternalID: "x", Company: CompanyInput{Name: simulator.MagicSlow}})
	wantReason(t, err, ClassRetryable, ReasonRetriesExhausted)
	var inner *Error
	if !errors.As(errors.Unwrap(err), &inner) || inner.Reason != ReasonTimeout {
		t.Fatalf("cause = %v, want timeout", errors.Unwrap(err))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %s", el)
	}
}

func TestConnectionResetIsRetried(t *testing.T) {
	w := newWorld(t, nil, nil)
	w.sim.InjectFault(simulator.Fault{Path: "/enrichment/enrich/single", Drop: true, Count: 2})
	res, err := w.program().Enrich(context.Background(), contoso("a"))
	if err != nil || !res.Matched {
		t.Fatalf("%+v, %v", res, err)
	}
	if got := statuses(w.calls("/enrichment/enrich/single")); !reflect.DeepEqual(got, []int{0, 0, 200}) {
		t.Fatalf("calls = %v, want two drops then 200", got)
	}
}

func TestCancellationReturnsPromptly(t *testing.T) {
	w := newWorld(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := w.program().Enrich(ctx, Request{ExternalID: "x", Company: CompanyInput{Name: simulator.MagicSlow}})
	wantReason(t, err, ClassCanceled, ReasonCanceled)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want it to wrap the context error", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("returned after %s", el)
	}
	if st := w.program().Stats(); st.BreakerState != "closed" {
		t.Fatalf("a cancelled call must not count against the breaker")
	}
}

func TestMalformedAnswerIsRetriedAsBadResponse(t *testing.T) {
	for name, body := range map[string]string{
		"partial":   `{"status":"success","data":{"enrichment_status":"Company Enr`,
		"not json":  `<html>gateway</html>`,
		"no data":   `{"status":"success"}`,
		"array top": `[1,2,3]`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := newStubServer(t, http.StatusOK, body)
			c, err := New(Config{BaseURL: srv, MaxAttempts: 2, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Program(Credentials{Token: testToken}).Enrich(context.Background(), contoso("x"))
			wantReason(t, err, ClassRetryable, ReasonRetriesExhausted)
			var inner *Error
			if !errors.As(errors.Unwrap(err), &inner) || inner.Reason != ReasonBadResponse {
				t.Fatalf("cause = %v", errors.Unwrap(err))
			}
		})
	}
}

func TestVerify(t *testing.T) {
	w := newWorld(t, nil, nil)
	if err := w.program().Verify(context.Background()); err != nil {
		t.Fatalf("good token: %v", err)
	}
	err := w.client.Program(Credentials{Token: "bad"}).Verify(context.Background())
	wantReason(t, err, ClassAuth, ReasonUnauthorized)
}
