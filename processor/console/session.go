package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Identity is who signed in, as the identity provider (or dev mode) said.
// It never comes from a form: the console writes Name as the author of
// every control event.
type Identity struct {
	// Subject is the provider's stable id of the user.
	Subject string
	// Name is what control events carry as issued_by: the e-mail, else the
	// preferred user name, else the subject.
	Name string
	// Tenants the user administers; AllTenants when the claim says "*".
	Tenants    []string
	AllTenants bool
	// Operator may see dead letters of every tenant, replay them and read
	// the control log.
	Operator bool
}

// Administers is whether the user may see and change the tenant.
func (id Identity) Administers(tenant string) bool {
	return id.AllTenants || slices.Contains(id.Tenants, tenant)
}

// session is one signed-in browser. Sessions live in memory only: a
// restarted console signs everyone out, which is what a short-lived admin
// session wants anyway.
type session struct {
	id      string
	who     Identity
	expires time.Time
}

// pendingLogin is a sign-in between the redirect to the provider and its
// callback: the PKCE verifier and nonce never leave the server.
type pendingLogin struct {
	state, verifier, nonce string
	next                   string
	expires                time.Time
}

// sessions holds sessions, pending sign-ins and dev sign-in links.
type sessions struct {
	mu       sync.Mutex
	lifetime time.Duration
	now      func() time.Time
	byID     map[string]*session
	logins   map[string]*pendingLogin // by the login cookie's value
	links    map[string]Identity      // one-time dev sign-in tokens
}

func newSessions(lifetime time.Duration, now func() time.Time) *sessions {
	return &sessions{lifetime: lifetime, now: now, byID: map[string]*session{},
		logins: map[string]*pendingLogin{}, links: map[string]Identity{}}
}

// Cookie names: __Host- makes the browser refuse them unless Secure, with
// Path=/ and no Domain, so no other host or path can set or read them.
const (
	sessionCookie = "__Host-enricher-console"
	loginCookie   = "__Host-enricher-login"
	loginLifetime = 10 * time.Minute
)

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start makes a session for who and sets its cookie.
func (s *sessions) start(w http.ResponseWriter, who Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	sess := &session{id: randomToken(), who: who, expires: s.now().Add(s.lifetime)}
	s.byID[sess.id] = sess
	setCookie(w, sessionCookie, sess.id, s.lifetime)
}

// get is the request's live session, if any.
func (s *sessions) get(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[c.Value]
	if !ok || !s.now().Before(sess.expires) {
		delete(s.byID, c.Value)
		return nil, false
	}
	return sess, true
}

// end drops the request's session and clears its cookie.
func (s *sessions) end(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.byID, c.Value)
		s.mu.Unlock()
	}
	setCookie(w, sessionCookie, "", -1)
}

// beginLogin remembers a sign-in in progress under a fresh cookie.
func (s *sessions) beginLogin(w http.ResponseWriter, l *pendingLogin) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	l.expires = s.now().Add(loginLifetime)
	id := randomToken()
	s.logins[id] = l
	setCookie(w, loginCookie, id, loginLifetime)
}

// takeLogin returns and forgets the request's pending sign-in: a callback
// is good once.
func (s *sessions) takeLogin(w http.ResponseWriter, r *http.Request) (*pendingLogin, bool) {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return nil, false
	}
	setCookie(w, loginCookie, "", -1)
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logins[c.Value]
	delete(s.logins, c.Value)
	if !ok || !s.now().Before(l.expires) {
		return nil, false
	}
	return l, true
}

// addLink makes a one-time sign-in token for who (dev mode).
func (s *sessions) addLink(who Identity) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := randomToken()
	s.links[t] = who
	return t
}

// takeLink spends a dev sign-in token.
func (s *sessions) takeLink(token string) (Identity, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	who, ok := s.links[token]
	delete(s.links, token)
	return who, ok
}

// sweep drops expired sessions and sign-ins; the caller holds mu.
func (s *sessions) sweep() {
	now := s.now()
	for id, sess := range s.byID {
		if !now.Before(sess.expires) {
			delete(s.byID, id)
		}
	}
	for id, l := range s.logins {
		if !now.Before(l.expires) {
			delete(s.logins, id)
		}
	}
}

// setCookie sets (maxAge > 0) or clears (maxAge < 0) a console cookie.
// SameSite=Lax, not Strict: the provider's redirect back to the callback
// is a cross-site navigation that must carry the login cookie.
func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}
