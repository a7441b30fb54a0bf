package allocator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/ranges"
)

var ctx = context.Background()

func pool(name, subnet string, ips ...string) *v2beta1.SpiderIPPool {
	return &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: subnet, IPs: ips}}
}

// fixture is an engine over a Memory with a v4 pool "v4" (10.0.0.10-12)
// and a v6 pool "v6" (fd00::10-12), counting what the hooks report.
type fixture struct {
	mem                        *Memory
	e                          *Engine
	allocated, released, taken atomic.Int64
	rebound                    atomic.Int64
}

func newFixture(t *testing.T, sts bool) *fixture {
	t.Helper()
	f := &fixture{mem: NewMemory()}
	f.mem.SetPool(pool("v4", "10.0.0.0/24", "10.0.0.10-10.0.0.12"))
	f.mem.SetPool(pool("v6", "fd00::/64", "fd00::10-fd00::12"))
	f.e = New(Config{Node: "node1", EnableStatefulSet: sts, Quarantine: 600e9, Hooks: Hooks{
		Allocated: func(*v2beta1.SpiderIPClaim) { f.allocated.Add(1) },
		Released:  func(*v2beta1.SpiderIPClaim) { f.released.Add(1) },
		Taken:     func() { f.taken.Add(1) },
		Rebound: func(old, cur *v2beta1.SpiderIPClaim) {
			if old.Spec.PodUID == cur.Spec.PodUID || old.Spec.Address != cur.Spec.Address {
				t.Errorf("Rebound(%s of %s, %s of %s): not a re-bind", old.Spec.Address, old.Spec.PodUID, cur.Spec.Address, cur.Spec.PodUID)
			}
			f.rebound.Add(1)
		},
	}}, f.mem, f.mem)
	return f
}

func request(name, uid, container string, families ...Family) *Request {
	if len(families) == 0 {
		families = []Family{{Family: ranges.V4, Pools: []string{"v4"}}, {Family: ranges.V6, Pools: []string{"v6"}}}
	}
	return &Request{Holder: Holder{Namespace: "ns", Name: name, UID: uid}, ContainerID: container, Interface: "eth0", Families: families}
}

func replica(name, uid, container string) *Request {
	r := request(name, uid, container)
	r.Holder.OwnerKind, r.Holder.OwnerName = "StatefulSet", "web"
	return r
}

func addrs(claims []*v2beta1.SpiderIPClaim) []string {
	var out []string
	for _, c := range claims {
		out = append(out, c.Spec.Address)
	}
	return out
}

func mustAllocate(t *testing.T, f *fixture, r *Request) []*v2beta1.SpiderIPClaim {
	t.Helper()
	got, err := f.e.Allocate(ctx, r)
	if err != nil {
		t.Fatalf("allocate for %s/%s: %v", r.Holder.Name, r.Holder.UID, err)
	}
	return got
}

func TestAllocateOneAddressPerFamilyRecordedForTheHolder(t *testing.T) {
	f := newFixture(t, false)
	got := mustAllocate(t, f, request("app", "u1", "c1"))
	if len(got) != 2 || got[0].Spec.IPVersion != 4 || got[1].Spec.IPVersion != 6 {
		t.Fatalf("got %v, want an IPv4 then an IPv6 address", addrs(got))
	}
	stored := f.mem.Claims()
	if len(stored) != 2 {
		t.Fatalf("%d claims stored, want 2", len(stored))
	}
	for _, c := range stored {
		s := c.Spec
		if s.PodNamespace != "ns" || s.PodName != "app" || s.PodUID != "u1" || s.ContainerID != "c1" || s.Interface != "eth0" || s.Node != "node1" ||
			c.Name != v2beta1.ClaimName(netip.MustParseAddr(s.Address)) || c.Labels[v2beta1.LabelPool] != s.Pool {
			t.Errorf("claim %s: %+v", c.Name, s)
		}
	}
	if f.allocated.Load() != 2 {
		t.Errorf("allocated hook %d, want 2", f.allocated.Load())
	}
}

