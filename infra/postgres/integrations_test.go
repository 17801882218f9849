package postgres

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/roisystems/softprohub/domain"
	"github.com/roisystems/softprohub/infra/secretbox"
)

func testBox(t *testing.T, fill byte) *secretbox.Box {
	t.Helper()
	b, err := secretbox.New(bytes.Repeat([]byte{fill}, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestStore(t *testing.T) (*IntegrationStore, context.Context) {
	t.Helper()
	return NewIntegrationStore(migratedTestSchema(t, nil), testBox(t, 9)), testContext(t)
}

func fullIntegration(id string) domain.Integration {
	lastSync := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	lastScheduled := lastSync.Add(-time.Minute)
	syncErr := "boom"
	return domain.Integration{
		ID:                  id,
		OrganizationID:      "org-1",
		Active:              true,
		WebhookEnabled:      true,
		SignatureScheme:     domain.SchemeStandardWebhooks,
		SyncEnabled:         false,
		SyncFrequency:       30,
		SyncTypes:           []string{domain.SyncContacts, domain.SyncTasks},
		LastSyncAt:          &lastSync,
		LastScheduledSyncAt: &lastScheduled,
		SyncStatus:          "FAILED",
		LastSyncError:       &syncErr,
		RateLimit:           250,
		IngestRateLimit:     40,
		RetryConfig:         &domain.RetryConfig{MaxRetries: 5, InitialDelay: 2000},
	}
}

// sameSettings compares everything but timestamps set by the store and
// secrets.
func sameSettings(t *testing.T, got, want domain.Integration) {
	t.Helper()
	got.CreatedAt, got.UpdatedAt, got.Secrets = time.Time{}, time.Time{}, nil
	want.CreatedAt, want.UpdatedAt, want.Secrets = time.Time{}, time.Time{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("integration differs\n got: %+v\nwant: %+v", got, want)
	}
}

func TestIntegrationStoreCreateGetList(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)

	want := fullIntegration("int-b")
	created, err := s.Create(ctx, want, "")
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	sameSettings(t, created, want)
	if created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Fatalf("timestamps: created %v, updated %v", created.CreatedAt, created.UpdatedAt)
	}
	if len(created.Secrets) != 0 {
		t.Fatalf("created without a secret but has %d", len(created.Secrets))
	}

	got, err := s.Integration(ctx, "int-b")
	if err != nil {
		t.Fatalf("Integration: %v", err)
	}
	if !reflect.DeepEqual(got, created) {
		t.Fatalf("Integration = %+v, want %+v", got, created)
	}

	// Zero values take the documented defaults.
	minimal, err := s.Create(ctx, domain.Integration{ID: "int-a", OrganizationID: "org-2", RateLimit: 100}, "s3cret")
	if err != nil {
		t.Fatalf("Create minimal: %v", err)
	}
	if minimal.SignatureScheme != domain.SchemeSoftPro || minimal.SyncStatus != "IDLE" ||
		minimal.SyncTypes == nil || len(minimal.SyncTypes) != 0 || minimal.IngestRateLimit != 0 ||
		minimal.RetryConfig != nil || minimal.LastSyncAt != nil || minimal.LastSyncError != nil {
		t.Fatalf("minimal integration stored as %+v", minimal)
	}
	if _, err := s.Create(ctx, domain.Integration{ID: "int-c", OrganizationID: "org-1"}, ""); err != nil {
		t.Fatalf("Create int-c: %v", err)
	}

	list, err := s.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var ids []string
	for _, in := range list {
		ids = append(ids, in.ID)
	}
	if !reflect.DeepEqual(ids, []string{"int-a", "int-b", "int-c"}) {
		t.Fatalf("List ids = %v", ids)
	}
	if len(list[0].Secrets) != 1 || string(list[0].Secrets[0].Value) != "s3cret" {
		t.Fatalf("List did not return int-a's secret: %+v", list[0].Secrets)
	}

	if _, err := s.Integration(ctx, "nope"); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("Integration(missing) error = %v, want ErrNotFound", err)
	}
	var verr *domain.ValidationError
	if _, err := s.Create(ctx, domain.Integration{}, ""); !errors.As(err, &verr) {
		t.Fatalf("Create without id error = %v, want a ValidationError", err)
	}
}

