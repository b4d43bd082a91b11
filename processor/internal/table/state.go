package table

import (
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// HeaderState carries, on every enriched-company record and tombstone, the
// few facts a new owner of the partition needs to rebuild its table without
// decoding the Avro value: the outcome, the input fingerprint, the source
// offset and profile version, the answer's time and the skip reason. It is
// internal to the enricher; downstream consumers can ignore it.
const HeaderState = "enricher.state"

// stateVersion is the first byte of the header's value.
const stateVersion = 1

// State is what HeaderState holds.
type State struct {
	Outcome     uint8 // outcome*; outcomeNone on a tombstone
	Fingerprint uint64
	Offset      int64
	Version     int64
	AnsweredAt  int64 // unix ms
	Reason      string
}

// Encode is the header value: version byte, outcome byte, 8-byte
// fingerprint, then varints (offset, version, answeredAt) and the reason.
func (s State) Encode() []byte {
	b := make([]byte, 0, 2+8+3*binary.MaxVarintLen64+len(s.Reason)+2)
	b = append(b, stateVersion, s.Outcome)
	b = binary.BigEndian.AppendUint64(b, s.Fingerprint)
	b = binary.AppendVarint(b, s.Offset)
	b = binary.AppendVarint(b, s.Version)
	b = binary.AppendVarint(b, s.AnsweredAt)
	b = binary.AppendUvarint(b, uint64(len(s.Reason)))
	return append(b, s.Reason...)
}

var errBadState = errors.New("enricher.state header is malformed")

func DecodeState(b []byte) (State, error) {
	var s State
	if len(b) < 10 || b[0] != stateVersion {
		return s, errBadState
	}
	s.Outcome = b[1]
	s.Fingerprint = binary.BigEndian.Uint64(b[2:10])
	rest := b[10:]
	for _, dst := range []*int64{&s.Offset, &s.Version, &s.AnsweredAt} {
		v, n := binary.Varint(rest)
		if n <= 0 {
			return s, errBadState
		}
		*dst, rest = v, rest[n:]
	}
	l, n := binary.Uvarint(rest)
	if n <= 0 || uint64(len(rest)-n) < l {
		return s, errBadState
	}
	s.Reason = string(rest[n : n+int(l)])
	return s, nil
}

// Header returns the value of the first Header named key.
func Header(msg kafka.Message, key string) ([]byte, bool) { return HeaderOf(msg.Headers, key) }

func HeaderOf(headers []kafka.Header, key string) ([]byte, bool) {
	for _, h := range headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// HeaderInt reads a decimal header value (the dead letter headers).
func HeaderInt(msg kafka.Message, key string) (int64, bool) {
	v, ok := Header(msg, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}
