package console_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/console"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Tenants of the test stack: A and B, each its own Leadspace program.
const (
	tenantA, tenantB = "tenant-a", "tenant-b"
	tokenA, tokenB   = "token-of-a", "token-of-b"
)

// env is the embedded stack (kfake, registry, Leadspace simulator), a
// running processor as `enricher dev` runs it, the admin, and the console
// in dev mode on a loopback port.
type env struct {
	t       testing.TB
	stack   *embedded.Stack
	auth    controlplane.Auth
	admin   *admin.Admin
	console *console.Server
	url     string
	prod    *processor.Producer
	group   string // the service's consumer group
}

type envOpt struct {
	programs   []simulator.ProgramConfig // beside tenant A's and B's
	profiles   int                       // per tenant
	attrs      func(i int) map[string]string
	noService  bool
	consoleCfg func(*console.Config)
}

func newEnv(t testing.TB, o envOpt) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stack, err := embedded.Start(ctx, embedded.Options{Programs: append([]simulator.ProgramConfig{
		{ID: tenantA, Tokens: []string{tokenA}, TPS: 1000, Credits: simulator.Unlimited},
		{ID: tenantB, Tokens: []string{tokenB}, TPS: 1000, Credits: simulator.Unlimited},
	}, o.programs...), LeadspaceLatency: time.Millisecond, LeadspaceJitter: time.Millisecond, BulkReadyAfterPolls: 1, FreePolls: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	e := &env{t: t, stack: stack, auth: controlplane.Auth{Key: []byte("console-test-admin-key")}}
	if e.prod, err = processor.NewProducer(stack.Kafka, stack.Codec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.prod.Close() })
	if o.profiles > 0 {
		e.seedProfiles(o.profiles, o.attrs, tenantA, tenantB)
	}
	if !o.noService {
		e.startService(ctx)
	}
	if e.admin, err = admin.Open(ctx, admin.Config{Kafka: stack.Kafka, Topics: stack.Topics, Codec: stack.Codec, Auth: e.auth,
		Tokens: controlplane.TokenSources{AllowPlaintext: true}, LeadspaceURL: stack.LeadspaceURL, LeadspaceTPS: 1000}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.admin.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := console.Config{Addr: ln.Addr().String(), Dev: true}
	if o.consoleCfg != nil {
		o.consoleCfg(&cfg)
	}
	if e.console, err = console.Start(ctx, cfg, console.Backend{Admin: e.admin, Kafka: stack.Kafka, Auth: e.auth}, quietLog(t)); err != nil {
		t.Fatal(err)
	}
	e.url = e.console.URL()
	done := make(chan struct{})
	go func() { defer close(done); _ = e.console.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func quietLog(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// startService runs one processor instance with the admin's verifying key
// and plaintext tokens allowed, as `enricher dev` does.
func (e *env) startService(ctx context.Context) {
	t := e.t
	ls, err := leadspace.New(leadspace.Config{BaseURL: e.stack.LeadspaceURL, TPS: 1000, BackoffBase: 10 * time.Millisecond,
		BulkPollFirst: 5 * time.Millisecond, BulkPollMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		Breaker: leadspace.BreakerConfig{OpenTimeout: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	table := controlplane.NewTable(controlplane.TokenSources{AllowPlaintext: true}.Resolver())
	e.group = fmt.Sprintf("console-test-%d", groups.Add(1))
	cfg := processor.Config{Kafka: e.stack.Kafka, Topics: e.stack.Topics, Auth: e.auth,
		Group:          processor.GroupConfig{ID: e.group, SessionTimeout: 15 * time.Second, HeartbeatInterval: time.Second, RebalanceTimeout: 30 * time.Second},
		CommitInterval: 100 * time.Millisecond, DrainTimeout: 10 * time.Second, RetryBackoff: 20 * time.Millisecond, StallAfter: time.Second,
		StatusInterval: 100 * time.Millisecond, Logger: quietLog(t)}
	proc, err := processor.New(cfg, e.stack.Codec, table, processor.LeadspaceEnricher{Client: ls})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- proc.Run(runCtx); ls.Close() }()
	t.Cleanup(func() {
		stop()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("processor did not stop within 30s")
		}
	})
	select {
	case <-proc.ReadyC():
	case err := <-done:
		t.Fatalf("processor stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("processor not ready after 30s")
	}
}

var groups atomic.Int64

// companyAttrs are a demo company's attributes.
func companyAttrs(i int) map[string]string {
	return map[string]string{"CompanyName": fmt.Sprintf("Contoso %d Ltd", i), "Website": fmt.Sprintf("contoso%d.com", i),
		"Location": "Seattle, WA, US"}
}

func (e *env) seedProfiles(n int, attrs func(int) map[string]string, tenants ...string) {
	e.t.Helper()
	if attrs == nil {
		attrs = companyAttrs
	}
	var msgs []kafka.Message
	for i := 0; i < n; i++ {
		for _, t := range tenants {
			p := schemas.Profile{EventID: fmt.Sprintf("%s-ev-%d", t, i), TenantID: t, ProfileID: fmt.Sprintf("p%04d", i),
				Kind: "ACCOUNT", Attributes: attrs(i), UnifiedAt: time.Now().UTC().Truncate(time.Millisecond), Version: 1}
			v, err := e.stack.Codec.Encode(schemas.ProfileUnified, p.Native())
			if err != nil {
				e.t.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Topic: e.stack.Topics.Profiles, Key: []byte(t + "/" + p.ProfileID), Value: v})
		}
	}
	if err := e.prod.Write(context.Background(), msgs...); err != nil {
		e.t.Fatal(err)
	}
}

// setUp connects, consents and maps a tenant through the admin, as the
// CLI would.
func (e *env) setUp(tenant, token string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.admin.Connect(ctx, admin.ConnectRequest{Tenant: tenant, Token: token, By: "setup"}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.admin.Consent(ctx, admin.ConsentRequest{Tenant: tenant, Given: true, By: "setup"}); err != nil {
		e.t.Fatal(err)
	}
	if _, _, err := e.admin.Map(ctx, admin.MapRequest{Tenant: tenant, Name: "CompanyName", More: []admin.Field{{Role: admin.RoleWebsite, Attribute: "Website"}}, By: "setup"}); err != nil {
		e.t.Fatal(err)
	}
}

// client is a browser-like HTTP client with a cookie jar, signed in as who.
type client struct {
	e  *env
	hc *http.Client
}

func (e *env) signIn(who console.Identity) *client {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{e: e, hc: &http.Client{Jar: jar, Timeout: 2 * time.Minute}}
	link, err := e.console.DevSignInLink(who)
	if err != nil {
		e.t.Fatal(err)
	}
	resp := c.get(link)
	if resp.status != http.StatusOK {
		e.t.Fatalf("sign-in link: %d", resp.status)
	}
	return c
}

type answer struct {
	status int
	body   string
	header http.Header
	url    *url.URL
}

func (c *client) do(req *http.Request) answer {
	c.e.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b), header: resp.Header, url: resp.Request.URL}
}

func (c *client) get(u string) answer {
	c.e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = c.e.url + u
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return c.do(req)
}

// post sends a form as a same-origin browser would (Sec-Fetch-Site).
func (c *client) post(path string, form url.Values) answer {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", c.e.url)
	return c.do(req)
}

// topicEnds is the end offset of every partition of every topic.
func (e *env) topicEnds() map[string]int64 {
	e.t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(e.stack.Kafka.Brokers...)}
	out := map[string]int64{}
	t := e.stack.Topics
	for _, topic := range []string{t.Profiles, t.Control, t.Enriched, t.DeadLetters, t.Status, t.Journal} {
		ends, err := processor.TopicEnds(context.Background(), cl, topic)
		if err != nil {
			e.t.Fatal(err)
		}
		for p, end := range ends {
			out[fmt.Sprintf("%s/%d", topic, p)] = end
		}
	}
	return out
}

func admins(tenants ...string) console.Identity {
	return console.Identity{Subject: "sub-" + strings.Join(tenants, "-"), Name: "admin-of-" + strings.Join(tenants, "+") + "@example.com", Tenants: tenants}
}

func operator() console.Identity {
	return console.Identity{Subject: "sub-ops", Name: "ops@example.com", Operator: true, AllTenants: true}
}
