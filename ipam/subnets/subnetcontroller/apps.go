package subnetcontroller

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// +kubebuilder:rbac:groups=apps,resources=deployments;replicasets;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=create;delete
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims,verbs=list
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// AppReconciler carves a pool per interface and family out of a
// SpiderSubnet for every application whose pod template carries
// ipam.spidernet.io/subnet(s), and sizes it to the application's replicas
// (ipam.spidernet.io/ippool-ip-number). Requests are named "Kind/name" in
// the application's namespace.
//
// Pods of a third-party controller (a kind outside subnets.AppKinds) are
// served too: the controller is known from their owner reference and their
// annotations, its replicas are not, so its pools have the fixed size the
// pods ask for and are kept when it is gone.
//
// Carving is serialised: one application at a time reads every pool from
// the API server (not a cache) and writes its own, so two applications never
// take the same addresses; the webhook refuses overlapping pools besides,
// and each allocated address is its own SpiderIPClaim.
type AppReconciler struct {
	Client   client.Client
	Live     client.Reader
	Recorder events.EventRecorder
	// DefaultSpare is the spare addresses of an application that does not
	// set ippool-ip-number ("+DefaultSpare").
	DefaultSpare int
	// DefaultSubnet names the cluster default subnets (empty: none): an
	// application of a kind in subnets.AppKinds that names no pools,
	// subnets or addresses gets eth0's pools carved from them.
	DefaultSubnet annotations.SubnetRequest

	mu sync.Mutex
}

// app is an application as the carving sees it.
type app struct {
	id  subnets.App
	obj client.Object // the application, or a pod of a third-party one
	// annotations are the pool and address annotations in effect for its
	// pods: the pod template's, or the application's own when the template
	// has none (as the agent reads them).
	annotations map[string]string
	replicas    int
	hostNetwork bool
}

// appKinds make the objects of subnets.AppKinds.
var appKinds = map[string]func() client.Object{
	"Deployment":  func() client.Object { return &appsv1.Deployment{} },
	"ReplicaSet":  func() client.Object { return &appsv1.ReplicaSet{} },
	"StatefulSet": func() client.Object { return &appsv1.StatefulSet{} },
	"DaemonSet":   func() client.Object { return &appsv1.DaemonSet{} },
	"Job":         func() client.Object { return &batchv1.Job{} },
	"CronJob":     func() client.Object { return &batchv1.CronJob{} },
}

// appOf reads the application of a request; nil when it is gone or when
// another application controls it (a Deployment's ReplicaSet, a CronJob's
// Job: its pods belong to the top controller).
func (r *AppReconciler) appOf(ctx context.Context, req reconcile.Request) (*app, error) {
	kind, name, ok := strings.Cut(req.Name, "/")
	if !ok {
		return nil, nil
	}
	mk, known := appKinds[kind]
	if !known {
		return r.thirdPartyApp(ctx, req.Namespace, kind, name)
	}
	obj := mk()
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: req.Namespace, Name: name}, obj); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if ref := metav1.GetControllerOf(obj); ref != nil && appKinds[ref.Kind] != nil || obj.GetDeletionTimestamp() != nil {
		return nil, nil
	}
	a := &app{id: subnets.App{Kind: kind, Namespace: req.Namespace, Name: name, UID: string(obj.GetUID())}, obj: obj}
	one := func(p *int32) int {
		if p == nil {
			return 1
		}
		return int(*p)
	}
	tmpl := podTemplate(obj)
	a.annotations, a.hostNetwork = tmpl.Annotations, tmpl.Spec.HostNetwork
	if !annotations.HasRequest(a.annotations) && annotations.HasRequest(obj.GetAnnotations()) {
		a.annotations = obj.GetAnnotations()
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		a.replicas = one(o.Spec.Replicas)
	case *appsv1.ReplicaSet:
		a.replicas = one(o.Spec.Replicas)
	case *appsv1.StatefulSet:
		a.replicas = one(o.Spec.Replicas)
	case *appsv1.DaemonSet:
		a.replicas = int(o.Status.DesiredNumberScheduled)
	case *batchv1.Job:
		a.replicas = one(o.Spec.Parallelism)
	case *batchv1.CronJob:
		a.replicas = one(o.Spec.JobTemplate.Spec.Parallelism)
	}
	return a, nil
}