func TestIntegrationStoreCreateConflict(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	if _, err := s.Create(ctx, fullIntegration("dup"), "first"); err != nil {
		t.Fatalf("Create: %v", err)
	}
	_, err := s.Create(ctx, fullIntegration("dup"), "second")
	if !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("second Create error = %v, want ErrConflict", err)
	}
	got, err := s.Integration(ctx, "dup")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Secrets) != 1 || string(got.Secrets[0].Value) != "first" {
		t.Fatalf("failed Create changed the secrets: %+v", got.Secrets)
	}
}

func TestIntegrationStoreUpdate(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	created, err := s.Create(ctx, fullIntegration("upd"), "sec")
	if err != nil {
		t.Fatal(err)
	}

	synced := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	want := created
	want.OrganizationID = "org-9"
	want.Active = false
	want.WebhookEnabled = false
	want.SignatureScheme = domain.SchemeSoftPro
	want.SyncEnabled = true
	want.SyncFrequency = 60
	want.SyncTypes = []string{domain.SyncDocuments}
	want.LastSyncAt = &synced
	want.LastScheduledSyncAt = nil
	want.SyncStatus = "IDLE"
	want.LastSyncError = nil
	want.RateLimit = 10
	want.IngestRateLimit = 0
	want.RetryConfig = nil

	updated, err := s.Update(ctx, "upd", func(in *domain.Integration) error {
		if len(in.Secrets) != 1 || string(in.Secrets[0].Value) != "sec" {
			t.Errorf("fn sees secrets %+v", in.Secrets)
		}
		*in = want
		in.Secrets = nil // Not settable: ignored.
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	sameSettings(t, updated, want)
	if !updated.UpdatedAt.After(created.UpdatedAt) || !updated.CreatedAt.Equal(created.CreatedAt) {
		t.Fatalf("timestamps after update: created %v→%v, updated %v→%v",
			created.CreatedAt, updated.CreatedAt, created.UpdatedAt, updated.UpdatedAt)
	}
	if len(updated.Secrets) != 1 {
		t.Fatalf("Update changed secrets: %+v", updated.Secrets)
	}
	got, err := s.Integration(ctx, "upd")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, updated) {
		t.Fatalf("stored %+v, Update returned %+v", got, updated)
	}

	for _, tc := range []struct {
		name string
		id   string
		fn   func(*domain.Integration) error
		is   error
	}{
		{name: "fn error", id: "upd", fn: func(in *domain.Integration) error {
			in.OrganizationID = "changed"
			return errBoom
		}, is: errBoom},
		{name: "id change", id: "upd", fn: func(in *domain.Integration) error { in.ID = "other"; return nil }},
		{name: "missing", id: "nope", fn: func(*domain.Integration) error { return nil }, is: domain.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Update(ctx, tc.id, tc.fn)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("Update error = %v, want %v", err, tc.is)
			}
		})
	}
	after, err := s.Integration(ctx, "upd")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, updated) {
		t.Fatalf("failed updates changed the row: %+v", after)
	}
}

var errBoom = errors.New("boom")

func TestIntegrationStoreSecretsAreSealed(t *testing.T) {
	t.Parallel()
	pool := migratedTestSchema(t, nil)
	ctx := testContext(t)
	s := NewIntegrationStore(pool, testBox(t, 1))
	const secret = "whsec_plain-text-must-not-be-stored"
	if _, err := s.Create(ctx, domain.Integration{ID: "sealed", OrganizationID: "o"}, secret); err != nil {
		t.Fatal(err)
	}
	var keyID string
	var raw []byte
	if err := pool.QueryRow(ctx, `SELECT key_id, sealed FROM integration_secrets WHERE integration_id = 'sealed'`).Scan(&keyID, &raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte("plain-text")) {
		t.Fatalf("the secret is stored in plain text")
	}
	if !strings.HasPrefix(keyID, "k_") || len(keyID) != 10 {
		t.Fatalf("key id %q is not k_ and 8 hex digits", keyID)
	}
	var dump string
	if err := pool.QueryRow(ctx, `SELECT string_agg(t::text, ',') FROM integration_secrets t`).Scan(&dump); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, secret) {
		t.Fatalf("the secret appears in the table's text form")
	}

	in, err := s.Integration(ctx, "sealed")
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Secrets) != 1 || string(in.Secrets[0].Value) != secret || in.Secrets[0].KeyID != keyID {
		t.Fatalf("secrets = %+v", in.Secrets)
	}
	if !in.Secrets[0].NotAfter.IsZero() || !in.Secrets[0].ValidAt(time.Now()) {
		t.Fatalf("a new secret must be valid now and open-ended: %+v", in.Secrets[0])
	}

	// Another key cannot open them and says so instead of returning garbage.
	other := NewIntegrationStore(pool, testBox(t, 2))
	if _, err := other.Integration(ctx, "sealed"); !errors.Is(err, secretbox.ErrOpen) {
		t.Fatalf("Integration with the wrong key error = %v, want secretbox.ErrOpen", err)
	}
}

