package processor

import (
	"testing"

	"github.com/enrichment/leadspace-enricher/leadspace"
)

func TestFingerprintBitsAreThePrefix(t *testing.T) {
	fp := fingerprint(leadspaceInput("Contoso"))
	if fingerprintBits(fp) == 0 || fingerprintBits(fp) != fingerprintBits(fp) {
		t.Fatal("fingerprint bits")
	}
	if fingerprintBits("-") != 0 || fingerprintBits("zz") != 0 {
		t.Fatal("a missing fingerprint must map to 0")
	}
	if fingerprintBits(fingerprint(leadspaceInput("Contoso"))) == fingerprintBits(fingerprint(leadspaceInput("Fabrikam"))) {
		t.Fatal("different inputs share fingerprint bits")
	}
}

func leadspaceInput(name string) leadspace.CompanyInput { return leadspace.CompanyInput{Name: name} }
