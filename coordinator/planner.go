package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/routing"
)

// Table numbering. A pod NIC whose name ends in a number N below 100 (eth0,
// net1, net2...) gets table 100+N: eth0 -> 100, net1 -> 101. Any other NIC
// gets table 1000 + its ifindex in the pod. The "from <address>" rule of a
// NIC has the priority of its table number.
const (
	tableBase         = 100
	maxNICNumber      = 100
	fallbackTableBase = 1000
	// HostRulePriority is the priority of the node's "lookup hostRuleTable"
	// rule; it sits before the main table (32766).
	HostRulePriority = 1000
	// protoKernel is RTPROT_KERNEL: routes the kernel adds for an address.
	protoKernel = 2
)

// Link-local addresses of the underlay veth pair, used as IPv6 next hops in
// both directions (the pod's own IPv6 addresses live on other links, so
// neither side would answer neighbour solicitations for them on the veth).
var (
	HostVethIPv6 = net.ParseIP("fe80::1")
	PodVethIPv6  = net.ParseIP("fe80::2")
)

// NICTable returns the per-NIC route table of the pod interface name, whose
// ifindex in the pod is index.
func NICTable(name string, index int) int {
	if n, ok := trailingNumber(name); ok && n < maxNICNumber {
		return tableBase + n
	}
	return fallbackTableBase + index
}

func trailingNumber(name string) (int, bool) {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == len(name) || len(name)-i > 6 {
		return 0, false
	}
	n, err := strconv.Atoi(name[i:])
	return n, err == nil
}

// HostVethName is the node end of a pod's underlay veth pair: "veth" and 11
// hex digits of the SHA-256 of the container ID.
func HostVethName(containerID string) string {
	sum := sha256.Sum256([]byte(containerID))
	return "veth" + hex.EncodeToString(sum[:])[:11]
}

// StatefulSetMACPrefix is the prefix of the MAC a StatefulSet replica's (or
// a virtual machine's launcher pod's) interface gets when the pod asks for none and no podMACPrefix is set: a
// locally administered unicast prefix, followed by the interface's address
// (DeriveMAC), which the replica keeps across incarnations.
var StatefulSetMACPrefix = net.HardwareAddr{0x02, 0x73}

// DeriveMAC builds a MAC address from a two-byte prefix and the NIC's first
// IPv4 address (its 4 bytes), or, without IPv4, the last 4 bytes of its
// first IPv6 address. It returns nil when there is no address.
func DeriveMAC(prefix net.HardwareAddr, addrs []*net.IPNet) net.HardwareAddr {
	var tail net.IP
	for _, a := range addrs {
		if ip4 := a.IP.To4(); ip4 != nil {
			tail = ip4
			break
		}
	}
	if tail == nil {
		for _, a := range addrs {
			tail = a.IP.To16()[12:16]
			break
		}
	}
	if tail == nil || len(prefix) != 2 {
		return nil
	}
	return net.HardwareAddr{prefix[0], prefix[1], tail[0], tail[1], tail[2], tail[3]}
}

// PlanInput is everything the planner looks at.
type PlanInput struct {
	ContainerID string
	NetNS       string
	IfName      string
	// Result is the previous plugin's result.
	Result *current.Result
	Config *Config
	Pod    *nodeapi.PodInfo
	// PodFacts and HostFacts are the namespaces as they are now.
	PodFacts     *routing.PodFacts
	HostFacts    *routing.HostFacts
	HostLockFile string
}

// nic is one pod interface as the planner sees it.
type nic struct {
	name      string
	index     int
	table     int
	mtu       int
	peerIndex int
	addrs     []*net.IPNet
	linkLocal []net.IP
	// routes are the NIC's own routes (default and custom), main-table
	// relative (Table 0), without the kernel's subnet routes.
	routes []routing.Route
	clean  bool
}

