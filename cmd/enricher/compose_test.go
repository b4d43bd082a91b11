package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/enrichment/leadspace-enricher/processor"
)

// No Docker engine runs where the tests run, so docker-compose.yml is kept
// honest here: every enricher service in it must be configured with settings
// its command really reads, have the required ones, and agree with the rest
// of the file on topics, ports and the token.

const composePath = "../../docker-compose.yml"

// enricherCommands builds each command's flag set the way the command does,
// without running it. A compose service running another command fails the
// test until it is added here.
var enricherCommands = map[string]struct {
	settings func() *settings
	required []string
}{
	"run": {func() *settings { s := newSettings("run"); var f serviceFlags; f.bind(s); return s },
		[]string{"brokers", "schema-registry-url"}},
	"topics create": {func() *settings { s := newSettings("topics create"); var f topicsFlags; f.bind(s); return s },
		[]string{"brokers"}},
	"seed": {func() *settings { s := newSettings("seed"); var f seedFlags; f.bind(s); return s },
		[]string{"brokers", "schema-registry-url", "token-ref"}},
	"registry": {func() *settings { s := newSettings("registry"); var f registryFlags; f.bind(s); return s }, nil},
}

var topicFlags = []string{"profiles-topic", "control-topic", "enriched-topic", "dlq-topic", "status-topic"}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Hostname    string         `yaml:"hostname"`
	Build       any            `yaml:"build"`
	Entrypoint  any            `yaml:"entrypoint"`
	Command     any            `yaml:"command"`
	Environment any            `yaml:"environment"`
	Ports       []any          `yaml:"ports"`
	DependsOn   any            `yaml:"depends_on"`
	Profiles    []string       `yaml:"profiles"`
	Extra       map[string]any `yaml:",inline"`
}

// enricherService is a compose service that runs an enricher command.
type enricherService struct {
	name, command string
	args          []string
	env           map[string]string
	values        map[string]string // effective flag values, as the command would see them
}

func loadCompose(t testing.TB, path string) composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", path)
	}
	return c
}

var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate resolves compose's ${VAR:-default} the way `docker compose`
// does with VAR unset, so the test does not depend on the caller's shell.
func interpolate(s string) string {
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return interpolation.FindStringSubmatch(m)[2]
	})
}

