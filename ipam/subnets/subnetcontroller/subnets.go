// Package subnetcontroller runs the SpiderSubnet controllers: one adopts
// the pools of every subnet and counts them (package subnets decides how),
// the other carves pools for applications out of subnets.
package subnetcontroller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets/status,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;update

// Reconciler adopts the pools of every SpiderSubnet (subnets.Adopt) and
// keeps its status equal to a recount of them (subnets.Status). A pool event reconciles the
// subnet of its prefix, so the order in which a subnet and its pools are
// created does not matter.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// Reconcile handles one SpiderSubnet.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var s v2beta1.SpiderSubnet
	if err := r.Client.Get(ctx, req.NamespacedName, &s); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if s.DeletionTimestamp != nil {
		return reconcile.Result{}, nil // its pools follow through their owner reference
	}
	l, err := subnets.Parse(&s)
	if err != nil {
		return reconcile.Result{}, nil // the webhook refuses such subnets; nothing to count
	}
	var subs v2beta1.SpiderSubnetList
	if err := r.Client.List(ctx, &subs); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to list SpiderSubnets: %w", err)
	}
	if o := subnets.Shadowing(&s, subs.Items); o != nil {
		if r.Recorder != nil {
			r.Recorder.Eventf(&s, o, corev1.EventTypeWarning, ReasonSubnetOverlaps, "Check",
				"SpiderSubnet %q (%s) overlaps SpiderSubnet %q (%s), created before it, so it adopts no pools and gives no addresses: delete it, or give it a disjoint subnet",
				s.Name, s.Spec.Subnet, o.Name, o.Spec.Subnet)
		}
		return reconcile.Result{}, nil
	}
	var list v2beta1.SpiderIPPoolList
	if err := r.Client.List(ctx, &list); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	var pools []*v2beta1.SpiderIPPool
	for i := range list.Items {
		p := &list.Items[i]
		if of := subnets.Of(p, subs.Items); of == nil || of.Name != s.Name || p.DeletionTimestamp != nil {
			continue
		}
		pools = append(pools, p)
		if out, err := subnets.Outside(l, p); err == nil && !out.Empty() && r.Recorder != nil {
			r.Recorder.Eventf(&s, p, corev1.EventTypeWarning, ReasonPoolOutsideSubnet, "Check",
				"SpiderIPPool %q uses %v, which SpiderSubnet %q does not give to pools: add them to the subnet's ips or remove them from the pool", p.Name, out.Strings(), s.Name)
		}
		want := p.DeepCopy()
		if !subnets.Adopt(want, &s) {
			continue
		}
		if err := r.Client.Update(ctx, want); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
				return reconcile.Result{RequeueAfter: time.Second}, nil
			}
			return reconcile.Result{}, fmt.Errorf("failed to adopt SpiderIPPool %q into SpiderSubnet %q: %w", p.Name, s.Name, err)
		}
		log.FromContext(ctx).Info("adopted pool", "pool", p.Name, "subnet", s.Name)
	}
	st := subnets.Status(l, pools)
	if equality.Semantic.DeepEqual(st, s.Status) {
		return reconcile.Result{}, nil
	}
	s.Status = st
	if err := r.Client.Status().Update(ctx, &s); err != nil {
		if apierrors.IsConflict(err) {
			return reconcile.Result{RequeueAfter: time.Second}, nil
		}
		return reconcile.Result{}, fmt.Errorf("failed to update the status of SpiderSubnet %q: %w", s.Name, err)
	}
	return reconcile.Result{}, nil
}

// SetupWithManager registers the reconciler: SpiderSubnets, and pools
// mapped to the subnet of their prefix.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	// pkg/builder, not the root package, whose flags clash with tests that
	// import this package for its pure functions.
	return builder.ControllerManagedBy(mgr).
		Named("subnets").
		For(&v2beta1.SpiderSubnet{}).
		// A subnet that another overlapping one shadowed takes over when
		// that one goes.
		Watches(&v2beta1.SpiderSubnet{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			s, ok := o.(*v2beta1.SpiderSubnet)
			if !ok {
				return nil
			}
			var subs v2beta1.SpiderSubnetList
			if err := r.Client.List(ctx, &subs); err != nil {
				log.FromContext(ctx).Error(err, "failed to list SpiderSubnets for a subnet event", "subnet", s.Name)
				return nil
			}
			var out []reconcile.Request
			for i := range subs.Items {
				if subs.Items[i].Name != s.Name && subnets.Overlap(s, &subs.Items[i]) {
					out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&subs.Items[i])})
				}
			}
			return out
		})).
		Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			p, ok := o.(*v2beta1.SpiderIPPool)
			if !ok {
				return nil
			}
			var subs v2beta1.SpiderSubnetList
			if err := r.Client.List(ctx, &subs); err != nil {
				log.FromContext(ctx).Error(err, "failed to list SpiderSubnets for a pool event", "pool", p.Name)
				return nil
			}
			if s := subnets.Of(p, subs.Items); s != nil {
				return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(s)}}
			}
			return nil
		})).
		Complete(r)
}
