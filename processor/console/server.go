// Package console is the web console of the enrichment service: the
// screens of the product page (the Leadspace tile, Connect, Map data, Run,
// My enrichments, View enriched data, Remove) for tenant admins, and dead
// letters, replay and the control log for operators.
//
// It is a separate process that holds the admin signing key; every change
// goes through package admin, as the `enricher` commands do, with the
// signed-in identity as the event's author. Pages are rendered on the
// server from views that admin keeps in memory, so a page never reads a
// topic; every form works without script.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/admin"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
)

//go:embed templates static
var files embed.FS

// Server is the console's HTTP server.
type Server struct {
	cfg      Config
	admin    *admin.Admin
	views    *admin.Views
	runs     *runHistory
	sessions *sessions
	login    *oidcLogin
	pages    *pages
	log      *zap.Logger
	now      func() time.Time
}

// Backend is what the console works with: the admin that makes every
// change, and the cluster it follows for the Run history.
type Backend struct {
	Admin *admin.Admin
	// Kafka is the admin's cluster.
	Kafka processor.Kafka
	// Auth verifies control events (the admin's keys).
	Auth controlplane.Auth
}

// Start makes a console and starts following the topics it shows, until
// ctx ends; it returns once the views caught up. Unless cfg.Dev, it
// discovers the OIDC issuer, so a wrong issuer fails here rather than at
// the first sign-in.
func Start(ctx context.Context, cfg Config, be Backend, log *zap.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, admin: be.Admin, pages: p, log: log, now: time.Now}
	s.sessions = newSessions(cfg.SessionLifetime, func() time.Time { return s.now() })
	if !cfg.Dev {
		if s.login, err = newOIDCLogin(ctx, &s.cfg); err != nil {
			return nil, err
		}
	}
	if s.views, err = be.Admin.Follow(ctx); err != nil {
		return nil, err
	}
	s.runs = newRunHistory(be.Admin.Codec(), be.Auth)
	go func() {
		if err := s.runs.Run(ctx, be.Kafka, be.Admin.Topics()); err != nil && ctx.Err() == nil {
			log.Warn("console: run history stopped following", zap.Error(err))
		}
	}()
	select {
	case <-s.runs.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s, nil
}

// DevSignInLink is a one-time link that signs whoever opens it in as who.
// Only in dev mode.
func (s *Server) DevSignInLink(who Identity) (string, error) {
	if !s.cfg.Dev {
		return "", errors.New("dev sign-in links exist only in dev mode")
	}
	return s.cfg.PublicURL + "/dev/signin?token=" + url.QueryEscape(s.sessions.addLink(who)), nil
}

// URL is the console's public address.
func (s *Server) URL() string { return s.cfg.PublicURL }

// Serve answers on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: zap.NewStdLog(s.log)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	err := srv.Serve(ln)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on cfg.Addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Handler is the console with its security middleware.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(files, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /signin", s.signIn)
	mux.HandleFunc("GET /auth/callback", s.callback)
	mux.HandleFunc("GET /dev/signin", s.devSignIn)
	mux.HandleFunc("POST /signout", s.signOut)
	mux.HandleFunc("GET /signedout", s.signedOut)
	mux.HandleFunc("GET /{$}", s.signedIn(s.home))
	for _, rt := range tenantRoutes(s) {
		mux.Handle("/t/{tenant}"+rt.Path, s.tenantRoute(rt))
	}
	for _, rt := range operatorRoutes(s) {
		mux.Handle(rt.Path, s.operatorRoute(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r) })
	return secureHeaders(crossOrigin(mux))
}

// route is one page: what GET shows and what POST changes (nil: the
// method is not allowed, answered only after access was checked).
type route struct {
	Path      string
	Get, Post handlerFunc
}

// handlerFunc is a page handler with the request's identity and tenant.
type handlerFunc func(w http.ResponseWriter, r *http.Request, rc *reqCtx)

// reqCtx is what a page knows about the request.
type reqCtx struct {
	who    Identity
	tenant string // "" outside tenant pages
}

// signedIn runs h for a signed-in user, sending others to sign in.
func (s *Server) signedIn(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.sessions.get(r)
		if !ok {
			s.needSignIn(w, r)
			return
		}
		h(w, r, &reqCtx{who: sess.who})
	}
}

// needSignIn sends a browser to sign in and back; other methods get 401.
func (s *Server) needSignIn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, "/signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
}

// tenantRoute checks that the user administers the path's tenant before
// anything else: to everyone else every method of every tenant page
// answers 404, so a tenant's existence does not leak either.
func (s *Server) tenantRoute(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.sessions.get(r)
		if !ok {
			s.needSignIn(w, r)
			return
		}
		tenant := r.PathValue("tenant")
		if !validTenant(tenant) || !sess.who.Administers(tenant) {
			s.notFound(w, r)
			return
		}
		s.dispatch(w, r, rt, &reqCtx{who: sess.who, tenant: tenant})
	})
}

// operatorRoute lets only operators in; to others the page does not exist.
func (s *Server) operatorRoute(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.sessions.get(r)
		if !ok {
			s.needSignIn(w, r)
			return
		}
		if !sess.who.Operator {
			s.notFound(w, r)
			return
		}
		s.dispatch(w, r, rt, &reqCtx{who: sess.who})
	})
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route, rc *reqCtx) {
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && rt.Get != nil:
		rt.Get(w, r, rc)
	case r.Method == http.MethodPost && rt.Post != nil:
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		rt.Post(w, r, rc)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// signIn starts a sign-in (or, in dev mode, says how to get a link).
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if s.cfg.Dev {
		s.render(w, r, http.StatusOK, "signin", &reqCtx{}, "Sign in", nil)
		return
	}
	s.login.begin(w, r, s.sessions, next)
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Dev {
		s.notFound(w, r)
		return
	}
	who, next, err := s.login.finish(w, r, s.sessions)
	if err != nil {
		s.log.Info("console sign-in refused", zap.Error(err))
		s.render(w, r, http.StatusUnauthorized, "signin", &reqCtx{}, "Sign in", map[string]any{"Error": err.Error()})
		return
	}
	s.log.Info("console sign-in", zap.String("who", who.Name), zap.Strings("tenants", who.Tenants), zap.Bool("operator", who.Operator))
	s.sessions.start(w, who)
	http.Redirect(w, r, next, http.StatusFound)
}

// devSignIn spends a one-time dev link. It is a GET that starts a session,
// like an OIDC callback: nothing of a tenant changes.
func (s *Server) devSignIn(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Dev {
		s.notFound(w, r)
		return
	}
	who, ok := s.sessions.takeLink(r.URL.Query().Get("token"))
	if !ok {
		s.render(w, r, http.StatusUnauthorized, "signin", &reqCtx{}, "Sign in",
			map[string]any{"Error": "this sign-in link was used already or is not valid; 'enricher dev' prints a new one at start"})
		return
	}
	s.sessions.start(w, who)
	http.Redirect(w, r, "/", http.StatusFound)
}

// signOut ends the session. It lands on a page of its own, not on
// /signin: a redirect to the identity provider right after a form post
// would break the CSP's form-action 'self'.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	s.sessions.end(w, r)
	http.Redirect(w, r, "/signedout", http.StatusSeeOther)
}

func (s *Server) signedOut(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "signin", &reqCtx{}, "Signed out", map[string]any{"Info": "You are signed out."})
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	rc := &reqCtx{}
	if sess, ok := s.sessions.get(r); ok {
		rc.who = sess.who
	}
	s.render(w, r, http.StatusNotFound, "notfound", rc, "Not found", nil)
}
