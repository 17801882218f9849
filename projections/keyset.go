package projections

import (
	"sync"

	"github.com/bits-and-blooms/bloom/v3"
)

// KeySet remembers the audit and entity keys a build has queried in a
// store that started empty, so later batches skip looking up keys that are
// certainly not stored: in a rebuild most events and many entities are new,
// and their lookups were a sixth of each transaction. It is a Bloom filter:
// a key it never saw may still answer "maybe" (about 1 % of them while the
// set holds no more keys than it was sized for, more beyond); such keys are
// looked up as before, so a false "maybe" costs a probe, never a wrong
// result. Its memory is fixed when it is made and capped at maxKeySetBits,
// whatever the size of the log.
//
// Keys are added when they are queried, before the transaction runs: a key
// of a transaction that then fails stays in the set and is looked up again,
// which is safe.
type KeySet struct {
	mu  sync.Mutex
	f   *bloom.BloomFilter
	buf []byte
}

// maxKeySetBits caps a KeySet at 64 MiB.
const maxKeySetBits = 1 << 29

// NewKeySet returns a set sized for about expected keys at a 1 % false
// positive rate, within maxKeySetBits.
func NewKeySet(expected int64) *KeySet {
	n := uint(max(expected, 1<<16))
	m, k := bloom.EstimateParameters(n, 0.01)
	if m > maxKeySetBits {
		m = maxKeySetBits
	}
	return &KeySet{f: bloom.New(m, k)}
}

// narrow removes from q the audit and entity keys the set has certainly
// never seen, and adds every key of q to the set.
func (s *KeySet) narrow(q *Query) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events := q.Events[:0]
	for _, k := range q.Events {
		if s.testAndAdd('e', k.IntegrationID, "", k.EventID) {
			events = append(events, k)
		}
	}
	q.Events = events
	entities := q.Entities[:0]
	for _, k := range q.Entities {
		if s.testAndAdd('n', k.IntegrationID, string(k.Kind), k.ID) {
			entities = append(entities, k)
		}
	}
	q.Entities = entities
}

// add adds an audit key.
func (s *KeySet) add(k EventKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.testAndAdd('e', k.IntegrationID, "", k.EventID)
}

// testAndAdd reports whether the key may have been added before, and adds
// it. Parts are joined with NUL bytes: two keys that join alike only make
// each other look present, which costs a lookup.
func (s *KeySet) testAndAdd(space byte, integration, kind, id string) bool {
	b := append(s.buf[:0], space, 0)
	b = append(b, integration...)
	b = append(b, 0)
	b = append(b, kind...)
	b = append(b, 0)
	b = append(b, id...)
	s.buf = b
	return s.f.TestAndAdd(b)
}
