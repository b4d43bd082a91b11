package processor

import (
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
	env := map[string]string{"ACME_TOKEN": "tok-from-env"}
	files := map[string]string{"/run/secrets/acme": "tok-from-file\n"}
	resolve := TokenSources{SealKey: key, Getenv: func(k string) string { return env[k] },
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, &fsError{}
		}}.Resolver()
	devResolve := TokenSources{AllowPlaintext: true}.Resolver()

	cases := []struct {
		name, tenant, ref, want, errContains string
		resolve                              TokenResolver
	}{
		{"environment variable", "acme", "env:ACME_TOKEN", "tok-from-env", "", resolve},
		{"unset variable", "acme", "env:MISSING", "", "MISSING is empty or unset", resolve},
		{"file, trimmed", "acme", "file:/run/secrets/acme", "tok-from-file", "", resolve},
		{"sealed for this tenant", "acme", sealed, "tok-SECRET-1", "", resolve},
		{"sealed token moved to another tenant", "globex", sealed, "", "does not open", resolve},
		{"sealed without the service key", "acme", sealed, "", "need the service's token seal key", devResolve},
		{"tampered sealed token", "acme", sealed[:len(sealed)-2] + "AA", "", "", resolve},
		{"plaintext outside development", "acme", "plain:tok", "", "refused outside development", resolve},
		{"plaintext in development", "acme", "plain:tok", "tok", "", devResolve},
		{"unknown scheme", "acme", "vault:x", "", "unknown token reference scheme", resolve},
		{"no scheme", "acme", "tok-SECRET-1", "", "must be", resolve},
	}
	for _, c := range cases {
		got, err := c.resolve(c.tenant, c.ref)
		switch {
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		case c.want == "" && err == nil:
			t.Errorf("%s: resolved to %q, want an error", c.name, got)
		case c.want == "" && c.errContains != "" && !strings.Contains(err.Error(), c.errContains):
			t.Errorf("%s: error %q, want it to say %q", c.name, err, c.errContains)
		}
		if err != nil && strings.Contains(err.Error(), "tok-SECRET-1") {
			t.Errorf("%s: the error shows the token: %v", c.name, err)
		}
	}
	if got := redactRef(sealed); strings.Contains(got, sealed[10:30]) {
		t.Errorf("redacted reference %q still carries the sealed data", got)
	}
}

type fsError struct{}

func (*fsError) Error() string { return "open: no such file" }
