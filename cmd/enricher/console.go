package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/console"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
)

// cmdConsole serves the web console: its own process, holding the admin
// signing key that `enricher run` instances never get.
func cmdConsole(args []string) error {
	s := newSettings("console")
	var k kafkaFlags
	var keys adminKeyFlags
	var signing signingKeyFlags
	k.bind(s)
	keys.bind(s)
	signing.bind(s)
	var cfg console.Config
	var acfg admin.Config
	var scopes, logLevel string
	s.StringVar(&cfg.Addr, "addr", "127.0.0.1:8090", "where the console listens (loopback by default: put a TLS proxy in front to serve others)")
	s.StringVar(&cfg.PublicURL, "public-url", "", "the console's address as browsers see it; the OIDC redirect URL is this plus /auth/callback (default: http://ADDR)")
	s.StringVar(&cfg.Issuer, "oidc-issuer", "", "OpenID Connect issuer URL (required)")
	s.StringVar(&cfg.ClientID, "oidc-client-id", "", "the console's client id at the issuer (required)")
	s.StringVar(&cfg.ClientSecret, "oidc-client-secret", "", "the console's client secret (empty for a public client; prefer ENRICHER_OIDC_CLIENT_SECRET)")
	s.StringVar(&scopes, "oidc-scopes", "openid,profile,email", "scopes to ask for, comma-separated")
	s.StringVar(&cfg.TenantsClaim, "oidc-tenants-claim", "enricher_tenants", "ID token claim naming the tenants a user administers (a list or a space/comma-separated string; \"*\" is every tenant)")
	s.StringVar(&cfg.RoleClaim, "oidc-role-claim", "enricher_roles", "ID token claim holding the user's roles")
	s.StringVar(&cfg.OperatorRole, "operator-role", "operator", "the role (in --oidc-role-claim) that makes an operator: dead letters, replay and the control log of every tenant")
	s.DurationVar(&cfg.SessionLifetime, "session-lifetime", time.Hour, "how long a sign-in lasts (1m to 12h)")
	s.StringVar(&acfg.SealTo, "seal-to", "", "the service's public seal key: tokens entered in the console are published sealed to it (required to connect from the console, unless --allow-plaintext-tokens)")
	s.StringVar(&acfg.LeadspaceURL, "leadspace-url", leadspace.DefaultBaseURL, "Leadspace API gateway for Connect's verification call")
	s.BoolVar(&acfg.Tokens.AllowPlaintext, "allow-plaintext-tokens", false, "publish tokens as plain:TOKEN (development only)")
	s.Float64Var(&acfg.LeadspaceTPS, "leadspace-tps", 30, "for the Run preview's estimate: the tenant program's transactions per second")
	s.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(s, args); err != nil {
		return err
	}
	for _, sc := range strings.Split(scopes, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			cfg.Scopes = append(cfg.Scopes, sc)
		}
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	auth, err := keys.auth()
	if err != nil {
		return err
	}
	if err := signing.add(&auth); err != nil {
		return err
	}
	if !auth.CanSign() {
		return errors.New("admin-signing-key: the console signs the changes admins make: give the Ed25519 private key (or the shared --admin-key)")
	}
	log, err := newLogger("console", logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ad, err := k.admin(ctx, auth, acfg)
	if err != nil {
		return err
	}
	defer ad.Close()
	if acfg.SealTo == "" && !acfg.Tokens.AllowPlaintext {
		log.Warn("no --seal-to: Connect in the console will refuse tokens (they are never published in the clear)")
	}
	srv, err := console.Start(ctx, cfg, console.Backend{Admin: ad, Kafka: k.kafka(), Auth: auth}, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	fmt.Fprintf(os.Stderr, "enricher console: %s (Ctrl-C stops it)\n", srv.URL())
	return srv.Serve(ctx, ln)
}

// devConsole is the console `enricher dev` runs beside the service.
type devConsole struct {
	url, signIn string
}

// startDevConsole serves the console on the dev stack in dev mode: one
// sign-in link, good once, for an operator who administers every dev
// tenant. addr "" starts none.
func startDevConsole(ctx context.Context, stack *embedded.Stack, adminKey, addr string, tenants int, tps float64, log *zap.Logger) (*devConsole, error) {
	if addr == "" {
		return nil, nil
	}
	auth := controlplane.Auth{Key: []byte(adminKey)}
	ad, err := admin.Open(ctx, admin.Config{Kafka: stack.Kafka, Topics: stack.Topics, Codec: stack.Codec, Auth: auth,
		Tokens: controlplane.TokenSources{AllowPlaintext: true}, LeadspaceURL: stack.LeadspaceURL, LeadspaceTPS: tps}, log.Named("admin"))
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { _ = ad.Close() })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		// The default port is taken (another dev?): any free one will do.
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("console-addr: %w", err)
		}
	}
	// The link signs in once: a long session spares restarting dev for a
	// new one.
	srv, err := console.Start(ctx, console.Config{Addr: ln.Addr().String(), Dev: true, SessionLifetime: 12 * time.Hour}, console.Backend{Admin: ad, Kafka: stack.Kafka, Auth: auth}, log.Named("console"))
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	go func() {
		if err := srv.Serve(ctx, ln); err != nil {
			log.Warn("console stopped", zap.Error(err))
		}
	}()
	who := console.Identity{Subject: "dev", Name: "dev-admin", Operator: true}
	for i := 0; i < tenants; i++ {
		who.Tenants = append(who.Tenants, devTenant(i))
	}
	link, err := srv.DevSignInLink(who)
	if err != nil {
		return nil, err
	}
	return &devConsole{url: srv.URL(), signIn: link}, nil
}

// printDevConsole says where the console is and how to sign in.
func printDevConsole(w io.Writer, c *devConsole) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "Web console: %s\n  sign in (once, as an operator of every dev tenant): %s\n\n", c.url, c.signIn)
}
