package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func testClaim(addr, pod, rv string) *v2beta1.SpiderIPClaim {
	c := v2beta1.NewClaim(netip.MustParseAddr(addr), v2beta1.IPClaimSpec{Pool: "p", PodNamespace: "ns", PodName: pod, PodUID: "u-" + pod})
	c.ResourceVersion = rv
	return c
}

func names(cs []*v2beta1.SpiderIPClaim) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+"@"+c.Spec.PodName)
	}
	return out
}

func TestOverlayShowsOwnWritesUntilTheCacheCatchesUp(t *testing.T) {
	o := newOverlay()
	created := testClaim("10.0.0.1", "a", "10")
	o.put(created)
	// The cache has not seen the create yet: the overlay adds it.
	if got := names(o.merge("ns/a", nil)); len(got) != 1 || got[0] != "10.0.0.1@a" {
		t.Fatalf("after create: %v", got)
	}
	// An older event (the informer lags) does not drop the entry.
	o.observed(created.Name, testClaim("10.0.0.1", "old", "5"))
	if got := names(o.merge("ns/a", []*v2beta1.SpiderIPClaim{})); len(got) != 1 {
		t.Fatalf("stale event dropped the entry: %v", got)
	}
	// The cache delivers our version: entry dropped, cache answers.
	o.observed(created.Name, created)
	if got := names(o.merge("ns/a", nil)); len(got) != 0 {
		t.Fatalf("entry kept after the cache caught up: %v", got)
	}

	// A deletion hides the cached claim until the informer delivers it.
	cached := testClaim("10.0.0.2", "b", "20")
	o.deleted(cached)
	if got := o.merge("ns/b", []*v2beta1.SpiderIPClaim{cached}); len(got) != 0 {
		t.Fatalf("deleted claim still visible: %v", names(got))
	}
	o.observed(cached.Name, nil)
	if got := o.merge("ns/b", []*v2beta1.SpiderIPClaim{cached}); len(got) != 1 {
		t.Fatalf("tombstone kept after the delete event: %v", names(got))
	}

	// A claim re-bound to another pod leaves the old pod's view.
	moved := testClaim("10.0.0.3", "d", "31")
	o.put(moved)
	if got := o.merge("ns/c", []*v2beta1.SpiderIPClaim{testClaim("10.0.0.3", "c", "30")}); len(got) != 0 {
		t.Fatalf("re-bound claim still listed for the old pod: %v", names(got))
	}
	// A newer object in the cache wins over our write.
	o.observed(moved.Name, testClaim("10.0.0.3", "e", "40"))
	if got := o.get(moved.Name, nil); got != nil {
		t.Fatalf("overlay entry survived a newer cache object: %v", got.Spec.PodName)
	}
}

func TestKeyedLocksSerialisePerKey(t *testing.T) {
	var k keyedLocks
	unlockA := k.lock("a")
	done := make(chan struct{})
	go func() {
		unlock := k.lock("a")
		unlock()
		close(done)
	}()
	unlockB := k.lock("b") // another key is not blocked
	unlockB()
	select {
	case <-done:
		t.Fatal("second holder of the same key did not wait")
	default:
	}
	unlockA()
	<-done
	if len(k.locks) != 0 {
		t.Fatalf("locks leaked: %v", k.locks)
	}
}

// The informer follows this node's claims only: a claim re-bound to a pod
// of another node leaves it as a deletion, and is never delivered again
// while it is there. Our earlier write of it must not outlive that.
func TestOverlayForgetsAClaimThatLeftTheNode(t *testing.T) {
	o := newOverlay()
	ours := testClaim("10.0.0.4", "web-2", "50")
	o.put(ours) // the informer delivered rv 50 before this put
	// Another node re-binds it (rv 60): this node's informer drops it.
	o.gone(testClaim("10.0.0.4", "web-2", "60"))
	if got := o.merge("ns/web-2", nil); len(got) != 0 {
		t.Fatalf("a claim that left the node is still listed: %v", names(got))
	}
	// A late deletion of an older incarnation keeps a newer write.
	newer := testClaim("10.0.0.5", "web-3", "80")
	o.put(newer)
	o.gone(testClaim("10.0.0.5", "web-3", "70"))
	if got := names(o.merge("ns/web-3", nil)); len(got) != 1 {
		t.Fatalf("an older deletion dropped a newer write: %v", got)
	}
	// An expired entry is not served, even without an event.
	o.ttl = -time.Second
	o.put(testClaim("10.0.0.6", "web-4", "90"))
	if got := o.merge("ns/web-4", nil); len(got) != 0 {
		t.Fatalf("an expired entry is served: %v", names(got))
	}
}
