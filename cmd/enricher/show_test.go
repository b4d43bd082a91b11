package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// Helpers shared by the tests of refresh, replay, show, tail, dlq and status.

const acmeToken = "tok-cli-test-Z8"

// newStack starts an embedded stack whose simulator knows acme's token and
// answers fast.
func newStack(t *testing.T) *embedded.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stack, err := embedded.Start(ctx, embedded.Options{LeadspaceLatency: 5 * time.Millisecond, LeadspaceJitter: -1,
		Programs: []simulator.ProgramConfig{{ID: "acme", Tokens: []string{acmeToken}, TPS: 1000, Credits: simulator.Unlimited}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	return stack
}

// cliEnv is the environment of the service and the commands in these tests.
func cliEnv() map[string]string {
	return map[string]string{"LEADSPACE_TOKEN_ACME": acmeToken, "ENRICHER_ADMIN_KEY": "cli-test-admin-key"}
}

// publish writes control events as an admin would, signed with cliEnv's key.
func publish(t *testing.T, stack *embedded.Stack, events ...schemas.Control) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range events {
		if events[i].IssuedAt.IsZero() {
			events[i].IssuedAt = now
		}
	}
	produce(t, stack, func(ctx context.Context, prod *processor.Producer) error {
		return publishControl(ctx, prod, stack.Topics.Control, controlplane.Auth{Key: []byte(cliEnv()["ENRICHER_ADMIN_KEY"])}, events)
	})
}

// produce writes to the stack with a producer of its own.
func produce(t *testing.T, stack *embedded.Stack, write func(ctx context.Context, prod *processor.Producer) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := write(ctx, prod); err != nil {
		t.Fatal(err)
	}
}

// addTenant connects, maps and (if consent) consents a tenant to acme's program.
func addTenant(t *testing.T, stack *embedded.Stack, tenant, tokenRef string, consent bool) {
	t.Helper()
	publish(t, stack, tenantControl(tenant, tokenRef, consent, time.Now().UTC().Truncate(time.Millisecond))...)
}

// company is a profile with the demo mapping's attributes.
func company(tenant, id, name, website string) schemas.Profile {
	return schemas.Profile{EventID: fmt.Sprintf("%s-%s-%d", tenant, id, time.Now().UnixNano()), TenantID: tenant, ProfileID: id, Kind: "ACCOUNT",
		Attributes: map[string]string{demoNameAttr: name, demoWebsiteAttr: website, "PrimaryEmail": "never-sent@" + id + ".example"},
		UnifiedAt:  time.Now().UTC().Truncate(time.Millisecond), Version: 1}
}

// writeProfiles writes profiles (and, for nil-profile keys, tombstones).
func writeProfiles(t *testing.T, stack *embedded.Stack, ps []schemas.Profile, tombstones ...string) {
	t.Helper()
	var msgs []kafka.Message
	for _, p := range ps {
		v, err := stack.Codec.Encode(schemas.ProfileUnified, p.Native())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Topic: stack.Topics.Profiles, Key: []byte(p.TenantID + "/" + p.ProfileID), Value: v})
	}
	for _, k := range tombstones {
		msgs = append(msgs, kafka.Message{Topic: stack.Topics.Profiles, Key: []byte(k)})
	}
	produce(t, stack, func(ctx context.Context, prod *processor.Producer) error { return prod.Write(ctx, msgs...) })
}

// records reads a whole topic.
func records(t *testing.T, stack *embedded.Stack, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []kafka.Message
	if err := processor.ReadAll(ctx, stack.Kafka, topic, func(m kafka.Message) { out = append(out, m) }); err != nil {
		t.Fatal(err)
	}
	return out
}

