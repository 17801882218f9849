package app

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/handlers/events"
)

// readmeDefaults reads the configuration table of the README: each
// variable's documented default, "" for those documented as none (—).
func readmeDefaults(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first := regexp.MustCompile("^`([^`]*)`")
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "| variable | default | meaning |" {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if len(out) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		names := strings.Split(cells[1], " / ")
		defaults := strings.Split(cells[2], " / ")
		for i, n := range names {
			n = strings.Trim(strings.TrimSpace(n), "`")
			d := ""
			if i < len(defaults) {
				if m := first.FindStringSubmatch(strings.TrimSpace(defaults[i])); m != nil {
					d = m[1]
				}
			}
			out[n] = d
		}
	}
	if len(out) < 20 {
		t.Fatalf("found %d variables in the README's configuration table; has its layout changed?", len(out))
	}
	return out
}

// DefaultConfig, the configuration of an empty environment, has the
// defaults the README's configuration table documents, and every variable
// softprohub reads is in the table.
func TestDefaultConfigMatchesTheREADME(t *testing.T) {
	t.Parallel()
	doc := readmeDefaults(t)
	cfg := reflect.ValueOf(DefaultConfig())
	typ := cfg.Type()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("env"), ",")
		if name == "" {
			continue
		}
		want, ok := doc[name]
		if !ok {
			t.Errorf("%s is read but not in the README's configuration table", name)
			continue
		}
		v := cfg.Field(i)
		switch got := v.Interface().(type) {
		case time.Duration:
			d, err := time.ParseDuration(want)
			if err != nil || got != d {
				t.Errorf("%s defaults to %v, the README says %q", name, got, want)
			}
		case int, int64:
			if want == "" {
				want = "0"
			}
			if s := strconv.FormatInt(v.Int(), 10); s != want {
				t.Errorf("%s defaults to %s, the README says %q", name, s, want)
			}
		case string:
			if got != want {
				t.Errorf("%s defaults to %q, the README says %q", name, got, want)
			}
		case []string:
			if strings.Join(got, ",") != want {
				t.Errorf("%s defaults to %q, the README says %q", name, got, want)
			}
		default:
			t.Errorf("%s: no comparison for %T", name, got)
		}
	}
	// The values the README's prose leans on, spelled out.
	c := DefaultConfig()
	if c.QueueRetryDelayMs != 2000 || c.QueueMaxRetries != 5 || c.QueueConcurrency != 5 ||
		c.WebhookSignatureTTL != 300 || c.WebhookDedupTTL != 86400 || c.WebhookSecretGrace != 24*time.Hour ||
		c.IngestRateLimit != 6000 || c.KafkaPartitions != 24 || c.KafkaAppendTimeout != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
}

// At the defaults the live projections retry as documented: five attempts
// in all, 2 s first delay (doubling: 2, 4, 8, 16 s), five transactions in
// flight, under the 90 s rebalance timeout.
func TestDefaultProjectionConfig(t *testing.T) {
	t.Parallel()
	ec := projectionConfig(DefaultConfig())
	if ec.RetryDelay != 2*time.Second || ec.MaxRetries != 5 || ec.Concurrency != 5 || ec.RebalanceTimeout != 90*time.Second {
		t.Fatalf("projection config at the defaults: retry delay %v, max retries %d, concurrency %d, rebalance timeout %v; want 2s, 5, 5, 90s",
			ec.RetryDelay, ec.MaxRetries, ec.Concurrency, ec.RebalanceTimeout)
	}
}

// QUEUE_RETRY_DELAY=0 is accepted and means retries without a wait, not
// the 2 s default.
func TestZeroRetryDelayRetriesAtOnce(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.JWTSecret, cfg.SecretsKey = "jwt-secret-for-test", "secrets-key-for-test"
	cfg.QueueRetryDelayMs = 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("QUEUE_RETRY_DELAY=0 refused: %v", err)
	}
	if ec := projectionConfig(cfg); ec.RetryDelay != events.NoRetryDelay {
		t.Fatalf("QUEUE_RETRY_DELAY=0 gives the router a retry delay of %v, want events.NoRetryDelay", ec.RetryDelay)
	}
}
