package annotations

import (
	"reflect"
	"testing"
)

func TestParseAppSubnets(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		want AppSubnets
		ok   bool
		err  string
	}{
		{name: "none", ann: map[string]string{PodIPPool: `{"ipv4":["a"]}`}},
		{name: "one subnet per family, default spare", ann: map[string]string{SubnetOne: `{"ipv4":["s4"],"ipv6":["s6"]}`}, ok: true,
			want: AppSubnets{Interfaces: []SubnetRequest{{Interface: "eth0", IPv4: "s4", IPv6: "s6"}}, IPNumber: IPNumber{Flexible: true, N: 1}, Reclaim: true, Source: SubnetOne}},
		{name: "per interface, fixed size, kept", ok: true, ann: map[string]string{
			SubnetMany: `[{"interface":"eth0","ipv4":["s4"]},{"interface":"net1","ipv6":["t6"]}]`, PoolIPNumber: "5", PoolReclaim: "false"},
			want: AppSubnets{Interfaces: []SubnetRequest{{Interface: "eth0", IPv4: "s4"}, {Interface: "net1", IPv6: "t6"}}, IPNumber: IPNumber{N: 5}, Source: SubnetMany}},
		{name: "per interface by position", ok: true, ann: map[string]string{SubnetMany: `[{"ipv4":["s4"]},{"ipv4":["t4"]}]`, PoolIPNumber: "+0"},
			want: AppSubnets{Interfaces: []SubnetRequest{{Interface: "eth0", IPv4: "s4"}, {Interface: "net1", IPv4: "t4"}}, IPNumber: IPNumber{Flexible: true}, Reclaim: true, Source: SubnetMany}},
		{name: "two subnets of a family", ann: map[string]string{SubnetOne: `{"ipv4":["a","b"]}`},
			err: `invalid annotation "ipam.spidernet.io/subnet": ipv4 names 2 subnets; an application's pool is carved from one; want one subnet per family`},
		{name: "a pattern", ann: map[string]string{SubnetOne: `{"ipv4":["team-*"]}`},
			err: `invalid annotation "ipam.spidernet.io/subnet": ipv4: "team-*" is a pattern; name the subnet; want one subnet per family`},
		{name: "no subnet", ann: map[string]string{SubnetOne: `{}`},
			err: `invalid annotation "ipam.spidernet.io/subnet": names no subnet; want one subnet per family`},
		{name: "malformed", ann: map[string]string{SubnetOne: `{"ipv4":"s4"}`},
			err: `invalid annotation "ipam.spidernet.io/subnet": json: cannot unmarshal string into Go struct field PoolSelection.ipv4 of type []string; want a JSON object such as {"ipv4":["subnet-v4"],"ipv6":["subnet-v6"]}`},
		{name: "bad number", ann: map[string]string{SubnetOne: `{"ipv4":["s4"]}`, PoolIPNumber: "0"},
			err: `invalid annotation "ipam.spidernet.io/ippool-ip-number": "0" is too small; want a number of addresses such as "3", or "+1" for the replicas plus one`},
		{name: "bad reclaim", ann: map[string]string{SubnetOne: `{"ipv4":["s4"]}`, PoolReclaim: "maybe"},
			err: `invalid annotation "ipam.spidernet.io/ippool-reclaim": "maybe" is not a boolean; want "true" or "false"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := ParseAppSubnets(tc.ann, 1)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v\nwant  %s", err, tc.err)
				}
				return
			}
			if err != nil || ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v %v %v, want %+v %v", got, ok, err, tc.want, tc.ok)
			}
		})
	}
}

func TestAppSubnetsOrDefault(t *testing.T) {
	def := &SubnetRequest{IPv4: "team-v4"}
	for _, tc := range []struct {
		name string
		ann  map[string]string
		def  *SubnetRequest
		want AppSubnets
		ok   bool
		err  string
	}{
		{name: "no default, no annotation", ann: map[string]string{"app": "x"}},
		{name: "default serves eth0", ann: map[string]string{"app": "x"}, def: def, ok: true,
			want: AppSubnets{Interfaces: []SubnetRequest{{Interface: "eth0", IPv4: "team-v4"}}, IPNumber: IPNumber{Flexible: true, N: 1}, Reclaim: true, Source: DefaultSubnetSource}},
		{name: "sizing annotations apply to the default", ann: map[string]string{PoolIPNumber: "4", PoolReclaim: "false"}, def: def, ok: true,
			want: AppSubnets{Interfaces: []SubnetRequest{{Interface: "eth0", IPv4: "team-v4"}}, IPNumber: IPNumber{N: 4}, Source: DefaultSubnetSource}},
		{name: "a named subnet wins", ann: map[string]string{SubnetOne: `{"ipv4":["own"]}`}, def: def, ok: true,
			want: AppSubnets{Interfaces: []SubnetRequest{{Interface: "eth0", IPv4: "own"}}, IPNumber: IPNumber{Flexible: true, N: 1}, Reclaim: true, Source: SubnetOne}},
		{name: "a named pool opts out", ann: map[string]string{PodIPPool: `{"ipv4":["p"]}`}, def: def},
		{name: "a fixed address opts out", ann: map[string]string{CalicoIPAddrs: `["10.0.0.1"]`}, def: def},
		{name: "an empty default is none", ann: map[string]string{}, def: &SubnetRequest{}},
		{name: "bad sizing is refused", ann: map[string]string{PoolIPNumber: "-1"}, def: def,
			err: `invalid annotation "ipam.spidernet.io/ippool-ip-number": "-1" is too small; want a number of addresses such as "3", or "+1" for the replicas plus one`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := AppSubnetsOrDefault(tc.ann, 1, tc.def)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v\nwant  %s", err, tc.err)
				}
				return
			}
			if err != nil || ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v %v %v, want %+v %v", got, ok, err, tc.want, tc.ok)
			}
		})
	}
}

func TestIPNumberSize(t *testing.T) {
	if (IPNumber{Flexible: true, N: 2}).Size(3) != 5 || (IPNumber{N: 4}).Size(10) != 4 {
		t.Fatal("Size")
	}
}

func FuzzParseAppSubnets(f *testing.F) {
	f.Add(`{"ipv4":["s4"]}`, `[{"interface":"eth0","ipv4":["s"]}]`, "+1", "false")
	f.Add(`{}`, `[]`, "3", "true")
	f.Fuzz(func(t *testing.T, one, many, number, reclaim string) {
		for _, ann := range []map[string]string{
			{SubnetOne: one, PoolIPNumber: number, PoolReclaim: reclaim},
			{SubnetMany: many, PoolIPNumber: number},
			{PoolIPNumber: number, PoolReclaim: reclaim},
		} {
			a, ok, err := AppSubnetsOrDefault(ann, 1, &SubnetRequest{IPv4: "default-v4"})
			if err != nil {
				continue
			}
			if !ok || len(a.Interfaces) == 0 {
				t.Fatalf("accepted %v without interfaces", ann)
			}
			for _, r := range a.Interfaces {
				if r.IPv4 == "" && r.IPv6 == "" || ValidInterfaceName(r.Interface) != nil {
					t.Fatalf("accepted %v: %+v", ann, r)
				}
			}
			if a.IPNumber.Size(0) < 0 || (!a.IPNumber.Flexible && a.IPNumber.N < 1) {
				t.Fatalf("accepted size %+v", a.IPNumber)
			}
		}
	})
}
