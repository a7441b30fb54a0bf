// Package routing describes and applies the network state of a pod and of its
// node: links, addresses, routes, policy rules and sysctls.
//
// It is split in two: the declarative Plan (this file, pure, no I/O) that
// callers build, and the code that inspects, applies, checks and tears down a
// Plan in real network namespaces. This package is the only one in the module
// that talks netlink or switches network namespaces.
package routing

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// Family is an IP address family.
type Family int

// Address families, numerically equal to AF_INET / AF_INET6.
const (
	FamilyV4 Family = 2
	FamilyV6 Family = 10
)

func (f Family) String() string {
	switch f {
	case FamilyV4:
		return "ipv4"
	case FamilyV6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", int(f))
}

// FamilyOf returns the family of ip.
func FamilyOf(ip net.IP) Family {
	if ip.To4() != nil {
		return FamilyV4
	}
	return FamilyV6
}

// Well-known route tables and route protocols.
const (
	// TableMain is the kernel's main routing table.
	TableMain = 254
	// ProtoHostPath marks routes this package creates to steer traffic over
	// the host path (node addresses, hijacked, service and overlay CIDRs,
	// and the node-side routes to pod addresses). `ip route` prints it as
	// "proto 77".
	ProtoHostPath = 77
	// ProtoStatic is the protocol of routes copied into per-NIC tables.
	ProtoStatic = 4
)

// Scope of a route.
type Scope int

// Route scopes, numerically equal to RT_SCOPE_*.
const (
	ScopeUniverse Scope = 0
	ScopeLink     Scope = 253
)

// Route is one route. Dst is never nil: a default route has a zero-length
// prefix.
type Route struct {
	Table    int
	Dst      *net.IPNet
	Gw       net.IP
	Dev      string
	Src      net.IP
	Scope    Scope
	Protocol int
}

// Family returns the family of the route's destination.
func (r Route) Family() Family { return FamilyOf(r.Dst.IP) }

// IsDefault reports whether the route is a default route.
func (r Route) IsDefault() bool {
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// Key identifies a route within a namespace the way the kernel does for
// replace: table, destination and (for our purposes) the device.
func (r Route) Key() string {
	return fmt.Sprintf("%d|%s|%s", tableOrMain(r.Table), r.Dst.String(), r.Dev)
}

func (r Route) String() string {
	var b strings.Builder
	b.WriteString(r.Dst.String())
	if r.Gw != nil {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	fmt.Fprintf(&b, " dev %s", r.Dev)
	if r.Src != nil {
		fmt.Fprintf(&b, " src %s", r.Src)
	}
	fmt.Fprintf(&b, " table %d", tableOrMain(r.Table))
	return b.String()
}

func tableOrMain(t int) int {
	if t == 0 {
		return TableMain
	}
	return t
}

// Rule is a policy routing rule: packets from Src (or from all if Src is
// nil) look up Table, at Priority.
type Rule struct {
	Family   Family
	Src      *net.IPNet
	Table    int
	Priority int
}

func (r Rule) String() string {
	from := "all"
	if r.Src != nil {
		from = r.Src.String()
	}
	return fmt.Sprintf("%d: from %s lookup %d (%s)", r.Priority, from, r.Table, r.Family)
}

// Address is an address to put on a link.
type Address struct {
	Dev  string
	Addr *net.IPNet
	// NoDAD skips IPv6 duplicate address detection.
	NoDAD bool
}

// Sysctl is one /proc/sys entry, named with dots or slashes
// (net.ipv4.conf.eth0.rp_filter).
type Sysctl struct {
	Key   string
	Value string
}

// LinkSettings are changes to an existing link. Zero values leave the
// property alone.
type LinkSettings struct {
	Name       string
	MAC        net.HardwareAddr
	TxQueueLen int
}

// VethPair is a veth pair between the pod namespace and the host namespace.
type VethPair struct {
	PodName  string
	HostName string
	MTU      int
}

// Announcement asks for a gratuitous ARP (IPv4) or an unsolicited neighbour
// advertisement (IPv6) for IP on Dev after the plan is applied.
type Announcement struct {
	Dev string
	IP  net.IP
}

// Probe asks, before the plan is applied, whether IP is free (Conflict) or
// whether the gateway IP answers on Dev (Gateway).
type Probe struct {
	Dev string
	// Src is the address the pod uses on Dev for this family; it is the
	// sender of gateway probes.
	Src net.IP
	IP  net.IP
	// Kind is ProbeConflict or ProbeGateway.
	Kind ProbeKind
}

// ProbeKind says what a Probe checks.
type ProbeKind int

// Probe kinds.
const (
	ProbeConflict ProbeKind = iota + 1
	ProbeGateway
)

// NamespacePlan is the desired state of one network namespace.
type NamespacePlan struct {
	Links     []LinkSettings
	Sysctls   []Sysctl
	Addresses []Address
	// Routes are installed with replace semantics, in order (on-link routes
	// come before the routes that use them as gateway).
	Routes []Route
	// DeleteRoutes are patterns of routes to remove: same table, destination
	// and device, and same gateway when the pattern has one. A route that is
	// also in Routes is kept. Removal happens before Routes are installed.
	DeleteRoutes []Route
	// OwnedTables are the tables fully owned by this plan: any route in
	// them that is not in Routes is removed.
	OwnedTables []int
	Rules       []Rule
	// OwnedRulePriorities are rule priorities owned by this plan: any rule
	// at one of these priorities that is not in Rules is removed.
	OwnedRulePriorities []int
}

// Plan is everything the coordinator wants for one pod interface.
type Plan struct {
	// PodNetNS is the path of the pod's network namespace.
	PodNetNS string
	// Veth is the pod <-> host pair to create, if any.
	Veth *VethPair
	Pod  NamespacePlan
	// Host is the node side; it is applied in the namespace the caller runs
	// in.
	Host NamespacePlan
	// HostLockFile serialises host-side changes (rule 500 add/remove)
	// between concurrent plugin runs on a node. Empty disables locking.
	HostLockFile string
	// Probes run before anything is changed.
	Probes []Probe
	// Announcements run after everything is applied.
	Announcements []Announcement
}

// Teardown is what DEL removes.
type Teardown struct {
	// PodNetNS may be empty or already gone.
	PodNetNS string
	// PodVeth is deleted in the pod namespace when present.
	PodVeth string
	// HostVeth is deleted in the host namespace when present.
	HostVeth string
	// PodRules are removed from the pod namespace when present.
	PodRules []Rule
	// HostTable and HostRoutes: the listed routes are removed from the host
	// table; when HostTable is then empty for a family, HostRule of that
	// family is removed too.
	HostTable    int
	HostRoutes   []Route
	HostRules    []Rule
	HostLockFile string
}

// SortRoutes orders routes so that routes without a gateway (on-link) come
// first, then by table, family and destination: a stable order for diffs and
// for installation.
func SortRoutes(rs []Route) {
	slices.SortStableFunc(rs, func(a, b Route) int {
		ag, bg := a.Gw != nil, b.Gw != nil
		if ag != bg {
			if !ag {
				return -1
			}
			return 1
		}
		if c := tableOrMain(a.Table) - tableOrMain(b.Table); c != 0 {
			return c
		}
		if c := int(a.Family()) - int(b.Family()); c != 0 {
			return c
		}
		return strings.Compare(a.Dst.String()+a.Dev, b.Dst.String()+b.Dev)
	})
}
