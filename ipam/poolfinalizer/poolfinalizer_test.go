package poolfinalizer

import (
	"context"
	"errors"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func setup(t *testing.T, objs ...client.Object) (client.Client, *Reconciler, *events.FakeRecorder) {
	t.Helper()
	s := runtime.NewScheme()
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	rec := events.NewFakeRecorder(10)
	return c, &Reconciler{Client: c, Live: c, Recorder: rec}, rec
}

func claim(addr, pod string) *v2beta1.SpiderIPClaim {
	return &v2beta1.SpiderIPClaim{ObjectMeta: metav1.ObjectMeta{Name: addr, Labels: map[string]string{v2beta1.LabelPool: "p"}},
		Spec: v2beta1.IPClaimSpec{Pool: "p", Address: addr, PodNamespace: "default", PodName: pod}}
}

var req = reconcile.Request{NamespacedName: types.NamespacedName{Name: "p"}}

func TestAddsFinalizer(t *testing.T) {
	c, r, _ := setup(t, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}})
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var p v2beta1.SpiderIPPool
	_ = c.Get(context.Background(), req.NamespacedName, &p)
	if len(p.Finalizers) != 1 || p.Finalizers[0] != Finalizer {
		t.Fatalf("finalizers %v", p.Finalizers)
	}
}

func TestDeletionWaitsForAllocations(t *testing.T) {
	ctx := context.Background()
	pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Finalizers: []string{Finalizer, LegacyFinalizer}}}
	c, r, rec := setup(t, pool, claim("10.6.0.7", "web-0"))
	if err := c.Delete(ctx, pool); err != nil {
		t.Fatal(err)
	}
	res, err := r.Reconcile(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter == 0 {
		t.Fatal("blocked deletion not re-examined")
	}
	var p v2beta1.SpiderIPPool
	if err := c.Get(ctx, req.NamespacedName, &p); err != nil {
		t.Fatalf("pool with an allocation was removed: %v", err)
	}
	e := <-rec.Events
	if !strings.Contains(e, "Warning PoolInUse") || !strings.Contains(e, "deletion waits until the pool's 1 allocated address(es) are released: 10.6.0.7 (pod default/web-0)") {
		t.Fatalf("event %q", e)
	}

	// The last claim goes: both finalizers are removed and the pool disappears.
	if err := c.Delete(ctx, claim("10.6.0.7", "web-0")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, req.NamespacedName, &p); !apierrors.IsNotFound(err) {
		t.Fatalf("pool still there: %v %v", err, p.Finalizers)
	}
}

func TestInUseMessageNamesAtMostFive(t *testing.T) {
	var cs []v2beta1.SpiderIPClaim
	for _, a := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"} {
		cs = append(cs, *claim(a, "p"+a[len(a)-1:]))
	}
	msg := InUseMessage(cs)
	if !strings.Contains(msg, "7 allocated") || !strings.Contains(msg, "and 2 more") || strings.Contains(msg, "10.0.0.6") {
		t.Fatalf("message %q", msg)
	}
}

// The pool status counters are patched concurrently; the finalizer patch
// (under an optimistic lock) then conflicts, which is a reason to read the
// pool again, not an error.
func TestConflictIsRetriedQuietly(t *testing.T) {
	ctx := context.Background()
	s := runtime.NewScheme()
	if err := v2beta1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	pool := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Finalizers: []string{Finalizer}}}
	conflicts := 1
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(pool).WithInterceptorFuncs(interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if conflicts > 0 {
				conflicts--
				return apierrors.NewConflict(v2beta1.GroupVersion.WithResource("spiderippools").GroupResource(), obj.GetName(), errors.New("the object has been modified"))
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
	}).Build()
	r := &Reconciler{Client: c, Live: c}
	if err := c.Delete(ctx, pool); err != nil {
		t.Fatal(err)
	}
	res, err := r.Reconcile(ctx, req)
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("Reconcile = %+v, %v; want a requeue without error", res, err)
	}
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, req.NamespacedName, &v2beta1.SpiderIPPool{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pool still there after the retried finalizer removal: %v", err)
	}
}