// words is a compose command or entrypoint: a list, or a string split on spaces.
func words(v any) []string {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return strings.Fields(interpolate(v))
	case []any:
		out := make([]string, len(v))
		for i, w := range v {
			out[i] = interpolate(fmt.Sprint(w))
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}

// environment is a compose environment: a map, or a list of NAME=value.
func environment(t testing.TB, service string, v any) map[string]string {
	out := map[string]string{}
	switch v := v.(type) {
	case nil:
	case map[string]any:
		for k, val := range v {
			if val == nil {
				val = ""
			}
			out[k] = interpolate(fmt.Sprint(val))
		}
	case []any:
		for _, item := range v {
			k, val, _ := strings.Cut(fmt.Sprint(item), "=")
			out[k] = interpolate(val)
		}
	default:
		t.Fatalf("service %s: environment is neither a map nor a list", service)
	}
	return out
}

// enricherCommand says which enricher command a service runs, if any.
func enricherCommand(s composeService) (command string, args []string, ok bool) {
	argv := append(words(s.Entrypoint), words(s.Command)...)
	if len(argv) == 0 || filepath.Base(argv[0]) != "enricher" {
		return "", nil, false
	}
	argv = argv[1:]
	if len(argv) == 0 {
		return "", nil, true
	}
	if argv[0] == "topics" && len(argv) > 1 {
		return "topics " + argv[1], argv[2:], true
	}
	return argv[0], argv[1:], true
}

// enricherServices checks (a) and (b) for every service that runs an enricher
// command and returns them with their effective settings.
func enricherServices(t testing.TB, c composeFile) map[string]*enricherService {
	t.Helper()
	// Only the compose file may configure the commands parsed below.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "ENRICHER_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	out := map[string]*enricherService{}
	for name, s := range c.Services {
		env := environment(t, name, s.Environment)
		command, args, ok := enricherCommand(s)
		if !ok {
			for k := range env {
				if strings.HasPrefix(k, "ENRICHER_") {
					t.Errorf("service %s sets %s but runs no enricher command", name, k)
				}
			}
			continue
		}
		cmd, known := enricherCommands[command]
		if !known {
			t.Errorf("service %s runs 'enricher %s', which this test does not know", name, command)
			continue
		}
		fs := cmd.settings()
		readable := map[string]bool{}
		for _, n := range fs.names() {
			readable[EnvName(n)] = true
		}
		var setenv []string
		for k, v := range env {
			if !strings.HasPrefix(k, "ENRICHER_") {
				continue
			}
			if !readable[k] {
				t.Errorf("service %s sets %s, which 'enricher %s' does not read (it reads %s)", name, k, command, strings.Join(sortedKeys(readable), ", "))
				continue
			}
			os.Setenv(k, v)
			setenv = append(setenv, k)
		}
		fs.SetOutput(new(strings.Builder))
		err := fs.parse(args)
		for _, k := range setenv {
			os.Unsetenv(k)
		}
		if err != nil {
			// Reported, and kept (with what was parsed) so that the checks
			// below do not also report the service as missing.
			t.Errorf("service %s: 'enricher %s' would refuse its settings: %v", name, command, err)
		}
		es := &enricherService{name: name, command: command, args: args, env: env, values: map[string]string{}}
		for _, n := range fs.names() {
			es.values[n] = fs.Lookup(n).Value.String()
		}
		for _, n := range cmd.required {
			if strings.TrimSpace(es.values[n]) == "" {
				t.Errorf("service %s runs 'enricher %s' without %s (set %s)", name, command, n, EnvName(n))
			}
		}
		out[name] = es
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// hostPort splits host:port; an empty host (":8080") is allowed.
func hostPort(t testing.TB, what, addr string) (string, string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: %q is not host:port: %v", what, addr, err)
	}
	return host, port
}

// serviceNamed finds the compose service a host name points at.
func serviceNamed(c composeFile, host string) (string, composeService, bool) {
	for name, s := range c.Services {
		if name == host || s.Hostname == host {
			return name, s, true
		}
	}
	return "", composeService{}, false
}

// containerPorts are the container sides of a service's ports.
func containerPorts(s composeService) []string {
	var out []string
	for _, p := range s.Ports {
		switch p := p.(type) {
		case map[string]any:
			out = append(out, fmt.Sprint(p["target"]))
		default:
			v := interpolate(fmt.Sprint(p))
			v, _, _ = strings.Cut(v, "/")
			out = append(out, v[strings.LastIndex(v, ":")+1:])
		}
	}
	return out
}

// flagValue is the value of --name in argv (as --name v or --name=v).
func flagValue(argv []string, name string) (string, bool) {
	for i, a := range argv {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(argv) {
			return argv[i+1], true
		}
	}
	return "", false
}

func dependsOn(s composeService, other, condition string) bool {
	switch d := s.DependsOn.(type) {
	case []any:
		return condition == "" && slices.Contains(d, any(other))
	case map[string]any:
		spec, ok := d[other]
		if !ok {
			return false
		}
		m, _ := spec.(map[string]any)
		return condition == "" || fmt.Sprint(m["condition"]) == condition
	}
	return false
}

// startsAfter: service from depends on service to, directly or transitively.
func startsAfter(c composeFile, from, to string) bool {
	seen := map[string]bool{}
	var visit func(string) bool
	visit = func(name string) bool {
		if seen[name] {
			return false
		}
		seen[name] = true
		for other := range c.Services {
			if dependsOn(c.Services[name], other, "") && (other == to || visit(other)) {
				return true
			}
		}
		return false
	}
	return visit(from)
}

func TestComposeMatchesService(t *testing.T) {
	c := loadCompose(t, composePath)
	services := enricherServices(t, c)
	checkCompose(t, c, services)
}

func checkCompose(t testing.TB, c composeFile, services map[string]*enricherService) {
	t.Helper()
	byCommand := map[string][]*enricherService{}
	for _, es := range services {
		byCommand[es.command] = append(byCommand[es.command], es)
	}
	if len(byCommand["run"]) == 0 {
		t.Fatal("no service runs 'enricher run'")
	}
	if len(byCommand["topics create"]) == 0 {
		t.Error("no service runs 'enricher topics create': nothing creates the compacted topics")
	}

	// The service's topic defaults are the processor's.
	def := processor.Topics{}.WithDefaults()
	runDefaults := enricherCommands["run"].settings()
	for flagName, want := range map[string]string{"profiles-topic": def.Profiles, "control-topic": def.Control,
		"enriched-topic": def.Enriched, "dlq-topic": def.DeadLetters, "status-topic": def.Status} {
		if got := runDefaults.Lookup(flagName).DefValue; got != want {
			t.Errorf("--%s defaults to %q, the processor to %q", flagName, got, want)
		}
	}
	// Every enricher service sees the same topics: topics create makes what
	// run and seed use.
	for _, n := range topicFlags {
		seen := map[string][]string{}
		for _, es := range services {
			if v, ok := es.values[n]; ok {
				seen[v] = append(seen[v], es.name)
			}
		}
		if len(seen) > 1 {
			t.Errorf("services disagree on %s: %v", EnvName(n), seen)
		}
	}

	for _, es := range services {
		// Brokers: a compose service that advertises that very address.
		for _, b := range strings.Split(es.values["brokers"], ",") {
			if b == "" {
				continue
			}
			host, port := hostPort(t, es.name+" brokers", b)
			name, ks, ok := serviceNamed(c, host)
			if !ok {
				t.Errorf("service %s: broker %s is no compose service", es.name, b)
				continue
			}
			adv := environment(t, name, ks.Environment)["KAFKA_ADVERTISED_LISTENERS"]
			if adv != "" && !strings.Contains(","+adv+",", "://"+host+":"+port+",") {
				t.Errorf("service %s: broker %s is not among %s's advertised listeners %s", es.name, b, name, adv)
			}
			if !startsAfter(c, es.name, name) {
				t.Errorf("service %s does not depend on %s, directly or through another service", es.name, name)
			}
		}
		// Schema registry: a compose service listening on that port.
		if u := es.values["schema-registry-url"]; u != "" {
			pu, err := url.Parse(u)
			if err != nil || pu.Host == "" {
				t.Errorf("service %s: schema-registry-url %q is not a URL", es.name, u)
				continue
			}
			name, rs, ok := serviceNamed(c, pu.Hostname())
			if !ok {
				t.Errorf("service %s: schema registry %s is no compose service", es.name, u)
				continue
			}
			if l := environment(t, name, rs.Environment)["SCHEMA_REGISTRY_LISTENERS"]; l != "" {
				lu, err := url.Parse(l)
				if err != nil || lu.Port() != pu.Port() {
					t.Errorf("service %s: schema-registry-url %s, but %s listens on %s", es.name, u, name, l)
				}
			}
			if !dependsOn(c.Services[es.name], name, "service_healthy") {
				t.Errorf("service %s does not wait for %s to be healthy", es.name, name)
			}
		}
	}

	for _, es := range byCommand["run"] {
		s := c.Services[es.name]
		// Probes and metrics: the port published is the one served.
		if addr := es.values["http-addr"]; addr != "" {
			_, port := hostPort(t, es.name+" http-addr", addr)
			if cp := containerPorts(s); len(cp) > 0 && !slices.Contains(cp, port) {
				t.Errorf("service %s serves HTTP on %s but publishes container ports %v", es.name, port, cp)
			}
		}
		// Leadspace: the simulator service, on the port it listens on.
		lu, err := url.Parse(es.values["leadspace-url"])
		if err != nil {
			t.Errorf("service %s: leadspace-url: %v", es.name, err)
		} else if name, ls, ok := serviceNamed(c, lu.Hostname()); ok {
			argv := append(words(ls.Entrypoint), words(ls.Command)...)
			if addr, ok := flagValue(argv, "addr"); ok {
				if _, port := hostPort(t, name+" --addr", addr); port != lu.Port() {
					t.Errorf("service %s: leadspace-url %s, but %s listens on %s", es.name, lu, name, addr)
				}
			}
			// The token the service resolves is one the simulator accepts.
			if tok, ok := flagValue(argv, "token"); ok {
				for _, seed := range byCommand["seed"] {
					ref := seed.values["token-ref"]
					envVar, isEnv := strings.CutPrefix(ref, "env:")
					if !isEnv {
						continue
					}
					if got, set := es.env[envVar]; !set {
						t.Errorf("service %s seeds token reference %s, but %s does not set %s", seed.name, ref, es.name, envVar)
					} else if got != tok {
						t.Errorf("service %s: %s does not match the simulator's --token", es.name, envVar)
					}
				}
			}
		}
		// Control events written here must pass the service's signature check.
		for _, other := range services {
			if other.command == "run" || other.command == "topics create" || other.command == "registry" {
				continue
			}
			for _, n := range []string{"admin-key", "admin-key-file"} {
				if other.values[n] != es.values[n] {
					t.Errorf("services %s and %s disagree on %s: control events of one are refused by the other", es.name, other.name, EnvName(n))
				}
			}
		}
		// Topics exist before the service starts.
		for _, tc := range byCommand["topics create"] {
			if !dependsOn(s, tc.name, "service_completed_successfully") {
				t.Errorf("service %s does not wait for %s to complete", es.name, tc.name)
			}
		}
	}

	// The broker is the Apache Kafka release every test runs against.
	want := testedKafkaVersion(t)
	for name, s := range c.Services {
		if image, tag, ok := strings.Cut(s.Image, ":"); ok && image == "apache/kafka" && tag != want {
			t.Errorf("service %s runs Apache Kafka %s, the tests run %s (tools/kafka/broker.sh)", name, tag, want)
		}
	}

	// Enricher services are built from tools/Dockerfile, which builds both binaries.
	for _, es := range services {
		s := c.Services[es.name]
		b, _ := s.Build.(map[string]any)
		if b == nil || fmt.Sprint(b["dockerfile"]) != "tools/Dockerfile" {
			t.Errorf("service %s is not built from tools/Dockerfile", es.name)
		}
	}
	df, err := os.ReadFile("../../tools/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"./cmd/enricher", "./cmd/leadspace-sim"} {
		if !strings.Contains(string(df), pkg) {
			t.Errorf("tools/Dockerfile does not build %s", pkg)
		}
	}
}

var brokerVersion = regexp.MustCompile(`(?m)^KAFKA_VERSION=(\S+)`)
var pomVersion = regexp.MustCompile(`<kafka\.version>([^<]+)</kafka\.version>`)

// testedKafkaVersion is the Apache Kafka release tools/kafka/broker.sh starts
// for the integration suite and the fault suite; its pom.xml must agree.
func testedKafkaVersion(t testing.TB) string {
	sh, err := os.ReadFile("../../tools/kafka/broker.sh")
	if err != nil {
		t.Fatal(err)
	}
	pom, err := os.ReadFile("../../tools/kafka/pom.xml")
	if err != nil {
		t.Fatal(err)
	}
	m, p := brokerVersion.FindSubmatch(sh), pomVersion.FindSubmatch(pom)
	if m == nil || p == nil {
		t.Fatal("no KAFKA_VERSION in tools/kafka/broker.sh or no kafka.version in tools/kafka/pom.xml")
	}
	if string(m[1]) != string(p[1]) {
		t.Fatalf("tools/kafka/broker.sh runs Kafka %s, pom.xml fetches %s", m[1], p[1])
	}
	return string(m[1])
}

// The check must be able to fail: a misspelt variable, a missing required
// setting and a wrong port are each reported.
func TestComposeCheckFails(t *testing.T) {
	failsOnEach(t, composePath, false, map[string]mutation{
		"unknown variable": {"ENRICHER_SCHEMA_REGISTRY_URL: http://schema-registry:8081\n      ENRICHER_LEADSPACE_URL",
			"ENRICHER_REGISTRY_URL: http://schema-registry:8081\n      ENRICHER_LEADSPACE_URL", "does not read"},
		"wrong registry port": {"ENRICHER_SCHEMA_REGISTRY_URL: http://schema-registry:8081\n      ENRICHER_LEADSPACE_URL",
			"ENRICHER_SCHEMA_REGISTRY_URL: http://schema-registry:8082\n      ENRICHER_LEADSPACE_URL", "listens on"},
		"wrong http port": {`ENRICHER_HTTP_ADDR: ":8080"`, `ENRICHER_HTTP_ADDR: ":9090"`, "publishes container ports"},
		"missing brokers": {"ENRICHER_BROKERS: kafka:9092\n      ENRICHER_PARTITIONS", "ENRICHER_PARTITIONS", "without brokers"},
		"wrong broker port": {"ENRICHER_BROKERS: kafka:9092\n      ENRICHER_SCHEMA_REGISTRY_URL",
			"ENRICHER_BROKERS: kafka:29092\n      ENRICHER_SCHEMA_REGISTRY_URL", "advertised listeners"},
		"bad value": {"ENRICHER_PARTITIONS: 6", "ENRICHER_PARTITIONS: six", "would refuse its settings"},
		"admin keys differ": {"      ENRICHER_TOKEN_REF: env:LEADSPACE_TOKEN_DEMO\n      ENRICHER_ADMIN_KEY: ${ENRICHER_ADMIN_KEY:-dev-admin-key-change-me}",
			"      ENRICHER_TOKEN_REF: env:LEADSPACE_TOKEN_DEMO\n      ENRICHER_ADMIN_KEY: other", "disagree on ENRICHER_ADMIN_KEY"},
		"topic names differ": {"      ENRICHER_PARTITIONS: 6", "      ENRICHER_PARTITIONS: 6\n      ENRICHER_ENRICHED_TOPIC: enriched", "disagree on ENRICHER_ENRICHED_TOPIC"},
		"simulator port":     {`"0.0.0.0:8089"`, `"0.0.0.0:8090"`, "leadspace-url"},
		"kafka version":      {"image: apache/kafka:4.4.0", "image: apache/kafka:4.1.0", "the tests run 4.4.0"},
	}, func(t *testing.T, rec *recorder, path string) {
		c := loadCompose(t, path)
		rec.run(func() { checkCompose(rec, c, enricherServices(rec, c)) })
	})
}

// recorder collects what a check reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.errs = append(r.errs, fmt.Sprint(args...))
	runtime.Goexit()
}

// run calls check on its own goroutine, so that a Fatal ends only the check.
func (r *recorder) run(check func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		check()
	}()
	<-done
}

