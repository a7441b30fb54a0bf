package agent

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/store"
)

// Del releases the addresses of one pod interface unless the pod still
// needs them: a live pod of the same UID keeps them (sandbox restart), and a
// StatefulSet replica within its ordinals keeps them for its next
// incarnation. Del is idempotent; an unconfirmed release is an error (code
// 11) so the runtime retries.
func (a *Agent) Del(ctx context.Context, req *nodeapi.Request) (err error) {
	start := time.Now()
	line := opLine{op: "DEL", req: req, outcome: delNone}
	a.metrics.InFlight.WithLabelValues("del").Inc()
	defer func() {
		a.metrics.InFlight.WithLabelValues("del").Dec()
		a.metrics.DelDuration.Observe(time.Since(start).Seconds())
		line.duration, line.err = time.Since(start), err
		if err != nil {
			a.metrics.Failures.WithLabelValues("del", nodeapi.ReasonOf(err)).Inc()
			line.outcome = ""
		}
		line.log(a.log)
	}()
	if req.PodNamespace == "" || req.PodName == "" {
		return nil // nothing of ours can be attached to an unnamed pod
	}
	if err := a.Ready(); err != nil {
		return &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: "spindle-agent is not ready", Details: err.Error()}
	}
	key := store.PodKey(req.PodNamespace, req.PodName)
	unlock := a.podLocks.lock(key)
	defer unlock()

	held, err := a.podClaims(key)
	if err != nil {
		return err // not confirmed: the runtime retries
	}
	var mine []*v2beta1.SpiderIPClaim
	for _, c := range held {
		if req.IfName != "" && c.Spec.Interface != req.IfName {
			continue
		}
		// Only the incarnation the DEL is for: a DEL of an old sandbox
		// must not touch addresses re-bound to a newer pod of that name.
		if req.PodUID != "" && c.Spec.PodUID != req.PodUID {
			continue
		}
		if req.PodUID == "" && c.Spec.ContainerID != req.ContainerID {
			continue
		}
		mine = append(mine, c)
	}
	if len(mine) == 0 {
		return nil
	}
	line.withClaims(mine)
	release, err := a.shouldRelease(ctx, mine, true)
	if err != nil {
		return err
	}
	if !release {
		line.outcome = delKept
		return nil
	}
	if err := a.engine.Release(ctx, mine); err != nil {
		return err
	}
	line.outcome = delReleased
	if a.cfg.EndpointWrites == EndpointSync {
		if err := a.syncEndpoint(ctx, key); err != nil {
			a.seQueue.Add(key)
		}
	} else {
		a.seQueue.Add(key)
	}
	return nil
}

// shouldRelease decides for the holder of claims (one pod incarnation),
// with lifecycle.Decide on live reads. sandboxDeleted is true for a CNI DEL:
// a terminating holder releases at once instead of waiting for its grace
// period.
func (a *Agent) shouldRelease(ctx context.Context, claims []*v2beta1.SpiderIPClaim, sandboxDeleted bool) (bool, error) {
	c := claims[0]
	pod, err := a.livePod(ctx, c.Spec.PodNamespace, c.Spec.PodName)
	if err != nil {
		return false, err
	}
	var sts *appsv1.StatefulSet
	poolOptOut := false
	if a.cfg.EnableStatefulSet && c.Spec.OwnerKind == "StatefulSet" && c.Spec.OwnerName != "" {
		for _, x := range claims {
			p := &v2beta1.SpiderIPPool{}
			if err := a.cache.Get(ctx, keyOf("", x.Spec.Pool), p); err == nil && lifecycle.ReleasesOnScaleDown(p.Annotations) {
				poolOptOut = true
			}
		}
		obj := &appsv1.StatefulSet{}
		err := a.live.Get(ctx, keyOf(c.Spec.PodNamespace, c.Spec.OwnerName), obj)
		switch {
		case err == nil:
			sts = obj
		case !isNotFound(err):
			return false, allocator.APIError(err, "failed to get StatefulSet %q", c.Spec.PodNamespace+"/"+c.Spec.OwnerName)
		}
	}
	var vm, vmi *metav1.PartialObjectMetadata
	if c.Spec.OwnerKind == lifecycle.KindVirtualMachineInstance && c.Spec.OwnerName != "" {
		if vm, vmi, err = store.VirtualMachineOf(ctx, a.live, c.Spec.PodNamespace, c.Spec.OwnerName); err != nil {
			return false, allocator.APIError(err, "failed to read the virtual machine of pod %q", c.Spec.PodNamespace+"/"+c.Spec.PodName)
		}
	}
	var node *corev1.Node
	if pod != nil && pod.Spec.NodeName == a.cfg.NodeName {
		node = &corev1.Node{}
		if err := a.cache.Get(ctx, keyOf("", a.cfg.NodeName), node); err != nil {
			node = nil
		}
	}
	d := lifecycle.Decide(lifecycle.Input{
		Holder: lifecycle.Holder{Namespace: c.Spec.PodNamespace, Name: c.Spec.PodName, UID: types.UID(c.Spec.PodUID),
			OwnerKind: c.Spec.OwnerKind, OwnerName: c.Spec.OwnerName},
		Pod: pod, Node: node, StatefulSet: sts, Now: time.Now(),
		Config:                  lifecycle.Config{IgnoreStatefulSets: !a.cfg.EnableStatefulSet},
		SandboxDeleted:          sandboxDeleted,
		PoolReleasesOnScaleDown: poolOptOut,
		VirtualMachine:          vm,
		VirtualMachineInstance:  vmi,
	})
	return d.Collect, nil
}

