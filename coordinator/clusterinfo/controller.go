package clusterinfo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

// Name is the name of the one SpiderCoordinator.
const Name = "default"

// Reconciler maintains the SpiderCoordinator "default".
type Reconciler struct {
	// Client is the cached client (SpiderCoordinator, Nodes) and writer.
	Client client.Client
	// Reader reads straight from the API server (ServiceCIDRs, ConfigMaps,
	// Pods in kube-system), so no cluster-wide informer is started for them.
	Reader   client.Reader
	Recorder events.EventRecorder
	// CreateDefault creates the "default" object when it is missing.
	CreateDefault bool
	// Resync is how often the status is recomputed without events.
	Resync time.Duration
	// SystemNamespace holds kubeadm-config, cilium-config and the
	// kube-controller-manager pods (default kube-system).
	SystemNamespace string
}

// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidercoordinators,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidercoordinators/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,verbs=list
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get
// +kubebuilder:rbac:groups="",resources=pods,verbs=list
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=crd.projectcalico.org,resources=ippools,verbs=list
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile recomputes the status of the "default" SpiderCoordinator.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if req.Name != Name {
		return reconcile.Result{}, nil // other names are refused by the webhook
	}
	var c v2beta1.SpiderCoordinator
	err := r.Client.Get(ctx, req.NamespacedName, &c)
	if apierrors.IsNotFound(err) {
		if !r.CreateDefault {
			return reconcile.Result{}, nil
		}
		c = DefaultObject()
		if err := r.Client.Create(ctx, &c); err != nil && !apierrors.IsAlreadyExists(err) {
			return reconcile.Result{}, fmt.Errorf("failed to create SpiderCoordinator %q: %w", Name, err)
		}
		log.FromContext(ctx).Info("created the default SpiderCoordinator")
		return reconcile.Result{RequeueAfter: time.Millisecond}, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to get SpiderCoordinator %q: %w", Name, err)
	}
	if c.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}

	podType := PodCIDRAuto
	if c.Spec.PodCIDRType != nil && *c.Spec.PodCIDRType != "" {
		podType = *c.Spec.PodCIDRType
	}
	svc, err := r.serviceCIDRs(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	var pod Found
	if podType != PodCIDRNone {
		if pod, err = r.podCIDRs(ctx, podType); err != nil {
			return reconcile.Result{}, err
		}
	}
	want := Status(svc, pod, podType != PodCIDRNone)
	if !reflect.DeepEqual(c.Status, want) {
		before := c.DeepCopy()
		c.Status = want
		if err := r.Client.Status().Patch(ctx, &c, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, fmt.Errorf("failed to update status of SpiderCoordinator %q: %w", Name, err)
		}
		if want.Phase != before.Status.Phase && r.Recorder != nil {
			typ, note := corev1.EventTypeNormal, "service CIDR "+strings.Join(want.ServiceCIDR, ",")+", pod CIDR "+strings.Join(want.OverlayPodCIDR, ",")
			if want.Phase == PhaseNotReady {
				typ, note = corev1.EventTypeWarning, want.Reason
			}
			r.Recorder.Eventf(&c, nil, typ, want.Phase, "Discover", "%s", note)
		}
	}
	if want.Phase == PhaseNotReady {
		// Retry sooner while something is missing, e.g. nodes not yet given
		// their pod CIDRs right after cluster start.
		return reconcile.Result{RequeueAfter: min(r.resync(), 10*time.Second)}, nil
	}
	return reconcile.Result{RequeueAfter: r.resync()}, nil
}

func (r *Reconciler) resync() time.Duration {
	if r.Resync > 0 {
		return r.Resync
	}
	return time.Minute
}

func (r *Reconciler) ns() string {
	if r.SystemNamespace != "" {
		return r.SystemNamespace
	}
	return "kube-system"
}

// DefaultObject is the SpiderCoordinator created when none exists.
func DefaultObject() v2beta1.SpiderCoordinator {
	mode, podType := v2beta1.CoordinatorModeAuto, PodCIDRAuto
	return v2beta1.SpiderCoordinator{
		ObjectMeta: metav1.ObjectMeta{Name: Name},
		Spec:       v2beta1.CoordinatorSpec{Mode: &mode, PodCIDRType: &podType},
	}
}

// notAvailable reports errors meaning "this API does not exist here".
func notAvailable(err error) bool {
	return meta.IsNoMatchError(err) || apierrors.IsNotFound(err) || runtime.IsNotRegisteredError(err) ||
		apierrors.IsMethodNotSupported(err)
}

