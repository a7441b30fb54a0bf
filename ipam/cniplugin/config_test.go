package cniplugin

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/spindle-net/spindle/ipam/nodeapi"
)

func TestLoadConf(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		code    uint
		wantErr string
		check   func(t *testing.T, c *NetConf)
	}{
		{
			name: "seed macvlan config with default pools",
			in: `{"cniVersion":"1.0.0","name":"macvlan-vlan0","type":"macvlan","master":"eth0",
			      "ipam":{"type":"spiderpool","default_ipv4_ippool":["default-v4-ippool","backup-ipv4-ippool"],
			              "default_ipv6_ippool":["default-v6-ippool","backup-ipv6-ippool"]}}`,
			check: func(t *testing.T, c *NetConf) {
				if c.Name != "macvlan-vlan0" || c.IPAM.Socket != nodeapi.DefaultSocket {
					t.Fatalf("name %q socket %q", c.Name, c.IPAM.Socket)
				}
				if strings.Join(c.IPAM.DefaultIPv4Pools, ",") != "default-v4-ippool,backup-ipv4-ippool" ||
					strings.Join(c.IPAM.DefaultIPv6Pools, ",") != "default-v6-ippool,backup-ipv6-ippool" {
					t.Fatalf("pools %v %v", c.IPAM.DefaultIPv4Pools, c.IPAM.DefaultIPv6Pools)
				}
			},
		},
		{
			name:  "compat socket key",
			in:    `{"cniVersion":"0.3.1","name":"n","type":"macvlan","ipam":{"type":"spiderpool","ipam_unix_socket_path":"/run/x.sock","log_level":"DEBUG"}}`,
			check: func(t *testing.T, c *NetConf) { assertEq(t, c.IPAM.Socket, "/run/x.sock") },
		},
		{
			name:  "socket key wins over compat key",
			in:    `{"name":"n","ipam":{"type":"spiderpool","socket":"/a.sock","ipam_unix_socket_path":"/b.sock"}}`,
			check: func(t *testing.T, c *NetConf) { assertEq(t, c.IPAM.Socket, "/a.sock") },
		},
		{name: "no ipam", in: `{"name":"n","type":"macvlan"}`, code: types.ErrInvalidNetworkConfig, wantErr: `missing "ipam"`},
		{name: "wrong type", in: `{"ipam":{"type":"host-local"}}`, code: types.ErrInvalidNetworkConfig, wantErr: `ipam.type is "host-local"`},
		{name: "relative socket", in: `{"ipam":{"type":"spiderpool","socket":"agent.sock"}}`, code: types.ErrInvalidNetworkConfig, wantErr: "absolute path"},
		{name: "bad pool name", in: `{"ipam":{"type":"spiderpool","default_ipv6_ippool":["ok","Bad_Pool"]}}`, code: types.ErrInvalidNetworkConfig, wantErr: `ipam.default_ipv6_ippool[1] "Bad_Pool"`},
		{name: "pools not a list", in: `{"ipam":{"type":"spiderpool","default_ipv4_ippool":"p"}}`, code: types.ErrDecodingFailure, wantErr: "failed to parse network configuration"},
		{name: "not json", in: `{`, code: types.ErrDecodingFailure, wantErr: "failed to parse"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConf([]byte(tc.in))
			if tc.wantErr != "" {
				var te *types.Error
				if !errors.As(err, &te) {
					t.Fatalf("want *types.Error containing %q, got %v", tc.wantErr, err)
				}
				if te.Code != tc.code || !strings.Contains(te.Msg+": "+te.Details, tc.wantErr) {
					t.Fatalf("got code %d %q, want code %d containing %q", te.Code, te.Error(), tc.code, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseArgs(t *testing.T) {
	pa, err := ParseArgs("IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1")
	if err != nil {
		t.Fatal(err)
	}
	if *pa != (PodArgs{Namespace: "ns1", Name: "web-0", UID: "u-1", ContainerID: "abc"}) {
		t.Fatalf("got %+v", pa)
	}
	for _, bad := range []string{"", "K8S_POD_NAME=x", "K8S_POD_NAMESPACE=a;garbage"} {
		_, err := ParseArgs(bad)
		var te *types.Error
		if !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables {
			t.Errorf("ParseArgs(%q): want code 4, got %v", bad, err)
		}
	}
}

func FuzzLoadConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"n","ipam":{"type":"spiderpool","default_ipv4_ippool":["a"]}}`))
	f.Add([]byte(`{"ipam":{"type":"spiderpool","socket":"/x","default_ipv6_ippool":["-a"]}}`))
	f.Add([]byte(`{"ipam":null}`))
	f.Add([]byte(`{"name":"n","ipam":{"type":"spiderpool","subnet":"10.188.0.0/16","fixedStart":"10.188.0.10","fixedEnd":"10.188.0.20","resolvConf":"/etc/resolv.conf"}}`))
	f.Add([]byte(`{"name":"n","ipam":{"type":"spiderpool","ranges":[[{"subnet":"fd00::/64"}]],"dns":{"nameservers":["::1"]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := LoadConf(data)
		if err != nil {
			var te *types.Error
			if !errors.As(err, &te) || (te.Code != types.ErrInvalidNetworkConfig && te.Code != types.ErrDecodingFailure) {
				t.Fatalf("error without CNI code 6/7: %v", err)
			}
			return
		}
		if c.IPAM == nil || c.IPAM.Type != PluginType || !strings.HasPrefix(c.IPAM.Socket, "/") {
			t.Fatalf("accepted invalid config %q: %+v", data, c.IPAM)
		}
		for _, p := range append(append([]string{}, c.IPAM.DefaultIPv4Pools...), c.IPAM.DefaultIPv6Pools...) {
			if validPoolName(p) != "" {
				t.Fatalf("accepted invalid pool name %q", p)
			}
		}
	})
}

func assertEq(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
