package kafka

import (
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/roisystems/softprohub/domain"
)

// One Admin answers end offsets and lag for many callers at once, and a
// group's lag counts what it has not committed; a topic it never committed
// on counts every record.
func TestAdminEndOffsetsAndLag(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "", 0)
	ensureTopics(t, b.Addrs())
	p := newProducer(t, b.Addrs(), 5*time.Second)
	in := randomID("int")
	var last int64
	var part int32
	for range 7 {
		pos := mustAppend(t, p, envelope(in, domain.ContactUpdated, ""))
		last, part = pos.Offset, pos.Partition
	}
	for range 3 {
		mustAppend(t, p, envelope(in, domain.TaskCreated, ""))
	}
	// Group "contacts-g" committed all but the last two contacts.
	adm, err := newAdmin(b.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	var commit kadm.Offsets
	commit.AddOffset(domain.TopicContacts, part, last-1, -1)
	if _, err := adm.CommitOffsets(testContext(t), "contacts-g", commit); err != nil {
		t.Fatalf("commit: %v", err)
	}

	a, err := NewAdmin(b.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	groups := map[string]string{domain.TopicContacts: "contacts-g", domain.TopicTasks: "tasks-g"}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			lag, err := a.Lag(testContext(t), groups)
			if err != nil {
				t.Errorf("lag: %v", err)
				return
			}
			if lag[domain.TopicContacts] != 2 || lag[domain.TopicTasks] != 3 {
				t.Errorf("lag = %v, want contacts 2, tasks 3", lag)
			}
			offs, err := a.EndOffsets(testContext(t), domain.TopicContacts, domain.TopicTasks)
			if err != nil {
				t.Errorf("end offsets: %v", err)
				return
			}
			if offs.Total(domain.TopicContacts) != 7 || offs.Total(domain.TopicTasks) != 3 {
				t.Errorf("end offsets = %v, want 7 contacts and 3 tasks", offs)
			}
		})
	}
	wg.Wait()
	if _, err := a.EndOffsets(testContext(t), randomID("absent")); err == nil {
		t.Error("end offsets of a missing topic: no error")
	}
}