// serviceCIDRs discovers the service CIDRs: the ServiceCIDR objects
// (networking.k8s.io/v1), else kubeadm-config, else the
// kube-controller-manager's --service-cluster-ip-range. Only API errors other
// than "not there" are returned as errors (and retried).
func (r *Reconciler) serviceCIDRs(ctx context.Context) (Found, error) {
	var tried []string
	var list networkingv1.ServiceCIDRList
	err := r.Reader.List(ctx, &list)
	switch {
	case err == nil:
		var cidrs []string
		for _, s := range list.Items {
			if s.DeletionTimestamp == nil {
				cidrs = append(cidrs, s.Spec.CIDRs...)
			}
		}
		if out, _ := NormalizeCIDRs(cidrs); len(out) > 0 {
			return Found{CIDRs: out, Source: "ServiceCIDR objects"}, nil
		}
		tried = append(tried, "no ServiceCIDR object")
	case notAvailable(err) || apierrors.IsForbidden(err):
		tried = append(tried, "ServiceCIDR API unavailable ("+shortErr(err)+")")
	default:
		return Found{}, fmt.Errorf("failed to list ServiceCIDRs: %w", err)
	}
	_, svc, problem, err := r.kubeadm(ctx)
	if err != nil {
		return Found{}, err
	}
	if out, _ := NormalizeCIDRs(svc); len(out) > 0 {
		return Found{CIDRs: out, Source: "kubeadm-config"}, nil
	}
	tried = append(tried, problem)
	_, svc, problem, err = r.controllerManager(ctx)
	if err != nil {
		return Found{}, err
	}
	if out, _ := NormalizeCIDRs(svc); len(out) > 0 {
		return Found{CIDRs: out, Source: "kube-controller-manager flags"}, nil
	}
	tried = append(tried, problem)
	return Found{Problem: strings.Join(tried, ", ") + ": create the ServiceCIDR object or set the service CIDR in kubeadm-config"}, nil
}

// podCIDRs discovers the overlay pod CIDRs for the pod CIDR type.
func (r *Reconciler) podCIDRs(ctx context.Context, podType string) (Found, error) {
	switch podType {
	case PodCIDRCalico:
		return r.calico(ctx)
	case PodCIDRCilium:
		return r.cilium(ctx)
	case PodCIDRAuto, PodCIDRCluster:
	default:
		return Found{Problem: fmt.Sprintf("unknown spec.podCIDRType %q: use auto, cluster, calico, cilium or none", podType)}, nil
	}
	var tried []string
	pod, _, problem, err := r.kubeadm(ctx)
	if err != nil {
		return Found{}, err
	}
	if out, _ := NormalizeCIDRs(pod); len(out) > 0 {
		return Found{CIDRs: out, Source: "kubeadm-config"}, nil
	}
	tried = append(tried, problem)
	pod, _, problem, err = r.controllerManager(ctx)
	if err != nil {
		return Found{}, err
	}
	if out, _ := NormalizeCIDRs(pod); len(out) > 0 {
		return Found{CIDRs: out, Source: "kube-controller-manager flags"}, nil
	}
	tried = append(tried, problem)
	var nodes corev1.NodeList
	if err := r.Client.List(ctx, &nodes); err != nil {
		return Found{}, fmt.Errorf("failed to list nodes: %w", err)
	}
	var cidrs []string
	for _, n := range nodes.Items {
		cidrs = append(cidrs, n.Spec.PodCIDRs...)
		if len(n.Spec.PodCIDRs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = append(cidrs, n.Spec.PodCIDR)
		}
	}
	if out, _ := NormalizeCIDRs(cidrs); len(out) > 0 {
		return Found{CIDRs: out, Source: "node podCIDRs"}, nil
	}
	tried = append(tried, "no node has spec.podCIDRs")
	return Found{Problem: strings.Join(tried, ", ") + ": set podSubnet in kubeadm-config, run kube-controller-manager with --allocate-node-cidrs, or set spec.podCIDRType (none when there is no overlay network)"}, nil
}

