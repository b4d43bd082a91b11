package leadspace

import (
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// jsonReader reads one JSON text in a single pass: it validates as it goes
// and hands each object's fields to a callback, which reads the values it
// wants; values the callback leaves are skipped (and validated).
//
// It exists because an answer is read once per record and is the client's
// main CPU cost. gjson, which read answers before, scans a nested value
// once to find its end and again to read it: a company three levels down
// was scanned five times, which was a fifth of the instance's CPU with four
// programs (issue 21). TestJSONReaderReadsWhatGjsonReads checks this reader
// against gjson, field by field, on the answers of the tests and on fuzzed
// ones.
//
// Strings without escapes are returned in place: they share the body's
// bytes, so the body must not change while they live (see readAnswer).
type jsonReader struct {
	b      []byte
	i      int
	err    error
	depth  int
	keyBuf []byte // where keys are lower-cased (never the body's bytes)
}

// maxJSONDepth bounds nesting, so a hostile body cannot exhaust the stack.
const maxJSONDepth = 64

var errJSONSyntax = errors.New("response is not valid JSON")

func (r *jsonReader) fail() {
	if r.err == nil {
		r.err = errJSONSyntax
	}
	r.i = len(r.b)
}

// peek returns the next byte that is not white space, 0 at the end.
func (r *jsonReader) peek() byte {
	for r.i < len(r.b) {
		switch c := r.b[r.i]; c {
		case ' ', '\t', '\r', '\n':
			r.i++
		default:
			return c
		}
	}
	return 0
}

// end checks that only white space is left.
func (r *jsonReader) end() error {
	if r.peek(); r.i < len(r.b) { // peek's 0 may be a NUL byte
		r.fail()
	}
	return r.err
}

// fields calls f with each key of the object at the reader, lower-cased
// (ASCII; the bytes are reused, and f must not keep them). f reads the key's
// value with a read method, or leaves it to be skipped. A value that is not
// an object is skipped; fields reports whether it was one.
func (r *jsonReader) fields(f func(key []byte)) bool {
	if r.peek() != '{' {
		r.skip()
		return false
	}
	if !r.enter() {
		return false
	}
	r.i++
	if r.peek() == '}' {
		r.i++
		r.depth--
		return true
	}
	for r.err == nil {
		if r.peek() != '"' {
			r.fail()
			break
		}
		key, escaped := r.rawString()
		if escaped || hasUpper(key) { // else the key's bytes are its lower-cased self
			r.keyBuf = lowerKey(r.keyBuf[:0], key, escaped)
			key = r.keyBuf
		}
		if r.peek() != ':' {
			r.fail()
			break
		}
		r.i++
		at := r.valueStart()
		f(key)
		if r.i == at && r.err == nil {
			r.skip() // f did not read it
		}
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			r.depth--
			return true
		default:
			r.fail()
		}
	}
	return true
}

// elements calls f once per element of the array at the reader; f reads the
// element or leaves it to be skipped. Anything else is skipped.
func (r *jsonReader) elements(f func()) {
	if r.peek() != '[' {
		r.skip()
		return
	}
	if !r.enter() {
		return
	}
	r.i++
	if r.peek() == ']' {
		r.i++
		r.depth--
		return
	}
	for r.err == nil {
		at := r.valueStart()
		f()
		if r.i == at && r.err == nil {
			r.skip()
		}
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			r.depth--
			return
		default:
			r.fail()
		}
	}
}

func (r *jsonReader) enter() bool {
	if r.depth++; r.depth > maxJSONDepth {
		r.fail()
		return false
	}
	return true
}

// valueStart is where the next value starts (after white space).
func (r *jsonReader) valueStart() int {
	r.peek()
	return r.i
}

// text reads a string (decoded and trimmed), or a number or boolean as
// written; anything else is skipped and reads as "". Invalid UTF-8 is
// replaced, so outputs stay valid Avro strings.
func (r *jsonReader) text() string {
	switch c := r.peek(); {
	case c == '"':
		s := strings.TrimSpace(r.str())
		if !utf8.ValidString(s) {
			return strings.ToValidUTF8(s, "\uFFFD")
		}
		return s
	case c == '-' || ('0' <= c && c <= '9'):
		return r.number()
	case c == 't' || c == 'f':
		at := r.i
		r.skip()
		return r.inPlace(r.b[at:r.i])
	}
	r.skip()
	return ""
}

