package table

import (
	"fmt"
	"testing"
	"time"
)

func TestTableCountsDistinctCurrentProfilesPerTenant(t *testing.T) {
	names := NewInterner()
	tb := New(names, 0)
	acme, skip := names.ID("acme"), names.ID("map.missing_company_name")
	put := func(key string, outcome uint8, failed bool) {
		tb.Put(key, Entry{Tenant: acme, Outcome: outcome, Failed: failed, Reason: skip, AnsweredAt: time.Now().UnixMilli()})
	}
	put("acme/1", OutcomeEnriched, false)
	put("acme/2", OutcomeNotMatched, false)
	put("acme/3", OutcomeSkipped, false)
	put("acme/1", OutcomeEnriched, false) // a new version of the same profile: still one profile
	put("acme/4", OutcomeEnriched, true)  // its latest input failed
	put("acme/5", OutcomeEnriched, false)
	tb.Remove("acme/5") // deleted upstream

	views := tb.TakeDirty(false)
	if len(views) != 1 {
		t.Fatalf("views: %+v", views)
	}
	v := views[0]
	if v.Tenant != "acme" || v.Profiles != 4 || v.Enriched != 1 || v.NotMatched != 1 || v.Skipped != 1 || v.Failed != 1 {
		t.Fatalf("counts: %+v", v)
	}
	if v.SkippedReasons["map.missing_company_name"] != 1 {
		t.Fatalf("skip reasons: %v", v.SkippedReasons)
	}
	if again := tb.TakeDirty(false); len(again) != 0 {
		t.Fatalf("clean tenants reported again: %+v", again)
	}
	if all := tb.TakeDirty(true); len(all) != 1 {
		t.Fatalf("all: %+v", all)
	}
}

func TestTableKeepsManyKeysApart(t *testing.T) {
	names := NewInterner()
	tb := New(names, 0)
	const n = 200000
	for i := range n {
		tb.Put(fmt.Sprintf("t/%d", i), Entry{Offset: int64(i), Tenant: names.ID("t")})
	}
	for i := range n {
		st, ok := tb.Get(fmt.Sprintf("t/%d", i))
		if !ok || st.Offset != int64(i) {
			t.Fatalf("key %d: %+v %v", i, st, ok)
		}
	}
	if _, ok := tb.Get("t/none"); ok {
		t.Fatal("a key never put was found")
	}
	if tb.Len() != n {
		t.Fatalf("len %d", tb.Len())
	}
}

func TestStateHeaderRoundTrips(t *testing.T) {
	for _, s := range []State{
		{},
		{Outcome: OutcomeSkipped, Fingerprint: 1<<63 + 5, Offset: 123456789, Version: -1, AnsweredAt: time.Now().UnixMilli(), Reason: "gate.no_consent"},
		{Offset: -1},
	} {
		got, err := DecodeState(s.Encode())
		if err != nil || got != s {
			t.Fatalf("round trip of %+v: %+v, %v", s, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {2}, {1, 0, 1}, append((State{Reason: "x"}).Encode()[:11], 0xff)} {
		if _, err := DecodeState(bad); err == nil {
			t.Fatalf("%x decoded", bad)
		}
	}
}
