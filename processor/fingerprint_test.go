package processor

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/enrichment/leadspace-enricher/leadspace"
)

// TestFingerprintTextIsUnchanged: outputs on enriched-company carry
// fingerprints; a different text hashed would make every standing answer
// look changed and call Leadspace again. This is the text it always hashed.
func TestFingerprintTextIsUnchanged(t *testing.T) {
	for _, in := range []leadspace.CompanyInput{
		{Name: "Contoso Ltd", Website: "contoso.com"},
		{Name: "Contoso", Address: &leadspace.Address{Street: "1 Main", City: "Seattle", State: "WA", PostalCode: "98101", Country: "US"}},
		{},
	} {
		text := fmt.Sprintf("name=%s\x00website=%s\x00", in.Name, in.Website)
		if a := in.Address; a != nil {
			text += fmt.Sprintf("street=%s\x00city=%s\x00state=%s\x00postal=%s\x00country=%s\x00", a.Street, a.City, a.State, a.PostalCode, a.Country)
		}
		sum := sha256.Sum256([]byte(text))
		if got, want := fingerprint(in), hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("fingerprint(%+v) = %s, want %s", in, got, want)
		}
	}
}