// livePod returns the pod of that name from the API server, nil when it
// does not exist. A release decision never trusts the cache: a lagging cache
// would keep a deleted pod's addresses.
func (a *Agent) livePod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := a.live.Get(ctx, keyOf(namespace, name), pod)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, allocator.APIError(err, "failed to get pod %q", namespace+"/"+name)
	}
	return pod, nil
}

// Check reports the current allocation of the interface; it fails when the
// pod has none.
func (a *Agent) Check(ctx context.Context, req *nodeapi.Request) (*nodeapi.Result, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	key := store.PodKey(req.PodNamespace, req.PodName)
	held, err := a.podClaims(key)
	if err != nil {
		return nil, err
	}
	var got []*v2beta1.SpiderIPClaim
	for _, c := range held {
		if c.Spec.Interface == req.IfName && (req.PodUID == "" || c.Spec.PodUID == req.PodUID) {
			got = append(got, c)
		}
	}
	if len(got) == 0 {
		a.metrics.Failures.WithLabelValues("check", nodeapi.ReasonNoPool).Inc()
		return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInternal, Msg: fmt.Sprintf("pod %q holds no address for interface %q", key, req.IfName)}
	}
	clean := got[0].Spec.CleanGateway
	return a.result(ctx, req.IfName, got, &ifacePlan{ifName: req.IfName, cleanGateway: clean}), nil
}

// GC releases the claims of this node whose pods no longer need them. Claims
// of attachments the runtime still lists as valid are kept.
func (a *Agent) GC(ctx context.Context, req *nodeapi.GCRequest) (*nodeapi.GCResult, error) {
	valid := map[nodeapi.Attachment]bool{}
	for _, v := range req.ValidAttachments {
		valid[v] = true
	}
	released, err := a.collect(ctx, func(c *v2beta1.SpiderIPClaim) bool {
		return valid[nodeapi.Attachment{ContainerID: c.Spec.ContainerID, IfName: c.Spec.Interface}]
	})
	if err != nil {
		a.metrics.Failures.WithLabelValues("gc", nodeapi.ReasonOf(err)).Inc()
		return &nodeapi.GCResult{Released: released}, err
	}
	return &nodeapi.GCResult{Released: released}, nil
}

// collect is one garbage-collection pass over this node's claims.
func (a *Agent) collect(ctx context.Context, skip func(*v2beta1.SpiderIPClaim) bool) ([]string, error) {
	list := &v2beta1.SpiderIPClaimList{}
	if err := a.cache.List(ctx, list, matchingField(store.IndexClaimByNode, a.cfg.NodeName)); err != nil {
		return nil, fmt.Errorf("failed to list claims of node %q from cache: %w", a.cfg.NodeName, err)
	}
	byPod := map[string][]*v2beta1.SpiderIPClaim{}
	cutoff := time.Now().Add(-a.cfg.GCGracePeriod)
	for i := range list.Items {
		c := &list.Items[i]
		if c.CreationTimestamp.Time.After(cutoff) || (skip != nil && skip(c)) {
			continue
		}
		if a.cachedAlive(ctx, c) {
			continue // the common case costs no API call
		}
		k := store.ClaimPodKey(c) + "/" + c.Spec.PodUID
		byPod[k] = append(byPod[k], c)
	}
	var released []string
	var firstErr error
	for _, claims := range byPod {
		c := claims[0]
		key := store.ClaimPodKey(c)
		if key == "" {
			continue
		}
		unlock := a.podLocks.lock(key)
		// Re-read under the lock: an ADD may have re-bound them meanwhile.
		var cur []*v2beta1.SpiderIPClaim
		held, err := a.podClaims(key)
		for _, x := range held {
			if x.Spec.PodUID == c.Spec.PodUID && x.Spec.Node == a.cfg.NodeName {
				cur = append(cur, x)
			}
		}
		var rel bool
		if err == nil && len(cur) > 0 {
			rel, err = a.shouldRelease(ctx, cur, false)
			if err == nil && rel {
				err = a.engine.Release(ctx, cur)
			}
		}
		unlock()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if rel {
			for _, x := range cur {
				released = append(released, x.Spec.Address)
			}
			a.seQueue.Add(key)
		}
	}
	return released, firstErr
}

func (a *Agent) gcLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.overlay.sweep()
			if left := a.engine.RetryRollbacks(); left > 0 {
				a.log.Info("claims of failed requests still not deleted; retrying at the next garbage collection", "claims", left)
			}
			if released, err := a.collect(ctx, nil); err != nil {
				a.log.Error(err, "garbage collection failed", "released", len(released))
			} else if len(released) > 0 {
				a.log.Info("garbage collection released addresses", "addresses", released)
			}
		}
	}
}

// cachedAlive reports whether the cache shows the claim's pod running with
// the same UID. Only claims failing this check are looked at (with a live
// read) by the garbage collection.
func (a *Agent) cachedAlive(ctx context.Context, c *v2beta1.SpiderIPClaim) bool {
	pod := &corev1.Pod{}
	if err := a.cache.Get(ctx, keyOf(c.Spec.PodNamespace, c.Spec.PodName), pod); err != nil {
		return false
	}
	return string(pod.UID) == c.Spec.PodUID && pod.DeletionTimestamp == nil &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}
