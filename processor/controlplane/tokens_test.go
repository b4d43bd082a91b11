package controlplane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenReferences(t *testing.T) {
	private, public, err := GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseSealKey(private)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealToken(public, "acme", "tok-SECRET-1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "tok-SECRET-1") {
		t.Fatal("the sealed reference shows the token")
	}
	sealedNewline, err := SealToken(public, "acme", "tok-SECRET-1\nX-Injected: yes")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("acme", "tok-from-file\n")
	write("two-lines", "tok-SECRET-1\nsecond line\n")
	write("huge", strings.Repeat("a", MaxTokenBytes+1))
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("tok-SECRET-1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"LEADSPACE_TOKEN_ACME": "tok-from-env", "HOME": "/root", "LEADSPACE_TOKEN_SPACE": "tok with space",
		"ACME_TOKEN": "tok-SECRET-1"}
	getenv := func(k string) string { return env[k] }
	resolve := TokenSources{SealKey: key, Getenv: getenv, FileDir: dir}.Resolver()
	noFiles := TokenSources{SealKey: key, Getenv: getenv}.Resolver()
	otherPrefix := TokenSources{Getenv: getenv, EnvPrefix: "ACME_"}.Resolver()
	devResolve := TokenSources{AllowPlaintext: true}.Resolver()

	cases := []struct {
		name, tenant, ref, want, reason string
		resolve                         TokenResolver
	}{
		{"environment variable with the prefix", "acme", "env:LEADSPACE_TOKEN_ACME", "tok-from-env", "", resolve},
		{"environment variable without the prefix", "acme", "env:HOME", "", ReasonTokenRefused, resolve},
		{"the prefix alone", "acme", "env:LEADSPACE_TOKEN_", "", ReasonTokenRefused, resolve},
		{"unset variable", "acme", "env:LEADSPACE_TOKEN_MISSING", "", ReasonTokenUnresolvable, resolve},
		{"variable holding a space", "acme", "env:LEADSPACE_TOKEN_SPACE", "", ReasonTokenInvalid, resolve},
		{"configured prefix", "acme", "env:ACME_TOKEN", "tok-SECRET-1", "", otherPrefix},
		{"default prefix no longer applies", "acme", "env:LEADSPACE_TOKEN_ACME", "", ReasonTokenRefused, otherPrefix},
		{"file in the directory, trimmed", "acme", "file:" + filepath.Join(dir, "acme"), "tok-from-file", "", resolve},
		{"file relative to the directory", "acme", "file:acme", "tok-from-file", "", resolve},
		{"file with a newline inside", "acme", "file:two-lines", "", ReasonTokenInvalid, resolve},
		{"file too long", "acme", "file:huge", "", ReasonTokenInvalid, resolve},
		{"the password file", "acme", "file:/etc/passwd", "", ReasonTokenRefused, resolve},
		{"climbing out", "acme", "file:../../etc/passwd", "", ReasonTokenRefused, resolve},
		{"climbing out of an absolute path", "acme", "file:" + dir + "/../outside", "", ReasonTokenRefused, resolve},
		{"symlink out of the directory", "acme", "file:link", "", ReasonTokenUnresolvable, resolve},
		{"missing file", "acme", "file:nope", "", ReasonTokenUnresolvable, resolve},
		{"file references without a directory", "acme", "file:" + filepath.Join(dir, "acme"), "", ReasonTokenRefused, noFiles},
		{"sealed for this tenant", "acme", sealed, "tok-SECRET-1", "", resolve},
		{"sealed token holding a newline", "acme", sealedNewline, "", ReasonTokenInvalid, resolve},
		{"sealed token moved to another tenant", "globex", sealed, "", ReasonTokenUnresolvable, resolve},
		{"sealed without the service key", "acme", sealed, "", ReasonTokenUnresolvable, devResolve},
		{"tampered sealed token", "acme", sealed[:len(sealed)-2] + "AA", "", ReasonTokenUnresolvable, resolve},
		{"plaintext outside development", "acme", "plain:tok", "", ReasonTokenRefused, resolve},
		{"plaintext in development", "acme", "plain:tok", "tok", "", devResolve},
		{"plaintext holding a newline", "acme", "plain:tok\r\nX: y", "", ReasonTokenInvalid, devResolve},
		{"unknown scheme", "acme", "vault:x", "", ReasonTokenRefused, resolve},
		{"no scheme", "acme", "tok-SECRET-1", "", ReasonTokenRefused, resolve},
		{"a token with a colon pasted as the reference", "acme", "tok-SECRET-1:x", "", ReasonTokenRefused, resolve},
	}
	for _, c := range cases {
		got, err := c.resolve(c.tenant, c.ref)
		var te *TokenError
		switch {
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		case c.want == "" && err == nil:
			t.Errorf("%s: resolved to %q, want an error", c.name, got)
		case c.want == "" && (!errors.As(err, &te) || te.Reason != c.reason):
			t.Errorf("%s: error %v, want reason %s", c.name, err, c.reason)
		}
		if err != nil && strings.Contains(err.Error(), "tok-SECRET-1") {
			t.Errorf("%s: the error shows the token: %v", c.name, err)
		}
	}
	if got := redactRef(sealed); strings.Contains(got, sealed[10:30]) {
		t.Errorf("redacted reference %q still carries the sealed data", got)
	}
	for _, ref := range []string{"tok-SECRET-1", "tok-SECRET-1:x", "plain:tok-SECRET-1"} {
		if got := redactRef(ref); strings.Contains(got, "tok-SECRET-1") {
			t.Errorf("redactRef(%q) = %q shows the token", ref, got)
		}
	}
}

func TestBearerTokenCheck(t *testing.T) {
	for token, ok := range map[string]bool{
		"tok-abc_123.XYZ~+/=": true, "eyJhbGciOi.eyJwcm9n.sig-_": true, strings.Repeat("a", MaxTokenBytes): true,
		"": false, "a b": false, "a\nb": false, "a\rb": false, "a\tb": false, "a\x00b": false, "a\x7fb": false, "tök": false,
		strings.Repeat("a", MaxTokenBytes+1): false,
	} {
		if err := CheckBearerToken(token); (err == nil) != ok {
			t.Errorf("CheckBearerToken(%.20q) = %v, want ok=%v", token, err, ok)
		}
	}
}
