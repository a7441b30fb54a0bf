package agent

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/store"
)

// podFacts reads the pod (cache first, API server when the cache does not
// have the expected incarnation yet), its namespace and this node.
func (a *Agent) podFacts(ctx context.Context, req *nodeapi.Request) (*podFacts, error) {
	key := store.PodKey(req.PodNamespace, req.PodName)
	pod := &corev1.Pod{}
	// Without K8S_POD_UID the cache could hand us an earlier pod of the same
	// name, whose UID decides which claims are stale: ask the API server.
	err := errors.New("no pod UID in the request")
	if req.PodUID != "" {
		err = a.cache.Get(ctx, keyOf(req.PodNamespace, req.PodName), pod)
	}
	if err != nil || (req.PodUID != "" && string(pod.UID) != req.PodUID) {
		if err := a.live.Get(ctx, keyOf(req.PodNamespace, req.PodName), pod); err != nil {
			if isNotFound(err) {
				return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: fmt.Sprintf("pod %q not found", key)}
			}
			return nil, allocator.APIError(err, "failed to get pod %q", key)
		}
	}
	if pod.Spec.NodeName != a.cfg.NodeName {
		return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInternal, Reason: nodeapi.ReasonNotOwned,
			Msg: fmt.Sprintf("pod %q is bound to node %q, but this spindle-agent serves node %q", key, pod.Spec.NodeName, a.cfg.NodeName)}
	}
	if req.PodUID != "" && string(pod.UID) != req.PodUID {
		return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInternal,
			Msg: fmt.Sprintf("pod %q was replaced: the request is for UID %s, the pod now has UID %s", key, req.PodUID, pod.UID)}
	}
	f := &podFacts{pod: pod}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		f.ownerKind, f.ownerName = ref.Kind, ref.Name
	}
	ns := &corev1.Namespace{}
	if err := a.cache.Get(ctx, keyOf("", pod.Namespace), ns); err != nil {
		if err := a.live.Get(ctx, keyOf("", pod.Namespace), ns); err != nil {
			return nil, allocator.APIError(err, "failed to get namespace %q", pod.Namespace)
		}
	}
	f.namespace = ns
	node := &corev1.Node{}
	if err := a.cache.Get(ctx, keyOf("", a.cfg.NodeName), node); err != nil {
		if err := a.live.Get(ctx, keyOf("", a.cfg.NodeName), node); err != nil {
			return nil, allocator.APIError(err, "failed to get node %q", a.cfg.NodeName)
		}
	}
	f.node = node
	return f, nil
}

// Coordinator answers GET /v1/coordinator from the SpiderCoordinator
// "default"; nodeapi.ErrNotFound when there is none.
func (a *Agent) Coordinator(ctx context.Context) (*nodeapi.CoordinatorConfig, error) {
	c := &v2beta1.SpiderCoordinator{}
	if err := a.cache.Get(ctx, keyOf("", "default"), c); err != nil {
		if isNotFound(err) {
			return &nodeapi.CoordinatorConfig{}, nil // no cluster defaults
		}
		return nil, allocator.APIError(err, "failed to get SpiderCoordinator %q", "default")
	}
	s := c.Spec
	out := &nodeapi.CoordinatorConfig{
		Mode: deref(s.Mode), PodCIDRType: deref(s.PodCIDRType), HijackCIDR: s.HijackCIDR, PodMACPrefix: deref(s.PodMACPrefix),
		TunePodRoutes: s.TunePodRoutes, PodDefaultRouteNIC: deref(s.PodDefaultRouteNIC), HostRuleTable: s.HostRuleTable,
		PodRPFilter: s.PodRPFilter, HostRPFilter: s.HostRPFilter, TxQueueLen: s.TxQueueLen, DetectIPConflict: s.DetectIPConflict,
		DetectGateway: s.DetectGateway, VethLinkAddress: deref(s.VethLinkAddress),
		Phase: c.Status.Phase, OverlayPodCIDR: c.Status.OverlayPodCIDR, ServiceCIDR: c.Status.ServiceCIDR,
	}
	return out, nil
}

// Pod answers GET /v1/pods/<ns>/<name>: annotations and current allocation.
func (a *Agent) Pod(ctx context.Context, namespace, name string) (*nodeapi.PodInfo, error) {
	key := store.PodKey(namespace, name)
	pod := &corev1.Pod{}
	if err := a.cache.Get(ctx, keyOf(namespace, name), pod); err != nil {
		if err := a.live.Get(ctx, keyOf(namespace, name), pod); err != nil {
			if isNotFound(err) {
				return nil, fmt.Errorf("pod %q: %w", key, nodeapi.ErrNotFound)
			}
			return nil, allocator.APIError(err, "failed to get pod %q", key)
		}
	}
	info := &nodeapi.PodInfo{Namespace: namespace, Name: name, UID: string(pod.UID), Node: pod.Spec.NodeName,
		Annotations: pod.Annotations, Interfaces: map[string]nodeapi.Result{}}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		info.OwnerKind = ref.Kind
	}
	byIface := map[string][]*v2beta1.SpiderIPClaim{}
	held, err := a.podClaims(key)
	if err != nil {
		return nil, err
	}
	for _, c := range held {
		if c.Spec.PodUID == string(pod.UID) {
			byIface[c.Spec.Interface] = append(byIface[c.Spec.Interface], c)
		}
	}
	for ifName, claims := range byIface {
		plan := &ifacePlan{ifName: ifName, cleanGateway: claims[0].Spec.CleanGateway}
		info.Interfaces[ifName] = *a.result(ctx, ifName, claims, plan)
	}
	return info, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
