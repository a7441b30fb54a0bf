package subnets

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/ranges"
)

func subnet(cidr string, ips ...string) *v2beta1.SpiderSubnet {
	s := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "team", UID: "s-uid"}, Spec: v2beta1.SubnetSpec{Subnet: cidr, IPs: ips}}
	return s
}

func pool(name, cidr string, ips ...string) *v2beta1.SpiderIPPool {
	return &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: cidr, IPs: ips}}
}

func TestCIDRLabel(t *testing.T) {
	for in, want := range map[string]string{"10.244.0.0/16": "10-244-0-0-16", "fd00:10::/64": "fd00-10---64", "10.244.1.7/16": "10-244-0-0-16"} {
		if got := CIDRLabel(netip.MustParsePrefix(in)); got != want {
			t.Errorf("CIDRLabel(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	gw := "10.6.0.1"
	s := subnet("10.6.0.0/24", "10.6.0.1-10.6.0.100")
	s.Spec.ExcludeIPs = []string{"10.6.0.50-10.6.0.59"}
	s.Spec.Gateway = &gw
	l, err := Parse(s)
	if err != nil || l.Usable.Count() != 89 {
		t.Fatalf("usable %v (%d), err %v; want 100 - 10 excluded - gateway = 89", l.Usable.Strings(), l.Usable.Count(), err)
	}
	whole, err := Parse(subnet("10.7.0.0/28"))
	if err != nil || whole.Usable.Count() != 16 {
		t.Fatalf("a subnet without ips gives its whole prefix: %v %v", whole, err)
	}
	v6, err := Parse(subnet("fd00:7::/120"))
	if err != nil || v6.Usable.Count() != 256 {
		t.Fatalf("IPv6 /120 without ips: %v %v", v6, err)
	}
	if _, err := Parse(subnet("10.8.0.0/24", "10.9.0.1")); err == nil {
		t.Fatal("ips outside the subnet accepted")
	}
}

func TestAdoptSetsOwnerLabelAndInheritsOnlyWhatThePoolLeavesUnset(t *testing.T) {
	gw := "10.6.0.1"
	s := subnet("10.6.0.0/24", "10.6.0.2-10.6.0.100")
	s.Spec.Gateway = &gw
	s.Spec.Routes = []v2beta1.Route{{Dst: "10.9.0.0/16", Gw: "10.6.0.254"}}
	p := pool("a", "10.6.0.0/24", "10.6.0.10-10.6.0.19")
	if !Adopt(p, s) {
		t.Fatal("Adopt changed nothing")
	}
	if p.Labels[LabelSubnetCIDR] != "10-6-0-0-24" || *p.Spec.Gateway != gw || len(p.Spec.Routes) != 1 {
		t.Fatalf("pool after Adopt: labels %v gateway %v routes %v", p.Labels, p.Spec.Gateway, p.Spec.Routes)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.Kind != "SpiderSubnet" || ref.Name != "team" || ref.UID != "s-uid" {
		t.Fatalf("owner references %+v", p.OwnerReferences)
	}
	if Adopt(p, s) {
		t.Fatal("Adopt is not idempotent")
	}
	own := "10.6.0.254"
	q := pool("b", "10.6.0.0/24", "10.6.0.20")
	q.Spec.Gateway = &own
	Adopt(q, s)
	if *q.Spec.Gateway != own {
		t.Fatalf("a pool's own gateway was replaced by the subnet's: %s", *q.Spec.Gateway)
	}
}

func TestStatusCountsWhatThePoolsTake(t *testing.T) {
	l, err := Parse(subnet("10.6.0.0/24", "10.6.0.1-10.6.0.100"))
	if err != nil {
		t.Fatal(err)
	}
	a := pool("a", "10.6.0.0/24", "10.6.0.10-10.6.0.19")
	b := pool("b", "10.6.0.0/24", "10.6.0.95-10.6.0.110") // 6 of them outside
	st := Status(l, []*v2beta1.SpiderIPPool{a, b})
	if *st.TotalIPCount != 100 || *st.AllocatedIPCount != 16 {
		t.Fatalf("total %d allocated %d, want 100 and 16", *st.TotalIPCount, *st.AllocatedIPCount)
	}
	if want := `{"a":{"ips":["10.6.0.10-10.6.0.19"]},"b":{"ips":["10.6.0.95-10.6.0.100"]}}`; *st.ControlledIPPools != want {
		t.Fatalf("controlledIPPools %s, want %s", *st.ControlledIPPools, want)
	}
	if out, _ := Outside(l, b); out.Count() != 10 {
		t.Fatalf("outside %v", out.Strings())
	}
	empty := Status(l, nil)
	if *empty.AllocatedIPCount != 0 || empty.ControlledIPPools != nil {
		t.Fatalf("a subnet without pools: %+v", empty)
	}
}

func TestOf(t *testing.T) {
	subs := []v2beta1.SpiderSubnet{*subnet("10.6.0.0/24"), *subnet("fd00:6::/64")}
	if s := Of(pool("a", "10.6.0.0/24"), subs); s == nil || s.Spec.Subnet != "10.6.0.0/24" {
		t.Fatalf("Of = %v", s)
	}
	if s := Of(pool("a", "10.6.0.0/16"), subs); s != nil {
		t.Fatalf("a pool of another prefix belongs to %v", s)
	}
}

func TestShadowingAndOfPickTheFirstCreatedOfOverlappingSubnets(t *testing.T) {
	t0 := metav1.Now()
	t1 := metav1.NewTime(t0.Add(time.Second))
	mk := func(name, cidr string, at metav1.Time) v2beta1.SpiderSubnet {
		s := *subnet(cidr)
		s.Name, s.CreationTimestamp = name, at
		return s
	}
	first, twin, wider, later, elsewhere := mk("a", "10.6.0.0/24", t0), mk("b", "10.6.0.0/24", t0), mk("c", "10.6.0.0/16", t1), mk("d", "10.6.0.0/24", t1), mk("e", "10.7.0.0/24", t0)
	all := []v2beta1.SpiderSubnet{later, wider, twin, first, elsewhere}
	for _, tc := range []struct {
		s    v2beta1.SpiderSubnet
		want string
	}{{first, ""}, {twin, "a"}, {wider, "a"}, {later, "a"}, {elsewhere, ""}} {
		got := ""
		if o := Shadowing(&tc.s, all); o != nil {
			got = o.Name
		}
		if got != tc.want {
			t.Errorf("Shadowing(%s) = %q, want %q", tc.s.Name, got, tc.want)
		}
	}
	if s := Of(pool("p", "10.6.0.0/24"), all); s == nil || s.Name != "a" {
		t.Fatalf("Of = %v, want the first created", s)
	}
	deleting := first
	deleting.DeletionTimestamp = &t1
	if o := Shadowing(&twin, []v2beta1.SpiderSubnet{deleting, twin}); o != nil {
		t.Fatalf("a subnet being deleted shadows %s", o.Name)
	}
}

func set(t *testing.T, entries ...string) ranges.Set {
	t.Helper()
	s, err := ranges.ParseSet("test", entries, ranges.V4, netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCarve(t *testing.T) {
	usable := set(t, "10.6.1.1-10.6.1.20")
	taken := set(t, "10.6.1.1-10.6.1.3", "10.6.1.6")
	for _, tc := range []struct {
		name       string
		have, held []string
		want       int
		ips        string
		short      int
	}{
		{"new pool takes the lowest free addresses", nil, nil, 3, "[10.6.1.4-10.6.1.5 10.6.1.7]", 0},
		{"grows by the lowest free", []string{"10.6.1.10-10.6.1.11"}, nil, 4, "[10.6.1.4-10.6.1.5 10.6.1.10-10.6.1.11]", 0},
		{"shrinks by its highest unheld", []string{"10.6.1.10-10.6.1.14"}, []string{"10.6.1.14"}, 3, "[10.6.1.10-10.6.1.11 10.6.1.14]", 0},
		{"never drops held addresses", []string{"10.6.1.10-10.6.1.12"}, []string{"10.6.1.10-10.6.1.12"}, 1, "[10.6.1.10-10.6.1.12]", 0},
		{"a full subnet leaves it short", []string{"10.6.1.7-10.6.1.20"}, nil, 20, "[10.6.1.4-10.6.1.5 10.6.1.7-10.6.1.20]", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var have, held ranges.Set
			if tc.have != nil {
				have = set(t, tc.have...)
			}
			if tc.held != nil {
				held = set(t, tc.held...)
			}
			ips, short := Carve(usable, taken, have, held, tc.want)
			if got := fmt.Sprint(ips.Strings()); got != tc.ips || short != tc.short {
				t.Fatalf("Carve = %s short %d, want %s short %d", got, short, tc.ips, tc.short)
			}
		})
	}
}

func TestAutoPoolName(t *testing.T) {
	a := App{Kind: "Deployment", Namespace: "kube-system", Name: "demo-deploy-subnet"}
	n4, n6 := AutoPoolName(a, "eth0", ranges.V4), AutoPoolName(a, "eth0", ranges.V6)
	if !strings.HasPrefix(n4, "auto4-demo-deploy-subnet-eth0-") || len(n4) != len("auto4-demo-deploy-subnet-eth0-")+5 || n6[4] != '6' {
		t.Fatalf("names %s %s", n4, n6)
	}
	b := a
	b.UID = "another incarnation"
	if AutoPoolName(b, "eth0", ranges.V4) != n4 || AutoPoolName(a, "net1", ranges.V4) == n4 {
		t.Fatal("the name must depend on kind, namespace, name and interface only")
	}
}
