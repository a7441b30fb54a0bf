package allocator

import (
	"net/netip"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Quarantine holds addresses released after a conflict report; the
// engine skips them until they expire. Entries belong to the pool object
// (UID) the address was released from: a pool deleted and created again
// starts clean. It is per agent (per node) and in memory: a restarted agent
// offers the addresses again, and the coordinator refuses them again if the
// conflict persists.
type Quarantine struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	until map[quarantined]time.Time
}

type quarantined struct {
	pool types.UID
	addr netip.Addr
}

// NewQuarantine returns an empty quarantine of period ttl.
func NewQuarantine(ttl time.Duration) *Quarantine {
	return &Quarantine{ttl: ttl, now: time.Now, until: map[quarantined]time.Time{}}
}

// Add quarantines addr of pool (again) for the full period and returns its
// end.
func (q *Quarantine) Add(pool types.UID, addr netip.Addr) time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	q.expire(now)
	k := quarantined{pool, addr}
	q.until[k] = now.Add(q.ttl)
	return q.until[k]
}

// Has reports whether addr of pool is quarantined. It is called under a
// pool's mutex on every reservation, so the common case (empty) is one map
// read.
func (q *Quarantine) Has(pool types.UID, addr netip.Addr) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.until) == 0 {
		return false
	}
	k := quarantined{pool, addr}
	t, ok := q.until[k]
	if !ok {
		return false
	}
	if !q.now().Before(t) {
		delete(q.until, k)
		return false
	}
	return true
}

// Count returns how many addresses of pool are quarantined and satisfy in.
func (q *Quarantine) Count(pool types.UID, in func(netip.Addr) bool) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.expire(q.now())
	n := 0
	for k := range q.until {
		if k.pool == pool && in(k.addr) {
			n++
		}
	}
	return n
}

func (q *Quarantine) expire(now time.Time) {
	for a, t := range q.until {
		if !now.Before(t) {
			delete(q.until, a)
		}
	}
}
