// Package controller keeps each SpiderMultusConfig's
// NetworkAttachmentDefinition in line with it. The generated object is owned
// (controller reference) by the SpiderMultusConfig, so deleting the
// SpiderMultusConfig deletes it through the garbage collector. An existing
// NetworkAttachmentDefinition that the SpiderMultusConfig does not own is
// never modified: a Warning event on the SpiderMultusConfig says so.
package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	netv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/nad"
)

// Event reasons on the SpiderMultusConfig.
const (
	ReasonNotOwned      = "NetworkAttachmentDefinitionNotOwned"
	ReasonInvalidConfig = "InvalidConfig"
	ReasonCreated       = "NetworkAttachmentDefinitionCreated"
	ReasonUpdated       = "NetworkAttachmentDefinitionUpdated"
)

// Reconciler reconciles SpiderMultusConfigs.
type Reconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidermultusconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=k8s.cni.cncf.io,resources=network-attachment-definitions,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile makes the NetworkAttachmentDefinition of one SpiderMultusConfig
// match it.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var smc v2beta1.SpiderMultusConfig
	if err := r.Client.Get(ctx, req.NamespacedName, &smc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if smc.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	want, err := nad.Generate(&smc)
	if err != nil {
		r.event(&smc, corev1.EventTypeWarning, ReasonInvalidConfig, "Generate", "%v: fix the SpiderMultusConfig", err)
		return reconcile.Result{}, nil // nothing to retry until the object changes
	}
	if err := controllerutil.SetControllerReference(&smc, want, r.Scheme); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to set owner of NetworkAttachmentDefinition %q: %w", req.Namespace+"/"+want.Name, err)
	}
	if err := r.deleteRenamed(ctx, &smc, want.Name); err != nil {
		return reconcile.Result{}, err
	}

	var cur netv1.NetworkAttachmentDefinition
	err = r.Client.Get(ctx, client.ObjectKeyFromObject(want), &cur)
	if apierrors.IsNotFound(err) {
		if err := r.Client.Create(ctx, want); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return reconcile.Result{RequeueAfter: time.Millisecond}, nil
			}
			if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
				// The namespace is going away with this SpiderMultusConfig:
				// nothing to create, nothing to retry.
				return reconcile.Result{}, nil
			}
			return reconcile.Result{}, fmt.Errorf("failed to create NetworkAttachmentDefinition %q: %w", req.Namespace+"/"+want.Name, err)
		}
		r.event(&smc, corev1.EventTypeNormal, ReasonCreated, "Create", "created NetworkAttachmentDefinition %s", want.Name)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to get NetworkAttachmentDefinition %q: %w", req.Namespace+"/"+want.Name, err)
	}
	if !ownedBy(&cur, &smc) {
		r.event(&smc, corev1.EventTypeWarning, ReasonNotOwned, "Reconcile",
			"NetworkAttachmentDefinition %s/%s already exists and is not managed by this SpiderMultusConfig, so it is left unchanged: delete it to let this SpiderMultusConfig create its own, or set the annotation %s to generate one under another name",
			cur.Namespace, cur.Name, v2beta1.AnnoMultusCRName)
		return reconcile.Result{}, nil
	}
	if cur.Spec.Config == want.Spec.Config && annotationsMatch(cur.Annotations, want.Annotations) {
		return reconcile.Result{}, nil
	}
	cur.Spec.Config = want.Spec.Config
	if cur.Annotations == nil && len(want.Annotations) > 0 {
		cur.Annotations = map[string]string{}
	}
	delete(cur.Annotations, nad.ResourceNameAnnotation)
	maps.Copy(cur.Annotations, want.Annotations)
	if err := r.Client.Update(ctx, &cur); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to update NetworkAttachmentDefinition %q: %w", req.Namespace+"/"+cur.Name, err)
	}
	r.event(&smc, corev1.EventTypeNormal, ReasonUpdated, "Update", "updated NetworkAttachmentDefinition %s", cur.Name)
	log.FromContext(ctx).Info("updated NetworkAttachmentDefinition", "name", cur.Name)
	return reconcile.Result{}, nil
}

// deleteRenamed deletes NetworkAttachmentDefinitions this SpiderMultusConfig
// owns under another name (left behind by a change of the cr-name
// annotation).
func (r *Reconciler) deleteRenamed(ctx context.Context, smc *v2beta1.SpiderMultusConfig, name string) error {
	var list netv1.NetworkAttachmentDefinitionList
	if err := r.Client.List(ctx, &list, client.InNamespace(smc.Namespace)); err != nil {
		return fmt.Errorf("failed to list NetworkAttachmentDefinitions in %q: %w", smc.Namespace, err)
	}
	for i := range list.Items {
		n := &list.Items[i]
		if n.Name == name || !ownedBy(n, smc) {
			continue
		}
		uid := n.UID
		if err := r.Client.Delete(ctx, n, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("failed to delete NetworkAttachmentDefinition %q: %w", n.Namespace+"/"+n.Name, err)
		}
	}
	return nil
}

func ownedBy(o metav1.Object, smc *v2beta1.SpiderMultusConfig) bool {
	ref := metav1.GetControllerOf(o)
	return ref != nil && ref.UID == smc.UID && ref.Kind == "SpiderMultusConfig"
}

func annotationsMatch(cur, want map[string]string) bool {
	if cur[nad.ResourceNameAnnotation] != want[nad.ResourceNameAnnotation] {
		return false
	}
	for k, v := range want {
		if cur[k] != v {
			return false
		}
	}
	return true
}

func (r *Reconciler) event(o runtime.Object, typ, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(o, nil, typ, reason, action, format, args...)
	}
}

// SetupWithManager registers the reconciler; changes to a generated
// NetworkAttachmentDefinition (edits, deletion) bring it back in line.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("multusconfig").
		For(&v2beta1.SpiderMultusConfig{}).
		Watches(&netv1.NetworkAttachmentDefinition{}, handler.EnqueueRequestsFromMapFunc(nadToConfig)).
		Complete(r)
}

// nadToConfig maps a NetworkAttachmentDefinition to the SpiderMultusConfig
// that owns it and to the one of the same name (which may be waiting for a
// foreign object of its name to go away).
func nadToConfig(_ context.Context, o client.Object) []reconcile.Request {
	out := []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}}}
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "SpiderMultusConfig" && ref.Name != o.GetName() {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}})
	}
	return out
}
