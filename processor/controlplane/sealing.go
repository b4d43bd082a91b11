package controlplane

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealed tokens let an admin publish a Leadspace token that only the
// service can read: it is encrypted to the service's X25519 public key
// (ECIES: ephemeral key agreement, HKDF-SHA256, AES-256-GCM). The tenant id
// is bound as associated data, so a sealed token copied into another
// tenant's connection event does not open. The reference looks like
// "sealed:v1.<base64url(ephemeral public key | nonce | ciphertext)>".

const sealInfo = "leadspace-enricher token v1"

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

// SealToken encrypts token for the holder of publicKey, bound to tenant.
func SealToken(publicKey, tenant, token string) (string, error) {
	raw, err := b64.DecodeString(strings.TrimSpace(publicKey))
	if err != nil {
		return "", errors.New("seal public key is not base64url")
	}
	recipient, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return "", fmt.Errorf("seal public key: %w", err)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	aead, err := sealAEAD(eph, recipient, eph.PublicKey())
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := append(eph.PublicKey().Bytes(), nonce...)
	out = aead.Seal(out, nonce, []byte(token), []byte(tenant))
	return "sealed:v1." + b64.EncodeToString(out), nil
}

// ParseSealKey reads the service's private key.
func ParseSealKey(private string) (*ecdh.PrivateKey, error) {
	raw, err := b64.DecodeString(strings.TrimSpace(private))
	if err != nil {
		return nil, errors.New("token seal key is not base64url")
	}
	return ecdh.X25519().NewPrivateKey(raw)
}

// openSealed decrypts the data of a sealed: reference for tenant.
func openSealed(key *ecdh.PrivateKey, tenant, data string) (string, error) {
	version, body, ok := strings.Cut(data, ".")
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
		return "", errors.New("sealed token does not open with this service's key for this tenant")
	}
	return string(token), nil
}

// sealAEAD derives the AES-GCM key from the X25519 shared secret.
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
