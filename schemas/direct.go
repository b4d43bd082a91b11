package schemas

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"
)

// The direct encoder writes EnrichedCompany's Avro binary straight from the
// Go value, without goavro's native form: building that form (a map per
// record and per union) and goavro's walk over it cost about half of the
// CPU an output took (issue 21). goavro stays the codec of record: a codec
// uses the direct encoder only if, at start, it reproduces goavro's bytes
// for probe values covering every branch of the schema (directMatches), so
// a change to enriched_company.avsc that this file does not follow falls
// back to goavro instead of writing a value the schema does not describe.

// enrichedStatus are the EnrichmentOutcome symbols, in schema order.
var enrichedStatus = map[string]int64{"UNKNOWN": 0, StatusEnriched: 1, StatusNotMatched: 2, StatusSkipped: 3}

// EncodeEnriched encodes an EnrichedCompany event into a framed value.
func (c *Codec) EncodeEnriched(e Enriched) ([]byte, error) {
	w, ok := c.writers[EnrichedCompany]
	if !ok {
		return nil, fmt.Errorf("schemas: %s is not registered with this codec", shortName(EnrichedCompany))
	}
	if !c.direct {
		return c.Encode(EnrichedCompany, e.Native())
	}
	value, err := appendEnriched(header(w.id, int(w.last.Load())+64), e)
	if err != nil {
		return nil, fmt.Errorf("schemas: encode %s: %w", shortName(EnrichedCompany), err)
	}
	w.last.Store(int64(len(value)))
	return value, nil
}

// EncodeBulk encodes a BulkInFlight record into a framed value: directly
// when the direct encoders match goavro (as EncodeEnriched), since a bulk
// holds 500 inputs and goavro's native form is a map per input.
func (c *Codec) EncodeBulk(b Bulk) ([]byte, error) {
	w, ok := c.writers[BulkInFlight]
	if !ok {
		return nil, fmt.Errorf("schemas: %s is not registered with this codec", shortName(BulkInFlight))
	}
	if !c.direct {
		return c.Encode(BulkInFlight, b.Native())
	}
	return appendBulk(header(w.id, 64+12*len(b.Inputs)), b), nil
}

// appendBulk appends b's Avro binary (the schema's field order) to out.
func appendBulk(out []byte, b Bulk) []byte {
	out = appendString(out, b.Program)
	out = appendString(out, b.Path)
	out = appendLong(out, b.AcceptedAt.UnixMilli())
	out = appendString(out, b.SourceTopic)
	if len(b.Inputs) > 0 {
		out = appendLong(out, int64(len(b.Inputs))) // one block
		for _, in := range b.Inputs {
			out = appendLong(appendLong(out, int64(in.Partition)), in.Offset)
		}
	}
	return appendLong(out, 0)
}

// appendEnriched appends e's Avro binary (the schema's field order) to b.
func appendEnriched(b []byte, e Enriched) ([]byte, error) {
	status, ok := enrichedStatus[e.Status]
	if !ok {
		return nil, fmt.Errorf("status %q is not a symbol of EnrichmentOutcome", e.Status)
	}
	b = appendString(b, e.EventID)
	b = appendString(b, e.EnrichmentID)
	b = appendString(b, "leadspace")
	b = appendString(b, e.TenantID)
	b = appendString(b, e.ProfileID)
	b = appendLong(b, status)
	b = appendOptString(b, e.SkipReason)
	b = appendOptString(b, e.Confidence)
	if s := e.Sent; s == nil {
		b = appendLong(b, 0)
	} else {
		b = appendLong(b, 1)
		b = appendString(b, s.Name)
		b = appendOptString(b, s.Website)
		b = appendOptAddress(b, s.Location)
	}
	if f := e.Company; f == nil {
		b = appendLong(b, 0)
	} else {
		b = appendLong(b, 1)
		for _, s := range [...]string{f.LeadspaceID, f.Name, f.Website, f.Description, f.Industry, f.SubIndustry,
			f.SIC, f.SICDesc, f.NAICS, f.NAICSDesc} {
			b = appendString(b, s)
		}
		b = appendOptLong(b, f.Employees)
		b = appendString(b, f.EmployeesRange)
		b = appendOptLong(b, f.RevenueUSD)
		b = appendString(b, f.RevenueRange)
		b = appendOptAddress(b, f.Address)
		b = appendString(b, f.Phone)
		b = appendString(b, f.LinkedInURL)
		b = appendString(b, f.Ownership)
		if len(f.Technologies) > 0 {
			b = appendLong(b, int64(len(f.Technologies)))
			for _, t := range f.Technologies {
				b = appendString(b, t)
			}
		}
		b = appendLong(b, 0) // the array's end
	}
	b = appendString(b, e.InputFingerprint)
	b = appendLong(b, e.EnrichedAt.UnixMilli())
	l := e.Lineage
	b = appendString(b, l.SourceTopic)
	b = appendLong(b, int64(l.SourcePartition))
	b = appendLong(b, l.SourceOffset)
	b = appendString(b, l.SourceEventID)
	b = appendLong(b, l.ProfileVersion)
	return b, nil
}

