package routing

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// InspectPod reads the pod namespace at netnsPath.
func InspectPod(netnsPath string) (*PodFacts, error) {
	var facts *PodFacts
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		var err error
		facts, err = inspectPod()
		return err
	})
	if err != nil {
		var notExist ns.NSPathNotExistErr
		if errors.As(err, &notExist) {
			return nil, fmt.Errorf("failed to inspect pod namespace %q: %w: %w", netnsPath, ErrNetNSNotFound, err)
		}
		return nil, fmt.Errorf("failed to inspect pod namespace %q: %w", netnsPath, err)
	}
	return facts, nil
}

// ErrNetNSNotFound is returned, wrapped, when a pod namespace is gone.
var ErrNetNSNotFound = errors.New("network namespace not found")

func inspectPod() (*PodFacts, error) {
	li, err := loadLinks()
	if err != nil {
		return nil, err
	}
	byLink, err := addrsByLink(netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	facts := &PodFacts{}
	for _, l := range li.byIndex {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		pl := PodLink{Name: a.Name, Index: a.Index, Kind: l.Type(), MAC: a.HardwareAddr, MTU: a.MTU}
		if _, ok := l.(*netlink.Veth); ok {
			pl.PeerIndex = a.ParentIndex
		}
		for _, ad := range byLink[a.Index] {
			switch {
			case ad.IP.IsLinkLocalUnicast() && ad.IP.To4() == nil:
				pl.LinkLocal = append(pl.LinkLocal, ad.IP)
			case ad.Scope == unix.RT_SCOPE_UNIVERSE:
				pl.Addrs = append(pl.Addrs, normalise(ad.IPNet))
			}
		}
		facts.Links = append(facts.Links, pl)
	}
	slices.SortFunc(facts.Links, func(a, b PodLink) int { return a.Index - b.Index })
	routes, err := listRoutes(netlink.FAMILY_ALL, 0)
	if err != nil {
		return nil, err
	}
	for _, mr := range routes {
		for _, r := range expandMultipath(mr) {
			if rr, ok := fromNetlinkRoute(li, r); ok {
				facts.Routes = append(facts.Routes, rr)
			}
		}
	}
	rules, err := listRules(netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		facts.Rules = append(facts.Rules, fromNetlinkRule(r))
	}
	return facts, nil
}

// InspectHost reads the namespace the caller runs in (the node): its
// addresses, and of its links only the veths at the indexes peers (the node
// ends of the pod's veths). A node holds a veth per pod, so its links are
// looked up one at a time, never dumped.
func InspectHost(peers ...int) (*HostFacts, error) {
	byLink, err := addrsByLink(netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("failed to inspect host namespace: %w", err)
	}
	facts := &HostFacts{}
	indexes := slices.Sorted(maps.Keys(byLink))
	seen := map[string]bool{}
	for _, i := range indexes {
		for _, ad := range byLink[i] {
			if ad.Scope != unix.RT_SCOPE_UNIVERSE || ad.IP.IsLoopback() || ad.IP.IsLinkLocalUnicast() {
				continue
			}
			// The same address on many links (the gateway address of a
			// point-to-point network on every pod's veth) counts once.
			if seen[ad.IP.String()] {
				continue
			}
			seen[ad.IP.String()] = true
			facts.Addrs = append(facts.Addrs, HostAddr{LinkIndex: i, Addr: normalise(ad.IPNet)})
		}
	}
	for _, i := range peers {
		l, err := netlink.LinkByIndex(i)
		var notFound netlink.LinkNotFoundError
		switch {
		case errors.As(err, &notFound) || errors.Is(err, unix.ENODEV):
			continue
		case err != nil:
			return nil, fmt.Errorf("failed to inspect host namespace: link %d: %w", i, err)
		}
		if _, ok := l.(*netlink.Veth); ok {
			a := l.Attrs()
			facts.Veths = append(facts.Veths, HostLink{Name: a.Name, Index: a.Index, PeerIndex: a.ParentIndex})
		}
	}
	return facts, nil
}

func normalise(n *net.IPNet) *net.IPNet {
	if ip4 := n.IP.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: n.Mask[len(n.Mask)-4:]}
	}
	return &net.IPNet{IP: n.IP, Mask: n.Mask}
}

