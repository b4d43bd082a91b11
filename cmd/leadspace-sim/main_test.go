package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// lines hands each write to the test as it happens.
type lines struct{ ch chan string }

func (l lines) Write(b []byte) (int, error) {
	l.ch <- string(b)
	return len(b), nil
}

func TestHelpIsNotAnError(t *testing.T) {
	err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v, want flag.ErrHelp (main exits 0 on it)", err)
	}
}

func TestBadProgramsAreRefusedWithoutTheirTokens(t *testing.T) {
	for _, args := range [][]string{
		{"--program", "acme"},
		{"--program", "acme=SECRET1,"},
		{"--program", "=SECRET1"},
		{},
		{"--program", "a=SECRET1", "--program", "a=SECRET2"},
	} {
		var stderr strings.Builder
		err := run(context.Background(), append(args, "--addr", "127.0.0.1:0"), io.Discard, &stderr)
		if err == nil {
			t.Fatalf("%q accepted", args)
		}
		if strings.Contains(err.Error()+stderr.String(), "SECRET") {
			t.Fatalf("%q: a token leaked: %v %s", args, err, stderr.String())
		}
	}
}

// The first stdout line is the URL; every flag reaches the simulator.
func TestServesProgramsAndPrintsURLFirst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--token", "t1", "--program", "acme=t2,t3",
			"--tps", "2", "--latency", "1ms", "--bulk-ready-after", "1h", "--free-polls", "--call-log-limit", "2"},
			lines{out}, io.Discard)
	}()
	var first string
	select {
	case first = <-out:
	case err := <-done:
		t.Fatalf("run ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no URL printed")
	}
	url, _, _ := strings.Cut(first, "\n")
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first stdout line %q is not the URL", first)
	}
	call := func(method, tok, path, body string) (int, string) {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(tok, path, body string) int {
		st, _ := call("POST", tok, path, body)
		return st
	}
	for _, tok := range []string{"t1", "t2", "t3"} {
		if st := post(tok, "/enrichment/enrich/single", `{"company":{"name":"Contoso"}}`); st != 200 {
			t.Fatalf("token %s: %d", tok, st)
		}
	}
	// acme's bucket holds 2 tokens (--tps 2): the third call in a row is 429.
	if st := post("t2", "/enrichment/enrich/single", `{"company":{"name":"Contoso"}}`); st != 429 {
		t.Fatalf("--tps not applied: %d", st)
	}
	// program-1 spent 1 of its 2 tokens; the bulk takes the other. Polls
	// are free (--free-polls) and the bulk is not ready for an hour.
	st, body := call("POST", "t1", "/enrichment/enrich/bulk", `{"data":[{"external_id":"a","company":{"name":"Contoso"}}]}`)
	if st != 202 {
		t.Fatalf("bulk: %d", st)
	}
	poll := body[strings.Index(body, "/v3/"):strings.LastIndex(body, `"`)]
	for range 3 {
		if st, _ := call("GET", "t1", poll, ""); st != 204 {
			t.Fatalf("poll: %d, want 204 (free, and not ready for --bulk-ready-after 1h)", st)
		}
	}
	resp, err := http.Get(url + "/__sim/calls")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		n += strings.Count(sc.Text(), `"method"`)
	}
	resp.Body.Close()
	if n != 2 {
		t.Fatalf("--call-log-limit 2: the log holds %d calls", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
