package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace/retry/retrytest"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// An instance without a group instance id says so at start, naming the
// setting; a second one beside it is refused unless dynamic membership is
// allowed explicitly.
func TestRunWithoutGroupInstanceIDWarnsAndRefusesASecondOne(t *testing.T) {
	stack := newStack(t)
	addTenant(t, stack, "acme", "env:LEADSPACE_TOKEN_ACME", true)
	var ps []schemas.Profile
	for i := 0; i < 10; i++ {
		ps = append(ps, company("acme", fmt.Sprintf("m%02d", i), fmt.Sprintf("Contoso %d", i), fmt.Sprintf("contoso%d.example.org", i)))
	}
	writeProfiles(t, stack, ps)
	env := cliEnv()
	env["ENRICHER_SESSION_TIMEOUT"], env["ENRICHER_HEARTBEAT_INTERVAL"] = "6s", "1s"
	first := startRun(t, stack, env)
	processedAll(t, stack, first)
	if logs := first.logs.String(); !strings.Contains(logs, "no group instance id") || !strings.Contains(logs, "ENRICHER_GROUP_INSTANCE_ID") {
		t.Fatalf("no warning naming ENRICHER_GROUP_INSTANCE_ID at start:\n%s", logs)
	}

	start := time.Now()
	_, stderr, code := cli(t, stack, env, "run")
	if code == 0 || !strings.Contains(stderr, "ENRICHER_GROUP_INSTANCE_ID") || !strings.Contains(stderr, "--allow-dynamic-membership") {
		t.Fatalf("a second instance without an id: exit %d, want a refusal naming the setting:\n%s", code, stderr)
	}
	t.Logf("refused after %s", time.Since(start).Round(100*time.Millisecond))

	allowed := map[string]string{"ENRICHER_ALLOW_DYNAMIC_MEMBERSHIP": "true"}
	for k, v := range env {
		allowed[k] = v
	}
	second := startRun(t, stack, allowed)
	retrytest.Until(t, 30*time.Second, func() (bool, string) {
		select {
		case err := <-second.exited:
			t.Fatalf("with --allow-dynamic-membership the second instance exited (%v):\n%s", err, second.logs.String())
		default:
		}
		return strings.Contains(second.logs.String(), `"msg":"enricher starting"`), second.logs.String()
	})
	second.stop(t)
	first.stop(t)
}
