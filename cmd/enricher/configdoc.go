package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The flag table of docs/configuration.md is rendered from the flags that
// `enricher run` binds, so the reference cannot drift from the command:
// TestConfigurationDocIsCurrent fails when the file differs from what the
// flags render, and rewrites it with -update. Prose about the settings lives
// outside the markers and is kept as written.
const (
	configDocPath  = "../../docs/configuration.md"
	configDocBegin = "<!-- generated: flags (go test ./cmd/enricher -run TestConfigurationDocIsCurrent -update); edit the usage texts in cmd/enricher, not this table -->"
	configDocEnd   = "<!-- end generated: flags -->"
)

// configSections groups the flags of `enricher run` for the reader, in the
// order they are shown. Every flag must be in exactly one section: a new
// flag without one makes rendering fail, so it cannot go undocumented.
var configSections = []struct {
	title string
	flags []string
}{
	{"Kafka and the schema registry", []string{"brokers", "tls", "tls-ca-file", "tls-cert-file", "tls-key-file",
		"sasl-mechanism", "sasl-username", "sasl-password",
		"schema-registry-url", "schema-registry-username", "schema-registry-password"}},
	{"Topics", []string{"profiles-topic", "control-topic", "enriched-topic", "dlq-topic", "status-topic", "journal-topic"}},
	{"Consumer group", []string{"group", "group-instance-id", "allow-dynamic-membership", "session-timeout", "heartbeat-interval", "rebalance-timeout"}},
	{"Pipeline", []string{"max-in-flight-bytes", "memory-limit", "window", "stall-after", "commit-interval", "shutdown-timeout"}},
	{"Leadspace", []string{"leadspace-url", "leadspace-tps", "leadspace-timeout", "leadspace-give-up-after",
		"leadspace-max-attempts", "leadspace-bulk-threshold", "leadspace-free-polls", "leadspace-breaker-open"}},
	{"Control events and tokens", []string{"admin-public-keys", "admin-key", "admin-key-file",
		"token-seal-key", "token-seal-key-file", "allow-plaintext-tokens", "token-env-prefix", "token-dir"}},
	{"Observing", []string{"http-addr", "pprof", "log-format", "log-level"}},
}

// runSettings binds the flags of `enricher run` the way cmdRun does.
func runSettings() *settings {
	s := newSettings("run")
	var f serviceFlags
	f.bind(s)
	return s
}

// renderConfiguration writes the flag tables of s, one per section.
func renderConfiguration(w io.Writer, s *settings) error {
	placed := map[string]bool{}
	var errs []error
	for _, sec := range configSections {
		fmt.Fprintf(w, "\n### %s\n\n| flag | environment | default | meaning |\n|---|---|---|---|\n", sec.title)
		for _, name := range sec.flags {
			f := s.Lookup(name)
			switch {
			case f == nil:
				errs = append(errs, fmt.Errorf("section %q names --%s, which enricher run does not have", sec.title, name))
				continue
			case placed[name]:
				errs = append(errs, fmt.Errorf("--%s is in two sections", name))
				continue
			}
			placed[name] = true
			fmt.Fprintf(w, "| `--%s` | `%s` | %s | %s |\n", f.Name, EnvName(f.Name), defaultCell(f), usageCell(f.Usage))
		}
	}
	s.VisitAll(func(f *flag.Flag) {
		if !placed[f.Name] {
			errs = append(errs, fmt.Errorf("--%s is in no section: add it to configSections in cmd/enricher/configdoc.go", f.Name))
		}
	})
	return errors.Join(errs...)
}

// defaultCell shows a default as `enricher run -h` does, with byte counts
// also in MiB.
func defaultCell(f *flag.Flag) string {
	if f.DefValue == "" {
		return "—"
	}
	out := "`" + f.DefValue + "`"
	if n, err := strconv.ParseInt(f.DefValue, 10, 64); err == nil && n > 0 && n%(1<<20) == 0 {
		out += fmt.Sprintf(" (%d MiB)", n>>20)
	}
	return out
}

// usageCell keeps a usage text inside its table cell.
func usageCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// withGeneratedFlags returns doc with the text between the markers replaced
// by the rendered tables.
func withGeneratedFlags(doc []byte, s *settings) ([]byte, error) {
	begin := bytes.Index(doc, []byte(configDocBegin))
	end := bytes.Index(doc, []byte(configDocEnd))
	if begin < 0 || end < begin {
		return nil, fmt.Errorf("markers %q and %q not found in order", configDocBegin, configDocEnd)
	}
	var b bytes.Buffer
	b.Write(doc[:begin+len(configDocBegin)])
	b.WriteString("\n")
	if err := renderConfiguration(&b, s); err != nil {
		return nil, err
	}
	b.WriteString("\n")
	b.Write(doc[end:])
	return b.Bytes(), nil
}
