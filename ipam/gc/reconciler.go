package gc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/store"
)

// Reconciler collects the allocations of one pod name (request = the pod's
// namespace/name). Client is the manager's cached client (reads) that also
// writes; Reader reads straight from the API server and is used for every
// fact a deletion depends on.
type Reconciler struct {
	Client   client.Client
	Reader   client.Reader
	Recorder events.EventRecorder
	Config   lifecycle.Config
	// Now returns the current time (time.Now when nil).
	Now func() time.Time

	counted countedHolders
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spideripclaims,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile collects every allocation recorded for the pod name whose holder
// is no longer entitled to it.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var claims v2beta1.SpiderIPClaimList
	if err := r.Client.List(ctx, &claims, client.MatchingFields{store.IndexClaimByPod: store.PodKey(req.Namespace, req.Name)}); err != nil {
		return reconcile.Result{}, fmt.Errorf("failed to list SpiderIPClaims of pod %q: %w", req.NamespacedName, err)
	}
	var ep *v2beta1.SpiderEndpoint
	var se v2beta1.SpiderEndpoint
	if err := r.Client.Get(ctx, req.NamespacedName, &se); err == nil {
		ep = &se
	} else if !apierrors.IsNotFound(err) {
		return reconcile.Result{}, fmt.Errorf("failed to get SpiderEndpoint %q: %w", req.NamespacedName, err)
	}
	holders := holdersOf(req.NamespacedName, claims.Items, ep)
	if len(holders) == 0 {
		return reconcile.Result{}, nil
	}

	// Fast path: the cached pod is the holder and alive. Keeping is always
	// safe, so a stale cache can only delay a collection, never cause one.
	var cached corev1.Pod
	cachedErr := r.Client.Get(ctx, req.NamespacedName, &cached)
	if cachedErr != nil && !apierrors.IsNotFound(cachedErr) {
		return reconcile.Result{}, fmt.Errorf("failed to get pod %q: %w", req.NamespacedName, cachedErr)
	}

	var requeue time.Duration
	var errs []error
	for _, h := range holders {
		if cachedErr == nil && cached.UID == h.UID && cached.DeletionTimestamp == nil &&
			cached.Status.Phase != corev1.PodSucceeded && cached.Status.Phase != corev1.PodFailed {
			continue
		}
		d, pod, err := r.decideFresh(ctx, h, claims.Items)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !d.Collect {
			if d.RequeueAfter > 0 && (requeue == 0 || d.RequeueAfter < requeue) {
				requeue = d.RequeueAfter
			}
			continue
		}
		again, err := r.collect(ctx, h, d.Reason, pod, claims.Items, ep)
		if err != nil {
			errs = append(errs, err)
		}
		if again && (requeue == 0 || requeue > time.Second) {
			requeue = time.Second
		}
	}
	return reconcile.Result{RequeueAfter: requeue}, errors.Join(errs...)
}

