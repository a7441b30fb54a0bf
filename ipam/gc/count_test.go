package gc

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
)

// One collected pod incarnation is counted once, however many passes its
// collection takes: here the agent rewrites the SpiderEndpoint while the
// collector deletes the claims (the SpiderEndpoint delete conflicts, the
// name is looked at again), and a late event makes a third pass over
// objects that are already gone.
func TestCollectionIsCountedOnce(t *testing.T) {
	ctx := context.Background()
	rewritten := false
	c := newFake(t, newClaim("10.6.0.1", "app-1", "u1"), newClaim("10.6.0.2", "app-1", "u1"), newEndpoint("app-1", "u1")).
		WithInterceptorFuncs(interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if _, ok := obj.(*v2beta1.SpiderEndpoint); ok && !rewritten {
					rewritten = true
					var cur v2beta1.SpiderEndpoint
					if err := c.Get(ctx, client.ObjectKeyFromObject(obj), &cur); err != nil {
						return err
					}
					cur.Status.Current.ContainerID = "rewritten" // the agent's write
					if err := c.Status().Update(ctx, &cur); err != nil {
						return err
					}
				}
				return c.Delete(ctx, obj, opts...)
			},
		}).Build()
	r, _ := reconciler(c, c)
	collected := func() float64 {
		return testutil.ToFloat64(collectedTotal.WithLabelValues(string(lifecycle.ReasonPodDeleted)))
	}
	before := collected()

	var stale v2beta1.SpiderIPClaimList
	if err := c.List(ctx, &stale); err != nil {
		t.Fatal(err)
	}
	var staleEP v2beta1.SpiderEndpoint
	if err := c.Get(ctx, types.NamespacedName{Namespace: "ns", Name: "app-1"}, &staleEP); err != nil {
		t.Fatal(err)
	}

	res, err := r.Reconcile(ctx, req("app-1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter == 0 {
		t.Fatal("a SpiderEndpoint changed under the collector must be looked at again")
	}
	if !exists(t, c, &v2beta1.SpiderEndpoint{}, types.NamespacedName{Namespace: "ns", Name: "app-1"}) {
		t.Fatal("the SpiderEndpoint rewritten after it was read was deleted")
	}
	if _, err := r.Reconcile(ctx, req("app-1")); err != nil {
		t.Fatal(err)
	}
	if exists(t, c, &v2beta1.SpiderEndpoint{}, types.NamespacedName{Namespace: "ns", Name: "app-1"}) {
		t.Fatal("the SpiderEndpoint survived the second pass")
	}
	// A pass over what a lagging cache still shows.
	if _, err := r.collect(ctx, lifecycle.Holder{Namespace: "ns", Name: "app-1", UID: "u1"}, lifecycle.ReasonPodDeleted, nil, stale.Items, &staleEP); err != nil {
		t.Fatal(err)
	}
	if got := collected() - before; got != 1 {
		t.Fatalf("collected_total grew by %v over three passes of one pod, want 1", got)
	}

	// A SpiderEndpoint left alone (no claims) is a collection of its own.
	c2 := newFake(t, newEndpoint("app-2", "u2")).Build()
	r2, _ := reconciler(c2, c2)
	if _, err := r2.Reconcile(ctx, req("app-2")); err != nil {
		t.Fatal(err)
	}
	if got := collected() - before; got != 2 {
		t.Fatalf("collected_total grew by %v, want 2 after an orphan SpiderEndpoint", got)
	}
}
