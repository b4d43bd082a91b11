package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Deterministic ids let downstream consumers drop the duplicates that
// at-least-once delivery produces: the same input always yields the same id.

func uuidOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50 // version 5 layout (name-based, SHA)
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	s := hex.EncodeToString(b)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
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
