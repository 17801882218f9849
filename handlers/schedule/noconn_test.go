package schedule

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// refusingStarter refuses every run as an integration without a SoftPro
// connection is refused.
type refusingStarter struct{ fakeStarter }

func (f *refusingStarter) Start(ctx context.Context, req ingest.SyncRequest) (*ingest.StartedSync, error) {
	_, _ = f.fakeStarter.Start(ctx, req)
	return nil, ingest.ErrNoConnection
}

// lockedBuffer is a bytes.Buffer safe for the logger's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A slot of an integration without a SoftPro connection (sync is on by
// default for new integrations) is skipped with a note, not logged as an
// error every time it comes round.
func TestSlotWithoutAConnectionIsSkippedNotAnError(t *testing.T) {
	in := domain.Integration{ID: "int_a", Active: true, SyncEnabled: true, SyncTypes: []string{"transactions"}, SyncFrequency: 15}
	starter := &refusingStarter{}
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := New(Config{Stagger: time.Millisecond}, starter, fakeIntegrations{in}, loadOnce{}, log)
	run(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for len(starter.requests()) == 0 || !strings.Contains(logs.String(), "no SoftPro connection") {
		if time.Now().After(deadline) {
			t.Fatalf("no refused catch-up logged: %d requests, logs:\n%s", len(starter.requests()), logs.String())
		}
		time.Sleep(time.Millisecond)
	}
	if got := logs.String(); strings.Contains(got, `"level":"ERROR"`) || !strings.Contains(got, `"level":"INFO","msg":"sync skipped: no SoftPro connection"`) {
		t.Fatalf("logs of a slot without a connection:\n%s\nwant an INFO skip and no ERROR", got)
	}
}
