package processor

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

// recordState is what HeaderState holds.
type recordState struct {
	outcome     uint8 // outcome*; outcomeNone on a tombstone
	fingerprint uint64
	offset      int64
	version     int64
	answeredAt  int64 // unix ms
	reason      string
}

// encode is the header value: version byte, outcome byte, 8-byte
// fingerprint, then varints (offset, version, answeredAt) and the reason.
func (s recordState) encode() []byte {
	b := make([]byte, 0, 2+8+3*binary.MaxVarintLen64+len(s.reason)+2)
	b = append(b, stateVersion, s.outcome)
	b = binary.BigEndian.AppendUint64(b, s.fingerprint)
	b = binary.AppendVarint(b, s.offset)
	b = binary.AppendVarint(b, s.version)
	b = binary.AppendVarint(b, s.answeredAt)
	b = binary.AppendUvarint(b, uint64(len(s.reason)))
	return append(b, s.reason...)
}

var errBadState = errors.New("enricher.state header is malformed")

func decodeState(b []byte) (recordState, error) {
	var s recordState
	if len(b) < 10 || b[0] != stateVersion {
		return s, errBadState
	}
	s.outcome = b[1]
	s.fingerprint = binary.BigEndian.Uint64(b[2:10])
	rest := b[10:]
	for _, dst := range []*int64{&s.offset, &s.version, &s.answeredAt} {
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
	s.reason = string(rest[n : n+int(l)])
	return s, nil
}

// header returns the value of the first header named key.
func header(msg kafka.Message, key string) ([]byte, bool) { return headerOf(msg.Headers, key) }

func headerOf(headers []kafka.Header, key string) ([]byte, bool) {
	for _, h := range headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// headerInt reads a decimal header value (the dead letter headers).
func headerInt(msg kafka.Message, key string) (int64, bool) {
	v, ok := header(msg, key)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}
