package leadspace

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// maxResponseBytes caps what we read from Leadspace: a bulk of 500 records
// is well under a megabyte, so anything near this is not a real answer.
const maxResponseBytes = 32 << 20

// readBody reads at most maxResponseBytes+1 of an answer, into one buffer
// of the announced size when there is one: a bulk's results are large, and
// io.ReadAll would grow through a dozen copies to reach it.
func readBody(res *http.Response) ([]byte, error) {
	body := io.LimitReader(res.Body, maxResponseBytes+1)
	if n := res.ContentLength; n > 0 && n <= maxResponseBytes {
		buf := bytes.NewBuffer(make([]byte, 0, n+bytes.MinRead))
		_, err := buf.ReadFrom(body)
		return buf.Bytes(), err
	}
	return io.ReadAll(body)
}

// endpoint names label metrics and logs.
type endpoint string

const (
	epSingle endpoint = "single"
	epBulk   endpoint = "bulk"
	epPoll   endpoint = "poll"
	epOAuth  endpoint = "oauth"
	// epDispatch labels what the dispatcher meets before it knows whether
	// the transaction will be a single call or a bulk (an open breaker).
	epDispatch endpoint = "dispatch"
)

const (
	pathSingle    = "/enrichment/enrich/single"
	pathBulk      = "/enrichment/enrich/bulk"
	pathAuthorize = "/oauth/authorize"
)

// call describes one transaction.
type call struct {
	ep     endpoint
	method string
	path   string
	body   []byte
	// records in the body, each of which may spend a credit.
	records int
}

// admit waits until the program may send one transaction: the breaker
// admits it, then (when paced) the limiter grants a token. The breaker comes
// first so an open breaker costs no token. The returned done must be called
// exactly once with the transaction's outcome (errNotSent if nothing left).
// An open breaker returns errBreakerOpen at once.
func (p *Program) admit(ctx context.Context, ep endpoint, paced bool) (func(error), error) {
	done, err := p.cb.Allow()
	if err != nil {
		p.metrics.request(p.key, ep, ReasonBreakerOpen, 0)
		return nil, errBreakerOpen
	}
	report := func(err error) {
		done(err)
		// A half-open breaker may let the next request through now even if
		// its state did not change (an excluded outcome): wake whoever waits.
		p.breakerMoved()
	}
	if paced {
		if err := p.lim.wait(ctx); err != nil {
			report(errNotSent)
			return nil, canceled(err)
		}
		p.metrics.tps(p.key, p.lim.tps())
	}
	return report, nil
}

// exchange sends one admitted transaction (done reports it to the breaker)
// and classifies the answer. A 401 on OAuth credentials gets exactly one
// re-authentication and a second request, admitted afresh. requests is how
// many requests carried the body (1 or 2).
func (p *Program) exchange(ctx context.Context, c call, done func(error)) (resp *response, requests int, err error) {
	resp, tok, sent, err := p.roundTrip(ctx, c, done)
	if sent {
		requests++
	}
	if isUnauthorized(err) && p.auth.renew(tok) {
		p.log.Info("leadspace token rejected, re-authenticating")
		done, err = p.admit(ctx, c.ep, true)
		if err != nil {
			return nil, requests, err
		}
		resp, _, sent, err = p.roundTrip(ctx, c, done)
		if sent {
			requests++
		}
	}
	return resp, requests, err
}

// roundTrip is one request: token, send, classify, report to the breaker
// and, on 429, to the limiter. sent says a request left (answered or not).
func (p *Program) roundTrip(ctx context.Context, c call, done func(error)) (*response, string, bool, error) {
	tok, err := p.auth.token(ctx)
	if err == nil {
		err = checkBearer(tok) // an OAuth token from the network can be junk too
	}
	if err != nil {
		done(errNotSent)
		return nil, "", false, err
	}
	p.count(c)
	start := time.Now()
	resp, err := p.send(ctx, c.method, c.path, c.body, tok)
	if err == nil && (resp.status < 200 || resp.status > 299) {
		err = statusError(resp, tok)
	}
	done(err)
	outcome := "ok"
	if r, ok := ReasonOf(err); ok {
		outcome = r
	}
	p.metrics.request(p.key, c.ep, outcome, time.Since(start))
	if r, _ := ReasonOf(err); r == ReasonRateLimited {
		p.rateLimited.Add(1)
		p.lim.throttled(retryAfter(resp, p.c.cfg.now()))
	}
	return resp, tok, true, err
}

// count records a request about to leave.
func (p *Program) count(c call) {
	p.transactions.Add(1)
	p.recordsSent.Add(int64(c.records))
	p.metrics.sent(p.key, c.records)
	switch c.ep {
	case epSingle:
		p.singles.Add(1)
	case epBulk:
		p.bulks.Add(1)
		p.metrics.bulkSize(c.records)
	case epPoll:
		p.polls.Add(1)
	}
}

// send performs one HTTP request and reads the whole answer. It returns an
// error only when no complete answer arrived; statuses are the caller's job.
func (p *Program) send(ctx context.Context, method, path string, body []byte, bearer string) (*response, error) {
	rctx, cancel := context.WithTimeout(ctx, p.c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, p.c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, newError(ClassRetryable, ReasonBadResponse, errors.New("cannot build request URL"))
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		// Bearer only: some articles say "Basic", every example shows Bearer
		// (docs/leadspace.md §1).
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := p.c.http.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer res.Body.Close()
	b, err := readBody(res)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if len(b) > maxResponseBytes {
		return nil, &Error{Class: ClassRetryable, Reason: ReasonBadResponse, StatusCode: res.StatusCode,
			Err: errors.New("response too large")}
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// transportError classifies a failure to get an answer: the caller's context
// ending is a cancellation; our own request deadline is a timeout; the rest
// (refused, reset, EOF) is a connection failure.
func transportError(ctx context.Context, err error) *Error {
	if ctx.Err() != nil {
		return canceled(ctx.Err())
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return newError(ClassRetryable, ReasonTimeout, err)
	}
	return newError(ClassRetryable, ReasonConnection, err)
}

// statusError classifies a non-2xx answer, keeping the token out of any
// message Leadspace might echo.
func statusError(resp *response, token string) *Error {
	env := parseEnvelope(resp.body)
	if token != "" {
		env.Error = flexString(strings.ReplaceAll(string(env.Error), token, "[redacted]"))
		env.Details = flexString(strings.ReplaceAll(string(env.Details), token, "[redacted]"))
	}
	return errorForStatus(resp.status, env)
}

// retryAfter reads a Retry-After header (seconds or HTTP date), capped at a
// minute; 0 when absent or unreadable.
func retryAfter(resp *response, now time.Time) time.Duration {
	if resp == nil {
		return 0
	}
	v := strings.TrimSpace(resp.header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(v); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), time.Minute)
}

func isUnauthorized(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusUnauthorized
}
