package tests

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/kafka"
	"github.com/roisystems/softprohub/projections"
)

// cli runs the real binary against e's database, Redis and broker, and
// returns what it printed; err is the exit status.
func (e *Env) cli(args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	return e.cliWith(nil, args...)
}

// cliWith is cli with variables of env set as well, whose values win.
func (e *Env) cliWith(env []string, args ...string) (stdout, stderr string, err error) {
	e.t.Helper()
	cmd := exec.Command(softprohubBinary(e.t), args...)
	cmd.Env = append(append(cliEnv(e), "REDIS_URL="+e.Cfg.RedisURL), env...)
	var o, se strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &se
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		e.t.Fatalf("softprohub %v: %v", args, err)
	}
	return o.String(), se.String(), err
}

// cliJSON runs a command that must succeed and decodes what it printed.
func cliJSON[T any](e *Env, args ...string) T {
	e.t.Helper()
	out, stderr, err := e.cli(args...)
	if err != nil {
		e.t.Fatalf("softprohub %v: %v\n%s%s", args, err, out, stderr)
	}
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		e.t.Fatalf("softprohub %v printed no JSON: %v\n%s", args, err, out)
	}
	return v
}

// cliRefused runs a command that must fail before doing anything: a
// non-zero exit, nothing on stdout, and stderr saying why in want's words.
func (e *Env) cliRefused(want string, args ...string) {
	e.t.Helper()
	e.cliFails(nil, want, args...)
}

// cliFails is cliRefused with variables of env set as well.
func (e *Env) cliFails(env []string, want string, args ...string) {
	e.t.Helper()
	out, stderr, err := e.cliWith(env, args...)
	// The error is the last line, after any log lines.
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if err == nil || out != "" || !strings.HasPrefix(last, "softprohub: ") || !strings.Contains(last, want) {
		e.t.Errorf("softprohub %v: %v\nstdout: %s\nstderr: %s\nwant a failure saying %q and no output", args, err, out, stderr, want)
	}
}

// gapsReport is what gaps prints.
type gapsReport struct {
	IntegrationID string            `json:"integrationId"`
	Gaps          []projections.Gap `json:"gaps"`
	NotChecked    []string          `json:"notChecked"`
}

// sameReport fails unless the CLI's and the API's reports agree but for
// when each was made.
func sameReport(t *testing.T, what string, cli, api projections.ConsistencyReport) {
	t.Helper()
	cli.CheckedAt, api.CheckedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(cli, api) {
		t.Fatalf("%s: the CLI reports\n%+v\nthe API\n%+v", what, cli, api)
	}
}

