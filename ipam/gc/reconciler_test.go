package gc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/lifecycle/lifecycletest"
	"github.com/spindle-net/spindle/ipam/store"
)

func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newClaim(addr, pod string, uid types.UID) *v2beta1.SpiderIPClaim {
	return &v2beta1.SpiderIPClaim{
		ObjectMeta: metav1.ObjectMeta{Name: addr, UID: types.UID("claim-" + addr), Labels: map[string]string{v2beta1.LabelPool: "pool"}},
		Spec: v2beta1.IPClaimSpec{Pool: "pool", Address: addr, IPVersion: 4, PodNamespace: "ns", PodName: pod,
			PodUID: string(uid), Interface: "eth0", Node: "node1"},
	}
}

func newEndpoint(pod string, uid types.UID) *v2beta1.SpiderEndpoint {
	return &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: pod, UID: types.UID("ep-" + pod)},
		Status:     v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{UID: string(uid), Node: "node1"}},
	}
}

func stsClaim(addr, pod string, uid types.UID) *v2beta1.SpiderIPClaim {
	c := newClaim(addr, pod, uid)
	c.Spec.OwnerKind, c.Spec.OwnerName = "StatefulSet", "web"
	return c
}

func newFake(t *testing.T, objs ...client.Object) *fake.ClientBuilder {
	return fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(objs...).
		WithStatusSubresource(&v2beta1.SpiderEndpoint{}).
		WithIndex(&v2beta1.SpiderIPClaim{}, store.IndexClaimByPod, func(o client.Object) []string {
			if k := store.ClaimPodKey(o.(*v2beta1.SpiderIPClaim)); k != "" {
				return []string{k}
			}
			return nil
		})
}

func reconciler(c client.Client, reader client.Reader) (*Reconciler, *events.FakeRecorder) {
	rec := events.NewFakeRecorder(100)
	return &Reconciler{
		Client: c, Reader: reader, Recorder: rec, Now: func() time.Time { return lifecycletest.T0 },
		Config: lifecycle.Config{TerminatingDelay: 30 * time.Second, CollectTerminatingOnReadyNode: true, CollectTerminatingOnNotReadyNode: true},
	}, rec
}

func req(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: name}}
}

func exists(t *testing.T, c client.Client, obj client.Object, key types.NamespacedName) bool {
	t.Helper()
	err := c.Get(context.Background(), key, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func claimKey(addr string) types.NamespacedName { return types.NamespacedName{Name: addr} }

func TestCollectsDeletedPod(t *testing.T) {
	c := newFake(t, newClaim("10.6.0.1", "app-1", "u1"), newClaim("10.6.0.2", "app-1", "u1"), newEndpoint("app-1", "u1")).Build()
	r, rec := reconciler(c, c)
	before := testutil.ToFloat64(releasedIPsTotal.WithLabelValues(string(lifecycle.ReasonPodDeleted)))
	if _, err := r.Reconcile(context.Background(), req("app-1")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.6.0.1", "10.6.0.2"} {
		if exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey(a)) {
			t.Errorf("claim %s survived", a)
		}
	}
	if exists(t, c, &v2beta1.SpiderEndpoint{}, types.NamespacedName{Namespace: "ns", Name: "app-1"}) {
		t.Error("endpoint survived")
	}
	if got := testutil.ToFloat64(releasedIPsTotal.WithLabelValues(string(lifecycle.ReasonPodDeleted))) - before; got != 2 {
		t.Errorf("released metric grew by %v, want 2", got)
	}
	select {
	case e := <-rec.Events:
		if !strings.Contains(e, "PodDeleted") || !strings.Contains(e, "released 10.6.0.") {
			t.Errorf("event %q", e)
		}
	default:
		t.Error("no event")
	}
}

func TestKeepsLivePod(t *testing.T) {
	c := newFake(t, newClaim("10.6.0.1", "app-1", "u1"), newEndpoint("app-1", "u1"), lifecycletest.LivePod("app-1", "u1")).Build()
	r, _ := reconciler(c, c)
	if _, err := r.Reconcile(context.Background(), req("app-1")); err != nil {
		t.Fatal(err)
	}
	if !exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.1")) || !exists(t, c, &v2beta1.SpiderEndpoint{}, types.NamespacedName{Namespace: "ns", Name: "app-1"}) {
		t.Fatal("allocation of a live pod collected")
	}
}

func TestNewPodOfSameNameKeepsItsAddress(t *testing.T) {
	c := newFake(t,
		newClaim("10.6.0.1", "app-1", "u1"), // old incarnation
		newClaim("10.6.0.2", "app-1", "u2"), // new incarnation
		newEndpoint("app-1", "u2"),
		lifecycletest.LivePod("app-1", "u2"),
	).Build()
	r, _ := reconciler(c, c)
	if _, err := r.Reconcile(context.Background(), req("app-1")); err != nil {
		t.Fatal(err)
	}
	if exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.1")) {
		t.Error("old incarnation's claim survived")
	}
	if !exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.2")) {
		t.Error("new pod's claim collected")
	}
	if !exists(t, c, &v2beta1.SpiderEndpoint{}, types.NamespacedName{Namespace: "ns", Name: "app-1"}) {
		t.Error("new pod's endpoint collected")
	}
}

