// Package poolfinalizer keeps a SpiderIPPool that still has allocations from
// disappearing: every pool carries a finalizer, and a pool being deleted
// keeps it (with a Warning event naming the pods that hold addresses) until
// its last SpiderIPClaim is gone.
package poolfinalizer

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Finalizer is Spindle's pool finalizer.
const Finalizer = "spindle.spidernet.io/pool-in-use"

// LegacyFinalizer is the finalizer Spiderpool puts on its pools. It is
// removed together with Finalizer so pools created before a migration can be
// deleted.
const LegacyFinalizer = "spiderpool.spidernet.io"

// ReasonPoolInUse is the reason of the Warning event of a pool whose deletion
// waits for its allocations.
const ReasonPoolInUse = "PoolInUse"

// Reconciler manages the pool finalizer. Client is the cached client; Live
// reads claims straight from the API server, since removing the finalizer on
// a stale empty list would orphan allocations.
type Reconciler struct {
	Client   client.Client
	Live     client.Reader
	Recorder events.EventRecorder
	// RetryInterval is how often a blocked deletion is re-examined even
	// without claim events (default 30s).
	RetryInterval time.Duration
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile adds the finalizer to live pools and removes it from deleted
// pools without allocations.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pool v2beta1.SpiderIPPool
	if err := r.Client.Get(ctx, req.NamespacedName, &pool); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pool.DeletionTimestamp == nil {
		if controllerutil.ContainsFinalizer(&pool, Finalizer) {
			return reconcile.Result{}, nil
		}
		before := pool.DeepCopy()
		controllerutil.AddFinalizer(&pool, Finalizer)
		if err := r.Client.Patch(ctx, &pool, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return reconcile.Result{RequeueAfter: conflictRetry}, nil // the status counters moved on; read again
			}
			return reconcile.Result{}, fmt.Errorf("failed to add finalizer to SpiderIPPool %q: %w", pool.Name, err)
		}
		return reconcile.Result{}, nil
	}
	if !controllerutil.ContainsFinalizer(&pool, Finalizer) && !controllerutil.ContainsFinalizer(&pool, LegacyFinalizer) {
		return reconcile.Result{}, nil
	}
	var claims v2beta1.SpiderIPClaimList
	if err := r.Live.List(ctx, &claims, client.MatchingLabels{v2beta1.LabelPool: pool.Name}); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to list SpiderIPClaims of SpiderIPPool %q: %w", pool.Name, err)
	}
	if n := len(claims.Items); n > 0 {
		msg := InUseMessage(claims.Items)
		log.FromContext(ctx).Info("SpiderIPPool deletion waits for its allocations", "pool", pool.Name, "allocations", n)
		if r.Recorder != nil {
			r.Recorder.Eventf(&pool, nil, corev1.EventTypeWarning, ReasonPoolInUse, "Delete", "%s", msg)
		}
		return reconcile.Result{RequeueAfter: r.retry()}, nil
	}
	before := pool.DeepCopy()
	controllerutil.RemoveFinalizer(&pool, Finalizer)
	controllerutil.RemoveFinalizer(&pool, LegacyFinalizer)
	if err := r.Client.Patch(ctx, &pool, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		if apierrors.IsConflict(err) {
			// Another writer (the pool status counters, usually) got in
			// first: the finalizer list is patched under an optimistic
			// lock so no other finalizer is lost; read again.
			return reconcile.Result{RequeueAfter: conflictRetry}, nil
		}
		return reconcile.Result{}, fmt.Errorf("failed to remove finalizer from SpiderIPPool %q: %w", pool.Name, err)
	}
	return reconcile.Result{}, nil
}

// conflictRetry is how soon a pool is read again after its finalizer patch
// lost a race with another writer.
const conflictRetry = 500 * time.Millisecond

func (r *Reconciler) retry() time.Duration {
	if r.RetryInterval > 0 {
		return r.RetryInterval
	}
	return 30 * time.Second
}

// InUseMessage explains why a pool deletion waits, naming up to five holders.
func InUseMessage(claims []v2beta1.SpiderIPClaim) string {
	holders := make([]string, 0, len(claims))
	for _, c := range claims {
		holders = append(holders, fmt.Sprintf("%s (pod %s/%s)", c.Spec.Address, c.Spec.PodNamespace, c.Spec.PodName))
	}
	sort.Strings(holders)
	more := ""
	if len(holders) > 5 {
		more = fmt.Sprintf(" and %d more", len(holders)-5)
		holders = holders[:5]
	}
	return fmt.Sprintf("deletion waits until the pool's %d allocated address(es) are released: %s%s; delete those pods or move them to another pool, and the pool is removed once the last address is free",
		len(claims), strings.Join(holders, ", "), more)
}

// SetupWithManager registers the reconciler; claim deletions re-examine
// their pool at once.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("poolfinalizer").
		For(&v2beta1.SpiderIPPool{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletingPredicate()))).
		Watches(&v2beta1.SpiderIPClaim{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			p := o.GetLabels()[v2beta1.LabelPool]
			if p == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: p}}}
		}), builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
			UpdateFunc: func(event.UpdateEvent) bool { return false },
		})).
		Complete(r)
}

func deletingPredicate() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetDeletionTimestamp() != nil || !controllerutil.ContainsFinalizer(o, Finalizer)
	})
}