// validate finds rows deleted or edited behind the system's back, as GET
// …/consistency does; gaps names them as a read-model gap, as GET …/gaps
// does; gaps fill restores them exactly.
func TestCLIValidateGapsAndFillRestoreRowsChangedBehindTheBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, n := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)

	rep := cliJSON[projections.ConsistencyReport](e, "validate", id)
	if rep.IntegrationID != id || rep.Score != 100 || len(rep.Issues) != 0 || rep.Events != int64(n) || rep.Entities == 0 {
		t.Fatalf("validate of intact read models: %+v", rep)
	}
	sameReport(t, "intact", rep, e.consistency(id))
	if g := cliJSON[gapsReport](e, "gaps", id); g.IntegrationID != id || g.Gaps == nil || len(g.Gaps) != 0 {
		t.Fatalf("gaps of intact read models: %+v", g)
	}
	for _, behind := range []string{"0", "-1m"} {
		e.cliRefused("--behind must be positive", "gaps", id, "--behind", behind)
		e.cliRefused("--behind must be positive", "gaps", "fill", id, "--behind", behind)
	}

	tamper(t, db, id,
		`DELETE FROM transactions WHERE integration_id=$1 AND id='txn_1'`,
		`UPDATE tasks SET status='open' WHERE integration_id=$1 AND id='tsk_1'`)
	rep = cliJSON[projections.ConsistencyReport](e, "validate", id)
	if rep.Score >= 100 {
		t.Fatalf("validate of tampered read models: score %d", rep.Score)
	}
	found := map[string]bool{}
	for _, is := range rep.Issues {
		found[is.Kind+" "+string(is.EntityKind)+" "+is.EntityID+" "+strings.Join(is.Fields, ",")] = true
	}
	for _, w := range []string{"missing transaction txn_1 ", "differs task tsk_1 status"} {
		if !found[w] {
			t.Errorf("validate did not report %q: %+v", w, rep.Issues)
		}
	}
	sameReport(t, "tampered", rep, e.consistency(id))

	g := cliJSON[gapsReport](e, "gaps", id)
	if g.IntegrationID != id || len(g.Gaps) != 1 || g.Gaps[0].Kind != projections.GapReadModel || g.Gaps[0].Fill != projections.FillRefold {
		t.Fatalf("gaps of tampered read models: %+v", g)
	}
	if api := e.gaps(id); !reflect.DeepEqual(g.Gaps, api) {
		t.Fatalf("gaps: the CLI reports\n%+v\nthe API\n%+v", g.Gaps, api)
	}

	fill := cliJSON[projections.FillReport](e, "gaps", "fill", id)
	if fill.IntegrationID != id || len(fill.Gaps) != 1 || len(fill.Replayed) != 1 || len(fill.Errors) != 0 {
		t.Fatalf("gaps fill: %+v", fill)
	}
	e.restoredExactly(db, id, want)
	if g := cliJSON[gapsReport](e, "gaps", id); len(g.Gaps) != 0 {
		t.Fatalf("gaps after fill: %+v", g.Gaps)
	}
}

// replay re-applies a window of the log to the live read models, as POST
// …/replay does: it restores rows deleted behind the system's back, and a
// second run changes nothing. A window it cannot read is refused before
// anything is printed, as the route answers 400.
func TestCLIReplayRestoresAWindowOnceAndRefusesBadWindows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _, n := fixtureIntegration(t, e, db, "evt")
	want := readModelDump(t, db, id)
	tamper(t, db, id, `DELETE FROM documents WHERE integration_id=$1`, `DELETE FROM contacts WHERE integration_id=$1`)

	from, to := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	rep := cliJSON[projections.ReplayReport](e, "replay", "--integration", id, "--from", "1h")
	if rep.IntegrationID != id || rep.Records != int64(n) || rep.Applied != 4 || rep.From == nil {
		t.Fatalf("replay after two deletes: %+v, want %d records, 4 applied", rep, n)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after replay:\n got %s\nwant %s", got, want)
	}
	rep = cliJSON[projections.ReplayReport](e, "replay", "--integration", id, "--from", from, "--to", to)
	api := e.replay(id, map[string]any{"from": from, "to": to})
	rep.Elapsed, api.Elapsed = 0, 0
	if rep.Records != int64(n) || rep.Applied != 0 || !reflect.DeepEqual(rep, api) {
		t.Fatalf("replay of restored read models: the CLI reports %+v, the API %+v", rep, api)
	}
	// Only the named types are read.
	rep = cliJSON[projections.ReplayReport](e, "replay", "--integration", id, "--types", "contact.created,contact.updated")
	if rep.Records != 2 || len(rep.UnknownTypes) != 0 {
		t.Fatalf("replay of the contact events: %+v, want 2 records and no unknown type", rep)
	}
	// A misspelt type reads nothing, and the report says which it did not know.
	rep = cliJSON[projections.ReplayReport](e, "replay", "--integration", id, "--types", "contact.created,contact.updatd")
	if rep.Records != 1 || !slices.Equal(rep.UnknownTypes, []domain.EventType{"contact.updatd"}) {
		t.Fatalf("replay with a misspelt type: %+v, want 1 record and unknownTypes [contact.updatd]", rep)
	}
	if got := readModelDump(t, db, id); got != want {
		t.Fatalf("after replaying again:\n got %s\nwant %s", got, want)
	}

	e.cliRefused(`required flag(s) "integration" not set`, "replay")
	e.cliRefused("--from", "replay", "--integration", id, "--from", "yesterday")
	e.cliRefused("--to", "replay", "--integration", id, "--to", "2024-13-01")
	e.cliRefused("is not before", "replay", "--integration", id, "--from", "1h", "--to", "2h")
	e.cliRefused("in the future", "replay", "--integration", id, "--from", "2999-01-01T00:00:00Z")
	if status, body := e.do(http.MethodPost, "/api/v1/integrations/softpro/"+id+"/replay", e.Token,
		map[string]any{"from": "2999-01-01T00:00:00Z"}); status != http.StatusBadRequest {
		t.Fatalf("replay from the future over HTTP: %d %s", status, body)
	}
}

