package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/enrichment/leadspace-enricher/leadspace/simulator"
	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/processor/controlplane"
	"github.com/enrichment/leadspace-enricher/processor/embedded"
)

// These tests run the real `enricher run` binary, configured only through
// its environment, and stop it the way an orchestrator does: SIGTERM.

var enricherBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "enricher-bin")
	if err != nil {
		panic(err)
	}
	enricherBin = filepath.Join(dir, "enricher")
	if out, err := exec.Command("go", "build", "-o", enricherBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build enricher: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestRunProcessesAndExitsCleanlyOnSIGTERM(t *testing.T) {
	runAndStop(t, embedded.Options{}, nil)
}

func TestRunOverTLSWithSCRAM(t *testing.T) {
	caFile, serverTLS := selfSignedTLS(t)
	opts := embedded.Options{
		Security:   processor.Kafka{TLS: true, CAFile: caFile, SASLMechanism: "SCRAM-SHA-256", SASLUsername: "enricher", SASLPassword: "s3cret"},
		BrokerOpts: []kfake.Opt{kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "enricher", "s3cret")},
	}
	runAndStop(t, opts, map[string]string{
		"ENRICHER_TLS": "true", "ENRICHER_TLS_CA_FILE": caFile, "ENRICHER_SASL_MECHANISM": "SCRAM-SHA-256",
		"ENRICHER_SASL_USERNAME": "enricher", "ENRICHER_SASL_PASSWORD": "s3cret",
	})
}

// startAcme starts the embedded stack with opts, connects tenant acme (its
// token in LEADSPACE_TOKEN_ACME, consent given, the default mapping) and
// writes n profiles for it.
func startAcme(t *testing.T, ctx context.Context, opts embedded.Options, n int) *embedded.Stack {
	t.Helper()
	stack, err := embedded.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	prod, err := processor.NewProducer(stack.Kafka, stack.Codec)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := publishControl(ctx, prod, stack.Topics.Control, controlplane.Auth{}, tenantControl("acme", "env:LEADSPACE_TOKEN_ACME", true, now)); err != nil {
		t.Fatal(err)
	}
	seedProfiles(t, ctx, stack, n)
	return stack
}

func runAndStop(t *testing.T, opts embedded.Options, env map[string]string) {
	const token, n = "tok-run-test-7Q2V", 60
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts.Programs = []simulator.ProgramConfig{{ID: "acme", Tokens: []string{token}, TPS: 1000, Credits: simulator.Unlimited}}
	opts.LeadspaceLatency, opts.LeadspaceJitter = 5*time.Millisecond, -1
	stack := startAcme(t, ctx, opts, n)

	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["LEADSPACE_TOKEN_ACME"] = token
	svc := startRun(t, stack, env)
	exited, logs := svc.exited, svc.logs

	for {
		keys := map[string]bool{}
		if err := processor.ReadAll(ctx, stack.Kafka, stack.Topics.Enriched, func(m kafka.Message) { keys[string(m.Key)] = true }); err != nil {
			t.Fatal(err)
		}
		if len(keys) == n {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("enricher run exited early (%v):\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("only %d of %d outputs:\n%s", len(keys), n, logs.String())
		case <-time.After(200 * time.Millisecond):
		}
	}

	svc.stop(t)

	// Everything done was committed before the exit.
	conn, err := stack.Kafka.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer processor.CloseClient(conn)
	committed := committedOffsets(t, ctx, stack, conn)
	if committed != n {
		t.Fatalf("the group committed %d of %d offsets before exiting", committed, n)
	}
	if strings.Contains(logs.String(), token) {
		t.Fatal("the token appears in the service's logs")
	}
	if !strings.Contains(logs.String(), `"msg":"enricher stopped"`) {
		t.Fatalf("no clean stop in the logs:\n%s", logs.String())
	}
}

func committedOffsets(t *testing.T, ctx context.Context, stack *embedded.Stack, cl *kafka.Client) int64 {
	t.Helper()
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "run-test",
		Topics: map[string][]int{stack.Topics.Profiles: {0, 1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range res.Topics[stack.Topics.Profiles] {
		if p.CommittedOffset > 0 {
			sum += p.CommittedOffset
		}
	}
	return sum
}

// stackEnv is the environment that points a command at the stack.
func stackEnv(stack *embedded.Stack, extra map[string]string) []string {
	env := append(os.Environ(),
		"ENRICHER_BROKERS="+strings.Join(stack.Kafka.Brokers, ","), "ENRICHER_SCHEMA_REGISTRY_URL="+stack.RegistryURL,
		"ENRICHER_LEADSPACE_URL="+stack.LeadspaceURL, "ENRICHER_HTTP_ADDR=127.0.0.1:0", "ENRICHER_GROUP=run-test",
		"ENRICHER_COMMIT_INTERVAL=200ms")
	for k, v := range extra {
		env = append(env, k+"="+v)
	}
	return env
}

// runningService is a running `enricher run` process.
type runningService struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan error
}

func startRun(t *testing.T, stack *embedded.Stack, env map[string]string) *runningService {
	t.Helper()
	s := &runningService{cmd: exec.Command(enricherBin, "run"), logs: &syncBuffer{}, exited: make(chan error, 1)}
	s.cmd.Env = stackEnv(stack, env)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	return s
}

// stop sends SIGTERM and wants exit status 0.
func (s *runningService) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.exited:
		if err != nil {
			t.Fatalf("enricher run exited with %v after SIGTERM, want 0:\n%s", err, s.logs.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("enricher run did not stop within 45s of SIGTERM:\n%s", s.logs.String())
	}
}

// cli runs one enricher command to completion.
func cli(t *testing.T, stack *embedded.Stack, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, enricherBin, args...)
	cmd.Env = stackEnv(stack, env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("enricher %s did not finish within 90s:\n%s%s", strings.Join(args, " "), out.String(), errb.String())
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// selfSignedTLS makes a CA-signed-by-itself certificate for 127.0.0.1 and
// writes the CA to a file, as an operator would hand it to the service.
func selfSignedTLS(t *testing.T) (caFile string, server *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
