package inlinecontroller

import (
	"context"
	"fmt"
	"strings"
	"time"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Event reasons on the NetworkAttachmentDefinition.
const (
	ReasonInvalid     = "InvalidInlineRanges"
	ReasonPoolRefused = "InlinePoolRefused"
	ReasonNotOwned    = "InlinePoolNotOwned"
	ReasonCreated     = "InlinePoolCreated"
	ReasonUpdated     = "InlinePoolUpdated"
	ReasonDeleted     = "InlinePoolDeleted"
)

// retryRefused is how often a pool the API server refused (its ranges
// overlap another pool's, say) is tried again without a change.
const retryRefused = 30 * time.Second

// Reconciler keeps the inline pools of NetworkAttachmentDefinitions.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=k8s.cni.cncf.io,resources=network-attachment-definitions,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile makes the inline pools of one NetworkAttachmentDefinition match
// its configuration.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ref := req.Namespace + "/" + req.Name
	logger := log.FromContext(ctx)
	var nad netv1.NetworkAttachmentDefinition
	var want *Network
	err := r.Client.Get(ctx, req.NamespacedName, &nad)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("failed to get NetworkAttachmentDefinition %q: %w", ref, err)
	case nad.DeletionTimestamp != nil:
	default:
		if want, err = Pools(&nad); err != nil {
			// Keep what exists: pods may hold addresses of it, and the
			// next edit of the configuration is reconciled anew.
			r.event(&nad, corev1.EventTypeWarning, ReasonInvalid, "Convert", "%v: fix the configuration; its pools are left as they are", err)
			return reconcile.Result{}, nil
		}
	}

	var list v2beta1.SpiderIPPoolList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{v2beta1.LabelInline: "true"}); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to list inline SpiderIPPools: %w", err)
	}
	have := map[string]*v2beta1.SpiderIPPool{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.Annotations[v2beta1.AnnoInlineNetwork] == ref {
			have[p.Name] = p
		}
	}

	var result reconcile.Result
	wanted := map[string]bool{}
	if want != nil {
		changed := false
		for i := range want.Pools {
			p := &want.Pools[i]
			wanted[p.Name] = true
			done, err := r.ensure(ctx, &nad, p, have[p.Name])
			if err != nil {
				return reconcile.Result{}, err
			}
			changed = changed || done == changedPool
			if done == retry {
				result.RequeueAfter = retryRefused
			}
		}
		if changed && len(want.Config.Ignored) > 0 {
			logger.Info("ignoring keys that only the previous IPAM plugin uses", "keys", strings.Join(want.Config.Ignored, ","))
		}
	}
	for name, p := range have {
		if wanted[name] || p.DeletionTimestamp != nil {
			continue
		}
		uid := p.UID
		if err := r.Client.Delete(ctx, p, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return reconcile.Result{}, fmt.Errorf("failed to delete SpiderIPPool %q of NetworkAttachmentDefinition %q: %w", name, ref, err)
		}
		logger.Info("deleted inline pool; it stays until its addresses are released", "pool", name)
		if nad.UID != "" && nad.DeletionTimestamp == nil {
			r.event(&nad, corev1.EventTypeNormal, ReasonDeleted, "Delete", "deleted SpiderIPPool %s: the configuration no longer has its range", name)
		}
	}
	return result, nil
}

type outcome int

const (
	unchanged outcome = iota
	changedPool
	retry
)

// ensure creates or updates one pool.
func (r *Reconciler) ensure(ctx context.Context, nad *netv1.NetworkAttachmentDefinition, want, cur *v2beta1.SpiderIPPool) (outcome, error) {
	if cur == nil {
		err := r.Client.Create(ctx, want)
		switch {
		case err == nil:
			r.event(nad, corev1.EventTypeNormal, ReasonCreated, "Create", "created SpiderIPPool %s (%s)", want.Name, want.Spec.Subnet)
			return changedPool, nil
		case apierrors.IsAlreadyExists(err):
			var other v2beta1.SpiderIPPool
			if gerr := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &other); gerr == nil && other.Annotations[v2beta1.AnnoInlineNetwork] != want.Annotations[v2beta1.AnnoInlineNetwork] {
				r.event(nad, corev1.EventTypeWarning, ReasonNotOwned, "Create",
					"SpiderIPPool %s already exists and does not belong to this network, so the network's range %s is not served: delete or rename that pool", want.Name, want.Spec.Subnet)
				return retry, nil
			}
			return retry, nil // our own, not in the cache yet
		case refused(err):
			r.event(nad, corev1.EventTypeWarning, ReasonPoolRefused, "Create", "SpiderIPPool %s for %s was refused: %v", want.Name, want.Spec.Subnet, err)
			return retry, nil
		default:
			return unchanged, fmt.Errorf("failed to create SpiderIPPool %q: %w", want.Name, err)
		}
	}
	if cur.DeletionTimestamp != nil {
		// A pool of an earlier network of this name, waiting for its
		// addresses to be released; its deletion brings us back.
		return retry, nil
	}
	if sameSpec(cur, want) {
		return unchanged, nil
	}
	upd := cur.DeepCopy()
	upd.Spec = want.Spec
	if sn := want.Labels[v2beta1.LabelSharedNetwork]; sn != "" {
		upd.Labels[v2beta1.LabelSharedNetwork] = sn
	} else {
		delete(upd.Labels, v2beta1.LabelSharedNetwork)
	}
	if err := r.Client.Update(ctx, upd); err != nil {
		if refused(err) {
			r.event(nad, corev1.EventTypeWarning, ReasonPoolRefused, "Update", "SpiderIPPool %s cannot take the new configuration: %v", want.Name, err)
			return retry, nil
		}
		return unchanged, fmt.Errorf("failed to update SpiderIPPool %q: %w", want.Name, err)
	}
	r.event(nad, corev1.EventTypeNormal, ReasonUpdated, "Update", "updated SpiderIPPool %s", want.Name)
	return changedPool, nil
}

// refused is an error of the request itself (the webhook or schema said
// no), not of the API server.
func refused(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsForbidden(err) || apierrors.IsBadRequest(err)
}

func (r *Reconciler) event(o runtime.Object, typ, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(o, nil, typ, reason, action, format, args...)
	}
}

// SetupWithManager registers the reconciler: NetworkAttachmentDefinitions,
// and their inline pools (a pool edited or gone is brought back).
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("inline-ranges").
		For(&netv1.NetworkAttachmentDefinition{}).
		Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(poolToNetwork)).
		Complete(r)
}

func poolToNetwork(_ context.Context, o client.Object) []reconcile.Request {
	ref := o.GetAnnotations()[v2beta1.AnnoInlineNetwork]
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || o.GetLabels()[v2beta1.LabelInline] != "true" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}
