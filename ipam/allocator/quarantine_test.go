package allocator

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
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
	q := NewQuarantine(10 * time.Minute)
	q.now = func() time.Time { return now }
	a, b := netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")
	all := func(netip.Addr) bool { return true }
	if until := q.Add("p1", a); !until.Equal(now.Add(10 * time.Minute)) {
		t.Fatalf("quarantined until %v", until)
	}
	if !q.Has("p1", a) || q.Has("p1", b) {
		t.Fatalf("has(a)=%v has(b)=%v, want true false", q.Has("p1", a), q.Has("p1", b))
	}
	if q.Has("p2", a) {
		t.Fatal("the quarantine of one pool object holds back another pool's address")
	}
	now = now.Add(5 * time.Minute)
	q.Add("p1", b)
	if n := q.Count("p1", all); n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}
	now = now.Add(5 * time.Minute)
	if q.Has("p1", a) {
		t.Fatal("address still quarantined after the period")
	}
	if !q.Has("p1", b) {
		t.Fatal("address reported later lost its quarantine early")
	}
	now = now.Add(5 * time.Minute)
	if n := q.Count("p1", all); n != 0 || len(q.until) != 0 {
		t.Fatalf("expired entries kept: count %d, map %v", n, q.until)
	}
}

func TestReserveSkipsQuarantinedAddresses(t *testing.T) {
	s := testPoolState(t, "10.0.0.10-10.0.0.12")
	q := NewQuarantine(time.Hour)
	q.Add("pool-uid", netip.MustParseAddr("10.0.0.10"))
	q.Add("pool-uid", netip.MustParseAddr("10.0.0.11"))
	skip := func(a netip.Addr) bool { return q.Has("pool-uid", a) }

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
