package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)

func env(typ EventType, id string, at time.Time, payload string) Envelope {
	return Envelope{Schema: SchemaV1, EventID: id, IntegrationID: "int_1", Type: typ, OccurredAt: at, ReceivedAt: at, Payload: json.RawMessage(payload)}
}

// fold applies envelopes in order from the zero state and returns the final
// state and every effect.
func fold(t *testing.T, es ...Envelope) (Entity, []Effect) {
	t.Helper()
	var cur Entity
	var effs []Effect
	for _, e := range es {
		c, ok, err := ChangeOf(e)
		if err != nil || !ok {
			t.Fatalf("ChangeOf(%s) = ok %v, err %v", e.EventID, ok, err)
		}
		var eff Effect
		cur, eff = Apply(cur, c)
		effs = append(effs, eff)
	}
	return cur, effs
}

func TestChangeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     Envelope
		wantOK  bool
		wantErr bool
		wantKey EntityKey
	}{
		{name: "webhook shape", env: env(TransactionUpdated, "e1", t0, `{"id":"e1","data":{"id":"txn_1"}}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindTransaction, "txn_1"}},
		{name: "bare record", env: env(ContactSynced, "e1", t0, `{"id":"c_9","email":"a@b"}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindContact, "c_9"}},
		{name: "closing uses transaction_id", env: env(ClosingScheduled, "e1", t0, `{"data":{"id":"cl_1","transaction_id":"txn_2"}}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindTransaction, "txn_2"}},
		{name: "numeric id", env: env(TaskCreated, "e1", t0, `{"data":{"id":42}}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindTask, "42"}},
		{name: "unknown type", env: env("invoice.paid", "e1", t0, `{"data":{"id":"x"}}`)},
		{name: "no id", env: env(DocumentUploaded, "e1", t0, `{"data":{"name":"a.pdf"}}`), wantErr: true},
		{name: "data not object", env: env(DocumentUploaded, "e1", t0, `{"data":"oops"}`), wantErr: true},
		{name: "payload not object", env: env(DocumentUploaded, "e1", t0, `[1,2]`), wantErr: true},
		{name: "id at the index limit", env: env(ContactCreated, "e1", t0, `{"data":{"id":"`+strings.Repeat("c", MaxIndexedBytes)+`"}}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindContact, strings.Repeat("c", MaxIndexedBytes)}},
		{name: "id beyond the index limit", env: env(ContactCreated, "e1", t0, `{"data":{"id":"`+strings.Repeat("c", MaxIndexedBytes+1)+`"}}`), wantErr: true},
		{name: "indexed field at the limit", env: env(ContactCreated, "e1", t0, `{"data":{"id":"c","email":"`+strings.Repeat("é", MaxIndexedBytes/2)+`"}}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindContact, "c"}},
		{name: "email beyond the limit", env: env(ContactCreated, "e1", t0, `{"data":{"id":"c","email":"`+strings.Repeat("é", MaxIndexedBytes/2)+`x"}}`), wantErr: true},
		{name: "file number beyond the limit", env: env(ClosingScheduled, "e1", t0, `{"data":{"transaction_id":"t","fileNumber":"`+strings.Repeat("f", MaxIndexedBytes+1)+`"}}`), wantErr: true},
		{name: "status alias not read", env: env(TransactionUpdated, "e1", t0, `{"data":{"id":"t","status":"open","newStatus":"`+strings.Repeat("s", MaxIndexedBytes+1)+`"}}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindTransaction, "t"}},
		{name: "task transaction beyond the limit", env: env(TaskCreated, "e1", t0, `{"data":{"id":"k","transactionId":`+strings.Repeat("9", MaxIndexedBytes+1)+`}}`), wantErr: true},
		{name: "unindexed field is not limited", env: env(DocumentUploaded, "e1", t0, `{"data":{"id":"d","url":"`+strings.Repeat("u", 5*MaxIndexedBytes)+`"}}`), wantOK: true,
			wantKey: EntityKey{"int_1", KindDocument, "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, ok, err := ChangeOf(tt.env)
			if tt.wantErr {
				if !errors.Is(err, ErrUnprojectable) {
					t.Fatalf("err = %v, want ErrUnprojectable", err)
				}
				return
			}
			if err != nil || ok != tt.wantOK {
				t.Fatalf("ok, err = %v, %v; want %v, nil", ok, err, tt.wantOK)
			}
			if ok && c.Key != tt.wantKey {
				t.Fatalf("key = %+v, want %+v", c.Key, tt.wantKey)
			}
		})
	}
}

func TestApplyTransaction(t *testing.T) {
	t.Parallel()
	created := env(TransactionCreated, "e1", t0, `{"data":{"id":"txn_1","file_number":"2024-001","status":"open","property":{"address":"123 Main St"},"closing_date":"2024-02-01"}}`)
	tests := []struct {
		name          string
		events        []Envelope
		wantStatus    string
		wantApplied   []bool
		wantChanges   []string // "from>to" per effect, "" when none
		wantDeleted   bool
		wantClosed    bool
		wantClosing   string
		wantUpdatedAt time.Time
		wantFile      string
	}{
		{
			name: "create", events: []Envelope{created},
			wantStatus: "open", wantApplied: []bool{true}, wantChanges: []string{""},
			wantClosing: "2024-02-01", wantUpdatedAt: t0, wantFile: "2024-001",
		},
		{
			name: "newer update wins and logs status difference",
			events: []Envelope{created,
				env(TransactionUpdated, "e2", t0.Add(time.Minute), `{"data":{"id":"txn_1","status":"in_progress"}}`)},
			wantStatus: "in_progress", wantApplied: []bool{true, true}, wantChanges: []string{"", "open>in_progress"},
			wantClosing: "2024-02-01", wantUpdatedAt: t0.Add(time.Minute), wantFile: "2024-001",
		},
		{
			name: "older event does not overwrite",
			events: []Envelope{
				env(TransactionUpdated, "e2", t0.Add(time.Minute), `{"data":{"id":"txn_1","status":"in_progress"}}`),
				created},
			wantStatus: "in_progress", wantApplied: []bool{true, false}, wantChanges: []string{"", ""},
			wantUpdatedAt: t0.Add(time.Minute),
		},
		{
			name: "equal timestamps apply in log order",
			events: []Envelope{created,
				env(TransactionStatusChanged, "e2", t0, `{"data":{"id":"txn_1","status":"pending","previous_status":"open"}}`)},
			wantStatus: "pending", wantApplied: []bool{true, true}, wantChanges: []string{"", "open>pending"},
			wantClosing: "2024-02-01", wantUpdatedAt: t0, wantFile: "2024-001",
		},
		{
			name: "status_changed on unseen transaction takes from the event",
			events: []Envelope{
				env(TransactionStatusChanged, "e2", t0, `{"data":{"id":"txn_1","new_status":"closed","old_status":"open"}}`)},
			wantStatus: "closed", wantApplied: []bool{true}, wantChanges: []string{"open>closed"}, wantUpdatedAt: t0,
		},
		{
			name: "closing scheduled then completed",
			events: []Envelope{created,
				env(ClosingScheduled, "e2", t0.Add(time.Hour), `{"data":{"id":"cl_1","transaction_id":"txn_1","closing_date":"2024-03-01"}}`),
				env(ClosingCompleted, "e3", t0.Add(2*time.Hour), `{"data":{"id":"cl_1","transaction_id":"txn_1"}}`)},
			wantStatus: "open", wantApplied: []bool{true, true, true}, wantChanges: []string{"", "", ""},
			wantClosing: "2024-03-01", wantClosed: true, wantUpdatedAt: t0.Add(2 * time.Hour), wantFile: "2024-001",
		},
		{
			// The closing's own status and file number are the closing's.
			name: "a closing's own fields leave the transaction's alone",
			events: []Envelope{created,
				env(ClosingScheduled, "e2", t0.Add(time.Hour), `{"data":{"id":"cl_1","transaction_id":"txn_1","status":"scheduled","file_number":"C-9","closing_date":"2024-03-01"}}`),
				env(ClosingCompleted, "e3", t0.Add(2*time.Hour), `{"data":{"id":"cl_1","transaction_id":"txn_1","status":"completed","property":{"address":"9 Elm St"}}}`)},
			wantStatus: "open", wantApplied: []bool{true, true, true}, wantChanges: []string{"", "", ""},
			wantClosing: "2024-03-01", wantClosed: true, wantUpdatedAt: t0.Add(2 * time.Hour), wantFile: "2024-001",
		},
		{
			// Without transaction_id the data is the transaction's own.
			name: "a closing event carrying the transaction itself",
			events: []Envelope{created,
				env(ClosingCompleted, "e2", t0.Add(time.Hour), `{"data":{"id":"txn_1","status":"closed"}}`)},
			wantStatus: "closed", wantApplied: []bool{true, true}, wantChanges: []string{"", "open>closed"},
			wantClosing: "2024-02-01", wantClosed: true, wantUpdatedAt: t0.Add(time.Hour), wantFile: "2024-001",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, effs := fold(t, tt.events...)
			if got.Transaction.Status != tt.wantStatus {
				t.Errorf("status = %q, want %q", got.Transaction.Status, tt.wantStatus)
			}
			if tt.wantFile != "" && got.Transaction.FileNumber != tt.wantFile {
				t.Errorf("file number = %q, want %q", got.Transaction.FileNumber, tt.wantFile)
			}
			if !got.UpdatedAt.Equal(tt.wantUpdatedAt) {
				t.Errorf("updatedAt = %v, want %v", got.UpdatedAt, tt.wantUpdatedAt)
			}
			if tt.wantClosing != "" && (got.Transaction.ClosingDate == nil || got.Transaction.ClosingDate.Format(time.DateOnly) != tt.wantClosing) {
				t.Errorf("closing date = %v, want %s", got.Transaction.ClosingDate, tt.wantClosing)
			}
			if (got.Transaction.ClosedAt != nil) != tt.wantClosed {
				t.Errorf("closedAt = %v, want closed %v", got.Transaction.ClosedAt, tt.wantClosed)
			}
			for i, eff := range effs {
				if eff.Applied != tt.wantApplied[i] {
					t.Errorf("effect %d applied = %v, want %v", i, eff.Applied, tt.wantApplied[i])
				}
				var ch string
				if eff.StatusChange != nil {
					ch = eff.StatusChange.From + ">" + eff.StatusChange.To
				}
				if ch != tt.wantChanges[i] {
					t.Errorf("effect %d status change = %q, want %q", i, ch, tt.wantChanges[i])
				}
			}
		})
	}
}

func TestApplyDeleteAndResurrect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		events      []Envelope
		wantDeleted bool
		wantEmail   string
	}{
		{name: "delete soft-deletes",
			events: []Envelope{
				env(ContactCreated, "e1", t0, `{"data":{"id":"c1","email":"a@x"}}`),
				env(ContactDeleted, "e2", t0.Add(time.Minute), `{"data":{"id":"c1"}}`)},
			wantDeleted: true, wantEmail: "a@x"},
		{name: "late older create does not resurrect",
			events: []Envelope{
				env(ContactDeleted, "e2", t0.Add(time.Minute), `{"data":{"id":"c1"}}`),
				env(ContactCreated, "e1", t0, `{"data":{"id":"c1","email":"a@x"}}`)},
			wantDeleted: true},
		{name: "late create of the same second does not resurrect",
			events: []Envelope{
				env(ContactDeleted, "e2", t0, `{"data":{"id":"c1"}}`),
				env(ContactCreated, "e1", t0, `{"data":{"id":"c1","email":"a@x"}}`)},
			wantDeleted: true},
		{name: "newer update clears the mark",
			events: []Envelope{
				env(ContactDeleted, "e2", t0, `{"data":{"id":"c1"}}`),
				env(ContactUpdated, "e3", t0.Add(time.Minute), `{"data":{"id":"c1","email":"b@x"}}`)},
			wantDeleted: false, wantEmail: "b@x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, _ := fold(t, tt.events...)
			if got.Deleted != tt.wantDeleted || (got.DeletedAt != nil) != tt.wantDeleted {
				t.Errorf("deleted = %v (at %v), want %v", got.Deleted, got.DeletedAt, tt.wantDeleted)
			}
			if got.Contact.Email != tt.wantEmail {
				t.Errorf("email = %q, want %q", got.Contact.Email, tt.wantEmail)
			}
		})
	}
}

func TestApplyTaskAndDocument(t *testing.T) {
	t.Parallel()
	task, _ := fold(t,
		env(TaskCreated, "e1", t0, `{"data":{"id":"t1","title":"Order title","transaction_id":"txn_1","due_date":"2024-02-01","status":"open"}}`),
		env(TaskCompleted, "e2", t0.Add(time.Hour), `{"data":{"id":"t1"}}`))
	if task.Task.Status != "completed" || task.Task.CompletedAt == nil || !task.Task.CompletedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("task = %+v, want completed at %v", task.Task, t0.Add(time.Hour))
	}
	if task.Task.Title != "Order title" || task.Task.DueDate == nil {
		t.Errorf("task fields lost: %+v", task.Task)
	}
	doc, _ := fold(t,
		env(DocumentUploaded, "e1", t0, `{"data":{"id":"d1","name":"deed.pdf","document_type":"deed","transaction_id":"txn_1"}}`),
		env(DocumentUpdated, "e2", t0.Add(time.Hour), `{"data":{"id":"d1","name":"deed-v2.pdf"}}`))
	if doc.Document.Name != "deed-v2.pdf" || doc.Document.DocumentType != "deed" || doc.Document.TransactionID != "txn_1" {
		t.Errorf("document = %+v", doc.Document)
	}
	var data map[string]any
	if err := json.Unmarshal(doc.Data, &data); err != nil {
		t.Fatalf("data: %v", err)
	}
	if data["name"] != "deed-v2.pdf" || data["document_type"] != "deed" {
		t.Errorf("merged data = %v", data)
	}
}

func TestApplyIsPure(t *testing.T) {
	t.Parallel()
	cur, _ := fold(t, env(TransactionCreated, "e1", t0, `{"data":{"id":"txn_1","status":"open","closing_date":"2024-02-01"}}`))
	before := *cur.Transaction.ClosingDate
	c, _, _ := ChangeOf(env(ClosingScheduled, "e2", t0.Add(time.Hour), `{"data":{"transaction_id":"txn_1","closing_date":"2024-05-05"}}`))
	next, _ := Apply(cur, c)
	if !cur.Transaction.ClosingDate.Equal(before) || cur.LastEventID != "e1" {
		t.Fatalf("Apply modified its input: %+v", cur)
	}
	if next.Transaction.ClosingDate.Format(time.DateOnly) != "2024-05-05" {
		t.Fatalf("closing date = %v", next.Transaction.ClosingDate)
	}
}

// TestChangeOfReadsAsEncodingJSON: payloads are parsed with goccy/go-json;
// what ChangeOf reads must be what encoding/json reads.
func TestChangeOfReadsAsEncodingJSON(t *testing.T) {
	t.Parallel()
	payloads := []string{
		`{"id":"e1","data":{"id":"txn_1","status":"open","file_number":"F-1","property":{"address":"1 Main St"}}}`,
		`{"data":{"id":"t\u00e9st \ud83d\ude00","status":"a\"b\\c\n","n":12.5e3,"ok":true,"nil":null,"arr":[1,{"x":[]}]}}`,
		`{"id":"txn_2","status":"closed","closing_date":"2024-02-01"}`,
		"{ \"data\" : { \"id\" : \"spaced\" ,\n\t\"name\" : \"doc\" } }",
		`{"data":{"id":"dup","status":"first","status":"second"}}`,
		`{"data":{"id":"x"},"data":{"id":"last","n":[1, {"a" : "b"}]}}`,
		`{"d\u0061ta":{"id":"escaped key","k\"q":"v","<&>":1}}`,
		`{"id":"no data","nested":{ "x" : [ ] }}`,
		"{\"data\":{\"id\":\"bad \xff utf-8\",\"name\":\"\xc3\"}}",
	}
	for _, p := range payloads {
		var top, want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(p), &top); err != nil {
			t.Fatal(err)
		}
		typ := TransactionUpdated
		if _, has := top["data"]; !has {
			typ = TransactionSynced // a bare record: only syncs pull those
		}
		e := Envelope{Schema: SchemaV1, EventID: "e", IntegrationID: "i", Type: typ, Payload: []byte(p)}
		c, ok, err := ChangeOf(e)
		if err != nil || !ok {
			t.Fatalf("%s: ok %v err %v", p, ok, err)
		}
		raw := json.RawMessage(p)
		if d, has := top["data"]; has {
			raw = d
		}
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if len(c.Data) != len(want) || canonical(t, c.Raw) != canonical(t, raw) {
			t.Fatalf("%s: data %v raw %s, want %v raw %s", p, c.Data, c.Raw, want, raw)
		}
		for k, v := range want {
			if canonical(t, c.Data[k]) != canonical(t, v) {
				t.Errorf("%s: %s = %s, want %s", p, k, c.Data[k], v)
			}
			if rawText(c.Data[k]) != rawText(v) {
				t.Errorf("%s: text of %s differs", p, k)
			}
		}
	}
}

// mergeData writes its object by hand: it must read back as what
// encoding/json makes of the same merge, keys escaped and sorted.
func TestMergeDataReadsAsEncodingJSON(t *testing.T) {
	t.Parallel()
	cases := []struct{ cur, add string }{
		{`{"id":"txn_1","status":"open","property":{"address":"1 Main St"}}`, `{"status":"closed","closing_date":"2024-02-01"}`},
		{`{"a":1}`, `{"z\"q":"x","<tag>&":[1,2],"é":{"k":null},"ctl\u0001":true,"back\\slash":"v"}`},
		{"{ \"spaced\" : [ 1 , 2 ] ,\n\"b\": \"\\u00e9\" }", `{"c":  {"d" : 1}}`},
	}
	for _, c := range cases {
		var add map[string]json.RawMessage
		if err := json.Unmarshal([]byte(c.add), &add); err != nil {
			t.Fatal(err)
		}
		got, carried := mergeData(json.RawMessage(c.cur), add, nil)
		if carried {
			t.Errorf("merge of %s and %s says it kept the event's bytes", c.cur, c.add)
		}
		if !json.Valid(got) {
			t.Fatalf("merge of %s and %s is not JSON: %s", c.cur, c.add, got)
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(c.cur), &want); err != nil {
			t.Fatal(err)
		}
		for k, v := range add {
			want[k] = v
		}
		wantBytes, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var gotAny, wantAny any
		if err := json.Unmarshal(got, &gotAny); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(wantBytes, &wantAny); err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, gotAny), mustJSON(t, wantAny); g != w {
			t.Errorf("merge of %s and %s = %s, want %s", c.cur, c.add, g, w)
		}
		var cg bytes.Buffer
		if err := json.Compact(&cg, got); err != nil {
			t.Fatal(err)
		}
		if cg.String() != string(wantBytes) {
			t.Errorf("merge of %s and %s = %s, want (compacted) %s", c.cur, c.add, cg.String(), wantBytes)
		}
	}
	// An empty state keeps the event's own bytes.
	raw := json.RawMessage(`{ "id" : "x" }`)
	if got, carried := mergeData(nil, map[string]json.RawMessage{"id": json.RawMessage(`"x"`)}, raw); !bytes.Equal(got, raw) || !carried {
		t.Errorf("merge into nothing = %s (as carried: %v), want the event's bytes %s", got, carried, raw)
	}
}

// canonical is b's JSON value as encoding/json renders it: two documents
// with the same value, however written, have the same canonical form.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return mustJSON(t, v)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// DataAsCarried is true exactly when the state's data is the change's own
// data object: an entity's first change, not a merge and not a closing.
func TestApplySaysWhenDataIsAsCarried(t *testing.T) {
	t.Parallel()
	created := env(ContactCreated, "e1", t0, `{"data":{"id":"con_1","first_name":"Ann"}}`)
	bare := env(ContactSynced, "e1", t0, `{"id":"con_1","first_name":"Ann"}`)
	updated := env(ContactUpdated, "e2", t0.Add(time.Minute), `{"data":{"id":"con_1","last_name":"Lee"}}`)
	older := env(ContactUpdated, "e0", t0.Add(-time.Minute), `{"data":{"id":"con_1","last_name":"Old"}}`)
	closing := env(ClosingScheduled, "e3", t0, `{"data":{"id":"cl_1","transaction_id":"txn_1","closing_date":"2024-03-01"}}`)
	deleted := env(ContactDeleted, "e4", t0, `{"data":{"id":"con_1"}}`)
	tests := []struct {
		name   string
		events []Envelope
		want   []bool
	}{
		{"create", []Envelope{created}, []bool{true}},
		{"bare record", []Envelope{bare}, []bool{true}},
		{"delete of an unseen entity", []Envelope{deleted}, []bool{true}},
		{"update merges", []Envelope{created, updated}, []bool{true, false}},
		{"stale change", []Envelope{created, older}, []bool{true, false}},
		{"closing of an unseen transaction", []Envelope{closing}, []bool{false}},
	}
	for _, tc := range tests {
		cur, effs := fold(t, tc.events...)
		for i, eff := range effs {
			if eff.DataAsCarried != tc.want[i] {
				t.Errorf("%s: change %d: DataAsCarried %v, want %v", tc.name, i, eff.DataAsCarried, tc.want[i])
			}
		}
		if last := effs[len(effs)-1]; last.DataAsCarried {
			c, _, _ := ChangeOf(tc.events[len(tc.events)-1])
			if !bytes.Equal(cur.Data, c.Raw) {
				t.Errorf("%s: data %s is not the change's own %s", tc.name, cur.Data, c.Raw)
			}
		}
	}
}

// An entity's creation time is its earliest change's, in whatever order
// its changes come: a webhook and a sync snapshot of one record travel on
// two topics, and either may be projected first.
func TestApplyCreationTimeIsTheEarliestChangesInAnyOrder(t *testing.T) {
	t.Parallel()
	snapshot := env(TransactionSynced, "sync_1", t0, `{"id":"txn_1","file_number":"F-1","status":"open","updated_at":"2024-01-15T10:30:00Z"}`)
	update := env(TransactionUpdated, "evt_2", t0.Add(time.Hour), `{"data":{"id":"txn_1","status":"in_progress"}}`)
	late := env(TransactionUpdated, "evt_0", t0.Add(-time.Hour), `{"data":{"id":"txn_1","status":"draft"}}`)
	orders := [][]Envelope{
		{late, snapshot, update}, {late, update, snapshot}, {snapshot, late, update},
		{snapshot, update, late}, {update, late, snapshot}, {update, snapshot, late},
	}
	for _, order := range orders {
		got, effs := fold(t, order...)
		if !got.CreatedAt.Equal(t0.Add(-time.Hour)) || !got.UpdatedAt.Equal(t0.Add(time.Hour)) || got.Transaction.Status != "in_progress" {
			t.Errorf("order %s %s %s: created %s, updated %s, status %q", order[0].EventID, order[1].EventID, order[2].EventID,
				got.CreatedAt, got.UpdatedAt, got.Transaction.Status)
		}
		for i, eff := range effs {
			if eff.Earlier && eff.Applied {
				t.Errorf("%s: both applied and earlier", order[i].EventID)
			}
		}
	}
	// Stale but not older than the creation: nothing moves.
	cur, _ := fold(t, snapshot, update)
	c, _, _ := ChangeOf(env(TransactionUpdated, "evt_1", t0.Add(time.Minute), `{"data":{"id":"txn_1","status":"x"}}`))
	if next, eff := Apply(cur, c); eff != (Effect{}) || !next.CreatedAt.Equal(t0) {
		t.Errorf("a stale change after the creation: %+v, created %s", eff, next.CreatedAt)
	}
}