func (n *nic) gateway(f routing.Family) net.IP {
	for _, r := range n.routes {
		if r.IsDefault() && r.Family() == f && r.Gw != nil {
			return r.Gw
		}
	}
	return nil
}

func (n *nic) addr(f routing.Family) net.IP {
	for _, a := range n.addrs {
		if routing.FamilyOf(a.IP) == f {
			return a.IP
		}
	}
	return nil
}

// onLink reports whether the subnet of a is on-link on the NIC: the kernel
// keeps its subnet route in the main table (a point-to-point NIC such as
// ptp's replaces it with a route via its gateway), or the NIC's table
// already holds the on-link copy.
func (n *nic) onLink(f *routing.PodFacts, a *net.IPNet) bool {
	if ones, bits := a.Mask.Size(); ones == bits {
		return false
	}
	sub := subnetOf(a).String()
	for _, r := range f.Routes {
		if r.Dev == n.name && r.Gw == nil && r.Dst.String() == sub &&
			(r.Table == routing.TableMain && r.Protocol == protoKernel || r.Table == n.table) {
			return true
		}
	}
	return false
}

func (n *nic) isSubnetRoute(r routing.Route) bool {
	if r.Gw != nil {
		return false
	}
	for _, a := range n.addrs {
		if subnetOf(a).String() == r.Dst.String() {
			return true
		}
	}
	return false
}

func subnetOf(a *net.IPNet) *net.IPNet {
	return &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask}
}

func hostPrefix(ip net.IP) *net.IPNet {
	if ip4 := ip.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip.To16(), Mask: net.CIDRMask(128, 128)}
}

