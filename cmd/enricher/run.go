package main

import (
	"context"
	"crypto/ecdh"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// kafkaFlags are the connection settings every command that talks to Kafka
// and the registry shares.
type kafkaFlags struct {
	brokers                                list
	tls                                    bool
	caFile, certFile, keyFile              string
	saslMechanism, saslUser, saslPassword  string
	registryURL, registryUser, registryPwd string
	topics                                 processor.Topics
}

func (k *kafkaFlags) bind(s *settings) {
	s.Var(&k.brokers, "brokers", "Kafka bootstrap brokers, comma-separated host:port (required)")
	s.BoolVar(&k.tls, "tls", false, "connect to Kafka with TLS")
	s.StringVar(&k.caFile, "tls-ca-file", "", "PEM CA bundle for Kafka TLS (default: system roots)")
	s.StringVar(&k.certFile, "tls-cert-file", "", "PEM client certificate for mutual TLS")
	s.StringVar(&k.keyFile, "tls-key-file", "", "PEM client key for mutual TLS")
	s.StringVar(&k.saslMechanism, "sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)")
	s.StringVar(&k.saslUser, "sasl-username", "", "SASL username")
	s.StringVar(&k.saslPassword, "sasl-password", "", "SASL password")
	s.StringVar(&k.registryURL, "schema-registry-url", "", "Confluent-compatible schema registry URL (required)")
	s.StringVar(&k.registryUser, "schema-registry-username", "", "schema registry basic-auth user")
	s.StringVar(&k.registryPwd, "schema-registry-password", "", "schema registry basic-auth password")
	s.StringVar(&k.topics.Profiles, "profiles-topic", "profile-unified", "input topic of ProfileUnified events")
	s.StringVar(&k.topics.Control, "control-topic", "leadspace-control", "topic of connection, consent and mapping events")
	s.StringVar(&k.topics.Enriched, "enriched-topic", "enriched-company", "output topic of EnrichedCompany events")
	s.StringVar(&k.topics.DeadLetters, "dlq-topic", "enrichment-dlq", "dead letter topic")
	s.StringVar(&k.topics.Status, "status-topic", "enrichment-status", "status topic")
	s.StringVar(&k.topics.Journal, "journal-topic", "enrichment-journal", "internal topic of Leadspace bulks in flight (read again after a crash instead of paying twice)")
}

func (k *kafkaFlags) kafka() processor.Kafka {
	return processor.Kafka{Brokers: k.brokers, TLS: k.tls, CAFile: k.caFile, CertFile: k.certFile, KeyFile: k.keyFile,
		SASLMechanism: k.saslMechanism, SASLUsername: k.saslUser, SASLPassword: k.saslPassword}
}

// codec connects to the registry and registers our schemas.
func (k *kafkaFlags) codec(ctx context.Context) (*schemas.Codec, error) {
	return admin.NewCodec(ctx, k.registry(), k.topics)
}

func (k *kafkaFlags) registry() admin.Registry {
	return admin.Registry{URL: k.registryURL, Username: k.registryUser, Password: k.registryPwd}
}

// admin opens the admin package with these settings and auth; the
// command's own settings go into cfg.
func (k *kafkaFlags) admin(ctx context.Context, auth controlplane.Auth, cfg admin.Config) (*admin.Admin, error) {
	cfg.Kafka, cfg.Topics, cfg.Registry, cfg.Auth = k.kafka(), k.topics, k.registry(), auth
	return admin.Open(ctx, cfg, nil)
}

// serviceFlags are the settings of the service itself.
type serviceFlags struct {
	kafkaFlags
	adminKeyFlags
	group, instanceID                    string
	sessionTimeout, heartbeatInterval    time.Duration
	rebalanceTimeout                     time.Duration
	window                               int
	maxInFlightBytes, memoryLimit        int64
	stallAfter                           time.Duration
	commitInterval, shutdownTimeout      time.Duration
	leadspaceGiveUpAfter                 time.Duration
	leadspaceURL                         string
	leadspaceTPS                         float64
	leadspaceTimeout                     time.Duration
	leadspaceAttempts, leadspaceBulkFrom int
	leadspaceFreePolls                   bool
	breakerOpen                          time.Duration
	httpAddr                             string
	pprof                                bool
	logFormat, logLevel                  string
	allowPlaintextTokens                 bool
	allowDynamicMembership               bool
	sealKey, sealKeyFile                 string
	tokenPolicy                          tokenPolicyFlags
}

func (f *serviceFlags) bind(s *settings) {
	f.kafkaFlags.bind(s)
	f.adminKeyFlags.bind(s)
	s.StringVar(&f.group, "group", "leadspace-enricher", "consumer group of the profiles topic")
	s.StringVar(&f.instanceID, "group-instance-id", "", "static group membership: a stable id unique to this instance (e.g. the pod name); a restart within the session timeout keeps its partitions without a rebalance")
	s.BoolVar(&f.allowDynamicMembership, "allow-dynamic-membership", false, "start without group-instance-id although other instances of the group run without one (by default that is refused: every restart of any of them rebalances the group)")
	s.DurationVar(&f.sessionTimeout, "session-timeout", 10*time.Second, "the group drops a member silent this long; a crashed instance holds its partitions this long")
	s.DurationVar(&f.heartbeatInterval, "heartbeat-interval", time.Second, "time between heartbeats, at most a third of session-timeout; members learn of a rebalance at their next one")
	s.DurationVar(&f.rebalanceTimeout, "rebalance-timeout", 30*time.Second, "how long a rebalance waits for members to finish their work and rejoin; above shutdown-timeout")
	s.IntVar(&f.window, "window", 50000, "upper bound of inputs in flight across all partitions (they are sized per Leadspace program by its measured rate and bounded by max-in-flight-bytes)")
	s.Int64Var(&f.maxInFlightBytes, "max-in-flight-bytes", 64<<20, "memory bound of the inputs in flight; a full window stops fetching")
	s.Int64Var(&f.memoryLimit, "memory-limit", 224<<20, "soft limit of the Go runtime's memory in bytes: the GC works harder near it, and it rises to 1.25 x what is live when the tables outgrow it (0: the runtime's default; GOMEMLIMIT wins)")
	s.DurationVar(&f.stallAfter, "stall-after", 5*time.Second, "a Leadspace program that finishes nothing this long is stalled: its tenants' further inputs wait aside so others keep flowing")
	s.DurationVar(&f.commitInterval, "commit-interval", time.Second, "how often finished offsets are committed")
	s.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 20*time.Second, "time in-flight work gets to finish on SIGTERM or when a rebalance takes partitions away; below rebalance-timeout")
	s.StringVar(&f.leadspaceURL, "leadspace-url", leadspace.DefaultBaseURL, "Leadspace API gateway")
	s.Float64Var(&f.leadspaceTPS, "leadspace-tps", 30, "transactions per second per Leadspace program (the published tier is 30)")
	s.DurationVar(&f.leadspaceTimeout, "leadspace-timeout", 15*time.Second, "timeout of one Leadspace HTTP exchange; at most shutdown-timeout")
	s.DurationVar(&f.leadspaceGiveUpAfter, "leadspace-give-up-after", 15*time.Minute, "a record that keeps failing retryably (5xx, timeouts, resets, open breaker) goes to the DLQ after this long")
	s.IntVar(&f.leadspaceAttempts, "leadspace-max-attempts", 0, "cap on attempts per record (0: none, give-up-after bounds them); every attempt may spend a credit")
	s.BoolVar(&f.leadspaceFreePolls, "leadspace-free-polls", false, "bulk polls do not count against the program's rate (unconfirmed; by default they are paced as transactions)")
	s.IntVar(&f.leadspaceBulkFrom, "leadspace-bulk-threshold", 20, "records waiting per program at which bulk calls replace single calls")
	s.DurationVar(&f.breakerOpen, "leadspace-breaker-open", 10*time.Second, "how long an open breaker waits before probing Leadspace")
	s.StringVar(&f.httpAddr, "http-addr", ":8080", "address of /metrics, /healthz and /readyz (empty: off)")
	s.BoolVar(&f.pprof, "pprof", false, "also serve Go's profiles under /debug/pprof/ on http-addr (heap, CPU, goroutines; no data of the records)")
	s.StringVar(&f.logFormat, "log-format", "json", "log format: json or console")
	s.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	s.BoolVar(&f.allowPlaintextTokens, "allow-plaintext-tokens", false, "accept plain:TOKEN references in control events (development only)")
	s.StringVar(&f.sealKey, "token-seal-key", "", "private key that opens sealed:... token references ('enricher keys generate'); prefer the environment or the file")
	s.StringVar(&f.sealKeyFile, "token-seal-key-file", "", "file holding the token seal key")
	f.tokenPolicy.bind(s)
}

