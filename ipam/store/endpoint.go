package store

import (
	"net/netip"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

// PoolFacts is what a SpiderEndpoint entry needs to know about a pool.
type PoolFacts struct {
	PrefixLen int
	Gateway   string
	Vlan      *int64
	Routes    []v2beta1.Route
	// DNS is the pool's spec.dns (results only).
	DNS *v2beta1.DNS
}

// FactsOf returns the facts of pool, whose parsed layout is layout.
func FactsOf(pool *v2beta1.SpiderIPPool, layout *ranges.Pool) PoolFacts {
	f := PoolFacts{PrefixLen: layout.Subnet.Bits(), Vlan: pool.Spec.Vlan, Routes: pool.Spec.Routes, DNS: pool.Spec.DNS}
	if layout.Gateway.IsValid() {
		f.Gateway = layout.Gateway.String()
	}
	return f
}

// OwnerPod is the owner type of a bare pod.
const OwnerPod = "Pod"

// LabelEndpointNode is set on every SpiderEndpoint Spindle writes to the node
// of the pod, so each agent watches only the SpiderEndpoints of its node.
const LabelEndpointNode = "ipam.spidernet.io/node"

// EndpointFromClaims derives the SpiderEndpoint of a pod from its claims (all
// of one pod UID). pool returns facts of a pool (ok=false when the pool is
// unknown; the address is then recorded with its host prefix). It returns nil
// when claims is empty.
func EndpointFromClaims(namespace, name string, claims []*v2beta1.SpiderIPClaim, pool func(string) (PoolFacts, bool)) *v2beta1.SpiderEndpoint {
	if len(claims) == 0 {
		return nil
	}
	sorted := append([]*v2beta1.SpiderIPClaim(nil), claims...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Spec.Interface != sorted[j].Spec.Interface {
			return ifaceLess(sorted[i].Spec.Interface, sorted[j].Spec.Interface)
		}
		return sorted[i].Spec.IPVersion < sorted[j].Spec.IPVersion
	})
	first := sorted[0].Spec
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{LabelEndpointNode: first.Node}},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID:         first.PodUID,
				Node:        first.Node,
				ContainerID: first.ContainerID,
			},
			OwnerControllerType: first.OwnerKind,
			OwnerControllerName: first.OwnerName,
		},
	}
	if se.Status.OwnerControllerType == "" {
		se.Status.OwnerControllerType, se.Status.OwnerControllerName = OwnerPod, name
	}
	var cur *v2beta1.IPAllocationDetail
	for _, c := range sorted {
		if cur == nil || cur.Interface != c.Spec.Interface {
			se.Status.Current.IPs = append(se.Status.Current.IPs, v2beta1.IPAllocationDetail{Interface: c.Spec.Interface})
			cur = &se.Status.Current.IPs[len(se.Status.Current.IPs)-1]
			clean := c.Spec.CleanGateway
			cur.CleanGateway = &clean
		}
		addr, err := netip.ParseAddr(c.Spec.Address)
		if err != nil {
			continue
		}
		facts, ok := pool(c.Spec.Pool)
		if !ok {
			facts = PoolFacts{PrefixLen: addr.BitLen()}
		}
		cidr := netip.PrefixFrom(addr, facts.PrefixLen).String()
		poolName := c.Spec.Pool
		if addr.Is4() {
			cur.IPv4, cur.IPv4Pool = &cidr, &poolName
			if facts.Gateway != "" && !c.Spec.CleanGateway {
				gw := facts.Gateway
				cur.IPv4Gateway = &gw
			}
		} else {
			cur.IPv6, cur.IPv6Pool = &cidr, &poolName
			if facts.Gateway != "" && !c.Spec.CleanGateway {
				gw := facts.Gateway
				cur.IPv6Gateway = &gw
			}
		}
		if facts.Vlan != nil {
			v := *facts.Vlan
			cur.Vlan = &v
		}
		cur.Routes = append(cur.Routes, facts.Routes...)
	}
	se.Status.Current.Addresses = AddressSummary(se.Status.Current.IPs)
	return se
}

// AddressSummary renders the addresses of every interface on one line, the
// value of status.current.addresses: "eth0=10.6.0.5/16,fd00:6::5/64
// net1=10.7.0.5/24".
func AddressSummary(ips []v2beta1.IPAllocationDetail) string {
	var b strings.Builder
	for i, d := range ips {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(d.Interface)
		b.WriteByte('=')
		sep := ""
		for _, a := range []*string{d.IPv4, d.IPv6} {
			if a != nil && *a != "" {
				b.WriteString(sep + *a)
				sep = ","
			}
		}
	}
	return b.String()
}

// ifaceLess orders eth0 first, then net1, net2, ..., net10 numerically.
func ifaceLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