func defaultDst(f routing.Family) *net.IPNet {
	if f == routing.FamilyV6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

var families = []routing.Family{routing.FamilyV4, routing.FamilyV6}

// ResolveMode turns auto into underlay or overlay for the interface being
// added: underlay when it is the first NIC or the pod already has veth0.
func ResolveMode(mode Mode, ifName string, facts *routing.PodFacts) Mode {
	if mode != ModeAuto {
		return mode
	}
	if ifName == FirstNIC || (facts != nil && facts.Link(PodVethName) != nil) {
		return ModeUnderlay
	}
	return ModeOverlay
}

// resultIPs returns the addresses and gateways the previous result gives
// ifName.
func resultIPs(res *current.Result, ifName string) ([]*net.IPNet, map[routing.Family]net.IP) {
	idx := -1
	if res != nil {
		for i, itf := range res.Interfaces {
			if itf.Name == ifName && itf.Sandbox != "" {
				idx = i
				break
			}
		}
	}
	gws := map[routing.Family]net.IP{}
	var addrs []*net.IPNet
	if res == nil {
		return nil, gws
	}
	for _, ipc := range res.IPs {
		if ipc.Interface != nil && *ipc.Interface != idx {
			continue
		}
		a := ipc.Address
		addrs = append(addrs, normaliseNet(&a))
		if ipc.Gateway != nil {
			if _, ok := gws[routing.FamilyOf(ipc.Gateway)]; !ok {
				gws[routing.FamilyOf(ipc.Gateway)] = ipc.Gateway
			}
		}
	}
	return addrs, gws
}

func normaliseNet(n *net.IPNet) *net.IPNet {
	if ip4 := n.IP.To4(); ip4 != nil {
		m := n.Mask
		if len(m) == 16 {
			m = m[12:]
		}
		return &net.IPNet{IP: ip4, Mask: m}
	}
	return &net.IPNet{IP: n.IP.To16(), Mask: n.Mask}
}

// collectNICs builds the planner's view of every pod interface: the links
// found in the pod (veth0 and links without a global address excepted),
// their own routes from the main table and from their per-NIC table, and,
// for the interface being added, the previous result.
func collectNICs(in *PlanInput) ([]*nic, error) {
	var nics []*nic
	for _, l := range in.PodFacts.Links {
		if l.Name == PodVethName {
			continue
		}
		n := &nic{
			name: l.Name, index: l.Index, table: NICTable(l.Name, l.Index), mtu: l.MTU,
			peerIndex: l.PeerIndex, linkLocal: l.LinkLocal,
		}
		for _, a := range l.Addrs {
			n.addrs = append(n.addrs, normaliseNet(a))
		}
		if l.Name == in.IfName {
			addrs, gws := resultIPs(in.Result, in.IfName)
			for _, a := range addrs {
				if !slices.ContainsFunc(n.addrs, func(h *net.IPNet) bool { return h.IP.Equal(a.IP) }) {
					n.addrs = append(n.addrs, a)
				}
			}
			for _, r := range in.Result.Routes {
				dst := normaliseNet(&r.Dst)
				gw := r.GW
				if gw == nil {
					gw = gws[routing.FamilyOf(dst.IP)]
				}
				rr := routing.Route{Dst: dst, Gw: gw, Dev: n.name}
				if gw == nil {
					rr.Scope = routing.ScopeLink
				}
				n.routes = append(n.routes, rr)
			}
		}
		if len(n.addrs) == 0 {
			continue
		}
		if in.Pod != nil {
			n.clean = in.Pod.Interfaces[n.name].CleanGateway
		}
		for _, r := range in.PodFacts.Routes {
			if r.Dev != n.name || r.Protocol == routing.ProtoHostPath || r.Protocol == protoKernel {
				continue
			}
			if r.Table != routing.TableMain && r.Table != n.table {
				continue
			}
			if r.Table == n.table && n.isSubnetRoute(r) {
				continue
			}
			rr := routing.Route{Dst: r.Dst, Gw: r.Gw, Dev: n.name, Scope: r.Scope}
			if rr.Gw != nil {
				rr.Scope = routing.ScopeUniverse
			}
			n.routes = append(n.routes, rr)
		}
		n.routes = dedupRoutes(n.routes)
		nics = append(nics, n)
	}
	if !slices.ContainsFunc(nics, func(n *nic) bool { return n.name == in.IfName }) {
		return nil, fmt.Errorf("failed to find interface %q with an address in the pod namespace %q", in.IfName, in.NetNS)
	}
	slices.SortFunc(nics, func(a, b *nic) int { return a.table - b.table })
	for i := 1; i < len(nics); i++ {
		if nics[i].table == nics[i-1].table {
			return nil, fmt.Errorf("failed to number route tables: pod interfaces %q and %q both map to table %d; rename one", nics[i-1].name, nics[i].name, nics[i].table)
		}
	}
	return nics, nil
}

// dedupRoutes keeps the first route for each destination.
func dedupRoutes(rs []routing.Route) []routing.Route {
	seen := map[string]bool{}
	out := rs[:0]
	for _, r := range rs {
		k := r.Dst.String()
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, r)
	}
	return out
}

// Planned is the plan and the decisions behind it.
type Planned struct {
	Plan *routing.Plan
	Mode Mode
	// DefaultNIC is the NIC carrying the default route, per family; absent
	// when no NIC has a gateway of that family.
	DefaultNIC map[routing.Family]string
	// MAC is the new MAC of the interface being added: the one the pod
	// asked for, or one derived from podMACPrefix.
	MAC net.HardwareAddr
	// ResultRoutes are the previous result's routes that stay in the main
	// table; the plugin's result lists only these.
	ResultRoutes []*types.Route
}

// planner holds one BuildPlan computation.
type planner struct {
	in     PlanInput
	cfg    *Config
	mode   Mode
	nics   []*nic
	first  *nic
	added  *nic
	resGws map[routing.Family]net.IP
	// families are the IP families the pod has addresses of.
	families map[routing.Family]bool
	defNIC   map[routing.Family]*nic
	hostPath []routing.Route
	out      *Planned
}

