// Package schemas holds the Avro contract of every topic the enricher reads or
// writes, and the codec that puts values on the wire in the Confluent format:
// magic byte 0, a 4-byte big-endian schema id from the registry, Avro binary.
//
// The .avsc files are the contract; they are embedded so the binary always
// registers exactly the schemas it was built with.
package schemas

import (
	"embed"
	"fmt"

	"github.com/linkedin/goavro/v2"
)

//go:embed *.avsc
var files embed.FS

// Type names one record type of the contract.
type Type string

// The record types, named by their Avro full names so a decoded schema can be
// checked against the type a topic is expected to carry.
const (
	ProfileUnified   Type = "com.enrichment.profile.ProfileUnified"
	ControlEvent     Type = "com.enrichment.leadspace.control.ControlEvent"
	EnrichedCompany  Type = "com.enrichment.leadspace.EnrichedCompany"
	DeadLetter       Type = "com.enrichment.leadspace.DeadLetter"
	EnrichmentStatus Type = "com.enrichment.leadspace.EnrichmentStatus"
	BulkInFlight     Type = "com.enrichment.leadspace.BulkInFlight"
)

var typeFiles = map[Type]string{
	ProfileUnified:   "profile_unified.avsc",
	ControlEvent:     "control_event.avsc",
	EnrichedCompany:  "enriched_company.avsc",
	DeadLetter:       "dead_letter.avsc",
	EnrichmentStatus: "enrichment_status.avsc",
	BulkInFlight:     "bulk_in_flight.avsc",
}

// Types lists every record type of the contract.
func Types() []Type {
	return []Type{ProfileUnified, ControlEvent, EnrichedCompany, DeadLetter, EnrichmentStatus, BulkInFlight}
}

// Source returns the embedded .avsc text of a type.
func Source(t Type) (string, error) {
	name, ok := typeFiles[t]
	if !ok {
		return "", fmt.Errorf("schemas: unknown type %q", t)
	}
	b, err := files.ReadFile(name)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// compile parses the embedded schema of a type.
func compile(t Type) (*goavro.Codec, error) {
	src, err := Source(t)
	if err != nil {
		return nil, err
	}
	c, err := goavro.NewCodec(src)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s does not compile: %w", t, err)
	}
	return c, nil
}
