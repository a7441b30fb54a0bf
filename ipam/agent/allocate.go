package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/selection"
	"github.com/spindle-net/spindle/ipam/store"
)

// maxConflictsPerPool bounds how many taken addresses one request skips in a
// pool before it gives up with try-again-later.
const maxConflictsPerPool = 256

// podFacts is what an allocation needs to know about the pod.
type podFacts struct {
	pod       *corev1.Pod
	namespace *corev1.Namespace
	node      *corev1.Node
	ownerKind string
	ownerName string
}

func (f *podFacts) key() string { return store.PodKey(f.pod.Namespace, f.pod.Name) }

func (f *podFacts) statefulSet() bool { return f.ownerKind == "StatefulSet" }

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
		if err != nil {
			a.metrics.Failures.WithLabelValues("add", nodeapi.ReasonOf(err)).Inc()
			a.log.Info("ADD failed", "pod", req.PodNamespace+"/"+req.PodName, "interface", req.IfName, "containerID", req.ContainerID, "error", err.Error())
		}
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
	claims := a.podClaims(key)

	// Claims of an earlier pod of the same name that the new pod does not
	// inherit are released first: they are never leaked, and their
	// addresses are free again for this allocation.
	var keep []*v2beta1.SpiderIPClaim
	var stale []*v2beta1.SpiderIPClaim
	for _, c := range claims {
		switch {
		case c.Spec.PodUID == string(facts.pod.UID):
			keep = append(keep, c)
		case a.inherits(facts, c, plan):
			keep = append(keep, c)
		default:
			stale = append(stale, c)
		}
	}
	if err := a.release(ctx, stale); err != nil {
		return nil, err
	}

	var got []*v2beta1.SpiderIPClaim
	var created []*v2beta1.SpiderIPClaim
	fail := func(err error) (*nodeapi.Result, error) {
		a.rollbackClaims(created)
		return nil, err
	}
	for _, fp := range plan.families {
		var have *v2beta1.SpiderIPClaim
		for _, c := range keep {
			if c.Spec.Interface == req.IfName && c.Spec.IPVersion == int64(fp.family) {
				have = c
				break
			}
		}
		if have != nil {
			c, err := a.bind(ctx, have, facts, req, plan)
			if err != nil {
				return fail(err)
			}
			got = append(got, c)
			continue
		}
		c, err := a.allocate(ctx, facts, req, plan, fp)
		if err != nil {
			return fail(err)
		}
		created = append(created, c)
		got = append(got, c)
	}
	if a.cfg.EndpointWrites == EndpointSync {
		if err := a.syncEndpoint(ctx, key); err != nil {
			return fail(apiError(err, "failed to write SpiderEndpoint %q", key))
		}
	} else {
		a.seQueue.Add(key)
	}
	for _, c := range created {
		a.metrics.Allocations.WithLabelValues(fmt.Sprint(c.Spec.IPVersion)).Inc()
	}
	return a.result(ctx, req.IfName, got, plan), nil
}

// inherits says whether the pod takes over claim c of an earlier pod with
// the same name: StatefulSet pods keep their addresses as long as the claim
// was made for the same StatefulSet and its pool is still a candidate.
func (a *Agent) inherits(f *podFacts, c *v2beta1.SpiderIPClaim, plan *ifacePlan) bool {
	if !a.cfg.EnableStatefulSet || !f.statefulSet() || c.Spec.OwnerKind != "StatefulSet" || c.Spec.OwnerName != f.ownerName {
		return false
	}
	if c.Spec.Interface != plan.ifName {
		// Another interface: decided by that interface's ADD, keep for now.
		return true
	}
	for _, fp := range plan.families {
		if int64(fp.family) == c.Spec.IPVersion {
			return slices.Contains(fp.pools, c.Spec.Pool)
		}
	}
	return false
}