func TestIntegrationStoreRotateSecret(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	if _, err := s.Create(ctx, domain.Integration{ID: "rot", OrganizationID: "o"}, "old"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond).Add(time.Minute)
	grace := time.Hour

	in, err := s.RotateSecret(ctx, "rot", "new", grace, now)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	byValue := secretsByValue(t, in)
	oldSec, newSec := byValue["old"], byValue["new"]
	if !oldSec.NotAfter.Equal(now.Add(grace)) {
		t.Fatalf("old secret ends %v, want now+grace %v", oldSec.NotAfter, now.Add(grace))
	}
	if !newSec.NotBefore.Equal(now) || !newSec.NotAfter.IsZero() {
		t.Fatalf("new secret window %v..%v, want %v..open", newSec.NotBefore, newSec.NotAfter, now)
	}
	if newSec.KeyID == oldSec.KeyID {
		t.Fatalf("both secrets have key id %s", newSec.KeyID)
	}
	if in.Secrets[0].KeyID != newSec.KeyID {
		t.Fatalf("secrets are not newest first: %+v", in.Secrets)
	}
	for _, tc := range []struct {
		name         string
		at           time.Time
		oldOK, newOK bool
	}{
		{name: "at rotation", at: now, oldOK: true, newOK: true},
		{name: "within grace", at: now.Add(grace - time.Second), oldOK: true, newOK: true},
		{name: "at grace end", at: now.Add(grace), oldOK: false, newOK: true},
		{name: "after grace", at: now.Add(2 * grace), oldOK: false, newOK: true},
		{name: "before rotation", at: now.Add(-time.Second), oldOK: true, newOK: false},
	} {
		if got := oldSec.ValidAt(tc.at); got != tc.oldOK {
			t.Errorf("%s: old ValidAt = %v, want %v", tc.name, got, tc.oldOK)
		}
		if got := newSec.ValidAt(tc.at); got != tc.newOK {
			t.Errorf("%s: new ValidAt = %v, want %v", tc.name, got, tc.newOK)
		}
	}

	// A second rotation with a longer grace never extends the old secret's
	// window, and shortens the previous "new" one.
	later := now.Add(time.Minute)
	in, err = s.RotateSecret(ctx, "rot", "newer", 10*grace, later)
	if err != nil {
		t.Fatalf("second RotateSecret: %v", err)
	}
	byValue = secretsByValue(t, in)
	if !byValue["old"].NotAfter.Equal(now.Add(grace)) {
		t.Fatalf("old secret's end moved to %v", byValue["old"].NotAfter)
	}
	if !byValue["new"].NotAfter.Equal(later.Add(10 * grace)) {
		t.Fatalf("new secret ends %v, want %v", byValue["new"].NotAfter, later.Add(10*grace))
	}
	if got := len(in.ValidSecrets(later)); got != 3 {
		t.Fatalf("%d secrets valid right after the second rotation, want 3", got)
	}

	// Rotating after the old secret expired prunes it.
	muchLater := now.Add(2 * grace)
	in, err = s.RotateSecret(ctx, "rot", "newest", 0, muchLater)
	if err != nil {
		t.Fatalf("third RotateSecret: %v", err)
	}
	byValue = secretsByValue(t, in)
	if _, ok := byValue["old"]; ok {
		t.Fatalf("expired secret kept: %+v", in.Secrets)
	}
	if valid := in.ValidSecrets(muchLater); len(valid) != 1 || string(valid[0].Value) != "newest" {
		t.Fatalf("with zero grace only the newest secret is valid, got %+v", valid)
	}

	if _, err := s.RotateSecret(ctx, "nope", "x", grace, now); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("RotateSecret(missing) error = %v, want ErrNotFound", err)
	}
	var verr *domain.ValidationError
	if _, err := s.RotateSecret(ctx, "rot", "", grace, now); !errors.As(err, &verr) {
		t.Fatalf("RotateSecret(empty) error = %v, want a ValidationError", err)
	}
}

func secretsByValue(t *testing.T, in domain.Integration) map[string]domain.Secret {
	t.Helper()
	out := make(map[string]domain.Secret, len(in.Secrets))
	for _, s := range in.Secrets {
		out[string(s.Value)] = s
	}
	if len(out) != len(in.Secrets) {
		t.Fatalf("duplicate secret values: %+v", in.Secrets)
	}
	return out
}

