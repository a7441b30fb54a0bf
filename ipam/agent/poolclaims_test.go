package agent

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func poolClaim(addr, pod, ownerKind, owner string) *v2beta1.SpiderIPClaim {
	return v2beta1.NewClaim(netip.MustParseAddr(addr), v2beta1.IPClaimSpec{Pool: "p", PodNamespace: "ns", PodName: pod,
		PodUID: "u-" + pod, OwnerKind: ownerKind, OwnerName: owner, Node: "elsewhere"})
}

func TestPoolStoreKeepsNamesAndTheKeysOfInheritableClaims(t *testing.T) {
	m := NewMetrics("test")
	var events []string
	p := newPoolClaims(nil, m, func(old, cur *v2beta1.SpiderIPClaim) {
		switch {
		case cur != nil:
			events = append(events, "+"+cur.Spec.Address+"@"+cur.Spec.Pool)
		case old != nil:
			events = append(events, "-"+old.Spec.Address+"@"+old.Spec.Pool)
		}
	}, func(string) {})
	w := &poolWatch{pool: "p", cancel: func() {}, count: m.WatchedClaims, synced: make(chan struct{}), claims: map[string]*claimRef{}, heldBy: map[string]map[string]struct{}{}}
	p.watches["p"] = w
	st := &poolStore{w: w, observe: p.observe}

	// The first list: a ReplicaSet pod's claim, a StatefulSet replica's
	// and a virtual machine's.
	if err := st.Replace([]any{
		poolClaim("10.0.0.1", "web-abc", "ReplicaSet", "web-7d9"),
		poolClaim("10.0.0.2", "db-0", "StatefulSet", "db"),
		poolClaim("10.0.0.3", "virt-launcher-vm1-x", "VirtualMachineInstance", "vm1"),
	}, "1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.synced:
	default:
		t.Fatal("the watch is not synced after its first list")
	}
	slices.Sort(events)
	if want := []string{"+10.0.0.1@p", "+10.0.0.2@p", "+10.0.0.3@p"}; !slices.Equal(events, want) {
		t.Fatalf("events after the first list = %v, want %v", events, want)
	}
	if got := testutil.ToFloat64(m.WatchedClaims); got != 3 {
		t.Fatalf("watched claims = %v, want 3", got)
	}
	if w.claims["10.0.0.1"] != nil {
		t.Fatalf("a ReplicaSet pod's claim keeps more than its name: %+v", w.claims["10.0.0.1"])
	}
	if got := p.heldBy("ns/db-0", false); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("claims of pod ns/db-0 = %v", got)
	}
	if got := p.heldBy("ns/VirtualMachineInstance/vm1", true); !slices.Equal(got, []string{"10.0.0.3"}) {
		t.Fatalf("claims of owner vm1 = %v", got)
	}
	if got := p.heldBy("ns/web-abc", false); len(got) != 0 {
		t.Fatalf("a ReplicaSet pod's claim is indexed: %v", got)
	}
	stubs, err := p.byPool(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, c := range stubs {
		addrs = append(addrs, c.Name+"="+c.Spec.Address)
	}
	slices.Sort(addrs)
	if want := []string{"10.0.0.1=10.0.0.1", "10.0.0.2=10.0.0.2", "10.0.0.3=10.0.0.3"}; !slices.Equal(addrs, want) {
		t.Fatalf("byPool = %v, want %v", addrs, want)
	}

	// An update re-binds the replica's claim to a Deployment pod: its
	// keys go; no event (the address is still taken).
	events = nil
	if err := st.Update(poolClaim("10.0.0.2", "api-x", "ReplicaSet", "api-5f")); err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 || len(p.heldBy("ns/db-0", false)) != 0 {
		t.Fatalf("after the update: events %v, claims of ns/db-0 %v", events, p.heldBy("ns/db-0", false))
	}
	// A delete seen as a tombstone, then a re-list without 10.0.0.3 and
	// with a new claim.
	if err := st.Delete(toolscache.DeletedFinalStateUnknown{Key: "10.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := st.Replace([]any{poolClaim("10.0.0.2", "api-x", "ReplicaSet", "api-5f"), poolClaim("10.0.0.4", "db-1", "StatefulSet", "db")}, "2"); err != nil {
		t.Fatal(err)
	}
	slices.Sort(events)
	if want := []string{"+10.0.0.4@p", "-10.0.0.1@p", "-10.0.0.3@p"}; !slices.Equal(events, want) {
		t.Fatalf("events = %v, want %v", events, want)
	}
	if got := p.heldBy("ns/VirtualMachineInstance/vm1", true); len(got) != 0 {
		t.Fatalf("a claim gone with the re-list is still indexed: %v", got)
	}
	if got := testutil.ToFloat64(m.WatchedClaims); got != 2 {
		t.Fatalf("watched claims = %v, want 2", got)
	}

	// Stopping the watch forgets its claims and drops the engine's state;
	// what the watch still delivers afterwards is ignored.
	var dropped []string
	p.dropped = func(pool string) { dropped = append(dropped, pool) }
	p.retain(map[string]bool{})
	events = nil
	if err := st.Add(poolClaim("10.0.0.9", "late", "", "")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dropped, []string{"p"}) || len(events) != 0 || testutil.ToFloat64(m.WatchedClaims) != 0 || testutil.ToFloat64(m.WatchedPools) != 0 {
		t.Fatalf("after stopping: dropped %v, events %v, watched claims %v, pools %v", dropped, events,
			testutil.ToFloat64(m.WatchedClaims), testutil.ToFloat64(m.WatchedPools))
	}
}

func TestPoolStoreRefusesOtherObjects(t *testing.T) {
	m := NewMetrics("test")
	w := &poolWatch{pool: "p", cancel: func() {}, count: m.WatchedClaims, synced: make(chan struct{}), claims: map[string]*claimRef{}, heldBy: map[string]map[string]struct{}{}}
	st := &poolStore{w: w, observe: func(_, _ *v2beta1.SpiderIPClaim) {}}
	if err := st.Add(&v2beta1.SpiderIPPool{}); err == nil {
		t.Fatal("a pool in the claim store gave no error")
	}
	if err := st.Delete("x"); err == nil {
		t.Fatal("a string in the claim store gave no error")
	}
}

// The initial stream reaches the store through its Transformer: compact
// keys carry the same names and pod/owner keys as the claims.
func TestPoolStoreTakesTheInitialStreamCompact(t *testing.T) {
	m := NewMetrics("test")
	p := newPoolClaims(nil, m, func(_, _ *v2beta1.SpiderIPClaim) {}, func(string) {})
	w := &poolWatch{pool: "p", cancel: func() {}, count: m.WatchedClaims, synced: make(chan struct{}), claims: map[string]*claimRef{}, heldBy: map[string]map[string]struct{}{}}
	p.watches["p"] = w
	st := &poolStore{w: w, observe: p.observe}
	tr := st.Transformer()
	var stream []any
	for _, c := range []*v2beta1.SpiderIPClaim{
		poolClaim("10.0.0.1", "web-abc", "ReplicaSet", "web-7d9"),
		poolClaim("10.0.0.2", "db-0", "StatefulSet", "db"),
		v2beta1.NewClaim(netip.MustParseAddr("fd00::2"), v2beta1.IPClaimSpec{Pool: "p", PodNamespace: "ns", PodName: "db-1", OwnerKind: "StatefulSet", OwnerName: "db"}),
	} {
		obj, err := tr(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := obj.(toolscache.ExplicitKey); !ok {
			t.Fatalf("transformed claim is a %T, want a compact key", obj)
		}
		stream = append(stream, obj)
	}
	if err := st.Replace(stream, "5"); err != nil {
		t.Fatal(err)
	}
	if got := p.heldBy("ns/StatefulSet/db", true); !slices.Equal(got, []string{"10.0.0.2", v2beta1.ClaimName(netip.MustParseAddr("fd00::2"))}) {
		t.Fatalf("claims of StatefulSet db = %v", got)
	}
	if w.claims["10.0.0.1"] != nil || len(w.claims) != 3 {
		t.Fatalf("kept %v", w.claims)
	}
	stubs, err := p.byPool(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, c := range stubs {
		addrs = append(addrs, c.Spec.Address)
	}
	slices.Sort(addrs)
	if want := []string{"10.0.0.1", "10.0.0.2", "fd00::2"}; !slices.Equal(addrs, want) {
		t.Fatalf("addresses = %v, want %v", addrs, want)
	}
}
