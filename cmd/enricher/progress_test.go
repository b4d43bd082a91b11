package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBarNeverPassesItsTotal(t *testing.T) {
	for _, c := range []struct {
		done, total int64
		want        string
	}{{0, 10, "[..........]   0%"}, {5, 10, "[#####.....]  50%"}, {10, 10, "[##########] 100%"}, {245, 205, "[##########] 100%"}, {-1, 10, "[..........]   0%"}, {3, 0, "[..........]    -"}} {
		if got := bar(c.done, c.total, 10); got != c.want {
			t.Errorf("bar(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
}

func TestProgressThroughAPipeWritesPlainLines(t *testing.T) {
	var out bytes.Buffer
	now := time.Unix(0, 0)
	p := &progress{w: &out, interval: 2 * time.Second, now: func() time.Time { return now }}
	p.update("1 of 3")
	p.update("2 of 3") // within the interval: held back
	now = now.Add(3 * time.Second)
	p.update("2 of 3")
	p.update("2 of 3") // unchanged: not repeated
	p.done("3 of 3")
	if got := out.String(); got != "1 of 3\n2 of 3\n3 of 3\n" || strings.Contains(got, "\r") {
		t.Fatalf("%q", got)
	}
}

func TestProgressOnATerminalRedrawsOneLine(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, tty: true, now: time.Now}
	p.update("long line 1")
	p.update("short")
	p.done("end")
	if got := out.String(); got != "\rlong line 1\rshort      \rend  \n" {
		t.Fatalf("%q", got)
	}
}