// BuildPlan computes the routing plan for adding in.IfName. It is pure.
func BuildPlan(in PlanInput) (*Planned, error) {
	if in.Result == nil {
		return nil, invalidConfig("missing prevResult for interface %q", in.IfName)
	}
	nics, err := collectNICs(&in)
	if err != nil {
		return nil, err
	}
	p := &planner{
		in: in, cfg: in.Config, mode: ResolveMode(in.Config.Mode, in.IfName, in.PodFacts),
		nics: nics, first: nics[0], families: map[routing.Family]bool{},
	}
	_, p.resGws = resultIPs(in.Result, in.IfName)
	for _, n := range nics {
		if n.name == in.IfName {
			p.added = n
		}
		for _, a := range n.addrs {
			p.families[routing.FamilyOf(a.IP)] = true
		}
	}
	p.out = &Planned{
		Mode: p.mode, DefaultNIC: map[routing.Family]string{},
		Plan: &routing.Plan{PodNetNS: in.NetNS, HostLockFile: in.HostLockFile},
	}
	if err := p.chooseDefaultNICs(); err != nil {
		return nil, err
	}
	p.buildHostPath()
	p.planMainTable()
	p.planNICTables()
	p.planAddedLink()
	p.planNode()
	p.planResultRoutes()
	p.planProbes()
	return p.out, nil
}

// chooseDefaultNICs picks, per family, the NIC of the default route: the
// wanted NIC (annotation, then podDefaultRouteNIC, then the first NIC) when
// it has a gateway of the family and no cleanGateway, else the first NIC in
// table order that has one.
func (p *planner) chooseDefaultNICs() error {
	wanted := p.first.name
	if v := podAnnotation(p.in.Pod, DefaultRouteNICAnnotation); v != "" {
		if !validIfName(v) {
			return invalidConfig("invalid pod annotation %q: %q is not an interface name", DefaultRouteNICAnnotation, v)
		}
		wanted = v
	} else if p.cfg.PodDefaultRouteNIC != "" {
		wanted = p.cfg.PodDefaultRouteNIC
	}
	candidates := slices.Clone(p.nics)
	slices.SortStableFunc(candidates, func(a, b *nic) int {
		switch {
		case a.name == wanted && b.name != wanted:
			return -1
		case b.name == wanted && a.name != wanted:
			return 1
		}
		return 0
	})
	p.defNIC = map[routing.Family]*nic{}
	for _, f := range families {
		for _, n := range candidates {
			if !n.clean && n.gateway(f) != nil {
				p.defNIC[f] = n
				p.out.DefaultNIC[f] = n.name
				break
			}
		}
	}
	return nil
}

// buildHostPath computes the main-table routes to the node's addresses and
// to the hijacked, service and overlay CIDRs: over veth0 in underlay mode,
// over the first NIC's gateway otherwise.
func (p *planner) buildHostPath() {
	hostDev := p.first.name
	hostGw := map[routing.Family]net.IP{}
	if p.mode == ModeUnderlay {
		hostDev = PodVethName
		hostGw[routing.FamilyV4] = pickNodeGateway(p.in.HostFacts, p.first)
		hostGw[routing.FamilyV6] = HostVethIPv6
	} else {
		for _, f := range families {
			hostGw[f] = p.first.gateway(f)
		}
	}
	podV4 := p.first.addr(routing.FamilyV4)
	for _, n := range p.nics {
		if podV4 == nil {
			podV4 = n.addr(routing.FamilyV4)
		}
	}
	have := map[string]bool{}
	for _, h := range p.hostPath {
		have[h.Dst.String()] = true
	}
	add := func(dst *net.IPNet, node bool) {
		f := routing.FamilyOf(dst.IP)
		if !p.families[f] || have[dst.String()] {
			return
		}
		have[dst.String()] = true
		r := routing.Route{Dst: dst, Dev: hostDev, Protocol: routing.ProtoHostPath}
		gw := hostGw[f]
		ones, bits := dst.Mask.Size()
		switch {
		case gw == nil, ones == bits && dst.IP.Equal(gw), node && f == routing.FamilyV4 && p.mode == ModeUnderlay:
			r.Scope = routing.ScopeLink
		default:
			r.Gw = gw
		}
		if f == routing.FamilyV4 {
			r.Src = podV4
		}
		p.hostPath = append(p.hostPath, r)
	}
	if p.in.HostFacts != nil {
		for _, a := range p.in.HostFacts.Addrs {
			if !podOwns(p.nics, a.Addr.IP) {
				add(hostPrefix(a.Addr.IP), true)
			}
		}
	}
	for _, set := range [][]*net.IPNet{p.cfg.HijackCIDR, p.cfg.ServiceCIDR, p.cfg.OverlayPodCIDR} {
		for _, c := range set {
			add(c, false)
		}
	}
}

