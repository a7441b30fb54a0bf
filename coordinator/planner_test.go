package coordinator

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/spindle-net/spindle/ipam/nodeapi"
	"github.com/spindle-net/spindle/routing"
)

func cidr(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	if ip4 := ip.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: n.Mask[len(n.Mask)-4:]}
	}
	return &net.IPNet{IP: ip, Mask: n.Mask}
}

func route(table int, dst, gw, dev string, proto int) routing.Route {
	r := routing.Route{Table: table, Dst: cidr(dst), Dev: dev, Protocol: proto}
	if gw != "" {
		r.Gw = net.ParseIP(gw)
	}
	return r
}

// podWithOverlay is a pod whose eth0 came from a ptp-like overlay (veth,
// routes via its gateway 10.244.1.1) and whose net1 macvlan was just set up
// (kernel subnet route and macvlan's default route).
func podWithOverlay() *routing.PodFacts {
	return &routing.PodFacts{
		Links: []routing.PodLink{
			{Name: "eth0", Index: 2, Kind: "veth", MTU: 1450, PeerIndex: 7, Addrs: []*net.IPNet{cidr("10.244.1.2/24"), cidr("fd00:244::2/64")}, LinkLocal: []net.IP{net.ParseIP("fe80::aa")}},
			{Name: "net1", Index: 3, Kind: "macvlan", MTU: 1500, Addrs: []*net.IPNet{cidr("10.10.0.11/24"), cidr("fd00:10::11/64")}},
		},
		Routes: []routing.Route{
			route(254, "0.0.0.0/0", "10.244.1.1", "eth0", 0),
			route(254, "10.244.1.0/24", "10.244.1.1", "eth0", 0),
			route(254, "10.244.1.1/32", "", "eth0", 0),
			route(254, "::/0", "fd00:244::1", "eth0", 0),
			route(254, "0.0.0.0/0", "10.10.0.254", "net1", 0),
			route(254, "10.10.0.0/24", "", "net1", 2),
			route(254, "fd00:10::/64", "", "net1", 2),
			route(254, "::/0", "fd00:10::fe", "net1", 0),
			route(254, "192.168.50.0/24", "10.10.0.254", "net1", 0),
		},
	}
}

func net1Result() *current.Result {
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: "net1", Sandbox: "/var/run/netns/pod"}},
		IPs: []*current.IPConfig{
			{Interface: current.Int(0), Address: *cidr("10.10.0.11/24"), Gateway: net.ParseIP("10.10.0.254")},
			{Interface: current.Int(0), Address: *cidr("fd00:10::11/64"), Gateway: net.ParseIP("fd00:10::fe")},
		},
		Routes: []*types.Route{
			{Dst: *cidr("0.0.0.0/0")}, {Dst: *cidr("::/0")},
			{Dst: *cidr("192.168.50.0/24"), GW: net.ParseIP("10.10.0.254")},
		},
	}
}

func nodeFacts() *routing.HostFacts {
	return &routing.HostFacts{
		Addrs: []routing.HostAddr{
			{LinkIndex: 2, Addr: cidr("10.10.0.1/24")},
			{LinkIndex: 2, Addr: cidr("fd00:10::1/64")},
			{LinkIndex: 3, Addr: cidr("10.244.1.1/32")},
		},
		Veths: []routing.HostLink{{Name: "vethptp", Index: 7, PeerIndex: 2}, {Name: "vethother", Index: 8, PeerIndex: 2}},
	}
}

func defaultConfig(t *testing.T, s Settings) *Config {
	t.Helper()
	cfg, err := Resolve(s)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func strs[T interface{ String() string }](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func hasAll(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s: missing %q in\n  %s", what, w, strings.Join(got, "\n  "))
		}
	}
}

func hasNone(t *testing.T, what string, got []string, unwanted ...string) {
	t.Helper()
	for _, u := range unwanted {
		if slices.Contains(got, u) {
			t.Errorf("%s: unexpected %q", what, u)
		}
	}
}

// mainDefaults returns the main-table default routes the plan installs.
func mainDefaults(p *routing.Plan) []string {
	var out []string
	for _, r := range p.Pod.Routes {
		if r.Table == 0 && r.IsDefault() {
			out = append(out, r.String())
		}
	}
	return out
}

