package tests

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/handlers/events"
)

// poisonRecords reads, with their headers, the records of this env's
// integrations appended to the poison topic since the env started.
func (e *Env) poisonRecords() []*kgo.Record {
	e.t.Helper()
	end := e.endOffsets()[domain.TopicPoison]
	offsets := map[int32]kgo.Offset{}
	left := 0
	for p, o := range end {
		from := e.start[domain.TopicPoison][p]
		if o > from {
			offsets[p] = kgo.NewOffset().At(from)
			left += int(o - from)
		}
	}
	if left == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{domain.TopicPoison: offsets}))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for left > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			e.t.Fatalf("read %s: %d records short: %v", domain.TopicPoison, left, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end[r.Partition] {
				return
			}
			left--
			if strings.HasPrefix(string(r.Key), e.ns+"-") {
				out = append(out, r)
			}
		})
	}
	return out
}

func header(r *kgo.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// A poison record says why its event was poisoned, where the original
// record is (topic, partition, offset) and how often it was tried: an event
// that can never project is tried once. The projection metrics count it,
// and the duplicates of a webhook count as dedup hits.
func TestPoisonRecordCarriesItsOriginAndAttempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *appConfig) { c.QueueRetryDelayMs = 10 })
	db := e.db()
	id, secret := e.integration("a", nil)
	now := time.Now()
	// A task event whose data has no id can never project.
	bad := signedWebhook(id, secret, event("evt_bad", domain.TaskCreated, now, `{"title":"no id"}`))
	if r := e.send(bad); r.Status != 200 {
		t.Fatalf("bad: %d %s", r.Status, r.Raw)
	}
	good := signedWebhook(id, secret, event("evt_good", domain.TaskCreated, now, `{"id":"tsk_9","title":"fine"}`))
	if r := e.send(good); r.Status != 200 {
		t.Fatalf("good: %d %s", r.Status, r.Raw)
	}
	const dups = 3
	for range dups {
		if r := e.send(good); r.Status != 200 {
			t.Fatalf("duplicate: %d %s", r.Status, r.Raw)
		}
	}
	eventually(t, 30*time.Second, func() string {
		got := queryString(t, db, `SELECT event_id, status FROM webhook_events WHERE integration_id=$1 ORDER BY event_id`, id)
		if got != "evt_bad FAILED|evt_good COMPLETED" {
			return "audit: " + got
		}
		return ""
	})

	var orig *struct {
		partition int32
		offset    int64
		appended  time.Time
	}
	for _, r := range e.records(domain.TopicTasks) {
		if r.Envelope.EventID == "evt_bad" {
			orig = &struct {
				partition int32
				offset    int64
				appended  time.Time
			}{r.Partition, r.Offset, r.Timestamp}
		}
	}
	if orig == nil {
		t.Fatalf("evt_bad is not on %s", domain.TopicTasks)
	}
	poison := e.poisonRecords()
	if len(poison) != 1 {
		t.Fatalf("poison topic holds %d records of this test, want 1", len(poison))
	}
	p := poison[0]
	want := map[string]string{
		events.PoisonTopic:     domain.TopicTasks,
		events.PoisonPartition: strconv.Itoa(int(orig.partition)),
		events.PoisonOffset:    strconv.FormatInt(orig.offset, 10),
		events.PoisonTimestamp: strconv.FormatInt(orig.appended.UnixMicro(), 10),
		events.PoisonAttempts:  "1",
	}
	for k, v := range want {
		if got, ok := header(p, k); !ok || got != v {
			t.Errorf("poison header %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	// The FAILED audit row keeps the original record's place on the log.
	if got := queryString(t, db, `SELECT appended_at FROM webhook_events WHERE integration_id=$1 AND event_id='evt_bad'`, id); got != queryString(t, db, `SELECT $1::timestamptz`, orig.appended) {
		t.Errorf("FAILED audit row appended_at = %s, want the original record's %s", got, orig.appended)
	}
	if reason, ok := header(p, events.PoisonReason); !ok || !strings.Contains(reason, "id") {
		t.Errorf("poison header %s = %q (present %v), want the reason naming the missing id", events.PoisonReason, reason, ok)
	}

	_, metrics := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		`softprohub_projection_poisoned_total{topic="softpro.tasks.v1"} 1`,
		`softprohub_projection_events_total{outcome="permanent",topic="softpro.tasks.v1",type="task.created"} 1`,
		`softprohub_projection_events_total{outcome="applied",topic="softpro.tasks.v1",type="task.created"} 1`,
		`softprohub_ingest_dedup_hits_total ` + strconv.Itoa(dups),
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q:\n%s", want, grep(string(metrics), "softprohub_projection_events_total")+"\n"+grep(string(metrics), "softprohub_projection_poisoned")+"\n"+grep(string(metrics), "dedup_hits"))
		}
	}
}