// planMainTable: the host path (leaving alone the overlay's own routes to
// the same destinations), one default route per family, and, with
// tunePodRoutes, the custom routes of the other NICs out.
func (p *planner) planMainTable() {
	pod := &p.out.Plan.Pod
	for _, r := range p.hostPath {
		if p.mode != ModeUnderlay && slices.ContainsFunc(p.first.routes, func(o routing.Route) bool { return o.Dst.String() == r.Dst.String() }) {
			continue
		}
		pod.Routes = append(pod.Routes, r)
	}
	for _, f := range families {
		if n := p.defNIC[f]; n != nil {
			pod.Routes = append(pod.Routes, routing.Route{Dst: defaultDst(f), Gw: n.gateway(f), Dev: n.name, Protocol: routing.ProtoStatic})
		}
		for _, n := range p.nics {
			pod.DeleteRoutes = append(pod.DeleteRoutes, routing.Route{Dst: defaultDst(f), Dev: n.name})
		}
	}
	if !p.cfg.TunePodRoutes {
		return
	}
	for _, n := range p.nics {
		if n == p.defNIC[routing.FamilyV4] || n == p.defNIC[routing.FamilyV6] || (p.mode != ModeUnderlay && n == p.first) {
			continue
		}
		for _, r := range n.routes {
			if !r.IsDefault() && !n.isSubnetRoute(r) {
				pod.DeleteRoutes = append(pod.DeleteRoutes, routing.Route{Dst: r.Dst, Gw: r.Gw, Dev: n.name})
			}
		}
	}
}

// planNICTables: per NIC, a table with its own routes, its on-link subnets
// and the host path, and a "from <address>" rule per address.
func (p *planner) planNICTables() {
	pod := &p.out.Plan.Pod
	for _, n := range p.nics {
		for _, r := range n.routes {
			r.Table, r.Protocol = n.table, routing.ProtoStatic
			pod.Routes = append(pod.Routes, r)
		}
		for _, a := range n.addrs {
			if n.onLink(p.in.PodFacts, a) {
				r := routing.Route{Table: n.table, Dst: subnetOf(a), Dev: n.name, Scope: routing.ScopeLink, Protocol: routing.ProtoStatic}
				if routing.FamilyOf(a.IP) == routing.FamilyV4 {
					r.Src = a.IP
				}
				pod.Routes = append(pod.Routes, r)
			}
			pod.Rules = append(pod.Rules, routing.Rule{Family: routing.FamilyOf(a.IP), Src: hostPrefix(a.IP), Table: n.table, Priority: n.table})
		}
		for _, r := range p.hostPath {
			r.Table = n.table
			if r.Family() == routing.FamilyV4 {
				r.Src = n.addr(routing.FamilyV4)
			}
			pod.Routes = append(pod.Routes, r)
		}
		pod.OwnedTables = append(pod.OwnedTables, n.table)
		pod.OwnedRulePriorities = append(pod.OwnedRulePriorities, n.table)
	}
	pod.Routes = dedupByKey(pod.Routes)
	routing.SortRoutes(pod.Routes)
}

