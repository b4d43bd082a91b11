package leadspace

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// tokenSource supplies the bearer token for a program's calls.
type tokenSource interface {
	token(ctx context.Context) (string, error)
	// renew forgets tok after a 401 and reports whether a fresh token may
	// help. Perpetual tokens cannot be renewed: their 401 is final.
	renew(tok string) bool
}

// staticToken is a perpetual API key. Leadspace rotates these by email;
// there is no endpoint to renew one (docs/leadspace.md §1).
type staticToken string

func (s staticToken) token(context.Context) (string, error) { return string(s), nil }
func (staticToken) renew(string) bool                       { return false }

// oauthSource runs Leadspace's username/password OAuth flow: POST
// /oauth/authorize for a token, PUT with the refresh token shortly before it
// expires, and a fresh POST when a refresh fails or a call gets a 401.
//
// UNCERTAIN(docs/leadspace.md §1): the refresh body {user, refreshToken} and
// its answer having the issue answer's shape come from a third-party profile.
type oauthSource struct {
	p     *Program
	creds OAuthCredentials
	lock  chan struct{} // one fetch at a time, abandoned if ctx ends

	tok     string
	refresh string
	expires time.Time
	renewAt time.Time
}

func newOAuthSource(p *Program, creds OAuthCredentials) *oauthSource {
	return &oauthSource{p: p, creds: creds, lock: make(chan struct{}, 1)}
}

func (s *oauthSource) token(ctx context.Context) (string, error) {
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return "", canceled(ctx.Err())
	}
	defer func() { <-s.lock }()

	now := s.p.c.cfg.now()
	if s.tok != "" && now.Before(s.renewAt) {
		return s.tok, nil
	}
	if s.refresh != "" && now.Before(s.expires) {
		err := s.fetch(ctx, http.MethodPut, authorizeRefresh{User: s.creds.ProgramID, RefreshToken: s.refresh})
		if err == nil {
			return s.tok, nil
		}
		if ctx.Err() != nil {
			return "", canceled(ctx.Err())
		}
		s.p.log.Info("leadspace token refresh failed, authorizing again", errField(err))
	}
	if err := s.fetch(ctx, http.MethodPost, authorizeIssue{User: s.creds.ProgramID, Pass: s.creds.Secret, Audience: "API_GATEWAY"}); err != nil {
		return "", err
	}
	return s.tok, nil
}

func (s *oauthSource) renew(tok string) bool {
	if tok == "" {
		return false // the 401 came from authorize itself
	}
	select {
	case s.lock <- struct{}{}:
	default:
		return true // someone is fetching a new token right now
	}
	defer func() { <-s.lock }()
	if tok == s.tok {
		s.tok = ""
		s.renewAt = time.Time{}
	}
	return true
}

type authorizeIssue struct {
	User     string `json:"user"`
	Pass     string `json:"pass"`
	Audience string `json:"audience"`
}

type authorizeRefresh struct {
	User         string `json:"user"`
	RefreshToken string `json:"refreshToken"`
}

type authorizeAnswer struct {
	Token        string  `json:"token"`
	RefreshToken string  `json:"refreshToken"`
	Expiration   flexInt `json:"expiration"` // epoch seconds
}

// fetch issues or refreshes the token. It costs one limiter token.
// UNCERTAIN(docs/leadspace.md §7): whether OAuth calls count against the TPS.
func (s *oauthSource) fetch(ctx context.Context, method string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return newError(ClassAuth, ReasonUnauthorized, err)
	}
	if err := s.p.lim.wait(ctx); err != nil {
		return canceled(err)
	}
	start := time.Now()
	resp, err := s.p.send(ctx, method, pathAuthorize, b, "")
	if err == nil && resp.status != http.StatusOK {
		err = statusError(resp, s.creds.Secret)
	}
	outcome := "ok"
	if r, ok := ReasonOf(err); ok {
		outcome = r
	}
	s.p.metrics.request(s.p.key, epOAuth, outcome, time.Since(start))
	if err != nil {
		return err
	}
	var a authorizeAnswer
	if err := decodeObject(resp.body, &a); err != nil || a.Token == "" {
		return newError(ClassRetryable, ReasonBadResponse, errors.New("authorize answer has no token"))
	}
	now := s.p.c.cfg.now()
	exp := time.Unix(int64(a.Expiration), 0)
	if a.Expiration > 1e12 { // milliseconds, just in case
		exp = time.UnixMilli(int64(a.Expiration))
	}
	if !exp.After(now) {
		// No usable expiration: assume a short life rather than the
		// undocumented 24 h, and let a 401 tell us sooner if wrong.
		exp = now.Add(time.Hour)
	}
	// Renew when 90% of the lifetime has passed, at most a minute early.
	early := min(time.Minute, exp.Sub(now)/10)
	s.tok, s.refresh, s.expires, s.renewAt = a.Token, a.RefreshToken, exp, exp.Add(-early)
	return nil
}
