package secretbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func testKey(fill byte) []byte {
	return bytes.Repeat([]byte{fill}, KeySize)
}

func mustNew(t *testing.T, key []byte) *Box {
	t.Helper()
	b, err := New(key)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	t.Parallel()
	b := mustNew(t, testKey(7))
	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{name: "empty", plain: []byte{}},
		{name: "short", plain: []byte("whsec_abc")},
		{name: "binary", plain: []byte{0, 1, 2, 255, 254}},
		{name: "long", plain: bytes.Repeat([]byte("x"), 4096)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sealed, err := b.Seal(tc.plain)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if len(tc.plain) > 0 && bytes.Contains(sealed, tc.plain) {
				t.Fatalf("sealed value contains the plain text")
			}
			got, err := b.Open(sealed)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plain) {
				t.Fatalf("Open = %q, want %q", got, tc.plain)
			}
		})
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	t.Parallel()
	b := mustNew(t, testKey(1))
	a1, err := b.Seal([]byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.Seal([]byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a1, a2) {
		t.Fatal("two seals of the same value are identical")
	}
}

func TestOpenDetectsTampering(t *testing.T) {
	t.Parallel()
	b := mustNew(t, testKey(2))
	sealed, err := b.Seal([]byte("top secret"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mangle func([]byte) []byte
	}{
		{name: "nonce bit", mangle: func(s []byte) []byte { s[0] ^= 1; return s }},
		{name: "ciphertext bit", mangle: func(s []byte) []byte { s[len(s)/2] ^= 0x80; return s }},
		{name: "tag bit", mangle: func(s []byte) []byte { s[len(s)-1] ^= 1; return s }},
		{name: "truncated", mangle: func(s []byte) []byte { return s[:len(s)-1] }},
		{name: "too short", mangle: func(s []byte) []byte { return s[:5] }},
		{name: "empty", mangle: func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bad := tc.mangle(bytes.Clone(sealed))
			if _, err := b.Open(bad); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open(tampered) error = %v, want ErrOpen", err)
			}
		})
	}
}

func TestOpenWithWrongKeyFails(t *testing.T) {
	t.Parallel()
	sealed, err := mustNew(t, testKey(3)).Seal([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mustNew(t, testKey(4)).Open(sealed); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with wrong key error = %v, want ErrOpen", err)
	}
}

func TestNewRejectsBadKeyLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d bytes) succeeded, want error", n)
		}
	}
}

func TestNewFromString(t *testing.T) {
	t.Parallel()
	raw := make([]byte, KeySize)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	passphrase := "correct horse battery staple"
	derived := sha256.Sum256([]byte(passphrase))
	for _, tc := range []struct {
		name string
		in   string
		want []byte
	}{
		{name: "hex", in: hex.EncodeToString(raw), want: raw},
		{name: "hex upper with spaces", in: "  " + strings.ToUpper(hex.EncodeToString(raw)) + "\n", want: raw},
		{name: "base64 std", in: base64.StdEncoding.EncodeToString(raw), want: raw},
		{name: "base64 raw url", in: base64.RawURLEncoding.EncodeToString(raw), want: raw},
		{name: "passphrase", in: passphrase, want: derived[:]},
		{name: "base64 of wrong length is a passphrase", in: base64.StdEncoding.EncodeToString(raw[:16]), want: func() []byte {
			s := sha256.Sum256([]byte(base64.StdEncoding.EncodeToString(raw[:16])))
			return s[:]
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := NewFromString(tc.in)
			if err != nil {
				t.Fatalf("NewFromString: %v", err)
			}
			sealed, err := b.Seal([]byte("probe"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := mustNew(t, tc.want).Open(sealed); err != nil {
				t.Fatalf("key differs from the expected one: %v", err)
			}
		})
	}
	if _, err := NewFromString("   "); err == nil {
		t.Error("NewFromString(blank) succeeded, want error")
	}
}