// processedAll waits until the service (group run-test) committed every
// record of the profiles topic: each has its output.
func processedAll(t *testing.T, stack *embedded.Stack, svc *runningService) {
	t.Helper()
	cl, err := stack.Kafka.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer processor.CloseClient(cl)
	// A client's transport keeps polling metadata until closed.
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	retrytest.Until(t, 3*time.Minute, func() (bool, string) {
		select {
		case err := <-svc.exited:
			t.Fatalf("enricher run exited (%v):\n%s", err, svc.logs.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ends, err := processor.TopicEnds(ctx, cl, stack.Topics.Profiles) // one client: each new one keeps its connections
		if err != nil {
			return false, err.Error()
		}
		var want int64
		for _, end := range ends {
			want += end
		}
		got := committedOffsets(t, ctx, stack, cl)
		return got == want, fmt.Sprintf("committed %d of %d inputs", got, want)
	})
}

// runOK runs a command that must succeed.
func runOK(t *testing.T, stack *embedded.Stack, args ...string) string {
	t.Helper()
	out, errOut, code := cli(t, stack, cliEnv(), args...)
	if code != 0 {
		t.Fatalf("enricher %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// runRefused runs a command that must fail with code, one line on stderr
// that says want, and nothing of the token.
func runRefused(t *testing.T, stack *embedded.Stack, code int, want string, args ...string) {
	t.Helper()
	out, errOut, got := cli(t, stack, cliEnv(), args...)
	line := strings.TrimSpace(errOut)
	if got != code || !strings.Contains(line, want) || strings.Contains(line, "\n") || strings.Contains(out+errOut, acmeToken) {
		t.Errorf("enricher %s: exit %d, stderr %q; want exit %d and one line saying %q", strings.Join(args, " "), got, errOut, code, want)
	}
}

func TestShowTailAndDLQListThroughTheBinary(t *testing.T) {
	stack := newStack(t)
	addTenant(t, stack, "acme", "env:LEADSPACE_TOKEN_ACME", true)
	addTenant(t, stack, "quiet", "env:LEADSPACE_TOKEN_ACME", false)
	var ps []schemas.Profile
	for i := 0; i < 27; i++ {
		ps = append(ps, company("acme", fmt.Sprintf("p%02d", i), fmt.Sprintf("Northwind %d", i), fmt.Sprintf("northwind%d.example.org", i)))
	}
	ps = append(ps, company("acme", "blank1", " ", "blank1.example.org"), company("acme", "blank2", "", ""),
		company("acme", "huge", strings.Repeat("x", 600), "huge.example.org"))
	writeProfiles(t, stack, ps)
	svc := startRun(t, stack, cliEnv())
	processedAll(t, stack, svc)

	// show: the current enrichments, in every format.
	out := runOK(t, stack, "show", "--tenant", "acme", "--format", "csv", "--limit", "0")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 1+29 || strings.Join(rows[0], ",") != strings.Join(admin.EnrichedCSVHeader, ",") {
		t.Fatalf("show --format csv: %d rows (want header + 29), %v:\n%s", len(rows), err, out)
	}
	var skipped []schemas.Enriched
	if err := json.Unmarshal([]byte(runOK(t, stack, "show", "--tenant", "acme", "--status", "skipped", "--format", "json")), &skipped); err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 2 || skipped[0].SkipReason != processor.ReasonMissingName || skipped[0].ProfileID != "blank1" {
		t.Fatalf("show --status skipped: %+v", skipped)
	}
	table := runOK(t, stack, "show", "--tenant", "acme", "--limit", "5")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 1+5+2 || !strings.HasPrefix(lines[0], "PROFILE") ||
		!strings.Contains(table, "5 of 29 current enrichments of tenant acme shown") {
		t.Fatalf("show --limit 5:\n%s", table)
	}

	// dlq list: the oversized name is a dead letter, not replayed yet.
	var dead []deadJSON
	if err := json.Unmarshal([]byte(runOK(t, stack, "dlq", "list", "--tenant", "acme", "--json")), &dead); err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Reason != processor.ReasonFieldTooLong || dead[0].Stage != schemas.StageValidate ||
		dead[0].ReplayCount != 0 || dead[0].ReplayedAt != nil || dead[0].Key != "acme/huge" {
		t.Fatalf("dlq list --json: %+v", dead)
	}
	if list := runOK(t, stack, "dlq", "list", "--reason", processor.ReasonFieldTooLong); !strings.Contains(list, "acme/huge") || !strings.Contains(list, "1 of 1 matching") {
		t.Fatalf("dlq list --reason:\n%s", list)
	}

	// tail: only what is new, only the tenant asked for.
	tail := exec.Command(enricherBin, "tail", "--tenant", "acme", "--limit", "3", "--json")
	tail.Env = stackEnv(stack, cliEnv())
	stdout, _ := tail.StdoutPipe()
	stderr, _ := tail.StderrPipe()
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tail.Process.Kill() })
	if line, err := bufio.NewReader(stderr).ReadString('\n'); err != nil || !strings.Contains(line, "following") {
		t.Fatalf("tail did not start following: %q %v", line, err)
	}
	writeProfiles(t, stack, []schemas.Profile{company("quiet", "q1", "Quiet 1", "q1.example.org"),
		company("acme", "new1", "Fabrikam 1", "fabrikam1.example.org"), company("acme", "new2", "Fabrikam 2", "fabrikam2.example.org"),
		company("quiet", "q2", "Quiet 2", "q2.example.org"), company("acme", "new3", "Fabrikam 3", "fabrikam3.example.org")})
	done := make(chan error, 1)
	var got []string
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var line struct {
				Type       string           `json:"type"`
				Enrichment schemas.Enriched `json:"enrichment"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				done <- fmt.Errorf("tail --json printed %q: %w", sc.Text(), err)
				return
			}
			got = append(got, line.Type+" "+line.Enrichment.TenantID+"/"+line.Enrichment.ProfileID)
		}
		_, _ = io.Copy(io.Discard, stdout)
		done <- tail.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("tail --limit 3 did not end; printed %v", got)
	}
	sort.Strings(got) // partitions interleave
	if strings.Join(got, ",") != "enriched acme/new1,enriched acme/new2,enriched acme/new3" {
		t.Fatalf("tail printed %v, want the 3 new acme outputs", got)
	}

	// Bad input: one line, non-zero.
	runRefused(t, stack, 2, "tenant: required", "show")
	runRefused(t, stack, 1, "unknown tenant nobody", "show", "--tenant", "nobody")
	runRefused(t, stack, 2, `format: "xml" is not table, json or csv`, "show", "--tenant", "acme", "--format", "xml")
	runRefused(t, stack, 2, `status: "FOO" is not one of`, "show", "--tenant", "acme", "--status", "foo")
	runRefused(t, stack, 2, "limit: -1 is negative", "show", "--tenant", "acme", "--limit", "-1")
	runRefused(t, stack, 2, "flag provided but not defined: -colour", "show", "--tenant", "acme", "--colour")
	runRefused(t, stack, 2, "must not contain '/'", "tail", "--tenant", "a/b")
	runRefused(t, stack, 1, "unknown tenant nobody", "tail", "--tenant", "nobody")
	runRefused(t, stack, 2, "usage: enricher dlq list", "dlq")
	runRefused(t, stack, 2, `stage: "FOO" is not one of`, "dlq", "list", "--stage", "foo")
	runRefused(t, stack, 2, "neither an RFC 3339 time", "dlq", "list", "--since", "last tuesday")
	runRefused(t, stack, 1, "unknown tenant nobody", "dlq", "list", "--tenant", "nobody")
	svc.stop(t)
}