func (f *serviceFlags) validate() error {
	if err := f.kafka().Validate(); err != nil {
		return err
	}
	if f.registryURL == "" {
		return errors.New("schema-registry-url: required")
	}
	if f.window < 1 || f.window > 1_000_000 {
		return fmt.Errorf("window: %d is outside 1..1000000", f.window)
	}
	if f.leadspaceTPS <= 0 || f.leadspaceTPS > 10_000 {
		return fmt.Errorf("leadspace-tps: %v is outside (0, 10000]", f.leadspaceTPS)
	}
	if f.leadspaceAttempts < 0 || f.leadspaceAttempts > 100 {
		return fmt.Errorf("leadspace-max-attempts: %d is outside 0..100", f.leadspaceAttempts)
	}
	for name, d := range map[string]time.Duration{"commit-interval": f.commitInterval, "leadspace-timeout": f.leadspaceTimeout,
		"leadspace-breaker-open": f.breakerOpen, "leadspace-give-up-after": f.leadspaceGiveUpAfter, "shutdown-timeout": f.shutdownTimeout} {
		if err := positive(name, d); err != nil {
			return err
		}
	}
	if f.leadspaceTimeout > f.shutdownTimeout {
		return fmt.Errorf("leadspace-timeout: %s must not exceed shutdown-timeout (%s): a call in flight when partitions are revoked must be able to finish",
			f.leadspaceTimeout, f.shutdownTimeout)
	}
	return f.processorConfig(nil, nil).Check()
}

