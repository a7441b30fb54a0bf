package webhook

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// ValidateSubnet checks a SpiderSubnet. old is the subnet before an update
// (nil on create); others are the other SpiderSubnets; pools are the
// SpiderIPPools of the cluster, of which those with the subnet's prefix must
// keep their addresses inside the subnet's usable addresses.
func ValidateSubnet(s *v2beta1.SpiderSubnet, old *v2beta1.SpiderSubnet, others []v2beta1.SpiderSubnet, pools []v2beta1.SpiderIPPool) error {
	var es Errors
	subnet, ok := parseSubnet(&es, "spec.subnet", s.Spec.Subnet)
	if !ok {
		return es.Err()
	}
	fam := ranges.FamilyOf(subnet.Addr())
	if old != nil {
		if oldNet, err := netip.ParsePrefix(old.Spec.Subnet); err == nil && oldNet.Masked() != subnet {
			es.add("spec.subnet", "changing the subnet from %s to %s is not allowed: create a new SpiderSubnet instead", oldNet.Masked(), subnet)
		}
	}
	checkVersion(&es, "spec.ipVersion", s.Spec.IPVersion, fam, "spec.subnet "+subnet.String())
	entriesIn(&es, "spec.ips", s.Spec.IPs, fam, subnet)
	entriesIn(&es, "spec.excludeIPs", s.Spec.ExcludeIPs, fam, subnet)
	var gw netip.Addr
	if s.Spec.Gateway != nil && *s.Spec.Gateway != "" {
		gw, _ = addrIn(&es, "spec.gateway", *s.Spec.Gateway, fam, subnet, "use an address of the subnet as gateway")
	}
	validateRoutes(&es, "spec.routes", s.Spec.Routes, fam, subnet, gw.IsValid())
	sorted := append([]v2beta1.SpiderSubnet(nil), others...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, o := range sorted {
		if o.Name == s.Name {
			continue
		}
		on, err := netip.ParsePrefix(o.Spec.Subnet)
		if err != nil {
			continue
		}
		if on.Masked().Overlaps(subnet) {
			es.add("spec.subnet", "%s overlaps spec.subnet %s of SpiderSubnet %q: SpiderSubnets must not overlap; pick a disjoint subnet", subnet, on.Masked(), o.Name)
		}
	}
	if len(es) > 0 {
		return es
	}
	// The pools of the subnet keep their addresses.
	l, err := subnets.Parse(s)
	if err != nil {
		return es.Err()
	}
	var excluded ranges.Set
	if old != nil {
		if ol, err := subnets.Parse(old); err == nil {
			excluded = ol.Usable.Subtract(l.Usable)
		}
	}
	sortedPools := append([]v2beta1.SpiderIPPool(nil), pools...)
	sort.Slice(sortedPools, func(i, j int) bool { return sortedPools[i].Name < sortedPools[j].Name })
	for i := range sortedPools {
		p := &sortedPools[i]
		if subnets.Of(p, []v2beta1.SpiderSubnet{*s}) == nil || p.DeletionTimestamp != nil {
			continue
		}
		out, err := subnets.Outside(l, p)
		if err != nil || out.Empty() {
			continue
		}
		field := "spec.ips"
		if !intersect(out, excluded).Empty() && len(s.Spec.ExcludeIPs) > 0 {
			field = "spec.excludeIPs"
		}
		es.add(field, "%s are used by SpiderIPPool %q and would no longer be given to pools by this subnet: remove them from the pool first, or keep them in spec.ips (and out of spec.excludeIPs and spec.gateway)", short(out), p.Name)
	}
	return es.Err()
}

// DefaultSubnet fills spec.ipVersion and canonicalises ips and excludeIPs.
func DefaultSubnet(s *v2beta1.SpiderSubnet) {
	subnet, err := netip.ParsePrefix(strings.TrimSpace(s.Spec.Subnet))
	if err != nil {
		return
	}
	fam := ranges.FamilyOf(subnet.Addr())
	if s.Spec.IPVersion == nil {
		v := int64(fam)
		s.Spec.IPVersion = &v
	}
	s.Spec.IPs = canonical(s.Spec.IPs, fam, subnet.Masked())
	s.Spec.ExcludeIPs = canonical(s.Spec.ExcludeIPs, fam, subnet.Masked())
}