// decideFresh reads the pod, its node and (for StatefulSet pods) the
// StatefulSet from the API server, and the pools of the holder's claims from
// the cache, and decides.
func (r *Reconciler) decideFresh(ctx context.Context, h lifecycle.Holder, claims []v2beta1.SpiderIPClaim) (lifecycle.Decision, *corev1.Pod, error) {
	key := types.NamespacedName{Namespace: h.Namespace, Name: h.Name}
	in := lifecycle.Input{Holder: h, Now: r.now(), Config: r.Config}
	var pod corev1.Pod
	if err := r.Reader.Get(ctx, key, &pod); err == nil {
		in.Pod = &pod
	} else if !apierrors.IsNotFound(err) {
		return lifecycle.Decision{}, nil, fmt.Errorf("failed to get pod %q: %w", key, err)
	}
	if in.Pod != nil && in.Pod.Spec.NodeName != "" && in.Pod.DeletionTimestamp != nil {
		var node corev1.Node
		if err := r.Reader.Get(ctx, client.ObjectKey{Name: in.Pod.Spec.NodeName}, &node); err == nil {
			in.Node = &node
		} else if !apierrors.IsNotFound(err) {
			return lifecycle.Decision{}, nil, fmt.Errorf("failed to get node %q: %w", in.Pod.Spec.NodeName, err)
		}
	}
	if h.OwnerKind == "StatefulSet" && h.OwnerName != "" {
		var sts appsv1.StatefulSet
		stsKey := types.NamespacedName{Namespace: h.Namespace, Name: h.OwnerName}
		if err := r.Reader.Get(ctx, stsKey, &sts); err == nil {
			in.StatefulSet = &sts
		} else if !apierrors.IsNotFound(err) {
			return lifecycle.Decision{}, nil, fmt.Errorf("failed to get StatefulSet %q: %w", stsKey, err)
		}
		for i := range claims {
			var p v2beta1.SpiderIPPool
			if claims[i].Spec.PodUID == string(h.UID) && r.Client.Get(ctx, client.ObjectKey{Name: claims[i].Spec.Pool}, &p) == nil &&
				lifecycle.ReleasesOnScaleDown(p.Annotations) {
				in.PoolReleasesOnScaleDown = true
			}
		}
	}
	if h.OwnerKind == lifecycle.KindVirtualMachineInstance && h.OwnerName != "" {
		var err error
		if in.VirtualMachine, in.VirtualMachineInstance, err = store.VirtualMachineOf(ctx, r.Reader, h.Namespace, h.OwnerName); err != nil {
			return lifecycle.Decision{}, nil, err
		}
	}
	return lifecycle.Decide(in), in.Pod, nil
}

// collect deletes the holder's claims, then its SpiderEndpoint. Each delete
// carries the UID and resourceVersion of the object as read, so an object
// that was re-bound to another pod (or re-created) in the meantime survives.
// When any claim changed under us the SpiderEndpoint is left alone and the
// pod name is looked at again (requeue=true) with fresh data.
//
// A holder is counted (collected_total, the "collected pod allocation" log)
// once, by the first pass that deletes any of its objects: a later pass may
// find what is left (the SpiderEndpoint after a conflict with the agent
// rewriting it) or find the objects already gone (a second event for the
// name read from a cache that had not seen the deletions yet).
func (r *Reconciler) collect(ctx context.Context, h lifecycle.Holder, reason lifecycle.Reason, pod *corev1.Pod, claims []v2beta1.SpiderIPClaim, ep *v2beta1.SpiderEndpoint) (requeue bool, err error) {
	logger := log.FromContext(ctx).WithValues("pod", h.Namespace+"/"+h.Name, "podUID", h.UID, "reason", reason)
	var released []string
	var errs []error
	changed := false
	defer func() {
		if len(released) > 0 && r.counted.first(h.UID, r.now()) {
			collectedTotal.WithLabelValues(string(reason)).Inc()
			logger.Info("collected pod allocation", "addresses", strings.Join(released, ","))
		}
	}()
	for i := range claims {
		c := &claims[i]
		if types.UID(c.Spec.PodUID) != h.UID {
			continue
		}
		res, err := store.DeleteExact(ctx, r.Client, c)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("failed to delete SpiderIPClaim %q: %w", c.Name, err))
		case res == store.Deleted:
			released = append(released, c.Spec.Address)
			releasedIPsTotal.WithLabelValues(string(reason)).Inc()
			r.event(c, pod, corev1.EventTypeNormal, string(reason), "Release",
				fmt.Sprintf("released %s of pool %s held by pod %s/%s (uid %s): %s", c.Spec.Address, c.Spec.Pool, h.Namespace, h.Name, h.UID, reason.Explain()))
		case res == store.Changed:
			raceAvoidedTotal.Inc()
			changed = true
		}
	}
	if len(errs) > 0 {
		// Keep the SpiderEndpoint while a claim is left so the next pass
		// finds the holder again.
		return false, errors.Join(errs...)
	}
	if changed {
		logger.Info("allocation changed while being collected; re-examining", "released", strings.Join(released, ","))
		return true, nil
	}
	if ep != nil && types.UID(ep.Status.Current.UID) == h.UID {
		res, err := store.DeleteExact(ctx, r.Client, ep)
		if err != nil {
			return false, fmt.Errorf("failed to delete SpiderEndpoint %q: %w", h.Namespace+"/"+h.Name, err)
		}
		switch res {
		case store.Changed:
			raceAvoidedTotal.Inc()
			return true, nil
		case store.Deleted:
			if len(released) == 0 && r.counted.first(h.UID, r.now()) {
				// Only a SpiderEndpoint was left of this holder.
				collectedTotal.WithLabelValues(string(reason)).Inc()
				logger.Info("collected pod allocation", "addresses", "")
			}
		}
	}
	return false, nil
}

