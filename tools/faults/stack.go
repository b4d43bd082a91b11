package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/enrichment/leadspace-enricher/schemas"
)

// Topic names: the service's defaults. Every scenario gets a fresh broker,
// so they never hold another scenario's records.
const (
	topicProfiles = "profile-unified"
	topicControl  = "leadspace-control"
	topicEnriched = "enriched-company"
	topicDLQ      = "enrichment-dlq"
	topicStatus   = "enrichment-status"
)

// stackConfig is what one stack is built with.
type stackConfig struct {
	repo, binDir, workDir string
	partitions            int
	simTPS                float64
	simLatency, simJitter time.Duration
	// programs: token per program, in order (program-1, program-2, ...).
	tokens []string
	// proxy puts the harness's fault gate between the instances and the
	// simulator (the 503 outage is injected there).
	proxy bool
	// instanceArgs are added to every `enricher run`; instanceEnv too.
	instanceArgs []string
	instanceEnv  []string
	// dynamic leaves out --group-instance-id: every restart is a new member.
	dynamic bool
	// simArgs are added to leadspace-sim (e.g. a switch for whether polls
	// count as transactions, once it has one).
	simArgs    []string
	group      string
	adminKey   string
	keepBroker bool
}

// stack is one broker, one simulator, one schema registry, an optional fault
// gate, and the enricher instances of a scenario.
type stack struct {
	cfg       stackConfig
	ps        *procs
	bootstrap string
	simURL    string // the simulator itself (controls, call log)
	lsURL     string // what instances call: the gate or the simulator
	registry  string
	gate      *gate
	codec     *schemas.Codec
	client    *kafka.Client
	runFlags  map[string]bool // flags `enricher run -h` lists
	runHelp   string

	mu        sync.Mutex
	instances []*instance
	brokerUp  bool
}

// instance is one `enricher run` process.
type instance struct {
	slot    int // 1..n: the instance's identity across restarts
	n       int // how many processes ran in this slot before it
	p       *proc
	http    string
	readyAt time.Time
	// killed is set when the harness sent the signal that ended it.
	killedBy string
}

func (s *stack) env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ENRICHER_") || strings.HasPrefix(kv, "LEADSPACE_TOKEN_") {
			continue
		}
		env = append(env, kv)
	}
	if s.cfg.adminKey != "" {
		env = append(env, "ENRICHER_ADMIN_KEY="+s.cfg.adminKey)
	}
	return append(env, extra...)
}

func (s *stack) broker(ctx context.Context, verb string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.cfg.repo, "tools/kafka/broker.sh"), verb)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return "", fmt.Errorf("broker.sh %s: %w\n%s", verb, err, errb.String())
	}
	return out.String(), nil
}

var reBootstrap = regexp.MustCompile(`KAFKA_BOOTSTRAP=(\S+)`)

// up starts the broker, registry and simulator, creates the topics and the
// codec. On error the caller still calls down.
func (s *stack) up(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.workDir, 0o755); err != nil {
		return err
	}
	out, err := s.broker(ctx, "start")
	if err != nil {
		return err
	}
	m := reBootstrap.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("broker.sh start printed no KAFKA_BOOTSTRAP: %q", out)
	}
	s.bootstrap, s.brokerUp = m[1], true

	reg, err := s.ps.start("registry", filepath.Join(s.cfg.workDir, "registry.log"), s.env(), s.bin("enricher"), "registry", "--addr", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if s.registry, err = reg.waitLog(ctx, regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`), 30*time.Second); err != nil {
		return err
	}
	simArgs := []string{"--addr", "127.0.0.1:0", "--tps", fmt.Sprint(s.cfg.simTPS), "--latency", s.cfg.simLatency.String(), "--jitter", s.cfg.simJitter.String()}
	for _, t := range s.cfg.tokens {
		simArgs = append(simArgs, "--token", t)
	}
	// A simulator that keeps only the newest calls (--call-log-limit) must
	// keep them all here: the figures are counted from the call log.
	if help := s.helpOf("leadspace-sim", "-h"); strings.Contains(help, "call-log-limit") && !strings.Contains(strings.Join(s.cfg.simArgs, " "), "call-log-limit") {
		simArgs = append(simArgs, "--call-log-limit", "0")
	}
	simArgs = append(simArgs, s.cfg.simArgs...)
	sim, err := s.ps.start("leadspace-sim", filepath.Join(s.cfg.workDir, "leadspace-sim.log"), s.env(), s.bin("leadspace-sim"), simArgs...)
	if err != nil {
		return err
	}
	if s.simURL, err = sim.waitLog(ctx, regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`), 30*time.Second); err != nil {
		return err
	}
	s.lsURL = s.simURL
	if s.cfg.proxy {
		if s.gate, err = newGate(s.simURL, s.cfg.tokens); err != nil {
			return err
		}
		s.lsURL = s.gate.url
	}
	if _, err := s.admin(ctx, "topics", "create", "--partitions", fmt.Sprint(s.cfg.partitions), "--replication-factor", "1"); err != nil {
		return err
	}
	cl, err := sr.NewClient(sr.URLs(s.registry))
	if err != nil {
		return err
	}
	subjects := map[schemas.Type]string{}
	for t, topic := range map[schemas.Type]string{schemas.ProfileUnified: topicProfiles, schemas.ControlEvent: topicControl,
		schemas.EnrichedCompany: topicEnriched, schemas.DeadLetter: topicDLQ, schemas.EnrichmentStatus: topicStatus} {
		subjects[t] = topic + "-value" // TopicNameStrategy, as the service registers them
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.codec, err = schemas.NewCodec(cctx, cl, subjects); err != nil {
		return err
	}
	s.client = &kafka.Client{Addr: kafka.TCP(s.bootstrap), Timeout: 5 * time.Second}
	s.runFlags, err = s.detectRunFlags(ctx)
	return err
}