func TestAllocateKeepsTheHolderAddressesAcrossRetriesAndSandboxes(t *testing.T) {
	f := newFixture(t, false)
	first := addrs(mustAllocate(t, f, request("app", "u1", "c1")))
	again := addrs(mustAllocate(t, f, request("app", "u1", "c1")))
	restarted := mustAllocate(t, f, request("app", "u1", "c2"))
	if strings.Join(again, ",") != strings.Join(first, ",") || strings.Join(addrs(restarted), ",") != strings.Join(first, ",") {
		t.Fatalf("first %v, retry %v, new sandbox %v: want the same addresses", first, again, addrs(restarted))
	}
	for _, c := range f.mem.Claims() {
		if c.Spec.ContainerID != "c2" {
			t.Errorf("claim %s still names sandbox %q, want c2", c.Name, c.Spec.ContainerID)
		}
	}
	if n := len(f.mem.Claims()); n != 2 || f.allocated.Load() != 2 {
		t.Fatalf("%d claims, %d allocations: want 2 and 2 (re-binding a sandbox allocates nothing)", n, f.allocated.Load())
	}
}

func TestAllocateReleasesTheClaimsOfAnEarlierPodOfTheSameName(t *testing.T) {
	f := newFixture(t, false)
	mustAllocate(t, f, request("app", "u1", "c1"))
	got := mustAllocate(t, f, request("app", "u2", "c2"))
	stored := f.mem.Claims()
	if len(stored) != 2 || f.released.Load() != 2 {
		t.Fatalf("%d claims left, %d released: want the 2 of u1 released and 2 for u2", len(stored), f.released.Load())
	}
	for _, c := range stored {
		if c.Spec.PodUID != "u2" {
			t.Errorf("claim %s still held by %s", c.Name, c.Spec.PodUID)
		}
	}
	if len(got) != 2 {
		t.Fatalf("got %v", addrs(got))
	}
}

func TestStatefulSetReplicaInheritsWhileItsPoolIsACandidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sts      bool
		families []Family
		inherits bool
	}{
		{"StatefulSet support on", true, nil, true},
		{"StatefulSet support off", false, nil, false},
		{"the pool is no longer a candidate", true, []Family{{Family: ranges.V4, Pools: []string{"v4b"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.sts)
			f.mem.SetPool(pool("v4b", "10.1.0.0/24", "10.1.0.10-10.1.0.12"))
			first := mustAllocate(t, f, replica("web-0", "old", "c1"))
			next := replica("web-0", "new", "c2")
			if tc.families != nil {
				next.Families = tc.families
			}
			got := mustAllocate(t, f, next)
			if same := got[0].Spec.Address == first[0].Spec.Address; same != tc.inherits {
				t.Fatalf("first %v, next incarnation %v: inherited=%v, want %v", addrs(first), addrs(got), same, tc.inherits)
			}
			if want := map[bool]int64{true: 2, false: 0}[tc.inherits]; f.rebound.Load() != want {
				t.Errorf("Rebound reported %d re-binds, want %d (one per family)", f.rebound.Load(), want)
			}
			for _, c := range f.mem.Claims() {
				if c.Spec.PodUID != "new" {
					t.Errorf("claim %s (%s) still held by the old incarnation", c.Name, c.Spec.Pool)
				}
			}
		})
	}
}

func TestAllocateSaysWhyNoPoolHadAnAddress(t *testing.T) {
	f := newFixture(t, false)
	disabled := pool("off", "10.2.0.0/24", "10.2.0.10")
	disabled.Spec.Disable = ptr.To(true)
	f.mem.SetPool(disabled)
	f.mem.SetPool(pool("one", "10.3.0.0/24", "10.3.0.10"))
	mustAllocate(t, f, request("a", "ua", "c", Family{Family: ranges.V4, Pools: []string{"one"}}))

	_, err := f.e.Allocate(ctx, request("b", "ub", "c", Family{Family: ranges.V4, Pools: []string{"missing", "off", "v6", "one"}}))
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || e.Code != nodeapi.CodeTryAgainLater || e.Reason != nodeapi.ReasonExhausted {
		t.Fatalf("got %v, want try-again-later, reason exhausted", err)
	}
	for _, want := range []string{`"missing": not found`, `"off": disabled`, `"v6": is an IPv6 pool`, `"one": 1/1 allocated`} {
		if !strings.Contains(e.Details, want) {
			t.Errorf("details %q do not say %s", e.Details, want)
		}
	}
}

