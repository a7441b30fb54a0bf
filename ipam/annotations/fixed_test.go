package annotations

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestParseCalicoIPAddrs(t *testing.T) {
	for _, tc := range []struct {
		value, want, err string
	}{
		{`["192.168.0.1"]`, "192.168.0.1", ""},
		{`["192.168.0.1","fd00::1"]`, "192.168.0.1,fd00::1", ""},
		{`["::ffff:192.168.0.1"]`, "192.168.0.1", ""},
		{`[]`, "", `invalid annotation "cni.projectcalico.org/ipAddrs": empty list; want a JSON list of at most one address per family such as ["192.168.0.1"] or ["192.168.0.1","fd00::1"]`},
		{`["192.168.0.1","192.168.0.2"]`, "", `invalid annotation "cni.projectcalico.org/ipAddrs": two IPv4 addresses (192.168.0.1 and 192.168.0.2); give at most one address per family; want a JSON list`},
		{`["fe80::1%eth0"]`, "", `"fe80::1%eth0" has a zone; give the address without %zone`},
		{`["10.0.0.0/24"]`, "", `"10.0.0.0/24" is not an IP address`},
		{`["224.0.0.1"]`, "", `"224.0.0.1" cannot be a pod address`},
		{`"192.168.0.1"`, "", `invalid annotation "cni.projectcalico.org/ipAddrs": json: cannot unmarshal string`},
		{`[192.168.0.1]`, "", `invalid annotation "cni.projectcalico.org/ipAddrs": invalid character`},
		{``, "", `invalid annotation "cni.projectcalico.org/ipAddrs": empty value`},
	} {
		got, err := ParseCalicoIPAddrs(tc.value)
		check(t, tc.value, got.String(), err, tc.want, tc.err)
	}
}

func TestParseOVNIPAddress(t *testing.T) {
	key := NetworkKey("default", "attachnet", OVNIPAddress)
	if key != "attachnet.default.ovn.kubernetes.io/ip_address" {
		t.Fatalf("network key %q", key)
	}
	for _, tc := range []struct {
		value, want, err string
	}{
		{"10.16.0.15", "10.16.0.15", ""},
		{"10.16.0.15,fd00:10:16::15", "10.16.0.15,fd00:10:16::15", ""},
		{" fd00:10:16::15 , 10.16.0.15 ", "10.16.0.15,fd00:10:16::15", ""},
		{"10.16.0.15,10.16.0.16", "", `invalid annotation "attachnet.default.ovn.kubernetes.io/ip_address": two IPv4 addresses (10.16.0.15 and 10.16.0.16); give at most one address per family; want an address, or an IPv4 and an IPv6 address separated by a comma, such as 10.16.0.15,fd00:10:16::15`},
		{"10.16.0.15,", "", `"" is not an IP address`},
		{"", "", `empty value`},
	} {
		got, err := ParseOVNIPAddress(key, tc.value)
		check(t, tc.value, got.String(), err, tc.want, tc.err)
	}
}

func TestParseMAC(t *testing.T) {
	for _, tc := range []struct {
		value, want, err string
	}{
		{"00:00:00:53:6B:B6", "00:00:00:53:6b:b6", ""},
		{"02-42-ac-11-00-02", "02:42:ac:11:00:02", ""},
		{"01:00:5e:00:00:01", "", `invalid annotation "ovn.kubernetes.io/mac_address": 01:00:5e:00:00:01 is a multicast address; want a unicast Ethernet address such as 00:00:00:53:6B:B6`},
		{"00:00:00:00:00:00", "", `00:00:00:00:00:00 is the zero address`},
		{"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", "", `is not a 6-byte Ethernet address`},
		{"00:00:00:53:6B", "", `"00:00:00:53:6B" is not a MAC address`},
	} {
		got, err := ParseMAC(OVNMACAddress, tc.value)
		check(t, tc.value, got.String(), err, tc.want, tc.err)
	}
}

