package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
)

// cleanEnv is this process's environment without any ENRICHER_ setting, as
// a newcomer's shell has it.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ENRICHER_") {
			env = append(env, kv)
		}
	}
	return env
}

var percent = regexp.MustCompile(`(\d+)%`)

// checkPipeProgress wants plain lines (no "\r"), never past 100%, ending at 100%.
func checkPipeProgress(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "\r") {
		t.Fatalf("progress through a pipe uses \\r:\n%q", stderr)
	}
	last := -1
	for _, m := range percent.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.Atoi(m[1])
		if n > 100 {
			t.Fatalf("progress passed 100%%:\n%s", stderr)
		}
		last = n
	}
	if last != 100 || !strings.Contains(stderr, "done: every seeded event") {
		t.Fatalf("progress did not end at 100%% and say so:\n%s", stderr)
	}
}

// The newcomer path: dev prints what it seeded and commands that work as printed.
func TestDevPrintsCommandsThatWorkAsPrinted(t *testing.T) {
	dev := exec.Command(enricherBin, "dev", "--profiles", "40", "--leadspace-tps", "1000", "--leadspace-latency", "5ms")
	dev.Env = cleanEnv()
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb syncBuffer
	dev.Stderr = &errb
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() { _ = dev.Process.Kill() })
	var out syncBuffer
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
		}
		exited <- dev.Wait()
	}()
	retrytest.Until(t, 90*time.Second, func() (bool, string) {
		return strings.Contains(out.String(), "enricher tail") && strings.Contains(errb.String(), "done: every seeded event (45) has its output"),
			"dev printed:\n" + out.String() + errb.String()
	})
	banner := out.String()
	for _, want := range []string{"tenant-1", "token dev-token-tenant-1", "export ENRICHER_BROKERS=", "export ENRICHER_SCHEMA_REGISTRY_URL=",
		"export ENRICHER_ADMIN_KEY=", "go install ./cmd/enricher"} {
		if !strings.Contains(banner, want) {
			t.Fatalf("dev's banner lacks %q:\n%s", want, banner)
		}
	}
	env := cleanEnv()
	var examples []string
	_, tryThese, _ := strings.Cut(banner, "Then try")
	for _, line := range strings.Split(banner, "\n") {
		if kv, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
			env = append(env, kv)
		}
	}
	for _, line := range strings.Split(tryThese, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "enricher ") {
			examples = append(examples, line)
		}
	}
	wants := map[string]string{"status": "tenant-1", "show": "ENRICHED", "refresh --tenant tenant-1 --dry-run": "would call Leadspace",
		"refresh --tenant tenant-1": "requested", "dlq": "decode.", "replay": "not replayable", "tail": "tenant-1/"}
	for _, ex := range examples {
		args := strings.Fields(ex)[1:]
		if args[0] == "tail" {
			args = append(args, "--from-beginning", "--limit", "1") // as printed it follows forever
		}
		cmd := exec.Command(enricherBin, args...)
		cmd.Env = env
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s (as printed by dev): %v\n%s", ex, err, got)
		}
		want := wants[args[0]]
		if w, ok := wants[strings.Join(args, " ")]; ok {
			want = w
		}
		if !strings.Contains(string(got), want) {
			t.Errorf("%s printed no %q:\n%s", ex, want, got)
		}
	}
	if len(examples) < 6 {
		t.Fatalf("dev printed %d examples:\n%s", len(examples), banner)
	}
	_ = dev.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("dev exited %v after SIGTERM:\n%s", err, errb.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("dev did not stop within 45s of SIGTERM")
	}
	checkPipeProgress(t, errb.String())
}

// --exit-when-done through a pipe: plain progress, a summary that adds up.
func TestDevExitWhenDoneSummaryAddsUp(t *testing.T) {
	cmd := exec.Command(enricherBin, "dev", "--profiles", "90", "--tenants", "3", "--without-consent", "1", "--bad-events", "4",
		"--leadspace-tps", "1000", "--leadspace-latency", "5ms", "--exit-when-done", "--timeout", "2m")
	cmd.Env = cleanEnv()
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("dev --exit-when-done: %v\n%s", err, errb.String())
	}
	var s struct {
		Profiles         int           `json:"profiles"`
		BadEvents        int           `json:"bad_events"`
		Enriched         int           `json:"enriched"`
		NotMatched       int           `json:"not_matched"`
		Skipped          int           `json:"skipped"`
		DeadLetters      int           `json:"dead_letters"`
		LeadspaceRecords int           `json:"leadspace_records"`
		Tenants          []tenantTally `json:"tenants"`
	}
	dec := json.NewDecoder(strings.NewReader(out.String()))
	if err := dec.Decode(&s); err != nil || dec.More() {
		t.Fatalf("stdout is not one JSON summary (%v):\n%s", err, out.String())
	}
	if s.Enriched+s.NotMatched+s.Skipped+s.DeadLetters != s.Profiles+s.BadEvents || s.Profiles != 90 || s.BadEvents != 4 {
		t.Fatalf("summary does not add up: %s", out.String())
	}
	if len(s.Tenants) != 3 || s.Tenants[2].LeadspaceRecords != 0 || s.Tenants[2].Skipped != 30 || s.LeadspaceRecords != s.Enriched+s.NotMatched {
		t.Fatalf("per tenant: %s", out.String())
	}
	checkPipeProgress(t, errb.String())
}