// requestedMAC is the MAC the pod asked for on the added NIC; nil for none
// (or one the agent recorded in a form that does not parse, which the claim
// validation rules out).
func (p *planner) requestedMAC() net.HardwareAddr {
	if p.in.Pod == nil {
		return nil
	}
	mac, err := net.ParseMAC(p.in.Pod.Interfaces[p.added.name].MAC)
	if err != nil {
		return nil
	}
	return mac
}

// planAddedLink: MAC and queue length of the added NIC, rp_filter.
func (p *planner) planAddedLink() {
	pod := &p.out.Plan.Pod
	switch mac := p.requestedMAC(); {
	case mac != nil:
		// A MAC the pod asked for (recorded in its claims) wins over one
		// derived from podMACPrefix.
		p.out.MAC = mac
	case p.cfg.PodMACPrefix != nil:
		p.out.MAC = DeriveMAC(p.cfg.PodMACPrefix, p.added.addrs)
	case p.in.Pod != nil && (p.in.Pod.OwnerKind == "StatefulSet" || p.in.Pod.OwnerKind == "VirtualMachineInstance"):
		// A replica (a virtual machine's launcher pod) keeps its
		// addresses, so a MAC derived from them is the same in every
		// incarnation: its network identity is whole.
		p.out.MAC = DeriveMAC(StatefulSetMACPrefix, p.added.addrs)
	}
	if p.out.MAC != nil || p.cfg.TxQueueLen > 0 {
		pod.Links = append(pod.Links, routing.LinkSettings{Name: p.added.name, MAC: p.out.MAC, TxQueueLen: p.cfg.TxQueueLen})
	}
	if p.cfg.PodRPFilter < 0 || !p.families[routing.FamilyV4] {
		return
	}
	v := strconv.Itoa(p.cfg.PodRPFilter)
	pod.Sysctls = append(pod.Sysctls, routing.Sysctl{Key: "net/ipv4/conf/all/rp_filter", Value: v})
	for _, n := range p.nics {
		pod.Sysctls = append(pod.Sysctls, routing.Sysctl{Key: "net/ipv4/conf/" + n.name + "/rp_filter", Value: v})
	}
	if p.mode == ModeUnderlay {
		pod.Sysctls = append(pod.Sysctls, routing.Sysctl{Key: "net/ipv4/conf/" + PodVethName + "/rp_filter", Value: v})
	}
}

// planNode: the veth pair (underlay), the node's routes to the pod's
// addresses in hostRuleTable and the rule that looks it up.
func (p *planner) planNode() {
	plan, cfg := p.out.Plan, p.cfg
	pod, host := &plan.Pod, &plan.Host
	switch p.mode {
	case ModeUnderlay:
		mtu := cfg.VethMTU
		if mtu == 0 {
			mtu = p.first.mtu
		}
		hostVeth := HostVethName(p.in.ContainerID)
		plan.Veth = &routing.VethPair{PodName: PodVethName, HostName: hostVeth, MTU: mtu}
		if p.families[routing.FamilyV6] {
			pod.Addresses = append(pod.Addresses, routing.Address{Dev: PodVethName, Addr: &net.IPNet{IP: PodVethIPv6, Mask: net.CIDRMask(64, 128)}, NoDAD: true})
			host.Addresses = append(host.Addresses, routing.Address{Dev: hostVeth, Addr: &net.IPNet{IP: HostVethIPv6, Mask: net.CIDRMask(64, 128)}, NoDAD: true})
		}
		if cfg.VethLinkAddress != nil {
			pod.Addresses = append(pod.Addresses, routing.Address{Dev: PodVethName, Addr: cfg.VethLinkAddress})
		}
		if p.families[routing.FamilyV4] {
			host.Sysctls = append(host.Sysctls, routing.Sysctl{Key: "net/ipv4/conf/" + hostVeth + "/proxy_arp", Value: "1"})
		}
		for _, n := range p.nics {
			for _, a := range n.addrs {
				host.Routes = append(host.Routes, hostRoute(cfg.HostRuleTable, a.IP, hostVeth, PodVethIPv6))
			}
		}
	case ModeOverlay:
		peer := overlayPeer(p.in.HostFacts, p.first)
		if peer == "" {
			break
		}
		var ll net.IP
		if len(p.first.linkLocal) > 0 {
			ll = p.first.linkLocal[0]
		}
		for _, n := range p.nics[1:] {
			for _, a := range n.addrs {
				if routing.FamilyOf(a.IP) == routing.FamilyV6 && ll == nil {
					continue
				}
				host.Routes = append(host.Routes, hostRoute(cfg.HostRuleTable, a.IP, peer, ll))
			}
		}
	}
	for _, f := range families {
		if slices.ContainsFunc(host.Routes, func(r routing.Route) bool { return r.Family() == f }) {
			host.Rules = append(host.Rules, routing.Rule{Family: f, Table: cfg.HostRuleTable, Priority: HostRulePriority})
		}
	}
	routing.SortRoutes(host.Routes)
}

