package schemas

import (
	"bytes"
	"crypto/sha256"
	"maps"
	"sync"

	"github.com/linkedin/goavro/v2"
)

// BytesSignaturePrefix starts a control signature over the event's signed
// form (SignedForm). A signature without it is over the legacy canonical
// text, which names each field by hand.
const BytesSignaturePrefix = "bytes:"

// The signed form of a control event is the SHA-256 of the Parsing
// Canonical Form of a ControlEvent schema, then the event's Avro binary
// encoding under that schema with the signature null. Every field of the
// schema is in it, including one added later; the schema's hash pins which
// bytes mean which field, so a record cannot be relabelled by a schema
// that reads the same bytes differently. The encoding must be
// deterministic: ControlEvent may hold no Avro map, whose entries goavro
// writes in random order (a test says so).

// controlWriter is the ControlEvent schema this binary writes.
var controlWriter = sync.OnceValues(func() (*goavro.Codec, error) { return compile(ControlEvent) })

// readForm is a decoded event's signed form under its writer's schema,
// with the form this binary gives the event: when the event is changed
// after decoding the two no longer match and read no longer speaks for it.
type readForm struct{ own, read []byte }

// SigningForm is what a signer signs: c's signed form under the schema
// this binary writes (the one its codec registers).
func (c Control) SigningForm() ([]byte, error) {
	codec, err := controlWriter()
	if err != nil {
		return nil, err
	}
	c.Signature = ""
	native, err := c.Native()
	if err != nil {
		return nil, err
	}
	return signedForm(codec, native)
}

// SignedForm is what a bytes signature on c covers. For an event read by
// DecodeControl and not changed since, it is the form under the schema it
// was written with (found by its id): fields this binary does not know are
// covered too, and a later schema does not void signatures made under an
// earlier one. Otherwise it is SigningForm.
func (c Control) SignedForm() ([]byte, error) {
	own, err := c.SigningForm()
	if err != nil {
		return nil, err
	}
	if c.read != nil && bytes.Equal(own, c.read.own) {
		return c.read.read, nil
	}
	return own, nil
}

// readSignedForm keeps ev's signed form under writer, from the decoded
// record m. Nil when either form cannot be made: SignedForm then falls back
// to this binary's form, which a genuine signature may not match (refused,
// never wrongly accepted).
func readSignedForm(ev Control, writer *goavro.Codec, m map[string]any) *readForm {
	own, err := ev.SigningForm()
	if err != nil {
		return nil
	}
	m = maps.Clone(m)
	m["signature"] = nil
	read, err := signedForm(writer, m)
	if err != nil {
		return nil
	}
	return &readForm{own: own, read: read}
}

func signedForm(codec *goavro.Codec, native map[string]any) ([]byte, error) {
	sum := sha256.Sum256([]byte(codec.CanonicalSchema()))
	return codec.BinaryFromNative(sum[:], native)
}