// podTemplate returns the pod template of an object of appKinds.
func podTemplate(obj client.Object) *corev1.PodTemplateSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template
	case *appsv1.ReplicaSet:
		return &o.Spec.Template
	case *appsv1.StatefulSet:
		return &o.Spec.Template
	case *appsv1.DaemonSet:
		return &o.Spec.Template
	case *batchv1.Job:
		return &o.Spec.Template
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template
	}
	return &corev1.PodTemplateSpec{}
}

// thirdPartyApp finds a third-party application by its pods (its object is
// of a kind the controller may not read): its UID is in their owner
// reference, and their annotations are its pod template's. nil when it has
// no pod asking for subnets.
func (r *AppReconciler) thirdPartyApp(ctx context.Context, ns, kind, name string) (*app, error) {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("failed to list the pods of %s %s/%s: %w", kind, ns, name, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		ref := metav1.GetControllerOf(p)
		if ref == nil || ref.Kind != kind || ref.Name != name || p.DeletionTimestamp != nil || !asksForSubnets(p.Annotations) {
			continue
		}
		return &app{id: subnets.App{Kind: kind, Namespace: ns, Name: name, UID: string(ref.UID)}, obj: p, annotations: p.Annotations}, nil
	}
	return nil, nil
}

// thirdPartyKey is the request of pod's third-party controller, when it
// has one and the pod asks for subnets.
func thirdPartyKey(pod *corev1.Pod) (reconcile.Request, bool) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil || subnets.IsAppKind(ref.APIVersion, ref.Kind) || appKinds[ref.Kind] != nil || !asksForSubnets(pod.Annotations) {
		return reconcile.Request{}, false
	}
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pod.Namespace, Name: ref.Kind + "/" + ref.Name}}, true
}

func asksForSubnets(ann map[string]string) bool {
	_, one := ann[annotations.SubnetOne]
	_, many := ann[annotations.SubnetMany]
	return one || many
}

// Reconcile carves or resizes the pools of one application.
func (r *AppReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	a, err := r.appOf(ctx, req)
	if err != nil {
		return reconcile.Result{}, err
	}
	if a == nil {
		return reconcile.Result{}, r.reclaim(ctx, req)
	}
	def := &r.DefaultSubnet
	if a.id.ThirdParty() || a.hostNetwork {
		def = nil
	}
	want, ok, err := annotations.AppSubnetsOrDefault(a.annotations, r.DefaultSpare, def)
	if err != nil {
		r.event(a, corev1.EventTypeWarning, ReasonInvalidSubnetAnnotation, "failed to carve pools for %s: %v", a.id, err)
		return reconcile.Result{}, nil
	}
	if !ok {
		return reconcile.Result{}, nil
	}
	if a.id.ThirdParty() {
		if want.IPNumber.Flexible {
			r.event(a, corev1.EventTypeWarning, ReasonFixedIPNumberRequired, "failed to carve pools for %s: the replicas of a third-party controller are unknown to Spindle; set %q to a fixed number of addresses such as \"5\"",
				a.id, annotations.PoolIPNumber)
			return reconcile.Result{}, nil
		}
		// Nothing tells when a third-party application is gone.
		want.Reclaim = false
	}
	size := want.IPNumber.Size(a.replicas)
	var retry bool
	for _, iface := range want.Interfaces {
		for _, f := range []struct {
			fam    ranges.Family
			subnet string
		}{{ranges.V4, iface.IPv4}, {ranges.V6, iface.IPv6}} {
			if f.subnet == "" {
				continue
			}
			short, err := r.carve(ctx, a, iface.Interface, f.fam, f.subnet, size, want.Reclaim)
			if err != nil {
				return reconcile.Result{}, err
			}
			retry = retry || short
		}
	}
	if retry {
		// The subnet may get addresses, or other applications shrink.
		return reconcile.Result{RequeueAfter: 30 * time.Second}, nil
	}
	return reconcile.Result{}, nil
}

