package ranges

import (
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
)

func mustSet(t testing.TB, entries ...string) Set {
	t.Helper()
	rs := make([]Range, 0, len(entries))
	for _, e := range entries {
		r, err := ParseRange(e)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", e, err)
		}
		rs = append(rs, r)
	}
	return NewSet(rs...)
}

func TestParseRange(t *testing.T) {
	good := map[string]string{
		"10.6.0.5":                "10.6.0.5",
		"10.6.0.5-10.6.0.9":       "10.6.0.5-10.6.0.9",
		" 10.6.0.5 - 10.6.0.9 ":   "10.6.0.5-10.6.0.9",
		"10.6.0.5-10.6.0.5":       "10.6.0.5",
		"fd00::1-fd00::ff":        "fd00::1-fd00::ff",
		"FD00::A":                 "fd00::a",
		"::ffff:10.0.0.1":         "::ffff:10.0.0.1",
		"0.0.0.0-255.255.255.255": "0.0.0.0-255.255.255.255",
		"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	}
	for in, want := range good {
		r, err := ParseRange(in)
		if err != nil {
			t.Errorf("ParseRange(%q): %v", in, err)
			continue
		}
		if r.String() != want {
			t.Errorf("ParseRange(%q) = %s, want %s", in, r, want)
		}
	}
	bad := map[string]string{
		"":                           "empty address",
		"10.6.0.9-10.6.0.5":          "reversed",
		"10.6.0.5-fd00::1":           "mixes IPv4 and IPv6",
		"10.6.0.0/24":                "ParseAddr",
		"10.6.0.5-":                  "empty address",
		"-10.6.0.5":                  "empty address",
		"10.6.0.5-10.6.0.6-10.6.0.7": "ParseAddr",
		"fe80::1%eth0":               "zone",
		"10.6.0.256":                 "ParseAddr",
	}
	for in, want := range bad {
		_, err := ParseRange(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseRange(%q) error = %v, want it to mention %q", in, err, want)
		}
	}
}

func TestNewSetMergesAndSorts(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{nil, []string{}},
		{[]string{"10.0.0.5", "10.0.0.1-10.0.0.3"}, []string{"10.0.0.1-10.0.0.3", "10.0.0.5"}},
		{[]string{"10.0.0.4", "10.0.0.1-10.0.0.3"}, []string{"10.0.0.1-10.0.0.4"}},          // adjacent
		{[]string{"10.0.0.1-10.0.0.9", "10.0.0.3-10.0.0.4"}, []string{"10.0.0.1-10.0.0.9"}}, // contained
		{[]string{"10.0.0.1-10.0.0.5", "10.0.0.3-10.0.0.8"}, []string{"10.0.0.1-10.0.0.8"}}, // overlap
		{[]string{"10.0.0.7", "10.0.0.7"}, []string{"10.0.0.7"}},
		{[]string{"255.255.255.254-255.255.255.255", "0.0.0.0", "255.255.255.250-255.255.255.253"}, []string{"0.0.0.0", "255.255.255.250-255.255.255.255"}},
		{[]string{"fd00::ff", "fd00::1-fd00::fe"}, []string{"fd00::1-fd00::ff"}},
	}
	for _, tt := range tests {
		got := mustSet(t, tt.in...).Strings()
		if !slices.Equal(got, tt.want) {
			t.Errorf("NewSet(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewSetPanicsOnMixedFamilies(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewSet with mixed families did not panic")
		}
	}()
	NewSet(Range{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.1")}, Range{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::1")})
}

