package routing

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/spindle-net/spindle/test/prereq"
)

func privilegedNS(t *testing.T) ns.NetNS {
	t.Helper()
	prereq.Root(t)
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		_ = testutils.UnmountNS(n)
	})
	return n
}

func run(t *testing.T, n ns.NetNS, args ...string) string {
	t.Helper()
	var out []byte
	err := n.Do(func(ns.NetNS) error {
		var err error
		out, err = exec.Command(args[0], args[1:]...).CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// routesAndRules is what Apply owns in n: routes outside the local table
// and the kernel's IPv6 link-local routes (added asynchronously once a
// link's carrier is up), and the rules.
func routesAndRules(t *testing.T, n ns.NetNS) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(run(t, n, "ip", "route", "show", "table", "all")+run(t, n, "ip", "rule"), "\n") {
		if strings.Contains(line, "table local") || strings.HasPrefix(line, "fe80::/64 ") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func cidrOf(s string) *net.IPNet {
	ip, n, _ := net.ParseCIDR(s)
	if ip4 := ip.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: n.Mask[len(n.Mask)-4:]}
	}
	return &net.IPNet{IP: ip, Mask: n.Mask}
}

func TestPrivilegedApplyCheckTeardown(t *testing.T) {
	host, pod := privilegedNS(t), privilegedNS(t)
	run(t, pod, "ip", "link", "add", "net1", "type", "veth", "peer", "name", "peer1")
	run(t, pod, "ip", "addr", "add", "10.1.0.2/24", "dev", "net1")
	run(t, pod, "ip", "addr", "add", "fd00:1::2/64", "dev", "net1", "nodad")
	run(t, pod, "ip", "link", "set", "net1", "up")
	run(t, pod, "ip", "link", "set", "peer1", "up")
	// What the plan must clean up: a default route on net1 in main, a
	// stale route in the owned table, a stale rule at an owned priority.
	run(t, pod, "ip", "route", "add", "default", "via", "10.1.0.1", "dev", "net1")
	run(t, pod, "ip", "route", "add", "10.7.0.0/16", "via", "10.1.0.1", "dev", "net1", "table", "101")
	run(t, pod, "ip", "rule", "add", "from", "10.9.9.9", "lookup", "101", "pref", "101")

	plan := &Plan{
		PodNetNS:     pod.Path(),
		HostLockFile: t.TempDir() + "/lock",
		Veth:         &VethPair{PodName: "veth0", HostName: "hv-test", MTU: 1400},
		Pod: NamespacePlan{
			Addresses: []Address{{Dev: "veth0", Addr: cidrOf("fe80::2/64"), NoDAD: true}},
			Routes: []Route{
				{Table: 101, Dst: cidrOf("10.1.0.0/24"), Dev: "net1", Scope: ScopeLink, Src: net.ParseIP("10.1.0.2").To4()},
				{Table: 101, Dst: cidrOf("0.0.0.0/0"), Gw: net.ParseIP("10.1.0.1"), Dev: "net1"},
				{Dst: cidrOf("192.0.2.1/32"), Dev: "veth0", Scope: ScopeLink, Protocol: ProtoHostPath},
				{Dst: cidrOf("fd00:2::1/128"), Gw: net.ParseIP("fe80::1"), Dev: "veth0", Protocol: ProtoHostPath},
			},
			DeleteRoutes:        []Route{{Dst: cidrOf("0.0.0.0/0"), Dev: "net1"}},
			OwnedTables:         []int{101},
			Rules:               []Rule{{Family: FamilyV4, Src: cidrOf("10.1.0.2/32"), Table: 101, Priority: 101}},
			OwnedRulePriorities: []int{101},
			Sysctls:             []Sysctl{{Key: "net/ipv4/conf/net1/rp_filter", Value: "0"}},
			Links:               []LinkSettings{{Name: "net1", MAC: net.HardwareAddr{0x0a, 0x1b, 10, 1, 0, 2}, TxQueueLen: 1234}},
		},
		Host: NamespacePlan{
			Addresses: []Address{{Dev: "hv-test", Addr: cidrOf("fe80::1/64"), NoDAD: true}},
			Routes:    []Route{{Table: 500, Dst: cidrOf("10.1.0.2/32"), Dev: "hv-test", Scope: ScopeLink, Protocol: ProtoHostPath}},
			Rules:     []Rule{{Family: FamilyV4, Table: 500, Priority: 1000}},
		},
	}
	apply := func() {
		t.Helper()
		if err := host.Do(func(ns.NetNS) error { return Apply(plan) }); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	check := func() error {
		return host.Do(func(ns.NetNS) error { return Check(plan) })
	}
	apply()
	podState := routesAndRules(t, pod) + run(t, pod, "ip", "link", "show", "net1")
	for _, want := range []string{
		"default via 10.1.0.1 dev net1 table 101 proto static",
		"10.1.0.0/24 dev net1 table 101 proto static scope link src 10.1.0.2",
		"192.0.2.1 dev veth0 proto 77 scope link",
		"fd00:2::1 via fe80::1 dev veth0 proto 77",
		"101:\tfrom 10.1.0.2 lookup 101",
		"link/ether 0a:1b:0a:01:00:02", "qlen 1234",
	} {
		if !strings.Contains(podState, want) {
			t.Errorf("pod state lacks %q:\n%s", want, podState)
		}
	}
	for _, gone := range []string{"10.7.0.0/16", "from 10.9.9.9", "default via 10.1.0.1 dev net1 \n"} {
		if strings.Contains(podState, gone) {
			t.Errorf("pod state still has %q:\n%s", gone, podState)
		}
	}
	hostState := run(t, host, "ip", "route", "show", "table", "500") + run(t, host, "ip", "rule")
	if !strings.Contains(hostState, "10.1.0.2 dev hv-test proto 77 scope link") || !strings.Contains(hostState, "1000:\tfrom all lookup 500") {
		t.Errorf("host state:\n%s", hostState)
	}
	if err := check(); err != nil {
		t.Errorf("Check after Apply: %v", err)
	}

	// Idempotent.
	apply()
	again := routesAndRules(t, pod) + run(t, pod, "ip", "link", "show", "net1")
	if again != podState {
		t.Errorf("second Apply changed the pod:\n%s\nthen:\n%s", podState, again)
	}

	// Check names what is missing and what is extra.
	run(t, pod, "ip", "route", "del", "default", "table", "101")
	run(t, pod, "ip", "route", "add", "10.8.0.0/16", "dev", "net1", "table", "101")
	err := check()
	if err == nil || !strings.Contains(err.Error(), `pod route "0.0.0.0/0 via 10.1.0.1 dev net1 table 101" is missing`) ||
		!strings.Contains(err.Error(), `pod route "10.8.0.0/16 dev net1 table 101" is unexpected`) {
		t.Errorf("Check after tampering: %v", err)
	}

	td := &Teardown{
		PodNetNS: pod.Path(), PodVeth: "veth0", HostVeth: "hv-test",
		PodRules:   plan.Pod.Rules,
		HostTable:  500,
		HostRoutes: plan.Host.Routes,
		HostRules:  []Rule{{Family: FamilyV4, Table: 500, Priority: 1000}, {Family: FamilyV6, Table: 500, Priority: 1000}},
	}
	for range 2 {
		if err := host.Do(func(ns.NetNS) error { return RunTeardown(td) }); err != nil {
			t.Fatalf("RunTeardown: %v", err)
		}
	}
	if got := run(t, host, "ip", "route", "show", "table", "500"); got != "" {
		t.Errorf("table 500 after teardown: %q", got)
	}
	if got := run(t, host, "ip", "rule"); strings.Contains(got, "lookup 500") {
		t.Errorf("host rules after teardown:\n%s", got)
	}
	if got := run(t, host, "ip", "link"); strings.Contains(got, "hv-test") {
		t.Errorf("host veth after teardown:\n%s", got)
	}
	if got := run(t, pod, "ip", "rule"); strings.Contains(got, "lookup 101") {
		t.Errorf("pod rules after teardown:\n%s", got)
	}
	// A pod namespace that is already gone is not an error.
	td.PodNetNS = "/var/run/netns/does-not-exist"
	if err := host.Do(func(ns.NetNS) error { return RunTeardown(td) }); err != nil {
		t.Errorf("RunTeardown without pod namespace: %v", err)
	}
}

func TestPrivilegedInspect(t *testing.T) {
	host, pod := privilegedNS(t), privilegedNS(t)
	run(t, host, "ip", "link", "add", "h0", "type", "veth", "peer", "name", "eth0", "netns", pod.Path())
	run(t, host, "ip", "addr", "add", "192.0.2.1/24", "dev", "h0")
	run(t, host, "ip", "link", "set", "h0", "up")
	run(t, pod, "ip", "addr", "add", "192.0.2.2/24", "dev", "eth0")
	run(t, pod, "ip", "link", "set", "eth0", "up")
	// A second pair: each link's addresses must stay with that link.
	run(t, host, "ip", "link", "add", "h1", "type", "veth", "peer", "name", "net1", "netns", pod.Path())
	run(t, host, "ip", "addr", "add", "198.51.100.1/24", "dev", "h1")
	run(t, host, "ip", "addr", "add", "2001:db8:1::1/64", "dev", "h1", "nodad")
	run(t, pod, "ip", "addr", "add", "198.51.100.2/24", "dev", "net1")
	// The same address on a second link (a point-to-point network's
	// gateway on every pod's veth) is one node address.
	run(t, host, "ip", "addr", "add", "192.0.2.1/32", "dev", "h1")
	// A third pair the coordinator does not ask about.
	run(t, host, "ip", "link", "add", "h2", "type", "veth", "peer", "name", "net2", "netns", pod.Path())
	pf, err := InspectPod(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	eth0, net1 := pf.Link("eth0"), pf.Link("net1")
	if eth0 == nil || eth0.Kind != "veth" || len(eth0.Addrs) != 1 || eth0.Addrs[0].String() != "192.0.2.2/24" {
		t.Fatalf("pod eth0 %+v", eth0)
	}
	if net1 == nil || len(net1.Addrs) != 1 || net1.Addrs[0].String() != "198.51.100.2/24" {
		t.Fatalf("pod net1 %+v", net1)
	}
	var hf *HostFacts
	err = host.Do(func(ns.NetNS) error {
		var err error
		hf, err = InspectHost(eth0.PeerIndex, net1.PeerIndex, 9999)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hf.Veths) != 2 || hf.Veths[0].Name != "h0" || hf.Veths[0].Index != eth0.PeerIndex || hf.Veths[0].PeerIndex != eth0.Index ||
		hf.Veths[1].Name != "h1" || hf.Veths[1].PeerIndex != net1.Index {
		t.Errorf("host veths %+v do not pair with pod eth0 %+v and net1 %+v (and only with them)", hf.Veths, eth0, net1)
	}
	if len(hf.Veths) == 2 {
		want := fmt.Sprintf("[{%d 192.0.2.1/24} {%d 198.51.100.1/24} {%d 2001:db8:1::1/64}]", hf.Veths[0].Index, hf.Veths[1].Index, hf.Veths[1].Index)
		if got := fmt.Sprint(hf.Addrs); got != want {
			t.Errorf("host addresses %s, want %s", got, want)
		}
	}
	if !hasRoute(pf.Routes, "192.0.2.0/24", "eth0") {
		t.Errorf("pod routes %v lack the kernel subnet route", pf.Routes)
	}
	if _, err := InspectPod("/var/run/netns/does-not-exist"); !errors.Is(err, ErrNetNSNotFound) {
		t.Errorf("InspectPod of a missing namespace: %v, want ErrNetNSNotFound", err)
	}
}

func hasRoute(rs []Route, dst, dev string) bool {
	for _, r := range rs {
		if r.Dst.String() == dst && r.Dev == dev {
			return true
		}
	}
	return false
}

// A lazy link index names the links a plan touches by asking for each, and
// past lazyLookups questions reads the namespace once; either way it must
// give the same answers as a dump.
func TestPrivilegedLinkLookups(t *testing.T) {
	host := privilegedNS(t)
	for i := range lazyLookups {
		run(t, host, "ip", "link", "add", fmt.Sprintf("a%d", i), "type", "veth", "peer", "name", fmt.Sprintf("b%d", i))
	}
	err := host.Do(func(ns.NetNS) error {
		dumped, err := loadLinks()
		if err != nil {
			return err
		}
		lazy := lookupLinks()
		for i := range lazyLookups {
			for _, name := range []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)} {
				idx, err := lazy.index(name)
				if err != nil {
					return err
				}
				if want := dumped.byName[name].Attrs().Index; idx != want {
					t.Errorf("index of %s: %d, want %d", name, idx, want)
				}
				if got := lazy.name(idx); got != name {
					t.Errorf("name of %d: %q, want %q", idx, got, name)
				}
			}
		}
		if lazy.lazy {
			t.Errorf("after %d lookups the index still asks for one link at a time", lazy.asked)
		}
		if _, ok := lookupLinks().link("missing0"); ok {
			t.Error("a link that does not exist was found")
		}
		if got := lookupLinks().name(99999); got != "if99999" {
			t.Errorf("name of a missing index: %q", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
