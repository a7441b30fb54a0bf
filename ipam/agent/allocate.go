package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/store"
)

// podFacts is what an allocation needs to know about the pod.
type podFacts struct {
	pod       *corev1.Pod
	namespace *corev1.Namespace
	node      *corev1.Node
	ownerKind string
	ownerName string
}

func (f *podFacts) key() string { return store.PodKey(f.pod.Namespace, f.pod.Name) }

func validate(req *nodeapi.Request) error {
	var missing []string
	if req.PodNamespace == "" {
		missing = append(missing, "podNamespace")
	}
	if req.PodName == "" {
		missing = append(missing, "podName")
	}
	if req.IfName == "" {
		missing = append(missing, "ifName")
	}
	if req.ContainerID == "" {
		missing = append(missing, "containerID")
	}
	if len(missing) > 0 {
		return invalid("invalid request: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// Add allocates the addresses of one pod interface. It is idempotent: the
// same pod (UID) gets the same addresses for the same interface, whatever
// the container ID.
func (a *Agent) Add(ctx context.Context, req *nodeapi.Request) (res *nodeapi.Result, err error) {
	start := time.Now()
	a.metrics.InFlight.WithLabelValues("add").Inc()
	defer func() {
		a.metrics.InFlight.WithLabelValues("add").Dec()
		a.metrics.AddDuration.Observe(time.Since(start).Seconds())
		line := opLine{op: "ADD", req: req, duration: time.Since(start), err: err}
		if err != nil {
			a.metrics.Failures.WithLabelValues("add", nodeapi.ReasonOf(err)).Inc()
			a.addEvent(ctx, req, err)
		} else {
			line.withResult(res)
		}
		line.log(a.log)
	}()
	if err := validate(req); err != nil {
		return nil, err
	}
	if err := a.Ready(); err != nil {
		return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Msg: "spindle-agent is not ready", Details: err.Error()}
	}
	key := store.PodKey(req.PodNamespace, req.PodName)
	unlock := a.podLocks.lock(key)
	defer unlock()

	facts, err := a.podFacts(ctx, req)
	if err != nil {
		return nil, err
	}
	plan, err := a.plan(ctx, facts, req)
	if err != nil {
		return nil, err
	}
	got, err := a.engine.Allocate(ctx, a.allocation(facts, req, plan))
	if err != nil {
		return nil, err
	}
	if a.cfg.EndpointWrites == EndpointSync {
		if err := a.syncEndpoint(ctx, key); err != nil {
			return nil, allocator.APIError(err, "failed to write SpiderEndpoint %q", key)
		}
	} else {
		a.seQueue.Add(key)
	}
	return a.result(ctx, req.IfName, got, plan), nil
}

// allocation is the engine's request for one interface of the pod.
func (a *Agent) allocation(f *podFacts, req *nodeapi.Request, plan *ifacePlan) *allocator.Request {
	r := &allocator.Request{
		Holder: allocator.Holder{Namespace: f.pod.Namespace, Name: f.pod.Name, UID: string(f.pod.UID),
			OwnerKind: f.ownerKind, OwnerName: f.ownerName},
		ContainerID:  req.ContainerID,
		Interface:    req.IfName,
		CleanGateway: plan.cleanGateway,
		MAC:          plan.mac,
	}
	for _, fp := range plan.families {
		r.Families = append(r.Families, allocator.Family{Family: fp.family, Rule: fp.rule, Pools: fp.pools, Rejected: fp.rejected, Addresses: fp.addresses})
	}
	return r
}

// podClaims returns the claims held under a pod's name (cache + own writes).
// A failed read is an error (try again later): an empty answer would let an
// ADD allocate a second address for the pod and a DEL report a release it
// never made.
func (a *Agent) podClaims(key string) ([]*v2beta1.SpiderIPClaim, error) {
	list := &v2beta1.SpiderIPClaimList{}
	if err := a.cache.List(context.Background(), list, matchingField(store.IndexClaimByPod, key)); err != nil {
		return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonAPI,
			Msg: fmt.Sprintf("failed to read the SpiderIPClaims of pod %q from the agent's cache", key), Details: nodeapi.TrimDetails(err.Error())}
	}
	cached := make([]*v2beta1.SpiderIPClaim, len(list.Items))
	for i := range list.Items {
		cached[i] = &list.Items[i]
	}
	return a.overlay.merge(key, cached), nil
}

// result builds the answer for the interface from its claims.
func (a *Agent) result(ctx context.Context, ifName string, claims []*v2beta1.SpiderIPClaim, plan *ifacePlan) *nodeapi.Result {
	res := &nodeapi.Result{Interface: ifName, CleanGateway: plan.cleanGateway}
	var subnets []netip.Prefix
	for _, c := range claims {
		if c.Spec.MAC != "" {
			res.MAC = c.Spec.MAC
		}
		facts := a.poolFacts(ctx, c.Spec.Pool)
		if res.DNS == nil && facts.DNS != nil {
			d := facts.DNS
			res.DNS = &nodeapi.DNS{Nameservers: d.Nameservers, Domain: d.Domain, Search: d.Search, Options: d.Options}
		}
		addr, err := netip.ParseAddr(c.Spec.Address)
		if err != nil {
			continue
		}
		bits := facts.PrefixLen
		if bits < 0 {
			bits = addr.BitLen()
		} else {
			subnets = append(subnets, netip.PrefixFrom(addr, bits).Masked())
		}
		ip := nodeapi.IP{
			Address: netip.PrefixFrom(addr, bits).String(),
			Version: int(c.Spec.IPVersion),
			Pool:    c.Spec.Pool,
		}
		if facts.Vlan != nil {
			ip.Vlan = *facts.Vlan
		}
		if !c.Spec.CleanGateway {
			ip.Gateway = facts.Gateway
			if facts.Gateway != "" {
				res.Routes = append(res.Routes, nodeapi.Route{Dst: defaultDst(addr), GW: facts.Gateway})
			}
		}
		for _, r := range facts.Routes {
			res.Routes = append(res.Routes, nodeapi.Route{Dst: r.Dst, GW: r.Gw})
		}
		res.IPs = append(res.IPs, ip)
	}
	res.Routes = append(res.Routes, plan.annotationRoutes(subnets)...)
	return res
}

func defaultDst(addr netip.Addr) string {
	if addr.Is4() {
		return "0.0.0.0/0"
	}
	return "::/0"
}

// poolFacts returns what results and SpiderEndpoints need from a pool.
func (a *Agent) poolFacts(ctx context.Context, name string) store.PoolFacts {
	layout, pool, err := a.engine.Layout(ctx, name)
	if err != nil || layout == nil {
		return store.PoolFacts{PrefixLen: -1}
	}
	return store.FactsOf(pool, layout)
}