func TestSubtract(t *testing.T) {
	tests := []struct {
		a, b, want []string
	}{
		{[]string{"10.0.0.1-10.0.0.10"}, nil, []string{"10.0.0.1-10.0.0.10"}},
		{[]string{"10.0.0.1-10.0.0.10"}, []string{"10.0.0.1-10.0.0.10"}, []string{}},
		{[]string{"10.0.0.1-10.0.0.10"}, []string{"10.0.0.0-10.0.0.255"}, []string{}},
		{[]string{"10.0.0.1-10.0.0.10"}, []string{"10.0.0.5"}, []string{"10.0.0.1-10.0.0.4", "10.0.0.6-10.0.0.10"}},
		{[]string{"10.0.0.1-10.0.0.10"}, []string{"10.0.0.1", "10.0.0.10"}, []string{"10.0.0.2-10.0.0.9"}},
		{[]string{"10.0.0.1-10.0.0.10"}, []string{"10.0.0.0-10.0.0.2", "10.0.0.4-10.0.0.5", "10.0.0.9-10.0.0.20"}, []string{"10.0.0.3", "10.0.0.6-10.0.0.8"}},
		{[]string{"10.0.0.1-10.0.0.3", "10.0.0.7-10.0.0.9"}, []string{"10.0.0.2-10.0.0.8"}, []string{"10.0.0.1", "10.0.0.9"}},
		{[]string{"10.0.0.1-10.0.0.3", "10.0.0.7-10.0.0.9"}, []string{"10.0.0.4-10.0.0.6"}, []string{"10.0.0.1-10.0.0.3", "10.0.0.7-10.0.0.9"}},
		{[]string{"0.0.0.0-255.255.255.255"}, []string{"0.0.0.0", "255.255.255.255"}, []string{"0.0.0.1-255.255.255.254"}},
		{[]string{"fd00::1-fd00::10"}, []string{"fd00::8"}, []string{"fd00::1-fd00::7", "fd00::9-fd00::10"}},
		// Another family subtracts nothing.
		{[]string{"10.0.0.1-10.0.0.3"}, []string{"fd00::1-fd00::ff"}, []string{"10.0.0.1-10.0.0.3"}},
	}
	for _, tt := range tests {
		got := mustSet(t, tt.a...).Subtract(mustSet(t, tt.b...)).Strings()
		if !slices.Equal(got, tt.want) {
			t.Errorf("%v - %v = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestCount(t *testing.T) {
	tests := []struct {
		in   []string
		want uint64
		big  string
	}{
		{nil, 0, "0"},
		{[]string{"10.0.0.1"}, 1, "1"},
		{[]string{"10.244.100.0-10.244.200.1"}, 25602, "25602"}, // the Calico quick start pool
		{[]string{"0.0.0.0-255.255.255.255"}, 1 << 32, "4294967296"},
		{[]string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, math.MaxUint64, "18446744073709551616"}, // a /64 saturates
		{[]string{"fd00::-fd00::ffff:ffff:ffff:fffe"}, math.MaxUint64, "18446744073709551615"},
		{[]string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, math.MaxUint64, new(big.Int).Lsh(big.NewInt(1), 128).String()},
	}
	for _, tt := range tests {
		s := mustSet(t, tt.in...)
		if got := s.Count(); got != tt.want {
			t.Errorf("Count(%v) = %d, want %d", tt.in, got, tt.want)
		}
		if got := s.BigCount().String(); got != tt.big {
			t.Errorf("BigCount(%v) = %s, want %s", tt.in, got, tt.big)
		}
	}
}

func TestContains(t *testing.T) {
	s := mustSet(t, "10.0.0.1-10.0.0.3", "10.0.0.7")
	for addr, want := range map[string]bool{
		"10.0.0.0": false, "10.0.0.1": true, "10.0.0.3": true, "10.0.0.4": false,
		"10.0.0.7": true, "10.0.0.8": false, "::ffff:10.0.0.1": false, "fd00::1": false,
	} {
		if got := s.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	if (Set{}).Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("empty set contains an address")
	}
}

func TestParseSetErrorsNameTheEntry(t *testing.T) {
	subnet := netip.MustParsePrefix("10.6.0.0/16")
	tests := []struct {
		entries []string
		want    string
	}{
		{[]string{"10.6.0.1", "10.7.0.1"}, `invalid spec.ips[1] "10.7.0.1": not inside subnet 10.6.0.0/16`},
		{[]string{"10.6.0.1", "10.6.255.0-10.7.0.1"}, `invalid spec.ips[1] "10.6.255.0-10.7.0.1": not inside subnet 10.6.0.0/16`},
		{[]string{"fd00::1"}, `invalid spec.ips[0] "fd00::1": IPv6 entry in an IPv4 list`},
		{[]string{"10.6.0.9-10.6.0.1"}, `invalid spec.ips[0] "10.6.0.9-10.6.0.1": range is reversed`},
		{[]string{"bogus"}, `invalid spec.ips[0] "bogus": ParseAddr`},
	}
	for _, tt := range tests {
		_, err := ParseSet("spec.ips", tt.entries, V4, subnet)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParseSet(%v) error = %v, want prefix %q", tt.entries, err, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestParsePool(t *testing.T) {
	tests := []struct {
		name     string
		spec     v2beta1.IPPoolSpec
		reserved []string
		family   Family
		usable   []string
		count    uint64
	}{
		{
			name:   "calico quick start pool, no ipVersion",
			spec:   v2beta1.IPPoolSpec{Subnet: "10.244.0.0/16", IPs: []string{"10.244.100.0-10.244.200.1"}},
			family: V4, usable: []string{"10.244.100.0-10.244.200.1"}, count: 25602,
		},
		{
			name: "spiderpool reference pool",
			spec: v2beta1.IPPoolSpec{
				IPVersion: ptr(int64(4)), Subnet: "172.31.192.0/20",
				IPs:        []string{"172.31.199.180-172.31.199.189", "172.31.199.205-172.31.199.209"},
				ExcludeIPs: []string{"172.31.199.186-172.31.199.188", "172.31.199.207"},
				Gateway:    ptr("172.31.207.253"),
			},
			family: V4,
			usable: []string{"172.31.199.180-172.31.199.185", "172.31.199.189", "172.31.199.205-172.31.199.206", "172.31.199.208-172.31.199.209"},
			count:  11,
		},
		{
			name:   "listed network and broadcast addresses are usable, the gateway is not",
			spec:   v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24", IPs: []string{"10.6.0.0-10.6.0.255"}, Gateway: ptr("10.6.0.1")},
			family: V4, usable: []string{"10.6.0.0", "10.6.0.2-10.6.0.255"}, count: 255,
		},
		{
			name:   "gateway outside ips changes nothing",
			spec:   v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24", IPs: []string{"10.6.0.10-10.6.0.19"}, Gateway: ptr("10.6.0.1")},
			family: V4, usable: []string{"10.6.0.10-10.6.0.19"}, count: 10,
		},
		{
			name:     "reserved addresses are removed",
			spec:     v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24", IPs: []string{"10.6.0.10-10.6.0.19"}},
			reserved: []string{"10.6.0.12", "10.6.0.18-10.6.0.30"},
			family:   V4, usable: []string{"10.6.0.10-10.6.0.11", "10.6.0.13-10.6.0.17"}, count: 7,
		},
		{
			name:   "excludeIPs outside the subnet are ignored",
			spec:   v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24", IPs: []string{"10.6.0.10"}, ExcludeIPs: []string{"10.9.0.1"}},
			family: V4, usable: []string{"10.6.0.10"}, count: 1,
		},
		{
			name:   "no ips means no usable address",
			spec:   v2beta1.IPPoolSpec{Subnet: "10.6.0.0/24"},
			family: V4, usable: []string{}, count: 0,
		},
		{
			name:   "subnet with host bits is masked",
			spec:   v2beta1.IPPoolSpec{Subnet: "10.6.1.0/16", IPs: []string{"10.6.200.1"}},
			family: V4, usable: []string{"10.6.200.1"}, count: 1,
		},
		{
			name: "IPv6",
			spec: v2beta1.IPPoolSpec{
				IPVersion: ptr(int64(6)), Subnet: "fd00:6::/64", IPs: []string{"fd00:6::1-fd00:6::100"},
				ExcludeIPs: []string{"fd00:6::10-fd00:6::1f"}, Gateway: ptr("fd00:6::1"),
			},
			reserved: []string{"fd00:6::100"},
			family:   V6, usable: []string{"fd00:6::2-fd00:6::f", "fd00:6::20-fd00:6::ff"}, count: 14 + 224,
		},
		{
			name:   "IPv6 whole /64 parses; the allocator refuses it",
			spec:   v2beta1.IPPoolSpec{Subnet: "fd00:6::/64", IPs: []string{"fd00:6::-fd00:6::ffff:ffff:ffff:ffff"}},
			family: V6, usable: []string{"fd00:6::-fd00:6::ffff:ffff:ffff:ffff"}, count: math.MaxUint64,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePool(&tt.spec, mustSet(t, tt.reserved...))
			if err != nil {
				t.Fatal(err)
			}
			if p.Family != tt.family {
				t.Errorf("family %v, want %v", p.Family, tt.family)
			}
			if got := p.Usable.Strings(); !slices.Equal(got, tt.usable) {
				t.Errorf("usable %v, want %v", got, tt.usable)
			}
			if got := p.Usable.Count(); got != tt.count {
				t.Errorf("count %d, want %d", got, tt.count)
			}
		})
	}
}

func TestParsePoolErrors(t *testing.T) {
	tests := []struct {
		spec v2beta1.IPPoolSpec
		want string
	}{
		{v2beta1.IPPoolSpec{Subnet: "10.6.0.0"}, `invalid spec.subnet "10.6.0.0"`},
		{v2beta1.IPPoolSpec{Subnet: ""}, `invalid spec.subnet ""`},
		{v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", IPVersion: ptr(int64(6))}, `invalid spec.ipVersion 6: spec.subnet "10.6.0.0/16" is IPv4`},
		{v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", Gateway: ptr("fd00::1")}, `invalid spec.gateway "fd00::1": IPv6 gateway in an IPv4 pool`},
		{v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", Gateway: ptr("10.6.0")}, `invalid spec.gateway "10.6.0"`},
		{v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", IPs: []string{"10.6.0.1", "10.5.0.1"}}, `invalid spec.ips[1] "10.5.0.1": not inside subnet 10.6.0.0/16`},
		{v2beta1.IPPoolSpec{Subnet: "10.6.0.0/16", ExcludeIPs: []string{"10.6.0.9-10.6.0.1"}}, `invalid spec.excludeIPs[0] "10.6.0.9-10.6.0.1": range is reversed`},
		{v2beta1.IPPoolSpec{Subnet: "fd00::/64", ExcludeIPs: []string{"10.6.0.1"}}, `invalid spec.excludeIPs[0] "10.6.0.1": IPv4 entry in an IPv6 list`},
	}
	for _, tt := range tests {
		_, err := ParsePool(&tt.spec, Set{})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("ParsePool(%+v) error = %v, want prefix %q", tt.spec, err, tt.want)
		}
	}
}

func TestPoolFamily(t *testing.T) {
	for _, tt := range []struct {
		spec v2beta1.IPPoolSpec
		want Family
		err  bool
	}{
		{v2beta1.IPPoolSpec{Subnet: "10.0.0.0/8"}, V4, false},
		{v2beta1.IPPoolSpec{Subnet: "fd00::/8"}, V6, false},
		{v2beta1.IPPoolSpec{Subnet: "bogus", IPVersion: ptr(int64(6))}, V6, false},
		{v2beta1.IPPoolSpec{Subnet: "bogus"}, 0, true},
		{v2beta1.IPPoolSpec{Subnet: "10.0.0.0/8", IPVersion: ptr(int64(5))}, 0, true},
	} {
		got, err := PoolFamily(&tt.spec)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("PoolFamily(%+v) = %v, %v; want %v, error %v", tt.spec, got, err, tt.want, tt.err)
		}
	}
}

func TestParseReserved(t *testing.T) {
	objs := []*v2beta1.SpiderReservedIP{
		{Spec: v2beta1.ReservedIPSpec{IPVersion: ptr(int64(4)), IPs: []string{"10.6.0.5", "10.6.0.10-10.6.0.12"}}},
		{Spec: v2beta1.ReservedIPSpec{IPVersion: ptr(int64(6)), IPs: []string{"fd00::5"}}},
		{Spec: v2beta1.ReservedIPSpec{IPs: []string{"10.6.0.6", "fd00::6"}}}, // no ipVersion: entries sorted by family
		nil,
	}
	v4, err := ParseReserved(objs, V4)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v4.Strings(), []string{"10.6.0.5-10.6.0.6", "10.6.0.10-10.6.0.12"}; !slices.Equal(got, want) {
		t.Errorf("v4 reserved %v, want %v", got, want)
	}
	v6, err := ParseReserved(objs, V6)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v6.Strings(), []string{"fd00::5-fd00::6"}; !slices.Equal(got, want) {
		t.Errorf("v6 reserved %v, want %v", got, want)
	}
	bad := &v2beta1.SpiderReservedIP{Spec: v2beta1.ReservedIPSpec{IPs: []string{"10.6.0.9-10.6.0.1"}}}
	bad.Name = "keep-out"
	_, err = ParseReserved([]*v2beta1.SpiderReservedIP{bad}, V4)
	if err == nil || !strings.Contains(err.Error(), `SpiderReservedIP "keep-out" spec.ips[0] "10.6.0.9-10.6.0.1"`) {
		t.Errorf("error %v does not name the object and entry", err)
	}
}
