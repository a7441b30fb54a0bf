package webhook

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/ipam/ranges"
	"github.com/spindle-net/spindle/ipam/subnets"
)

// PoolState is the cluster state the SpiderIPPool rules depend on.
type PoolState struct {
	// Old is the pool before the update; nil on create.
	Old *v2beta1.SpiderIPPool
	// Others are the other pools of the cluster.
	Others []v2beta1.SpiderIPPool
	// Claims are the SpiderIPClaims of this pool.
	Claims []v2beta1.SpiderIPClaim
	// Subnets are the SpiderSubnets of the cluster: the one with the pool's
	// prefix must give the pool all its addresses.
	Subnets []v2beta1.SpiderSubnet
}

// ValidateIPPool checks a SpiderIPPool. It returns Errors (or nil).
func ValidateIPPool(p *v2beta1.SpiderIPPool, st PoolState) error {
	var es Errors
	spec := &p.Spec
	subnet, ok := parseSubnet(&es, "spec.subnet", spec.Subnet)
	if !ok {
		return es.Err()
	}
	fam := ranges.FamilyOf(subnet.Addr())
	if st.Old != nil {
		if oldNet, err := netip.ParsePrefix(st.Old.Spec.Subnet); err == nil && oldNet.Masked() != subnet {
			es.add("spec.subnet", "changing the subnet from %s to %s is not allowed: create a new pool with the new subnet and move the workloads to it", oldNet.Masked(), subnet)
		}
	}
	checkVersion(&es, "spec.ipVersion", spec.IPVersion, fam, "spec.subnet "+subnet.String())
	ips := entriesIn(&es, "spec.ips", spec.IPs, fam, subnet)
	excl := entriesIn(&es, "spec.excludeIPs", spec.ExcludeIPs, fam, subnet)
	var gw netip.Addr
	if spec.Gateway != nil && *spec.Gateway != "" {
		gw, _ = addrIn(&es, "spec.gateway", *spec.Gateway, fam, subnet, "use an address of the subnet as gateway")
	}
	validateRoutes(&es, "spec.routes", spec.Routes, fam, subnet, gw.IsValid())
	validateSelector(&es, "spec.podAffinity", spec.PodAffinity, "pod")
	validateSelector(&es, "spec.namespaceAffinity", spec.NamespaceAffinity, "namespace")
	validateSelector(&es, "spec.nodeAffinity", spec.NodeAffinity, "node")
	validateDNS(&es, "spec.dns", spec.DNS)
	nonEmptyNames(&es, "spec.namespaceName", spec.NamespaceName)
	nonEmptyNames(&es, "spec.nodeName", spec.NodeName)
	for i, m := range spec.MultusName {
		if m == "" || strings.Count(m, "/") > 1 || strings.HasPrefix(m, "/") || strings.HasSuffix(m, "/") {
			es.add(idx("spec.multusName", i), "%q is not a NetworkAttachmentDefinition reference: write \"namespace/name\" or \"name\"", m)
		}
	}
	if len(es) > 0 {
		return es
	}

	usable := ips.Subtract(excl)
	if gw.IsValid() {
		usable = usable.Subtract(ranges.NewSet(ranges.Range{First: gw, Last: gw}))
	}

	// Subnets and addresses shared with other pools of the same family.
	others := append([]v2beta1.SpiderIPPool(nil), st.Others...)
	sort.Slice(others, func(i, j int) bool { return others[i].Name < others[j].Name })
	for i := range others {
		o := &others[i]
		if o.Name == p.Name {
			continue
		}
		op, err := ranges.ParsePool(&o.Spec, ranges.Set{})
		if err != nil || op.Family != fam {
			continue
		}
		if op.Subnet != subnet && op.Subnet.Overlaps(subnet) {
			es.add("spec.subnet", "%s overlaps spec.subnet %s of SpiderIPPool %q: pools whose subnets overlap must use exactly the same subnet; use %s or a subnet that does not overlap", subnet, op.Subnet, o.Name, op.Subnet)
			continue
		}
		if sharedNetwork(p, o) {
			continue // one network: its claims keep every address unique
		}
		if both := intersect(usable, op.Usable); !both.Empty() {
			es.add("spec.ips", "%s already belong to SpiderIPPool %q: an address can be in one pool only; remove them from spec.ips or add them to spec.excludeIPs%s", short(both), o.Name, inlineHint(p, o))
		}
	}

	// A subnet with the pool's prefix gives it all its addresses.
	if sub := subnets.Of(p, st.Subnets); sub != nil {
		if l, err := subnets.Parse(sub); err == nil {
			if out := usable.Subtract(l.Usable); !out.Empty() {
				es.add("spec.ips", "%s are not given to pools by SpiderSubnet %q (its spec.ips minus spec.excludeIPs and spec.gateway): remove them from the pool, or add them to the subnet", short(out), sub.Name)
			}
		}
	}

	// Allocated addresses must stay usable.
	claims := append([]v2beta1.SpiderIPClaim(nil), st.Claims...)
	sort.Slice(claims, func(i, j int) bool { return claims[i].Name < claims[j].Name })
	for _, c := range claims {
		if c.Spec.Pool != p.Name {
			continue
		}
		a, err := netip.ParseAddr(c.Spec.Address)
		if err != nil || usable.Contains(a) {
			continue
		}
		field := "spec.ips"
		switch {
		case gw == a:
			field = "spec.gateway"
		case ips.Contains(a):
			field = "spec.excludeIPs"
		}
		es.add(field, "%s is allocated to pod %s/%s%s and cannot be removed from the pool: delete the pod (or wait until it is gone) first, or keep the address in the pool", a, c.Spec.PodNamespace, c.Spec.PodName, ifaceSuffix(c.Spec.Interface))
	}
	return es.Err()
}