// bind makes an existing claim point at the current pod and sandbox.
func (a *Agent) bind(ctx context.Context, c *v2beta1.SpiderIPClaim, f *podFacts, req *nodeapi.Request, plan *ifacePlan) (*v2beta1.SpiderIPClaim, error) {
	want := c.DeepCopy()
	want.Spec.PodUID = string(f.pod.UID)
	want.Spec.ContainerID = req.ContainerID
	want.Spec.Node = a.cfg.NodeName
	want.Spec.OwnerKind, want.Spec.OwnerName = f.ownerKind, f.ownerName
	want.Spec.CleanGateway = plan.cleanGateway
	if equality.Semantic.DeepEqual(want.Spec, c.Spec) {
		return c, nil
	}
	if err := a.store.Rebind(ctx, want); err != nil {
		return nil, apiError(err, "failed to re-bind address %s to pod %q", c.Spec.Address, f.key())
	}
	a.overlay.put(want)
	if c.Spec.PodUID != want.Spec.PodUID {
		a.metrics.Allocations.WithLabelValues(fmt.Sprint(c.Spec.IPVersion)).Inc()
	}
	return want, nil
}

// allocate claims a new address for one family from the first candidate pool
// that has one.
func (a *Agent) allocate(ctx context.Context, f *podFacts, req *nodeapi.Request, plan *ifacePlan, fp familyPlan) (*v2beta1.SpiderIPClaim, error) {
	spec := v2beta1.IPClaimSpec{
		PodNamespace: f.pod.Namespace,
		PodName:      f.pod.Name,
		PodUID:       string(f.pod.UID),
		Interface:    req.IfName,
		ContainerID:  req.ContainerID,
		Node:         a.cfg.NodeName,
		OwnerKind:    f.ownerKind,
		OwnerName:    f.ownerName,
		CleanGateway: plan.cleanGateway,
	}
	rejected := slices.Clone(fp.rejected)
	reject := func(name, reason string, args ...any) {
		rejected = append(rejected, selection.RejectedPool{Name: name, Reason: fmt.Sprintf(reason, args...)})
	}
	for _, name := range fp.pools {
		s, err := a.pools.get(ctx, name)
		if err != nil {
			return nil, apiError(err, "failed to read SpiderIPPool %q", name)
		}
		switch {
		case s == nil:
			reject(name, "not found")
			continue
		case s.err != nil:
			reject(name, "invalid: %v", s.err)
			continue
		case s.layout.Family != fp.family:
			reject(name, "is an %s pool", s.layout.Family)
			continue
		case s.pool.Spec.Disable != nil && *s.pool.Spec.Disable:
			reject(name, "disabled")
			continue
		}
		spec.Pool = name
		for conflicts := 0; ; {
			addr, err := s.reserve(func(addr netip.Addr) bool { return a.quarantine.has(s.pool.UID, addr) })
			if errors.Is(err, errPoolFull) {
				used, total := s.usage()
				if q := s.refused(a.quarantine); q > 0 {
					reject(name, "%d/%d allocated, %d more refused for %v after an address conflict", used, total, q, a.cfg.ConflictQuarantine)
					break
				}
				reject(name, "%d/%d allocated", used, total)
				break
			}
			c := store.NewClaim(addr, spec)
			taken, err := a.store.Create(ctx, c)
			s.done(addr, err == nil, taken)
			if err != nil {
				return nil, apiError(err, "failed to claim address %s of pool %q for pod %q", addr, name, f.key())
			}
			if !taken {
				a.overlay.put(c)
				return c, nil
			}
			a.metrics.Conflicts.Inc()
			if conflicts++; conflicts >= maxConflictsPerPool {
				return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater,
					Msg: fmt.Sprintf("failed to allocate %s address for pod %q: pool %q: %d addresses in a row were taken concurrently", fp.family, f.key(), name, conflicts)}
			}
		}
	}
	npe := &selection.NoPoolError{Interface: req.IfName, Family: fp.family, Rule: fp.rule, Rejected: rejected}
	return nil, &nodeapi.ErrorResponse{
		Code:    nodeapi.CodeTryAgainLater,
		Reason:  nodeapi.ReasonExhausted,
		Msg:     fmt.Sprintf("failed to allocate %s address for interface %q of pod %q: no candidate pool has a free address", fp.family, req.IfName, f.key()),
		Details: nodeapi.TrimDetails(npe.Error()),
	}
}

