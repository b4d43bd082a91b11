package controlplane

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenResolver turns a tenant's token reference into the Leadspace token.
// Control events carry references, not tokens, so the topic (and every copy
// of it) never holds a key to a paid account. Errors are *TokenError and
// never contain the token.
type TokenResolver func(tenant, ref string) (string, error)

// Stable reasons why a connection's token cannot be used. Each pauses the
// tenant (gate.paused) with the reason in status; nothing is sent.
const (
	// ReasonTokenRefused: the reference points where the service does not
	// look (an env name without the prefix, a file outside the directory,
	// plain: outside development, an unknown scheme).
	ReasonTokenRefused = "token.refused"
	// ReasonTokenUnresolvable: allowed, but nothing usable is behind it (an
	// unset variable, a missing file, a sealed token that does not open).
	ReasonTokenUnresolvable = "token.unresolvable"
	// ReasonTokenInvalid: resolved to something that cannot be a bearer
	// token (control characters, spaces, non-ASCII, too long).
	ReasonTokenInvalid = "token.invalid"
)

// MaxTokenBytes bounds a token: real Leadspace tokens (API keys, JWTs) are
// far shorter, and a longer one is a reference pointing at the wrong thing.
const MaxTokenBytes = 4096

// DefaultTokenEnvPrefix is the prefix env: references must have.
const DefaultTokenEnvPrefix = "LEADSPACE_TOKEN_"

// TokenError is why a reference gave no usable token.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string { return e.Reason + ": " + e.Err.Error() }

