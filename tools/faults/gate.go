package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// gate is a reverse proxy between the enricher instances and the simulator
// that can make one program's calls fail for a while: the harness's way to
// inject "Leadspace answers 503 for 60 s on one program" without relying on
// simulator features. Calls it fails never reach the simulator (so they are
// not in its call log); the gate counts them itself.
type gate struct {
	url   string
	srv   *http.Server
	proxy *httputil.ReverseProxy
	// program names by bearer token ("program-1" is the first --token).
	programs map[string]string

	mu       sync.Mutex
	failProg string
	failTill time.Time
	status   int
	injected map[string]int // program -> calls answered by the gate
}

func newGate(simURL string, tokens []string) (*gate, error) {
	target, err := url.Parse(simURL)
	if err != nil {
		return nil, err
	}
	g := &gate{programs: map[string]string{}, injected: map[string]int{}}
	for i, t := range tokens {
		g.programs[t] = fmt.Sprintf("program-%d", i+1)
	}
	g.proxy = httputil.NewSingleHostReverseProxy(target)
	g.proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	// A caller that gives up (a cancelled call) is part of the test, not news.
	g.proxy.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g.url = "http://" + ln.Addr().String()
	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = g.srv.Serve(ln) }()
	return g, nil
}

// failFor makes every call of program answer status until d has passed.
func (g *gate) failFor(program string, status int, d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failProg, g.status, g.failTill = program, status, time.Now().Add(d)
}

func (g *gate) injectedCalls() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.injected {
		out[k] = v
	}
	return out
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/__sim/") {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		prog := g.programs[tok]
		g.mu.Lock()
		fail := prog != "" && prog == g.failProg && time.Now().Before(g.failTill)
		status := g.status
		if fail {
			g.injected[prog]++
		}
		g.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":%q,"details":"fault gate of the fault suite"}`, http.StatusText(status))
			return
		}
	}
	g.proxy.ServeHTTP(w, r)
}

func (g *gate) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = g.srv.Shutdown(ctx)
}
