package annotations

import (
	"encoding/json"
	"reflect"
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
