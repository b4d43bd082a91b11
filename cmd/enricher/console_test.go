package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
)

// TestConsoleInDev: the console `enricher dev` starts answers on loopback,
// and its printed sign-in link signs in once, as an operator of the dev
// tenants.
func TestConsoleInDev(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stack, err := embedded.Start(ctx, embedded.Options{Programs: []simulator.ProgramConfig{{ID: devTenant(0), Tokens: []string{devToken(devTenant(0))}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer stack.Close()
	web, err := startDevConsole(ctx, stack, devAdminKey(), "127.0.0.1:0", 2, 30, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(web.url, "http://127.0.0.1:") || !strings.HasPrefix(web.signIn, web.url+"/dev/signin?token=") {
		t.Fatalf("console %s, link %s", web.url, web.signIn)
	}
	var banner strings.Builder
	printDevConsole(&banner, web)
	if !strings.Contains(banner.String(), web.signIn) {
		t.Fatalf("banner: %s", banner.String())
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(web.signIn)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Tenant tenant-2") || !strings.Contains(string(body), "Dead letters") {
		t.Fatalf("after sign-in: %d %.300s", resp.StatusCode, body)
	}
	resp, err = http.Get(web.signIn)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the link signed in twice: %d", resp.StatusCode)
	}
}

// TestConsoleCommandRefusesBadSettings: without an issuer, with a session
// lifetime out of range, or without a key to sign with, `enricher console`
// refuses to start, naming the setting.
func TestConsoleCommandRefusesBadSettings(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--brokers", "127.0.0.1:1"}, "oidc-issuer"},
		{[]string{"--oidc-issuer", "https://id.example", "--oidc-client-id", "c", "--session-lifetime", "24h"}, "session-lifetime"},
		{[]string{"--oidc-issuer", "https://id.example", "--oidc-client-id", "c", "--brokers", "127.0.0.1:1"}, "admin-signing-key"},
	} {
		t.Setenv("ENRICHER_ADMIN_KEY", "")
		t.Setenv("ENRICHER_ADMIN_SIGNING_KEY", "")
		err := cmdConsole(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("enricher console %v: %v, want an error naming %s", c.args, err, c.want)
		}
	}
}
