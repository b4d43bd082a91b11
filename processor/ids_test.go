package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestIDsAreUnchanged: ids are how consumers drop duplicates, so an output
// redelivered after an upgrade must keep its id. This is how they were
// always made.
func TestIDsAreUnchanged(t *testing.T) {
	old := func(parts ...string) string {
		h := sha256.New()
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
		b := h.Sum(nil)[:16]
		b[6] = b[6]&0x0f | 0x50
		b[8] = b[8]&0x3f | 0x80
		s := hex.EncodeToString(b)
		return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
	}
	long := string(make([]byte, 400)) // past the stack buffer
	for _, parts := range [][]string{{"leadspace", "company", "acme", "p1"}, {"enriched-company", "ev-1"}, {}, {""}, {long, "x"}} {
		if got, want := uuidOf(parts...), old(parts...); got != want {
			t.Fatalf("uuidOf(%q) = %s, want %s", parts, got, want)
		}
	}
	if got := enrichmentID("acme", "p1"); got != old("leadspace", "company", "acme", "p1") {
		t.Fatalf("enrichmentID changed: %s", got)
	}
}