func TestBuildPlan(t *testing.T) {
	tests := []struct {
		name     string
		settings Settings
		pod      *nodeapi.PodInfo
		check    func(t *testing.T, p *Planned)
	}{
		{
			name: "overlay plus underlay: eth0 keeps the default route, net1 gets table 101",
			check: func(t *testing.T, p *Planned) {
				if p.Mode != ModeOverlay {
					t.Errorf("mode %s, want overlay (auto, net1, no veth0)", p.Mode)
				}
				if p.Plan.Veth != nil {
					t.Errorf("overlay mode must not create a veth: %+v", p.Plan.Veth)
				}
				if got, want := mainDefaults(p.Plan), []string{
					"0.0.0.0/0 via 10.244.1.1 dev eth0 table 254", "::/0 via fd00:244::1 dev eth0 table 254",
				}; !slices.Equal(got, want) {
					t.Errorf("main defaults %q, want %q", got, want)
				}
				routes := strs(p.Plan.Pod.Routes)
				hasAll(t, "pod routes", routes,
					"0.0.0.0/0 via 10.10.0.254 dev net1 table 101",
					"10.10.0.0/24 dev net1 src 10.10.0.11 table 101",
					"192.168.50.0/24 via 10.10.0.254 dev net1 table 101",
					"::/0 via fd00:10::fe dev net1 table 101",
					"fd00:10::/64 dev net1 table 101",
					"0.0.0.0/0 via 10.244.1.1 dev eth0 table 100",
					// host path over eth0, in main and in each table
					"10.10.0.1/32 via 10.244.1.1 dev eth0 src 10.244.1.2 table 254",
					"169.254.0.0/16 via 10.244.1.1 dev eth0 src 10.244.1.2 table 254",
					"169.254.0.0/16 via 10.244.1.1 dev eth0 src 10.10.0.11 table 101",
					"fd00:10::1/128 via fd00:244::1 dev eth0 table 254",
				)
				// ptp's own route to its gateway stays untouched in main.
				hasNone(t, "pod routes", routes, "10.244.1.1/32 dev eth0 src 10.244.1.2 table 254")
				hasAll(t, "rules", strs(p.Plan.Pod.Rules),
					"100: from 10.244.1.2/32 lookup 100 (ipv4)", "101: from 10.10.0.11/32 lookup 101 (ipv4)",
					"100: from fd00:244::2/128 lookup 100 (ipv6)", "101: from fd00:10::11/128 lookup 101 (ipv6)")
				// tunePodRoutes (default): net1's custom route leaves main,
				// so does its default route.
				hasAll(t, "deleted", strs(p.Plan.Pod.DeleteRoutes),
					"192.168.50.0/24 via 10.10.0.254 dev net1 table 254", "0.0.0.0/0 dev net1 table 254", "::/0 dev net1 table 254")
				// The node answers net1's addresses through the overlay's
				// host veth (the one whose peer is eth0).
				hasAll(t, "host routes", strs(p.Plan.Host.Routes),
					"10.10.0.11/32 dev vethptp table 500", "fd00:10::11/128 via fe80::aa dev vethptp table 500")
				hasAll(t, "host rules", strs(p.Plan.Host.Rules), "1000: from all lookup 500 (ipv4)", "1000: from all lookup 500 (ipv6)")
				// The result keeps the default route (CHECK needs the gateway)
				// but not the moved custom route.
				var res []string
				for _, r := range p.ResultRoutes {
					res = append(res, r.Dst.String())
				}
				if want := []string{"0.0.0.0/0", "::/0"}; !slices.Equal(res, want) {
					t.Errorf("result routes %q, want %q", res, want)
				}
			},
		},
		{
			name: "default-route-nic annotation moves the default route to net1",
			pod:  &nodeapi.PodInfo{Annotations: map[string]string{DefaultRouteNICAnnotation: "net1"}},
			check: func(t *testing.T, p *Planned) {
				if got, want := mainDefaults(p.Plan), []string{
					"0.0.0.0/0 via 10.10.0.254 dev net1 table 254", "::/0 via fd00:10::fe dev net1 table 254",
				}; !slices.Equal(got, want) {
					t.Errorf("main defaults %q, want %q", got, want)
				}
				deleted := strs(p.Plan.Pod.DeleteRoutes)
				hasAll(t, "deleted", deleted, "0.0.0.0/0 dev eth0 table 254")
				// net1 is the default NIC now: its custom route stays in main.
				hasNone(t, "deleted", deleted, "192.168.50.0/24 via 10.10.0.254 dev net1 table 254")
				hasAll(t, "pod routes", strs(p.Plan.Pod.Routes), "0.0.0.0/0 via 10.244.1.1 dev eth0 table 100")
			},
		},
		{
			name:     "podDefaultRouteNIC setting; the annotation wins over it",
			settings: Settings{PodDefaultRouteNIC: "net1"},
			pod:      &nodeapi.PodInfo{Annotations: map[string]string{DefaultRouteNICAnnotation: "eth0"}},
			check: func(t *testing.T, p *Planned) {
				if p.DefaultNIC[routing.FamilyV4] != "eth0" {
					t.Errorf("default NIC %v, want eth0 from the annotation", p.DefaultNIC)
				}
			},
		},
		{
			name:     "cleangateway: net1 never carries the default route",
			settings: Settings{PodDefaultRouteNIC: "net1"},
			pod:      &nodeapi.PodInfo{Interfaces: map[string]nodeapi.Result{"net1": {CleanGateway: true}}},
			check: func(t *testing.T, p *Planned) {
				if got := p.DefaultNIC; got[routing.FamilyV4] != "eth0" || got[routing.FamilyV6] != "eth0" {
					t.Errorf("default NIC %v, want eth0 for both families", got)
				}
				hasAll(t, "deleted", strs(p.Plan.Pod.DeleteRoutes), "0.0.0.0/0 dev net1 table 254")
				// Replies from net1 still leave through its gateway.
				hasAll(t, "pod routes", strs(p.Plan.Pod.Routes), "0.0.0.0/0 via 10.10.0.254 dev net1 table 101")
			},
		},
		{
			name:     "tunePodRoutes off: net1's custom route stays in main",
			settings: Settings{TunePodRoutes: ptr(false)},
			check: func(t *testing.T, p *Planned) {
				hasNone(t, "deleted", strs(p.Plan.Pod.DeleteRoutes), "192.168.50.0/24 via 10.10.0.254 dev net1 table 254")
				// Still exactly one default route per family.
				if got := len(mainDefaults(p.Plan)); got != 2 {
					t.Errorf("%d main defaults, want 2 (one per family)", got)
				}
				if len(p.ResultRoutes) != 3 {
					t.Errorf("result routes %d, want all 3 kept", len(p.ResultRoutes))
				}
			},
		},
		{
			name:     "service and overlay CIDRs of both families, hijack CIDR override",
			settings: Settings{ServiceCIDR: []string{"10.96.0.0/12", "fd00:96::/108"}, OverlayPodCIDR: []string{"10.244.0.0/16"}, HijackCIDR: []string{"172.30.0.0/16"}},
			check: func(t *testing.T, p *Planned) {
				routes := strs(p.Plan.Pod.Routes)
				hasAll(t, "pod routes", routes,
					"10.96.0.0/12 via 10.244.1.1 dev eth0 src 10.244.1.2 table 254",
					"fd00:96::/108 via fd00:244::1 dev eth0 table 254",
					"10.244.0.0/16 via 10.244.1.1 dev eth0 src 10.244.1.2 table 254",
					"172.30.0.0/16 via 10.244.1.1 dev eth0 src 10.244.1.2 table 254",
					"10.96.0.0/12 via 10.244.1.1 dev eth0 src 10.10.0.11 table 101")
				hasNone(t, "pod routes", routes, "169.254.0.0/16 via 10.244.1.1 dev eth0 src 10.244.1.2 table 254")
			},
		},
		{
			name:     "detection and announcements for the added NIC only",
			settings: Settings{DetectIPConflict: ptr(true), DetectGateway: ptr(true)},
			check: func(t *testing.T, p *Planned) {
				var probes []string
				for _, pr := range p.Plan.Probes {
					probes = append(probes, pr.Dev+" "+pr.IP.String())
				}
				if want := []string{"net1 10.10.0.11", "net1 10.10.0.254", "net1 fd00:10::11", "net1 fd00:10::fe"}; !slices.Equal(probes, want) {
					t.Errorf("probes %q, want %q", probes, want)
				}
				if len(p.Plan.Announcements) != 2 {
					t.Errorf("announcements %v, want net1's two addresses", p.Plan.Announcements)
				}
			},
		},
		{
			name:     "podMACPrefix, txQueueLen, podRPFilter",
			settings: Settings{PodMACPrefix: "0a:1b", TxQueueLen: ptr(3000), PodRPFilter: ptr(2)},
			check: func(t *testing.T, p *Planned) {
				if got := p.MAC.String(); got != "0a:1b:0a:0a:00:0b" {
					t.Errorf("MAC %s, want 0a:1b:0a:0a:00:0b", got)
				}
				if len(p.Plan.Pod.Links) != 1 || p.Plan.Pod.Links[0].TxQueueLen != 3000 || p.Plan.Pod.Links[0].Name != "net1" {
					t.Errorf("links %+v, want net1 with txqueuelen 3000", p.Plan.Pod.Links)
				}
				hasAll(t, "sysctls", sysctls(p.Plan.Pod.Sysctls), "net/ipv4/conf/all/rp_filter=2", "net/ipv4/conf/net1/rp_filter=2", "net/ipv4/conf/eth0/rp_filter=2")
			},
		},
		{
			name:     "a MAC the pod asked for wins over podMACPrefix",
			settings: Settings{PodMACPrefix: "0a:1b"},
			pod: &nodeapi.PodInfo{Namespace: "ns", Name: "p", Interfaces: map[string]nodeapi.Result{
				"net1": {Interface: "net1", MAC: "02:42:0a:10:00:0f"}}},
			check: func(t *testing.T, p *Planned) {
				if got := p.MAC.String(); got != "02:42:0a:10:00:0f" {
					t.Errorf("MAC %s, want the requested 02:42:0a:10:00:0f", got)
				}
				if len(p.Plan.Pod.Links) != 1 || p.Plan.Pod.Links[0].MAC.String() != "02:42:0a:10:00:0f" {
					t.Errorf("links %+v, want net1 with the requested MAC", p.Plan.Pod.Links)
				}
			},
		},
		{
			name: "a StatefulSet replica's MAC follows its fixed address",
			pod:  &nodeapi.PodInfo{Namespace: "ns", Name: "web-0", OwnerKind: "StatefulSet"},
			check: func(t *testing.T, p *Planned) {
				if got := p.MAC.String(); got != "02:73:0a:0a:00:0b" {
					t.Errorf("MAC %s, want 02:73:0a:0a:00:0b", got)
				}
			},
		},
		{
			name: "a virtual machine's launcher pod too",
			pod:  &nodeapi.PodInfo{Namespace: "ns", Name: "virt-launcher-vm1-abcde", OwnerKind: "VirtualMachineInstance"},
			check: func(t *testing.T, p *Planned) {
				if got := p.MAC.String(); got != "02:73:0a:0a:00:0b" {
					t.Errorf("MAC %s, want 02:73:0a:0a:00:0b", got)
				}
			},
		},
		{
			name: "other pods keep the MAC their main plugin gave them",
			pod:  &nodeapi.PodInfo{Namespace: "ns", Name: "app-x", OwnerKind: "ReplicaSet"},
			check: func(t *testing.T, p *Planned) {
				if p.MAC != nil {
					t.Errorf("MAC %s, want none", p.MAC)
				}
			},
		},
		{
			name:     "podRPFilter -1 leaves rp_filter alone",
			settings: Settings{PodRPFilter: ptr(-1)},
			check: func(t *testing.T, p *Planned) {
				if len(p.Plan.Pod.Sysctls) != 0 {
					t.Errorf("sysctls %v, want none", p.Plan.Pod.Sysctls)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := BuildPlan(PlanInput{
				ContainerID: "c1", NetNS: "/var/run/netns/pod", IfName: "net1", Result: net1Result(),
				Config: defaultConfig(t, tc.settings), Pod: tc.pod, PodFacts: podWithOverlay(), HostFacts: nodeFacts(),
			})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

func sysctls(s []routing.Sysctl) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Key+"="+x.Value)
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func TestBuildPlanUnderlayOnly(t *testing.T) {
	facts := &routing.PodFacts{
		Links: []routing.PodLink{{Name: "eth0", Index: 2, Kind: "macvlan", MTU: 9000, Addrs: []*net.IPNet{cidr("10.10.0.21/24")}}},
		Routes: []routing.Route{
			route(254, "10.10.0.0/24", "", "eth0", 2),
			route(254, "0.0.0.0/0", "10.10.0.254", "eth0", 0),
		},
	}
	res := &current.Result{
		Interfaces: []*current.Interface{{Name: "eth0", Sandbox: "/var/run/netns/pod"}},
		IPs:        []*current.IPConfig{{Interface: current.Int(0), Address: *cidr("10.10.0.21/24"), Gateway: net.ParseIP("10.10.0.254")}},
		Routes:     []*types.Route{{Dst: *cidr("0.0.0.0/0")}},
	}
	host := &routing.HostFacts{Addrs: []routing.HostAddr{
		{LinkIndex: 1, Addr: cidr("192.0.2.7/32")},
		{LinkIndex: 2, Addr: cidr("10.10.0.1/24")},
		{LinkIndex: 2, Addr: cidr("fd00:10::1/64")},
	}}
	p, err := BuildPlan(PlanInput{
		ContainerID: "c1", NetNS: "/var/run/netns/pod", IfName: "eth0", Result: res,
		Config:   defaultConfig(t, Settings{ServiceCIDR: []string{"10.96.0.0/12"}, VethLinkAddress: "169.254.200.1"}),
		PodFacts: facts, HostFacts: host,
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != ModeUnderlay {
		t.Fatalf("mode %s, want underlay (auto on eth0)", p.Mode)
	}
	want := routing.VethPair{PodName: "veth0", HostName: HostVethName("c1"), MTU: 9000}
	if p.Plan.Veth == nil || *p.Plan.Veth != want {
		t.Fatalf("veth %+v, want %+v", p.Plan.Veth, want)
	}
	routes := strs(p.Plan.Pod.Routes)
	hasAll(t, "pod routes", routes,
		// node addresses on-link over veth0, the rest via the node's
		// address on the pod's subnet (not the first one, on lo)
		"10.10.0.1/32 dev veth0 src 10.10.0.21 table 254",
		"192.0.2.7/32 dev veth0 src 10.10.0.21 table 254",
		"10.96.0.0/12 via 10.10.0.1 dev veth0 src 10.10.0.21 table 254",
		"169.254.0.0/16 via 10.10.0.1 dev veth0 src 10.10.0.21 table 254",
		"0.0.0.0/0 via 10.10.0.254 dev eth0 table 254",
		"10.10.0.1/32 dev veth0 src 10.10.0.21 table 100",
	)
	// An IPv4-only pod gets no IPv6 host path and no IPv6 link-locals.
	for _, r := range p.Plan.Pod.Routes {
		if r.Family() == routing.FamilyV6 {
			t.Errorf("unexpected IPv6 route %s", r)
		}
	}
	if got := strs(p.Plan.Host.Routes); !slices.Equal(got, []string{"10.10.0.21/32 dev " + HostVethName("c1") + " table 500"}) {
		t.Errorf("host routes %q", got)
	}
	if got := len(p.Plan.Host.Rules); got != 1 {
		t.Errorf("host rules %v, want one IPv4 rule", p.Plan.Host.Rules)
	}
	if len(p.Plan.Pod.Addresses) != 1 || p.Plan.Pod.Addresses[0].Addr.String() != "169.254.200.1/32" {
		t.Errorf("pod addresses %+v, want vethLinkAddress on veth0", p.Plan.Pod.Addresses)
	}
	// On-link routes come before the routes that use them as gateway.
	firstGw := slices.IndexFunc(p.Plan.Pod.Routes, func(r routing.Route) bool { return r.Gw != nil })
	if slices.ContainsFunc(p.Plan.Pod.Routes[firstGw:], func(r routing.Route) bool { return r.Gw == nil }) {
		t.Errorf("routes not ordered on-link first: %q", routes)
	}
}

func TestBuildPlanDualStackFallsBackPerFamily(t *testing.T) {
	// net1 is the wanted default NIC but has no IPv6 gateway: IPv6 keeps
	// eth0's default route.
	facts := podWithOverlay()
	facts.Routes = slices.DeleteFunc(facts.Routes, func(r routing.Route) bool { return r.Dev == "net1" && r.Family() == routing.FamilyV6 && r.Gw != nil })
	res := net1Result()
	res.Routes = res.Routes[:1]
	res.IPs[1].Gateway = nil
	p, err := BuildPlan(PlanInput{
		ContainerID: "c1", NetNS: "/ns", IfName: "net1", Result: res,
		Config: defaultConfig(t, Settings{PodDefaultRouteNIC: "net1"}), PodFacts: facts, HostFacts: nodeFacts(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.DefaultNIC; got[routing.FamilyV4] != "net1" || got[routing.FamilyV6] != "eth0" {
		t.Errorf("default NICs %v, want ipv4 net1, ipv6 eth0", got)
	}
}

func TestBuildPlanIsStableAcrossRuns(t *testing.T) {
	// After net1's run, the state holds net1's default in table 101 only
	// (it was not the default NIC). A run for net2 must still know net1's
	// gateway and rebuild the same table 101.
	facts := podWithOverlay()
	p1, err := BuildPlan(PlanInput{ContainerID: "c1", NetNS: "/ns", IfName: "net1", Result: net1Result(), Config: defaultConfig(t, Settings{}), PodFacts: facts, HostFacts: nodeFacts()})
	if err != nil {
		t.Fatal(err)
	}
	var after []routing.Route
	for _, r := range facts.Routes {
		if !slices.ContainsFunc(p1.Plan.Pod.DeleteRoutes, func(d routing.Route) bool {
			return d.Dev == r.Dev && d.Dst.String() == r.Dst.String() && (d.Gw == nil || d.Gw.Equal(r.Gw))
		}) || slices.ContainsFunc(p1.Plan.Pod.Routes, func(w routing.Route) bool { return w.Table == 0 && w.Key() == r.Key() }) {
			after = append(after, r)
		}
	}
	for _, r := range p1.Plan.Pod.Routes {
		if r.Table == 0 {
			r.Table = routing.TableMain
		}
		after = append(after, r)
	}
	facts.Routes = after
	facts.Links = append(facts.Links, routing.PodLink{Name: "net2", Index: 4, Kind: "macvlan", Addrs: []*net.IPNet{cidr("10.20.0.12/24")}})
	facts.Routes = append(facts.Routes, route(254, "10.20.0.0/24", "", "net2", 2))
	res2 := &current.Result{
		Interfaces: []*current.Interface{{Name: "net2", Sandbox: "/ns"}},
		IPs:        []*current.IPConfig{{Interface: current.Int(0), Address: *cidr("10.20.0.12/24")}},
	}
	p2, err := BuildPlan(PlanInput{ContainerID: "c1", NetNS: "/ns", IfName: "net2", Result: res2, Config: defaultConfig(t, Settings{}), PodFacts: facts, HostFacts: nodeFacts()})
	if err != nil {
		t.Fatal(err)
	}
	table := func(p *Planned, n int) []string {
		var out []string
		for _, r := range p.Plan.Pod.Routes {
			if r.Table == n {
				out = append(out, r.String())
			}
		}
		return out
	}
	if a, b := table(p1, 101), table(p2, 101); !slices.Equal(a, b) {
		t.Errorf("table 101 differs between runs:\nnet1 run: %q\nnet2 run: %q", a, b)
	}
	if a, b := table(p1, 100), table(p2, 100); !slices.Equal(a, b) {
		t.Errorf("table 100 differs between runs:\nnet1 run: %q\nnet2 run: %q", a, b)
	}
	hasAll(t, "net2 table", table(p2, 102), "10.20.0.0/24 dev net2 src 10.20.0.12 table 102")
}

func TestBuildPlanErrors(t *testing.T) {
	t.Run("invalid annotation is a config error naming it", func(t *testing.T) {
		_, err := BuildPlan(PlanInput{IfName: "net1", Result: net1Result(), Config: defaultConfig(t, Settings{}),
			Pod: &nodeapi.PodInfo{Annotations: map[string]string{DefaultRouteNICAnnotation: "net1/../x"}}, PodFacts: podWithOverlay(), HostFacts: nodeFacts()})
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, DefaultRouteNICAnnotation) {
			t.Errorf("got %v, want code 7 naming %s", err, DefaultRouteNICAnnotation)
		}
	})
	t.Run("interface missing from the pod", func(t *testing.T) {
		_, err := BuildPlan(PlanInput{IfName: "net7", NetNS: "/ns", Result: net1Result(), Config: defaultConfig(t, Settings{}), PodFacts: podWithOverlay()})
		if err == nil || !strings.Contains(err.Error(), `"net7"`) {
			t.Errorf("got %v, want an error naming net7", err)
		}
	})
	t.Run("two NICs on one table", func(t *testing.T) {
		facts := podWithOverlay()
		facts.Links = append(facts.Links, routing.PodLink{Name: "eth1", Index: 9, Addrs: []*net.IPNet{cidr("10.30.0.2/24")}})
		facts.Links[1].Name = "net1"
		facts.Links = append(facts.Links, routing.PodLink{Name: "ext1", Index: 10, Addrs: []*net.IPNet{cidr("10.31.0.2/24")}})
		_, err := BuildPlan(PlanInput{IfName: "net1", Result: net1Result(), Config: defaultConfig(t, Settings{}), PodFacts: facts})
		if err == nil || !strings.Contains(err.Error(), "table 101") {
			t.Errorf("got %v, want a table collision error", err)
		}
	})
}

func TestNICTable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		index int
		want  int
	}{
		{"eth0", 2, 100}, {"net1", 3, 101}, {"net2", 4, 102}, {"net99", 5, 199},
		{"net100", 6, 1006}, {"data", 7, 1007}, {"eth", 8, 1008},
	} {
		if got := NICTable(tc.name, tc.index); got != tc.want {
			t.Errorf("NICTable(%q, %d) = %d, want %d", tc.name, tc.index, got, tc.want)
		}
	}
}

func TestDeriveMAC(t *testing.T) {
	prefix := net.HardwareAddr{0x0a, 0x1b}
	for _, tc := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"10.6.0.5/24"}, "0a:1b:0a:06:00:05"},
		{[]string{"fd00::1:a0b:c0d/64", "10.6.0.5/24"}, "0a:1b:0a:06:00:05"},
		{[]string{"fd00::1:a0b:c0d/64"}, "0a:1b:0a:0b:0c:0d"},
		{nil, ""},
	} {
		var addrs []*net.IPNet
		for _, a := range tc.addrs {
			addrs = append(addrs, cidr(a))
		}
		got := DeriveMAC(prefix, addrs)
		if (got == nil && tc.want != "") || (got != nil && got.String() != tc.want) {
			t.Errorf("DeriveMAC(%v) = %v, want %q", tc.addrs, got, tc.want)
		}
	}
}

func TestHostVethName(t *testing.T) {
	a, b := HostVethName("container-a"), HostVethName("container-b")
	if a == b || len(a) != 15 || !strings.HasPrefix(a, "veth") || a != HostVethName("container-a") {
		t.Errorf("HostVethName: %q, %q: want distinct, stable, 15-character names", a, b)
	}
}

func TestBuildTeardown(t *testing.T) {
	cfg := defaultConfig(t, Settings{})
	res := net1Result()
	t.Run("extra NIC: its rules and node routes, not the veth", func(t *testing.T) {
		td := BuildTeardown(TeardownInput{ContainerID: "c1", NetNS: "/ns", IfName: "net1", Result: res, Config: cfg, PodFacts: podWithOverlay()})
		if td.HostVeth != "" {
			t.Errorf("host veth %q, want none for net1", td.HostVeth)
		}
		hasAll(t, "pod rules", strs(td.PodRules), "101: from 10.10.0.11/32 lookup 101 (ipv4)", "101: from fd00:10::11/128 lookup 101 (ipv6)")
		hasAll(t, "host routes", strs(td.HostRoutes), "10.10.0.11/32 dev  table 500", "fd00:10::11/128 dev  table 500")
		hasAll(t, "host rules", strs(td.HostRules), "1000: from all lookup 500 (ipv4)", "1000: from all lookup 500 (ipv6)")
	})
	t.Run("pod namespace gone: node side only, veth included", func(t *testing.T) {
		td := BuildTeardown(TeardownInput{ContainerID: "c1", NetNS: "/ns", IfName: "net1", Result: res, Config: cfg})
		if td.PodNetNS != "" || td.HostVeth != HostVethName("c1") {
			t.Errorf("teardown %+v, want no pod namespace and the host veth", td)
		}
	})
	t.Run("no prevResult: addresses from the pod", func(t *testing.T) {
		td := BuildTeardown(TeardownInput{ContainerID: "c1", NetNS: "/ns", IfName: "net1", Config: cfg, PodFacts: podWithOverlay()})
		if len(td.HostRoutes) != 2 {
			t.Errorf("host routes %q, want net1's two addresses", strs(td.HostRoutes))
		}
	})
}
