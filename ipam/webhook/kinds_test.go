package webhook

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

func check(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("want valid, got %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want error containing %q, got none", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error mismatch\n got: %s\nwant: %s", err, want)
	}
}

func subnet(name, cidr string, ips ...string) *v2beta1.SpiderSubnet {
	return &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.SubnetSpec{Subnet: cidr, IPs: ips}}
}

func TestValidateSubnet(t *testing.T) {
	check(t, ValidateSubnet(subnet("s", "10.6.0.0/16", "10.6.0.1-10.6.0.9"), nil, nil, nil), "")
	check(t, ValidateSubnet(subnet("s", "10.6.0.0/16", "10.5.0.1"), nil, nil, nil),
		"spec.ips[0]: 10.5.0.1 is outside spec.subnet 10.6.0.0/16: move it into the subnet or widen the subnet")
	check(t, ValidateSubnet(subnet("s", "10.7.0.0/16"), subnet("s", "10.6.0.0/16"), nil, nil),
		"spec.subnet: changing the subnet from 10.6.0.0/16 to 10.7.0.0/16 is not allowed: create a new SpiderSubnet instead")
	check(t, ValidateSubnet(subnet("s", "10.6.0.0/16"), nil, []v2beta1.SpiderSubnet{*subnet("t", "10.6.8.0/21")}, nil),
		`spec.subnet: 10.6.0.0/16 overlaps spec.subnet 10.6.8.0/21 of SpiderSubnet "t": SpiderSubnets must not overlap; pick a disjoint subnet`)
	s := subnet("s", "10.6.0.0/16")
	s.Spec.Gateway = ptr.To("fd00::1")
	check(t, ValidateSubnet(s, nil, nil, nil), "spec.gateway: fd00::1 is an IPv6 address in an IPv4 object: use an IPv4 address")
	check(t, ValidateSubnet(subnet("s", "10.6.0.0/33"), nil, nil, nil), `spec.subnet: "10.6.0.0/33" is not a CIDR`)

	d := subnet("s", "10.6.0.0/16", "10.6.0.3", "10.6.0.1-10.6.0.2")
	DefaultSubnet(d)
	if *d.Spec.IPVersion != 4 || strings.Join(d.Spec.IPs, ",") != "10.6.0.1-10.6.0.3" {
		t.Fatalf("defaults: %v %v", *d.Spec.IPVersion, d.Spec.IPs)
	}
}

func TestValidateReservedIP(t *testing.T) {
	r := func(v *int64, ips ...string) *v2beta1.SpiderReservedIP {
		return &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: v2beta1.ReservedIPSpec{IPVersion: v, IPs: ips}}
	}
	check(t, ValidateReservedIP(r(nil, "10.6.0.1", "10.6.0.5-10.6.0.9")), "")
	check(t, ValidateReservedIP(r(nil, "10.6.0.1", "fd00::1")), "spec.ips[1]: fd00::1 is an IPv6 entry in an IPv4 list: use IPv4 addresses only")
	check(t, ValidateReservedIP(r(ptr.To[int64](6), "10.6.0.1")), "spec.ips[0]: 10.6.0.1 is an IPv4 entry in an IPv6 list: use IPv6 addresses only")
	check(t, ValidateReservedIP(r(ptr.To[int64](5))), "spec.ipVersion: 5 is not an IP version: use 4 or 6, or leave it unset")
	check(t, ValidateReservedIP(r(nil, "10.6.0.9-10.6.0.1")), `spec.ips[0]: "10.6.0.9-10.6.0.1" is not an address or range (range is reversed`)

	d := r(nil, "fd00::9", "fd00::8")
	DefaultReservedIP(d)
	if *d.Spec.IPVersion != 6 || strings.Join(d.Spec.IPs, ",") != "fd00::8-fd00::9" {
		t.Fatalf("defaults: %v %v", *d.Spec.IPVersion, d.Spec.IPs)
	}
}

