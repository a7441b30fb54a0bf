// Package poolstatus keeps the counters of SpiderIPPool status
// (allocatedIPCount, totalIPCount) in step with the SpiderIPClaims of each
// pool. Agents never write pool status on the allocation path; this
// reconciler recounts a pool from the informer cache (claims indexed by
// pool) at most about once per debounce interval and patches the status only
// when a counter differs.
package poolstatus

import (
	"context"
	"fmt"
	"math"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/store"
)

// DefaultDebounce coalesces the claim events of a burst into one recount.
const DefaultDebounce = time.Second

// Reconciler recounts one pool per request and publishes the counters as the
// gauges spindle_controller_ippool_allocated_ips and
// spindle_controller_ippool_total_ips (label pool).
type Reconciler struct {
	Client   client.Client
	Debounce time.Duration
}

// Counts are a pool's status counters.
type Counts struct {
	Allocated int64
	Total     *int64 // nil when the pool is invalid
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims;spiderreservedips,verbs=get;list;watch

// Reconcile recounts the pool and patches its status when it differs.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pool := &v2beta1.SpiderIPPool{}
	if err := r.Client.Get(ctx, req.NamespacedName, pool); err != nil {
		if apierrors.IsNotFound(err) {
			forget(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("failed to get SpiderIPPool %q: %w", req.Name, err)
	}
	counts, err := r.Count(ctx, pool)
	if err != nil {
		return reconcile.Result{}, err
	}
	observe(pool, counts)
	if eq(pool.Status.AllocatedIPCount, &counts.Allocated) && eq(pool.Status.TotalIPCount, counts.Total) {
		return reconcile.Result{}, nil
	}
	orig := pool.DeepCopy()
	allocated := counts.Allocated
	pool.Status.AllocatedIPCount = &allocated
	pool.Status.TotalIPCount = counts.Total
	if err := r.Client.Status().Patch(ctx, pool, client.MergeFrom(orig)); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to patch SpiderIPPool status %q: %w", pool.Name, err)
	}
	log.FromContext(ctx).V(1).Info("pool counters updated", "allocated", allocated, "total", deref(counts.Total))
	return reconcile.Result{}, nil
}

// Count computes the counters of pool from the cache: allocated is the number
// of claims of the pool; total is the number of addresses the pool can hand
// out (spec.ips minus excludeIPs, the gateway and reserved addresses).
func (r *Reconciler) Count(ctx context.Context, pool *v2beta1.SpiderIPPool) (Counts, error) {
	claims := &v2beta1.SpiderIPClaimList{}
	if err := r.Client.List(ctx, claims, client.MatchingFields{store.IndexClaimByPool: pool.Name}); err != nil {
		return Counts{}, fmt.Errorf("failed to list SpiderIPClaims of pool %q: %w", pool.Name, err)
	}
	c := Counts{Allocated: int64(len(claims.Items))}
	fam, err := ranges.PoolFamily(&pool.Spec)
	if err != nil {
		return c, nil
	}
	resList := &v2beta1.SpiderReservedIPList{}
	if err := r.Client.List(ctx, resList); err != nil {
		return Counts{}, fmt.Errorf("failed to list SpiderReservedIPs: %w", err)
	}
	res := make([]*v2beta1.SpiderReservedIP, len(resList.Items))
	for i := range resList.Items {
		res[i] = &resList.Items[i]
	}
	reserved, err := ranges.ParseReserved(res, fam)
	if err != nil {
		return c, nil
	}
	layout, err := ranges.ParsePool(&pool.Spec, reserved)
	if err != nil {
		return c, nil
	}
	// IPv6 pools can hold more addresses than an int64 counts: the status
	// field saturates instead of wrapping negative.
	total := int64(math.MaxInt64)
	if n := layout.Usable.Count(); n < math.MaxInt64 {
		total = int64(n)
	}
	c.Total = &total
	return c, nil
}

// SetupWithManager registers the claim index and the controller.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	registerMetrics()
	if r.Debounce == 0 {
		r.Debounce = DefaultDebounce
	}
	if err := store.IndexClaims(context.Background(), mgr.GetFieldIndexer(), store.IndexClaimByPool); err != nil {
		return err
	}
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	debounced := handler.TypedFuncs[client.Object, reconcile.Request]{
		CreateFunc: func(_ context.Context, e event.TypedCreateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueClaim(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.TypedUpdateEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueClaim(e.ObjectOld, q)
			r.enqueueClaim(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.TypedDeleteEvent[client.Object], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueClaim(e.Object, q)
		},
	}
	allPools := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		pools := &v2beta1.SpiderIPPoolList{}
		if err := r.Client.List(ctx, pools); err != nil {
			return nil
		}
		out := make([]reconcile.Request, len(pools.Items))
		for i := range pools.Items {
			out[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: pools.Items[i].Name}}
		}
		return out
	})
	return builder.ControllerManagedBy(mgr).
		Named("poolstatus").
		For(&v2beta1.SpiderIPPool{}).
		Watches(&v2beta1.SpiderIPClaim{}, debounced).
		Watches(&v2beta1.SpiderReservedIP{}, allPools).
		Complete(r)
}

// enqueueClaim queues the claim's pool after the debounce interval; the
// delaying queue keeps one entry per pool, so a burst costs one recount.
func (r *Reconciler) enqueueClaim(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	c, ok := o.(*v2beta1.SpiderIPClaim)
	if !ok || c.Spec.Pool == "" {
		return
	}
	q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: c.Spec.Pool}}, r.Debounce)
}

func eq(a, b *int64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}
