package annotations

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseIPPool(f *testing.F) {
	for _, s := range []string{`{"ipv4":["a"],"ipv6":["b"]}`, `{}`, `{"ipv4":["p-*"]}`, `{"ipv4":[""]}`, `null`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseIPPool(s)
		if err != nil {
			return
		}
		b, err := json.Marshal(sel)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseIPPool(string(b))
		if err != nil || !reflect.DeepEqual(normSel(back), normSel(sel)) {
			t.Fatalf("%q re-parsed from %s as %+v, %v; want %+v", s, b, back, err, sel)
		}
	})
}

func normSel(s PoolSelection) PoolSelection {
	if len(s.IPv4) == 0 {
		s.IPv4 = nil
	}
	if len(s.IPv6) == 0 {
		s.IPv6 = nil
	}
	return s
}

func FuzzParseIPPools(f *testing.F) {
	for _, s := range []string{`[{"interface":"eth0","ipv4":["a"],"cleangateway":true},{"interface":"net1","ipv6":["b"]}]`, `[{"ipv4":["a"]}]`, `[]`, `[{"interface":"x"},{}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := ParseIPPools(s)
		if err != nil {
			return
		}
		if len(list) == 0 {
			t.Fatal("accepted an empty list")
		}
		b, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseIPPools(string(b))
		if err != nil || len(back) != len(list) {
			t.Fatalf("%q re-parsed from %s: %v", s, b, err)
		}
		for i := range list {
			a, c := list[i], back[i]
			if a.Interface != c.Interface || a.CleanGateway != c.CleanGateway ||
				!reflect.DeepEqual(normSel(PoolSelection{a.IPv4, a.IPv6}), normSel(PoolSelection{c.IPv4, c.IPv6})) {
				t.Fatalf("entry %d: %+v re-parsed as %+v", i, a, c)
			}
		}
	})
}

func FuzzParseRoutes(f *testing.F) {
	for _, s := range []string{`[{"dst":"10.0.0.0/16","gw":"172.18.40.1"}]`, `[{"dst":"fd00::/8","gw":"fd00::1"}]`, `[]`, `[{"dst":"1.2.3.4/40","gw":"x"}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		routes, err := ParseRoutes(s)
		if err != nil {
			return
		}
		for _, r := range routes {
			if r.Dst.Addr().Is4() != r.Gw.Is4() || r.Dst != r.Dst.Masked() {
				t.Fatalf("accepted inconsistent route %+v", r)
			}
		}
		b, err := json.Marshal(routes)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseRoutes(string(b))
		if err != nil || len(back) != len(routes) || (len(routes) > 0 && !reflect.DeepEqual(back, routes)) {
			t.Fatalf("%q re-parsed from %s as %v, %v", s, b, back, err)
		}
	})
}

func FuzzParsePoolList(f *testing.F) {
	for _, s := range []string{`["a","b"]`, `[]`, `a`, `[""]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParsePoolList(NamespaceDefaultIPv4Pool, s)
		if err != nil {
			return
		}
		b, _ := json.Marshal(names)
		back, err := ParsePoolList(NamespaceDefaultIPv4Pool, string(b))
		if err != nil || len(back) != len(names) || (len(names) > 0 && !reflect.DeepEqual(back, names)) {
			t.Fatalf("%q re-parsed from %s as %v, %v", s, b, back, err)
		}
	})
}

func FuzzParseDefaultRouteNIC(f *testing.F) {
	for _, s := range []string{"net1", " eth0 ", "", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nic, err := ParseDefaultRouteNIC(s)
		if err != nil {
			return
		}
		if back, err := ParseDefaultRouteNIC(nic); err != nil || back != nic {
			t.Fatalf("%q -> %q re-parsed as %q, %v", s, nic, back, err)
		}
	})
}

func FuzzParseNetworks(f *testing.F) {
	for _, s := range []string{"a", "ns/a@x,b", `[{"name":"a","namespace":"b","interface":"c"}]`, "a@", "a/b/c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := ParseNetworks(s, "pod-ns")
		if err != nil {
			return
		}
		for _, n := range nets {
			if n.Name == "" || n.Namespace == "" || n.Interface == "" {
				t.Fatalf("accepted incomplete network %+v", n)
			}
		}
		back, err := ParseNetworks(FormatNetworks(nets), "other-ns")
		if err != nil || !reflect.DeepEqual(back, nets) {
			t.Fatalf("%q -> %q re-parsed as %+v, %v; want %+v", s, FormatNetworks(nets), back, err, nets)
		}
	})
}

// Every workload list that parses holds at most one address per family per
// entry, no address twice, and prints back to a value that parses the same.
func FuzzParseOVNIPPool(f *testing.F) {
	for _, s := range []string{"10.16.0.15,10.16.0.16", "10.16.0.15,fd00::e;10.16.0.16,fd00::f", "10.16.0.15,fd00::e", "fd00::1%eth0", ";", "1.2.3.4,1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := ParseOVNIPPool(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		var entries []string
		for _, e := range list {
			if e.Empty() || (e.IPv4.IsValid() && !e.IPv4.Is4()) || (e.IPv6.IsValid() && !e.IPv6.Is6()) {
				t.Fatalf("%q: bad entry %+v", s, e)
			}
			for _, a := range []string{e.IPv4.String(), e.IPv6.String()} {
				if a != "invalid IP" && seen[a] {
					t.Fatalf("%q: %s twice", s, a)
				}
				seen[a] = true
			}
			entries = append(entries, e.String())
		}
		back, err := ParseOVNIPPool(strings.Join(entries, ";"))
		if err != nil || !reflect.DeepEqual(back, list) {
			t.Fatalf("%q printed as %q re-parsed as %+v, %v", s, strings.Join(entries, ";"), back, err)
		}
	})
}

// ParseFixed never panics, and what it accepts holds at most one address per
// family and names where it came from.
func FuzzParseFixed(f *testing.F) {
	f.Add(`["192.168.0.1"]`, "10.16.0.15,fd00::15", "00:00:00:53:6B:B6", "10.16.0.15,10.16.0.16", "10.188.0.216", "255.255.0.0")
	f.Add(`[]`, "", "", "", "", "")
	f.Fuzz(func(t *testing.T, calico, ovnIP, ovnMAC, ovnPool, kipIP, kipMask string) {
		ann := map[string]string{}
		for k, v := range map[string]string{CalicoIPAddrs: calico, OVNIPAddress: ovnIP, OVNMACAddress: ovnMAC, OVNIPPool: ovnPool, KubeIPAMIP: kipIP, KubeIPAMNetmask: kipMask} {
			if v != "" {
				ann[k] = v
			}
		}
		fx, err := ParseFixed(ann, true, true, nil)
		if err != nil {
			return
		}
		if !fx.Empty() && len(fx.Sources) == 0 {
			t.Fatalf("%v: request %+v without sources", ann, fx)
		}
		if !fx.Addresses.Empty() && len(fx.List) > 0 {
			t.Fatalf("%v: both explicit addresses and a list accepted", ann)
		}
	})
}
