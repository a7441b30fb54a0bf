package agent

import (
	"strconv"
	"sync"
	"time"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/store"
)

// overlay remembers this agent's own recent claim writes until the informer
// has delivered them, so a request that follows a write (a retried ADD, the
// DEL right after an ADD) sees it even when the cache lags.
type overlay struct {
	mu      sync.Mutex
	entries map[string]overlayEntry // claim name -> entry
	byPod   map[string]map[string]struct{}
	ttl     time.Duration
}

type overlayEntry struct {
	claim   *v2beta1.SpiderIPClaim // nil: deleted
	podKey  string
	rv      uint64 // resourceVersion written (or of the deleted object)
	expires time.Time
}

func newOverlay() *overlay {
	return &overlay{entries: map[string]overlayEntry{}, byPod: map[string]map[string]struct{}{}, ttl: time.Minute}
}

// put records a created or updated claim.
func (o *overlay) put(c *v2beta1.SpiderIPClaim) {
	o.set(c.Name, c.DeepCopy(), store.ClaimPodKey(c), parseRV(c.ResourceVersion))
}

// deleted records that the claim c was deleted.
func (o *overlay) deleted(c *v2beta1.SpiderIPClaim) {
	o.set(c.Name, nil, store.ClaimPodKey(c), parseRV(c.ResourceVersion))
}

// parseRV reads an etcd-backed resourceVersion (a revision number); 0 when
// it is not a number, in which case only equality and expiry apply.
func parseRV(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func (o *overlay) set(name string, c *v2beta1.SpiderIPClaim, podKey string, rv uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dropLocked(name)
	o.entries[name] = overlayEntry{claim: c, podKey: podKey, rv: rv, expires: time.Now().Add(o.ttl)}
	if podKey != "" {
		if o.byPod[podKey] == nil {
			o.byPod[podKey] = map[string]struct{}{}
		}
		o.byPod[podKey][name] = struct{}{}
	}
}

func (o *overlay) dropLocked(name string) {
	e, ok := o.entries[name]
	if !ok {
		return
	}
	delete(o.entries, name)
	if m := o.byPod[e.podKey]; m != nil {
		delete(m, name)
		if len(m) == 0 {
			delete(o.byPod, e.podKey)
		}
	}
}

// observed is called for every informer event: once the cache holds the
// version we wrote (or the deletion), the overlay entry is no longer needed.
func (o *overlay) observed(name string, c *v2beta1.SpiderIPClaim) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.entries[name]
	if !ok {
		return
	}
	var rv uint64
	if c != nil {
		rv = parseRV(c.ResourceVersion)
	}
	switch {
	case e.claim == nil && c == nil:
		o.dropLocked(name)
	case e.claim != nil && c != nil && c.ResourceVersion == e.claim.ResourceVersion:
		o.dropLocked(name)
	case c != nil && rv != 0 && e.rv != 0 && rv > e.rv:
		// The cache already holds a newer object than the one we wrote.
		o.dropLocked(name)
	case time.Now().After(e.expires):
		o.dropLocked(name)
	}
}

// gone is called when the informer drops old: deleted, or re-bound to a
// pod of another node (the informer follows this node's claims only). An
// entry for a write the dropped object already includes (its
// resourceVersion is not older) is no longer needed: the informer will not
// deliver that claim again while it is elsewhere.
func (o *overlay) gone(old *v2beta1.SpiderIPClaim) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.entries[old.Name]
	if !ok {
		return
	}
	rv := parseRV(old.ResourceVersion)
	switch {
	case e.claim == nil:
		o.dropLocked(old.Name)
	case rv != 0 && e.rv != 0 && rv >= e.rv:
		o.dropLocked(old.Name)
	case old.ResourceVersion == e.claim.ResourceVersion:
		o.dropLocked(old.Name)
	case time.Now().After(e.expires):
		o.dropLocked(old.Name)
	}
}

// live returns the entry of name unless it expired (the informer has long
// caught up with a write that old).
func (o *overlay) live(name string) (overlayEntry, bool) {
	e, ok := o.entries[name]
	if ok && time.Now().After(e.expires) {
		return overlayEntry{}, false
	}
	return e, ok
}

// merge applies the overlay to the cached claims of podKey.
func (o *overlay) merge(podKey string, cached []*v2beta1.SpiderIPClaim) []*v2beta1.SpiderIPClaim {
	o.mu.Lock()
	defer o.mu.Unlock()
	names := o.byPod[podKey]
	out := make([]*v2beta1.SpiderIPClaim, 0, len(cached)+len(names))
	seen := map[string]bool{}
	for _, c := range cached {
		if e, ok := o.live(c.Name); ok {
			seen[c.Name] = true
			if e.claim != nil && store.ClaimPodKey(e.claim) == podKey {
				out = append(out, e.claim)
			}
			continue
		}
		out = append(out, c)
	}
	for name := range names {
		if seen[name] {
			continue
		}
		if e, ok := o.live(name); ok && e.claim != nil && store.ClaimPodKey(e.claim) == podKey {
			out = append(out, e.claim)
		}
	}
	return out
}

// get applies the overlay to one cached claim (nil when absent).
func (o *overlay) get(name string, cached *v2beta1.SpiderIPClaim) *v2beta1.SpiderIPClaim {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e, ok := o.live(name); ok {
		return e.claim
	}
	return cached
}

// sweep drops expired entries.
func (o *overlay) sweep() {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	for name, e := range o.entries {
		if now.After(e.expires) {
			o.dropLocked(name)
		}
	}
}