// The commands of one integration refuse one that does not exist, as their
// routes answer 404: a validation or a replay of it is not an empty report.
func TestCLIRecoveryCommandsRefuseAnUnknownIntegration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	unknown := e.id("nobody")
	for _, args := range [][]string{
		{"validate", unknown}, {"replay", "--integration", unknown}, {"gaps", unknown},
		{"gaps", "fill", unknown}, {"resync", unknown},
	} {
		e.cliRefused("integration "+unknown+": not found", args...)
	}
	// The check reads no secret: it needs no SECRETS_KEY.
	e.cliFails([]string{"SECRETS_KEY="}, "integration "+unknown+": not found", "gaps", unknown)
	if status, body := e.do(http.MethodGet, "/api/v1/integrations/softpro/"+unknown+"/consistency", e.Token, nil); status != http.StatusNotFound {
		t.Fatalf("consistency of an unknown integration: %d %s", status, body)
	}
	e.cliRefused("accepts 1 arg(s), received 0", "validate")
	e.cliRefused(`invalid argument "soon" for "--behind"`, "gaps", unknown, "--behind", "soon")
}

// Without the broker the commands that read the log fail saying so, and
// print no report of work they could not do, as their routes answer an
// error alone.
func TestCLIRecoveryCommandsFailWithoutTheBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id, _ := e.integration("a", nil)
	noBroker := []string{"KAFKA_BROKERS=127.0.0.1:1"}
	for _, args := range [][]string{
		{"validate", id}, {"replay", "--integration", id}, {"gaps", id}, {"gaps", "fill", id}, {"projections"},
	} {
		e.cliFails(noBroker, "dial tcp 127.0.0.1:1", args...)
	}
}

// gaps names an integration's FAILED events as a poisoned gap, as GET
// …/gaps does; gaps fill appends them to the log again through the CLI's
// own producer, as the retry-batch route does.
func TestCLIGapsFillRetriesPoisonedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, fastRetries)
	id, secret := e.integration("a", nil)
	// A document without an id can never project.
	if r := e.send(signedWebhook(id, secret, event("evt_bad", domain.DocumentUploaded, time.Now(), `{"name":"no id"}`))); r.Status != 200 {
		t.Fatalf("webhook: %d %s", r.Status, r.Raw)
	}
	e.waitStatuses(id, map[string]string{"evt_bad": "FAILED"})

	g := cliJSON[gapsReport](e, "gaps", id)
	if len(g.Gaps) != 1 || g.Gaps[0].Kind != projections.GapPoisoned || g.Gaps[0].Fill != projections.FillRetry || g.Gaps[0].Records != 1 {
		t.Fatalf("gaps with a FAILED event: %+v", g.Gaps)
	}
	if api := e.gaps(id); !reflect.DeepEqual(g.Gaps, api) {
		t.Fatalf("gaps: the CLI reports\n%+v\nthe API\n%+v", g.Gaps, api)
	}
	// The dead letter, the last record of its partition, stays past the
	// checkpoint (no later record moves it) yet waits for nothing: it is
	// not also records the projectors left behind, nor in the queue.
	time.Sleep(200 * time.Millisecond)
	if g := cliJSON[gapsReport](e, "gaps", id, "--behind", "100ms"); len(g.Gaps) != 1 || g.Gaps[0].Kind != projections.GapPoisoned {
		t.Fatalf("gaps --behind 100ms with a dead letter at the partition's end: %+v, want the poisoned event alone", g.Gaps)
	}
	if m := e.metrics(id); m.QueueDepth != 0 || m.OldestPendingJob != nil {
		t.Fatalf("queue with a dead letter only: %d, %v", m.QueueDepth, m.OldestPendingJob)
	}
	if fill := cliJSON[projections.FillReport](e, "gaps", "fill", id); fill.Retried != 1 || len(fill.Errors) != 0 {
		t.Fatalf("gaps fill: %+v", fill)
	}
	var copies []string
	for _, r := range e.records(domain.TopicDocuments) {
		copies = append(copies, fmt.Sprintf("%s/%s/%d", r.Envelope.EventID, r.Envelope.Source, r.Envelope.Attempt))
	}
	if strings.Join(copies, ",") != "evt_bad/webhook/0,evt_bad/retry/1" {
		t.Fatalf("log copies after gaps fill: %v", copies)
	}
	// Its payload fails again.
	eventually(t, 30*time.Second, func() string {
		if d := e.eventDetail("evt_bad"); d.Status != "FAILED" || d.RetryCount != 1 {
			return fmt.Sprintf("event after the retry: %s, %d retries", d.Status, d.RetryCount)
		}
		return ""
	})
}

