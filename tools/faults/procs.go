package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// proc is one child process the harness started. Every child runs in its own
// process group and gets SIGKILL when the harness dies (Pdeathsig), so not
// even a SIGKILL of the harness leaves one behind; the broker, started by
// broker.sh, is stopped separately.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	started time.Time

	done     chan struct{} // closed when the process has exited and was reaped
	exitedAt time.Time
	state    *os.ProcessState
}

// procs is the table of every child, for cleanup on any exit path.
type procs struct {
	mu  sync.Mutex
	all []*proc
}

// start runs bin with args, stdout and stderr to logPath, env as given (the
// harness's own ENRICHER_* variables are never inherited).
func (ps *procs) start(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, logPath: logPath, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		p.exitedAt = time.Now()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process (not its group: the enricher has no
// children, and a SIGKILL must hit exactly the instance named).
func (p *proc) signal(sig syscall.Signal) {
	if p.alive() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// wait waits for the exit, at most d; it reports whether the process exited.
func (p *proc) wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs the process group.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.signal(syscall.SIGTERM)
	if p.wait(grace) {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// exitText says how a process ended: "running", "exit 0", "exit 1", "signal killed".
func (p *proc) exitText() string {
	if p.alive() {
		return "running"
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", p.state.ExitCode())
}

// stopAll stops every child still running, newest first, in parallel
// batches so a slow SIGTERM drain does not hold up the rest.
func (ps *procs) stopAll(grace time.Duration) {
	ps.mu.Lock()
	all := append([]*proc(nil), ps.all...)
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(all) - 1; i >= 0; i-- {
		p := all[i]
		if p.alive() {
			wg.Go(func() { p.stop(grace) })
		}
	}
	wg.Wait()
}

// waitLog waits until re matches a line of the process's log and returns the
// first submatch (or the whole match); it fails when the process exits first
// or the deadline passes.
func (p *proc) waitLog(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.logPath)
		if m := re.FindSubmatch(b); m != nil {
			if len(m) > 1 {
				return string(m[1]), nil
			}
			return string(m[0]), nil
		}
		if !p.alive() {
			return "", fmt.Errorf("%s exited (%s) before it logged %q; log %s:\n%s", p.name, p.exitText(), re, p.logPath, tail(b, 15))
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s did not log %q within %s; log %s", p.name, re, timeout, p.logPath)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	end := len(b)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' && i != len(b)-1 {
			n--
			if n == 0 {
				return string(b[i+1 : end])
			}
		}
	}
	return string(b)
}

// errAborted marks a run stopped by SIGINT or SIGTERM.
var errAborted = errors.New("aborted by signal")