// sharedNetwork reports whether two pools are inline pools of networks that
// say they attach to one network (the same sharedNetwork in their ipam
// objects): their ranges may overlap.
func sharedNetwork(a, b *v2beta1.SpiderIPPool) bool {
	v := a.Labels[v2beta1.LabelSharedNetwork]
	return v != "" && v == b.Labels[v2beta1.LabelSharedNetwork] &&
		a.Labels[v2beta1.LabelInline] == "true" && b.Labels[v2beta1.LabelInline] == "true"
}

// inlineHint tells how two inline pools may overlap.
func inlineHint(a, b *v2beta1.SpiderIPPool) string {
	na, nb := a.Annotations[v2beta1.AnnoInlineNetwork], b.Annotations[v2beta1.AnnoInlineNetwork]
	if na == "" || nb == "" || a.Labels[v2beta1.LabelInline] != "true" || b.Labels[v2beta1.LabelInline] != "true" {
		return ""
	}
	return fmt.Sprintf(" (the inline ranges of NetworkAttachmentDefinitions %s and %s overlap; if both attach to one network, give both the same \"%s\" in their ipam object)", na, nb, inline.SharedNetworkKey)
}

// validateDNS checks that nameservers are addresses.
func validateDNS(es *Errors, field string, dns *v2beta1.DNS) {
	if dns == nil {
		return
	}
	for i, ns := range dns.Nameservers {
		if _, err := netip.ParseAddr(strings.TrimSpace(ns)); err != nil {
			es.add(idx(field+".nameservers", i), "%q is not an IP address: list the name servers' addresses", ns)
		}
	}
	for i, s := range dns.Search {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t") {
			es.add(idx(field+".search", i), "%q is not a domain name", s)
		}
	}
}

func ifaceSuffix(iface string) string {
	if iface == "" {
		return ""
	}
	return " (interface " + iface + ")"
}

