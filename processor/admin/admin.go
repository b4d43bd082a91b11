// Package admin is what an admin can do to the enrichment service: connect
// a tenant, record consent, map its attributes, remove it, start and cancel
// Runs, and read status, enrichments, dead letters and the control log, and
// replay dead letters. The `enricher` command and the web console both call
// it, so a rule (a tenant never connected is refused, a third mapped field
// is refused, a token Leadspace rejects is not published) lives once.
//
// Every change is one control event, signed with the admin key of the
// Config and carrying its author (By) as issued_by. The one-shot methods
// read the topics they need once per call, as a command does; Follow keeps
// the same reads caught up in memory for a long-lived process.
package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/leadspace"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Errors a caller tells apart with errors.Is; their messages are for
// people and never hold a token.
var (
	// ErrInvalid is bad input: a malformed tenant, a filter that cannot
	// match, a mapping without its company name. The CLI exits 2 on it
	// where a flag was at fault.
	ErrInvalid = errors.New("invalid")
	// ErrUnknownTenant: the topics hold nothing of the tenant.
	ErrUnknownTenant = errors.New("unknown tenant")
	// ErrNotConnected: consent, a mapping, a removal or a Run need a
	// connection first.
	ErrNotConnected = errors.New("not connected")
	// ErrRefused: the tenant's state does not allow the change (a Run of a
	// tenant without consent, a second Run while one is active).
	ErrRefused = errors.New("refused")
	// ErrUnauthorized: Leadspace does not accept the token (401).
	ErrUnauthorized = errors.New("leadspace does not accept the token")
	// ErrCreditsExhausted: the Leadspace program has no credits or is not
	// valid (427).
	ErrCreditsExhausted = errors.New("leadspace program has no credits")
	// ErrToken: a token reference the service would not resolve, or a raw
	// token that cannot be published safely (no seal key, no plaintext).
	ErrToken = errors.New("token refused")
)

// adminError is an error of one of the classes above with its own message.
type adminError struct {
	class error
	msg   string
	err   error // the cause, when there is one
}

func (e *adminError) Error() string   { return e.msg }
func (e *adminError) Is(t error) bool { return t == e.class }
func (e *adminError) Unwrap() error   { return e.err }

func fail(class error, format string, args ...any) error {
	return &adminError{class: class, msg: fmt.Sprintf(format, args...)}
}

// Registry is where the schemas are registered (a Confluent-compatible
// schema registry).
type Registry struct {
	URL, Username, Password string
}

// Config is what Open needs. Zero values take the documented defaults.
type Config struct {
	// Kafka is how to reach the cluster (brokers required).
	Kafka processor.Kafka
	// Topics names the topics. Default: processor's defaults
	// (profile-unified, leadspace-control, ...).
	Topics processor.Topics
	// Registry is the schema registry; required unless Codec is set.
	Registry Registry
	// Codec, when set, is used instead of connecting to Registry (the
	// embedded stack and tests hold one already).
	Codec *schemas.Codec
	// Auth verifies control events and, holding a signing key, signs every
	// event the admin publishes. With no key at all, events are neither
	// checked nor signed (development only); with verifying keys but no
	// signing key, reads work and every change is refused.
	Auth controlplane.Auth
	// Tokens is where a token reference may point: the same allowlist as
	// the service's, so a reference the service would refuse is refused
	// before it is published. Default: env: names with the default prefix,
	// no file:, no plain:.
	Tokens controlplane.TokenSources
	// SealTo is the service's public seal key (x25519:...). When set, a
	// token is published sealed to it (sealed:...), never as a reference.
	SealTo string
	// LeadspaceURL is where Connect verifies a token with a real call.
	// Default: leadspace.DefaultBaseURL.
	LeadspaceURL string
	// SkipVerify publishes a connection without the verification call (no
	// network to Leadspace from here). Default: verify.
	SkipVerify bool
	// LeadspaceTPS is the program's rate, for the Run preview's duration
	// estimate. Default: 30 (the published tier); at most 10,000.
	LeadspaceTPS float64
	// BulkThreshold is the number of waiting records at which the service
	// switches from single calls to bulk, for the estimate. Default: 20.
	BulkThreshold int
}