func TestValidateCoordinator(t *testing.T) {
	c := func(name string) *v2beta1.SpiderCoordinator {
		return &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	check(t, ValidateCoordinator(c("default")), "")
	check(t, ValidateCoordinator(c("mine")), `metadata.name: "mine": there is one cluster-wide SpiderCoordinator and it must be named "default"`)

	bad := c("default")
	bad.Spec = v2beta1.CoordinatorSpec{
		Mode:            ptr.To("fancy"),
		PodCIDRType:     ptr.To("flannel"),
		HijackCIDR:      []string{"169.254.0.0/16", "nope"},
		PodMACPrefix:    ptr.To("0b:1b"),
		HostRuleTable:   ptr.To(254),
		PodRPFilter:     ptr.To(3),
		TxQueueLen:      ptr.To(-1),
		VethLinkAddress: ptr.To("10.0.0.1"),
	}
	err := ValidateCoordinator(bad)
	for _, want := range []string{
		`spec.mode: "fancy" is not a mode: use one of auto, underlay, overlay, disabled`,
		`spec.podCIDRType: "flannel" is not a pod CIDR type: use one of auto, cluster, calico, cilium, none`,
		`spec.hijackCIDR[1]: "nope" is not a CIDR`,
		`spec.podMACPrefix: "0b:1b" is a multicast prefix`,
		"spec.hostRuleTable: 254 cannot hold pod routes",
		"spec.podRPFilter: 3 is not an rp_filter value",
		"spec.txQueueLen: -1 is negative",
		`spec.vethLinkAddress: "10.0.0.1" is not an IPv4 link-local address`,
	} {
		check(t, err, want)
	}
	check(t, ValidateCoordinator(&v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v2beta1.CoordinatorSpec{PodMACPrefix: ptr.To("zz")}}),
		`spec.podMACPrefix: "zz" is not a MAC prefix: write two hex bytes such as 0a:1b`)

	d := c("default")
	DefaultCoordinator(d)
	if *d.Spec.Mode != "auto" || *d.Spec.PodCIDRType != "auto" || !*d.Spec.TunePodRoutes || *d.Spec.HostRuleTable != 500 {
		t.Fatalf("defaults not applied: %+v", d.Spec)
	}
	d.Spec.Mode = ptr.To("underlay")
	DefaultCoordinator(d)
	if *d.Spec.Mode != "underlay" {
		t.Fatalf("explicit mode overwritten")
	}
}

func smc(spec v2beta1.MultusCNIConfigSpec) *v2beta1.SpiderMultusConfig {
	return &v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "net"}, Spec: spec}
}

