package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oidcLogin signs users in with OpenID Connect: the authorization code flow
// with PKCE (S256) and a nonce, the ID token verified against the issuer's
// keys. Who administers which tenant comes from a claim of that token.
type oidcLogin struct {
	cfg      *Config
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// newOIDCLogin discovers the issuer (its keys and endpoints).
func newOIDCLogin(ctx context.Context, cfg *Config) (*oidcLogin, error) {
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc-issuer: discovery of %s: %w", cfg.Issuer, err)
	}
	return &oidcLogin{
		cfg: cfg,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
			Endpoint:    provider.Endpoint(),
			RedirectURL: strings.TrimSuffix(cfg.PublicURL, "/") + "/auth/callback",
			Scopes:      cfg.Scopes,
		},
		verifier: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

// begin sends the browser to the provider; next is where to go after.
func (o *oidcLogin) begin(w http.ResponseWriter, r *http.Request, s *sessions, next string) {
	l := &pendingLogin{state: randomToken(), verifier: oauth2.GenerateVerifier(), nonce: randomToken(), next: next}
	s.beginLogin(w, l)
	http.Redirect(w, r, o.oauth.AuthCodeURL(l.state, oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier)), http.StatusFound)
}

// errSignIn is a callback that cannot sign anyone in; its text is shown.
var errSignIn = errors.New("sign-in failed")

// finish checks the callback and returns who signed in and where to go.
func (o *oidcLogin) finish(w http.ResponseWriter, r *http.Request, s *sessions) (Identity, string, error) {
	l, ok := s.takeLogin(w, r)
	q := r.URL.Query()
	switch {
	case !ok:
		return Identity{}, "", fmt.Errorf("%w: no sign-in in progress in this browser (or it took longer than %s); start again", errSignIn, loginLifetime)
	case q.Get("error") != "":
		return Identity{}, "", fmt.Errorf("%w: the identity provider said %s", errSignIn, q.Get("error"))
	case q.Get("state") != l.state:
		return Identity{}, "", fmt.Errorf("%w: the state does not match this browser's sign-in", errSignIn)
	}
	tok, err := o.oauth.Exchange(r.Context(), q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		return Identity{}, "", fmt.Errorf("%w: the code exchange was refused", errSignIn)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, "", fmt.Errorf("%w: the provider returned no ID token", errSignIn)
	}
	idt, err := o.verifier.Verify(r.Context(), raw)
	if err != nil {
		return Identity{}, "", fmt.Errorf("%w: the ID token does not verify", errSignIn)
	}
	if idt.Nonce != l.nonce {
		return Identity{}, "", fmt.Errorf("%w: the ID token's nonce does not match", errSignIn)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, "", fmt.Errorf("%w: unreadable claims", errSignIn)
	}
	return identityFrom(idt.Subject, claims, o.cfg), l.next, nil
}

// identityFrom reads the identity out of ID token claims.
func identityFrom(subject string, claims map[string]any, cfg *Config) Identity {
	id := Identity{Subject: subject, Name: subject}
	for _, c := range []string{"email", "preferred_username"} {
		if v, ok := claims[c].(string); ok && v != "" {
			id.Name = v
			break
		}
	}
	for _, t := range claimList(claims[cfg.TenantsClaim]) {
		if t == "*" {
			id.AllTenants = true
		} else if validTenant(t) {
			id.Tenants = append(id.Tenants, t)
		}
	}
	slices.Sort(id.Tenants)
	id.Tenants = slices.Compact(id.Tenants)
	id.Operator = slices.Contains(claimList(claims[cfg.RoleClaim]), cfg.OperatorRole)
	return id
}

// claimList reads a claim that is a list of strings, or one string of
// names separated by spaces or commas (providers differ).
func claimList(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// validTenant is a tenant id as the CLI takes it: not empty, no '/'.
func validTenant(t string) bool {
	return t != "" && !strings.ContainsAny(t, "/?#") && len(t) <= 200
}

// safeNext keeps a post-sign-in redirect on this console.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}
