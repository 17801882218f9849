package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/ingest"
)

// partitionFor is where Kafka's default (murmur2) partitioner puts key.
func partitionFor(topic, key string, partitions int) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	return int32(p.Partition(&kgo.Record{Key: []byte(key)}, partitions))
}

func TestSignedWebhookLandsInItsTopicWithBytesIntact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("a", nil)
	for _, typ := range append(append([]domain.EventType{}, domain.WebhookTypes...), "escrow.funded") {
		t.Run(string(typ), func(t *testing.T) {
			eventID := "evt_" + randomID(6)
			// Odd spacing and key order: the log must keep SoftPro's bytes.
			body := []byte(fmt.Sprintf("{ \"type\" : %q,\n  \"id\":%q, \"timestamp\":%q,\n  \"data\": {\"id\": \"x_1\",  \"note\":\"caf\\u00e9\"} }\n",
				typ, eventID, time.Now().UTC().Format(time.RFC3339)))
			r := e.send(signedWebhook(id, secret, body))
			if r.Status != http.StatusOK || r.Body["success"] != true || r.Body["message"] != "Webhook received" ||
				r.Body["integrationId"] != id || r.Body["eventType"] != string(typ) || r.Body["eventId"] != eventID {
				t.Fatalf("response %d %s", r.Status, r.Raw)
			}
			var found bool
			for _, rec := range e.records(typ.Topic()) {
				if rec.Envelope.EventID != eventID {
					continue
				}
				found = true
				env := rec.Envelope
				if rec.Key != id || rec.Partition != partitionFor(typ.Topic(), id, e.Cfg.KafkaPartitions) {
					t.Fatalf("key %q partition %d", rec.Key, rec.Partition)
				}
				if !bytes.Equal(env.Payload, body) {
					t.Fatalf("payload changed:\n got %s\nwant %s", env.Payload, body)
				}
				if env.Schema != domain.SchemaV1 || env.IntegrationID != id || env.Type != typ || env.Source != domain.SourceWebhook ||
					env.Priority != typ.Priority() || env.SignatureScheme != domain.SchemeSoftPro || env.KeyID == "" || env.CorrelationID == "" {
					t.Fatalf("envelope %+v", env)
				}
			}
			if !found {
				t.Fatalf("event %s not on %s", eventID, typ.Topic())
			}
		})
	}
}

func TestEveryRejectionAppendsNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.WebhookMaxBody = 2048 })
	id, secret := e.integration("a", map[string]any{"ingestRateLimit": 1})
	inactive, isecret := e.integration("inactive", map[string]any{"active": false})
	off, osecret := e.integration("off", map[string]any{"webhookEnabled": false})

	// Use the one token of id's bucket, so the rate-limit case below is real.
	// (A projectable event: an unprojectable one would be appended to the
	// poison topic in the background, racing the count below.)
	if r := e.send(signedWebhook(id, secret, payload("evt_first", domain.TaskCreated, `{"id":"tsk_first"}`))); r.Status != 200 {
		t.Fatalf("first webhook: %d %s", r.Status, r.Raw)
	}
	before := e.appendedTotal()

	good := payload("evt_"+randomID(4), domain.TransactionUpdated, `{"id":"t1"}`)
	big := payload("evt_big", domain.DocumentUploaded, `"`+strings.Repeat("x", 4096)+`"`)
	old := []byte(fmt.Sprintf(`{"id":"evt_old","type":"task.created","timestamp":%q,"data":{}}`, time.Now().Add(-6*time.Minute).UTC().Format(time.RFC3339)))
	future := []byte(fmt.Sprintf(`{"id":"evt_future","type":"task.created","timestamp":%q,"data":{}}`, time.Now().Add(6*time.Minute).UTC().Format(time.RFC3339)))
	noType := []byte(fmt.Sprintf(`{"id":"evt_nt","timestamp":%q}`, time.Now().UTC().Format(time.RFC3339)))

	wrongCT := signedWebhook(id, secret, good)
	wrongCT.header.Set("Content-Type", "text/plain")
	missing := signedWebhook(id, secret, good)
	missing.header.Del("X-Softpro-Signature")
	tests := []struct {
		name   string
		w      webhook
		status int
		code   string
	}{
		{name: "unknown integration", w: signedWebhook(e.id("nope"), secret, good), status: 404, code: "INTEGRATION_NOT_FOUND"},
		{name: "inactive integration", w: signedWebhook(inactive, isecret, good), status: 403, code: "INTEGRATION_DISABLED"},
		{name: "webhooks disabled", w: signedWebhook(off, osecret, good), status: 403, code: "INTEGRATION_DISABLED"},
		{name: "body too large", w: signedWebhook(id, secret, big), status: 413, code: "PAYLOAD_TOO_LARGE"},
		{name: "not json", w: wrongCT, status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "signature missing", w: missing, status: 401, code: "SIGNATURE_MISSING"},
		{name: "signature invalid", w: signedWebhook(id, "not-the-secret", good), status: 401, code: "SIGNATURE_INVALID"},
		{name: "timestamp too old", w: signedWebhook(id, secret, old), status: 401, code: "TIMESTAMP_OUT_OF_WINDOW"},
		{name: "timestamp in the future", w: signedWebhook(id, secret, future), status: 401, code: "TIMESTAMP_OUT_OF_WINDOW"},
		{name: "not an object", w: signedWebhook(id, secret, []byte(`["a"]`)), status: 400, code: "INVALID_PAYLOAD"},
		{name: "no type", w: signedWebhook(id, secret, noType), status: 400, code: "INVALID_PAYLOAD"},
		{name: "rate limited", w: signedWebhook(id, secret, good), status: 429, code: "RATE_LIMITED"},
	}
	for _, tt := range tests {
		r := e.send(tt.w)
		if r.Status != tt.status || r.code() != tt.code || r.Body["success"] != false {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.Status, r.Raw, tt.status, tt.code)
		}
		if tt.status == 429 {
			if s, err := strconv.Atoi(r.RetryAfter); err != nil || s < 1 {
				t.Errorf("%s: Retry-After %q", tt.name, r.RetryAfter)
			}
		}
	}
	if after := e.appendedTotal(); after != before {
		t.Fatalf("rejections appended %d records", after-before)
	}
}

func TestDuplicatesAppendOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, secret := e.integration("a", nil)
	w := signedWebhook(id, secret, payload("evt_dup", domain.ContactUpdated, `{"id":"c1"}`))
	if r := e.send(w); r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("first: %d %s", r.Status, r.Raw)
	}
	if r := e.send(w); r.Status != 200 || r.Body["duplicate"] != true {
		t.Fatalf("second: %d %s", r.Status, r.Raw)
	}

	storm := signedWebhook(id, secret, payload("evt_storm", domain.TransactionStatusChanged, `{"id":"t1","status":"closed"}`))
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh, dups := 0, 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.send(storm)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == 200 && r.Body["duplicate"] == true:
				dups++
			case r.Status == 200:
				fresh++
			default:
				t.Errorf("storm copy: %d %s", r.Status, r.Raw)
			}
		}()
	}
	wg.Wait()
	if fresh != 1 || dups != 49 {
		t.Fatalf("fresh=%d duplicates=%d, want 1 and 49", fresh, dups)
	}
	if n := len(e.records(domain.TopicContacts)); n != 1 {
		t.Fatalf("contacts topic holds %d records, want 1", n)
	}
	if n := len(e.records(domain.TopicTransactions)); n != 1 {
		t.Fatalf("transactions topic holds %d records, want 1", n)
	}
}

func TestBrokerDownAnswers503AndRetryAppendsOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	if r := e.send(signedWebhook(id, secret, payload("evt_before", domain.TaskCreated, `{}`))); r.Status != 200 {
		t.Fatalf("before outage: %d %s", r.Status, r.Raw)
	}
	port := brokerPort(t, e)
	e.Broker.Close()

	w := signedWebhook(id, secret, payload("evt_during", domain.TaskCompleted, `{"id":"k1"}`))
	r := e.send(w)
	if r.Status != http.StatusServiceUnavailable || r.code() != "APPEND_FAILED" || r.RetryAfter == "" {
		t.Fatalf("during outage: %d %s Retry-After=%q", r.Status, r.Raw, r.RetryAfter)
	}

	e.Broker = startBroker(t, e.Cfg.DataDir, port)
	r = e.sendUntilOK(w, 30*time.Second)
	if r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("retry after recovery: %d %s", r.Status, r.Raw)
	}
	if r := e.send(w); r.Status != 200 || r.Body["duplicate"] != true {
		t.Fatalf("second retry: %d %s", r.Status, r.Raw)
	}
	var during int
	recs := e.records(domain.TopicTasks)
	for _, rec := range recs {
		if rec.Envelope.EventID == "evt_during" {
			during++
		}
	}
	if during != 1 || len(recs) != 2 {
		t.Fatalf("evt_during appended %d times, %d task records in all; want 1 and 2", during, len(recs))
	}
}

