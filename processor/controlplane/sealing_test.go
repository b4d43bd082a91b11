package controlplane

import (
	"errors"
	"strings"
	"testing"
)

// A key pair and a v1 seal made by the enricher before v2 (commit 57017a2,
// SealToken then): tokens already on control topics look like this.
const (
	legacySealPrivate = "3mYB-QpT_EK-YIiOPZVyunknuVzrRxqgdVop_0jMeqE"
	legacySealPublic  = "5bEF_qnQQCeMPkfAcSvbIH8TFiwlEhFEjm04uFlT-wk"
	legacySealedV1    = "sealed:v1.Nuf47lKAhEvSb2jrjhQtK0fcrblRH6u_78YukhcpyBo-bi1EScq4BqKD3xXtWg_UaIDVbgn0pNKoTyBWnWSAj2zt_hGrwnag8Q"
	legacySealedToken = "tok-legacy-V1"
)

// resolveSealed resolves ref for tenant with the service key private, and
// returns the token or the reason it did not resolve.
func resolveSealed(t *testing.T, private, tenant, ref string) (token, reason string) {
	t.Helper()
	key, err := ParseSealKey(private)
	if err != nil {
		t.Fatal(err)
	}
	token, err = TokenSources{SealKey: key}.Resolver()(tenant, ref)
	var te *TokenError
	switch {
	case err == nil:
		return token, ""
	case errors.As(err, &te):
		if strings.Contains(err.Error(), legacySealedToken) || strings.Contains(err.Error(), "tok-v2-SECRET") {
			t.Errorf("the error shows the token: %v", err)
		}
		return "", te.Reason
	}
	t.Fatalf("resolving %.20s: %v is not a *TokenError", ref, err)
	return "", ""
}

func TestSealedTokensAreHPKEAndOpenOnlyForTheirTenant(t *testing.T) {
	private, public, err := GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	otherPrivate, _, err := GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := SealToken(public, "acme", "tok-v2-SECRET")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, "sealed:v2.") {
		t.Fatalf("a new seal is %.12s..., want sealed:v2.", sealed)
	}
	again, _ := SealToken(public, "acme", "tok-v2-SECRET")
	if again == sealed {
		t.Fatal("two seals of one token are equal: the encapsulated key is not fresh")
	}
	if token, reason := resolveSealed(t, private, "acme", sealed); token != "tok-v2-SECRET" {
		t.Fatalf("v2 seal for acme: got %q (%s)", token, reason)
	}
	if _, reason := resolveSealed(t, private, "globex", sealed); reason != ReasonTokenUnresolvable {
		t.Errorf("v2 seal for acme opened for globex: reason %q", reason)
	}
	if _, reason := resolveSealed(t, private, "acme\x00", sealed); reason != ReasonTokenUnresolvable {
		t.Errorf("v2 seal for acme opened for a tenant id with acme as prefix: reason %q", reason)
	}
	long := strings.Repeat("tenant-", 200)
	if longSealed, err := SealToken(public, long, "tok-v2-SECRET"); err != nil {
		t.Errorf("sealing for a 1400-byte tenant id: %v", err)
	} else if token, reason := resolveSealed(t, private, long, longSealed); token != "tok-v2-SECRET" {
		t.Errorf("v2 seal for a 1400-byte tenant id: got %q (%s)", token, reason)
	}
	if _, reason := resolveSealed(t, otherPrivate, "acme", sealed); reason != ReasonTokenUnresolvable {
		t.Errorf("v2 seal opened with another service key: reason %q", reason)
	}
	// Flip one bit at every position: encapsulated key, ciphertext, tag.
	raw, err := b64.DecodeString(strings.TrimPrefix(sealed, "sealed:v2."))
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		tampered := append([]byte(nil), raw...)
		tampered[i] ^= 0x01
		if token, reason := resolveSealed(t, private, "acme", "sealed:v2."+b64.EncodeToString(tampered)); reason != ReasonTokenUnresolvable {
			t.Errorf("byte %d of %d flipped: got %q, reason %q; want %s", i, len(raw), token, reason, ReasonTokenUnresolvable)
		}
	}
	for name, ref := range map[string]string{
		"truncated":                 sealed[:len(sealed)-4],
		"only the encapsulated key": "sealed:v2." + b64.EncodeToString(raw[:32]),
		"empty":                     "sealed:v2.",
		"not base64url":             "sealed:v2.!!!",
		"v2 body labelled v1":       "sealed:v1." + strings.TrimPrefix(sealed, "sealed:v2."),
		"unknown version":           "sealed:v3." + strings.TrimPrefix(sealed, "sealed:v2."),
	} {
		if token, reason := resolveSealed(t, private, "acme", ref); reason != ReasonTokenUnresolvable {
			t.Errorf("%s: got %q, reason %q; want %s", name, token, reason, ReasonTokenUnresolvable)
		}
	}
}

func TestLegacyV1SealsStillOpen(t *testing.T) {
	if token, reason := resolveSealed(t, legacySealPrivate, "acme", legacySealedV1); token != legacySealedToken {
		t.Fatalf("v1 seal made before v2: got %q (%s), want it to open", token, reason)
	}
	if _, reason := resolveSealed(t, legacySealPrivate, "globex", legacySealedV1); reason != ReasonTokenUnresolvable {
		t.Errorf("v1 seal for acme opened for globex: reason %q", reason)
	}
	body := strings.TrimPrefix(legacySealedV1, "sealed:v1.")
	raw, _ := b64.DecodeString(body)
	raw[len(raw)-1] ^= 0x01
	if _, reason := resolveSealed(t, legacySealPrivate, "acme", "sealed:v1."+b64.EncodeToString(raw)); reason != ReasonTokenUnresolvable {
		t.Errorf("tampered v1 seal: reason %q, want %s", reason, ReasonTokenUnresolvable)
	}
	if _, reason := resolveSealed(t, legacySealPrivate, "acme", "sealed:v2."+body); reason != ReasonTokenUnresolvable {
		t.Errorf("v1 body labelled v2: reason %q, want %s", reason, ReasonTokenUnresolvable)
	}
	// The key pair made for v1 seals is the key pair of v2 seals.
	sealed, err := SealToken(legacySealPublic, "acme", "tok-v2-SECRET")
	if err != nil {
		t.Fatal(err)
	}
	if token, reason := resolveSealed(t, legacySealPrivate, "acme", sealed); token != "tok-v2-SECRET" {
		t.Errorf("v2 seal to a key made before v2: got %q (%s)", token, reason)
	}
}

func TestRedactedSealsSayTheirVersionOnly(t *testing.T) {
	_, public, err := GenerateSealKey()
	if err != nil {
		t.Fatal(err)
	}
	v2, err := SealToken(public, "acme", "tok-v2-SECRET")
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{v2: "sealed:v2.[", legacySealedV1: "sealed:v1.[", "sealed:tok-SECRET-and-more.x": "sealed:["} {
		got := RedactTokenRef(ref)
		if !strings.HasPrefix(got, want) || strings.Contains(got, ref[12:20]) {
			t.Errorf("RedactTokenRef(%.16s...) = %q, want %s<length> bytes] and no data", ref, got, want)
		}
	}
}
