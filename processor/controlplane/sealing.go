package controlplane

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealed tokens let an admin publish a Leadspace token that only the
// service can read: it is encrypted to the service's X25519 public key.
// The tenant id is bound into the seal, so a sealed token copied into
// another tenant's connection event does not open. Both versions use the
// same keys, a raw X25519 key pair in base64url.
//
// v2 (written now) is HPKE (RFC 9180, crypto/hpke), base mode,
// DHKEM(X25519, HKDF-SHA256) + HKDF-SHA256 + AES-256-GCM, with the tenant
// id in the HPKE info: "sealed:v2.<base64url(encapsulated key | ciphertext)>".
//
// v1 (legacy: opened, no longer written) is a hand-built ECIES (ephemeral
// key agreement, HKDF-SHA256, AES-256-GCM) with the tenant id as associated
// data: "sealed:v1.<base64url(ephemeral public key | nonce | ciphertext)>".

// sealInfo is the HKDF info of legacy v1 seals.
const sealInfo = "leadspace-enricher token v1"

// sealInfoV2 starts the HPKE info of a v2 seal; the tenant id follows.
const sealInfoV2 = "leadspace-enricher token v2\x00"

// The v2 suite. AES-256-GCM is what v1 used and has hardware support
// where the service runs.
var (
	sealKEM      = hpke.DHKEM(ecdh.X25519())
	sealKDF      = hpke.HKDFSHA256()
	sealCipherV2 = hpke.AES256GCM()
)

var b64 = base64.RawURLEncoding

// GenerateSealKey makes a key pair: the private key for the service
// (--token-seal-key), the public key for admins (connect --seal-to).
func GenerateSealKey() (private, public string, err error) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return b64.EncodeToString(k.Bytes()), b64.EncodeToString(k.PublicKey().Bytes()), nil
}

// SealToken encrypts token for the holder of publicKey, bound to tenant:
// a v2 seal.
func SealToken(publicKey, tenant, token string) (string, error) {
	raw, err := b64.DecodeString(strings.TrimSpace(publicKey))
	if err != nil {
		return "", errors.New("seal public key is not base64url")
	}
	recipient, err := sealKEM.NewPublicKey(raw)
	if err != nil {
		return "", fmt.Errorf("seal public key: %w", err)
	}
	out, err := hpke.Seal(recipient, sealKDF, sealCipherV2, []byte(sealInfoV2+tenant), []byte(token))
	if err != nil {
		return "", err
	}
	return "sealed:v2." + b64.EncodeToString(out), nil
}

// ParseSealKey reads the service's private key.
func ParseSealKey(private string) (*ecdh.PrivateKey, error) {
	raw, err := b64.DecodeString(strings.TrimSpace(private))
	if err != nil {
		return nil, errors.New("token seal key is not base64url")
	}
	return ecdh.X25519().NewPrivateKey(raw)
}

// errNotOpen is why a well-formed seal does not open: another key, another
// tenant or tampered data (the AEAD cannot tell which).
var errNotOpen = errors.New("sealed token does not open with this service's key for this tenant")

// openSealed decrypts the data of a sealed: reference for tenant.
func openSealed(key *ecdh.PrivateKey, tenant, data string) (string, error) {
	version, body, ok := strings.Cut(data, ".")
	if ok && version == "v2" {
		return openSealedV2(key, tenant, body)
	}
	// Legacy v1 from here on.
	if !ok || version != "v1" {
		return "", errors.New("sealed token: unknown format")
	}
	raw, err := b64.DecodeString(body)
	if err != nil || len(raw) < 32+12+16 {
		return "", errors.New("sealed token: malformed")
	}
	eph, err := ecdh.X25519().NewPublicKey(raw[:32])
	if err != nil {
		return "", errors.New("sealed token: malformed")
	}
	aead, err := sealAEAD(key, eph, eph)
	if err != nil {
		return "", err
	}
	nonce, sealed := raw[32:32+aead.NonceSize()], raw[32+aead.NonceSize():]
	token, err := aead.Open(nil, nonce, sealed, []byte(tenant))
	if err != nil {
		return "", errNotOpen
	}
	return string(token), nil
}

// openSealedV2 opens an HPKE seal.
func openSealedV2(key *ecdh.PrivateKey, tenant, body string) (string, error) {
	raw, err := b64.DecodeString(body)
	if err != nil {
		return "", errors.New("sealed token: malformed")
	}
	priv, err := hpke.NewDHKEMPrivateKey(key)
	if err != nil {
		return "", err
	}
	token, err := hpke.Open(priv, sealKDF, sealCipherV2, []byte(sealInfoV2+tenant), raw)
	if err != nil {
		return "", errNotOpen
	}
	return string(token), nil
}

// sealAEAD derives a legacy v1 seal's AES-GCM key from the X25519 shared
// secret. Only openSealed uses it: nothing writes v1 any more.
func sealAEAD(priv *ecdh.PrivateKey, peer *ecdh.PublicKey, ephemeral *ecdh.PublicKey) (cipher.AEAD, error) {
	secret, err := priv.ECDH(peer)
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, secret, ephemeral.Bytes(), sealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