// planResultRoutes: the result lists the routes the added NIC keeps in the
// main table, so that the chained plugins' CHECK finds them; custom routes
// moved to the NIC's table are left out. Default routes stay listed even
// when moved: any default route satisfies the chained plugins' CHECK, and
// the coordinator's own CHECK needs the gateway to verify the NIC's table.
func (p *planner) planResultRoutes() {
	pod := &p.out.Plan.Pod
	for _, r := range p.in.Result.Routes {
		dst := normaliseNet(&r.Dst)
		gw := r.GW
		if gw == nil {
			gw = p.resGws[routing.FamilyOf(dst.IP)]
		}
		rr := routing.Route{Dst: dst, Gw: gw, Dev: p.added.name}
		moved := slices.ContainsFunc(pod.DeleteRoutes, func(d routing.Route) bool {
			return d.Dev == rr.Dev && d.Dst.String() == rr.Dst.String() && (d.Gw == nil || d.Gw.Equal(rr.Gw))
		})
		kept := slices.ContainsFunc(pod.Routes, func(w routing.Route) bool {
			return w.Table == 0 && w.Dev == rr.Dev && w.Dst.String() == rr.Dst.String()
		})
		if !moved || kept || rr.IsDefault() {
			p.out.ResultRoutes = append(p.out.ResultRoutes, r)
		}
	}
}

// planProbes: conflict and gateway probes before, announcements after, for
// the added NIC's addresses.
func (p *planner) planProbes() {
	plan, added := p.out.Plan, p.added
	for _, a := range added.addrs {
		f := routing.FamilyOf(a.IP)
		if p.cfg.DetectIPConflict {
			plan.Probes = append(plan.Probes, routing.Probe{Dev: added.name, IP: a.IP, Kind: routing.ProbeConflict})
		}
		plan.Announcements = append(plan.Announcements, routing.Announcement{Dev: added.name, IP: a.IP})
		if !p.cfg.DetectGateway {
			continue
		}
		gw := p.resGws[f]
		if gw == nil {
			gw = added.gateway(f)
		}
		if gw != nil && !slices.ContainsFunc(plan.Probes, func(pr routing.Probe) bool { return pr.Kind == routing.ProbeGateway && pr.IP.Equal(gw) }) {
			plan.Probes = append(plan.Probes, routing.Probe{Dev: added.name, Src: a.IP, IP: gw, Kind: routing.ProbeGateway})
		}
	}
}

func hostRoute(table int, ip net.IP, dev string, v6Gw net.IP) routing.Route {
	r := routing.Route{Table: table, Dst: hostPrefix(ip), Dev: dev, Protocol: routing.ProtoHostPath}
	if routing.FamilyOf(ip) == routing.FamilyV6 {
		r.Gw = v6Gw
	} else {
		r.Scope = routing.ScopeLink
	}
	return r
}

