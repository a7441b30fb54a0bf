package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/podselect"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/selection"
)

// familyPlan is the ordered list of candidate pools for one IP family, plus
// the candidates selection refused (for error messages).
type familyPlan struct {
	family   ranges.Family
	rule     selection.Rule
	pools    []string
	rejected []selection.RejectedPool
	// addresses are the fixed addresses the pod asks for (any dialect).
	addresses []netip.Addr
}

// ifacePlan is what to allocate for one interface.
type ifacePlan struct {
	ifName       string
	families     []familyPlan
	cleanGateway bool
	// podRoutes is the pod's ipam.spidernet.io/routes annotation; the
	// entries whose gateway lies in a subnet of the interface apply.
	podRoutes []annotations.Route
	// mac is the MAC address the pod asks for on the interface; nil for
	// none.
	mac net.HardwareAddr
}

// selectionIndex caches the selection index of all pools; any pool event
// marks it stale.
type selectionIndex struct {
	mu    sync.Mutex
	index *selection.Index
}

func (s *selectionIndex) invalidate() {
	s.mu.Lock()
	s.index = nil
	s.mu.Unlock()
}

func (a *Agent) selectionIndex(ctx context.Context) (*selection.Index, error) {
	a.selIndex.mu.Lock()
	defer a.selIndex.mu.Unlock()
	if a.selIndex.index != nil {
		return a.selIndex.index, nil
	}
	list := &v2beta1.SpiderIPPoolList{}
	if err := a.cache.List(ctx, list); err != nil {
		return nil, fmt.Errorf("failed to list SpiderIPPools from cache: %w", err)
	}
	pools := make([]*v2beta1.SpiderIPPool, len(list.Items))
	for i := range list.Items {
		pools[i] = &list.Items[i]
	}
	a.selIndex.index = selection.NewIndex(pools)
	return a.selIndex.index, nil
}

// plan selects the candidate pools of the interface (ipam/selection) and
// parses the pod's routes annotation.
func (a *Agent) plan(ctx context.Context, f *podFacts, req *nodeapi.Request) (*ifacePlan, error) {
	idx, err := a.selectionIndex(ctx)
	if err != nil {
		return nil, allocator.APIError(err, "failed to select pools for pod %q", f.key())
	}
	w, err := a.workloadOf(ctx, f.pod)
	if err != nil {
		return nil, err
	}
	v4, v6, err := a.networkPools(f, req)
	if err != nil {
		return nil, err
	}
	var heldErr error
	sel, err := idx.Select(podselect.Request(a.selectSettings(), &podselect.Facts{
		Pod:       f.pod,
		Namespace: f.namespace,
		NodeName:  a.cfg.NodeName,
		Node:      f.node,
		Workload:  w,
		HeldInterfaces: func() []string {
			var out []string
			var held []*v2beta1.SpiderIPClaim
			held, heldErr = a.podClaims(f.key())
			for _, c := range held {
				out = append(out, c.Spec.Interface)
			}
			return out
		},
	}, podselect.Interface{Name: req.IfName, DefaultIPv4Pools: v4, DefaultIPv6Pools: v6}))
	if heldErr != nil {
		return nil, heldErr
	}
	if err != nil {
		var npe *selection.NoPoolError
		if errors.As(err, &npe) {
			code := nodeapi.CodeInvalidConfig
			if npe.Waiting {
				code = nodeapi.CodeTryAgainLater
			}
			return nil, &nodeapi.ErrorResponse{Code: code, Reason: nodeapi.ReasonNoPool,
				Msg:     fmt.Sprintf("failed to allocate %s address for interface %q of pod %q", npe.Family, req.IfName, f.key()),
				Details: nodeapi.TrimDetails(npe.Error())}
		}
		return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Msg: nodeapi.TrimDetails(err.Error())}
	}
	p := &ifacePlan{ifName: req.IfName, cleanGateway: sel.CleanGateway}
	if sel.Fixed != nil {
		p.mac = sel.Fixed.MAC
	}
	for _, fam := range []ranges.Family{ranges.V4, ranges.V6} {
		fr := sel.Family(fam)
		if len(fr.Pools) == 0 {
			continue
		}
		p.families = append(p.families, familyPlan{family: fam, rule: fr.Rule, pools: fr.Pools, rejected: fr.Rejected, addresses: fr.Addresses})
	}
	if v, ok := f.pod.Annotations[annotations.PodRoutes]; ok {
		routes, err := annotations.ParseRoutes(v)
		if err != nil {
			return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Msg: fmt.Sprintf("failed to parse pod %q", f.key()), Details: err.Error()}
		}
		p.podRoutes = routes
	}
	return p, nil
}

// networkPools returns the pools the network configuration gives the
// interface: its default pools, or for a configuration with inline ranges
// the pools spindle-controller made of them for the interface's
// NetworkAttachmentDefinition. Those serve exactly like default pools of the
// configuration (a network with ranges of one family is single-family).
func (a *Agent) networkPools(f *podFacts, req *nodeapi.Request) (v4, v6 []string, err error) {
	if !req.Inline() {
		return req.DefaultIPv4Pools, req.DefaultIPv6Pools, nil
	}
	ns, name, ok, err := podselect.InterfaceNetwork(a.selectSettings(), f.pod, req.IfName)
	if err != nil {
		return nil, nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Msg: fmt.Sprintf("failed to parse pod %q", f.key()), Details: err.Error()}
	}
	if !ok {
		return nil, nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig,
			Msg:     fmt.Sprintf("network %q of interface %q of pod %q carries its own ranges, but the NetworkAttachmentDefinition of the interface is unknown", req.NetworkName, req.IfName, f.key()),
			Details: "inline ranges are served for interfaces attached through a NetworkAttachmentDefinition: list it in the pod's k8s.v1.cni.cncf.io/networks annotation (for eth0, set the agent's --cluster-default-network)"}
	}
	names := func(suffixes []string) ([]string, error) {
		out := make([]string, 0, len(suffixes))
		for _, sfx := range suffixes {
			if !inline.IsSuffix(sfx) {
				return nil, &nodeapi.ErrorResponse{Code: nodeapi.CodeInvalidConfig, Msg: fmt.Sprintf("invalid inline pool suffix %q in the request for pod %q", sfx, f.key())}
			}
			out = append(out, inline.PoolName(ns, name, sfx))
		}
		return out, nil
	}
	if v4, err = names(req.InlineIPv4Pools); err != nil {
		return nil, nil, err
	}
	if v6, err = names(req.InlineIPv6Pools); err != nil {
		return nil, nil, err
	}
	return v4, v6, nil
}

// annotationRoutes returns the pod's routes whose gateway lies in one of
// the subnets.
func (p *ifacePlan) annotationRoutes(subnets []netip.Prefix) []nodeapi.Route {
	var out []nodeapi.Route
	for _, r := range selection.RoutesFor(p.podRoutes, subnets...) {
		out = append(out, nodeapi.Route{Dst: r.Dst.String(), GW: r.Gw.String()})
	}
	return out
}

// selectSettings are the agent's settings selection depends on.
func (a *Agent) selectSettings() *podselect.Settings {
	return &podselect.Settings{
		EnableIPv4:            a.cfg.EnableIPv4,
		EnableIPv6:            a.cfg.EnableIPv6,
		ClusterDefaultNetwork: a.cfg.ClusterDefaultNetwork,
		SystemNamespace:       a.cfg.SystemNamespace,
		DefaultSubnet:         a.cfg.DefaultSubnet,
	}
}
