package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// registryFlags are the settings of `enricher registry`.
type registryFlags struct{ addr string }

func (f *registryFlags) bind(s *settings) {
	s.StringVar(&f.addr, "addr", "127.0.0.1:8081", "listen address of the development registry (port 0: any free port)")
}

// cmdRegistry serves a development schema registry: franz-go's srfake, an
// in-memory implementation of the Confluent Schema Registry REST API. It is
// for smoke tests and laptops without a real registry (Confluent's, or
// Apicurio's ccompat API): every schema is lost when it stops, and
// compatibility checks always pass. Never point production at it.
func cmdRegistry(args []string) error {
	s := newSettings("registry")
	var f registryFlags
	f.bind(s)
	if err := s.parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("addr: %w", err)
	}
	reg := srfake.NewRegistry()
	srv := &http.Server{Handler: reg.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// One line on stdout, so scripts can wait for it.
	fmt.Printf("development schema registry (in memory, not for production) listening on http://%s\n", ln.Addr())
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
