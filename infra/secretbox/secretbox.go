// Package secretbox seals small secrets (webhook signing secrets) for storage
// at rest with AES-256-GCM.
//
// A sealed value is nonce || ciphertext || tag, where the 12-byte nonce is
// drawn from crypto/rand for every Seal. With random nonces one key may seal
// about 2^32 values before the collision risk matters, far more than an
// integration table will ever hold.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a key in bytes (AES-256).
const KeySize = 32

// ErrOpen is returned by Open when a sealed value was tampered with, was
// sealed under another key, or is not a sealed value at all.
var ErrOpen = errors.New("secretbox: message authentication failed")

// Box seals and opens values under one key. It is safe for concurrent use.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secretbox: new cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secretbox: new gcm: %w", err)
	}
	return &Box{aead: aead}, nil
}

// NewFromString returns a Box for a key given as text, typically the
// SECRETS_KEY setting. Surrounding white space is ignored. The text is read
// as, in this order:
//
//   - exactly 64 hexadecimal characters: the 32 key bytes in hex;
//   - standard or URL-safe base64, padded or not, that decodes to exactly 32
//     bytes: the key bytes;
//   - anything else: the key is the SHA-256 digest of the text.
//
// The last form lets an operator use a passphrase, but SHA-256 is not a
// password hash: a passphrase must itself carry about 128 bits of entropy
// (for example 32 random characters) for the derived key to be as strong as
// a random one. An empty string is an error rather than a weak key.
func NewFromString(s string) (*Box, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("secretbox: key string is empty")
	}
	if len(s) == 2*KeySize {
		if key, err := hex.DecodeString(s); err == nil {
			return New(key)
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil && len(key) == KeySize {
			return New(key)
		}
	}
	sum := sha256.Sum256([]byte(s))
	return New(sum[:])
}

// Seal encrypts and authenticates plain and returns nonce || ciphertext.
// Sealing the same value twice gives different results.
func (b *Box) Seal(plain []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	out := make([]byte, ns, ns+len(plain)+b.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("secretbox: seal: read nonce: %w", err)
	}
	return b.aead.Seal(out, out[:ns], plain, nil), nil
}

// Open authenticates and decrypts a value returned by Seal. It returns an
// error wrapping ErrOpen when the value was altered or sealed under another
// key.
func (b *Box) Open(sealed []byte) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < ns+b.aead.Overhead() {
		return nil, fmt.Errorf("secretbox: open: %d bytes is too short: %w", len(sealed), ErrOpen)
	}
	plain, err := b.aead.Open(nil, sealed[:ns], sealed[ns:], nil)
	if err != nil {
		return nil, fmt.Errorf("secretbox: open: %w", ErrOpen)
	}
	return plain, nil
}
