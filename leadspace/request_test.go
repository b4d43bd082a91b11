package leadspace

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestBodiesAreWhatJSONMarshalWrites: the hand-written bodies are byte for
// byte what encoding/json writes for the wire shapes, for awkward text too
// (quotes, controls, HTML characters, invalid UTF-8, U+2028).
func TestBodiesAreWhatJSONMarshalWrites(t *testing.T) {
	rnd := rand.New(rand.NewPCG(21, 3))
	pieces := []string{"", "Acme", "\"q\"", `back\slash`, "<b>&amp;</b>", "tab\tnl\nret\r", "\x00\x01\x1f\b\f", "é ü 中",
		"\u2028\u2029", "\xff\xfe bad", "\xe2\x80", "emoji 😀", "/slash", "\x7f"}
	str := func() string {
		s := ""
		for range rnd.IntN(4) {
			s += pieces[rnd.IntN(len(pieces))]
		}
		return s
	}
	var reqs []Request
	for range 400 {
		r := Request{ExternalID: str(), Company: CompanyInput{Name: str(), Website: str()}}
		if rnd.IntN(3) > 0 {
			r.Company.Address = &Address{Street: str(), City: str(), State: str(), PostalCode: str(), Country: str()}
		}
		reqs = append(reqs, r)
		want, err := json.Marshal(r.wire())
		if err != nil {
			t.Fatal(err)
		}
		got, _ := singleBody(r)
		if !bytes.Equal(got, want) {
			t.Fatalf("single body of %+v\n got %s\nwant %s", r, got, want)
		}
	}
	for _, n := range []int{0, 1, 400} {
		wb := wireBulk{Data: make([]wireRecord, n)}
		for i, r := range reqs[:n] {
			wb.Data[i] = r.wire()
		}
		want, err := json.Marshal(wb)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := bulkBody(reqs[:n]); !bytes.Equal(got, want) {
			t.Fatalf("bulk body of %d records differs:\n got %s\nwant %s", n, got, want)
		}
	}
}
