package console_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/enrichment/leadspace-enricher/processor/console"
)

// oidcUser is a user of the mock provider with the console's claims.
type oidcUser struct {
	sub, email      string
	tenants, roles  []string
	tenantsAsString bool // some providers send "a b" instead of ["a","b"]
}

func (u oidcUser) ID() string { return u.sub }

func (u oidcUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]any{"sub": u.sub, "email": u.email})
}

func (u oidcUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	c := &userClaims{IDTokenClaims: base, Email: u.email, Roles: u.roles, Tenants: u.tenants}
	if u.tenantsAsString {
		c.Tenants = strings.Join(u.tenants, " ")
	}
	return c, nil
}

type userClaims struct {
	*mockoidc.IDTokenClaims
	Email   string   `json:"email,omitempty"`
	Tenants any      `json:"enricher_tenants,omitempty"`
	Roles   []string `json:"enricher_roles,omitempty"`
}

// TestConsoleOIDCSignIn signs in through a real OIDC provider we did not
// write (mockoidc): the authorization code flow with PKCE (S256) and a
// nonce, the tenants claim scoping the user and the role claim making an
// operator.
func TestConsoleOIDCSignIn(t *testing.T) {
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	// What the console sent to the provider: PKCE on both legs.
	var mu sync.Mutex
	seen := map[string]string{}
	_ = m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			mu.Lock()
			for _, k := range []string{"code_challenge_method", "code_challenge", "code_verifier", "nonce"} {
				if v := r.Form.Get(k); v != "" {
					seen[k] = v
				}
			}
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })

	e := newEnv(t, envOpt{noService: true, consoleCfg: func(c *console.Config) {
		c.Dev, c.Issuer, c.ClientID, c.ClientSecret = false, m.Issuer(), m.ClientID, m.ClientSecret
	}})
	e.setUp(tenantA, tokenA)
	e.setUp(tenantB, tokenB)

	signIn := func(u oidcUser) *client {
		m.QueueUser(u)
		jar, _ := cookiejar.New(nil)
		c := &client{e: e, hc: &http.Client{Jar: jar, Timeout: time.Minute}}
		a := c.get("/t/" + tenantA + "/enrichments")
		if a.status != http.StatusOK || a.url.Path != "/t/"+tenantA+"/enrichments" {
			t.Fatalf("sign-in as %s ended at %s with %d: %s", u.email, a.url, a.status, excerpt(a.body, "alert"))
		}
		return c
	}

	admin := signIn(oidcUser{sub: "u-1", email: "ann@example.com", tenants: []string{tenantA}, tenantsAsString: true})
	mu.Lock()
	if seen["code_challenge_method"] != "S256" || seen["code_challenge"] == "" || seen["code_verifier"] == "" || seen["nonce"] == "" {
		t.Errorf("PKCE and nonce not used: %v", seen)
	}
	mu.Unlock()
	if a := admin.get("/t/" + tenantB + "/"); a.status != http.StatusNotFound {
		t.Errorf("admin of A on B: %d", a.status)
	}
	if a := admin.get("/ops/deadletters"); a.status != http.StatusNotFound {
		t.Errorf("admin of A on the operator pages: %d", a.status)
	}
	if a := admin.get("/"); !strings.Contains(a.body, "ann@example.com") {
		t.Errorf("the page does not name the user")
	}

	ops := signIn(oidcUser{sub: "u-2", email: "olle@example.com", tenants: []string{"*"}, roles: []string{"viewer", "operator"}})
	for _, p := range []string{"/t/" + tenantB + "/", "/ops/deadletters", "/ops/control"} {
		if a := ops.get(p); a.status != http.StatusOK {
			t.Errorf("operator on %s: %d", p, a.status)
		}
	}

	// A callback without the browser's sign-in (a forged or replayed code)
	// signs nobody in.
	jar, _ := cookiejar.New(nil)
	stranger := &client{e: e, hc: &http.Client{Jar: jar}}
	if a := stranger.get("/auth/callback?" + url.Values{"code": {"x"}, "state": {"y"}}.Encode()); a.status != http.StatusUnauthorized {
		t.Errorf("callback without a sign-in: %d", a.status)
	}
}