// countedHolders remembers the holders already counted as collected, for
// long enough that every late pass over the same holder is over.
type countedHolders struct {
	mu     sync.Mutex
	seen   map[types.UID]time.Time
	pruned time.Time
}

// countedTTL bounds how long a counted holder is remembered.
const countedTTL = 10 * time.Minute

// first reports whether uid is counted for the first time.
func (s *countedHolders) first(uid types.UID, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[types.UID]time.Time{}
	}
	if t, ok := s.seen[uid]; ok && now.Sub(t) < countedTTL {
		return false
	}
	if now.Sub(s.pruned) >= time.Minute {
		s.pruned = now
		for k, t := range s.seen {
			if now.Sub(t) >= countedTTL {
				delete(s.seen, k)
			}
		}
	}
	s.seen[uid] = now
	return true
}

func (r *Reconciler) event(regarding client.Object, pod *corev1.Pod, typ, reason, action, note string) {
	if r.Recorder == nil {
		return
	}
	if pod == nil {
		r.Recorder.Eventf(regarding, nil, typ, reason, action, "%s", note)
		return
	}
	r.Recorder.Eventf(regarding, pod, typ, reason, action, "%s", note)
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// holdersOf returns the distinct pod incarnations the allocations of one pod
// name were made for.
func holdersOf(key types.NamespacedName, claims []v2beta1.SpiderIPClaim, ep *v2beta1.SpiderEndpoint) []lifecycle.Holder {
	var out []lifecycle.Holder
	seen := map[types.UID]int{}
	add := func(h lifecycle.Holder) {
		if i, ok := seen[h.UID]; ok {
			if out[i].OwnerKind == "" {
				out[i].OwnerKind, out[i].OwnerName = h.OwnerKind, h.OwnerName
			}
			return
		}
		seen[h.UID] = len(out)
		out = append(out, h)
	}
	for i := range claims {
		c := &claims[i].Spec
		add(lifecycle.Holder{Namespace: key.Namespace, Name: key.Name, UID: types.UID(c.PodUID), OwnerKind: c.OwnerKind, OwnerName: c.OwnerName})
	}
	if ep != nil {
		add(lifecycle.Holder{Namespace: key.Namespace, Name: key.Name, UID: types.UID(ep.Status.Current.UID),
			OwnerKind: ep.Status.OwnerControllerType, OwnerName: ep.Status.OwnerControllerName})
	}
	return out
}

// SetupWithManager registers the reconciler and its periodic full pass.
// Pod events, claim events and SpiderEndpoint events enqueue the pod name;
// a StatefulSet that is deleted or shrinks enqueues the names of its
// replicas' allocations (replicas kept for their next incarnation become
// collectable without any pod event); every interval all recorded pod names
// are enqueued again so nothing a missed event left behind survives.
func (r *Reconciler) SetupWithManager(mgr manager.Manager, interval time.Duration) error {
	registerMetrics()
	// The indexes this reconciler reads: claims by pod and by owner.
	if err := store.IndexClaims(context.Background(), mgr.GetFieldIndexer(), store.IndexClaimByPod, store.IndexClaimByOwner); err != nil {
		return err
	}
	resync := make(chan event.TypedGenericEvent[reconcile.Request], 1024)
	if err := mgr.Add(&resyncer{client: mgr.GetClient(), interval: interval, out: resync}); err != nil {
		return fmt.Errorf("failed to add gc resync: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if kubeVirtServed(mgr.GetRESTMapper()) {
		// A virtual machine or instance being deleted makes its launcher
		// pods' allocations collectable without any pod event.
		for _, kind := range []string{lifecycle.KindVirtualMachineInstance, lifecycle.KindVirtualMachine} {
			b = b.Watches(store.KubeVirtObject(kind), handler.EnqueueRequestsFromMapFunc(r.ownerAllocations(lifecycle.KindVirtualMachineInstance)),
				builder.WithPredicates(deletionStarted()))
		}
	}
	return b.
		Named("ipgc").
		For(&corev1.Pod{}, builder.WithPredicates(podChanged())).
		Watches(&v2beta1.SpiderIPClaim{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			c, ok := o.(*v2beta1.SpiderIPClaim)
			if !ok || c.Spec.PodName == "" {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: c.Spec.PodNamespace, Name: c.Spec.PodName}}}
		}), builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Watches(&v2beta1.SpiderEndpoint{}, &handler.EnqueueRequestForObject{}, builder.WithPredicates(endpointHolderChanged())).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.ownerAllocations(lifecycle.KindStatefulSet)), builder.WithPredicates(statefulSetShrunk())).
		WatchesRawSource(source.Channel(resync, handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, r reconcile.Request) []reconcile.Request {
			return []reconcile.Request{r}
		}))).
		Complete(r)
}

