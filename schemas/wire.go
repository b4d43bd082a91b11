package schemas

import (
	"encoding/binary"
	"errors"
)

// MaxValueBytes bounds what the decoder accepts; larger values are refused
// before any Avro parsing so hostile input cannot make us allocate without bound.
const MaxValueBytes = 1 << 20

// Stable reasons for values that cannot be decoded. They end up in dead
// letters, metrics and alerts, so they never change once published.
const (
	ReasonEmptyValue      = "decode.empty_value"
	ReasonTooLarge        = "decode.too_large"
	ReasonBadMagicByte    = "decode.bad_magic_byte"
	ReasonUnknownSchemaID = "decode.unknown_schema_id"
	ReasonWrongType       = "decode.wrong_record_type"
	ReasonBadAvro         = "decode.bad_avro"
	ReasonBadField        = "decode.bad_field"
	ReasonRegistry        = "decode.registry_unavailable"
)

// DecodeError says why a value was refused. Retryable is true only when the
// registry could not be reached: the value itself may be fine.
type DecodeError struct {
	Reason    string
	Retryable bool
	Err       error
}

func (e *DecodeError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

func decodeErr(reason string, err error) error { return &DecodeError{Reason: reason, Err: err} }

// frame prepends the Confluent wire header to an Avro body.
func frame(id int, body []byte) []byte {
	return append(header(id, len(body)), body...)
}

// header is the Confluent wire header, with room for a body of n bytes
// after it: encoders append the body in place instead of copying it.
func header(id, n int) []byte {
	out := make([]byte, 5, 5+n)
	binary.BigEndian.PutUint32(out[1:5], uint32(id))
	return out
}

// unframe splits a Confluent-framed value into schema id and Avro body.
func unframe(b []byte) (int, []byte, error) {
	switch {
	case len(b) == 0:
		return 0, nil, decodeErr(ReasonEmptyValue, errors.New("value is empty"))
	case len(b) > MaxValueBytes:
		return 0, nil, decodeErr(ReasonTooLarge, errors.New("value exceeds 1 MiB"))
	case len(b) < 5 || b[0] != 0:
		return 0, nil, decodeErr(ReasonBadMagicByte, errors.New("value is not in the Confluent wire format (magic byte 0 + schema id)"))
	}
	return int(binary.BigEndian.Uint32(b[1:5])), b[5:], nil
}
