package schemas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestDirectEncoderWritesGoavrosBytes: the direct encoder is in use, and
// for probes and random values it writes exactly what goavro writes, and
// what it writes decodes back to the value.
func TestDirectEncoderWritesGoavrosBytes(t *testing.T) {
	c := newTestCodec(t)
	if !c.direct {
		t.Fatal("the direct encoder did not reproduce goavro's bytes for its probes: EnrichedCompany is written by goavro")
	}
	rnd := rand.New(rand.NewPCG(21, 1))
	str := func() string {
		if rnd.IntN(3) == 0 {
			return ""
		}
		return fmt.Sprintf("s-%d-ü-%s", rnd.Int64(), string(make([]byte, rnd.IntN(200))))
	}
	optLong := func() *int64 {
		if rnd.IntN(2) == 0 {
			return nil
		}
		v := rnd.Int64() - rnd.Int64()
		return &v
	}
	addr := func() *Address {
		if rnd.IntN(2) == 0 {
			return nil
		}
		return &Address{Street: str(), City: str(), State: str(), PostalCode: str(), Country: str()}
	}
	values := directProbes()
	for range 500 {
		e := Enriched{EventID: str(), EnrichmentID: str(), TenantID: str(), ProfileID: str(),
			Status:     []string{"UNKNOWN", StatusEnriched, StatusNotMatched, StatusSkipped}[rnd.IntN(4)],
			SkipReason: str(), Confidence: str(), InputFingerprint: str(),
			EnrichedAt: time.UnixMilli(rnd.Int64N(1 << 42)).UTC(),
			Lineage:    Lineage{SourceTopic: str(), SourcePartition: rnd.Int32() - rnd.Int32(), SourceOffset: rnd.Int64(), SourceEventID: str(), ProfileVersion: rnd.Int64() - rnd.Int64()}}
		if rnd.IntN(2) == 0 {
			e.Sent = &Sent{Name: str(), Website: str(), Location: addr()}
		}
		if rnd.IntN(2) == 0 {
			f := &Firmographics{LeadspaceID: str(), Name: str(), Website: str(), Description: str(), Industry: str(),
				SubIndustry: str(), SIC: str(), SICDesc: str(), NAICS: str(), NAICSDesc: str(), Employees: optLong(),
				EmployeesRange: str(), RevenueUSD: optLong(), RevenueRange: str(), Address: addr(), Phone: str(),
				LinkedInURL: str(), Ownership: str()}
			for range rnd.IntN(4) {
				f.Technologies = append(f.Technologies, str())
			}
			e.Company = f
		}
		values = append(values, e)
	}
	for i, e := range values {
		want, err := c.Encode(EnrichedCompany, e.Native())
		if err != nil {
			t.Fatalf("value %d: goavro: %v", i, err)
		}
		got, err := c.EncodeEnriched(e)
		if err != nil {
			t.Fatalf("value %d: direct: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("value %d: direct encoder wrote\n% x\ngoavro wrote\n% x", i, got, want)
		}
		if _, err := c.DecodeEnriched(context.Background(), got); err != nil {
			t.Fatalf("value %d: does not decode: %v", i, err)
		}
	}
}

// TestDirectBulkEncoderWritesGoavrosBytes: BulkInFlight records of 0 to
// 600 inputs, written directly and by goavro, are the same bytes, and
// DecodeBulk reads them back.
func TestDirectBulkEncoderWritesGoavrosBytes(t *testing.T) {
	c := newTestCodec(t)
	rnd := rand.New(rand.NewPCG(21, 3))
	values := bulkProbes()
	for range 200 {
		b := Bulk{Program: fmt.Sprint(rnd.Uint64()), Path: fmt.Sprintf("/v3/enrichment/results/%x-ü", rnd.Uint64()),
			AcceptedAt: time.UnixMilli(rnd.Int64N(1<<44) - 1<<43).UTC(), SourceTopic: fmt.Sprint("topic-", rnd.IntN(9))}
		for range rnd.IntN(600) {
			b.Inputs = append(b.Inputs, BulkInput{Partition: rnd.Int32() - rnd.Int32(), Offset: rnd.Int64() - rnd.Int64()})
		}
		values = append(values, b)
	}
	for i, b := range values {
		want, err := c.Encode(BulkInFlight, b.Native())
		if err != nil {
			t.Fatalf("value %d: goavro: %v", i, err)
		}
		got, err := c.EncodeBulk(b)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("value %d (%v): direct encoder wrote\n% x\ngoavro wrote\n% x", i, err, got, want)
		}
		back, err := c.DecodeBulk(context.Background(), got)
		if err != nil || back.Path != b.Path || len(back.Inputs) != len(b.Inputs) || !back.AcceptedAt.Equal(b.AcceptedAt) {
			t.Fatalf("value %d: read back %+v (%v)", i, back, err)
		}
	}
}

