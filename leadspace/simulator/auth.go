package simulator

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
)

// authorize serves the OAuth endpoints (docs/leadspace.md §1): POST with
// {user, pass, audience:"API_GATEWAY"} issues a token; PUT with
// {user, refreshToken} exchanges a refresh token (single use) for a new
// pair. Wrong credentials get a bare 401. OAuth calls count against the
// program's rate (UNCERTAIN in the notes).
func (s *Simulator) authorize(c *exchange) {
	if !c.readBody() {
		return
	}
	var body map[string]any // rare: no need for the fast reader
	_ = json.Unmarshal(c.body, &body)
	user := field(body, "user")
	s.mu.Lock()
	p := s.programs[user]
	ok := p != nil && p.cfg.Secret != ""
	if ok && c.r.Method == http.MethodPost {
		ok = field(body, "pass") == p.cfg.Secret && field(body, "audience") == "API_GATEWAY"
	} else if ok {
		rt := field(body, "refreshToken")
		ok = rt != "" && s.refresh[rt] == p
		if ok {
			delete(s.refresh, rt)
		}
	}
	s.mu.Unlock()
	if !ok {
		c.send(http.StatusUnauthorized, nil)
		return
	}
	c.prog = p
	if !c.applyFaults() || !c.rateLimit() {
		return
	}
	s.mu.Lock()
	n := s.next()
	tok := "sim-" + hex.EncodeToString([]byte(s.id("token", n)))[:40]
	refresh := "simr-" + hex.EncodeToString([]byte(s.id("refresh", n)))[:40]
	expires := s.now().Add(s.cfg.OAuthTTL)
	s.oauth[tok] = issued{p: p, expires: expires}
	s.refresh[refresh] = p
	s.mu.Unlock()
	c.send(http.StatusOK, map[string]any{"token": tok, "refreshToken": refresh, "expiration": expires.Unix()})
}