func TestRedisDownStillAppends(t *testing.T) {
	t.Parallel()
	rs := startRedis(t)
	e := newEnv(t, func(c *appConfig) { c.RedisURL = rs.url })
	id, secret := e.integration("a", nil)
	w := signedWebhook(id, secret, payload("evt_r1", domain.DocumentUploaded, `{"id":"d1"}`))
	if r := e.send(w); r.Status != 200 {
		t.Fatalf("with redis: %d %s", r.Status, r.Raw)
	}
	if r := e.send(w); r.Body["duplicate"] != true {
		t.Fatalf("dedup with redis up: %s", r.Raw)
	}
	rs.stop()
	w2 := signedWebhook(id, secret, payload("evt_r2", domain.DocumentUpdated, `{"id":"d1"}`))
	if r := e.send(w2); r.Status != 200 || r.Body["duplicate"] != nil {
		t.Fatalf("with redis down: %d %s", r.Status, r.Raw)
	}
	if n := len(e.records(domain.TopicDocuments)); n != 2 {
		t.Fatalf("documents topic holds %d records, want 2", n)
	}
	status, metrics := e.do(http.MethodGet, "/metrics", "", nil)
	if status != 200 || !strings.Contains(string(metrics), "softprohub_ingest_redis_degraded_total 1") {
		t.Fatalf("degradation metric missing: %d\n%s", status, grep(string(metrics), "softprohub_ingest_redis"))
	}
	status, health := e.do(http.MethodGet, "/api/webhooks/health", "", nil)
	if status != 200 || !strings.Contains(string(health), `"status":"degraded"`) {
		t.Fatalf("health with redis down: %d %s", status, health)
	}
}

func TestRotatedSecretValidDuringGraceOnly(t *testing.T) {
	t.Parallel()
	grace := 3 * time.Second
	e := newEnv(t, func(c *appConfig) { c.WebhookSecretGrace = grace })
	id, oldSecret := e.integration("a", nil)
	newSecret := "rotated-" + randomID(8)
	status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "webhookSecret": newSecret})
	rotatedAt := time.Now()
	if status != 200 || strings.Contains(string(body), newSecret) || strings.Contains(string(body), oldSecret) {
		t.Fatalf("rotate: %d %s", status, body)
	}
	if r := e.send(signedWebhook(id, oldSecret, payload("evt_old1", domain.TaskCreated, `{}`))); r.Status != 200 {
		t.Fatalf("old secret during grace: %d %s", r.Status, r.Raw)
	}
	if r := e.send(signedWebhook(id, newSecret, payload("evt_new1", domain.TaskCreated, `{}`))); r.Status != 200 {
		t.Fatalf("new secret: %d %s", r.Status, r.Raw)
	}
	time.Sleep(time.Until(rotatedAt.Add(grace + 500*time.Millisecond)))
	if r := e.send(signedWebhook(id, oldSecret, payload("evt_old2", domain.TaskCreated, `{}`))); r.Status != 401 || r.code() != "SIGNATURE_INVALID" {
		t.Fatalf("old secret after grace: %d %s", r.Status, r.Raw)
	}
	if r := e.send(signedWebhook(id, newSecret, payload("evt_new2", domain.TaskCreated, `{}`))); r.Status != 200 {
		t.Fatalf("new secret after grace: %d %s", r.Status, r.Raw)
	}
	if n := len(e.records(domain.TopicTasks)); n != 3 {
		t.Fatalf("tasks topic holds %d records, want 3", n)
	}

	// A leaked secret is revoked at once with secretGraceSeconds 0; the
	// field goes with a new secret only, within 30 days.
	for _, bad := range []map[string]any{
		{"integrationId": id, "secretGraceSeconds": 0},
		{"integrationId": id, "webhookSecret": "rotated-" + randomID(8), "secretGraceSeconds": -1},
		{"integrationId": id, "webhookSecret": "rotated-" + randomID(8), "secretGraceSeconds": 30*24*3600 + 1},
	} {
		if status, body := e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token, bad); status != 400 ||
			!strings.Contains(string(body), "secretGraceSeconds") {
			t.Errorf("PUT %v: %d %s, want 400 naming secretGraceSeconds", bad, status, body)
		}
	}
	third := "rotated-" + randomID(8)
	status, body = e.do(http.MethodPut, "/api/v1/integrations/softpro/webhooks/config", e.Token,
		map[string]any{"integrationId": id, "webhookSecret": third, "secretGraceSeconds": 0})
	if status != 200 {
		t.Fatalf("rotate with no grace: %d %s", status, body)
	}
	// Well within the configured grace (3 s), which would let it through.
	eventually(t, 1500*time.Millisecond, func() string {
		if r := e.send(signedWebhook(id, newSecret, payload("evt_leaked", domain.TaskCreated, `{}`))); r.Status != 401 {
			return fmt.Sprintf("the replaced secret with no grace: %d %s", r.Status, r.Raw)
		}
		return ""
	})
	if r := e.send(signedWebhook(id, third, payload("evt_third", domain.TaskCreated, `{}`))); r.Status != 200 {
		t.Fatalf("the new secret: %d %s", r.Status, r.Raw)
	}
}

func TestRateLimitIsPerIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, sa := e.integration("a", map[string]any{"ingestRateLimit": 5})
	b, sb := e.integration("b", map[string]any{"ingestRateLimit": 5})
	for i := range 5 {
		if r := e.send(signedWebhook(a, sa, payload(fmt.Sprintf("evt_a%d", i), domain.ContactCreated, `{}`))); r.Status != 200 {
			t.Fatalf("a #%d: %d %s", i, r.Status, r.Raw)
		}
	}
	r := e.send(signedWebhook(a, sa, payload("evt_a5", domain.ContactCreated, `{}`)))
	if r.Status != 429 || r.code() != "RATE_LIMITED" || r.RetryAfter == "" {
		t.Fatalf("a over limit: %d %s", r.Status, r.Raw)
	}
	for i := range 5 {
		if r := e.send(signedWebhook(b, sb, payload(fmt.Sprintf("evt_b%d", i), domain.ContactCreated, `{}`))); r.Status != 200 {
			t.Fatalf("b #%d: %d %s", i, r.Status, r.Raw)
		}
	}
	if n := len(e.records(domain.TopicContacts)); n != 10 {
		t.Fatalf("contacts topic holds %d records, want 10", n)
	}
}

func TestEventsSurviveBrokerRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ownBroker)
	id, secret := e.integration("a", nil)
	var ids []string
	for i := range 20 {
		eid := fmt.Sprintf("evt_%d", i)
		ids = append(ids, eid)
		if r := e.send(signedWebhook(id, secret, payload(eid, domain.WebhookTypes[i%13], `{"id":"x"}`))); r.Status != 200 {
			t.Fatalf("%s: %d %s", eid, r.Status, r.Raw)
		}
	}
	port := brokerPort(t, e)
	e.shutdown()
	e.Broker.Close()
	e.Broker = startBroker(t, e.Cfg.DataDir, port)
	e.boot()
	got := map[string]bool{}
	for _, topic := range domain.EventTopics {
		for _, rec := range e.records(topic) {
			got[rec.Envelope.EventID] = true
		}
	}
	for _, eid := range ids {
		if !got[eid] {
			t.Fatalf("%s lost across the restart (have %d of %d)", eid, len(got), len(ids))
		}
	}
	if r := e.send(signedWebhook(id, secret, payload("evt_0", domain.TransactionCreated, `{}`))); r.Status != 200 {
		t.Fatalf("after restart: %d %s", r.Status, r.Raw)
	}
}

func TestStandardWebhooksScheme(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	id, _ := e.integration("std", map[string]any{"signatureScheme": "standard-webhooks", "webhookSecret": secret})
	body := payload("evt_payload_id", domain.ClosingScheduled, `{"id":"t1","closing_date":"2026-02-01"}`)
	now := time.Now()
	sig, err := ingest.SignStandard([]byte(secret), "msg_1", now, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Webhook-Id", "msg_1")
	h.Set("Webhook-Timestamp", strconv.FormatInt(now.Unix(), 10))
	h.Set("Webhook-Signature", sig)
	r := e.send(webhook{integration: id, body: body, header: h})
	if r.Status != 200 || r.Body["eventId"] != "msg_1" {
		t.Fatalf("standard webhook: %d %s", r.Status, r.Raw)
	}
	if r := e.send(webhook{integration: id, body: body, header: h}); r.Body["duplicate"] != true {
		t.Fatalf("redelivery of msg_1 not a duplicate: %s", r.Raw)
	}
	recs := e.records(domain.TopicTransactions)
	if len(recs) != 1 || recs[0].Envelope.SignatureScheme != domain.SchemeStandardWebhooks {
		t.Fatalf("records %+v", recs)
	}
	var p map[string]any
	_ = json.Unmarshal(recs[0].Envelope.Payload, &p)
	if p["id"] != "evt_payload_id" {
		t.Fatalf("payload %s", recs[0].Envelope.Payload)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
