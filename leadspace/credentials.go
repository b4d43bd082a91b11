package leadspace

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Credentials of one Leadspace program. Exactly one of Token (a perpetual
// key) or OAuth is set. The secret parts never leave this package except in
// the Authorization header: String and Key are safe to log.
type Credentials struct {
	Token string
	OAuth *OAuthCredentials
}

// OAuthCredentials are the Program ID and secret Leadspace emails for the
// OAuth flow (POST /oauth/authorize).
type OAuthCredentials struct {
	ProgramID string
	Secret    string
}

// Key is a stable, non-secret id of the credentials: the first 8 bytes of a
// SHA-256 over the secret material, in hex. It keys programs in maps, logs
// and metrics, so one program shows up under one name everywhere.
func (c Credentials) Key() string {
	h := sha256.New()
	if c.OAuth != nil {
		h.Write([]byte("oauth\x00" + c.OAuth.ProgramID + "\x00" + c.OAuth.Secret))
	} else {
		h.Write([]byte("token\x00" + c.Token))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// String is redacted so credentials can be passed to loggers by accident
// without leaking anything.
func (c Credentials) String() string { return "program:" + c.Key() }

// GoString keeps %#v redacted too.
func (c Credentials) GoString() string { return c.String() }

// Format makes every fmt verb (%v, %+v, %s, %#v...) print the redacted form.
func (c Credentials) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// MaxTokenBytes bounds a bearer token. Real keys are far shorter; anything
// longer is a mistake (a pasted file, a key and its comment) we refuse to send.
const MaxTokenBytes = 4096

// checkBearer refuses a token that cannot be a bearer token: empty, longer
// than MaxTokenBytes, or holding anything but visible ASCII (no spaces,
// newlines or control characters; RFC 6750 b64token is narrower still, but
// Leadspace documents no alphabet, so we do not insist on it). Go would
// refuse most such tokens as a header value, which looks like a connection
// failure and would open the breaker; this check fails fast with ClassAuth
// instead, and sends nothing. The message never contains the token.
func checkBearer(tok string) error {
	var why string
	switch {
	case tok == "":
		why = "token is empty"
	case len(tok) > MaxTokenBytes:
		why = fmt.Sprintf("token is longer than %d bytes", MaxTokenBytes)
	default:
		for i := 0; i < len(tok); i++ {
			if b := tok[i]; b <= ' ' || b >= 0x7f {
				why = fmt.Sprintf("token has a space, control or non-ASCII byte at offset %d", i)
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return &Error{Class: ClassAuth, Reason: ReasonInvalidToken, Err: errors.New(why)}
}

func (c Credentials) validate() error {
	if c.OAuth == nil && c.Token != "" {
		if err := checkBearer(c.Token); err != nil {
			return err
		}
	}
	switch {
	case c.Token != "" && c.OAuth != nil:
		return fmt.Errorf("leadspace: credentials %s: set Token or OAuth, not both", c)
	case c.Token == "" && c.OAuth == nil:
		return fmt.Errorf("leadspace: credentials: Token or OAuth is required")
	case c.OAuth != nil && (c.OAuth.ProgramID == "" || c.OAuth.Secret == ""):
		return fmt.Errorf("leadspace: credentials %s: OAuth needs ProgramID and Secret", c)
	}
	return nil
}
