package annotations

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseNetworks(t *testing.T) {
	tests := []struct {
		in   string
		want []Network
	}{
		{"macvlan-conf", []Network{{"app", "macvlan-conf", "net1"}}},
		{"kube-system/macvlan-vlan0-eth1", []Network{{"kube-system", "macvlan-vlan0-eth1", "net1"}}},
		{"a, kube-system/b@data0 ,c", []Network{{"app", "a", "net1"}, {"kube-system", "b", "data0"}, {"app", "c", "net3"}}},
		{"a@x,a@y", []Network{{"app", "a", "x"}, {"app", "a", "y"}}}, // one network twice
		{`[{"name":"macvlan","namespace":"kube-system"},{"name":"sriov","interface":"data1","ips":["10.0.0.1/24"]}]`,
			[]Network{{"kube-system", "macvlan", "net1"}, {"app", "sriov", "data1"}}},
		{"[\n  {\"name\": \"x\"}\n]", []Network{{"app", "x", "net1"}}},
	}
	for _, tt := range tests {
		got, err := ParseNetworks(tt.in, "app")
		if err != nil {
			t.Errorf("ParseNetworks(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseNetworks(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseNetworksErrors(t *testing.T) {
	tests := map[string]string{
		"":                    "empty value",
		"a,,b":                "entry 1: empty name",
		"ns/":                 "entry 0: empty name",
		"a/b/c":               `entry "a/b/c" has more than one '/'`,
		"a@x@y":               `entry "a@x@y" has more than one '@'`,
		"a@":                  `entry "a@" has an empty interface after '@'`,
		"Macvlan":             `entry 0: name "Macvlan" is not a valid object name`,
		"NS/a":                `entry 0: namespace "NS" is not a valid object name`,
		"a@net:1":             `entry 0: interface name "net:1" contains`,
		"a@x,b@x":             `entries 0 and 1 are both attached as interface "x"`,
		"a@net2,b":            `entries 0 and 1 are both attached as interface "net2"`,
		`[{"namespace":"x"}]`: "entry 0: empty name",
		`[]`:                  "no network given",
		`{"name":"a"}`:        "json: cannot unmarshal object",
		`[{"name":"a"}`:       "unexpected end of JSON input",
	}
	for in, want := range tests {
		_, err := ParseNetworks(in, "app")
		if err == nil || !strings.HasPrefix(err.Error(), `invalid annotation "k8s.v1.cni.cncf.io/networks": `) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseNetworks(%q) error = %v, want it to contain %q", in, err, want)
		}
	}
}

func TestParseDefaultNetwork(t *testing.T) {
	for in, want := range map[string]Network{
		"kube-system/macvlan-ens192":                    {"kube-system", "macvlan-ens192", ""},
		"macvlan-vlan0-eth0":                            {"app", "macvlan-vlan0-eth0", ""},
		`[{"name":"calico","namespace":"kube-system"}]`: {"kube-system", "calico", ""},
		"kube-system/macvlan@eth0":                      {"kube-system", "macvlan", ""},
	} {
		got, err := ParseDefaultNetwork(in, "app")
		if err != nil || got != want {
			t.Errorf("ParseDefaultNetwork(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	_, err := ParseDefaultNetwork("a,b", "app")
	if err == nil || err.Error() != `invalid annotation "v1.multus-cni.io/default-network": 2 networks given; want one network such as kube-system/macvlan-conf` {
		t.Errorf("two networks: %v", err)
	}
}

func TestFormatNetworks(t *testing.T) {
	nets := []Network{{"kube-system", "a", "net1"}, {"app", "b", "data0"}}
	s := FormatNetworks(nets)
	if s != "kube-system/a@net1,app/b@data0" {
		t.Errorf("FormatNetworks = %q", s)
	}
	back, err := ParseNetworks(s, "other")
	if err != nil || !reflect.DeepEqual(back, nets) {
		t.Errorf("re-parse = %+v, %v", back, err)
	}
}