// carve creates or resizes a's pool for iface and family from subnet, one
// application at a time. It reports whether the pool is short of
// addresses.
func (r *AppReconciler) carve(ctx context.Context, a *app, iface string, fam ranges.Family, subnetName string, size int, reclaim bool) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sub v2beta1.SpiderSubnet
	if err := r.Live.Get(ctx, client.ObjectKey{Name: subnetName}, &sub); err != nil {
		if apierrors.IsNotFound(err) {
			r.event(a, corev1.EventTypeWarning, ReasonSubnetNotFound, "SpiderSubnet %q named by the pod template of %s does not exist; create it", subnetName, a.id)
			return true, nil
		}
		return false, fmt.Errorf("failed to get SpiderSubnet %q: %w", subnetName, err)
	}
	l, err := subnets.Parse(&sub)
	if err != nil || ranges.FamilyOf(l.Subnet.Addr()) != fam {
		r.event(a, corev1.EventTypeWarning, ReasonInvalidSubnet, "SpiderSubnet %q cannot give %s addresses to %s (interface %s)", subnetName, fam, a.id, iface)
		return false, nil
	}
	var subs v2beta1.SpiderSubnetList
	if err := r.Live.List(ctx, &subs); err != nil {
		return false, fmt.Errorf("failed to list SpiderSubnets: %w", err)
	}
	if o := subnets.Shadowing(&sub, subs.Items); o != nil {
		r.event(a, corev1.EventTypeWarning, ReasonSubnetOverlaps, "SpiderSubnet %q named for %s (interface %s) overlaps SpiderSubnet %q, created before it, and gives no addresses; name %q or a disjoint subnet",
			subnetName, a.id, iface, o.Name, o.Name)
		return true, nil
	}
	name := subnets.AutoPoolName(a.id, iface, fam)
	var pools v2beta1.SpiderIPPoolList
	if err := r.Live.List(ctx, &pools); err != nil {
		return false, fmt.Errorf("failed to list SpiderIPPools: %w", err)
	}
	var cur *v2beta1.SpiderIPPool
	var taken ranges.Set
	for i := range pools.Items {
		p := &pools.Items[i]
		if p.Name == name {
			cur = p
			continue
		}
		if subnets.Of(p, []v2beta1.SpiderSubnet{sub}) == nil {
			continue
		}
		if pl, err := ranges.ParsePool(&p.Spec, ranges.Set{}); err == nil {
			taken = taken.Union(pl.IPs)
		}
	}
	var have, held ranges.Set
	if cur != nil {
		pl, err := ranges.ParsePool(&cur.Spec, ranges.Set{})
		if err == nil {
			have = pl.IPs
		}
		var claims v2beta1.SpiderIPClaimList
		if err := r.Live.List(ctx, &claims, client.MatchingLabels{v2beta1.LabelPool: name}); err != nil {
			return false, fmt.Errorf("failed to list the claims of SpiderIPPool %q: %w", name, err)
		}
		for _, c := range claims.Items {
			if ad, err := netip.ParseAddr(c.Spec.Address); err == nil {
				held = held.Union(ranges.NewSet(ranges.Range{First: ad, Last: ad}))
			}
		}
	}
	ips, short := subnets.Carve(l.Usable, taken, have, held, size)
	if short > 0 {
		r.event(a, corev1.EventTypeWarning, ReasonSubnetExhausted, "SpiderSubnet %q has %d free addresses too few for pool %q of %s (wants %d)", subnetName, short, name, a.id, size)
	}
	want := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if cur != nil {
		want = cur.DeepCopy()
	}
	if want.Labels == nil {
		want.Labels = map[string]string{}
	}
	for k, v := range subnets.AutoPoolLabels(a.id, iface, reclaim) {
		want.Labels[k] = v
	}
	want.Spec.Subnet = l.Subnet.String()
	want.Spec.IPs = ips.Strings()
	want.Spec.PodAffinity = subnets.AppAffinity(a.id)
	if cur == nil {
		if ips.Empty() {
			return true, nil // nothing to create a pool with yet
		}
		if err := r.Client.Create(ctx, want); err != nil {
			return false, fmt.Errorf("failed to create SpiderIPPool %q for %s: %w", name, a.id, err)
		}
		log.FromContext(ctx).Info("carved pool", "pool", name, "app", a.id.String(), "ips", want.Spec.IPs)
		return short > 0, nil
	}
	if equality.Semantic.DeepEqual(want.Spec, cur.Spec) && equality.Semantic.DeepEqual(want.Labels, cur.Labels) &&
		equality.Semantic.DeepEqual(want.OwnerReferences, cur.OwnerReferences) {
		return short > 0, nil
	}
	if err := r.Client.Update(ctx, want); err != nil {
		return false, fmt.Errorf("failed to resize SpiderIPPool %q for %s: %w", name, a.id, err)
	}
	log.FromContext(ctx).Info("resized pool", "pool", name, "app", a.id.String(), "ips", want.Spec.IPs)
	return short > 0, nil
}