func (s *stack) bin(name string) string { return filepath.Join(s.cfg.binDir, name) }

// down stops every process and the broker. Safe to call more than once.
func (s *stack) down() {
	// Instances first, so that none calls a simulator or registry that is gone.
	var wg sync.WaitGroup
	for _, in := range s.alive() {
		wg.Go(func() { in.p.stop(40 * time.Second) })
	}
	wg.Wait()
	s.ps.stopAll(10 * time.Second)
	if s.gate != nil {
		s.gate.close()
	}
	if s.brokerUp && !s.cfg.keepBroker {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if _, err := s.broker(ctx, "stop"); err != nil {
			fmt.Fprintf(os.Stderr, "faults: %v\n", err)
		}
		s.brokerUp = false
	}
}

// admin runs an `enricher` admin command against this stack and returns its
// output; env adds variables (token references resolve locally too).
func (s *stack) admin(ctx context.Context, args ...string) (string, error) {
	return s.adminEnv(ctx, nil, args...)
}

func (s *stack) adminEnv(ctx context.Context, env []string, args ...string) (string, error) {
	full := append([]string{}, args...)
	full = append(full, "--brokers", s.bootstrap)
	if args[0] != "topics" {
		full = append(full, "--schema-registry-url", s.registry)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin("enricher"), full...)
	cmd.Env = s.env(env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("enricher %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// helpOf returns what `bin args...` prints (its -h text).
func (s *stack) helpOf(bin string, args ...string) string {
	cmd := exec.Command(s.bin(bin), args...)
	cmd.Env = s.env()
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// detectRunFlags reads the flag names `enricher run -h` prints.
func (s *stack) detectRunFlags(ctx context.Context) (map[string]bool, error) {
	cmd := exec.CommandContext(ctx, s.bin("enricher"), "run", "-h")
	cmd.Env = s.env()
	out, _ := cmd.CombinedOutput()
	s.runHelp = string(out)
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([a-z0-9][a-z0-9-]*)`).FindAllSubmatch(out, -1) {
		flags[string(m[1])] = true
	}
	if !flags["brokers"] {
		return nil, fmt.Errorf("enricher run -h lists no --brokers flag:\n%s", out)
	}
	return flags, nil
}

// tokenEnvFlag is the flag of `enricher run` that allows environment token
// references by name or prefix (being added: issue 8's token allowlist),
// when the binary has one and --instance-arg does not set it already.
func (s *stack) tokenEnvFlag() string {
	for f := range s.runFlags {
		if strings.Contains(f, "token") && strings.Contains(f, "env") {
			for _, a := range s.cfg.instanceArgs {
				if strings.Contains(a, f) {
					return ""
				}
			}
			return f
		}
	}
	return ""
}

// tenantSetup is one tenant's control events.
type tenantSetup struct {
	id      string
	tokenIx int // index into cfg.tokens
	consent bool
}

func tokenEnv(tenant string) string {
	return "LEADSPACE_TOKEN_" + strings.ToUpper(strings.NewReplacer("-", "_").Replace(tenant))
}

// tokenEnvs is the environment that resolves every tenant's token reference.
func (s *stack) tokenEnvs(tenants []tenantSetup) []string {
	var env []string
	for _, t := range tenants {
		env = append(env, tokenEnv(t.id)+"="+s.cfg.tokens[t.tokenIx])
	}
	return env
}

// setupTenants connects each tenant with a token reference, maps the demo
// attributes and gives consent where asked, with the admin commands.
// Tenants are set up four at a time (a case with 101 tenants runs 303
// commands), each tenant's commands in order.
func (s *stack) setupTenants(ctx context.Context, tenants []tenantSetup) error {
	env := s.tokenEnvs(tenants)
	one := func(t tenantSetup) error {
		if _, err := s.adminEnv(ctx, env, "connect", "--tenant", t.id, "--skip-verify", "--token-ref", "env:"+tokenEnv(t.id)); err != nil {
			return err
		}
		if _, err := s.admin(ctx, "map", "--tenant", t.id, "--name", attrName, "--website", attrWebsite, "--location", attrLocation); err != nil {
			return err
		}
		if t.consent {
			if _, err := s.admin(ctx, "consent", "give", "--tenant", t.id, "--by", "faults@"+t.id); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(tenants))
	slots := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, t := range tenants {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = one(t)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

var reHTTPAddr = regexp.MustCompile(`"msg":"serving metrics and probes","addr":"([^"]+)"`)

// startInstance starts `enricher run` in slot (1-based) with only the
// required flags plus the addresses this machine needs, and waits until its
// /readyz answers 200 (readyWait 0: does not wait).
func (s *stack) startInstance(ctx context.Context, slot int, env []string, readyWait time.Duration) (*instance, error) {
	s.mu.Lock()
	n := 0
	for _, in := range s.instances {
		if in.slot == slot {
			n++
		}
	}
	s.mu.Unlock()
	args := []string{"run", "--brokers", s.bootstrap, "--schema-registry-url", s.registry, "--leadspace-url", s.lsURL,
		"--http-addr", "127.0.0.1:0"}
	if s.cfg.group != "" {
		args = append(args, "--group", s.cfg.group)
	}
	if s.runFlags["group-instance-id"] && !s.cfg.dynamic {
		args = append(args, "--group-instance-id", fmt.Sprintf("faults-%d", slot))
	}
	if s.cfg.dynamic && s.runFlags["allow-dynamic-membership"] {
		args = append(args, "--allow-dynamic-membership") // several instances without ids are refused otherwise
	}
	if f := s.tokenEnvFlag(); f != "" {
		args = append(args, "--"+f, "LEADSPACE_TOKEN_")
	}
	args = append(args, s.cfg.instanceArgs...)
	env = append(append([]string{}, env...), s.cfg.instanceEnv...)
	p, err := s.ps.start(fmt.Sprintf("enricher-%d.%d", slot, n), filepath.Join(s.cfg.workDir, fmt.Sprintf("enricher-%d.%d.log", slot, n)),
		s.env(env...), s.bin("enricher"), args...)
	if err != nil {
		return nil, err
	}
	in := &instance{slot: slot, n: n, p: p}
	s.mu.Lock()
	s.instances = append(s.instances, in)
	s.mu.Unlock()
	if readyWait == 0 {
		return in, nil
	}
	return in, in.waitReady(ctx, readyWait)
}

// waitReady waits for the HTTP address in the log, then for /readyz 200.
func (in *instance) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	addr, err := in.p.waitLog(ctx, reHTTPAddr, timeout)
	if err != nil {
		return err
	}
	in.http = "http://" + addr
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(in.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				in.readyAt = time.Now()
				return nil
			}
		}
		if !in.p.alive() {
			return fmt.Errorf("%s exited (%s) before /readyz answered 200; log %s", in.p.name, in.p.exitText(), in.p.logPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: /readyz not 200 within %s", in.p.name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// alive returns the instances whose process runs.
func (s *stack) alive() []*instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*instance
	for _, in := range s.instances {
		if in.p.alive() {
			out = append(out, in)
		}
	}
	return out
}

func (s *stack) allInstances() []*instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*instance(nil), s.instances...)
}

// generations reads the generation ids the instances logged, in order of
// first appearance, and how many commits the broker refused.
func (s *stack) generations() (gens []int, refused int) {
	seen := map[int]bool{}
	re := regexp.MustCompile(`"msg":"generation started".*?"generation":(\d+)`)
	for _, in := range s.allInstances() {
		f, err := os.Open(in.p.logPath)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if m := re.FindSubmatch(line); m != nil {
				var g int
				fmt.Sscan(string(m[1]), &g)
				if !seen[g] {
					seen[g] = true
					gens = append(gens, g)
				}
			}
			if bytes.Contains(line, []byte(`"msg":"commit not accepted"`)) {
				refused++
			}
		}
		f.Close()
	}
	sort.Ints(gens)
	return gens, refused
}