func (c *Config) setDefaults() {
	c.Topics = c.Topics.WithDefaults()
	if c.LeadspaceURL == "" {
		c.LeadspaceURL = leadspace.DefaultBaseURL
	}
	if c.LeadspaceTPS == 0 {
		c.LeadspaceTPS = 30
	}
	if c.BulkThreshold == 0 {
		c.BulkThreshold = 20
	}
}

// Validate checks the configuration after defaults, naming the setting at
// fault.
func (c Config) Validate() error {
	c.setDefaults()
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	switch {
	case c.Codec == nil && c.Registry.URL == "":
		return errors.New("schema-registry-url: required")
	case c.LeadspaceTPS <= 0 || c.LeadspaceTPS > 10_000:
		return fmt.Errorf("leadspace-tps: %v is outside (0, 10000]", c.LeadspaceTPS)
	case c.BulkThreshold < 1:
		return fmt.Errorf("leadspace-bulk-threshold: %d is below 1", c.BulkThreshold)
	}
	return nil
}

// Admin performs admin actions against one cluster. It is safe for
// concurrent use.
type Admin struct {
	cfg   Config
	codec *schemas.Codec
	prod  *processor.Producer
	log   *zap.Logger
}

// Open validates cfg, connects to the registry (unless cfg.Codec is set)
// and prepares a producer. log may be nil.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Admin, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	a := &Admin{cfg: cfg, codec: cfg.Codec, log: log}
	if a.codec == nil {
		codec, err := NewCodec(ctx, cfg.Registry, cfg.Topics)
		if err != nil {
			return nil, err
		}
		a.codec = codec
	}
	prod, err := processor.NewProducer(cfg.Kafka, a.codec)
	if err != nil {
		return nil, err
	}
	a.prod = prod
	return a, nil
}

// Close flushes and closes the producer.
func (a *Admin) Close() error {
	if a.prod == nil {
		return nil
	}
	return a.prod.Close()
}

// Codec is the codec the admin reads and writes with.
func (a *Admin) Codec() *schemas.Codec { return a.codec }

// Topics are the topics after defaults.
func (a *Admin) Topics() processor.Topics { return a.cfg.Topics }

// NewCodec connects to the registry and registers our schemas, failing
// fast with the registry's address when it is unreachable or refuses one.
func NewCodec(ctx context.Context, r Registry, topics processor.Topics) (*schemas.Codec, error) {
	if r.URL == "" {
		return nil, errors.New("schema-registry-url: required")
	}
	opts := []sr.ClientOpt{sr.URLs(r.URL)}
	if r.Username != "" {
		opts = append(opts, sr.BasicAuth(r.Username, r.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema-registry-url: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	codec, err := schemas.NewCodec(ctx, cl, processor.Subjects(topics))
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", r.URL, err)
	}
	return codec, nil
}

// CheckTenant refuses a missing or malformed tenant id.
func CheckTenant(tenant string) error {
	if strings.TrimSpace(tenant) == "" {
		return fail(ErrInvalid, "tenant: required (--tenant T)")
	}
	if strings.Contains(tenant, "/") {
		return fail(ErrInvalid, "tenant: %q must not contain '/' (keys are tenant/profile)", tenant)
	}
	return nil
}

// readErr names the topic when a read ran out of time (ReadAll names it
// for every other error).
func readErr(topic string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("read %s: %w (is the broker reachable and the topic there?)", topic, err)
	}
	return err
}

// zapEvent is what the log says of a published event: never a token.
func zapEvent(ev schemas.Control) []zap.Field {
	return []zap.Field{zap.String("tenant", ev.TenantID), zap.String("kind", ev.Kind()), zap.String("event_id", ev.EventID),
		zap.Int64("sequence", ev.Sequence), zap.String("issued_by", ev.IssuedBy), zap.String("key_id", ev.KeyID)}
}

func zapReplay(s ReplaySummary, by string) []zap.Field {
	return []zap.Field{zap.String("replay_id", s.ReplayID), zap.Int("replayed", s.Replayed), zap.String("by", by)}
}