// kubeadm reads the kubeadm-config ConfigMap.
func (r *Reconciler) kubeadm(ctx context.Context) (pod, svc []string, problem string, err error) {
	var cm corev1.ConfigMap
	key := types.NamespacedName{Namespace: r.ns(), Name: "kubeadm-config"}
	if err := r.Reader.Get(ctx, key, &cm); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil, nil, "no kubeadm-config ConfigMap in " + r.ns(), nil
		}
		return nil, nil, "", fmt.Errorf("failed to get ConfigMap %q: %w", key, err)
	}
	pod, svc, perr := KubeadmNetworking(cm.Data["ClusterConfiguration"])
	if perr != nil {
		return nil, nil, "kubeadm-config: " + perr.Error(), nil
	}
	return pod, svc, "kubeadm-config has no networking.podSubnet/serviceSubnet", nil
}

// controllerManager reads the flags of kube-controller-manager pods.
func (r *Reconciler) controllerManager(ctx context.Context) (pod, svc []string, problem string, err error) {
	var pods corev1.PodList
	if err := r.Reader.List(ctx, &pods, client.InNamespace(r.ns()), client.MatchingLabels{"component": "kube-controller-manager"}); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, nil, "kube-controller-manager pods not readable", nil
		}
		return nil, nil, "", fmt.Errorf("failed to list kube-controller-manager pods: %w", err)
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			cc, sr := ControllerManagerFlags(append(append([]string{}, c.Command...), c.Args...))
			pod, svc = append(pod, cc...), append(svc, sr...)
		}
	}
	if len(pods.Items) == 0 {
		return nil, nil, "no kube-controller-manager pod in " + r.ns(), nil
	}
	return pod, svc, "kube-controller-manager has no --cluster-cidr/--service-cluster-ip-range", nil
}

var calicoPools = schema.GroupVersionKind{Group: "crd.projectcalico.org", Version: "v1", Kind: "IPPoolList"}

func (r *Reconciler) calico(ctx context.Context) (Found, error) {
	var list unstructured.UnstructuredList
	list.SetGroupVersionKind(calicoPools)
	if err := r.Reader.List(ctx, &list); err != nil {
		if notAvailable(err) || apierrors.IsForbidden(err) {
			return Found{Problem: "Calico IPPools unavailable (" + shortErr(err) + "): install Calico or change spec.podCIDRType"}, nil
		}
		return Found{}, fmt.Errorf("failed to list Calico IPPools: %w", err)
	}
	var cidrs []string
	for _, item := range list.Items {
		if disabled, _, _ := unstructured.NestedBool(item.Object, "spec", "disabled"); disabled {
			continue
		}
		if c, ok, _ := unstructured.NestedString(item.Object, "spec", "cidr"); ok {
			cidrs = append(cidrs, c)
		}
	}
	if out, _ := NormalizeCIDRs(cidrs); len(out) > 0 {
		return Found{CIDRs: out, Source: "Calico IPPools"}, nil
	}
	return Found{Problem: "no enabled Calico IPPool: create one or change spec.podCIDRType"}, nil
}

func (r *Reconciler) cilium(ctx context.Context) (Found, error) {
	var cm corev1.ConfigMap
	key := types.NamespacedName{Namespace: r.ns(), Name: "cilium-config"}
	if err := r.Reader.Get(ctx, key, &cm); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return Found{Problem: "no cilium-config ConfigMap in " + r.ns() + ": install Cilium or change spec.podCIDRType"}, nil
		}
		return Found{}, fmt.Errorf("failed to get ConfigMap %q: %w", key, err)
	}
	var cidrs []string
	for _, k := range []string{"cluster-pool-ipv4-cidr", "cluster-pool-ipv6-cidr"} {
		cidrs = append(cidrs, strings.Fields(strings.ReplaceAll(cm.Data[k], ",", " "))...)
	}
	if out, _ := NormalizeCIDRs(cidrs); len(out) > 0 {
		return Found{CIDRs: out, Source: "cilium-config"}, nil
	}
	return Found{Problem: "cilium-config has no cluster-pool-ipv4-cidr/cluster-pool-ipv6-cidr: set them or change spec.podCIDRType"}, nil
}

func shortErr(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return string(se.Status().Reason)
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// SetupWithManager registers the reconciler. A start-up event makes it
// create or refresh "default" at once.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	kick := make(chan event.TypedGenericEvent[reconcile.Request], 1)
	kick <- event.TypedGenericEvent[reconcile.Request]{Object: reconcile.Request{NamespacedName: types.NamespacedName{Name: Name}}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("coordinatorstatus").
		For(&v2beta1.SpiderCoordinator{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(kick, handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, r reconcile.Request) []reconcile.Request {
			return []reconcile.Request{r}
		}))).
		Complete(r)
}