func TestAddressTakenByAnotherWriterIsSkipped(t *testing.T) {
	f := newFixture(t, false)
	mustAllocate(t, f, request("a", "ua", "c", Family{Family: ranges.V4, Pools: []string{"v4"}}))
	// Another agent claims the next two addresses; this engine has not
	// observed them (its informer lags).
	for _, a := range []string{"10.0.0.11", "10.0.0.12", "10.0.0.10"} {
		if _, err := f.mem.Create(ctx, v2beta1.NewClaim(netip.MustParseAddr(a), v2beta1.IPClaimSpec{Pool: "v4", PodNamespace: "x", PodName: a})); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.e.Allocate(ctx, request("b", "ub", "c", Family{Family: ranges.V4, Pools: []string{"v4"}}))
	if f.taken.Load() != 2 {
		t.Fatalf("taken %d, want 2 (both addresses the other writer won)", f.taken.Load())
	}
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || e.Reason != nodeapi.ReasonExhausted || !strings.Contains(e.Details, "3/3 allocated") {
		t.Fatalf("got %v, want the pool reported full", err)
	}
}

func TestFailedFamilyLeavesNothingBehind(t *testing.T) {
	f := newFixture(t, false)
	f.mem.SetPool(pool("v6full", "fd01::/64", "fd01::10"))
	mustAllocate(t, f, request("a", "ua", "c", Family{Family: ranges.V6, Pools: []string{"v6full"}}))

	// The IPv4 claim is created, the IPv6 pool is full, and the first
	// rollback fails: it is retried in the background until it succeeds.
	var fails atomic.Int64
	f.mem.Fail = func(op string, _ *v2beta1.SpiderIPClaim) error {
		if op == "release" && fails.Add(1) == 1 {
			return errors.New("connection reset")
		}
		return nil
	}
	_, err := f.e.Allocate(ctx, request("b", "ub", "c", Family{Family: ranges.V4, Pools: []string{"v4"}}, Family{Family: ranges.V6, Pools: []string{"v6full"}}))
	if err == nil {
		t.Fatal("allocation with a full IPv6 pool succeeded")
	}
	f.e.Wait()
	if fails.Load() < 2 {
		t.Fatalf("%d release attempts, want a failed one and a retry", fails.Load())
	}
	for _, c := range f.mem.Claims() {
		if c.Spec.PodName == "b" {
			t.Errorf("claim %s of the failed request survived", c.Name)
		}
	}
	// The address is free again for the next request.
	if got := mustAllocate(t, f, request("c", "uc", "c", Family{Family: ranges.V4, Pools: []string{"v4"}})); len(got) != 1 {
		t.Fatalf("got %v", addrs(got))
	}
}

func TestReleaseNeverDeletesAClaimThatChanged(t *testing.T) {
	f := newFixture(t, true)
	read := mustAllocate(t, f, replica("web-0", "old", "c1"))
	mustAllocate(t, f, replica("web-0", "new", "c2")) // re-bound to the next incarnation
	err := f.e.Release(ctx, read)
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || e.Code != nodeapi.CodeTryAgainLater || !strings.Contains(e.Msg, "changed") {
		t.Fatalf("release of a stale copy: %v, want try-again naming the change", err)
	}
	if n := len(f.mem.Claims()); n != 2 {
		t.Fatalf("%d claims left, want the 2 of the new incarnation", n)
	}
}

func TestQuarantinedAddressIsNotOfferedAgain(t *testing.T) {
	f := newFixture(t, false)
	got := mustAllocate(t, f, request("a", "ua", "c", Family{Family: ranges.V4, Pools: []string{"v4"}}))
	if err := f.e.Release(ctx, got); err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.QuarantineClaim(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, name := range []string{"b", "c"} {
		for _, c := range mustAllocate(t, f, request(name, "u"+name, "c", Family{Family: ranges.V4, Pools: []string{"v4"}})) {
			seen[c.Spec.Address] = true
		}
	}
	if seen[got[0].Spec.Address] {
		t.Fatalf("quarantined %s was offered again", got[0].Spec.Address)
	}
	_, err := f.e.Allocate(ctx, request("d", "ud", "c", Family{Family: ranges.V4, Pools: []string{"v4"}}))
	var e *nodeapi.ErrorResponse
	if !errors.As(err, &e) || !strings.Contains(e.Details, "1 more refused") {
		t.Fatalf("got %v, want the quarantined address named as refused", err)
	}
}

func TestObservedClaimsAreNotReserved(t *testing.T) {
	f := newFixture(t, false)
	mustAllocate(t, f, request("a", "ua", "c", Family{Family: ranges.V4, Pools: []string{"v4"}}))
	other := v2beta1.NewClaim(netip.MustParseAddr("10.0.0.11"), v2beta1.IPClaimSpec{Pool: "v4"})
	if _, err := f.mem.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	f.e.Observe(nil, other) // the informer saw it: no wasted attempt
	mustAllocate(t, f, request("b", "ub", "c", Family{Family: ranges.V4, Pools: []string{"v4"}}))
	if f.taken.Load() != 0 {
		t.Fatalf("taken %d, want 0: an observed claim is never tried", f.taken.Load())
	}
}

func fixed(fam ranges.Family, pools []string, addrs ...string) Family {
	f := Family{Family: fam, Pools: pools}
	for _, a := range addrs {
		f.Addresses = append(f.Addresses, netip.MustParseAddr(a))
	}
	return f
}

func TestFixedAddressComesFromTheCandidatePoolThatContainsIt(t *testing.T) {
	f := newFixture(t, false)
	f.mem.SetPool(pool("other", "10.1.0.0/24", "10.1.0.10-10.1.0.20"))
	got := mustAllocate(t, f, request("a", "ua", "c", fixed(ranges.V4, []string{"v4", "other"}, "10.1.0.15")))
	if got[0].Spec.Address != "10.1.0.15" || got[0].Spec.Pool != "other" {
		t.Fatalf("got %s from %s, want 10.1.0.15 from other", got[0].Spec.Address, got[0].Spec.Pool)
	}
	// A dynamic request never gets it afterwards.
	for i := range 3 {
		c := mustAllocate(t, f, request(fmt.Sprint("d", i), fmt.Sprint("ud", i), "c", Family{Family: ranges.V4, Pools: []string{"other"}}))
		if c[0].Spec.Address == "10.1.0.15" {
			t.Fatal("the fixed address was given to another pod")
		}
	}
}

func TestFixedAddressThatCannotBeServedSaysWhy(t *testing.T) {
	f := newFixture(t, false)
	excl := pool("excl", "10.2.0.0/24", "10.2.0.10-10.2.0.20")
	excl.Spec.ExcludeIPs = []string{"10.2.0.15"}
	f.mem.SetPool(excl)
	mustAllocate(t, f, request("holder", "uh", "c", fixed(ranges.V4, []string{"v4"}, "10.0.0.11")))
	for _, tc := range []struct {
		name string
		fam  Family
		want string
	}{
		{"held by another pod", fixed(ranges.V4, []string{"v4"}, "10.0.0.11"),
			`failed to allocate fixed IPv4 address 10.0.0.11 for interface "eth0" of pod "ns/b": 10.0.0.11 is held by pod ns/holder (SpiderIPClaim "10.0.0.11")`},
		{"in no candidate pool", fixed(ranges.V4, []string{"v4"}, "10.9.0.1"),
			`10.9.0.1: pool "v4": does not contain 10.9.0.1`},
		{"excluded", fixed(ranges.V4, []string{"excl"}, "10.2.0.15"),
			`10.2.0.15: pool "excl": holds 10.2.0.15 back (excludeIPs, its gateway or a SpiderReservedIP)`},
		{"a list used up", fixed(ranges.V4, []string{"v4"}, "10.0.0.11", "10.9.0.1"),
			`failed to allocate an IPv4 address of its list (2 addresses, all unavailable: the list is used up) for interface "eth0" of pod "ns/b": 10.0.0.11 is held by pod ns/holder (SpiderIPClaim "10.0.0.11"); 10.9.0.1: pool "v4": does not contain 10.9.0.1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.e.Allocate(ctx, request("b", "ub", "c", tc.fam))
			var e *nodeapi.ErrorResponse
			if !errors.As(err, &e) || e.Code != nodeapi.CodeTryAgainLater || e.Reason != nodeapi.ReasonFixedUnavailable || !strings.Contains(e.Error(), tc.want) {
				t.Fatalf("got  %v\nwant try-again, reason %s, containing %s", err, nodeapi.ReasonFixedUnavailable, tc.want)
			}
			for _, c := range f.mem.Claims() {
				if c.Spec.PodName == "b" {
					t.Fatalf("the failed request left claim %s", c.Name)
				}
			}
		})
	}
}

func TestWorkloadListGivesTheFirstFreeEntry(t *testing.T) {
	f := newFixture(t, false)
	list := func(name string) *Request {
		return request(name, "u"+name, "c", fixed(ranges.V4, []string{"v4"}, "10.0.0.12", "10.0.0.11"))
	}
	a, b := mustAllocate(t, f, list("a")), mustAllocate(t, f, list("b"))
	if a[0].Spec.Address != "10.0.0.12" || b[0].Spec.Address != "10.0.0.11" {
		t.Fatalf("a got %s, b got %s; want the list in order", a[0].Spec.Address, b[0].Spec.Address)
	}
	if _, err := f.e.Allocate(ctx, list("c")); err == nil || !strings.Contains(err.Error(), "the list is used up") {
		t.Fatalf("a third pod: %v, want the list used up", err)
	}
}

func TestReplicaAskingForAnotherFixedAddressGetsIt(t *testing.T) {
	f := newFixture(t, true)
	first := replica("web-0", "old", "c1")
	first.Families = []Family{fixed(ranges.V4, []string{"v4"}, "10.0.0.11")}
	mustAllocate(t, f, first)
	same := replica("web-0", "new", "c2")
	same.Families = first.Families
	if got := mustAllocate(t, f, same); got[0].Spec.Address != "10.0.0.11" || got[0].Spec.PodUID != "new" {
		t.Fatalf("next incarnation got %s (%s), want 10.0.0.11 re-bound", got[0].Spec.Address, got[0].Spec.PodUID)
	}
	moved := replica("web-0", "newer", "c3")
	moved.Families = []Family{fixed(ranges.V4, []string{"v4"}, "10.0.0.12")}
	if got := mustAllocate(t, f, moved); got[0].Spec.Address != "10.0.0.12" {
		t.Fatalf("got %s, want the newly asked 10.0.0.12", got[0].Spec.Address)
	}
	if n := len(f.mem.Claims()); n != 1 {
		t.Fatalf("%d claims, want only the new address", n)
	}
}

// macStore runs before the first ByMAC listing, to interleave another
// request between this request's writes and its check.
type macStore struct {
	*Memory
	before func()
}

func (s *macStore) ByMAC(ctx context.Context, mac string) ([]*v2beta1.SpiderIPClaim, error) {
	if f := s.before; f != nil {
		s.before = nil
		f()
	}
	return s.Memory.ByMAC(ctx, mac)
}

func withMAC(r *Request, mac string) *Request {
	m, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	r.MAC = m
	return r
}

func TestRequestedMACIsRecordedAndHeldByOneHolder(t *testing.T) {
	f := newFixture(t, false)
	got := mustAllocate(t, f, withMAC(request("a", "ua", "c1"), "02:00:00:00:00:0A"))
	for _, c := range got {
		if c.Spec.MAC != "02:00:00:00:00:0a" || c.Labels[v2beta1.LabelMAC] != "02-00-00-00-00-0a" {
			t.Fatalf("claim %s records MAC %q label %q", c.Name, c.Spec.MAC, c.Labels[v2beta1.LabelMAC])
		}
	}
	_, err := f.e.Allocate(ctx, withMAC(request("b", "ub", "c2"), "02:00:00:00:00:0a"))
	want := `failed to give interface "eth0" of pod "ns/b" the MAC address 02:00:00:00:00:0a: ` +
		`02:00:00:00:00:0a is held by pod ns/a on interface "eth0" (SpiderIPClaim "10.0.0.10")`
	if err == nil || err.Error() != want {
		t.Fatalf("second holder of the MAC: %v\nwant %s", err, want)
	}
	if n := len(f.mem.Claims()); n != 2 {
		t.Fatalf("the refused request left claims behind: %d claims, want a's 2", n)
	}
	// Re-running the holder's ADD (a new sandbox) is not a conflict.
	if _, err := f.e.Allocate(ctx, withMAC(request("a", "ua", "c3"), "02:00:00:00:00:0a")); err != nil {
		t.Fatal(err)
	}
	// Once a is gone the MAC is free.
	if err := f.e.Release(ctx, f.mem.Claims()); err != nil {
		t.Fatal(err)
	}
	mustAllocate(t, f, withMAC(request("b", "ub", "c2"), "02:00:00:00:00:0a"))
}

// Two pods race for one MAC on different nodes: b writes its claims and
// checks while a has written its own but not yet checked. Whatever the
// interleaving, exactly one of them keeps the MAC.
func TestRacingRequestsForOneMACLeaveOneHolder(t *testing.T) {
	mem := NewMemory()
	mem.SetPool(pool("v4", "10.0.0.0/24", "10.0.0.10-10.0.0.12"))
	mem.SetPool(pool("v6", "fd00::/64", "fd00::10-fd00::12"))
	sa, sb := &macStore{Memory: mem}, &macStore{Memory: mem}
	ea := New(Config{Node: "node1"}, mem, sa)
	eb := New(Config{Node: "node2"}, mem, sb)
	var errB error
	sa.before = func() { _, errB = eb.Allocate(ctx, withMAC(request("b", "ub", "c2"), "02:00:00:00:00:0b")) }
	_, errA := ea.Allocate(ctx, withMAC(request("a", "ua", "c1"), "02:00:00:00:00:0b"))
	if errA != nil || errB == nil {
		t.Fatalf("a (claims first): %v; b (claims second): %v; want a to keep the MAC", errA, errB)
	}
	holders, _ := mem.ByMAC(ctx, "02:00:00:00:00:0b")
	for _, c := range holders {
		if c.Spec.PodName != "a" {
			t.Fatalf("claim %s of pod %s still records the MAC", c.Name, c.Spec.PodName)
		}
	}
}

// A StatefulSet replica's next incarnation inherits its claims with the
// MAC they record; a replica that newly asks for a MAC someone holds yields.
func TestReplicaKeepsItsMACAndANewRequestYields(t *testing.T) {
	f := newFixture(t, true)
	mustAllocate(t, f, withMAC(replica("web-0", "u1", "c1"), "02:00:00:00:00:01"))
	got := mustAllocate(t, f, withMAC(replica("web-0", "u2", "c2"), "02:00:00:00:00:01"))
	if got[0].Spec.PodUID != "u2" || got[0].Spec.MAC != "02:00:00:00:00:01" {
		t.Fatalf("next incarnation got %+v", got[0].Spec)
	}
	mustAllocate(t, f, withMAC(request("other", "uo", "c3", Family{Family: ranges.V4, Pools: []string{"v4"}}), "02:00:00:00:00:02"))
	// web-0's template now asks for other's MAC: its re-bound claims have no
	// standing, so it yields although they are older.
	_, err := f.e.Allocate(ctx, withMAC(replica("web-0", "u3", "c4"), "02:00:00:00:00:02"))
	if err == nil || !strings.Contains(err.Error(), "is held by pod ns/other") {
		t.Fatalf("replica asking for a held MAC: %v", err)
	}
	// The refused replica does not stand in the holder's way afterwards.
	if holders, _ := f.mem.ByMAC(ctx, "02:00:00:00:00:02"); len(holders) != 1 || holders[0].Spec.PodName != "other" {
		t.Fatalf("holders of the MAC after the refusal: %v", addrs(holders))
	}
	if _, err := f.e.Allocate(ctx, withMAC(request("other", "uo", "c5", Family{Family: ranges.V4, Pools: []string{"v4"}}), "02:00:00:00:00:02")); err != nil {
		t.Fatalf("the holder's next sandbox: %v", err)
	}
}

func launcher(name, uid, container, vm string) *Request {
	r := request(name, uid, container)
	r.Holder.OwnerKind, r.Holder.OwnerName = "VirtualMachineInstance", vm
	return r
}

// A virtual machine's next launcher pod (another name: a restart, a
// replacement or a migration target) takes over its addresses; another
// machine's pod does not.
func TestLauncherPodTakesOverItsVirtualMachinesAddresses(t *testing.T) {
	f := newFixture(t, false) // StatefulSet support plays no part
	first := addrs(mustAllocate(t, f, launcher("virt-launcher-vm1-aaaaa", "l1", "c1", "vm1")))
	other := addrs(mustAllocate(t, f, launcher("virt-launcher-vm2-ccccc", "l3", "c3", "vm2")))
	got := mustAllocate(t, f, launcher("virt-launcher-vm1-bbbbb", "l2", "c2", "vm1"))
	if !slices.Equal(addrs(got), first) {
		t.Fatalf("migration target got %v, want the machine's %v", addrs(got), first)
	}
	for _, c := range got {
		if c.Spec.PodName != "virt-launcher-vm1-bbbbb" || c.Spec.PodUID != "l2" {
			t.Fatalf("claim %s not re-bound to the new launcher pod: %+v", c.Name, c.Spec)
		}
	}
	if slices.Equal(other, first) || len(f.mem.Claims()) != 4 {
		t.Fatalf("claims %v: want vm1's two and vm2's two", addrs(f.mem.Claims()))
	}
}
