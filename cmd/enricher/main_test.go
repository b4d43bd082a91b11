package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// run runs the built binary without any stack.
func run(args ...string) (string, int) {
	out, err := exec.Command(enricherBin, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	return string(out), 0
}

func TestUnknownCommandExits2AndHelpExits0(t *testing.T) {
	if out, code := run("frobnicate"); code != 2 || strings.TrimSpace(out) != "enricher: unknown command frobnicate (run 'enricher --help' for the commands)" {
		t.Fatalf("enricher frobnicate: exit %d, %q", code, out)
	}
	if out, code := run(); code != 2 || !strings.Contains(out, "Usage: enricher") {
		t.Fatalf("enricher without a command: exit %d, %q", code, out)
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		if out, code := run(args...); code != 0 || !strings.Contains(out, "refresh") {
			t.Fatalf("enricher %s: exit %d, %q", args[0], code, out)
		}
	}
	for _, c := range commands {
		variants := [][]string{{c.name, "-h"}, {c.name, "--help"}}
		if c.sub != "" {
			first, _, _ := strings.Cut(c.sub, "|")
			variants = append(variants, []string{c.name, first, "-h"}, []string{c.name, first, "--help"})
		}
		if c.name == "refresh" {
			variants = append(variants, []string{"refresh", "cancel", "-h"})
		}
		for _, args := range variants {
			if out, code := run(args...); code != 0 {
				t.Errorf("enricher %s: exit %d, want 0:\n%s", strings.Join(args, " "), code, out)
			}
		}
	}
	// A bad flag is one line, exit 2.
	out, code := run("show", "--tenant", "acme", "--no-such-flag")
	if code != 2 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "flag provided but not defined: -no-such-flag") {
		t.Fatalf("a bad flag: exit %d, %q", code, out)
	}
}