func TestParseOVNIPPool(t *testing.T) {
	for _, tc := range []struct {
		value, want, err string
	}{
		{"10.16.0.15,10.16.0.16,10.16.0.17", "10.16.0.15 10.16.0.16 10.16.0.17", ""},
		{"10.16.0.15,fd00:10:16::000E;10.16.0.16,fd00:10:16::000F;10.16.0.17,fd00:10:16::0010", "10.16.0.15,fd00:10:16::e 10.16.0.16,fd00:10:16::f 10.16.0.17,fd00:10:16::10", ""},
		{"10.16.0.15,fd00:10:16::e", "10.16.0.15,fd00:10:16::e", ""},
		{"fd00::1,fd00::2", "fd00::1 fd00::2", ""},
		{"10.16.0.15,10.16.0.16,fd00::1", "", `invalid annotation "ovn.kubernetes.io/ip_pool": IPv4 and IPv6 addresses mixed without ';' between the entries; want addresses separated by commas`},
		{"10.16.0.15;;10.16.0.16", "", `entry 1 is empty`},
		{"10.16.0.15,10.16.0.15", "", `10.16.0.15 is listed twice (entries 0 and 1)`},
		{"10.16.0.15;10.16.0.16,10.16.0.17", "", `entry 1: two IPv4 addresses (10.16.0.16 and 10.16.0.17)`},
		{"", "", `empty value`},
	} {
		list, err := ParseOVNIPPool(tc.value)
		var got []string
		for _, s := range list {
			got = append(got, s.String())
		}
		check(t, tc.value, strings.Join(got, " "), err, tc.want, tc.err)
	}
}

func TestParseKubeIPAM(t *testing.T) {
	ok := map[string]string{KubeIPAMIP: "10.188.0.216", KubeIPAMNetmask: "255.255.0.0", KubeIPAMGateway: "10.188.0.1"}
	k, found, err := ParseKubeIPAM(ok)
	if err != nil || !found || k.IP != netip.MustParseAddr("10.188.0.216") || k.Netmask != 16 || k.Gateway != netip.MustParseAddr("10.188.0.1") {
		t.Fatalf("seed annotations: %+v %v %v", k, found, err)
	}
	for _, tc := range []struct {
		ann map[string]string
		err string
	}{
		{map[string]string{KubeIPAMNetmask: "255.255.0.0"}, `invalid annotations: "kube-ipam.netmask" or "kube-ipam.gateway" without "kube-ipam.ip"; add the address or remove them`},
		{map[string]string{KubeIPAMIP: "fd00::1"}, `invalid annotation "kube-ipam.ip": fd00::1 is not an IPv4 address; want an IPv4 address such as 10.188.0.216`},
		{map[string]string{KubeIPAMIP: "10.188.0.216", KubeIPAMNetmask: "255.0.255.0"}, `invalid annotation "kube-ipam.netmask": 255.0.255.0 is not a contiguous netmask; want a dotted netmask such as 255.255.0.0`},
		{map[string]string{KubeIPAMIP: "10.188.0.216", KubeIPAMNetmask: "16"}, `"16" is not an IPv4 netmask`},
		{map[string]string{KubeIPAMIP: "10.188.0.216", KubeIPAMGateway: "fd00::1"}, `invalid annotation "kube-ipam.gateway": fd00::1 is not an IPv4 address`},
	} {
		_, _, err := ParseKubeIPAM(tc.ann)
		check(t, tc.ann, "", err, "", tc.err)
	}
	if _, found, err := ParseKubeIPAM(map[string]string{"other": "x"}); found || err != nil {
		t.Fatalf("no kube-ipam annotations: %v %v", found, err)
	}
}