// Apply makes the pod namespace and the host namespace (the caller's) match
// plan. It is idempotent: running it twice changes nothing the second time.
func Apply(plan *Plan) error {
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return fmt.Errorf("failed to open host namespace: %w", err)
	}
	defer hostNS.Close()

	err = ns.WithNetNSPath(plan.PodNetNS, func(ns.NetNS) error {
		if plan.Veth != nil {
			if err := ensureVeth(plan.Veth, hostNS); err != nil {
				return err
			}
		}
		return applyNamespace(&plan.Pod)
	})
	if err != nil {
		return fmt.Errorf("failed to configure pod namespace %q: %w", plan.PodNetNS, err)
	}

	unlock, err := lockHost(plan.HostLockFile)
	if err != nil {
		return err
	}
	defer unlock()
	if err := applyNamespace(&plan.Host); err != nil {
		return fmt.Errorf("failed to configure host namespace: %w", err)
	}
	return nil
}

// ensureVeth creates the pair from the pod side unless the pod end exists.
// A stale host end left by an earlier sandbox of the same container is
// removed first.
func ensureVeth(v *VethPair, hostNS ns.NetNS) error {
	if l, err := netlink.LinkByName(v.PodName); err == nil {
		if _, ok := l.(*netlink.Veth); !ok {
			return fmt.Errorf("failed to create veth %q: a %s link of that name exists", v.PodName, l.Type())
		}
		return nil
	}
	err := hostNS.Do(func(ns.NetNS) error {
		if l, err := netlink.LinkByName(v.HostName); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				return fmt.Errorf("failed to delete stale host veth %q: %w", v.HostName, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: v.PodName, MTU: v.MTU},
		PeerName:      v.HostName,
		PeerNamespace: netlink.NsFd(int(hostNS.Fd())),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("failed to create veth %q: %w", v.PodName, err)
	}
	l, err := netlink.LinkByName(v.PodName)
	if err != nil {
		return fmt.Errorf("failed to find veth %q: %w", v.PodName, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("failed to set veth %q up: %w", v.PodName, err)
	}
	return hostNS.Do(func(ns.NetNS) error {
		hl, err := netlink.LinkByName(v.HostName)
		if err != nil {
			return fmt.Errorf("failed to find host veth %q: %w", v.HostName, err)
		}
		if err := netlink.LinkSetUp(hl); err != nil {
			return fmt.Errorf("failed to set host veth %q up: %w", v.HostName, err)
		}
		return nil
	})
}

func applyNamespace(p *NamespacePlan) error {
	li := lookupLinks()
	for _, ls := range p.Links {
		if err := applyLink(li, ls); err != nil {
			return err
		}
	}
	for _, s := range p.Sysctls {
		if _, err := sysctl.Sysctl(s.Key, s.Value); err != nil {
			return fmt.Errorf("failed to set sysctl %q: %w", s.Key, err)
		}
	}
	for _, a := range p.Addresses {
		l, ok := li.link(a.Dev)
		if !ok {
			return fmt.Errorf("failed to add address %q: link %q not present", a.Addr, a.Dev)
		}
		na := &netlink.Addr{IPNet: a.Addr}
		if a.NoDAD {
			na.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(l, na); err != nil {
			return fmt.Errorf("failed to add address %q to %q: %w", a.Addr, a.Dev, err)
		}
	}
	// Unwanted routes go first: the kernel refuses to replace a route with
	// one that already exists behind another of the same prefix.
	if err := deleteRoutes(li, p); err != nil {
		return err
	}
	for _, r := range p.Routes {
		nr, err := toNetlinkRoute(li, r)
		if err != nil {
			return fmt.Errorf("failed to add route %q: %w", r, err)
		}
		if err := netlink.RouteReplace(nr); err != nil {
			return fmt.Errorf("failed to add route %q: %w", r, err)
		}
	}
	return syncRules(p)
}

func applyLink(li *linkIndex, ls LinkSettings) error {
	l, ok := li.link(ls.Name)
	if !ok {
		return fmt.Errorf("failed to configure link %q: not present", ls.Name)
	}
	a := l.Attrs()
	if ls.MAC != nil && !bytes.Equal(a.HardwareAddr, ls.MAC) {
		up := a.Flags&net.FlagUp != 0
		if up {
			if err := netlink.LinkSetDown(l); err != nil {
				return fmt.Errorf("failed to set link %q down: %w", ls.Name, err)
			}
		}
		if err := netlink.LinkSetHardwareAddr(l, ls.MAC); err != nil {
			return fmt.Errorf("failed to set MAC address of %q: %w", ls.Name, err)
		}
		if up {
			if err := netlink.LinkSetUp(l); err != nil {
				return fmt.Errorf("failed to set link %q up: %w", ls.Name, err)
			}
		}
	}
	if ls.TxQueueLen > 0 && a.TxQLen != ls.TxQueueLen {
		if err := netlink.LinkSetTxQLen(l, ls.TxQueueLen); err != nil {
			return fmt.Errorf("failed to set txqueuelen of %q: %w", ls.Name, err)
		}
	}
	return nil
}

// deleteRoutes removes DeleteRoutes and every route of an owned table that
// the plan does not want.
func deleteRoutes(li *linkIndex, p *NamespacePlan) error {
	if len(p.DeleteRoutes) == 0 && len(p.OwnedTables) == 0 {
		return nil
	}
	routes, err := listRoutes(netlink.FAMILY_ALL, 0)
	if err != nil {
		return err
	}
	for _, mr := range routes {
		for _, nr := range expandMultipath(mr) {
			have, ok := fromNetlinkRoute(li, nr)
			if !ok || !unwanted(p, have) {
				continue
			}
			if err := netlink.RouteDel(&nr); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("failed to delete route %q: %w", have, err)
			}
		}
	}
	return nil
}

// unwanted reports whether have must go: it is not a wanted route and it
// either matches a DeleteRoutes pattern or lives in an owned table.
func unwanted(p *NamespacePlan, have Route) bool {
	for _, w := range p.Routes {
		if sameRoute(w, have) {
			return false
		}
	}
	for _, d := range p.DeleteRoutes {
		if routeMatches(d, have) {
			return true
		}
	}
	return slices.Contains(p.OwnedTables, have.Table)
}

func syncRules(p *NamespacePlan) error {
	if len(p.Rules) == 0 && len(p.OwnedRulePriorities) == 0 {
		return nil
	}
	rules, err := listRules(netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	have := make([]Rule, 0, len(rules))
	for _, r := range rules {
		have = append(have, fromNetlinkRule(r))
	}
	for _, h := range have {
		if !slices.Contains(p.OwnedRulePriorities, h.Priority) {
			continue
		}
		if slices.ContainsFunc(p.Rules, func(w Rule) bool { return sameRule(w, h) }) {
			continue
		}
		if err := netlink.RuleDel(toNetlinkRule(h)); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("failed to delete rule %q: %w", h, err)
		}
	}
	for _, w := range p.Rules {
		if slices.ContainsFunc(have, func(h Rule) bool { return sameRule(w, h) }) {
			continue
		}
		if err := netlink.RuleAdd(toNetlinkRule(w)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("failed to add rule %q: %w", w, err)
		}
	}
	return nil
}

// Check reports, as one error, every way the pod and host namespaces differ
// from plan. It changes nothing.
func Check(plan *Plan) error {
	var problems []string
	err := ns.WithNetNSPath(plan.PodNetNS, func(ns.NetNS) error {
		if plan.Veth != nil {
			if _, err := netlink.LinkByName(plan.Veth.PodName); err != nil {
				problems = append(problems, fmt.Sprintf("pod veth %q is missing", plan.Veth.PodName))
			}
		}
		ps, err := checkNamespace("pod", &plan.Pod)
		problems = append(problems, ps...)
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to check pod namespace %q: %w", plan.PodNetNS, err)
	}
	if plan.Veth != nil {
		if _, err := netlink.LinkByName(plan.Veth.HostName); err != nil {
			problems = append(problems, fmt.Sprintf("host veth %q is missing", plan.Veth.HostName))
		}
	}
	ps, err := checkNamespace("host", &plan.Host)
	if err != nil {
		return fmt.Errorf("failed to check host namespace: %w", err)
	}
	problems = append(problems, ps...)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func checkNamespace(side string, p *NamespacePlan) ([]string, error) {
	li, err := loadLinks()
	if err != nil {
		return nil, err
	}
	routes, err := listRoutes(netlink.FAMILY_ALL, 0)
	if err != nil {
		return nil, err
	}
	var have []Route
	for _, mr := range routes {
		for _, nr := range expandMultipath(mr) {
			if r, ok := fromNetlinkRoute(li, nr); ok {
				have = append(have, r)
			}
		}
	}
	var problems []string
	for _, w := range p.Routes {
		if !slices.ContainsFunc(have, func(h Route) bool { return sameRoute(w, h) }) {
			problems = append(problems, fmt.Sprintf("%s route %q is missing", side, w))
		}
	}
	for _, h := range have {
		if unwanted(p, h) {
			problems = append(problems, fmt.Sprintf("%s route %q is unexpected", side, h))
		}
	}
	var byLink map[int][]netlink.Addr
	if len(p.Addresses) > 0 {
		if byLink, err = addrsByLink(netlink.FAMILY_ALL); err != nil {
			return nil, err
		}
	}
	for _, a := range p.Addresses {
		l, ok := li.link(a.Dev)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s link %q is missing", side, a.Dev))
			continue
		}
		if !slices.ContainsFunc(byLink[l.Attrs().Index], func(h netlink.Addr) bool { return h.IPNet.String() == a.Addr.String() }) {
			problems = append(problems, fmt.Sprintf("%s address %q on %q is missing", side, a.Addr, a.Dev))
		}
	}
	if len(p.Rules) > 0 || len(p.OwnedRulePriorities) > 0 {
		rules, err := listRules(netlink.FAMILY_ALL)
		if err != nil {
			return nil, err
		}
		var haveRules []Rule
		for _, r := range rules {
			haveRules = append(haveRules, fromNetlinkRule(r))
		}
		for _, w := range p.Rules {
			if !slices.ContainsFunc(haveRules, func(h Rule) bool { return sameRule(w, h) }) {
				problems = append(problems, fmt.Sprintf("%s rule %q is missing", side, w))
			}
		}
		for _, h := range haveRules {
			if slices.Contains(p.OwnedRulePriorities, h.Priority) &&
				!slices.ContainsFunc(p.Rules, func(w Rule) bool { return sameRule(w, h) }) {
				problems = append(problems, fmt.Sprintf("%s rule %q is unexpected", side, h))
			}
		}
	}
	return problems, nil
}

// RunTeardown removes what Apply created for one pod interface. It is
// idempotent and tolerates a pod namespace that is already gone.
func RunTeardown(t *Teardown) error {
	if t.PodNetNS != "" {
		err := ns.WithNetNSPath(t.PodNetNS, func(ns.NetNS) error {
			if t.PodVeth != "" {
				if err := deleteLink(t.PodVeth); err != nil {
					return err
				}
			}
			return deleteRules(t.PodRules)
		})
		var notExist ns.NSPathNotExistErr
		if err != nil && !errors.As(err, &notExist) {
			return fmt.Errorf("failed to clean pod namespace %q: %w", t.PodNetNS, err)
		}
	}
	unlock, err := lockHost(t.HostLockFile)
	if err != nil {
		return err
	}
	defer unlock()
	if t.HostVeth != "" {
		if err := deleteLink(t.HostVeth); err != nil {
			return err
		}
	}
	if err := deleteHostRoutes(t); err != nil {
		return err
	}
	for _, r := range t.HostRules {
		left, err := listRoutes(int(r.Family), r.Table)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			continue
		}
		if err := deleteRules([]Rule{r}); err != nil {
			return err
		}
	}
	return nil
}

func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("failed to find link %q: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("failed to delete link %q: %w", name, err)
	}
	return nil
}

func deleteRules(rules []Rule) error {
	for _, r := range rules {
		for {
			err := netlink.RuleDel(toNetlinkRule(r))
			if errors.Is(err, unix.ENOENT) {
				break
			}
			if err != nil {
				return fmt.Errorf("failed to delete rule %q: %w", r, err)
			}
		}
	}
	return nil
}

func deleteHostRoutes(t *Teardown) error {
	if len(t.HostRoutes) == 0 {
		return nil
	}
	routes, err := listRoutes(netlink.FAMILY_ALL, t.HostTable)
	if err != nil {
		return err
	}
	for _, nr := range routes {
		if nr.Dst == nil {
			continue
		}
		for _, w := range t.HostRoutes {
			if nr.Dst.String() != w.Dst.String() {
				continue
			}
			if err := netlink.RouteDel(&nr); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("failed to delete host route %q: %w", w, err)
			}
		}
	}
	return nil
}

// lockHost takes an exclusive flock on path; the returned func releases it.
func lockHost(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("failed to create lock directory %q: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open lock file %q: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to lock %q: %w", path, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}