// The agent re-binds the claim to a new pod of the same name after the
// collector decided, right before its delete reaches the API server. The
// delete's resourceVersion precondition must make it fail.
func TestRaceRebindBeforeDelete(t *testing.T) {
	ctx := context.Background()
	var base client.WithWatch
	rebound := false
	base = newFake(t, stsClaim("10.6.0.1", "web-2", "old"), newEndpoint("web-2", "old")).
		WithInterceptorFuncs(interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if _, ok := obj.(*v2beta1.SpiderIPClaim); ok && !rebound {
					rebound = true
					var cur v2beta1.SpiderIPClaim
					if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &cur); err != nil {
						return err
					}
					cur.Spec.PodUID = "new" // the agent's Rebind
					if err := c.Update(ctx, &cur); err != nil {
						return err
					}
				}
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
	// The StatefulSet, which releases on scale-down, was scaled to 2, so
	// web-2 (pod gone) is out of range.
	sts := lifecycletest.StatefulSet("web", 2)
	sts.Annotations = map[string]string{lifecycle.ReleaseOnScaleDown: "true"}
	reader := newFake(t, sts).Build()
	r, _ := reconciler(base, reader)
	res, err := r.Reconcile(ctx, req("web-2"))
	if err != nil {
		t.Fatal(err)
	}
	if !rebound {
		t.Fatal("interleaving not exercised")
	}
	var cl v2beta1.SpiderIPClaim
	if !exists(t, base, &cl, claimKey("10.6.0.1")) || cl.Spec.PodUID != "new" {
		t.Fatal("claim re-bound to the new pod was deleted")
	}
	if !exists(t, base, &v2beta1.SpiderEndpoint{}, types.NamespacedName{Namespace: "ns", Name: "web-2"}) {
		t.Fatal("endpoint deleted although its claim changed under the collector")
	}
	if res.RequeueAfter == 0 {
		t.Fatal("no re-examination scheduled after the conflict")
	}
}

// The agent releases the old claim and claims the same address again for the
// new pod (a new object) between the collector's read and its delete.
func TestRaceReclaimSameAddressBeforeDelete(t *testing.T) {
	ctx := context.Background()
	done := false
	c := newFake(t, newClaim("10.6.0.1", "app-1", "u1")).
		WithInterceptorFuncs(interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if _, ok := obj.(*v2beta1.SpiderIPClaim); ok && !done {
					done = true
					if err := c.Delete(ctx, newClaim("10.6.0.1", "app-1", "u1")); err != nil {
						return err
					}
					fresh := newClaim("10.6.0.1", "app-1", "u2")
					fresh.UID, fresh.ResourceVersion = "claim-again", ""
					if err := c.Create(ctx, fresh); err != nil {
						return err
					}
				}
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
	r, _ := reconciler(c, c)
	if _, err := r.Reconcile(ctx, req("app-1")); err != nil {
		t.Fatal(err)
	}
	var cl v2beta1.SpiderIPClaim
	if !exists(t, c, &cl, claimKey("10.6.0.1")) || cl.Spec.PodUID != "u2" {
		t.Fatal("the new pod's claim of the same address was deleted")
	}
}

// The informer cache has not seen the new StatefulSet pod yet (it says the pod
// is gone), but the fresh read finds it: the ordinal is within replicas, so
// the address is kept for it.
func TestStaleCacheIsCheckedAgainstFreshRead(t *testing.T) {
	sts := lifecycletest.StatefulSet("web", 3)
	cache := newFake(t, stsClaim("10.6.0.1", "web-1", "old")).Build()
	reader := newFake(t, sts, lifecycletest.StsPod("web-1", "new", sts)).Build()
	r, _ := reconciler(cache, reader)
	if _, err := r.Reconcile(context.Background(), req("web-1")); err != nil {
		t.Fatal(err)
	}
	if !exists(t, cache, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.1")) {
		t.Fatal("StatefulSet replica within ordinals lost its address")
	}
}

// The cache still shows the old pod alive (fast path) — the collector keeps
// the allocation; it is collected on a later pass once the cache catches up.
func TestCachedLivePodIsNeverCollected(t *testing.T) {
	cache := newFake(t, newClaim("10.6.0.1", "app-1", "u1"), lifecycletest.LivePod("app-1", "u1")).Build()
	reader := newFake(t).Build() // the API server says the pod is gone
	r, _ := reconciler(cache, reader)
	if _, err := r.Reconcile(context.Background(), req("app-1")); err != nil {
		t.Fatal(err)
	}
	if !exists(t, cache, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.1")) {
		t.Fatal("claim collected on a cache read alone")
	}
}

// A StatefulSet scaled from 3 to 1 holds the addresses of ordinals 1 and 2
// for its next scale-up, unless it or a pool of the replica opts out.
func TestStatefulSetScaleDown(t *testing.T) {
	for _, tc := range []struct {
		name          string
		stsOptOut     bool
		poolOptOut    bool
		wantScaledOff bool
	}{
		{"held by default", false, false, false},
		{"released: the StatefulSet opts out", true, false, true},
		{"released: the pool opts out", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sts := lifecycletest.StatefulSet("web", 1)
			if tc.stsOptOut {
				sts.Annotations = map[string]string{lifecycle.ReleaseOnScaleDown: "true"}
			}
			pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p4"}, Spec: v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16"}}
			if tc.poolOptOut {
				pool.Annotations = map[string]string{lifecycle.ReleaseOnScaleDown: "true"}
			}
			claims := []*v2beta1.SpiderIPClaim{stsClaim("10.6.0.10", "web-0", "u0"), stsClaim("10.6.0.11", "web-1", "u1"), stsClaim("10.6.0.12", "web-2", "u2")}
			for _, cl := range claims {
				cl.Spec.Pool = "p4"
			}
			c := newFake(t, sts, pool, lifecycletest.StsPod("web-0", "u0", sts), claims[0], claims[1], claims[2],
				newEndpoint("web-1", "u1"), newEndpoint("web-2", "u2")).Build()
			r, _ := reconciler(c, c)
			for _, p := range []string{"web-0", "web-1", "web-2"} {
				if _, err := r.Reconcile(context.Background(), req(p)); err != nil {
					t.Fatal(err)
				}
			}
			if !exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.10")) {
				t.Error("ordinal 0 lost its address")
			}
			for _, a := range []string{"10.6.0.11", "10.6.0.12"} {
				if kept := exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey(a)); kept == tc.wantScaledOff {
					t.Errorf("scaled-away ordinal's %s: kept %v, want kept %v", a, kept, !tc.wantScaledOff)
				}
			}
		})
	}
}