// ownerAllocations returns, for an event of a StatefulSet or of a virtual
// machine (its claims record the VirtualMachineInstance of the same name as
// the owner: kind), the pod names whose claims or SpiderEndpoint were made
// for it.
func (r *Reconciler) ownerAllocations(kind string) func(ctx context.Context, o client.Object) []reconcile.Request {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var claims v2beta1.SpiderIPClaimList
		owner := store.OwnerKey(o.GetNamespace(), kind, o.GetName())
		if err := r.Client.List(ctx, &claims, client.MatchingFields{store.IndexClaimByOwner: owner}); err != nil {
			log.FromContext(ctx).Error(err, "failed to list SpiderIPClaims of an owner's pods", "owner", owner)
			return nil
		}
		var eps v2beta1.SpiderEndpointList
		if err := r.Client.List(ctx, &eps, client.InNamespace(o.GetNamespace())); err != nil {
			log.FromContext(ctx).Error(err, "failed to list SpiderEndpoints of an owner's pods", "owner", owner)
			return nil
		}
		return OwnerAllocations(o.GetNamespace(), kind, o.GetName(), claims.Items, eps.Items)
	}
}

// OwnerAllocations picks the pod names of the pods of controller
// namespace/kind/name among the holders recorded in claims and
// SpiderEndpoints.
func OwnerAllocations(namespace, kind, name string, claims []v2beta1.SpiderIPClaim, eps []v2beta1.SpiderEndpoint) []reconcile.Request {
	seen := map[types.NamespacedName]bool{}
	var out []reconcile.Request
	add := func(pod string) {
		k := types.NamespacedName{Namespace: namespace, Name: pod}
		if pod != "" && !seen[k] {
			seen[k] = true
			out = append(out, reconcile.Request{NamespacedName: k})
		}
	}
	for i := range claims {
		c := &claims[i].Spec
		if c.PodNamespace == namespace && c.OwnerKind == kind && c.OwnerName == name {
			add(c.PodName)
		}
	}
	for i := range eps {
		e := &eps[i]
		if e.Namespace == namespace && e.Status.OwnerControllerType == kind && e.Status.OwnerControllerName == name {
			add(e.Name)
		}
	}
	return out
}

// kubeVirtServed reports whether the API server serves KubeVirt's
// VirtualMachineInstance (KubeVirt installed before the controller
// started); without it, the periodic pass collects launcher pods'
// allocations.
func kubeVirtServed(m meta.RESTMapper) bool {
	_, err := m.RESTMapping(schema.GroupKind{Group: lifecycle.KubeVirtGroup, Kind: lifecycle.KindVirtualMachineInstance}, "v1")
	return err == nil
}

