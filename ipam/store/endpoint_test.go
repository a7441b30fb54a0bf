package store

import (
	"net/netip"
	"testing"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func claim(addr, pool, iface string, clean bool) *v2beta1.SpiderIPClaim {
	return v2beta1.NewClaim(netip.MustParseAddr(addr), v2beta1.IPClaimSpec{Pool: pool, PodNamespace: "ns", PodName: "web-0", PodUID: "u1",
		Interface: iface, ContainerID: "c1", Node: "n1", OwnerKind: "StatefulSet", OwnerName: "web", CleanGateway: clean})
}

func TestEndpointFromClaims(t *testing.T) {
	pools := map[string]PoolFacts{
		"v4": {PrefixLen: 16, Gateway: "10.6.0.1", Routes: []v2beta1.Route{{Dst: "10.7.0.0/16", Gw: "10.6.0.254"}}},
		"v6": {PrefixLen: 64, Gateway: "fd00::1"},
		"n1": {PrefixLen: 24, Gateway: "10.8.0.1"},
	}
	lookup := func(n string) (PoolFacts, bool) { f, ok := pools[n]; return f, ok }
	se := EndpointFromClaims("ns", "web-0", []*v2beta1.SpiderIPClaim{
		claim("10.8.0.5", "n1", "net1", true),
		claim("fd00::5", "v6", "eth0", false),
		claim("10.6.0.5", "v4", "eth0", false),
		claim("10.9.0.5", "gone", "net10", false),
	}, lookup)
	st := se.Status
	if st.Current.UID != "u1" || st.Current.Node != "n1" || st.OwnerControllerType != "StatefulSet" || st.OwnerControllerName != "web" || se.Labels[LabelEndpointNode] != "n1" {
		t.Fatalf("header: %+v labels %v", st, se.Labels)
	}
	if len(st.Current.IPs) != 3 {
		t.Fatalf("want 3 interfaces, got %+v", st.Current.IPs)
	}
	eth0, net1, net10 := st.Current.IPs[0], st.Current.IPs[1], st.Current.IPs[2]
	if eth0.Interface != "eth0" || *eth0.IPv4 != "10.6.0.5/16" || *eth0.IPv6 != "fd00::5/64" || *eth0.IPv4Pool != "v4" ||
		*eth0.IPv4Gateway != "10.6.0.1" || *eth0.IPv6Gateway != "fd00::1" || len(eth0.Routes) != 1 || *eth0.CleanGateway {
		t.Fatalf("eth0: %+v", eth0)
	}
	if net1.Interface != "net1" || *net1.IPv4 != "10.8.0.5/24" || net1.IPv4Gateway != nil || !*net1.CleanGateway {
		t.Fatalf("net1 (cleangateway): %+v", net1)
	}
	if net10.Interface != "net10" || *net10.IPv4 != "10.9.0.5/32" {
		t.Fatalf("unknown pool keeps the host prefix: %+v", net10)
	}
	if want := "eth0=10.6.0.5/16,fd00::5/64 net1=10.8.0.5/24 net10=10.9.0.5/32"; st.Current.Addresses != want {
		t.Fatalf("addresses %q, want %q", st.Current.Addresses, want)
	}
	if EndpointFromClaims("ns", "x", nil, lookup) != nil {
		t.Fatal("no claims must give no SpiderEndpoint")
	}
}

func TestNewClaimNamesAndLabels(t *testing.T) {
	c := v2beta1.NewClaim(netip.MustParseAddr("fd00::a"), v2beta1.IPClaimSpec{Pool: "p6"})
	if c.Name != "fd00-0000-0000-0000-0000-0000-0000-000a" || c.Spec.IPVersion != 6 || c.Spec.Address != "fd00::a" || c.Labels[v2beta1.LabelPool] != "p6" {
		t.Fatalf("%+v", c)
	}
}