// validateRoutes checks routes: dst is a CIDR of the family, gw an address of
// the family inside subnet, and no default route when a gateway already
// provides one.
func validateRoutes(es *Errors, field string, routes []v2beta1.Route, fam ranges.Family, subnet netip.Prefix, hasGateway bool) {
	seen := map[netip.Prefix]int{}
	for i, r := range routes {
		f := idx(field, i)
		dst, err := netip.ParsePrefix(strings.TrimSpace(r.Dst))
		if err != nil {
			es.add(f+".dst", "%q is not a CIDR: write the destination as a CIDR, e.g. 10.0.0.0/8", r.Dst)
		} else {
			dst = dst.Masked()
			switch {
			case ranges.FamilyOf(dst.Addr()) != fam:
				es.add(f+".dst", "%s is an %s destination in an %s object: use an %s CIDR", dst, ranges.FamilyOf(dst.Addr()), fam, fam)
			case dst.Bits() == 0 && hasGateway:
				es.add(f+".dst", "%s is a default route, but spec.gateway already provides one: remove this route or unset spec.gateway", dst)
			default:
				if j, dup := seen[dst]; dup {
					es.add(f+".dst", "%s is already the destination of %s: keep one route per destination", dst, idx(field, j))
				}
				seen[dst] = i
			}
		}
		addrIn(es, f+".gw", r.Gw, fam, subnet, "the next hop must be reachable on the pool's subnet; use an address of the subnet")
	}
}

// validateSelector refuses empty and malformed label selectors: an empty
// selector matches everything, which is never what an affinity means.
func validateSelector(es *Errors, field string, sel *metav1.LabelSelector, what string) {
	if sel == nil {
		return
	}
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		es.add(field, "an empty selector matches every %s: add matchLabels or matchExpressions, or remove %s", what, field)
		return
	}
	if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
		es.add(field, "invalid selector (%v): fix the labels or expressions", err)
	}
}

func nonEmptyNames(es *Errors, field string, names []string) {
	seen := map[string]bool{}
	for i, n := range names {
		switch {
		case strings.TrimSpace(n) == "":
			es.add(idx(field, i), "empty name: remove the entry or write a name")
		case seen[n]:
			es.add(idx(field, i), "%q is listed twice: remove the duplicate", n)
		}
		seen[n] = true
	}
}

// DefaultIPPool fills spec.ipVersion from spec.subnet and rewrites ips and
// excludeIPs in canonical form (sorted, merged ranges) when they parse. It
// leaves anything invalid alone for the validator to report.
func DefaultIPPool(p *v2beta1.SpiderIPPool) {
	subnet, err := netip.ParsePrefix(strings.TrimSpace(p.Spec.Subnet))
	if err != nil {
		return
	}
	fam := ranges.FamilyOf(subnet.Addr())
	if p.Spec.IPVersion == nil {
		v := int64(fam)
		p.Spec.IPVersion = &v
	}
	p.Spec.IPs = canonical(p.Spec.IPs, fam, subnet.Masked())
	p.Spec.ExcludeIPs = canonical(p.Spec.ExcludeIPs, fam, subnet.Masked())
	if p.Spec.Default == nil {
		f := false
		p.Spec.Default = &f
	}
	if p.Spec.Disable == nil {
		f := false
		p.Spec.Disable = &f
	}
}

// canonical returns entries as a canonical range list, or entries unchanged
// when any entry does not parse, is of another family or lies outside subnet
// (when valid), so that the validator reports errors by the user's indices.
func canonical(entries []string, fam ranges.Family, subnet netip.Prefix) []string {
	if len(entries) == 0 {
		return entries
	}
	rs := make([]ranges.Range, 0, len(entries))
	for _, e := range entries {
		r, err := ranges.ParseRange(e)
		if err != nil || r.Family() != fam || (subnet.IsValid() && !(subnet.Contains(r.First) && subnet.Contains(r.Last))) {
			return entries
		}
		rs = append(rs, r)
	}
	return ranges.NewSet(rs...).Strings()
}
