package agent

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/ranges"
)

func testPoolState(t *testing.T, ips ...string) *poolState {
	t.Helper()
	layout, err := ranges.ParsePool(&v2beta1.IPPoolSpec{Subnet: "10.0.0.0/24", IPs: ips}, ranges.Set{})
	if err != nil {
		t.Fatal(err)
	}
	claimed, err := ranges.NewAllocator(layout.Usable)
	if err != nil {
		t.Fatal(err)
	}
	pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "pool-uid"}}
	return &poolState{name: "p", pool: pool, layout: layout, claimed: claimed, busy: claimed.Clone(), inflight: map[netip.Addr]struct{}{}}
}

func TestQuarantineExpires(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := newQuarantine(10 * time.Minute)
	q.now = func() time.Time { return now }
	a, b := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	all := func(netip.Addr) bool { return true }
	if until := q.add("p1", a); !until.Equal(now.Add(10 * time.Minute)) {
		t.Fatalf("quarantined until %v", until)
	}
	if !q.has("p1", a) || q.has("p1", b) {
		t.Fatalf("has(a)=%v has(b)=%v, want true false", q.has("p1", a), q.has("p1", b))
	}
	if q.has("p2", a) {
		t.Fatal("the quarantine of one pool object holds back another pool's address")
	}
	now = now.Add(5 * time.Minute)
	q.add("p1", b)
	if n := q.count("p1", all); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	now = now.Add(5 * time.Minute)
	if q.has("p1", a) {
		t.Fatal("address still quarantined after the period")
	}
	if !q.has("p1", b) {
		t.Fatal("address reported later lost its quarantine early")
	}
	now = now.Add(5 * time.Minute)
	if n := q.count("p1", all); n != 0 || len(q.until) != 0 {
		t.Fatalf("expired entries kept: count %d, map %v", n, q.until)
	}
}

func TestReserveSkipsQuarantinedAddresses(t *testing.T) {
	s := testPoolState(t, "10.0.0.10-10.0.0.12")
	q := newQuarantine(time.Hour)
	q.add("pool-uid", netip.MustParseAddr("10.0.0.10"))
	q.add("pool-uid", netip.MustParseAddr("10.0.0.11"))
	skip := func(a netip.Addr) bool { return q.has("pool-uid", a) }

	got, err := s.reserve(skip)
	if err != nil || got.String() != "10.0.0.12" {
		t.Fatalf("reserve = %v, %v; want the only address not quarantined, 10.0.0.12", got, err)
	}
	s.done(got, true, false)
	// Only quarantined addresses are free: the pool counts as full, and
	// the refused addresses are reported.
	if got, err := s.reserve(skip); !errors.Is(err, errPoolFull) {
		t.Fatalf("reserve = %v, %v; want errPoolFull", got, err)
	}
	if n := s.refused(q); n != 2 {
		t.Fatalf("refused = %d, want 2", n)
	}
	// Without a quarantine the same pool hands them out.
	if got, err := s.reserve(nil); err != nil || got.String() == "10.0.0.12" {
		t.Fatalf("reserve without quarantine = %v, %v", got, err)
	}
}

func TestConflictClaimMatchesHolder(t *testing.T) {
	claim := func(addr, ifName, uid, containerID string) *v2beta1.SpiderIPClaim {
		return &v2beta1.SpiderIPClaim{Spec: v2beta1.IPClaimSpec{Address: addr, Interface: ifName, PodUID: uid, ContainerID: containerID}}
	}
	claims := []*v2beta1.SpiderIPClaim{
		claim("10.0.0.5", "eth0", "u1", "c1"),
		claim("10.0.0.6", "net1", "u1", "c1"),
		claim("fd00::6", "net1", "u1", "c1"),
	}
	for _, tc := range []struct {
		name string
		rep  nodeapi.ConflictReport
		want string
	}{
		{"address of the interface", nodeapi.ConflictReport{IfName: "net1", PodUID: "u1", Address: "10.0.0.6"}, "10.0.0.6"},
		{"IPv6 in another notation", nodeapi.ConflictReport{IfName: "net1", PodUID: "u1", Address: "fd00:0::6"}, "fd00::6"},
		{"other interface", nodeapi.ConflictReport{IfName: "eth0", PodUID: "u1", Address: "10.0.0.6"}, ""},
		{"other incarnation", nodeapi.ConflictReport{IfName: "net1", PodUID: "u2", Address: "10.0.0.6"}, ""},
		{"no UID: same sandbox", nodeapi.ConflictReport{IfName: "net1", ContainerID: "c1", Address: "10.0.0.6"}, "10.0.0.6"},
		{"no UID: other sandbox", nodeapi.ConflictReport{IfName: "net1", ContainerID: "c2", Address: "10.0.0.6"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := tc.rep
			rep.PodNamespace, rep.PodName = "ns", "p"
			addr, err := validateConflict(&rep)
			if err != nil {
				t.Fatal(err)
			}
			got := conflictClaim(claims, &rep, addr)
			switch {
			case tc.want == "" && got != nil:
				t.Fatalf("matched claim %s, want none", got.Spec.Address)
			case tc.want != "" && (got == nil || got.Spec.Address != tc.want):
				t.Fatalf("matched %v, want %s", got, tc.want)
			}
		})
	}
}

func TestValidateConflict(t *testing.T) {
	for _, tc := range []struct {
		rep  nodeapi.ConflictReport
		want string
	}{
		{nodeapi.ConflictReport{PodName: "p", IfName: "net1", PodUID: "u", Address: "10.0.0.1"}, "podNamespace, podName and ifName are required"},
		{nodeapi.ConflictReport{PodNamespace: "ns", PodName: "p", IfName: "net1", Address: "10.0.0.1"}, "podUID or containerID is required"},
		{nodeapi.ConflictReport{PodNamespace: "ns", PodName: "p", IfName: "net1", PodUID: "u", Address: "10.0.0.1/24"}, `address "10.0.0.1/24"`},
	} {
		_, err := validateConflict(&tc.rep)
		var e *nodeapi.ErrorResponse
		if !errors.As(err, &e) || e.Code != nodeapi.CodeInvalidConfig || !strings.Contains(e.Msg, tc.want) {
			t.Errorf("validateConflict(%+v) = %v, want code 7 mentioning %q", tc.rep, err, tc.want)
		}
	}
}