// TestDirectEncoderRefusesAnUnknownStatus, as goavro does.
func TestDirectEncoderRefusesAnUnknownStatus(t *testing.T) {
	c := newTestCodec(t)
	if _, err := c.EncodeEnriched(Enriched{Status: "MAYBE"}); err == nil {
		t.Fatal("a status outside the enum was encoded")
	}
}

// BenchmarkEncodeEnriched: one ENRICHED output, direct and through goavro.
func BenchmarkEncodeEnriched(b *testing.B) {
	c := newTestCodec(b)
	e := directProbes()[0]
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := c.EncodeEnriched(e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := c.Encode(EnrichedCompany, e.Native()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDirectDecoderReadsWhatGoavroReads: for valid profiles and for
// mangled bytes, the direct decoder gives goavro's profile or, where
// goavro refuses the bytes, a bad_avro error.
func TestDirectDecoderReadsWhatGoavroReads(t *testing.T) {
	c := newTestCodec(t)
	id := c.SchemaID(ProfileUnified)
	if r, err := c.reader(context.Background(), id); err != nil || !r.direct {
		t.Fatalf("our own ProfileUnified schema is not read directly (%v)", err)
	}
	rnd := rand.New(rand.NewPCG(21, 2))
	goavroProfile := func(value []byte) (Profile, error) {
		m, err := c.Decode(context.Background(), ProfileUnified, value)
		if err != nil {
			return Profile{}, err
		}
		r := &record{m: m}
		p := Profile{EventID: r.str("event_id"), TenantID: r.str("tenant_id"), ProfileID: r.str("profile_id"),
			Kind: r.str("profile_kind"), Attributes: r.stringMap("attributes"), UnifiedAt: r.time("unified_at"), Version: r.long("version")}
		return p, r.err
	}
	for i := range 2000 {
		p := Profile{EventID: fmt.Sprint("e", rnd.Int64()), TenantID: "t", ProfileID: fmt.Sprint(rnd.IntN(1000)),
			Kind: []string{"UNKNOWN", "ACCOUNT", "CONTACT"}[rnd.IntN(3)], Attributes: map[string]string{},
			UnifiedAt: time.UnixMilli(rnd.Int64N(1<<44) - 1<<43).UTC(), Version: rnd.Int64() - rnd.Int64()}
		for range rnd.IntN(12) {
			p.Attributes[fmt.Sprint("k", rnd.IntN(20))] = fmt.Sprint("v-ü-", rnd.Int64())
		}
		value, err := c.Encode(ProfileUnified, p.Native())
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 { // mangle: flip, cut or extend
			switch rnd.IntN(3) {
			case 0:
				value[5+rnd.IntN(len(value)-5)] ^= byte(1 + rnd.IntN(255))
			case 1:
				value = value[:5+rnd.IntN(len(value)-5)]
			case 2:
				value = append(value, byte(rnd.IntN(256)))
			}
		}
		want, werr := goavroProfile(value)
		got, gerr := c.DecodeProfile(context.Background(), value)
		inPlace, ierr := c.DecodeProfileInPlace(context.Background(), value)
		if (ierr == nil) != (gerr == nil) || !reflect.DeepEqual(inPlace, got) {
			t.Fatalf("value %d: read in place %+v (%v), copied %+v (%v)", i, inPlace, ierr, got, gerr)
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("value %d (% x): goavro error %v, direct error %v", i, value, werr, gerr)
		}
		if werr != nil {
			var de *DecodeError
			if !errors.As(gerr, &de) || de.Reason != ReasonBadAvro {
				t.Fatalf("value %d: direct error %v, want %s", i, gerr, ReasonBadAvro)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("value %d: direct read\n%+v\ngoavro read\n%+v", i, got, want)
		}
	}
}

// BenchmarkDecodeProfile: one profile of six attributes, direct and
// through goavro.
func BenchmarkDecodeProfile(b *testing.B) {
	c := newTestCodec(b)
	p := Profile{EventID: "e-1", TenantID: "tenant", ProfileID: "p-1", Kind: "ACCOUNT", UnifiedAt: time.UnixMilli(1764979200123).UTC(), Version: 1,
		Attributes: map[string]string{"Name": "Acme", "Website": "acme.example", "Street": "1 Main", "City": "Springfield", "Country": "US", "Phone": "+1"}}
	value, err := c.Encode(ProfileUnified, p.Native())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := c.DecodeProfile(context.Background(), value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("in-place", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := c.DecodeProfileInPlace(context.Background(), value); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("goavro", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := c.Decode(context.Background(), ProfileUnified, value); err != nil {
				b.Fatal(err)
			}
		}
	})
}
