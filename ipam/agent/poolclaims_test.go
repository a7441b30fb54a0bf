package agent

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func poolClaim(pool, addr, pod, ownerKind, owner string) *v2beta1.SpiderIPClaim {
	c := v2beta1.NewClaim(netip.MustParseAddr(addr), v2beta1.IPClaimSpec{Pool: pool, PodNamespace: "ns", PodName: pod,
		PodUID: "u-" + pod, OwnerKind: ownerKind, OwnerName: owner, Node: "elsewhere"})
	c.SyncLabels()
	return c
}

// testPoolClaims has a shared source that is fed by hand; watches of their
// own go to an address where nothing answers.
func testPoolClaims(t *testing.T, restricted ...string) (*poolClaims, *claimStore, *[]string, *[]string) {
	t.Helper()
	w, err := client.NewWithWatch(&rest.Config{Host: "http://127.0.0.1:1"}, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var events, dropped []string
	p := newPoolClaims(w, NewMetrics("test"), func(old, cur *v2beta1.SpiderIPClaim) {
		switch {
		case cur != nil:
			events = append(events, "+"+cur.Spec.Address+"@"+cur.Spec.Pool)
		case old != nil:
			events = append(events, "-"+old.Spec.Address+"@"+old.Spec.Pool)
		}
	}, func(pool string) { dropped = append(dropped, pool) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p.ctx = ctx
	p.restricted = map[string]bool{}
	for _, r := range restricted {
		p.restricted[r] = true
	}
	p.shared = &claimSource{cancel: func() {}, synced: make(chan struct{})}
	return p, &claimStore{p: p, src: p.shared}, &events, &dropped
}

func sorted(v []string) []string {
	s := slices.Clone(v)
	slices.Sort(s)
	return s
}

func TestSharedWatchKeepsNamesAndTheKeysOfInheritableClaims(t *testing.T) {
	p, st, events, dropped := testPoolClaims(t, "r")
	m := p.metrics
	if err := st.Replace([]any{
		poolClaim("a", "10.0.0.1", "web-abc", "ReplicaSet", "web-7d9"),
		poolClaim("a", "10.0.0.2", "db-0", "StatefulSet", "db"),
		poolClaim("b", "10.0.1.3", "virt-launcher-vm1-x", "VirtualMachineInstance", "vm1"),
		poolClaim("r", "10.0.2.4", "x", "", ""), // a restricted pool has a watch of its own
	}, "1"); err != nil {
		t.Fatal(err)
	}
	if !p.shared.isSyncedForTest() {
		t.Fatal("the shared watch is not synced after its first list")
	}
	if got, want := sorted(*events), []string{"+10.0.0.1@a", "+10.0.0.2@a", "+10.0.1.3@b"}; !slices.Equal(got, want) {
		t.Fatalf("events after the first list = %v, want %v", got, want)
	}
	if got := testutil.ToFloat64(m.WatchedClaims); got != 3 {
		t.Fatalf("watched claims = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.WatchedPools); got != 2 {
		t.Fatalf("watched pools = %v, want 2", got)
	}
	if p.tables["a"].claims["10.0.0.1"] != nil {
		t.Fatalf("a ReplicaSet pod's claim keeps more than its name: %+v", p.tables["a"].claims["10.0.0.1"])
	}
	if got := p.heldBy("ns/db-0", false); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Fatalf("claims of pod ns/db-0 = %v", got)
	}
	if got := p.heldBy("ns/VirtualMachineInstance/vm1", true); !slices.Equal(got, []string{"10.0.1.3"}) {
		t.Fatalf("claims of owner vm1 = %v", got)
	}
	if got := p.heldBy("ns/web-abc", false); len(got) != 0 {
		t.Fatalf("a ReplicaSet pod's claim is indexed: %v", got)
	}
	stubs, err := p.byPool(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, c := range stubs {
		addrs = append(addrs, c.Name+"="+c.Spec.Address+"@"+c.Spec.Pool)
	}
	if want := []string{"10.0.0.1=10.0.0.1@a", "10.0.0.2=10.0.0.2@a"}; !slices.Equal(sorted(addrs), want) {
		t.Fatalf("byPool = %v, want %v", sorted(addrs), want)
	}

	// An update re-binds the replica's claim to a Deployment pod: its keys
	// go; no event (the address is still taken).
	*events = nil
	if err := st.Update(poolClaim("a", "10.0.0.2", "api-x", "ReplicaSet", "api-5f")); err != nil {
		t.Fatal(err)
	}
	if len(*events) != 0 || len(p.heldBy("ns/db-0", false)) != 0 {
		t.Fatalf("after the update: events %v, claims of ns/db-0 %v", *events, p.heldBy("ns/db-0", false))
	}
	// A delete seen as a tombstone, then a re-list without 10.0.1.3 and
	// with a new claim.
	if err := st.Delete(toolscache.DeletedFinalStateUnknown{Key: "10.0.0.1", Obj: compact(poolClaim("a", "10.0.0.1", "web-abc", "", ""))}); err != nil {
		t.Fatal(err)
	}
	if err := st.Replace([]any{poolClaim("a", "10.0.0.2", "api-x", "ReplicaSet", "api-5f"), poolClaim("a", "10.0.0.5", "db-1", "StatefulSet", "db")}, "2"); err != nil {
		t.Fatal(err)
	}
	if got, want := sorted(*events), []string{"+10.0.0.5@a", "-10.0.0.1@a", "-10.0.1.3@b"}; !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if got := p.heldBy("ns/VirtualMachineInstance/vm1", true); len(got) != 0 {
		t.Fatalf("a claim gone with the re-list is still indexed: %v", got)
	}
	if got := testutil.ToFloat64(m.WatchedClaims); got != 2 {
		t.Fatalf("watched claims = %v, want 2", got)
	}

	// Pool a may no longer be used: its claims are forgotten, the engine's
	// state dropped, and what the shared watch brings of it is ignored.
	*events = nil
	p.retain(map[string]bool{"b": true}, map[string]bool{"a": true, "b": true, "r": true})
	if err := st.Add(poolClaim("a", "10.0.0.9", "late", "", "")); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*dropped, []string{"a"}) || len(*events) != 0 || testutil.ToFloat64(m.WatchedClaims) != 0 || testutil.ToFloat64(m.WatchedPools) != 1 {
		t.Fatalf("after dropping a: dropped %v, events %v, watched claims %v, pools %v", *dropped, *events,
			testutil.ToFloat64(m.WatchedClaims), testutil.ToFloat64(m.WatchedPools))
	}
	// Once it may be used again, its claims (dropped on arrival) come
	// from a watch of its own; so do those of the restricted pool r.
	p.retain(map[string]bool{"a": true, "b": true, "r": true}, map[string]bool{"a": true, "b": true, "r": true})
	for _, pool := range []string{"a", "r"} {
		if src := p.own[pool]; src == nil || p.tables[pool].src != src {
			t.Fatalf("pool %s is not fed by a watch of its own", pool)
		}
	}
	if p.tables["b"].src != p.shared {
		t.Fatal("pool b left the shared watch")
	}
	if err := st.Add(poolClaim("a", "10.0.0.10", "other", "", "")); err != nil {
		t.Fatal(err)
	}
	if len(*events) != 0 {
		t.Fatalf("the shared watch fed a pool that has a watch of its own: %v", *events)
	}
}

// The initial stream reaches the store through its Transformer: compact
// keys carry the same names, pools and pod/owner keys as the claims.
func TestSharedWatchTakesTheInitialStreamCompact(t *testing.T) {
	p, st, events, _ := testPoolClaims(t)
	tr := st.Transformer()
	v6 := netip.MustParseAddr("fd00::2")
	var stream []any
	for _, c := range []*v2beta1.SpiderIPClaim{
		poolClaim("a", "10.0.0.1", "web-abc", "ReplicaSet", "web-7d9"),
		poolClaim("a", "10.0.0.2", "db-0", "StatefulSet", "db"),
		poolClaim("a6", v6.String(), "db-1", "StatefulSet", "db"),
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
	if got := p.heldBy("ns/StatefulSet/db", true); !slices.Equal(got, []string{"10.0.0.2", v2beta1.ClaimName(v6)}) {
		t.Fatalf("claims of StatefulSet db = %v", got)
	}
	if got, want := sorted(*events), []string{"+10.0.0.1@a", "+10.0.0.2@a", "+fd00::2@a6"}; !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if p.tables["a"].claims["10.0.0.1"] != nil || len(p.tables["a"].claims) != 2 {
		t.Fatalf("kept %v", p.tables["a"].claims)
	}
}

func TestClaimStoreRefusesOtherObjects(t *testing.T) {
	_, st, _, _ := testPoolClaims(t)
	if err := st.Add(&v2beta1.SpiderIPPool{}); err == nil {
		t.Fatal("a pool in the claim store gave no error")
	}
	if err := st.Delete(42); err == nil {
		t.Fatal("a number in the claim store gave no error")
	}
}

func TestSharedSelector(t *testing.T) {
	sel, err := sharedSelector(nil)
	if err != nil || sel.String() != "ipam.spidernet.io/pool" {
		t.Fatalf("selector without restricted pools = %v, %v", sel, err)
	}
	sel, err = sharedSelector(map[string]bool{"zone-b": true, "zone-a": true})
	if err != nil || sel.String() != "ipam.spidernet.io/pool notin (zone-a,zone-b)" {
		t.Fatalf("selector = %v, %v", sel, err)
	}
}

func (s *claimSource) isSyncedForTest() bool {
	select {
	case <-s.synced:
		return true
	default:
		return false
	}
}
