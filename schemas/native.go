package schemas

import (
	"fmt"
	"time"
)

// Helpers between Go values and goavro's native form: unions are single-entry
// maps keyed by the branch's type name, nulls are nil.

func optString(s string) any {
	if s == "" {
		return nil
	}
	return map[string]any{"string": s}
}

func optLong(v *int64) any {
	if v == nil {
		return nil
	}
	return map[string]any{"long": *v}
}

func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return map[string]any{"long.timestamp-millis": t}
}

func optBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return map[string]any{"bytes": b}
}

func optRecord(name string, v map[string]any) any {
	if v == nil {
		return nil
	}
	return map[string]any{name: v}
}

// record reads fields of a decoded record; a missing or mistyped field is a
// recorded error (first one wins), so decoders stay flat and never panic.
type record struct {
	m   map[string]any
	err error
}

func (r *record) fail(name, want string) {
	if r.err == nil {
		r.err = decodeErr(ReasonBadField, fmt.Errorf("field %q is not %s", name, want))
	}
}

// branch unwraps a union value: nil stays nil, {"type": v} gives v.
func branch(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for _, inner := range m {
			return inner
		}
	}
	return v
}

func (r *record) str(name string) string {
	v, ok := r.m[name]
	if !ok || v == nil {
		return ""
	}
	s, ok := branch(v).(string)
	if !ok {
		r.fail(name, "a string")
	}
	return s
}

func (r *record) long(name string) int64 {
	switch v := branch(r.m[name]).(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case nil:
		return 0
	default:
		r.fail(name, "a number")
		return 0
	}
}

func (r *record) optLong(name string) *int64 {
	if branch(r.m[name]) == nil {
		return nil
	}
	v := r.long(name)
	return &v
}

func (r *record) boolean(name string) bool {
	b, _ := branch(r.m[name]).(bool)
	return b
}

func (r *record) time(name string) time.Time {
	switch v := branch(r.m[name]).(type) {
	case time.Time:
		return v.UTC()
	case int64:
		return time.UnixMilli(v).UTC()
	case nil:
		return time.Time{}
	default:
		r.fail(name, "a timestamp")
		return time.Time{}
	}
}

func (r *record) bytes(name string) []byte {
	b, _ := branch(r.m[name]).([]byte)
	return b
}

func (r *record) sub(name string) *record {
	m, _ := branch(r.m[name]).(map[string]any)
	if m == nil {
		return nil
	}
	return &record{m: m}
}

func (r *record) strings(name string) []string {
	items, _ := r.m[name].([]any)
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func (r *record) stringMap(name string) map[string]string {
	m, ok := r.m[name].(map[string]any)
	if !ok {
		r.fail(name, "a map")
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

func stringsNative(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func longMap(m map[string]int64) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// longMap reads an Avro map of longs; nil when empty.
func (r *record) longMap(name string) map[string]int64 {
	m, _ := r.m[name].(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		switch n := v.(type) {
		case int64:
			out[k] = n
		case int32:
			out[k] = int64(n)
		default:
			r.fail(name, "a map of numbers")
		}
	}
	return out
}

// optStringMap reads an Avro map of strings that older records may lack.
func (r *record) optStringMap(name string) map[string]string {
	if _, ok := r.m[name]; !ok {
		return nil
	}
	out := r.stringMap(name)
	if len(out) == 0 {
		return nil
	}
	return out
}
