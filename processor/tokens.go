package processor

import (
	"crypto/ecdh"
	"errors"
	"fmt"
	"os"
	"strings"
)

// TokenResolver turns a tenant's token reference into the Leadspace token.
// Control events carry references, not tokens, so the topic (and every copy
// of it) never holds a key to a paid account.
type TokenResolver func(tenant, ref string) (string, error)

// TokenSources configures which reference schemes are accepted.
type TokenSources struct {
	// AllowPlaintext accepts "plain:TOKEN" references. Only for development.
	// Default: false.
	AllowPlaintext bool
	// Getenv reads environment variables. Default: os.Getenv.
	Getenv func(string) string
	// ReadFile reads files. Default: os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// SealKey opens "sealed:" references (see SealToken). Default: none,
	// sealed references are refused.
	SealKey *ecdh.PrivateKey
}

// Resolver builds the resolver for env:NAME, file:PATH, sealed:DATA (with a
// seal key) and (if allowed) plain:TOKEN references. Errors never contain
// the token.
func (s TokenSources) Resolver() TokenResolver {
	getenv, readFile := s.Getenv, s.ReadFile
	if getenv == nil {
		getenv = os.Getenv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	return func(tenant, ref string) (string, error) {
		scheme, rest, ok := strings.Cut(ref, ":")
		if !ok || rest == "" {
			return "", errors.New("token reference must be env:NAME, file:PATH or sealed:DATA")
		}
		var token string
		switch scheme {
		case "env":
			token = getenv(rest)
			if token == "" {
				return "", fmt.Errorf("environment variable %s is empty or unset", rest)
			}
		case "file":
			b, err := readFile(rest)
			if err != nil {
				return "", fmt.Errorf("token file: %w", err)
			}
			token = strings.TrimSpace(string(b))
		case "sealed":
			if s.SealKey == nil {
				return "", errors.New("sealed token references need the service's token seal key")
			}
			var err error
			if token, err = openSealed(s.SealKey, tenant, rest); err != nil {
				return "", err
			}
		case "plain":
			if !s.AllowPlaintext {
				return "", errors.New("plaintext token references are refused outside development")
			}
			token = rest
		default:
			return "", fmt.Errorf("unknown token reference scheme %q", scheme)
		}
		if token == "" {
			return "", errors.New("token is empty")
		}
		return token, nil
	}
}

// redactRef shows a reference without any token it may carry.
func redactRef(ref string) string {
	scheme, _, _ := strings.Cut(ref, ":")
	switch scheme {
	case "env", "file":
		return ref
	case "sealed":
		return "sealed:[" + fmt.Sprint(len(ref)) + " bytes]"
	default:
		return scheme + ":[redacted]"
	}
}