// texts reads an array of scalars, dropping empty ones; anything else reads
// as nil.
func (r *jsonReader) texts() []string {
	var out []string
	r.elements(func() {
		if s := r.text(); s != "" {
			if out == nil {
				out = make([]string, 0, 8) // most lists are short: one allocation, not one per doubling
			}
			out = append(out, s)
		}
	})
	return out
}

// integer reads a number or a numeric string ("1,200"), clamped to int64;
// anything else reads as 0.
func (r *jsonReader) integer() int64 {
	switch c := r.peek(); {
	case c == '"':
		return clampInt(strings.ReplaceAll(strings.TrimSpace(r.str()), ",", ""))
	case c == '-' || ('0' <= c && c <= '9'):
		return clampInt(r.number())
	}
	r.skip()
	return 0
}

// str reads a string value, decoded; in place when it has no escapes.
func (r *jsonReader) str() string {
	raw, escaped := r.rawString()
	if !escaped {
		return r.inPlace(raw)
	}
	return unescape(raw)
}

func (r *jsonReader) inPlace(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// rawString reads a string token at the reader and returns what is between
// its quotes, and whether it holds escapes. The escapes are validated.
func (r *jsonReader) rawString() (raw []byte, escaped bool) {
	r.i++ // the opening quote
	start := r.i
	for r.i < len(r.b) {
		for r.i < len(r.b) && !stringStop[r.b[r.i]] {
			r.i++
		}
		if r.i >= len(r.b) {
			break
		}
		c := r.b[r.i]
		switch {
		case c == '"':
			raw = r.b[start:r.i]
			r.i++
			return raw, escaped
		case c == '\\':
			escaped = true
			if r.i+1 >= len(r.b) {
				r.fail()
				return nil, false
			}
			switch r.b[r.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				r.i += 2
			case 'u':
				if r.i+6 > len(r.b) || !isHex4(r.b[r.i+2:r.i+6]) {
					r.fail()
					return nil, false
				}
				r.i += 6
			default:
				r.fail()
				return nil, false
			}
		case c < 0x20:
			r.fail()
			return nil, false
		default:
			r.i++
		}
	}
	r.fail()
	return nil, false
}

// stringStop marks the bytes a string's scan must look at: its end, an
// escape, and the control characters JSON forbids in it.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// number reads a number token as written:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (r *jsonReader) number() string {
	b, start, i := r.b, r.i, r.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		r.fail()
		return ""
	}
	if i < len(b) && b[i] == '.' {
		if i = digits(b, i+1); b[i-1] == '.' {
			r.fail() // no digit after the point
			return ""
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		at := i
		if i = digits(b, i); i == at {
			r.fail() // no digit in the exponent
			return ""
		}
	}
	r.i = i
	return r.inPlace(b[start:i])
}

// digits is where the run of digits from i ends.
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// skip reads past one value of any kind, validating it.
func (r *jsonReader) skip() {
	switch c := r.peek(); {
	case c == '{':
		r.fields(func([]byte) {})
	case c == '[':
		r.elements(func() {})
	case c == '"':
		r.rawString()
	case c == '-' || ('0' <= c && c <= '9'):
		r.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(r.b)-r.i >= len(lit) && string(r.b[r.i:r.i+len(lit)]) == lit {
				r.i += len(lit)
				return
			}
		}
		r.fail()
	}
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// unescape decodes a string's escapes (validated by rawString). A lone or
// broken surrogate becomes U+FFFD, as in encoding/json.
func unescape(raw []byte) string {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); pair != utf8.RuneError {
						out = utf8.AppendRune(out, pair)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return string(out)
}

func hex4(b []byte) (r rune) {
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// lowerKey appends key, unescaped and lower-cased (ASCII), to buf.
func lowerKey(buf, key []byte, escaped bool) []byte {
	if escaped {
		key = []byte(unescape(key))
	}
	for _, c := range key {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf
}

func hasUpper(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}