func TestValidateMultusConfig(t *testing.T) {
	pools := PoolFamilies{"v4": ranges.V4, "v6": ranges.V6}
	macvlan := func(c v2beta1.SpiderMacvlanCniConfig) *v2beta1.SpiderMultusConfig {
		return smc(v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &c})
	}
	tests := []struct {
		name     string
		m        *v2beta1.SpiderMultusConfig
		want     string
		warnings string
	}{
		{name: "valid macvlan", m: macvlan(v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}, VlanID: ptr.To[int32](100),
			SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"v4"}, IPv6IPPool: []string{"v6"}}})},
		{name: "unknown cni type", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "flannel"}),
			want: `spec.cniType: "flannel" is not a supported CNI type: use one of macvlan, ipvlan, sriov, ovs, custom`},
		{name: "macvlan without config", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "macvlan"}),
			want: `spec.macvlan: is required when spec.cniType is "macvlan": set spec.macvlan.master to the host interface, e.g. eth1`},
		{name: "config of another type", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "ipvlan", IPVlanConfig: &v2beta1.SpiderIPvlanCniConfig{Master: []string{"eth1"}},
			MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}}}),
			want: `spec.macvlan: is set but spec.cniType is "ipvlan": remove spec.macvlan or set spec.cniType to "macvlan"`},
		{name: "two masters without bond", m: macvlan(v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1", "eth2"}}),
			want: "spec.macvlan.master: lists 2 interfaces but spec.macvlan.bond is not set"},
		{name: "bad interface name", m: macvlan(v2beta1.SpiderMacvlanCniConfig{Master: []string{"a-very-long-interface-name"}}),
			want: `spec.macvlan.master[0]: "a-very-long-interface-name" is not a network interface name`},
		{name: "vlan out of range", m: macvlan(v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}, VlanID: ptr.To[int32](5000)}),
			want: "spec.macvlan.vlanID: 5000 is not a VLAN ID: use 1 to 4094, or 0 for untagged"},
		{name: "v6 pool listed as v4", m: macvlan(v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}, SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"v6"}}}),
			want: `spec.macvlan.ippools.ipv4[0]: SpiderIPPool "v6" is an IPv6 pool: list it under ipv6 instead`},
		{name: "missing pool is a warning", m: macvlan(v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}, SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{"later"}}}),
			warnings: "spec.macvlan.ippools.ipv4[0]: SpiderIPPool later does not exist yet"},
		{name: "sriov needs a resource", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "sriov", SriovConfig: &v2beta1.SpiderSRIOVCniConfig{}}),
			want: `spec.sriov.resourceName: is required when spec.cniType is "sriov"`},
		{name: "ovs needs a bridge", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "ovs"}),
			want: `spec.ovs.bridge: is required when spec.cniType is "ovs"`},
		{name: "custom must be JSON", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "custom", CustomCNIConfig: ptr.To("{not json")}),
			want: "spec.customCNI: is not a JSON object"},
		{name: "custom needs type or plugins", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "custom", CustomCNIConfig: ptr.To(`{"cniVersion":"1.0.0"}`)}),
			want: `spec.customCNI: has neither "type" nor "plugins"`},
		{name: "valid custom", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "custom", CustomCNIConfig: ptr.To(`{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}`)})},
		{name: "chained plugin without type", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}}, ChainCNIJsonData: []string{`{"mtu":1400}`}}),
			want: `spec.chainCNIJsonData[0]: has no "type"`},
		{name: "coordinator override checked", m: smc(v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}}, CoordinatorConfig: &v2beta1.CoordinatorSpec{Mode: ptr.To("x")}}),
			want: `spec.coordinator.mode: "x" is not a mode`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ValidateMultusConfig(tt.m, pools)
			check(t, err, tt.want)
			if got := strings.Join(w, "\n"); !strings.Contains(got, tt.warnings) {
				t.Fatalf("warnings %q, want %q", got, tt.warnings)
			}
		})
	}
	bad := smc(v2beta1.MultusCNIConfigSpec{CniType: "macvlan", MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{Master: []string{"eth1"}}})
	bad.Annotations = map[string]string{v2beta1.AnnoMultusCRName: "Bad_Name", v2beta1.AnnoMultusCNIVersion: "9.9"}
	_, err := ValidateMultusConfig(bad, pools)
	check(t, err, `metadata.annotations[multus.spidernet.io/cr-name]: "Bad_Name" is not a valid object name`)
	check(t, err, `metadata.annotations[multus.spidernet.io/cni-version]: "9.9" is not a CNI version`)

	d := smc(v2beta1.MultusCNIConfigSpec{CniType: "macvlan"})
	DefaultMultusConfig(d)
	if !*d.Spec.EnableCoordinator || *d.Spec.DisableIPAM {
		t.Fatalf("defaults: %v %v", *d.Spec.EnableCoordinator, *d.Spec.DisableIPAM)
	}
}

func FuzzValidateMultusConfig(f *testing.F) {
	f.Add("macvlan", "eth1", int32(100), `{"type":"tuning"}`, "v4", "auto", "0a:1b")
	f.Add("custom", "", int32(0), `{"plugins":[]}`, "", "", "")
	f.Add("ovs", "br1", int32(-1), `[]`, "v6", "x", "zz:zz")
	f.Fuzz(func(t *testing.T, typ, master string, vlan int32, chain, pool, mode, mac string) {
		m := smc(v2beta1.MultusCNIConfigSpec{
			CniType:           typ,
			MacvlanConfig:     &v2beta1.SpiderMacvlanCniConfig{Master: []string{master}, VlanID: &vlan, SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{pool}}},
			OvsConfig:         &v2beta1.SpiderOvsCniConfig{BrName: master, VLAN: &vlan, Trunk: []*v2beta1.Trunk{nil, {}}},
			SriovConfig:       &v2beta1.SpiderSRIOVCniConfig{ResourceName: master, VlanID: &vlan},
			CustomCNIConfig:   &chain,
			ChainCNIJsonData:  []string{chain},
			CoordinatorConfig: &v2beta1.CoordinatorSpec{Mode: &mode, PodMACPrefix: &mac},
		})
		_, _ = ValidateMultusConfig(m, PoolFamilies{"v4": ranges.V4})
	})
}