func (r *recorder) found(substr string) bool {
	for _, e := range r.errs {
		if strings.Contains(e, substr) {
			return true
		}
	}
	return false
}

// mutation is one deliberate mismatch written into a checked file: from
// replaced by to, which the check must report with want.
type mutation struct{ from, to, want string }

// failsOnEach proves a file check can fail: for each mutation it writes
// the file at src with the mutation applied, runs check on the copy with a
// recorder, and fails unless the check reported the mutation's want. The
// copy goes to a temporary folder, or beside src when nearby (its
// relative references must resolve).
func failsOnEach(t *testing.T, src string, nearby bool, cases map[string]mutation, check func(t *testing.T, rec *recorder, path string)) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(string(b), tc.from) {
				t.Fatalf("%s no longer contains %q; update this test", src, tc.from)
			}
			path := filepath.Join(t.TempDir(), filepath.Base(src))
			if nearby {
				path = filepath.Join(filepath.Dir(src), "mutated-"+strings.ReplaceAll(name, " ", "-")+"-"+filepath.Base(src))
				defer os.Remove(path)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), tc.from, tc.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{TB: t}
			check(t, rec, path)
			if !rec.found(tc.want) {
				t.Errorf("the check did not report %q; it reported %q", tc.want, rec.errs)
			}
		})
	}
}
