package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progress reports a long task's progress on one stream. On a terminal it
// redraws one line ("\r"); anywhere else (a pipe, a file, CI) it writes
// plain lines, at most one per interval and only when something changed,
// because "\r" shows nothing through a pipe until the very end.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	interval time.Duration
	last     string
	lastAt   time.Time
	width    int // of the last redrawn line, to blank what a shorter one leaves
	now      func() time.Time
}

// newProgress reports on f, drawing in place only when f is a terminal.
func newProgress(f *os.File) *progress {
	return &progress{w: f, tty: isTerminal(f), interval: 2 * time.Second, now: time.Now}
}

// isTerminal is whether f is a character device (a terminal) rather than a
// pipe or a file; TERM=dumb counts as no terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// update shows line as the current state.
func (p *progress) update(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if line == p.last {
		return
	}
	if p.tty {
		p.redraw(line)
		return
	}
	if now := p.now(); p.lastAt.IsZero() || now.Sub(p.lastAt) >= p.interval {
		fmt.Fprintln(p.w, line)
		p.last, p.lastAt = line, now
	}
}

// done shows the final line and ends it, whatever the interval.
func (p *progress) done(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.redraw(line)
		fmt.Fprintln(p.w)
		p.width = 0
	} else if line != p.last {
		fmt.Fprintln(p.w, line)
	}
	p.last, p.lastAt = line, p.now()
}

func (p *progress) redraw(line string) {
	pad := max(p.width-len(line), 0)
	fmt.Fprint(p.w, "\r"+line+strings.Repeat(" ", pad))
	p.width, p.last = len(line), line
}

// bar draws done of total as "[#####.....]  50%", clamped to 0..100%: a
// count past its total (an at-least-once duplicate) never shows 104%.
func bar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat(".", width) + "]    -"
	}
	done = min(max(done, 0), total)
	filled := int(done * int64(width) / total)
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done*100/total)
}

// short prints a duration rounded for people: 42s, 3m10s, 2h5m.
func short(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return strings.TrimSuffix(d.Round(time.Second).String(), "0s")
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}