// rollbackClaims deletes claims created by a failed ADD. Deletion failures
// are retried in the background until they succeed.
func (a *Agent) rollbackClaims(created []*v2beta1.SpiderIPClaim) {
	for _, c := range created {
		c := c
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := store.DeleteExact(ctx, a.store.W, c) // Changed: someone else holds it now
		cancel()
		if err == nil {
			a.overlay.deleted(c)
			a.pools.markAddress(c.Spec.Address, false)
			continue
		}
		a.log.Error(err, "failed to roll back claim; retrying in background", "claim", c.Name)
		a.rollback.Add(1)
		go func() {
			defer a.rollback.Done()
			for delay := 200 * time.Millisecond; ; delay = min(2*delay, 30*time.Second) {
				time.Sleep(delay)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := store.DeleteExact(ctx, a.store.W, c)
				cancel()
				if err == nil {
					a.overlay.deleted(c)
					return
				}
				a.log.Error(err, "failed to roll back claim", "claim", c.Name)
			}
		}()
	}
}

// release deletes claims with store.DeleteExact: a claim re-created or
// re-bound since it was read survives, and the release fails with "try
// again" so the caller decides again on fresh data.
func (a *Agent) release(ctx context.Context, claims []*v2beta1.SpiderIPClaim) error {
	for _, c := range claims {
		res, err := store.DeleteExact(ctx, a.store.W, c)
		if err != nil {
			return apiError(err, "failed to release address %s of pod %q", c.Spec.Address, store.ClaimPodKey(c))
		}
		if res == store.Changed {
			return &nodeapi.ErrorResponse{Code: nodeapi.CodeTryAgainLater, Reason: nodeapi.ReasonAPI,
				Msg: fmt.Sprintf("failed to release address %s of pod %q: its SpiderIPClaim changed while being released; deciding again", c.Spec.Address, store.ClaimPodKey(c))}
		}
		a.overlay.deleted(c)
		a.pools.markAddress(c.Spec.Address, false)
		a.metrics.Releases.WithLabelValues(fmt.Sprint(c.Spec.IPVersion)).Inc()
	}
	return nil
}

// podClaims returns the claims held under a pod's name (cache + own writes).
func (a *Agent) podClaims(key string) []*v2beta1.SpiderIPClaim {
	list := &v2beta1.SpiderIPClaimList{}
	if err := a.cache.List(context.Background(), list, matchingField(store.IndexClaimByPod, key)); err != nil {
		a.log.Error(err, "failed to list claims from cache", "pod", key)
	}
	cached := make([]*v2beta1.SpiderIPClaim, len(list.Items))
	for i := range list.Items {
		cached[i] = &list.Items[i]
	}
	return a.overlay.merge(key, cached)
}

// result builds the answer for the interface from its claims.
func (a *Agent) result(ctx context.Context, ifName string, claims []*v2beta1.SpiderIPClaim, plan *ifacePlan) *nodeapi.Result {
	res := &nodeapi.Result{Interface: ifName, CleanGateway: plan.cleanGateway}
	var subnets []netip.Prefix
	for _, c := range claims {
		facts := a.poolFacts(ctx, c.Spec.Pool)
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
	s, err := a.pools.get(ctx, name)
	if err != nil || s == nil || s.layout == nil {
		return store.PoolFacts{PrefixLen: -1}
	}
	f := store.PoolFacts{PrefixLen: s.layout.Subnet.Bits(), Vlan: s.pool.Spec.Vlan, Routes: s.pool.Spec.Routes}
	if s.layout.Gateway.IsValid() {
		f.Gateway = s.layout.Gateway.String()
	}
	return f
}
