package poolstatus

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/store"
)

// Counters that drifted (a stale status written by an older controller, or
// claims created and deleted while no controller ran) are corrected by one
// reconcile, and follow later claim changes and reserved addresses.
func TestDriftedCountersAreCorrected(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	wrong := int64(99)
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24", IPs: []string{"10.6.0.10-10.6.0.19"}, ExcludeIPs: []string{"10.6.0.19"}, Gateway: func() *string { g := "10.6.0.10"; return &g }()},
		Status:     v2beta1.IPPoolStatus{AllocatedIPCount: &wrong, TotalIPCount: &wrong},
	}
	mk := func(addr, p string) *v2beta1.SpiderIPClaim {
		return &v2beta1.SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: addr, Labels: map[string]string{v2beta1.LabelPool: p}},
			Spec: v2beta1.IPClaimSpec{Pool: p, Address: addr, IPVersion: 4}}
	}
	c := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v2beta1.SpiderIPPool{}).
		WithObjects(pool, mk("10.6.0.11", "p"), mk("10.6.0.12", "p"), mk("10.7.0.1", "other")).
		WithIndex(&v2beta1.SpiderIPClaim{}, store.IndexClaimByPool, func(o client.Object) []string {
			return []string{o.(*v2beta1.SpiderIPClaim).Spec.Pool}
		}).Build()
	r := &Reconciler{Client: c}
	req := reconcile.Request{NamespacedName: types.NamespacedName{Name: "p"}}
	expect := func(alloc, total int64) {
		t.Helper()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		var got v2beta1.SpiderIPPool
		if err := c.Get(ctx, req.NamespacedName, &got); err != nil {
			t.Fatal(err)
		}
		if got.Status.AllocatedIPCount == nil || *got.Status.AllocatedIPCount != alloc || got.Status.TotalIPCount == nil || *got.Status.TotalIPCount != total {
			t.Fatalf("status allocated=%v total=%v, want %d/%d", got.Status.AllocatedIPCount, got.Status.TotalIPCount, alloc, total)
		}
		if a, tot := testutil.ToFloat64(allocatedIPs.WithLabelValues("p", "4", "10.6.0.0/24")), testutil.ToFloat64(totalIPs.WithLabelValues("p", "4", "10.6.0.0/24")); a != float64(alloc) || tot != float64(total) {
			t.Fatalf("gauges allocated=%v total=%v, want %d/%d", a, tot, alloc, total)
		}
	}
	// 10 listed, minus excluded .19, minus gateway .10 = 8.
	expect(2, 8)
	if err := c.Create(ctx, mk("10.6.0.13", "p")); err != nil {
		t.Fatal(err)
	}
	expect(3, 8)
	if err := c.Delete(ctx, mk("10.6.0.11", "p")); err != nil {
		t.Fatal(err)
	}
	expect(2, 8)
	res := &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: v2beta1.ReservedIPSpec{IPs: []string{"10.6.0.14-10.6.0.15"}}}
	if err := c.Create(ctx, res); err != nil {
		t.Fatal(err)
	}
	expect(2, 6)

	// A deleted pool's series disappear.
	if err := c.Delete(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(allocatedIPs) + testutil.CollectAndCount(totalIPs); n != 0 {
		t.Fatalf("%d pool series left after the pool was deleted", n)
	}
}

// An IPv6 pool with more addresses than an int64 holds reports the largest
// count instead of a negative one.
func TestHugeIPv6PoolTotalSaturates(t *testing.T) {
	s := runtime.NewScheme()
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "v6"},
		Spec:       v2beta1.IPPoolSpec{Subnet: "fd99:1::/64", IPs: []string{"fd99:1::1-fd99:1::ffff:ffff:ffff:fffe"}},
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(pool).
		WithIndex(&v2beta1.SpiderIPClaim{}, store.IndexClaimByPool, func(o client.Object) []string {
			return []string{o.(*v2beta1.SpiderIPClaim).Spec.Pool}
		}).Build()
	r := &Reconciler{Client: c}
	got, err := r.Count(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if got.Total == nil || *got.Total != math.MaxInt64 {
		t.Fatalf("total = %v, want %d", got.Total, int64(math.MaxInt64))
	}
}

// A pool Spiderpool wrote keeps its status.allocatedIPs when the counters
// are corrected: the import (ipam/migrate) reads it after Spindle's
// controller has started.
func TestCountersKeepSpiderpoolRecords(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	records := `{"10.6.0.11":{"pod":"ns/a","podUid":"u1"},"10.6.0.12":{"pod":"ns/b","podUid":"u2"}}`
	two := int64(2)
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "sp"},
		Spec:       v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24", IPs: []string{"10.6.0.10-10.6.0.19"}},
		Status:     v2beta1.IPPoolStatus{AllocatedIPs: &records, AllocatedIPCount: &two},
	}
	c := fake.NewClientBuilder().WithScheme(s).WithStatusSubresource(&v2beta1.SpiderIPPool{}).WithObjects(pool).
		WithIndex(&v2beta1.SpiderIPClaim{}, store.IndexClaimByPool, func(o client.Object) []string {
			return []string{o.(*v2beta1.SpiderIPClaim).Spec.Pool}
		}).Build()
	r := &Reconciler{Client: c}
	if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: "sp"}}); err != nil {
		t.Fatal(err)
	}
	var got v2beta1.SpiderIPPool
	if err := c.Get(ctx, client.ObjectKey{Name: "sp"}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.AllocatedIPCount == nil || *got.Status.AllocatedIPCount != 0 || got.Status.TotalIPCount == nil || *got.Status.TotalIPCount != 10 {
		t.Fatalf("counters were not corrected: allocated=%v total=%v", got.Status.AllocatedIPCount, got.Status.TotalIPCount)
	}
	if got.Status.AllocatedIPs == nil || *got.Status.AllocatedIPs != records {
		t.Fatalf("status.allocatedIPs = %v, want Spiderpool's records kept", got.Status.AllocatedIPs)
	}
}
