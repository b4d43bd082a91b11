package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Deterministic ids let downstream consumers drop the duplicates that
// at-least-once delivery produces: the same input always yields the same id.

func uuidOf(parts ...string) string {
	var arr [256]byte // one buffer, one hash, one string: ids are made several times per input
	b := arr[:0]
	for _, p := range parts {
		b = append(append(b, p...), 0)
	}
	sum := sha256.Sum256(b)
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5 layout (name-based, SHA)
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], u[10:16])
	return string(out[:])
}

// enrichmentID names one profile's enrichment by provider, type, tenant and profile.
func enrichmentID(tenant, profile string) string {
	return uuidOf("leadspace", "company", tenant, profile)
}

// outputEventID derives an output's id from the input event that caused it.
func outputEventID(inputEventID string) string {
	return uuidOf("enriched-company", inputEventID)
}

// deadLetterID names a dead letter by where its input sat and where it failed.
func deadLetterID(topic string, partition int, offset int64, stage string) string {
	return uuidOf("dead-letter", topic, strconv.Itoa(partition), strconv.FormatInt(offset, 10), stage)
}
