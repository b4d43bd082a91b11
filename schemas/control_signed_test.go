package schemas

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// otherWriter registers a ControlEvent schema edited by edit, as another
// enricher's build would, and returns a writer for it.
func otherWriter(t *testing.T, cl *sr.Client, subject string, edit func(string) string) (int, *goavro.Codec) {
	t.Helper()
	src, err := Source(ControlEvent)
	if err != nil {
		t.Fatal(err)
	}
	edited := edit(src)
	if edited == src {
		t.Fatal("the edit changed nothing")
	}
	codec, err := goavro.NewCodec(edited)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := cl.CreateSchema(context.Background(), subject, sr.Schema{Schema: edited, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	return ss.ID, codec
}

func TestSignedFormIsTheRecordAsItsWriterEncodedIt(t *testing.T) {
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCodec(context.Background(), cl, map[Type]string{ControlEvent: "control-value"})
	if err != nil {
		t.Fatal(err)
	}
	ev := Control{EventID: "e1", TenantID: "acme", IssuedAt: at, IssuedBy: "alice", Sequence: 7, KeyID: "hmac:00",
		Signature: BytesSignaturePrefix + "c2ln", Consent: &Consent{Given: true}}
	ctx := context.Background()

	// Written by this binary: the form read is the form signed.
	native, _ := ev.Native()
	value, err := c.Encode(ControlEvent, native)
	if err != nil {
		t.Fatal(err)
	}
	read, err := c.DecodeControl(ctx, value)
	if err != nil {
		t.Fatal(err)
	}
	signing, _ := ev.SigningForm()
	if got, _ := read.SignedForm(); !bytes.Equal(got, signing) {
		t.Fatal("an event written and read by this binary has another signed form than it was signed with")
	}

	// Written by a later build whose schema has a field this one does not
	// know: the field is in the form, so a change to it is seen.
	id, later := otherWriter(t, cl, "later-value", func(s string) string {
		return strings.Replace(s, `{"name": "signature"`, `{"name": "scope", "type": "string", "default": ""},
    {"name": "signature"`, 1)
	})
	write := func(scope string) (Control, []byte) {
		m, _ := ev.Native()
		m["scope"], m["signature"] = scope, nil
		signed, err := signedForm(later, m) // what the later build signs
		if err != nil {
			t.Fatal(err)
		}
		m["signature"] = optString(ev.Signature)
		body, err := later.BinaryFromNative(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.DecodeControl(ctx, frame(id, body))
		if err != nil {
			t.Fatal(err)
		}
		return got, signed
	}
	all, allSigned := write("all")
	one, _ := write("one tenant")
	if got, _ := all.SignedForm(); !bytes.Equal(got, allSigned) {
		t.Error("an event from a later schema: the form read is not the form its writer signed")
	}
	formAll, _ := all.SignedForm()
	formOne, _ := one.SignedForm()
	if bytes.Equal(formAll, formOne) {
		t.Error("two events differing only in a field this build does not know have one signed form")
	}

	// A schema that reads the same bytes with two fields' names swapped:
	// the record is relabelled, and its form is not the original's.
	swapped, _ := otherWriter(t, cl, "swapped-value", func(s string) string {
		s = strings.Replace(s, `"name": "event_id"`, `"name": "TMP"`, 1)
		s = strings.Replace(s, `"name": "tenant_id"`, `"name": "event_id"`, 1)
		return strings.Replace(s, `"name": "TMP"`, `"name": "tenant_id"`, 1)
	})
	relabelled, err := c.DecodeControl(ctx, frame(swapped, value[5:]))
	if err != nil {
		t.Fatal(err)
	}
	if relabelled.TenantID != "e1" {
		t.Fatalf("the swapped schema did not relabel the record: tenant %q", relabelled.TenantID)
	}
	if got, _ := relabelled.SignedForm(); bytes.Equal(got, signing) {
		t.Error("a record relabelled by another schema keeps the original's signed form")
	}

	// Changed after reading: the form is the changed event's.
	changed := read
	changed.IssuedBy = "mallory"
	if got, _ := changed.SignedForm(); bytes.Equal(got, signing) {
		t.Error("an event changed after reading keeps the signed form it was read with")
	}
}

// The signed form must encode one event to one sequence of bytes, every
// time: goavro writes a map's entries in Go's random map order, so a map
// in ControlEvent would make signatures fail at random. Use an array of
// records sorted by key instead.
func TestControlEventHasNoMapSoItsEncodingIsDeterministic(t *testing.T) {
	src, err := Source(ControlEvent)
	if err != nil {
		t.Fatal(err)
	}
	var schema any
	if err := json.Unmarshal([]byte(src), &schema); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["type"] == "map" {
				t.Errorf("%s is a map: its encoding is not deterministic, so bytes signatures would not verify", path)
			}
			if name, ok := v["name"].(string); ok {
				path += "/" + name
			}
			for _, child := range v {
				walk(path, child)
			}
		case []any:
			for _, child := range v {
				walk(path, child)
			}
		}
	}
	walk("", schema)
}