func tokenErr(reason, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// TokenSources configures which references the service resolves. A control
// event is written by an admin, but the process that resolves it holds
// other secrets (its environment, its files): the allowlist keeps a
// reference from reaching them.
type TokenSources struct {
	// AllowPlaintext accepts "plain:TOKEN" references. Only for development.
	// Default: false.
	AllowPlaintext bool
	// EnvPrefix: "env:NAME" is resolved only when NAME starts with it, so an
	// event cannot send HOME or the SASL password to Leadspace.
	// Default: LEADSPACE_TOKEN_.
	EnvPrefix string
	// FileDir: "file:PATH" is resolved only for a file inside this
	// directory (PATH absolute under it, or relative to it); symlinks may not
	// leave it. Default: none, file references are refused.
	FileDir string
	// Getenv reads environment variables. Default: os.Getenv.
	Getenv func(string) string
	// SealKey opens "sealed:" references (see SealToken). Default: none,
	// sealed references are refused.
	SealKey *ecdh.PrivateKey
}

func (s TokenSources) envPrefix() string {
	if s.EnvPrefix == "" {
		return DefaultTokenEnvPrefix
	}
	return s.EnvPrefix
}

// Check says whether the service would look where ref points, without
// resolving it: admin commands use it to refuse a connection the service
// would refuse.
func (s TokenSources) Check(ref string) error {
	_, _, err := s.allowed(ref)
	return err
}

// allowed splits ref and applies the allowlist.
func (s TokenSources) allowed(ref string) (scheme, rest string, err error) {
	scheme, rest, ok := strings.Cut(ref, ":")
	if !ok || rest == "" {
		return "", "", tokenErr(ReasonTokenRefused, "token reference must be env:NAME, file:PATH or sealed:DATA")
	}
	switch scheme {
	case "env":
		if p := s.envPrefix(); !strings.HasPrefix(rest, p) || len(rest) == len(p) {
			return "", "", tokenErr(ReasonTokenRefused, "env:%s: only variables named %s<NAME> are token references", rest, p)
		}
	case "file":
		if s.FileDir == "" {
			return "", "", tokenErr(ReasonTokenRefused, "file: references are refused: no token directory is configured")
		}
		if _, err := s.relativeToDir(rest); err != nil {
			return "", "", err
		}
	case "sealed":
	case "plain":
		if !s.AllowPlaintext {
			return "", "", tokenErr(ReasonTokenRefused, "plaintext token references are refused outside development")
		}
	default:
		// The scheme is not echoed: a token pasted as a reference would show.
		return "", "", tokenErr(ReasonTokenRefused, "unknown token reference scheme (want env:, file:, sealed: or plain:)")
	}
	return scheme, rest, nil
}

// relativeToDir turns a file reference into a path local to FileDir.
func (s TokenSources) relativeToDir(path string) (string, error) {
	rel := path
	if filepath.IsAbs(path) {
		r, err := filepath.Rel(filepath.Clean(s.FileDir), filepath.Clean(path))
		if err != nil {
			return "", tokenErr(ReasonTokenRefused, "file:%s is not inside the token directory %s", path, s.FileDir)
		}
		rel = r
	}
	if !filepath.IsLocal(rel) {
		return "", tokenErr(ReasonTokenRefused, "file:%s is not inside the token directory %s", path, s.FileDir)
	}
	return rel, nil
}

// Resolver builds the resolver for env:NAME, file:PATH, sealed:DATA (with a
// seal key) and (if allowed) plain:TOKEN references, under the allowlist.
func (s TokenSources) Resolver() TokenResolver {
	getenv := s.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return func(tenant, ref string) (string, error) {
		scheme, rest, err := s.allowed(ref)
		if err != nil {
			return "", err
		}
		var token string
		switch scheme {
		case "env":
			if token = getenv(rest); token == "" {
				return "", tokenErr(ReasonTokenUnresolvable, "environment variable %s is empty or unset", rest)
			}
		case "file":
			if token, err = s.readFile(rest); err != nil {
				return "", err
			}
		case "sealed":
			if s.SealKey == nil {
				return "", tokenErr(ReasonTokenUnresolvable, "sealed token references need the service's token seal key")
			}
			if token, err = openSealed(s.SealKey, tenant, rest); err != nil {
				return "", &TokenError{Reason: ReasonTokenUnresolvable, Err: err}
			}
		case "plain":
			token = rest
		}
		if err := CheckBearerToken(token); err != nil {
			return "", err
		}
		return token, nil
	}
}

// readFile reads a token file through an os.Root, which refuses paths and
// symlinks that leave the directory. Surrounding whitespace (the newline an
// editor adds) is trimmed; anything else stays and is checked.
func (s TokenSources) readFile(path string) (string, error) {
	rel, err := s.relativeToDir(path)
	if err != nil {
		return "", err
	}
	root, err := os.OpenRoot(s.FileDir)
	if err != nil {
		return "", tokenErr(ReasonTokenUnresolvable, "token directory: %v", err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		return "", tokenErr(ReasonTokenUnresolvable, "file:%s: %v", path, pathCause(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxTokenBytes+64))
	if err != nil {
		return "", tokenErr(ReasonTokenUnresolvable, "file:%s: %v", path, pathCause(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// pathCause is an fs error without the path (which the message names once).
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// CheckBearerToken refuses what cannot be an HTTP bearer token: empty,
// longer than MaxTokenBytes, or holding anything but visible ASCII (a
// newline or control character would break the header, and Go's HTTP client
// refuses it only at send time, where it looks like a connection failure).
// The error never shows the token, not even a part of it.
func CheckBearerToken(token string) error {
	switch {
	case token == "":
		return tokenErr(ReasonTokenInvalid, "the token is empty")
	case len(token) > MaxTokenBytes:
		return tokenErr(ReasonTokenInvalid, "the token is longer than %d bytes", MaxTokenBytes)
	}
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == ' ':
			return tokenErr(ReasonTokenInvalid, "the token holds a space (byte %d)", i+1)
		case c < 0x20 || c == 0x7f:
			return tokenErr(ReasonTokenInvalid, "the token holds a control character such as a newline (byte %d)", i+1)
		case c > 0x7e:
			return tokenErr(ReasonTokenInvalid, "the token holds a non-ASCII byte (byte %d)", i+1)
		}
	}
	return nil
}

// redactRef shows a reference without any token it may carry: env and file
// references name where the token is, the rest is hidden.
func redactRef(ref string) string {
	scheme, _, _ := strings.Cut(ref, ":")
	switch scheme {
	case "env", "file":
		return ref
	case "sealed":
		// A known version is shown: it is not secret, and it tells admins
		// which seals are legacy v1.
		if v, _, _ := strings.Cut(ref[len("sealed:"):], "."); v == "v1" || v == "v2" {
			return "sealed:" + v + ".[" + fmt.Sprint(len(ref)) + " bytes]"
		}
		return "sealed:[" + fmt.Sprint(len(ref)) + " bytes]"
	case "plain":
		return "plain:[redacted]"
	default:
		return "[unrecognised reference, redacted]"
	}
}

// RedactTokenRef is redactRef for the admin commands.
func RedactTokenRef(ref string) string { return redactRef(ref) }
