package webhook

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func pool(name, subnet string, ips ...string) *v2beta1.SpiderIPPool {
	return &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v2beta1.IPPoolSpec{Subnet: subnet, IPs: ips},
	}
}

func claim(pool, addr, ns, pod string) v2beta1.SpiderIPClaim {
	return v2beta1.SpiderIPClaim{
		ObjectMeta: metav1.ObjectMeta{Name: addr, Labels: map[string]string{v2beta1.LabelPool: pool}},
		Spec:       v2beta1.IPClaimSpec{Pool: pool, Address: addr, PodNamespace: ns, PodName: pod, PodUID: "uid-" + pod, Interface: "net1"},
	}
}

func TestValidateIPPool(t *testing.T) {
	tests := []struct {
		name  string
		pool  func() *v2beta1.SpiderIPPool
		state PoolState
		want  string // "" means valid
	}{
		{
			name: "valid v4 pool with gateway and routes",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20", "10.6.1.1")
				p.Spec.Gateway = ptr.To("10.6.0.1")
				p.Spec.Routes = []v2beta1.Route{{Dst: "10.7.0.0/16", Gw: "10.6.0.254"}}
				return p
			},
		},
		{
			name: "valid v6 pool",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "fd00:6::/64", "fd00:6::10-fd00:6::20") },
		},
		{
			name: "subnet not a CIDR",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0") },
			want: `spec.subnet: "10.6.0.0" is not a CIDR: write an address and a prefix length, e.g. 10.6.0.0/16 or fd00:6::/64`,
		},
		{
			name: "ip outside subnet",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.2", "10.6.0.3", "10.7.0.5") },
			want: "spec.ips[2]: 10.7.0.5 is outside spec.subnet 10.6.0.0/16: move it into the subnet or widen the subnet",
		},
		{
			name: "range crossing the subnet boundary",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/24", "10.6.0.250-10.6.1.5") },
			want: "spec.ips[0]: 10.6.0.250-10.6.1.5 is outside spec.subnet 10.6.0.0/24: move it into the subnet or widen the subnet",
		},
		{
			name: "malformed ip entry",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.x") },
			want: `spec.ips[0]: "10.6.0.x" is not an address or range`,
		},
		{
			name: "reversed range",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.9-10.6.0.1") },
			want: "range is reversed",
		},
		{
			name: "wrong family entry",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "fd00::5") },
			want: "spec.ips[0]: fd00::5 is an IPv6 entry in an IPv4 list: use IPv4 addresses only",
		},
		{
			name: "excludeIPs outside subnet",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16", "10.6.0.10")
				p.Spec.ExcludeIPs = []string{"10.9.0.1"}
				return p
			},
			want: "spec.excludeIPs[0]: 10.9.0.1 is outside spec.subnet 10.6.0.0/16: move it into the subnet or widen the subnet",
		},
		{
			name: "gateway outside subnet",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16", "10.6.0.10")
				p.Spec.Gateway = ptr.To("10.7.0.1")
				return p
			},
			want: "spec.gateway: 10.7.0.1 is outside spec.subnet 10.6.0.0/16: use an address of the subnet as gateway",
		},
		{
			name: "ipVersion contradicts subnet",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16")
				p.Spec.IPVersion = ptr.To[int64](6)
				return p
			},
			want: "spec.ipVersion: 6 does not match spec.subnet 10.6.0.0/16 (IPv4): set it to 4 or leave it unset",
		},
		{
			name: "route gateway outside subnet",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16")
				p.Spec.Routes = []v2beta1.Route{{Dst: "10.8.0.0/16", Gw: "10.9.0.1"}}
				return p
			},
			want: "spec.routes[0].gw: 10.9.0.1 is outside spec.subnet 10.6.0.0/16: the next hop must be reachable on the pool's subnet; use an address of the subnet",
		},
		{
			name: "route destination of the other family",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16")
				p.Spec.Routes = []v2beta1.Route{{Dst: "fd00::/8", Gw: "10.6.0.1"}}
				return p
			},
			want: "spec.routes[0].dst: fd00::/8 is an IPv6 destination in an IPv4 object: use an IPv4 CIDR",
		},
		{
			name: "default route next to a gateway",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16")
				p.Spec.Gateway = ptr.To("10.6.0.1")
				p.Spec.Routes = []v2beta1.Route{{Dst: "0.0.0.0/0", Gw: "10.6.0.2"}}
				return p
			},
			want: "spec.routes[0].dst: 0.0.0.0/0 is a default route, but spec.gateway already provides one: remove this route or unset spec.gateway",
		},
		{
			name: "empty pod affinity",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16")
				p.Spec.PodAffinity = &metav1.LabelSelector{}
				return p
			},
			want: "spec.podAffinity: an empty selector matches every pod: add matchLabels or matchExpressions, or remove spec.podAffinity",
		},
		{
			name: "empty node affinity",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16")
				p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{}}
				return p
			},
			want: "spec.nodeAffinity: an empty selector matches every node: add matchLabels or matchExpressions, or remove spec.nodeAffinity",
		},
		{
			name: "malformed selector",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16")
				p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}
				return p
			},
			want: "spec.namespaceAffinity: invalid selector",
		},
		{
			name:  "subnet is immutable",
			pool:  func() *v2beta1.SpiderIPPool { return pool("a", "10.7.0.0/16") },
			state: PoolState{Old: pool("a", "10.6.0.0/16")},
			want:  "spec.subnet: changing the subnet from 10.6.0.0/16 to 10.7.0.0/16 is not allowed: create a new pool with the new subnet and move the workloads to it",
		},
		{
			name:  "host bits in the subnet are the same subnet",
			pool:  func() *v2beta1.SpiderIPPool { return pool("a", "10.6.1.0/16", "10.6.0.5") },
			state: PoolState{Old: pool("a", "10.6.0.0/16")},
		},
		{
			name:  "address shared with another pool",
			pool:  func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20") },
			state: PoolState{Others: []v2beta1.SpiderIPPool{*pool("b", "10.6.0.0/16", "10.6.0.15-10.6.0.30")}},
			want:  `spec.ips: 10.6.0.15-10.6.0.20 already belong to SpiderIPPool "b": an address can be in one pool only; remove them from spec.ips or add them to spec.excludeIPs`,
		},
		{
			name: "shared address excluded in one pool is fine",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20")
				p.Spec.ExcludeIPs = []string{"10.6.0.15-10.6.0.20"}
				return p
			},
			state: PoolState{Others: []v2beta1.SpiderIPPool{*pool("b", "10.6.0.0/16", "10.6.0.15-10.6.0.30")}},
		},
		{
			name:  "same addresses in pools of the other family do not clash",
			pool:  func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.10") },
			state: PoolState{Others: []v2beta1.SpiderIPPool{*pool("b", "fd00::/64", "fd00::a")}},
		},
		{
			name:  "partially overlapping subnets",
			pool:  func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.10") },
			state: PoolState{Others: []v2beta1.SpiderIPPool{*pool("b", "10.6.1.0/24", "10.6.1.10")}},
			want:  `spec.subnet: 10.6.0.0/16 overlaps spec.subnet 10.6.1.0/24 of SpiderIPPool "b": pools whose subnets overlap must use exactly the same subnet; use 10.6.1.0/24 or a subnet that does not overlap`,
		},
		{
			name: "removing an allocated address",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.14") },
			state: PoolState{
				Old:    pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20"),
				Claims: []v2beta1.SpiderIPClaim{claim("a", "10.6.0.11", "default", "web-0"), claim("a", "10.6.0.17", "default", "web-1")},
			},
			want: "spec.ips: 10.6.0.17 is allocated to pod default/web-1 (interface net1) and cannot be removed from the pool: delete the pod (or wait until it is gone) first, or keep the address in the pool",
		},
		{
			name: "excluding an allocated address",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20")
				p.Spec.ExcludeIPs = []string{"10.6.0.11"}
				return p
			},
			state: PoolState{
				Old:    pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20"),
				Claims: []v2beta1.SpiderIPClaim{claim("a", "10.6.0.11", "ns1", "db")},
			},
			want: "spec.excludeIPs: 10.6.0.11 is allocated to pod ns1/db (interface net1) and cannot be removed from the pool",
		},
		{
			name: "making an allocated address the gateway",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20")
				p.Spec.Gateway = ptr.To("10.6.0.10")
				return p
			},
			state: PoolState{
				Old:    pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20"),
				Claims: []v2beta1.SpiderIPClaim{claim("a", "10.6.0.10", "ns1", "db")},
			},
			want: "spec.gateway: 10.6.0.10 is allocated to pod ns1/db",
		},
		{
			name: "claims of other pools are ignored",
			pool: func() *v2beta1.SpiderIPPool { return pool("a", "10.6.0.0/16", "10.6.0.10") },
			state: PoolState{
				Old:    pool("a", "10.6.0.0/16", "10.6.0.10-10.6.0.20"),
				Claims: []v2beta1.SpiderIPClaim{claim("b", "10.6.0.11", "ns1", "db")},
			},
		},
		{
			name: "several errors are all reported",
			pool: func() *v2beta1.SpiderIPPool {
				p := pool("a", "10.6.0.0/16", "10.7.0.1")
				p.Spec.Gateway = ptr.To("10.8.0.1")
				return p
			},
			want: "spec.ips[0]: 10.7.0.1 is outside spec.subnet 10.6.0.0/16: move it into the subnet or widen the subnet; spec.gateway: 10.8.0.1 is outside",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateIPPool(tt.pool(), tt.state)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got none", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error mismatch\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestDefaultIPPool(t *testing.T) {
	p := pool("a", "fd00:6::/64", "fd00:6::20", "fd00:6::10-fd00:6::1f", "fd00:6::30")
	p.Spec.ExcludeIPs = []string{"fd00:6::12", "fd00:6::11"}
	DefaultIPPool(p)
	if p.Spec.IPVersion == nil || *p.Spec.IPVersion != 6 {
		t.Fatalf("ipVersion = %v, want 6", p.Spec.IPVersion)
	}
	if got, want := strings.Join(p.Spec.IPs, ","), "fd00:6::10-fd00:6::20,fd00:6::30"; got != want {
		t.Fatalf("ips = %s, want %s", got, want)
	}
	if got, want := strings.Join(p.Spec.ExcludeIPs, ","), "fd00:6::11-fd00:6::12"; got != want {
		t.Fatalf("excludeIPs = %s, want %s", got, want)
	}
	if p.Spec.Default == nil || *p.Spec.Default || p.Spec.Disable == nil || *p.Spec.Disable {
		t.Fatalf("default/disable not defaulted to false: %v %v", p.Spec.Default, p.Spec.Disable)
	}

	// Invalid entries are left for the validator to report by index.
	bad := pool("b", "10.6.0.0/16", "10.6.0.9", "nonsense")
	DefaultIPPool(bad)
	if got := strings.Join(bad.Spec.IPs, ","); got != "10.6.0.9,nonsense" {
		t.Fatalf("invalid ips rewritten: %s", got)
	}
	// Entries outside the subnet are left for the validator too.
	out := pool("o", "10.6.0.0/16", "10.6.0.2", "10.6.0.3", "10.7.0.5")
	DefaultIPPool(out)
	if got := strings.Join(out.Spec.IPs, ","); got != "10.6.0.2,10.6.0.3,10.7.0.5" {
		t.Fatalf("ips with an outside entry rewritten: %s", got)
	}
	// An explicit ipVersion is kept (the validator rejects a mismatch).
	v := pool("c", "10.6.0.0/16")
	v.Spec.IPVersion = ptr.To[int64](6)
	DefaultIPPool(v)
	if *v.Spec.IPVersion != 6 {
		t.Fatalf("explicit ipVersion overwritten")
	}
}