// gaps --behind names the records the live projectors have not applied
// for that long; gaps fill replays them while the projectors are down,
// and once they are back they take over from their checkpoints.
func TestCLIGapsFillReplaysWhatTheProjectorsLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	db := e.db()
	id, _ := e.integration("a", nil)
	e.shutdown()
	producer, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: e.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	now := time.Now().UTC()
	if _, err := producer.Append(t.Context(), domain.Envelope{Schema: domain.SchemaV1, EventID: "evt_left", IntegrationID: id,
		Type: domain.ContactCreated, OccurredAt: now, ReceivedAt: now, Source: domain.SourceWebhook, Priority: domain.ContactCreated.Priority(),
		Payload: event("evt_left", domain.ContactCreated, now, `{"id":"con_left","first_name":"Left"}`)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	// Unapplied, the record shows as rows missing; as a log-side gap only
	// once it has waited longer than --behind (5 minutes by default).
	if g := cliJSON[gapsReport](e, "gaps", id); len(g.Gaps) != 1 || g.Gaps[0].Kind != projections.GapReadModel {
		t.Fatalf("gaps with a record 100ms old: %+v, want the read-model gap alone", g.Gaps)
	}
	g := cliJSON[gapsReport](e, "gaps", id, "--behind", "50ms")
	if len(g.Gaps) != 2 || g.Gaps[0].Kind != projections.GapLogBehind || g.Gaps[0].Topic != domain.TopicContacts ||
		g.Gaps[0].Records != 1 || g.Gaps[0].Fill != projections.FillReplay || g.Gaps[1].Kind != projections.GapReadModel {
		t.Fatalf("gaps --behind 50ms: %+v, want the log-side gap too", g.Gaps)
	}
	fill := cliJSON[projections.FillReport](e, "gaps", "fill", id, "--behind", "50ms")
	if len(fill.Replayed) != 2 || fill.Replayed[0].Records != 1 || fill.Replayed[0].Applied != 1 || len(fill.Errors) != 0 {
		t.Fatalf("gaps fill: %+v", fill)
	}
	row := `SELECT (SELECT first_name FROM contacts WHERE integration_id=$1 AND id='con_left'),
		(SELECT status FROM webhook_events WHERE integration_id=$1 AND event_id='evt_left')`
	if got := queryString(t, db, row, id); got != "Left COMPLETED" {
		t.Fatalf("contact and audit row after gaps fill: %q", got)
	}

	e.boot()
	eventually(t, 30*time.Second, func() string {
		if g := cliJSON[gapsReport](e, "gaps", id, "--behind", "1ns"); len(g.Gaps) != 0 {
			return fmt.Sprintf("gaps once the projectors are back: %+v", g.Gaps)
		}
		return ""
	})
	if got := queryString(t, db, `SELECT count(*) FROM webhook_events WHERE integration_id=$1`, id); got != "1" {
		t.Fatalf("%s audit rows once the projectors are back, want the one", got)
	}
}
