package console

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Config is the console's configuration. Zero values take the defaults
// named in the comments; Validate checks the result.
type Config struct {
	// Addr is where the console listens. Default: 127.0.0.1:8090 (loopback:
	// put a TLS-terminating proxy in front to serve it to others).
	Addr string
	// PublicURL is the console's address as the browser sees it; the OIDC
	// redirect URL is PublicURL + "/auth/callback". Default: http://Addr.
	PublicURL string

	// Issuer is the OpenID Connect issuer URL (discovery at
	// Issuer/.well-known/openid-configuration). Required unless Dev.
	Issuer string
	// ClientID and ClientSecret are the console's registration with the
	// issuer; the secret may be empty for a public client (PKCE only).
	ClientID, ClientSecret string
	// Scopes asked for. Default: openid, profile, email.
	Scopes []string
	// TenantsClaim is the ID token claim naming the tenants a user
	// administers (a list, or names separated by spaces or commas; "*"
	// grants every tenant). Default: enricher_tenants.
	TenantsClaim string
	// RoleClaim holds the user's roles; OperatorRole among them makes the
	// user an operator (dead letters, replay, control log of every tenant).
	// Defaults: enricher_roles, operator.
	RoleClaim, OperatorRole string

	// SessionLifetime is how long a sign-in lasts. Default: 1h; at most 12h.
	SessionLifetime time.Duration

	// Dev signs in with one-time links (DevSignInLink) instead of OIDC. For
	// `enricher dev` only: whoever has a link is who the link says.
	Dev bool
	// PageSize is the rows of one page of enriched data. Default: 50.
	PageSize int
}

const (
	defaultAddr     = "127.0.0.1:8090"
	defaultLifetime = time.Hour
	maxLifetime     = 12 * time.Hour
)

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = defaultAddr
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "profile", "email"}
	}
	if c.TenantsClaim == "" {
		c.TenantsClaim = "enricher_tenants"
	}
	if c.RoleClaim == "" {
		c.RoleClaim = "enricher_roles"
	}
	if c.OperatorRole == "" {
		c.OperatorRole = "operator"
	}
	if c.SessionLifetime == 0 {
		c.SessionLifetime = defaultLifetime
	}
	if c.PageSize == 0 {
		c.PageSize = 50
	}
}

// Validate checks the configuration after defaults, naming the setting
// (as the `enricher console` flag) at fault.
func (c Config) Validate() error {
	c.setDefaults()
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("public-url: %q is not an http(s) URL", c.PublicURL)
	}
	switch {
	case c.SessionLifetime < time.Minute || c.SessionLifetime > maxLifetime:
		return fmt.Errorf("session-lifetime: %s is outside [1m, %s]", c.SessionLifetime, maxLifetime)
	case c.PageSize < 1 || c.PageSize > 1000:
		return fmt.Errorf("page-size: %d is outside [1, 1000]", c.PageSize)
	case c.Dev:
		return nil
	case c.Issuer == "":
		return errors.New("oidc-issuer: required (or run it from 'enricher dev', which signs in with a link)")
	case c.ClientID == "":
		return errors.New("oidc-client-id: required")
	}
	return nil
}
