package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// Headers is the read side of a request's headers; http.Header satisfies it.
type Headers interface {
	Get(key string) string
}

// Verification failures. Each is answered 401 with its code.
var (
	ErrSignatureMissing     = errors.New("signature missing")
	ErrSignatureInvalid     = errors.New("signature invalid")
	ErrTimestampOutOfWindow = errors.New("timestamp out of window")
)

// Verified is what a valid signature proved.
type Verified struct {
	// KeyID names the secret that verified the signature.
	KeyID string
	// WebhookID is the sender's message id (standard-webhooks only); it is
	// the event id used for dedup.
	WebhookID string
	// Timestamp is the signed timestamp (standard-webhooks only); for the
	// softpro scheme it comes from the payload.
	Timestamp time.Time
}

// Verify checks the signature of body under scheme against every secret in
// secrets, in constant time per secret. It fails closed: no secrets, an
// unknown scheme or a malformed header all reject.
func Verify(scheme domain.SignatureScheme, h Headers, body []byte, secrets []domain.Secret) (Verified, error) {
	switch scheme {
	case domain.SchemeSoftPro, "":
		return verifySoftPro(h, body, secrets)
	case domain.SchemeStandardWebhooks:
		return verifyStandard(h, body, secrets)
	default:
		return Verified{}, ErrSignatureInvalid
	}
}

func verifySoftPro(h Headers, body []byte, secrets []domain.Secret) (Verified, error) {
	sig := h.Get("X-Softpro-Signature")
	if sig == "" {
		sig = h.Get("X-Signature")
	}
	if sig == "" {
		return Verified{}, ErrSignatureMissing
	}
	sig = strings.TrimPrefix(strings.TrimSpace(sig), "sha256=")
	var want [sha256.Size]byte
	if len(sig) != hex.EncodedLen(sha256.Size) {
		return Verified{}, ErrSignatureInvalid
	}
	if _, err := hex.Decode(want[:], []byte(sig)); err != nil {
		return Verified{}, ErrSignatureInvalid
	}
	for _, s := range secrets {
		mac := hmac.New(sha256.New, s.Value)
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), want[:]) {
			return Verified{KeyID: s.KeyID}, nil
		}
	}
	return Verified{}, ErrSignatureInvalid
}

// SignSoftPro returns the x-softpro-signature value for body under secret.
func SignSoftPro(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func verifyStandard(h Headers, body []byte, secrets []domain.Secret) (Verified, error) {
	id, ts, sigs := h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature")
	if id == "" || ts == "" || sigs == "" {
		return Verified{}, ErrSignatureMissing
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Verified{}, ErrSignatureInvalid
	}
	var given [][]byte
	for _, part := range strings.Fields(sigs) {
		version, value, ok := strings.Cut(part, ",")
		if !ok || version != "v1" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(value)
		if err != nil || len(b) != sha256.Size {
			continue
		}
		given = append(given, b)
	}
	if len(given) == 0 {
		return Verified{}, ErrSignatureInvalid
	}
	for _, s := range secrets {
		key, err := StandardKey(s.Value)
		if err != nil {
			continue
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(ts))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sum := mac.Sum(nil)
		for _, g := range given {
			if hmac.Equal(sum, g) {
				return Verified{KeyID: s.KeyID, WebhookID: id, Timestamp: time.Unix(sec, 0).UTC()}, nil
			}
		}
	}
	return Verified{}, ErrSignatureInvalid
}

// StandardKey decodes a Standard Webhooks secret ("whsec_" + base64) into
// the HMAC key.
func StandardKey(secret []byte) ([]byte, error) {
	s := strings.TrimPrefix(string(secret), "whsec_")
	return base64.StdEncoding.DecodeString(s)
}

// SignStandard returns the webhook-signature value for a Standard Webhooks
// message.
func SignStandard(secret []byte, id string, ts time.Time, body []byte) (string, error) {
	key, err := StandardKey(secret)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// InWindow reports whether ts is within ttl of now, in the past or future.
func InWindow(ts, now time.Time, ttl time.Duration) bool {
	d := now.Sub(ts)
	return d <= ttl && d >= -ttl
}

// SecretProblem says what is wrong with secret as a webhook secret of
// scheme, or returns "" when it can be used.
func SecretProblem(scheme domain.SignatureScheme, secret string) string {
	switch {
	case len(secret) < 8:
		return "webhookSecret must be at least 8 characters"
	case len(secret) > 512:
		return "webhookSecret must be at most 512 characters"
	case scheme == domain.SchemeStandardWebhooks:
		key, err := StandardKey([]byte(secret))
		if err != nil {
			return "webhookSecret for standard-webhooks must be \"whsec_\" followed by base64"
		}
		if len(key) < MinStandardKeyBytes {
			return fmt.Sprintf("webhookSecret for standard-webhooks must decode to at least %d bytes of key", MinStandardKeyBytes)
		}
	}
	return ""
}

// MinStandardKeyBytes is the shortest standard-webhooks key accepted: the
// length check of the secret counts its "whsec_" prefix and base64, not
// the key the HMAC uses ("whsec_\r\n\r\n" decodes to none).
const MinStandardKeyBytes = 16
