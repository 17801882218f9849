package softpro

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":      time.Second,
		"7200":  2 * time.Hour,
		"0.5":   500 * time.Millisecond,
		"1e30":  maxRetryAfter, // would overflow a Duration
		"+Inf":  maxRetryAfter,
		"NaN":   time.Second,
		"-3":    time.Second,
		"later": time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}
