package schemas

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
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