func FuzzValidateIPPool(f *testing.F) {
	f.Add("10.6.0.0/16", "10.6.0.1-10.6.0.9", "10.6.0.3", "10.6.0.1", "10.7.0.0/16", "10.6.0.254", "10.6.0.0/24", "10.6.0.5")
	f.Add("fd00::/64", "fd00::1-fd00::9", "fd00::3", "fd00::1", "::/0", "fd00::fe", "fd00::/48", "fd00::2")
	f.Add("bogus", "x-y", "", "", "", "", "", "")
	f.Add("0.0.0.0/0", "0.0.0.0-255.255.255.255", "1.1.1.1", "1.1.1.1", "0.0.0.0/0", "1.1.1.1", "::/0", "1.1.1.1")
	f.Fuzz(func(t *testing.T, subnet, ips, excl, gw, rdst, rgw, otherSubnet, claimAddr string) {
		p := pool("a", subnet, strings.Split(ips, ",")...)
		p.Spec.ExcludeIPs = strings.Split(excl, ",")
		p.Spec.Gateway = &gw
		p.Spec.Routes = []v2beta1.Route{{Dst: rdst, Gw: rgw}}
		other := pool("b", otherSubnet, strings.Split(ips, ",")...)
		st := PoolState{Old: pool("a", otherSubnet), Others: []v2beta1.SpiderIPPool{*other}, Claims: []v2beta1.SpiderIPClaim{claim("a", claimAddr, "ns", "p")}}
		err := ValidateIPPool(p, st)
		if err != nil && err.Error() == "" {
			t.Fatalf("empty error message")
		}
		DefaultIPPool(p)
	})
}