// deletionStarted passes deletions and the updates that start one.
func deletionStarted() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld.GetDeletionTimestamp() == nil && e.ObjectNew.GetDeletionTimestamp() != nil
		},
	}
}

// statefulSetShrunk passes the StatefulSet events after which fewer
// ordinals are wanted: deletion (or its start), fewer replicas, a moved
// ordinal start; and a change of its ReleaseOnScaleDown annotation.
func statefulSetShrunk() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*appsv1.StatefulSet)
			n, ok2 := e.ObjectNew.(*appsv1.StatefulSet)
			if !ok1 || !ok2 {
				return false
			}
			start := func(s *appsv1.StatefulSet) int32 {
				if s.Spec.Ordinals == nil {
					return 0
				}
				return s.Spec.Ordinals.Start
			}
			replicas := func(s *appsv1.StatefulSet) int32 {
				if s.Spec.Replicas == nil {
					return 1
				}
				return *s.Spec.Replicas
			}
			return (o.DeletionTimestamp == nil && n.DeletionTimestamp != nil) ||
				replicas(n) < replicas(o) || start(n) != start(o) ||
				lifecycle.ReleasesOnScaleDown(n.Annotations) != lifecycle.ReleasesOnScaleDown(o.Annotations)
		},
	}
}

// endpointHolderChanged passes SpiderEndpoint creations and deletions, and
// the updates that change the pod incarnation it records: the agent creates
// the object and then writes its status, so the holder of an endpoint is
// often known only from its first update.
func endpointHolderChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v2beta1.SpiderEndpoint)
			n, ok2 := e.ObjectNew.(*v2beta1.SpiderEndpoint)
			return !ok1 || !ok2 || o.Status.Current.UID != n.Status.Current.UID
		},
	}
}

// podChanged passes pod events that can change a decision: creation (a new
// pod of an old name), deletion, and updates of the phase or deletion
// timestamp.
func podChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*corev1.Pod)
			n, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 {
				return true
			}
			return o.Status.Phase != n.Status.Phase || (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil) || o.UID != n.UID
		},
	}
}

// resyncer enqueues every pod name that has a claim or a SpiderEndpoint,
// once per interval. It runs only on the leader.
type resyncer struct {
	client   client.Reader
	interval time.Duration
	out      chan<- event.TypedGenericEvent[reconcile.Request]
}

func (s *resyncer) NeedLeaderElection() bool { return true }

func (s *resyncer) Start(ctx context.Context) error {
	if s.interval <= 0 {
		return nil
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			keys, err := AllocatedPods(ctx, s.client)
			if err != nil {
				log.FromContext(ctx).Error(err, "failed to list allocations for the periodic garbage collection")
				continue
			}
			for _, k := range keys {
				select {
				case s.out <- event.TypedGenericEvent[reconcile.Request]{Object: reconcile.Request{NamespacedName: k}}:
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
}

// AllocatedPods lists the names of every pod that has a claim or a
// SpiderEndpoint.
func AllocatedPods(ctx context.Context, c client.Reader) ([]types.NamespacedName, error) {
	var claims v2beta1.SpiderIPClaimList
	if err := c.List(ctx, &claims); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPClaims: %w", err)
	}
	var eps v2beta1.SpiderEndpointList
	if err := c.List(ctx, &eps); err != nil {
		return nil, fmt.Errorf("failed to list SpiderEndpoints: %w", err)
	}
	seen := map[types.NamespacedName]bool{}
	var out []types.NamespacedName
	add := func(k types.NamespacedName) {
		if k.Name != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, c := range claims.Items {
		add(types.NamespacedName{Namespace: c.Spec.PodNamespace, Name: c.Spec.PodName})
	}
	for _, e := range eps.Items {
		add(types.NamespacedName{Namespace: e.Namespace, Name: e.Name})
	}
	return out, nil
}
