package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// exchange carries one gateway request through the checks and records it in
// the call log when done.
type exchange struct {
	s      *Simulator
	w      http.ResponseWriter
	r      *http.Request
	prog   *program
	body   []byte  // the request's JSON object (POST, PUT), validated
	rec    *record // body read as a record, once
	call   Call
	raw    []byte // the body of a single or bulk call, for the log
	logged bool
}

// record reads the body as an input record; a single call's body is one.
func (c *exchange) record() *record {
	if c.rec == nil {
		c.rec = readRecord(c.body)
	}
	return c.rec
}

// maxBody bounds request bodies: 500 records are far below it.
const maxBody = 8 << 20

// finish logs and counts the call, once. It runs before the answer is
// written (or the connection dropped), so whoever got an answer finds its
// call in the log and in Stats.
func (c *exchange) finish() {
	if c.logged {
		return
	}
	c.logged = true
	if c.prog != nil {
		c.call.Program = c.prog.cfg.ID
	}
	c.s.mu.Lock()
	c.s.logCall(loggedCall{Call: c.call, raw: c.raw})
	c.s.mu.Unlock()
}

// send writes a JSON answer.
func (c *exchange) send(status int, v any) {
	if v == nil {
		c.call.Status = status
		c.finish()
		c.w.WriteHeader(status)
		return
	}
	b, _ := json.Marshal(v)
	c.sendJSON(status, b)
}

// sendJSON writes an answer already encoded.
func (c *exchange) sendJSON(status int, b []byte) {
	c.call.Status = status
	c.finish()
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(status)
	_, _ = c.w.Write(b)
}

// fail answers with the error envelope {error, tracking_id,
// request_timestamp, details}; a 401 has an empty body, as documented.
func (c *exchange) fail(status int, msg, details string) {
	if status == http.StatusUnauthorized {
		c.send(status, nil)
		return
	}
	c.s.mu.Lock()
	tracking := c.s.id("tracking", c.s.next())
	c.s.mu.Unlock()
	c.send(status, map[string]any{
		"error":             msg,
		"tracking_id":       tracking,
		"request_timestamp": c.call.Time.UTC().Format(time.RFC3339),
		"details":           details,
	})
}

// authenticate accepts exactly "Bearer <token>" with a known perpetual token
// or an unexpired OAuth token. Basic and anything else get a bare 401.
func (c *exchange) authenticate() bool {
	tok, ok := strings.CutPrefix(c.r.Header.Get("Authorization"), "Bearer ")
	c.s.mu.Lock()
	if ok && tok != "" {
		if p := c.s.tokens[tok]; p != nil {
			c.prog = p
		} else if o, found := c.s.oauth[tok]; found && c.s.now().Before(o.expires) {
			c.prog = o.p
		}
	}
	c.s.mu.Unlock()
	if c.prog == nil {
		c.send(http.StatusUnauthorized, nil)
		return false
	}
	return true
}

// readBody enforces JSON on POST and PUT and checks the body is an object;
// each endpoint reads what it needs from it. The bytes go into the call
// log: they are what left the client.
func (c *exchange) readBody() bool {
	if c.r.Method != http.MethodPost && c.r.Method != http.MethodPut {
		return true
	}
	mt, _, err := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		c.fail(http.StatusUnsupportedMediaType, "Unsupported Media Type", "send Content-Type: application/json")
		return false
	}
	raw, err := io.ReadAll(io.LimitReader(c.r.Body, maxBody+1))
	if err != nil || len(raw) > maxBody {
		c.fail(http.StatusBadRequest, "Bad Request", "body unreadable or too large")
		return false
	}
	if c.body = firstObject(raw); c.body == nil {
		c.fail(http.StatusBadRequest, "Bad Request", "body is not a JSON object")
		return false
	}
	if c.r.URL.Path == pathBulk || c.r.URL.Path == pathSingle {
		c.call.Bulk = c.r.URL.Path == pathBulk
		c.raw = raw // the log keeps the bytes, and decodes them for Calls
	}
	return true
}

// firstObject returns the body's first JSON value if it is an object, else
// nil. Like json.Decoder, it ignores whatever follows that value.
func firstObject(raw []byte) []byte {
	if json.Valid(raw) { // the usual case: the body is the value
		if v := bytes.TrimSpace(raw); v[0] == '{' {
			return v
		}
		return nil
	}
	var v json.RawMessage
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&v) != nil || len(v) == 0 || v[0] != '{' {
		return nil
	}
	return v
}

// rateLimit takes one token from the program's bucket, else answers 429.
func (c *exchange) rateLimit() bool {
	c.s.mu.Lock()
	ok := c.prog.bucket.AllowN(c.s.now(), 1)
	if ok {
		c.s.statsOf(c.prog.cfg.ID).Transactions[endpointOf(c.r.URL.Path)]++
	}
	c.s.mu.Unlock()
	if ok {
		return true
	}
	if c.s.cfg.EmitRetryAfter {
		c.w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	c.fail(http.StatusTooManyRequests, "Too Many Requests", "transactions per second exceeded for this program")
	return false
}

// hasCredits answers 427 when the program has none left.
func (c *exchange) hasCredits() bool {
	c.s.mu.Lock()
	ok := c.prog.credits != 0
	c.s.mu.Unlock()
	if !ok {
		c.fail(427, "Insufficient Credits", "the program has no credits left; contact your CSM")
	}
	return ok
}

// field reads a nested string field, "" if absent or not a string.
func field(m map[string]any, path ...string) string {
	var cur any = m
	for _, k := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = obj[k]
	}
	s, _ := cur.(string)
	return strings.TrimSpace(s)
}