// processorConfig is the pipeline's configuration from the flags.
func (f *serviceFlags) processorConfig(log *zap.Logger, reg prometheus.Registerer) processor.Config {
	return processor.Config{Kafka: f.kafka(), Topics: f.topics.WithDefaults(),
		Group: processor.GroupConfig{ID: f.group, InstanceID: f.instanceID, SessionTimeout: f.sessionTimeout,
			HeartbeatInterval: f.heartbeatInterval, RebalanceTimeout: f.rebalanceTimeout},
		Window: f.window, MaxInFlightBytes: f.maxInFlightBytes, StallAfter: f.stallAfter,
		CommitInterval: f.commitInterval, DrainTimeout: f.shutdownTimeout, Logger: log, Registerer: reg}
}

// tokenSealKey reads the key that opens sealed token references, if any.
func (f *serviceFlags) tokenSealKey() (*ecdh.PrivateKey, error) {
	key := f.sealKey
	switch {
	case key != "" && f.sealKeyFile != "":
		return nil, errors.New("token-seal-key, token-seal-key-file: set one, not both")
	case f.sealKeyFile != "":
		b, err := os.ReadFile(f.sealKeyFile)
		if err != nil {
			return nil, fmt.Errorf("token-seal-key-file: %w", err)
		}
		key = string(b)
	case key == "":
		return nil, nil
	}
	k, err := controlplane.ParseSealKey(key)
	if err != nil {
		return nil, fmt.Errorf("token-seal-key: %w", err)
	}
	return k, nil
}

// service is a wired, not yet running enricher.
type service struct {
	proc   *processor.Processor
	ls     *leadspace.Client
	reg    *prometheus.Registry
	log    *zap.Logger
	flags  *serviceFlags
	codec  *schemas.Codec
	table  *controlplane.Table
	server *http.Server
}

func newService(ctx context.Context, f *serviceFlags, log *zap.Logger) (*service, error) {
	codec, err := f.codec(ctx)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// The processor journals every bulk Leadspace accepts (see
	// Processor.BulkAccepted); it exists once the client does.
	var journal atomic.Pointer[processor.Processor]
	ls, err := leadspace.New(leadspace.Config{BaseURL: f.leadspaceURL, TPS: f.leadspaceTPS, RequestTimeout: f.leadspaceTimeout,
		MaxAttempts: f.leadspaceAttempts, GiveUpAfter: f.leadspaceGiveUpAfter, FreePolls: f.leadspaceFreePolls, BulkThreshold: f.leadspaceBulkFrom, Breaker: leadspace.BreakerConfig{OpenTimeout: f.breakerOpen},
		Logger: log.Named("leadspace"), Registerer: reg,
		BulkAccepted: func(program, path string, refs []any) {
			if p := journal.Load(); p != nil {
				p.BulkAccepted(program, path, refs)
			}
		}})
	if err != nil {
		return nil, fmt.Errorf("leadspace: %w", err)
	}
	auth, err := f.auth()
	if err != nil {
		return nil, err
	}
	sources := controlplane.TokenSources{AllowPlaintext: f.allowPlaintextTokens}
	if sources.SealKey, err = f.tokenSealKey(); err != nil {
		return nil, err
	}
	if err := f.tokenPolicy.apply(&sources); err != nil {
		return nil, err
	}
	table := controlplane.NewTable(sources.Resolver())
	cfg := f.processorConfig(log, reg)
	cfg.Auth = auth
	proc, err := processor.New(cfg, codec, table, processor.LeadspaceEnricher{Client: ls})
	if err != nil {
		return nil, err
	}
	journal.Store(proc)
	return &service{proc: proc, ls: ls, reg: reg, log: log, flags: f, codec: codec, table: table}, nil
}

// serveHTTP exposes metrics and probes: /healthz answers while the process
// runs, /readyz only once the control table has caught up.
func (s *service) serveHTTP() error {
	if s.flags.httpAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.proc.Health(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if s.flags.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", s.flags.httpAddr)
	if err != nil {
		return fmt.Errorf("http-addr: %w", err)
	}
	s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.server.Serve(ln) }()
	s.log.Info("serving metrics and probes", zap.String("addr", ln.Addr().String()))
	return nil
}

func (s *service) run(ctx context.Context) error {
	defer s.ls.Close()
	if s.server != nil {
		defer s.server.Close()
	}
	return s.proc.Run(ctx)
}

func cmdRun(args []string) error {
	s := newSettings("run")
	var f serviceFlags
	f.bind(s)
	if err := s.parse(args); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	log, err := newLogger(f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	defer log.Sync()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := checkMembership(ctx, &f, log); err != nil {
		return err
	}
	go keepMemoryUnder(ctx, f.memoryLimit, log)
	svc, err := newService(ctx, &f, log)
	if err != nil {
		return err
	}
	if err := svc.serveHTTP(); err != nil {
		return err
	}
	log.Info("enricher starting", zap.Strings("brokers", f.brokers), zap.String("group", f.group))
	err = svc.run(ctx)
	log.Info("enricher stopped", zap.Error(err))
	return err
}