func TestParseFixed(t *testing.T) {
	attach := &Network{Namespace: "default", Name: "attachnet"}
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		primary bool
		network *Network
		want    string // Addresses/List/Pools/MAC, or the error
	}{
		{"Calico address", map[string]string{CalicoIPAddrs: `["192.168.0.1"]`}, true, nil, "addrs=192.168.0.1 from=[cni.projectcalico.org/ipAddrs]"},
		{"Calico pools", map[string]string{CalicoIPv4Pools: `["pool-1", "pool-2"]`}, true, nil, "v4pools=[pool-1 pool-2] from=[cni.projectcalico.org/ipv4pools]"},
		{"Kube-OVN address and MAC", map[string]string{OVNIPAddress: "10.16.0.15,fd00:10:16::15", OVNMACAddress: "00:00:00:53:6B:B6"}, true, nil,
			"addrs=10.16.0.15,fd00:10:16::15 mac=00:00:00:53:6b:b6 from=[ovn.kubernetes.io/ip_address ovn.kubernetes.io/mac_address]"},
		{"Kube-OVN workload list", map[string]string{OVNIPPool: "10.16.0.15,10.16.0.16"}, true, nil, "list=[10.16.0.15 10.16.0.16] from=[ovn.kubernetes.io/ip_pool]"},
		{"kube-ipam", map[string]string{KubeIPAMIP: "10.188.0.216", KubeIPAMNetmask: "255.255.0.0"}, true, nil, "addrs=10.188.0.216 kube-ipam=/16 from=[kube-ipam.ip]"},
		{"the same address twice is fine", map[string]string{CalicoIPAddrs: `["10.16.0.15"]`, OVNIPAddress: "10.16.0.15"}, true, nil,
			"addrs=10.16.0.15 from=[cni.projectcalico.org/ipAddrs ovn.kubernetes.io/ip_address]"},
		{"secondary network: only its prefixed keys", map[string]string{OVNIPAddress: "10.16.0.15", "attachnet.default.ovn.kubernetes.io/ip_address": "172.17.0.5", "attachnet.default.ovn.kubernetes.io/mac_address": "02:00:00:00:00:05"}, false, attach,
			"addrs=172.17.0.5 mac=02:00:00:00:00:05 from=[attachnet.default.ovn.kubernetes.io/ip_address attachnet.default.ovn.kubernetes.io/mac_address]"},
		{"secondary interface without a network name: nothing", map[string]string{OVNIPAddress: "10.16.0.15"}, false, nil, ""},
		{"contradiction", map[string]string{CalicoIPAddrs: `["10.16.0.15"]`, OVNIPAddress: "10.16.0.16"}, true, nil,
			`error: annotations "cni.projectcalico.org/ipAddrs" (10.16.0.15) and "ovn.kubernetes.io/ip_address" (10.16.0.16) ask for different addresses; keep one of them`},
		{"address and list", map[string]string{KubeIPAMIP: "10.16.0.15", OVNIPPool: "10.16.0.15,10.16.0.16"}, true, nil,
			`error: annotations "kube-ipam.ip" and "ovn.kubernetes.io/ip_pool" both fix the addresses; keep one of them`},
		{"list and address", map[string]string{OVNIPPool: "10.16.0.15,10.16.0.16", OVNIPAddress: "10.16.0.15"}, true, nil,
			`error: annotations "ovn.kubernetes.io/ip_pool" and "ovn.kubernetes.io/ip_address" both fix the addresses; keep one of them`},
		{"ipAddrsNoIpam", map[string]string{CalicoIPAddrsNoIPAM: `["10.0.0.1"]`}, true, nil,
			`error: annotation "cni.projectcalico.org/ipAddrsNoIpam" is not supported: Spindle always allocates through its pools; use "cni.projectcalico.org/ipAddrs" with an address of a SpiderIPPool instead`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseFixed(tc.ann, tc.primary, tc.primary, tc.network)
			if got := describeFixed(f, err); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func describeFixed(f *Fixed, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var parts []string
	if !f.Addresses.Empty() {
		parts = append(parts, "addrs="+f.Addresses.String())
	}
	if len(f.List) > 0 {
		var l []string
		for _, s := range f.List {
			l = append(l, s.String())
		}
		parts = append(parts, "list=["+strings.Join(l, " ")+"]")
	}
	if len(f.Pools.IPv4) > 0 {
		parts = append(parts, "v4pools=["+strings.Join(f.Pools.IPv4, " ")+"]")
	}
	if f.MAC != nil {
		parts = append(parts, "mac="+f.MAC.String())
	}
	if f.KubeIPAM != nil && f.KubeIPAM.Netmask >= 0 {
		parts = append(parts, "kube-ipam=/"+strconv.Itoa(f.KubeIPAM.Netmask))
	}
	if len(f.Sources) > 0 {
		parts = append(parts, "from=["+strings.Join(f.Sources, " ")+"]")
	}
	return strings.Join(parts, " ")
}

// check compares a parse result with the wanted value or error prefix/substring.
func check(t *testing.T, input any, got string, err error, want, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("%v: unexpected error %v", input, err)
	case wantErr == "" && got != want:
		t.Errorf("%v: got %q, want %q", input, got, want)
	case wantErr != "" && err == nil:
		t.Errorf("%v: got %q, want an error containing %q", input, got, wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("%v: error\n  %v\nwant it to contain\n  %s", input, err, wantErr)
	}
}
