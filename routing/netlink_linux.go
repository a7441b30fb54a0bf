package routing

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpAttempts bounds the retries of a netlink dump that the kernel
// interrupted because the object set changed under it.
const dumpAttempts = 5

// retryDump runs a netlink dump until it completes without interruption.
// Every netlink List call of this package goes through it.
func retryDump[T any](what string, list func() (T, error)) (T, error) {
	var (
		res T
		err error
	)
	for range dumpAttempts {
		res, err = list()
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return res, fmt.Errorf("failed to list %s: %w", what, err)
}

func listLinks() ([]netlink.Link, error) {
	return retryDump("links", netlink.LinkList)
}

// addrsByLink dumps the namespace's addresses of family once and groups
// them by link index. The netlink library dumps every address even when
// asked for one link's, so a dump per link would cost links x addresses:
// on a node with hundreds of pod veths, hundreds of milliseconds per call.
func addrsByLink(family int) (map[int][]netlink.Addr, error) {
	addrs, err := retryDump("addresses", func() ([]netlink.Addr, error) { return netlink.AddrList(nil, family) })
	if err != nil {
		return nil, err
	}
	by := make(map[int][]netlink.Addr)
	for _, a := range addrs {
		by[a.LinkIndex] = append(by[a.LinkIndex], a)
	}
	return by, nil
}

// listRoutes returns the routes of table (0: every table).
func listRoutes(family, table int) ([]netlink.Route, error) {
	return retryDump("routes", func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(family, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
	})
}

func listRules(family int) ([]netlink.Rule, error) {
	return retryDump("rules", func() ([]netlink.Rule, error) { return netlink.RuleList(family) })
}

// linkIndex maps link names to indexes and back. Built by loadLinks from
// one dump of the namespace's links; built by lookupLinks it asks the kernel
// for one link at a time and remembers the answers. A node namespace holds
// a veth per pod, and dumping them all costs an ADD milliseconds of CPU
// where the few links it names cost microseconds.
type linkIndex struct {
	byName  map[string]netlink.Link
	byIndex map[int]netlink.Link
	// lazy: links not remembered yet are asked for; after lazyLookups
	// questions the namespace is dumped once instead.
	lazy  bool
	asked int
}

// lazyLookups bounds the single-link questions a lazy linkIndex asks before
// it dumps the namespace's links instead.
const lazyLookups = 16

func loadLinks() (*linkIndex, error) {
	li := &linkIndex{byName: map[string]netlink.Link{}, byIndex: map[int]netlink.Link{}}
	return li, li.load()
}

func lookupLinks() *linkIndex {
	return &linkIndex{byName: map[string]netlink.Link{}, byIndex: map[int]netlink.Link{}, lazy: true}
}

func (li *linkIndex) load() error {
	links, err := listLinks()
	if err != nil {
		return err
	}
	li.lazy = false
	for _, l := range links {
		li.remember(l)
	}
	return nil
}

func (li *linkIndex) remember(l netlink.Link) {
	li.byName[l.Attrs().Name] = l
	li.byIndex[l.Attrs().Index] = l
}

// ask answers a miss of a lazy index: a link it finds is remembered. A
// link that is not there, or a failed question, is a miss: the callers name
// the link in their errors.
func (li *linkIndex) ask(get func() (netlink.Link, error)) {
	if !li.lazy {
		return
	}
	if li.asked++; li.asked > lazyLookups {
		_ = li.load()
		return
	}
	if l, err := get(); err == nil {
		li.remember(l)
	}
}

// link returns the link called name.
func (li *linkIndex) link(name string) (netlink.Link, bool) {
	if _, ok := li.byName[name]; !ok {
		li.ask(func() (netlink.Link, error) { return netlink.LinkByName(name) })
	}
	l, ok := li.byName[name]
	return l, ok
}

func (li *linkIndex) name(index int) string {
	if _, ok := li.byIndex[index]; !ok {
		li.ask(func() (netlink.Link, error) { return netlink.LinkByIndex(index) })
	}
	if l, ok := li.byIndex[index]; ok {
		return l.Attrs().Name
	}
	return fmt.Sprintf("if%d", index)
}

func (li *linkIndex) index(name string) (int, error) {
	l, ok := li.link(name)
	if !ok {
		return 0, fmt.Errorf("failed to find link %q: not present", name)
	}
	return l.Attrs().Index, nil
}

func defaultDst(family int) *net.IPNet {
	if family == unix.AF_INET6 {
		return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
}

// expandMultipath turns a multipath route into one route per next hop (the
// kernel reports IPv6 routes to one prefix through several devices, such as
// two default routes added by two plugins, as one multipath route).
func expandMultipath(r netlink.Route) []netlink.Route {
	if len(r.MultiPath) == 0 {
		return []netlink.Route{r}
	}
	out := make([]netlink.Route, 0, len(r.MultiPath))
	for _, nh := range r.MultiPath {
		one := r
		one.MultiPath = nil
		one.LinkIndex = nh.LinkIndex
		one.Gw = nh.Gw
		out = append(out, one)
	}
	return out
}

// fromNetlinkRoute converts a single-path kernel route; ok is false for
// routes this package does not model (non-unicast, local table).
func fromNetlinkRoute(li *linkIndex, r netlink.Route) (Route, bool) {
	if r.Type != unix.RTN_UNICAST || r.Table == unix.RT_TABLE_LOCAL || len(r.MultiPath) > 0 {
		return Route{}, false
	}
	dst := r.Dst
	if dst == nil {
		dst = defaultDst(r.Family)
	}
	if ip4 := dst.IP.To4(); ip4 != nil && r.Family == unix.AF_INET {
		dst = &net.IPNet{IP: ip4, Mask: dst.Mask}
	}
	return Route{
		Table:    r.Table,
		Dst:      dst,
		Gw:       r.Gw,
		Dev:      li.name(r.LinkIndex),
		Src:      r.Src,
		Scope:    Scope(r.Scope),
		Protocol: int(r.Protocol),
	}, true
}

func toNetlinkRoute(li *linkIndex, r Route) (*netlink.Route, error) {
	idx, err := li.index(r.Dev)
	if err != nil {
		return nil, err
	}
	proto := r.Protocol
	if proto == 0 {
		proto = ProtoStatic
	}
	nr := &netlink.Route{
		LinkIndex: idx,
		Dst:       r.Dst,
		Gw:        r.Gw,
		Src:       r.Src,
		Table:     tableOrMain(r.Table),
		Scope:     netlink.Scope(r.Scope),
		Protocol:  netlink.RouteProtocol(proto),
		Family:    int(r.Family()),
	}
	return nr, nil
}

func fromNetlinkRule(r netlink.Rule) Rule {
	return Rule{Family: Family(r.Family), Src: r.Src, Table: r.Table, Priority: r.Priority}
}

func toNetlinkRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = int(r.Family)
	nr.Src = r.Src
	nr.Table = r.Table
	nr.Priority = r.Priority
	return nr
}

// sameRoute reports whether have satisfies want: same table, destination,
// device, gateway, and source when want names one.
func sameRoute(want, have Route) bool {
	if tableOrMain(want.Table) != tableOrMain(have.Table) || want.Dev != have.Dev {
		return false
	}
	if want.Dst.String() != have.Dst.String() {
		return false
	}
	if !want.Gw.Equal(have.Gw) && (want.Gw != nil || have.Gw != nil) {
		return false
	}
	if want.Src != nil && !want.Src.Equal(have.Src) {
		return false
	}
	return true
}

// routeMatches reports whether have matches the deletion pattern: same
// table, destination and device, and same gateway when the pattern has one.
func routeMatches(pattern, have Route) bool {
	if tableOrMain(pattern.Table) != tableOrMain(have.Table) || pattern.Dev != have.Dev {
		return false
	}
	if pattern.Dst.String() != have.Dst.String() {
		return false
	}
	return pattern.Gw == nil || pattern.Gw.Equal(have.Gw)
}

func sameRule(want, have Rule) bool {
	if want.Family != have.Family || want.Table != have.Table || want.Priority != have.Priority {
		return false
	}
	if (want.Src == nil) != (have.Src == nil) {
		// "from all" is reported either as nil or as a zero-length prefix.
		w, h := want.Src, have.Src
		if w == nil {
			w, h = h, w
		}
		ones, _ := w.Mask.Size()
		return h == nil && ones == 0
	}
	return want.Src == nil || want.Src.String() == have.Src.String()
}
