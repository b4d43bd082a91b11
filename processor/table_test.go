package processor

import (
	"fmt"
	"testing"
	"time"

	"github.com/enrichment/leadspace-enricher/leadspace"
)

func TestTableCountsDistinctCurrentProfilesPerTenant(t *testing.T) {
	names := newInterner()
	tb := newTable(names, 0)
	acme, skip := names.id("acme"), names.id(ReasonMissingName)
	put := func(key string, outcome uint8, failed bool) {
		tb.put(key, tableEntry{tenant: acme, outcome: outcome, failed: failed, reason: skip, answeredAt: time.Now().UnixMilli()})
	}
	put("acme/1", outcomeEnriched, false)
	put("acme/2", outcomeNotMatched, false)
	put("acme/3", outcomeSkipped, false)
	put("acme/1", outcomeEnriched, false) // a new version of the same profile: still one profile
	put("acme/4", outcomeEnriched, true)  // its latest input failed
	put("acme/5", outcomeEnriched, false)
	tb.remove("acme/5") // deleted upstream

	views := tb.takeDirty(false)
	if len(views) != 1 {
		t.Fatalf("views: %+v", views)
	}
	v := views[0]
	if v.tenant != "acme" || v.profiles != 4 || v.enriched != 1 || v.notMatched != 1 || v.skipped != 1 || v.failed != 1 {
		t.Fatalf("counts: %+v", v)
	}
	if v.skippedReasons[ReasonMissingName] != 1 {
		t.Fatalf("skip reasons: %v", v.skippedReasons)
	}
	if again := tb.takeDirty(false); len(again) != 0 {
		t.Fatalf("clean tenants reported again: %+v", again)
	}
	if all := tb.takeDirty(true); len(all) != 1 {
		t.Fatalf("all: %+v", all)
	}
}

func TestTableKeepsManyKeysApart(t *testing.T) {
	names := newInterner()
	tb := newTable(names, 0)
	const n = 200000
	for i := range n {
		tb.put(fmt.Sprintf("t/%d", i), tableEntry{offset: int64(i), tenant: names.id("t")})
	}
	for i := range n {
		st, ok := tb.get(fmt.Sprintf("t/%d", i))
		if !ok || st.offset != int64(i) {
			t.Fatalf("key %d: %+v %v", i, st, ok)
		}
	}
	if _, ok := tb.get("t/none"); ok {
		t.Fatal("a key never put was found")
	}
	if tb.len() != n {
		t.Fatalf("len %d", tb.len())
	}
}

func TestStateHeaderRoundTrips(t *testing.T) {
	for _, s := range []recordState{
		{},
		{outcome: outcomeSkipped, fingerprint: 1<<63 + 5, offset: 123456789, version: -1, answeredAt: time.Now().UnixMilli(), reason: ReasonNoConsent},
		{offset: -1},
	} {
		got, err := decodeState(s.encode())
		if err != nil || got != s {
			t.Fatalf("round trip of %+v: %+v, %v", s, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1, 0, 1}, append((recordState{reason: "x"}).encode()[:11], 0xff)} {
		if _, err := decodeState(bad); err == nil {
			t.Fatalf("%x decoded", bad)
		}
	}
}

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
