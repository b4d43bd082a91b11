package simulator

import (
	"bytes"
	"encoding/json"
	"iter"
	"strings"
)

// The simulator reads request bodies and writes answers with the helpers
// below instead of decoding into and encoding from map[string]any: a bulk of
// 500 records cost about 85k allocations and 15 ms of CPU that way, CPU the
// benchmark machine needs for the enricher (the simulator is a stand-in,
// its cost is not what is measured). Reading works on bodies already
// validated as JSON, and matches keys exactly, as map lookups did. They are
// deliberately not the client's reader (leadspace/jsonread.go): the
// simulator is the client's independent witness, and a bug shared by both
// would hide itself.

// members yields the key and raw value of each member of the JSON object
// in b, in order (a repeated key comes twice: the last one wins, as in a
// map). Nothing if b is not an object. b must be valid JSON.
func members(b []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		i := skipSpace(b, 0)
		if i >= len(b) || b[i] != '{' {
			return
		}
		i = skipSpace(b, i+1)
		for i < len(b) && b[i] == '"' {
			end := skipString(b, i)
			key := b[i+1 : end-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key = []byte(jsonString(b[i:end])) // escaped key: "n\u0061me" is "name"
			}
			i = skipSpace(b, skipSpace(b, end)+1) // past the colon
			vend := skipValue(b, i)
			if !yield(key, b[i:vend]) {
				return
			}
			if i = skipSpace(b, vend); i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
			}
		}
	}
}

// elements returns the raw values of the JSON array in b; ok is false if b
// is not an array. b must be valid JSON.
func elements(b []byte) (out [][]byte, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	for i = skipSpace(b, i+1); i < len(b) && b[i] != ']'; {
		end := skipValue(b, i)
		out = append(out, b[i:end])
		if i = skipSpace(b, end); i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return out, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	if j := bytes.IndexByte(b[i+1:], '"'); j >= 0 && bytes.IndexByte(b[i+1:i+1+j], '\\') < 0 {
		return i + j + 2 // the usual string, without escapes
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++ // a number, true, false or null
	}
	return i
}

// jsonString decodes a raw JSON string; "" for any other value, as field()
// reads a non-string.
func jsonString(v []byte) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	if s := v[1 : len(v)-1]; plain(s, false) {
		return string(s)
	}
	var s string
	_ = json.Unmarshal(v, &s) // escapes, and invalid UTF-8 replaced as encoding/json does
	return s
}

// plain says whether s is printable ASCII without a backslash, so that it
// reads and (when html, without <, > and &) writes as JSON unchanged.
func plain[T string | []byte](s T, html bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || (html && (c == '<' || c == '>' || c == '&')) {
			return false
		}
	}
	return true
}

// appendString appends s as json.Marshal writes it (HTML characters,
// U+2028, U+2029 escaped; invalid UTF-8 replaced).
func appendString(b []byte, s string) []byte {
	if plain(s, true) {
		return append(append(append(b, '"'), s...), '"')
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// answerJSON returns a raw JSON value as json.Marshal writes it back after
// decoding it with UseNumber: external ids are echoed that way.
func answerJSON(v []byte) []byte {
	switch c := v[0]; {
	case c == '"' && plain(v[1:len(v)-1], true),
		c == 'n', c == 't', c == 'f', c == '-', c >= '0' && c <= '9':
		return v // strings without escapes, literals and numbers come back as sent
	}
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	_ = dec.Decode(&x)
	out, _ := json.Marshal(x)
	return out
}

// object appends the members of a JSON object; keys in skip are left out
// (a fixture replaces them).
type object struct {
	b    []byte
	n    int
	skip map[string]any
}

// key writes the separator and the key, unless skipped. k is one of our
// names, plain ASCII: written as is.
func (o *object) key(k string) bool {
	if _, skipped := o.skip[k]; skipped {
		return false
	}
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(append(append(o.b, '"'), k...), '"', ':')
	return true
}

// member writes a key from elsewhere (a fixture's) and its JSON value.
func (o *object) member(k string, v []byte) {
	if o.n > 0 {
		o.b = append(o.b, ',')
	}
	o.n++
	o.b = append(append(appendString(o.b, k), ':'), v...)
}

func (o *object) str(k, v string) {
	if o.key(k) {
		o.b = appendString(o.b, v)
	}
}
