package simulator

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config of a Simulator. Defaults follow the research notes; switches exist
// for every fact the notes mark UNCERTAIN, so the client's tolerance can be
// tested against each variant.
type Config struct {
	// Programs the gateway knows. At least one.
	Programs []ProgramConfig
	// Latency of a single call that is answered 200. Default: 120ms
	Latency time.Duration
	// Jitter added to Latency, deterministic per call, in [-Jitter, +Jitter].
	// Default: 80ms; negative means none.
	Jitter time.Duration
	// Seed for generated ids, tokens and jitter. Firmographics depend only
	// on the input, never on the seed.
	Seed int64
	// BulkReadyAfter is how long after its submit a bulk's results are
	// ready, by the simulator's clock (POST /__sim/clock moves it too). Used
	// when BulkReadyAfterPolls is 0. Negative means ready at once.
	// Default: 1s
	BulkReadyAfter time.Duration
	// BulkReadyAfterPolls > 0 counts polls instead of time: that many polls
	// of a bulk are answered 204 before its results, however fast they come
	// (deterministic tests). Negative means ready at the first poll.
	// Default: 0 (ready by time, BulkReadyAfter)
	BulkReadyAfterPolls int
	// FreePolls: polls take no token from the program's bucket. Default:
	// false, polls count as transactions.
	// UNCERTAIN(docs/leadspace.md §7): whether polls count against the TPS;
	// both cases can be measured with this switch.
	FreePolls bool
	// CallLogLimit keeps only the newest calls in the call log, so long
	// benchmarks do not grow it without bound; Stats stay exact. 0 keeps
	// every call. Default: 0
	CallLogLimit int
	// AllowWebsiteOnly accepts company enrichment with a website and no
	// name. Default: false (name is required).
	AllowWebsiteOnly bool
	// SizeFieldStyle picks the names of the size and revenue objects:
	// "v4" (employees, revenue_dollar), "v3" (size, revenue) or "both".
	// Default: by the program's APIVersion.
	SizeFieldStyle string
	// NoMatchCompany is what data.company holds in a "Not Enriched" answer:
	// "empty" ({}), "absent" or "null". Default: "empty"
	NoMatchCompany string
	// EmitRetryAfter adds "Retry-After: 1" to 429 answers. Default: false,
	// as documented.
	EmitRetryAfter bool
	// SlowDelay is how long __sim_slow__ stalls. Default: 35s
	SlowDelay time.Duration
	// OAuthTTL is the lifetime of issued OAuth tokens. Default: 24h
	OAuthTTL time.Duration
	// Fixtures override generated companies, keyed by normalised domain or
	// normalised name. Values are merged over the generated company object.
	Fixtures map[string]map[string]any
	// Clock is the time source (tests may fix it). Default: time.Now
	Clock func() time.Time
}

// Unlimited credits: the program never runs out.
const Unlimited int64 = -1

// ProgramConfig is one Leadspace program.
type ProgramConfig struct {
	// ID is the Program ID (the OAuth "user"). Required.
	ID string
	// Secret is the OAuth password; empty disables OAuth for the program.
	Secret string
	// Tokens are perpetual API keys of this program.
	Tokens []string
	// Credits remaining; each enriched record spends one ("Not Enriched"
	// ones do not). Unlimited (-1) or any negative value never runs out;
	// 0 means exhausted from the start.
	Credits int64
	// TPS of the program's token bucket (burst = TPS). Default: 30
	TPS float64
	// ConfidenceThreshold: matches below this level ("HIGH", "MEDIUM",
	// "LOW", "VERY LOW") come back "Not Enriched". Default: none.
	ConfidenceThreshold string
	// APIVersion "v3" or "v4" shapes ids and size fields. Default: "v4"
	APIVersion string
}

func (c *Config) setDefaults() {
	if c.Latency == 0 {
		c.Latency = 120 * time.Millisecond
	}
	if c.Jitter == 0 {
		c.Jitter = 80 * time.Millisecond
	}
	if c.Jitter < 0 {
		c.Jitter = 0
	}
	if c.BulkReadyAfter == 0 {
		c.BulkReadyAfter = time.Second
	}
	if c.BulkReadyAfter < 0 {
		c.BulkReadyAfter = 0
	}
	if c.NoMatchCompany == "" {
		c.NoMatchCompany = "empty"
	}
	if c.SlowDelay == 0 {
		c.SlowDelay = 35 * time.Second
	}
	if c.OAuthTTL == 0 {
		c.OAuthTTL = 24 * time.Hour
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	for i := range c.Programs {
		p := &c.Programs[i]
		if p.TPS == 0 {
			p.TPS = 30
		}
		if p.APIVersion == "" {
			p.APIVersion = "v4"
		}
		p.ConfidenceThreshold = strings.ToUpper(strings.TrimSpace(p.ConfidenceThreshold))
	}
}

// Validate reports a configuration the simulator cannot serve.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Programs) == 0 {
		errs = append(errs, errors.New("simulator: at least one program is required"))
	}
	ids, tokens := map[string]bool{}, map[string]bool{}
	for _, p := range c.Programs {
		if p.ID == "" || ids[p.ID] {
			errs = append(errs, fmt.Errorf("simulator: program id %q is empty or repeated", p.ID))
		}
		ids[p.ID] = true
		for _, t := range p.Tokens {
			if t == "" || tokens[t] {
				errs = append(errs, fmt.Errorf("simulator: program %s: a token is empty or repeated", p.ID))
			}
			tokens[t] = true
		}
		if p.TPS <= 0 {
			errs = append(errs, fmt.Errorf("simulator: program %s: TPS must be positive", p.ID))
		}
		if p.APIVersion != "v3" && p.APIVersion != "v4" {
			errs = append(errs, fmt.Errorf("simulator: program %s: APIVersion must be v3 or v4", p.ID))
		}
		if _, ok := levelRank[p.ConfidenceThreshold]; !ok && p.ConfidenceThreshold != "" {
			errs = append(errs, fmt.Errorf("simulator: program %s: unknown ConfidenceThreshold %q", p.ID, p.ConfidenceThreshold))
		}
	}
	if c.CallLogLimit < 0 {
		errs = append(errs, errors.New("simulator: CallLogLimit must be 0 (unlimited) or positive"))
	}
	switch c.SizeFieldStyle {
	case "", "v3", "v4", "both":
	default:
		errs = append(errs, fmt.Errorf("simulator: SizeFieldStyle %q is not v3, v4 or both", c.SizeFieldStyle))
	}
	switch c.NoMatchCompany {
	case "empty", "absent", "null":
	default:
		errs = append(errs, fmt.Errorf("simulator: NoMatchCompany %q is not empty, absent or null", c.NoMatchCompany))
	}
	return errors.Join(errs...)
}