func TestIntegrationStoreListen(t *testing.T) {
	t.Parallel()
	appName := randomName(t, "listen_")
	pool := migratedTestSchema(t, map[string]string{"application_name": appName})
	s := NewIntegrationStore(pool, testBox(t, 3))
	ctx := testContext(t)
	id := randomName(t, "int_")
	if _, err := s.Create(ctx, domain.Integration{ID: id, OrganizationID: "o"}, ""); err != nil {
		t.Fatal(err)
	}

	got := make(chan string, 64)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Listen(lctx, func(id string) { got <- id }) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Listen returned %v after cancel, want nil", err)
		}
	})

	// waitFor drains notifications (other tests share the channel) until want.
	waitFor := func(want, what string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case id := <-got:
				if id == want {
					return
				}
			case err := <-done:
				t.Fatalf("Listen ended early: %v", err)
			case <-timeout:
				t.Fatalf("no %s notification", what)
			}
		}
	}
	waitFor("", "listening")

	if _, err := s.Update(ctx, id, func(in *domain.Integration) error { in.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(id, "Update")
	if _, err := s.RotateSecret(ctx, id, "x", time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(id, "RotateSecret")

	// Kill the listening connection: Listen reconnects and says "invalidate
	// everything", then keeps delivering.
	var killed int
	err := pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1 AND query ILIKE 'LISTEN%'`, appName).Scan(&killed)
	if err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening connections, want 1", killed)
	}
	waitFor("", "reconnect")
	if _, err := s.Update(ctx, id, func(in *domain.Integration) error { in.Active = true; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(id, "Update after reconnect")
}

func TestIntegrationStoreUpdateSerialises(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	if _, err := s.Create(ctx, domain.Integration{ID: "ctr", OrganizationID: "o"}, ""); err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := s.Update(ctx, "ctr", func(in *domain.Integration) error { in.SyncFrequency++; return nil })
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	in, err := s.Integration(ctx, "ctr")
	if err != nil {
		t.Fatal(err)
	}
	if in.SyncFrequency != n {
		t.Fatalf("after %d concurrent increments SyncFrequency = %d", n, in.SyncFrequency)
	}
}

// Settings and a new secret are saved together or not at all: a rotation
// that fails leaves the settings as they were, and settings that fail
// leave the secrets.
func TestIntegrationStoreUpdateRotatingIsAtomic(t *testing.T) {
	t.Parallel()
	s, ctx := newTestStore(t)
	if _, err := s.Create(ctx, domain.Integration{ID: "atom", OrganizationID: "o", Active: true, WebhookEnabled: true}, "old"); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	deactivate := func(in *domain.Integration) error {
		in.Active, in.WebhookEnabled = false, false
		return nil
	}
	unchanged := func(what string) {
		t.Helper()
		in, err := s.Integration(ctx, "atom")
		if err != nil {
			t.Fatal(err)
		}
		if !in.Active || !in.WebhookEnabled || len(in.Secrets) != 1 || string(in.Secrets[0].Value) != "old" {
			t.Fatalf("after %s: active %v, webhooks %v, secrets %+v; want it unchanged", what, in.Active, in.WebhookEnabled, in.Secrets)
		}
	}

	var verr *domain.ValidationError
	if _, err := s.UpdateRotating(ctx, "atom", deactivate, "", time.Hour, now); !errors.As(err, &verr) {
		t.Fatalf("UpdateRotating with an empty secret: %v, want a ValidationError", err)
	}
	unchanged("a failed rotation")
	refuse := errors.New("refused")
	if _, err := s.UpdateRotating(ctx, "atom", func(*domain.Integration) error { return refuse }, "new", time.Hour, now); !errors.Is(err, refuse) {
		t.Fatalf("UpdateRotating with failing settings: %v", err)
	}
	unchanged("failed settings")
	if _, err := s.UpdateRotating(ctx, "missing", deactivate, "new", time.Hour, now); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("UpdateRotating of a missing integration: %v, want ErrNotFound", err)
	}

	in, err := s.UpdateRotating(ctx, "atom", deactivate, "new", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	byValue := secretsByValue(t, in)
	if in.Active || in.WebhookEnabled || !byValue["old"].NotAfter.Equal(now.Add(time.Hour)) || !byValue["new"].NotBefore.Equal(now) {
		t.Fatalf("after UpdateRotating: active %v, webhooks %v, secrets %+v", in.Active, in.WebhookEnabled, in.Secrets)
	}
}
