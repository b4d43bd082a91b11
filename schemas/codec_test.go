package schemas

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

func newTestCodec(t testing.TB) *Codec {
	t.Helper()
	reg := srfake.New()
	t.Cleanup(reg.Close)
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatal(err)
	}
	subjects := map[Type]string{}
	for _, typ := range Types() {
		subjects[typ] = shortName(typ) + "-value"
	}
	c, err := NewCodec(context.Background(), cl, subjects)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var at = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestProfileRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	in := Profile{EventID: "e1", TenantID: "t1", ProfileID: "p1", Kind: "ACCOUNT",
		Attributes: map[string]string{"Name": "Contoso", "Website": "contoso.com"}, UnifiedAt: at, Version: 3}
	b, err := c.Encode(ProfileUnified, in.Native())
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0 || int(b[4]) != c.SchemaID(ProfileUnified) {
		t.Fatalf("wire header = % x, want magic 0 and schema id %d", b[:5], c.SchemaID(ProfileUnified))
	}
	out, err := c.DecodeProfile(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the profile:\n in  %+v\n out %+v", in, out)
	}
}

func TestEnrichedRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	emp, rev := int64(1200), int64(250_000_000)
	in := Enriched{EventID: "ev", EnrichmentID: "en", TenantID: "t1", ProfileID: "p1", Status: StatusEnriched,
		Confidence: "HIGH", Sent: &Sent{Name: "Contoso", Website: "contoso.com", Location: &Address{City: "Seattle", Country: "US"}},
		Company: &Firmographics{LeadspaceID: "ls1", Name: "Contoso Ltd", Industry: "Software", Employees: &emp, RevenueUSD: &rev,
			Address: &Address{City: "Redmond", State: "WA", Country: "US"}, Technologies: []string{"Kafka", "Go"}},
		InputFingerprint: "fp", EnrichedAt: at,
		Lineage: Lineage{SourceTopic: "profile-unified", SourcePartition: 2, SourceOffset: 42, SourceEventID: "e1", ProfileVersion: 3}}
	b, err := c.Encode(EnrichedCompany, in.Native())
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.DecodeEnriched(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip changed the enrichment:\n in  %+v\n out %+v", in, out)
	}
}

func TestControlRoundTripEveryKind(t *testing.T) {
	c := newTestCodec(t)
	events := []Control{
		{Connection: &Connection{DisplayName: "Acme", TokenRef: "env:LS_TOKEN", VerifiedAt: at}},
		{Consent: &Consent{Given: true, TermsVersion: "2020-11"}},
		{Mapping: &Mapping{NameAttribute: "Name", WebsiteAttribute: "Website", MinConfidence: "MEDIUM", RefreshInterval: time.Hour}},
		{Removal: &Removal{Purge: true}},
		{Refresh: &Refresh{RunID: "run-1", Force: true}},
	}
	for _, in := range events {
		in.EventID, in.TenantID, in.IssuedAt, in.IssuedBy, in.Signature = "c1", "t1", at, "admin@acme", "sig"
		native, err := in.Native()
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Encode(ControlEvent, native)
		if err != nil {
			t.Fatalf("%s: %v", in.Kind(), err)
		}
		out, err := c.DecodeControl(context.Background(), b)
		if err != nil {
			t.Fatalf("%s: %v", in.Kind(), err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("%s: round trip changed the event:\n in  %+v\n out %+v", in.Kind(), in, out)
		}
	}
}

func TestDeadLetterAndStatusRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	d := Dead{ID: "d1", OriginalKey: []byte("t1/p1"), OriginalValue: []byte{1, 2, 3},
		OriginalHeaders: []Header{{Key: "trace", Value: []byte("x")}}, SourceTopic: "profile-unified", SourcePartition: 1,
		SourceOffset: 7, SourceTimestamp: at, Stage: StageDecode, Reason: ReasonBadMagicByte, ErrorClass: "input",
		ErrorMessage: "bad", Attempts: 1, FirstFailureAt: at, LastFailureAt: at, TenantID: "t1"}
	b, _ := c.Encode(DeadLetter, d.Native())
	gotD, err := c.DecodeDead(context.Background(), b)
	if err != nil || !reflect.DeepEqual(d, gotD) {
		t.Fatalf("dead letter round trip: err=%v\n in  %+v\n out %+v", err, d, gotD)
	}
	s := Status{TenantID: "t1", Partition: 2, State: StatePaused, StateReason: "leadspace.unauthorized", UpdatedAt: at,
		LastEnrichedAt: at, Profiles: 10, Enriched: 7, NotMatched: 1, Skipped: 1, Failed: 1, CreditsSpent: 8, CommittedOffset: 11, RefusedControl: 2, LastRefused: "control.bad_signature"}
	b, _ = c.Encode(EnrichmentStatus, s.Native())
	gotS, err := c.DecodeStatus(context.Background(), b)
	if err != nil || !reflect.DeepEqual(s, gotS) {
		t.Fatalf("status round trip: err=%v\n in  %+v\n out %+v", err, s, gotS)
	}
}

func TestDecodeRefusesBadInputWithStableReasons(t *testing.T) {
	c := newTestCodec(t)
	good, _ := c.Encode(EnrichedCompany, Enriched{Status: StatusSkipped, EnrichedAt: at}.Native())
	cases := map[string]struct {
		value  []byte
		reason string
	}{
		"empty":              {nil, ReasonEmptyValue},
		"plain json":         {[]byte(`{"tenant_id":"t1"}`), ReasonBadMagicByte},
		"header only, short": {[]byte{0, 0, 0}, ReasonBadMagicByte},
		"unknown schema id":  {[]byte{0, 0, 0, 0x7f, 0x01, 2}, ReasonUnknownSchemaID},
		"another record":     {good, ReasonWrongType},
		"truncated avro":     {append(frame(c.SchemaID(ProfileUnified), nil), 0x06, 'e'), ReasonBadAvro},
		"too large":          {make([]byte, MaxValueBytes+1), ReasonTooLarge},
	}
	for name, tc := range cases {
		_, err := c.DecodeProfile(context.Background(), tc.value)
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason != tc.reason {
			t.Errorf("%s: got %v, want reason %s", name, err, tc.reason)
		}
	}
}

// FuzzDecodeProfile: no byte string may panic the decoder.
func FuzzDecodeProfile(f *testing.F) {
	c := newTestCodecF(f)
	good, _ := c.Encode(ProfileUnified, Profile{EventID: "e", TenantID: "t", ProfileID: "p", Attributes: map[string]string{"a": "b"}, UnifiedAt: at}.Native())
	f.Add(good)
	f.Add([]byte{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = c.DecodeProfile(context.Background(), b)
	})
}

func newTestCodecF(f *testing.F) *Codec {
	reg := srfake.New()
	f.Cleanup(reg.Close)
	cl, _ := sr.NewClient(sr.URLs(reg.URL()))
	c, err := NewCodec(context.Background(), cl, map[Type]string{ProfileUnified: "p-value", EnrichedCompany: "e-value"})
	if err != nil {
		f.Fatal(err)
	}
	return c
}

func TestNewCodecNamesTheSubjectARegistryRefuses(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema"}`))
	}))
	defer refusing.Close()
	cl, err := sr.NewClient(sr.URLs(refusing.URL))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewCodec(context.Background(), cl, map[Type]string{EnrichedCompany: "enriched-company-value"})
	if err == nil || !strings.Contains(err.Error(), `"enriched-company-value"`) || !strings.Contains(err.Error(), "incompatible") {
		t.Fatalf("got %v; want an error naming the subject and the registry's reason", err)
	}
}