func FuzzValidateSubnet(f *testing.F) {
	f.Add("10.6.0.0/16", "10.6.0.1-10.6.0.3", "10.6.0.1", "10.6.0.0/24")
	f.Add("fd00::/120", "fd00::1", "x", "::/0")
	f.Fuzz(func(t *testing.T, cidr, ips, gw, other string) {
		s := subnet("s", cidr, strings.Split(ips, ",")...)
		s.Spec.Gateway = &gw
		s.Spec.Routes = []v2beta1.Route{{Dst: other, Gw: gw}}
		_ = ValidateSubnet(s, subnet("s", other), []v2beta1.SpiderSubnet{*subnet("t", other)}, nil)
		DefaultSubnet(s)
	})
}

func FuzzValidateReservedIP(f *testing.F) {
	f.Add("10.6.0.1,10.6.0.5-10.6.0.9", int64(4))
	f.Add("fd00::1-fd00::0", int64(7))
	f.Fuzz(func(t *testing.T, ips string, v int64) {
		r := &v2beta1.SpiderReservedIP{Spec: v2beta1.ReservedIPSpec{IPs: strings.Split(ips, ","), IPVersion: &v}}
		_ = ValidateReservedIP(r)
		r.Spec.IPVersion = nil
		_ = ValidateReservedIP(r)
		DefaultReservedIP(r)
	})
}

func FuzzValidateCoordinator(f *testing.F) {
	f.Add("default", "auto", "cluster", "169.254.0.0/16", "0a:1b", 500, 0, "169.254.1.1", "eth0")
	f.Fuzz(func(t *testing.T, name, mode, podType, hijack, mac string, table, rp int, veth, nic string) {
		c := &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.CoordinatorSpec{
			Mode: &mode, PodCIDRType: &podType, HijackCIDR: []string{hijack}, PodMACPrefix: &mac,
			HostRuleTable: &table, PodRPFilter: &rp, VethLinkAddress: &veth, PodDefaultRouteNIC: &nic,
		}}
		_ = ValidateCoordinator(c)
	})
}

// A subnet and its pools: the pools' addresses stay inside what the subnet
// gives, whichever is created or changed.
func TestSubnetAndItsPools(t *testing.T) {
	team := subnet("team", "10.6.0.0/16", "10.6.1.0-10.6.1.255")
	inside, outside := pool("a", "10.6.0.0/16", "10.6.1.10-10.6.1.19"), pool("b", "10.6.0.0/16", "10.6.2.1-10.6.2.2")
	elsewhere := pool("c", "10.7.0.0/16", "10.7.2.1")
	subs := []v2beta1.SpiderSubnet{*team}
	check(t, ValidateIPPool(inside, PoolState{Subnets: subs}), "")
	check(t, ValidateIPPool(elsewhere, PoolState{Subnets: subs}), "")
	check(t, ValidateIPPool(outside, PoolState{Subnets: subs}),
		`spec.ips: 10.6.2.1-10.6.2.2 are not given to pools by SpiderSubnet "team" (its spec.ips minus spec.excludeIPs and spec.gateway): remove them from the pool, or add them to the subnet`)

	// A subnet created after its pools must contain them.
	check(t, ValidateSubnet(team, nil, nil, []v2beta1.SpiderIPPool{*inside, *elsewhere}), "")
	check(t, ValidateSubnet(team, nil, nil, []v2beta1.SpiderIPPool{*inside, *outside}),
		`spec.ips: 10.6.2.1-10.6.2.2 are used by SpiderIPPool "b" and would no longer be given to pools by this subnet`)
	// Excluding an address a pool uses is refused.
	narrowed := team.DeepCopy()
	narrowed.Spec.ExcludeIPs = []string{"10.6.1.15"}
	check(t, ValidateSubnet(narrowed, team, nil, []v2beta1.SpiderIPPool{*inside}),
		`spec.excludeIPs: 10.6.1.15 are used by SpiderIPPool "a"`)
	narrowed.Spec.ExcludeIPs = []string{"10.6.1.200"}
	check(t, ValidateSubnet(narrowed, team, nil, []v2beta1.SpiderIPPool{*inside}), "")
}
