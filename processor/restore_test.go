package processor

import (
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/enrichment/leadspace-enricher/leadspace"
)

func TestFingerprintBitsAreThePrefix(t *testing.T) {
	fp := fingerprint(leadspaceInput("Contoso"))
	if got, want := fingerprintBits(fp), binary.BigEndian.Uint64(must(hex.DecodeString(fp[:16]))); got != want || got == 0 {
		t.Fatalf("fingerprint bits %x, want the first 8 bytes %x", got, want)
	}
	if fingerprintBits("-") != 0 || fingerprintBits("zz") != 0 {
		t.Fatal("a missing fingerprint must map to 0")
	}
	if fingerprintBits(fingerprint(leadspaceInput("Contoso"))) == fingerprintBits(fingerprint(leadspaceInput("Fabrikam"))) {
		t.Fatal("different inputs share fingerprint bits")
	}
}

func leadspaceInput(name string) leadspace.CompanyInput { return leadspace.CompanyInput{Name: name} }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
