package console

import (
	"slices"
	"testing"
	"time"
)

// TestConsoleClaims: the tenants claim as a list or as a string, "*" for
// every tenant, ids with a '/' dropped, the operator role from the role
// claim, and the name from e-mail, then user name, then subject.
func TestConsoleClaims(t *testing.T) {
	cfg := &Config{}
	cfg.setDefaults()
	for _, c := range []struct {
		name   string
		claims map[string]any
		want   Identity
	}{
		{"list", map[string]any{"email": "a@x", "enricher_tenants": []any{"t2", "t1", "t1", "bad/one"}},
			Identity{Subject: "s", Name: "a@x", Tenants: []string{"t1", "t2"}}},
		{"string", map[string]any{"preferred_username": "ann", "enricher_tenants": "t1, t2 t3"},
			Identity{Subject: "s", Name: "ann", Tenants: []string{"t1", "t2", "t3"}}},
		{"every tenant and operator", map[string]any{"enricher_tenants": "*", "enricher_roles": []any{"viewer", "operator"}},
			Identity{Subject: "s", Name: "s", AllTenants: true, Operator: true}},
		{"no claims", map[string]any{"enricher_roles": "operators"}, Identity{Subject: "s", Name: "s"}},
	} {
		got := identityFrom("s", c.claims, cfg)
		if got.Name != c.want.Name || got.AllTenants != c.want.AllTenants || got.Operator != c.want.Operator || !slices.Equal(got.Tenants, c.want.Tenants) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	if (Identity{Tenants: []string{"a"}}).Administers("b") || !(Identity{AllTenants: true}).Administers("b") {
		t.Error("Administers")
	}
}

// TestConsoleSafeNext: after sign-in the console only redirects to its
// own paths.
func TestConsoleSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/t/a/data?page=2":      "/t/a/data?page=2",
		"":                      "/",
		"https://evil.example/": "/",
		"//evil.example/x":      "/",
		"/\\evil.example":       "/",
		"javascript:alert(1)":   "/",
		"relative/path":         "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConsoleConfigValidate: the defaults validate; bad settings name
// their flag.
func TestConsoleConfigValidate(t *testing.T) {
	if err := (Config{Dev: true}).Validate(); err != nil {
		t.Fatalf("dev defaults: %v", err)
	}
	for _, c := range []struct {
		cfg  Config
		flag string
	}{
		{Config{}, "oidc-issuer"},
		{Config{Issuer: "https://id.example"}, "oidc-client-id"},
		{Config{Dev: true, SessionLifetime: 13 * time.Hour}, "session-lifetime"},
		{Config{Dev: true, Addr: "nope"}, "addr"},
		{Config{Dev: true, PublicURL: "ftp://x"}, "public-url"},
	} {
		err := c.cfg.Validate()
		if err == nil || len(err.Error()) < len(c.flag) || err.Error()[:len(c.flag)] != c.flag {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.flag)
		}
	}
	var d Config
	d.setDefaults()
	if d.Addr != "127.0.0.1:8090" || d.SessionLifetime != time.Hour || d.TenantsClaim != "enricher_tenants" {
		t.Errorf("defaults: %+v", d)
	}
}

// TestConsoleSessionsExpire: a session ends after its lifetime, and a
// dev link is good once.
func TestConsoleSessionsExpire(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSessions(time.Hour, func() time.Time { return now })
	tok := s.addLink(Identity{Subject: "x"})
	if _, ok := s.takeLink(tok); !ok {
		t.Fatal("link refused")
	}
	if _, ok := s.takeLink(tok); ok {
		t.Fatal("link used twice")
	}
	s.byID["id"] = &session{id: "id", who: Identity{Subject: "x"}, expires: now.Add(time.Hour)}
	now = now.Add(59 * time.Minute)
	s.mu.Lock()
	s.sweep()
	_, alive := s.byID["id"]
	s.mu.Unlock()
	if !alive {
		t.Fatal("session ended early")
	}
	now = now.Add(2 * time.Minute)
	s.mu.Lock()
	s.sweep()
	_, alive = s.byID["id"]
	s.mu.Unlock()
	if alive {
		t.Fatal("session outlived its lifetime")
	}
}