// reclaim deletes the pools of an application that is gone (or going)
// unless they are kept (ippool-reclaim "false"). Pools are cluster-scoped
// and cannot be owned by a namespaced application, so this is done here
// rather than by the garbage collector. A pool's finalizer keeps it until
// its last address is released.
func (r *AppReconciler) reclaim(ctx context.Context, req reconcile.Request) error {
	kind, name, ok := strings.Cut(req.Name, "/")
	if !ok {
		return nil
	}
	var pools v2beta1.SpiderIPPoolList
	if err := r.Client.List(ctx, &pools, client.MatchingLabels{subnets.LabelAppKind: kind, subnets.LabelAppNamespace: req.Namespace,
		subnets.LabelAppName: name, subnets.LabelReclaim: "true"}); err != nil {
		return fmt.Errorf("failed to list the pools of %s %s/%s: %w", kind, req.Namespace, name, err)
	}
	for i := range pools.Items {
		p := &pools.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, p, client.Preconditions{UID: &p.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("failed to delete SpiderIPPool %q of %s %s/%s: %w", p.Name, kind, req.Namespace, name, err)
		}
		log.FromContext(ctx).Info("reclaimed pool", "pool", p.Name, "app", kind+" "+req.Namespace+"/"+name)
	}
	return nil
}

func (r *AppReconciler) event(a *app, typ, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(a.obj, nil, typ, reason, "Carve", format, args...)
	}
}

// SetupWithManager watches every application kind whose pod template asks
// for subnets.
func (r *AppReconciler) SetupWithManager(mgr manager.Manager) error {
	b := builder.ControllerManagedBy(mgr).Named("subnet-apps")
	defaults := r.DefaultSubnet.IPv4 != "" || r.DefaultSubnet.IPv6 != ""
	asks := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return defaults || asksForSubnets(podTemplate(o).Annotations) || asksForSubnets(o.GetAnnotations())
	})
	// Every automatic pool maps to its application: an application
	// deleted while the controller was away is found at its start.
	b = b.Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		l := o.GetLabels()
		if l[subnets.LabelAppKind] == "" || l[subnets.LabelAppName] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[subnets.LabelAppNamespace], Name: l[subnets.LabelAppKind] + "/" + l[subnets.LabelAppName]}}}
	}))
	// Pods of third-party controllers stand for their controller.
	b = b.Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		if p, ok := o.(*corev1.Pod); ok {
			if req, ok := thirdPartyKey(p); ok {
				return []reconcile.Request{req}
			}
		}
		return nil
	}), builder.WithPredicates(predicate.Funcs{
		// Only a new pod can bring a new third-party application.
		CreateFunc:  func(event.CreateEvent) bool { return true },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}))
	for kind, mk := range appKinds {
		b = b.Watches(mk(), handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: kind + "/" + o.GetName()}}}
		}), builder.WithPredicates(asks))
	}
	return b.Complete(r)
}
