package tests

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
)

// A sender whose body does not arrive within HTTP_READ_TIMEOUT is answered
// 408 REQUEST_TIMEOUT, nothing is appended, and the handler is free again:
// its retry, sent whole, is accepted.
func TestWebhookBodyThatNeverArrivesTimesOut(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	e := newEnv(t, func(c *appConfig) { c.HTTPReadTimeout = timeout })
	id, secret := e.integration("a", nil)
	w := signedWebhook(id, secret, payload("evt_slow", domain.TaskCreated, `{"id":"k1"}`))

	conn, err := net.Dial("tcp", e.App.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/webhooks/softpro/%s HTTP/1.1\r\nHost: softprohub\r\nContent-Type: application/json\r\n"+
		"X-Softpro-Signature: %s\r\nContent-Length: %d\r\n\r\n", id, w.header.Get("X-Softpro-Signature"), len(w.body))
	if _, err := conn.Write(w.body[:len(w.body)/2]); err != nil { // and the rest never
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a body that never arrived: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if code, _ := errCode(raw); resp.StatusCode != http.StatusRequestTimeout || code != "REQUEST_TIMEOUT" {
		t.Fatalf("answer %d %s, want 408 REQUEST_TIMEOUT", resp.StatusCode, raw)
	}
	if took < timeout || took > timeout+5*time.Second {
		t.Fatalf("answered after %v, want just after the read timeout (%v)", took, timeout)
	}
	if n := countEvent(e, domain.TopicTasks, "evt_slow"); n != 0 {
		t.Fatalf("a body that never arrived was appended %d times", n)
	}
	if r := e.send(w); r.Status != http.StatusOK || r.Body["duplicate"] == true {
		t.Fatalf("the retry sent whole: %d %s, want 200 and appended", r.Status, r.Raw)
	}
	if n := countEvent(e, domain.TopicTasks, "evt_slow"); n != 1 {
		t.Fatalf("evt_slow on the log %d times, want 1", n)
	}
}
