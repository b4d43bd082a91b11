package schemas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Codec encodes values with the schema ids this service registered and decodes
// values written with any schema the registry knows, as long as it is the
// expected record type. It is safe for concurrent use.
type Codec struct {
	registry *sr.Client
	writers  map[Type]writer
	// direct: EnrichedCompany is written by appendEnriched (direct.go),
	// which reproduced goavro's bytes at start.
	direct bool
	// profileCanonical is our ProfileUnified schema's canonical form.
	profileCanonical string

	mu      sync.RWMutex
	readers map[int]reader // schema id -> reader, filled lazily from the registry
	unknown map[int]error  // ids the registry refused; bounded, so garbage cannot grow it
}

type writer struct {
	id    int
	codec *goavro.Codec
	last  *atomic.Int64 // size of the last value encoded: the next one's buffer
}

type reader struct {
	typ   Type
	codec *goavro.Codec
	// direct: a ProfileUnified writer schema identical to ours, read by
	// decodeProfileDirect (direct.go).
	direct bool
}

const maxUnknownIDs = 1024

// NewCodec registers (or finds) the schema of every type in subjects under the
// given subject and fails fast, naming the registry and the subject, when the
// registry is unreachable or refuses a schema.
func NewCodec(ctx context.Context, registry *sr.Client, subjects map[Type]string) (*Codec, error) {
	c := &Codec{registry: registry, writers: map[Type]writer{}, readers: map[int]reader{}, unknown: map[int]error{}}
	profile, err := compile(ProfileUnified)
	if err != nil {
		return nil, err
	}
	c.profileCanonical = profile.CanonicalSchema()
	for t, subject := range subjects {
		src, err := Source(t)
		if err != nil {
			return nil, err
		}
		codec, err := compile(t)
		if err != nil {
			return nil, err
		}
		ss, err := registry.CreateSchema(ctx, subject, sr.Schema{Schema: src, Type: sr.TypeAvro})
		if err != nil {
			return nil, fmt.Errorf("schema registry refused or could not take %s under subject %q: %w", shortName(t), subject, err)
		}
		c.writers[t] = writer{id: ss.ID, codec: codec, last: new(atomic.Int64)}
		c.readers[ss.ID] = reader{typ: t, codec: codec, direct: c.sameAsOurProfile(t, codec)}
	}
	c.direct = c.directMatches()
	return c, nil
}

// SchemaID is the registry id this service writes t with (0 if not registered).
func (c *Codec) SchemaID(t Type) int { return c.writers[t].id }

// Encode turns a native goavro value of type t into a framed value.
func (c *Codec) Encode(t Type, native map[string]any) ([]byte, error) {
	w, ok := c.writers[t]
	if !ok {
		return nil, fmt.Errorf("schemas: %s is not registered with this codec", shortName(t))
	}
	// Values of a type are alike in size: sized by the last one, the
	// buffer rarely grows while goavro appends.
	value, err := w.codec.BinaryFromNative(header(w.id, int(w.last.Load())+64), native)
	if err != nil {
		return nil, fmt.Errorf("schemas: encode %s: %w", shortName(t), err)
	}
	w.last.Store(int64(len(value)))
	return value, nil
}

// Decode checks the frame, resolves the writer schema by id, refuses records
// of another type, and returns the native value. Errors are *DecodeError.
func (c *Codec) Decode(ctx context.Context, t Type, value []byte) (map[string]any, error) {
	m, _, err := c.decode(ctx, t, value)
	return m, err
}

// decode is Decode, also returning the writer's schema.
func (c *Codec) decode(ctx context.Context, t Type, value []byte) (map[string]any, *goavro.Codec, error) {
	id, body, err := unframe(value)
	if err != nil {
		return nil, nil, err
	}
	r, err := c.reader(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if r.typ != t {
		return nil, nil, decodeErr(ReasonWrongType, fmt.Errorf("schema id %d is %s, expected %s", id, shortName(r.typ), shortName(t)))
	}
	native, rest, err := decodeSafely(r.codec, body)
	if err != nil {
		return nil, nil, decodeErr(ReasonBadAvro, err)
	}
	if len(rest) != 0 {
		return nil, nil, decodeErr(ReasonBadAvro, fmt.Errorf("%d trailing bytes after the record", len(rest)))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, nil, decodeErr(ReasonWrongType, errors.New("value is not a record"))
	}
	return m, r.codec, nil
}

// decodeSafely turns a panic deep in a decoder into an error: input is
// untrusted and one bad value must never take the service down.
func decodeSafely(codec *goavro.Codec, body []byte) (native any, rest []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("avro decoder failed: %v", p)
		}
	}()
	return codec.NativeFromBinary(body)
}

func (c *Codec) reader(ctx context.Context, id int) (reader, error) {
	c.mu.RLock()
	r, ok := c.readers[id]
	refused := c.unknown[id]
	c.mu.RUnlock()
	if ok {
		return r, nil
	}
	if refused != nil {
		return reader{}, refused
	}
	s, err := c.registry.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			derr := decodeErr(ReasonUnknownSchemaID, fmt.Errorf("schema id %d is not in the registry", id))
			c.mu.Lock()
			if len(c.unknown) >= maxUnknownIDs {
				clear(c.unknown)
			}
			c.unknown[id] = derr
			c.mu.Unlock()
			return reader{}, derr
		}
		return reader{}, &DecodeError{Reason: ReasonRegistry, Retryable: true, Err: fmt.Errorf("look up schema id %d: %w", id, err)}
	}
	if s.Type != sr.TypeAvro {
		return reader{}, decodeErr(ReasonWrongType, fmt.Errorf("schema id %d is %s, not Avro", id, s.Type))
	}
	codec, err := goavro.NewCodec(s.Schema)
	if err != nil {
		return reader{}, decodeErr(ReasonWrongType, fmt.Errorf("schema id %d does not compile: %w", id, err))
	}
	r = reader{typ: Type(fullName(s.Schema)), codec: codec}
	r.direct = c.sameAsOurProfile(r.typ, codec)
	c.mu.Lock()
	c.readers[id] = r
	c.mu.Unlock()
	return r, nil
}

// sameAsOurProfile says whether a writer schema is our ProfileUnified, in
// canonical form (docs, defaults and spacing aside).
func (c *Codec) sameAsOurProfile(t Type, codec *goavro.Codec) bool {
	return t == ProfileUnified && codec.CanonicalSchema() == c.profileCanonical
}

// fullName reads namespace.name of a record schema.
func fullName(schema string) string {
	var s struct{ Name, Namespace string }
	if json.Unmarshal([]byte(schema), &s) != nil {
		return ""
	}
	if s.Namespace == "" {
		return s.Name
	}
	return s.Namespace + "." + s.Name
}

func shortName(t Type) string {
	for i := len(t) - 1; i >= 0; i-- {
		if t[i] == '.' {
			return string(t[i+1:])
		}
	}
	return string(t)
}