func TestTerminatingPodRequeuedUntilDeadline(t *testing.T) {
	p := lifecycletest.Terminating(lifecycletest.LivePod("app-1", "u1"), lifecycletest.T0.Add(5*time.Second))
	p.Finalizers = []string{"example.com/hold"} // the fake client wants one on a deleting object
	c := newFake(t, newClaim("10.6.0.1", "app-1", "u1"), p, lifecycletest.Node(false)).Build()
	r, _ := reconciler(c, c)
	res, err := r.Reconcile(context.Background(), req("app-1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter < 35*time.Second || res.RequeueAfter > 40*time.Second {
		t.Fatalf("RequeueAfter %v, want about deadline+delay", res.RequeueAfter)
	}
	if !exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.1")) {
		t.Fatal("collected within grace")
	}
	r.Now = func() time.Time { return lifecycletest.T0.Add(40 * time.Second) }
	if _, err := r.Reconcile(context.Background(), req("app-1")); err != nil {
		t.Fatal(err)
	}
	if exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.1")) {
		t.Fatal("not collected past grace+delay on a NotReady node")
	}
}

func TestDeleteFailureKeepsEndpointAndReturnsError(t *testing.T) {
	c := newFake(t, newClaim("10.6.0.1", "app-1", "u1"), newEndpoint("app-1", "u1")).
		WithInterceptorFuncs(interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if _, ok := obj.(*v2beta1.SpiderIPClaim); ok {
				return apierrors.NewInternalError(errors.New("etcd unavailable"))
			}
			return c.Delete(ctx, obj, opts...)
		}}).Build()
	r, _ := reconciler(c, c)
	if _, err := r.Reconcile(context.Background(), req("app-1")); err == nil || !strings.Contains(err.Error(), `failed to delete SpiderIPClaim "10.6.0.1"`) {
		t.Fatalf("err = %v", err)
	}
	if !exists(t, c, &v2beta1.SpiderEndpoint{}, types.NamespacedName{Namespace: "ns", Name: "app-1"}) {
		t.Fatal("endpoint deleted while a claim is left")
	}
}

func TestFreshReadFailureCollectsNothing(t *testing.T) {
	c := newFake(t, newClaim("10.6.0.1", "app-1", "u1")).Build()
	reader := newFake(t).WithInterceptorFuncs(interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
		return apierrors.NewServiceUnavailable("apiserver overloaded")
	}}).Build()
	r, _ := reconciler(c, reader)
	if _, err := r.Reconcile(context.Background(), req("app-1")); err == nil {
		t.Fatal("no error")
	}
	if !exists(t, c, &v2beta1.SpiderIPClaim{}, claimKey("10.6.0.1")) {
		t.Fatal("collected without a fresh read")
	}
}

func TestAllocatedPods(t *testing.T) {
	c := newFake(t, newClaim("10.6.0.1", "a", "u1"), newClaim("10.6.0.2", "a", "u1"), newEndpoint("b", "u2")).Build()
	keys, err := AllocatedPods(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Fatalf("keys %v", keys)
	}
}
