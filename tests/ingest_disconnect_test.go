package tests

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/roisystems/softprohub/domain"
)

// A sender that hangs up while its webhook waits for the broker must not
// fail the webhooks of other senders queued behind it on the same
// partition, and its own event, once accepted for appending, still lands.
func TestSenderHangingUpFailsNoOtherWebhook(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	if r := e.send(signedWebhook(id, secret, payload("evt_warm", domain.TaskCreated, `{"id":"k0"}`))); r.Status != 200 {
		t.Fatalf("warm-up: %d %s", r.Status, r.Raw)
	}

	// The next produce request waits 1.5 s at the broker: the first
	// webhook is in flight, the second is buffered behind it.
	var produces atomic.Int32
	e.Broker.Cluster().ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		e.Broker.Cluster().KeepControl()
		if produces.Add(1) == 1 {
			time.Sleep(1500 * time.Millisecond)
		}
		return nil, nil, false
	})

	hangUp := signedWebhook(id, secret, payload("evt_hangup", domain.TaskCreated, `{"id":"k1"}`))
	ctx, cancel := context.WithCancel(context.Background())
	hungUp := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/api/webhooks/softpro/"+id, bytes.NewReader(hangUp.body))
		req.Header = hangUp.header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		hungUp <- err
	}()
	for produces.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	other := make(chan response, 1)
	go func() {
		other <- e.send(signedWebhook(id, secret, payload("evt_other", domain.TaskCreated, `{"id":"k2"}`)))
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-hungUp; err == nil {
		t.Fatal("the hung-up request was answered before the broker acknowledged it")
	}

	if r := <-other; r.Status != 200 {
		t.Fatalf("webhook queued behind the one whose sender hung up: %d %s, want 200", r.Status, r.Raw)
	}
	// The hung-up sender's retry finds its event appended.
	if r := e.sendUntilOK(hangUp, 10*time.Second); r.Status != 200 || r.Body["duplicate"] != true {
		t.Fatalf("retry of the hung-up webhook: %d %s, want 200 duplicate", r.Status, r.Raw)
	}
	for _, evt := range []string{"evt_hangup", "evt_other"} {
		if n := countEvent(e, domain.TopicTasks, evt); n != 1 {
			t.Errorf("%s on the log %d times, want 1", evt, n)
		}
	}
}
