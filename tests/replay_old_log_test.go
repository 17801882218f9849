package tests

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
)

// A log whose events were received a month ago (older than the 24.8 days
// of milliseconds an integer holds) projects live, rebuilds, validates and
// counts in the 30-day stats like a fresh one: recovery is for old logs
// above all.
func TestReplayOfAMonthOldLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _ := e.integration("a", nil)
	ctx := t.Context()
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	then := time.Now().Add(-27 * 24 * time.Hour).UTC().Truncate(time.Second)
	var envs []domain.Envelope
	add := func(typ domain.EventType, at time.Time, data string) {
		eid := fmt.Sprintf("old_%04d", len(envs))
		envs = append(envs, domain.Envelope{Schema: domain.SchemaV1, EventID: eid, IntegrationID: id, Type: typ,
			OccurredAt: at, ReceivedAt: at, Source: domain.SourceWebhook, Priority: typ.Priority(),
			Payload: event(eid, typ, at, data)})
	}
	// Enough new contacts in one rebuild batch for the bulk (COPY) path,
	// some updated later.
	for i := range 600 {
		add(domain.ContactCreated, then.Add(time.Duration(i)*time.Second), fmt.Sprintf(`{"id":"con_%d","first_name":"C%d"}`, i, i))
	}
	for i := 0; i < 600; i += 10 {
		add(domain.ContactUpdated, then.Add(time.Hour+time.Duration(i)*time.Second), fmt.Sprintf(`{"id":"con_%d","last_name":"L%d"}`, i, i))
	}
	for _, env := range envs {
		if _, err := producer.Append(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	n := len(envs)
	waitAudit(t, db, id, n)
	if got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id = $1 AND processing_time_ms = 2147483647`, id); got != fmt.Sprint(n) {
		t.Fatalf("%s audit rows hold the capped processing time, want %d", got, n)
	}
	want := readModelDump(t, db, id)

	e.rebuildAndWait(nil, 90*time.Second)
	if st := e.projectionsStatus(); st.Rebuild == nil || st.Rebuild.Progress.Applied != int64(n) {
		t.Fatalf("rebuild: %+v, want %d records applied", st.Rebuild, n)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("rebuilt read models differ from the live ones:\n got %.3000s\nwant %.3000s", got, want)
	}
	if rep := e.consistency(id); rep.Score != 100 {
		t.Fatalf("after rebuild: score %d, issues %+v", rep.Score, rep.Issues)
	}
	status, raw := e.do(http.MethodGet, "/api/v1/integrations/softpro/webhooks/stats?period=30d&integrationId="+id, e.Token, nil)
	if status != http.StatusOK {
		t.Fatalf("stats: %d %s", status, raw)
	}
	var stats struct {
		WebhookStats struct {
			TotalEvents int64 `json:"totalEvents"`
			Completed   int64 `json:"completed"`
		} `json:"webhookStats"`
	}
	apiData(t, raw, &stats)
	if stats.WebhookStats.TotalEvents != int64(n) || stats.WebhookStats.Completed != int64(n) {
		t.Fatalf("30-day stats: %+v, want %d events completed", stats.WebhookStats, n)
	}
}