func dedupByKey(rs []routing.Route) []routing.Route {
	seen := map[string]bool{}
	out := rs[:0]
	for _, r := range rs {
		if seen[r.Key()] {
			continue
		}
		seen[r.Key()] = true
		out = append(out, r)
	}
	return out
}

func podOwns(nics []*nic, ip net.IP) bool {
	for _, n := range nics {
		for _, a := range n.addrs {
			if a.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// pickNodeGateway chooses the node IPv4 address the pod uses as next hop
// over veth0 for hijacked CIDRs: the node address on the subnet of the
// pod's first NIC, else the node's first IPv4 address. It depends on the
// first NIC only, so every interface's run picks the same one.
func pickNodeGateway(h *routing.HostFacts, first *nic) net.IP {
	if h == nil {
		return nil
	}
	{
		n := first
		for _, pa := range n.addrs {
			for _, a := range h.Addrs {
				if a.Addr.IP.To4() != nil && subnetOf(pa).Contains(a.Addr.IP) {
					return a.Addr.IP
				}
			}
		}
	}
	for _, a := range h.Addrs {
		if a.Addr.IP.To4() != nil {
			return a.Addr.IP
		}
	}
	return nil
}

// overlayPeer finds the node end of the pod's first NIC when it is a veth.
func overlayPeer(h *routing.HostFacts, first *nic) string {
	if h == nil || first.peerIndex == 0 {
		return ""
	}
	for _, v := range h.Veths {
		if v.Index == first.peerIndex && v.PeerIndex == first.index {
			return v.Name
		}
	}
	return ""
}

func podAnnotation(p *nodeapi.PodInfo, key string) string {
	if p == nil {
		return ""
	}
	return p.Annotations[key]
}

// TeardownInput is what DEL knows.
type TeardownInput struct {
	ContainerID string
	NetNS       string
	IfName      string
	// Result is the previous result, when the runtime passed one.
	Result *current.Result
	Config *Config
	// PodFacts is nil when the pod namespace is gone.
	PodFacts     *routing.PodFacts
	HostLockFile string
}

// BuildTeardown computes what DEL removes for in.IfName. It is pure.
func BuildTeardown(in TeardownInput) *routing.Teardown {
	t := &routing.Teardown{HostTable: in.Config.HostRuleTable, HostLockFile: in.HostLockFile}
	addrs, _ := resultIPs(in.Result, in.IfName)
	index := -1
	if in.PodFacts != nil {
		t.PodNetNS = in.NetNS
		if l := in.PodFacts.Link(in.IfName); l != nil {
			index = l.Index
			if len(addrs) == 0 {
				addrs = l.Addrs
			}
		}
	}
	if in.IfName == FirstNIC || in.PodFacts == nil || in.Config.Mode == ModeUnderlay && onlyNIC(in.PodFacts, in.IfName) {
		t.HostVeth = HostVethName(in.ContainerID)
		if in.PodFacts != nil && in.PodFacts.Link(PodVethName) != nil {
			t.PodVeth = PodVethName
		}
	}
	table := 0
	if n, ok := trailingNumber(in.IfName); ok && n < maxNICNumber {
		table = tableBase + n
	} else if index >= 0 {
		table = fallbackTableBase + index
	}
	for _, a := range addrs {
		f := routing.FamilyOf(a.IP)
		if table != 0 {
			t.PodRules = append(t.PodRules, routing.Rule{Family: f, Src: hostPrefix(a.IP), Table: table, Priority: table})
		}
		t.HostRoutes = append(t.HostRoutes, routing.Route{Table: t.HostTable, Dst: hostPrefix(a.IP)})
	}
	for _, f := range families {
		t.HostRules = append(t.HostRules, routing.Rule{Family: f, Table: t.HostTable, Priority: HostRulePriority})
	}
	return t
}

func onlyNIC(f *routing.PodFacts, ifName string) bool {
	for _, l := range f.Links {
		if l.Name != ifName && l.Name != PodVethName && len(l.Addrs) > 0 {
			return false
		}
	}
	return true
}