// BenchmarkValidateIPPool measures the admission of a pool in a cluster with
// 1000 pools of the same subnet (the overlap check parses every other pool).
func BenchmarkValidateIPPool(b *testing.B) {
	others := make([]v2beta1.SpiderIPPool, 1000)
	for i := range others {
		others[i] = *pool(fmt.Sprintf("p%d", i), "10.0.0.0/8", fmt.Sprintf("10.%d.%d.1-10.%d.%d.200", i/250, i%250, i/250, i%250))
	}
	p := pool("new", "10.0.0.0/8", "10.200.0.1-10.200.0.200")
	st := PoolState{Old: p, Others: others}
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateIPPool(p, st); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidateIPPoolDNS(t *testing.T) {
	p := pool("a", "10.6.0.0/16", "10.6.0.1-10.6.0.9")
	p.Spec.DNS = &v2beta1.DNS{Nameservers: []string{"10.96.0.10", "fd00::10"}, Search: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}}
	if err := ValidateIPPool(p, PoolState{}); err != nil {
		t.Fatalf("valid dns refused: %v", err)
	}
	p.Spec.DNS = &v2beta1.DNS{Nameservers: []string{"dns.example"}, Search: []string{"a b"}}
	err := ValidateIPPool(p, PoolState{})
	if err == nil || !strings.Contains(err.Error(), `spec.dns.nameservers[0]: "dns.example" is not an IP address`) || !strings.Contains(err.Error(), `spec.dns.search[0]: "a b" is not a domain name`) {
		t.Fatalf("invalid dns: %v", err)
	}
}
