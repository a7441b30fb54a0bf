package annotations

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseIPPool(t *testing.T) {
	tests := []struct {
		in   string
		want PoolSelection
	}{
		// From the Spiderpool documentation and the Calico quick start.
		{`{"ipv4":["nginx-ippool-v4"]}`, PoolSelection{IPv4: []string{"nginx-ippool-v4"}}},
		{"{\n  \"ipv4\": [\"custom-ipv4-ippool\"],\"ipv6\": [\"custom-ipv6-ippool\"]\n}",
			PoolSelection{IPv4: []string{"custom-ipv4-ippool"}, IPv6: []string{"custom-ipv6-ippool"}}},
		{`{"ipv4": ["demo-v4-ippool1", "backup-ipv4-ippool"], "ipv6": ["demo-v6-ippool1", "backup-ipv6-ippool"]}`,
			PoolSelection{IPv4: []string{"demo-v4-ippool1", "backup-ipv4-ippool"}, IPv6: []string{"demo-v6-ippool1", "backup-ipv6-ippool"}}},
		{`{"ipv4":["pool-*"]}`, PoolSelection{IPv4: []string{"pool-*"}}},
		{`{}`, PoolSelection{}},
		// Unknown keys (older formats) are ignored.
		{`{"interface":"eth0","ipv4":["a"]}`, PoolSelection{IPv4: []string{"a"}}},
	}
	for _, tt := range tests {
		got, err := ParseIPPool(tt.in)
		if err != nil {
			t.Errorf("ParseIPPool(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseIPPool(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseIPPoolErrors(t *testing.T) {
	tests := map[string]string{
		``:                    `invalid annotation "ipam.spidernet.io/ippool": empty value; want a JSON object such as {"ipv4":["pool-v4"],"ipv6":["pool-v6"]}`,
		`{"ipv4":"a"}`:        `invalid annotation "ipam.spidernet.io/ippool": json: cannot unmarshal string into Go struct field PoolSelection.ipv4 of type []string; want`,
		`{"ipv4":["a"]`:       `invalid annotation "ipam.spidernet.io/ippool": unexpected end of JSON input`,
		`{"ipv4":["a"]} x`:    `invalid annotation "ipam.spidernet.io/ippool": invalid character 'x' after top-level value`,
		`{"ipv4":[""]}`:       `invalid annotation "ipam.spidernet.io/ippool": ipv4[0]: empty pool name`,
		`{"ipv6":["a","[x"]}`: `invalid annotation "ipam.spidernet.io/ippool": ipv6[1]: pool name "[x" is not a valid pattern: syntax error in pattern`,
		`["a"]`:               `invalid annotation "ipam.spidernet.io/ippool": json: cannot unmarshal array`,
	}
	for in, want := range tests {
		_, err := ParseIPPool(in)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseIPPool(%q) error = %v\nwant prefix %s", in, err, want)
		}
	}
}

func TestParseIPPools(t *testing.T) {
	in := `[{
      "interface": "eth0",
      "ipv4": ["demo-v4-ippool1"],
      "ipv6": ["demo-v6-ippool1"],
      "cleangateway": true
   },{
      "interface": "net1",
      "ipv4": ["demo-v4-ippool2"],
      "ipv6": ["demo-v6-ippool2"],
      "cleangateway": false
  }]`
	got, err := ParseIPPools(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []InterfacePools{
		{Interface: "eth0", IPv4: []string{"demo-v4-ippool1"}, IPv6: []string{"demo-v6-ippool1"}, CleanGateway: true},
		{Interface: "net1", IPv4: []string{"demo-v4-ippool2"}, IPv6: []string{"demo-v6-ippool2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// Unnamed entries, mapped by position later.
	got, err = ParseIPPools(`[{"ipv4":["a"]},{"ipv4":["b"],"cleangateway":true}]`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Interface != "" || !got[1].CleanGateway {
		t.Errorf("unnamed entries parsed as %+v", got)
	}
}

func TestParseIPPoolsErrors(t *testing.T) {
	tests := map[string]string{
		`[]`:                   `invalid annotation "ipam.spidernet.io/ippools": empty list; want a JSON list such as`,
		`null`:                 `invalid annotation "ipam.spidernet.io/ippools": empty list`,
		`{"interface":"eth0"}`: `invalid annotation "ipam.spidernet.io/ippools": json: cannot unmarshal object`,
		`[{"interface":"eth0","ipv4":["a"]},{"ipv4":["b"]}]`:                    `invalid annotation "ipam.spidernet.io/ippools": entry 1: either every entry names its interface or none does`,
		`[{"ipv4":["a"]},{"interface":"net1","ipv4":["b"]}]`:                    `invalid annotation "ipam.spidernet.io/ippools": entry 1: either every entry names its interface or none does`,
		`[{"interface":"net1","ipv4":["a"]},{"interface":"net1","ipv4":["b"]}]`: `invalid annotation "ipam.spidernet.io/ippools": entries 0 and 1 both name interface "net1"`,
		`[{"interface":"a-very-long-interface","ipv4":["a"]}]`:                  `invalid annotation "ipam.spidernet.io/ippools": entry 0: interface name "a-very-long-interface" is longer than 15 characters`,
		`[{"interface":"net 1","ipv4":["a"]}]`:                                  `invalid annotation "ipam.spidernet.io/ippools": entry 0: interface name "net 1" contains`,
		`[{"interface":"net1","ipv6":[""]}]`:                                    `invalid annotation "ipam.spidernet.io/ippools": entry 0 ipv6[0]: empty pool name`,
		`[{"interface":"net1","cleangateway":"yes"}]`:                           `invalid annotation "ipam.spidernet.io/ippools": json: cannot unmarshal string`,
	}
	for in, want := range tests {
		_, err := ParseIPPools(in)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseIPPools(%q) error = %v\nwant prefix %s", in, err, want)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	got, err := ParseRoutes(`[{"dst":"10.0.0.0/16","gw":"192.168.1.1"},{"dst":"172.10.40.0/24","gw":"172.18.40.1"},{"dst":"fd00:10::/64","gw":"fd00::1"},{"dst":"10.1.2.3/16","gw":"10.0.0.1"}]`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParseAddr("192.168.1.1")},
		{netip.MustParsePrefix("172.10.40.0/24"), netip.MustParseAddr("172.18.40.1")},
		{netip.MustParsePrefix("fd00:10::/64"), netip.MustParseAddr("fd00::1")},
		{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParseAddr("10.0.0.1")}, // masked
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ParseRoutes(`[]`); err != nil || len(got) != 0 {
		t.Errorf("empty list: %v %v", got, err)
	}

	bad := map[string]string{
		`[{"dst":"10.0.0.0","gw":"10.0.0.1"}]`:      `invalid annotation "ipam.spidernet.io/routes": entry 0: invalid dst "10.0.0.0"`,
		`[{"dst":"10.0.0.0/8","gw":"10.0.0"}]`:      `invalid annotation "ipam.spidernet.io/routes": entry 0: invalid gw "10.0.0"`,
		`[{"dst":"10.0.0.0/8","gw":"fd00::1"}]`:     `invalid annotation "ipam.spidernet.io/routes": entry 0: dst "10.0.0.0/8" and gw "fd00::1" are of different IP families`,
		`[{"dst":"10.0.0.0/8"}]`:                    `invalid annotation "ipam.spidernet.io/routes": entry 0: invalid gw ""`,
		`{"dst":"10.0.0.0/8","gw":"10.0.0.1"}`:      `invalid annotation "ipam.spidernet.io/routes": json: cannot unmarshal object`,
		`[{"dst":"fe80::/64","gw":"fe80::1%eth0"}]`: `invalid annotation "ipam.spidernet.io/routes": entry 0: zones are not allowed`,
	}
	for in, want := range bad {
		_, err := ParseRoutes(in)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseRoutes(%q) error = %v\nwant prefix %s", in, err, want)
		}
	}
}

func TestParseDefaultRouteNIC(t *testing.T) {
	if got, err := ParseDefaultRouteNIC(" net1 "); err != nil || got != "net1" {
		t.Errorf("got %q, %v", got, err)
	}
	for _, in := range []string{"", "  ", "net/1", "0123456789abcdef", ".."} {
		if _, err := ParseDefaultRouteNIC(in); err == nil || !strings.HasPrefix(err.Error(), `invalid annotation "ipam.spidernet.io/default-route-nic"`) {
			t.Errorf("ParseDefaultRouteNIC(%q) error = %v", in, err)
		}
	}
}

func TestParsePoolList(t *testing.T) {
	got, err := ParsePoolList(NamespaceDefaultIPv4Pool, `["ns-v4-ippool1","ns-v4-ippool2"]`)
	if err != nil || !reflect.DeepEqual(got, []string{"ns-v4-ippool1", "ns-v4-ippool2"}) {
		t.Errorf("got %v, %v", got, err)
	}
	_, err = ParsePoolList(NamespaceDefaultIPv6Pool, `v6-ippool1`)
	if err == nil || !strings.HasPrefix(err.Error(), `invalid annotation "ipam.spidernet.io/default-ipv6-ippool": invalid character 'v' looking for beginning of value; want a JSON list of pool names such as ["pool-a","pool-b"]`) {
		t.Errorf("error = %v", err)
	}
}

func TestRouteMarshalJSON(t *testing.T) {
	b, err := json.Marshal([]Route{{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParseAddr("10.1.0.1")}})
	if err != nil || string(b) != `[{"dst":"10.0.0.0/16","gw":"10.1.0.1"}]` {
		t.Errorf("got %s, %v", b, err)
	}
}