// appendLong appends a zig-zag varint (Avro's int and long).
func appendLong(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

func appendString(b []byte, s string) []byte {
	return append(appendLong(b, int64(len(s))), s...)
}

// appendOptString: ["null", "string"], null for "" (as optString).
func appendOptString(b []byte, s string) []byte {
	if s == "" {
		return appendLong(b, 0)
	}
	return appendString(appendLong(b, 1), s)
}

func appendOptLong(b []byte, v *int64) []byte {
	if v == nil {
		return appendLong(b, 0)
	}
	return appendLong(appendLong(b, 1), *v)
}

func appendOptAddress(b []byte, a *Address) []byte {
	if a == nil {
		return appendLong(b, 0)
	}
	b = appendLong(b, 1)
	for _, s := range [...]string{a.Street, a.City, a.State, a.PostalCode, a.Country} {
		b = appendString(b, s)
	}
	return b
}

// directProbes cover every branch of EnrichedCompany: each union both
// ways, every status, an empty and a full array, negative numbers.
func directProbes() []Enriched {
	n, m := int64(-7), int64(1<<40)
	at := time.UnixMilli(1764979200123).UTC()
	full := Enriched{EventID: "e-1", EnrichmentID: "leadspace/company/t/p", TenantID: "t", ProfileID: "p",
		Status: StatusEnriched, Confidence: "HIGH",
		Sent:             &Sent{Name: "Acme", Website: "acme.example", Location: &Address{Street: "1 Main St", City: "Springfield", State: "IL", PostalCode: "62701", Country: "US"}},
		Company:          &Firmographics{LeadspaceID: "ls-1", Name: "Acme Inc", Website: "acme.example", Description: "d", Industry: "i", SubIndustry: "si", SIC: "1", SICDesc: "sd", NAICS: "2", NAICSDesc: "nd", Employees: &n, EmployeesRange: "1-10", RevenueUSD: &m, RevenueRange: "r", Address: &Address{City: "Zürich"}, Phone: "+1", LinkedInURL: "l", Ownership: "o", Technologies: []string{"Go", "Kafka"}},
		InputFingerprint: "fp", EnrichedAt: at, Lineage: Lineage{SourceTopic: "profile-unified", SourcePartition: 5, SourceOffset: 1 << 33, SourceEventID: "src", ProfileVersion: 3}}
	bare := Enriched{EventID: "e-2", EnrichmentID: "x", TenantID: "t", ProfileID: "p", Status: StatusSkipped, SkipReason: "consent.missing",
		InputFingerprint: "-", EnrichedAt: at, Lineage: Lineage{SourceTopic: "t", SourcePartition: -1, SourceOffset: 0, ProfileVersion: -2}}
	noMatch := Enriched{EventID: "e-3", Status: StatusNotMatched, Sent: &Sent{Name: "n"}, Company: &Firmographics{}, EnrichedAt: at}
	unknown := Enriched{Status: "UNKNOWN", EnrichedAt: at}
	return []Enriched{full, bare, noMatch, unknown}
}

// directMatches says whether the direct encoder writes, for every probe,
// the bytes goavro writes with the codec's compiled schema.
func (c *Codec) directMatches() bool {
	w, ok := c.writers[EnrichedCompany]
	if !ok {
		return false
	}
	for _, e := range directProbes() {
		want, err := w.codec.BinaryFromNative(nil, e.Native())
		if err != nil {
			return false
		}
		got, err := appendEnriched(nil, e)
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	bw, ok := c.writers[BulkInFlight]
	if !ok {
		return false
	}
	for _, b := range bulkProbes() {
		want, err := bw.codec.BinaryFromNative(nil, b.Native())
		if err != nil || !bytes.Equal(appendBulk(nil, b), want) {
			return false
		}
	}
	return true
}

// bulkProbes cover BulkInFlight: no input, one, several with negative and
// large numbers.
func bulkProbes() []Bulk {
	at := time.UnixMilli(1764979200123).UTC()
	return []Bulk{
		{Program: "p", Path: "/v3/enrichment/results/x", AcceptedAt: at, SourceTopic: "profile-unified"},
		{Program: "4a0b394baeade5bd", Path: "/r/ü", AcceptedAt: time.UnixMilli(-1).UTC(), SourceTopic: "t",
			Inputs: []BulkInput{{Partition: 0, Offset: 0}, {Partition: -1, Offset: -7}, {Partition: 1 << 30, Offset: 1 << 62}}},
	}
}

// The direct decoder reads ProfileUnified's Avro binary into a Profile
// without goavro's native form (a map per record, a map of interfaces for
// the attributes, then a copy of each): it is used for writer schemas
// whose canonical form is the one this codec compiled (readerOf), the
// others go through goavro. Its answers are goavro's, field by field
// (TestDirectDecoderReadsWhatGoavroReads).

// profileKinds are the ProfileKind symbols, in schema order.
var profileKinds = [...]string{"UNKNOWN", "ACCOUNT", "CONTACT"}

// decodeProfileDirect reads one ProfileUnified body; errors are
// *DecodeError with ReasonBadAvro, as goavro's are.
func decodeProfileDirect(body []byte, inPlace bool) (Profile, error) {
	d := avroReader{b: body, inPlace: inPlace}
	p := Profile{EventID: d.str(), TenantID: d.str(), ProfileID: d.str()}
	if k := d.long(); d.err == nil {
		if k < 0 || k >= int64(len(profileKinds)) {
			d.fail(fmt.Errorf("enum index %d is not a symbol of ProfileKind", k))
		} else {
			p.Kind = profileKinds[k]
		}
	}
	p.Attributes = d.stringMap()
	ms := d.long()
	p.UnifiedAt = time.Unix(ms/1e3, (ms-ms/1e3*1e3)*1e6).UTC() // as goavro's timestamp-millis
	p.Version = d.long()
	if d.err != nil {
		return Profile{}, decodeErr(ReasonBadAvro, d.err)
	}
	if len(d.b) != 0 {
		return Profile{}, decodeErr(ReasonBadAvro, fmt.Errorf("%d trailing bytes after the record", len(d.b)))
	}
	return p, nil
}

// avroReader reads Avro binary values off b; the first error sticks and
// every later read returns a zero value.
type avroReader struct {
	b   []byte
	err error
	// inPlace: strings share b's bytes (DecodeProfileInPlace).
	inPlace bool
}

func (d *avroReader) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

// long reads a zig-zag varint the way goavro does (no length limit).
func (d *avroReader) long() int64 {
	var v uint64
	var shift uint
	for i, c := range d.b {
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			d.b = d.b[i+1:]
			return int64(v>>1) ^ -int64(v&1)
		}
		shift += 7
	}
	d.fail(errors.New("short buffer"))
	return 0
}

func (d *avroReader) str() string {
	n := d.long()
	switch {
	case d.err != nil:
		return ""
	case n < 0:
		d.fail(fmt.Errorf("cannot decode binary string: negative size: %d", n))
		return ""
	case n > int64(len(d.b)):
		d.fail(fmt.Errorf("cannot decode binary string: buffer underflow: %d > %d", n, len(d.b)))
		return ""
	}
	var s string
	switch {
	case d.inPlace && n > 0:
		s = unsafe.String(&d.b[0], n)
	default:
		s = string(d.b[:n])
	}
	d.b = d.b[n:]
	return s
}

// stringMap reads a map of strings: blocks of entries, a negative count
// followed by the block's size in bytes, ended by a zero count; a key twice
// is an error, as in goavro. Counts are
// bounded by what the remaining bytes can hold, so garbage cannot make it
// allocate without bound.
func (d *avroReader) stringMap() map[string]string {
	m := map[string]string{}
	for d.err == nil {
		n := d.long()
		if n == 0 || d.err != nil {
			break
		}
		if n < 0 {
			n = -n
			if d.long(); d.err != nil { // the block's size: not needed
				break
			}
		}
		if n > int64(len(d.b))/2 {
			d.fail(fmt.Errorf("map block of %d entries in %d bytes", n, len(d.b)))
			break
		}
		for range n {
			k := d.str()
			v := d.str()
			if _, dup := m[k]; dup && d.err == nil {
				d.fail(fmt.Errorf("cannot decode binary map: duplicate key: %q", k))
			}
			if d.err == nil {
				m[k] = v
			}
		}
	}
	if d.err != nil {
		return nil
	}
	return m
}
