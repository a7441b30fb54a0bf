package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"

	"github.com/spindle-net/spindle/ipam/allocator"
	"github.com/spindle-net/spindle/ipam/annotations"
	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/selection"
	"github.com/spindle-net/spindle/ipam/subnets"
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
	var ordinal *int
	if f.ownerKind == "StatefulSet" {
		if n, ok := lifecycle.Ordinal(f.ownerName, f.pod.Name); ok {
			i := int(n)
			ordinal = &i
		}
	}
	w, err := a.workloadOf(ctx, f.pod)
	if err != nil {
		return nil, err
	}
	podLabels := f.pod.Labels
	if w.app != nil {
		// The application's pools match these in their pod affinity.
		podLabels = maps.Clone(podLabels)
		if podLabels == nil {
			podLabels = map[string]string{}
		}
		maps.Copy(podLabels, subnets.AppLabels(*w.app))
	}
	sel, err := idx.Select(&selection.Request{
		Ordinal:               ordinal,
		Owner:                 w.owner,
		OwnerAnnotations:      w.annotations,
		App:                   w.app,
		DefaultSubnet:         &a.cfg.DefaultSubnet,
		KubeIPAMInterface:     a.kubeIPAMInterface(f, req.IfName, w.annotations),
		PodNamespace:          f.pod.Namespace,
		PodName:               f.pod.Name,
		PodLabels:             podLabels,
		PodAnnotations:        f.pod.Annotations,
		NamespaceLabels:       f.namespace.Labels,
		NamespaceAnnotations:  f.namespace.Annotations,
		NodeName:              a.cfg.NodeName,
		NodeLabels:            f.node.Labels,
		Interface:             req.IfName,
		ClusterDefaultNetwork: a.cfg.ClusterDefaultNetwork,
		SystemNamespace:       a.cfg.SystemNamespace,
		DefaultIPv4Pools:      req.DefaultIPv4Pools,
		DefaultIPv6Pools:      req.DefaultIPv6Pools,
		EnableIPv4:            a.cfg.EnableIPv4,
		EnableIPv6:            a.cfg.EnableIPv6,
	})
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

// annotationRoutes returns the pod's routes whose gateway lies in one of
// the subnets.
func (p *ifacePlan) annotationRoutes(subnets []netip.Prefix) []nodeapi.Route {
	var out []nodeapi.Route
	for _, r := range selection.RoutesFor(p.podRoutes, subnets...) {
		out = append(out, nodeapi.Route{Dst: r.Dst.String(), GW: r.Gw.String()})
	}
	return out
}

// kubeIPAMInterface is the interface kube-ipam's annotations address: the
// pod's first interface that Spindle serves, as kube-ipam's address the
// interface kube-ipam allocates for (often net1 on a database network, eth0
// coming from another plugin). Multus sets interfaces up in order, so an
// interface before ifName that Spindle serves already has claims. Empty
// when the pod has no kube-ipam address.
func (a *Agent) kubeIPAMInterface(f *podFacts, ifName string, ownerAnn map[string]string) string {
	_, onPod := f.pod.Annotations[annotations.KubeIPAMIP]
	_, onOwner := ownerAnn[annotations.KubeIPAMIP]
	if !onPod && !onOwner {
		return ""
	}
	nets, err := selection.ParsePodNetworks(f.pod.Namespace, f.pod.Annotations, a.cfg.ClusterDefaultNetwork)
	if err != nil {
		return "" // selection reports the malformed annotation
	}
	served := map[string]bool{}
	for _, c := range a.podClaims(f.key()) {
		served[c.Spec.Interface] = true
	}
	for i := 0; i <= len(nets.Additional); i++ {
		if name := nets.InterfaceAt(i); name == ifName || served[name] {
			return name
		}
	}
	return ifName
}
