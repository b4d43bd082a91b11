package processor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hamba/avro/v2"
	"github.com/segmentio/kafka-go"

	"github.com/enrichment/leadspace-enricher/processor"
	"github.com/enrichment/leadspace-enricher/schemas"
)

// hostile builds an input value the way a careless or hostile producer
// might, with its key.
type hostile struct {
	name   string
	key    []byte
	value  []byte
	reason string // the dead letter's reason
}

func TestHostileInputGetsADeadLetterAndNeverStallsAPartition(t *testing.T) {
	e := newEnv(t, tenant("acme"))
	e.raiseMaxMessageBytes(e.stack.Topics.Profiles, 8<<20)
	e.start()

	badID := profile("acme", 1, company(1))
	badID.ProfileID = "p\xff\xfe1"
	badValue, err := e.stack.Codec.Encode(schemas.ProfileUnified, badID.Native())
	if err != nil {
		t.Fatal(err)
	}
	cases := []hostile{
		{"a 0-byte value", []byte("acme/empty"), []byte{}, schemas.ReasonEmptyValue},
		{"an invalid UTF-8 profile id", []byte("acme/p\xff\xfe1"), badValue, processor.ReasonInvalidText},
		{"a value just under the broker's default limit", []byte("acme/huge-1"), bytes.Repeat([]byte{'x'}, 1048400), schemas.ReasonBadMagicByte},
		{"a 2 MiB value on a topic raised to 8 MiB", []byte("acme/huge-2"), bytes.Repeat([]byte{0, 0, 0, 0, 1}, 2<<20/5), schemas.ReasonTooLarge},
	}
	w := &kafka.Writer{Addr: kafka.TCP(e.stack.Kafka.Brokers...), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchBytes: 16 << 20, BatchTimeout: time.Millisecond}
	defer w.Close()
	for _, c := range cases {
		if err := w.WriteMessages(context.Background(), kafka.Message{Topic: e.stack.Topics.Profiles, Key: c.key, Value: c.value}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	// Good input on every partition behind the bad: it must still flow.
	good := companies(30, "acme")
	e.produceProfiles(good...)

	out := e.waitOutputs(60*time.Second, func(o outputs) bool { return len(o.dead) == len(cases) && len(o.enriched) == len(good) })
	e.waitCommitted(30*time.Second, len(cases)+len(good))
	byKey := map[string]schemas.Dead{}
	for _, d := range out.dead {
		byKey[string(d.OriginalKey)] = d
	}
	for _, c := range cases {
		d, ok := byKey[string(c.key)]
		switch {
		case !ok:
			t.Errorf("%s: no dead letter", c.name)
		case d.Reason != c.reason:
			t.Errorf("%s: reason %s, want %s", c.name, d.Reason, c.reason)
		case d.OriginalValueSize != int64(len(c.value)):
			t.Errorf("%s: original size %d, want %d", c.name, d.OriginalValueSize, len(c.value))
		case d.OriginalValueSHA256 != sha(c.value):
			t.Errorf("%s: the dead letter's SHA-256 is not the value's", c.name)
		case !bytes.HasPrefix(c.value, d.OriginalValue):
			t.Errorf("%s: the kept value is not a prefix of the input", c.name)
		case (len(d.OriginalValue) < len(c.value)) != d.OriginalValueTruncated:
			t.Errorf("%s: %d of %d bytes kept, truncated=%v", c.name, len(d.OriginalValue), len(c.value), d.OriginalValueTruncated)
		}
	}
	if !byKey["acme/huge-1"].OriginalValueTruncated || !byKey["acme/huge-2"].OriginalValueTruncated || byKey["acme/empty"].OriginalValueTruncated {
		t.Errorf("only the oversized value may be cut: %+v", byKey)
	}
	if d := byKey["acme/p\xff\xfe1"]; d.TenantID != "acme" || d.ProfileID != "" {
		t.Errorf("an invalid profile id must stay out of the dead letter (its tenant is fine): got %q %q", d.TenantID, d.ProfileID)
	}
	if st := e.status(); st["acme\xff"] != nil || len(st) != 1 {
		t.Errorf("tenants in status: %v", keysOf(st))
	}
	e.decodeEverythingIndependently()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// raiseMaxMessageBytes lets a topic take bigger records, as an operator would.
func (e *env) raiseMaxMessageBytes(topic string, n int) {
	e.t.Helper()
	cl, err := e.stack.Kafka.Client()
	if err != nil {
		e.t.Fatal(err)
	}
	defer processor.CloseClient(cl)
	res, err := cl.IncrementalAlterConfigs(context.Background(), &kafka.IncrementalAlterConfigsRequest{
		Resources: []kafka.IncrementalAlterConfigsRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "max.message.bytes", Value: strconv.Itoa(n), ConfigOperation: kafka.ConfigOperationSet}}}}})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range res.Resources {
		if r.Error != nil {
			e.t.Fatalf("raise max.message.bytes of %s: %v", topic, r.Error)
		}
	}
}

// decodeEverythingIndependently decodes every value on the enriched and
// dead letter topics with hamba/avro, an Avro implementation we did not
// write, against the .avsc contract: what goavro wrote must be readable by
// others, strings included (invalid UTF-8 breaks strict decoders).
func (e *env) decodeEverythingIndependently() {
	e.t.Helper()
	for topic, typ := range map[string]schemas.Type{e.stack.Topics.Enriched: schemas.EnrichedCompany, e.stack.Topics.DeadLetters: schemas.DeadLetter} {
		src, err := schemas.Source(typ)
		if err != nil {
			e.t.Fatal(err)
		}
		schema, err := avro.Parse(src)
		if err != nil {
			e.t.Fatal(err)
		}
		n := 0
		e.readTopic(topic, func(m kafka.Message) {
			if m.Value == nil {
				return
			}
			if len(m.Value) < 5 || m.Value[0] != 0 {
				e.t.Errorf("%s@%d: not in the Confluent wire format", topic, m.Offset)
				return
			}
			var v map[string]any
			if err := avro.Unmarshal(schema, m.Value[5:], &v); err != nil {
				e.t.Errorf("%s@%d: hamba/avro cannot decode it: %v", topic, m.Offset, err)
			}
			if s, ok := invalidString(v); !ok {
				e.t.Errorf("%s@%d: a string is not valid UTF-8 (strict Avro readers such as fastavro refuse it): %q", topic, m.Offset, s)
			}
			n++
		})
		if n == 0 {
			e.t.Errorf("nothing to decode on %s", topic)
		}
	}
}

// invalidString finds a string that is not valid UTF-8 anywhere in a
// decoded value.
func invalidString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, utf8.ValidString(x)
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) {
				return k, false
			}
			if s, ok := invalidString(e); !ok {
				return s, false
			}
		}
	case []any:
		for _, e := range x {
			if s, ok := invalidString(e); !ok {
				return s, false
			}
		}
	}
	return "", true
}
