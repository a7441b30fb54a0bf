package coordinator

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseNetConfAndResolve(t *testing.T) {
	// A Spiderpool-style NAD plugin entry; field names match
	// case-insensitively (podDefaultRouteNic as Spiderpool spells it).
	conf, err := ParseNetConf([]byte(`{
		"cniVersion": "1.0.0", "name": "macvlan-ens192", "type": "coordinator",
		"mode": "overlay", "podDefaultRouteNic": "net1", "tunePodRoutes": false,
		"hijackCIDR": ["10.0.0.0/8"], "hostRuleTable": 600, "podMACPrefix": "0a:1b",
		"podRPFilter": 1, "txQueueLen": 1000, "vethLinkAddress": "169.254.100.1",
		"vethMTU": 1400, "detectIPConflict": true, "detectGateway": true,
		"serviceCIDR": ["10.233.0.0/18"], "overlayPodCIDR": ["10.233.64.0/18"],
		"logLevel": "debug", "agentSocket": "/run/x.sock", "unknownField": 1
	}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Resolve(conf.Settings)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeOverlay || cfg.PodDefaultRouteNIC != "net1" || cfg.TunePodRoutes || cfg.HostRuleTable != 600 ||
		cfg.PodMACPrefix.String() != "0a:1b" || cfg.PodRPFilter != 1 || cfg.TxQueueLen != 1000 ||
		cfg.VethLinkAddress.String() != "169.254.100.1/32" || cfg.VethMTU != 1400 || !cfg.DetectIPConflict || !cfg.DetectGateway ||
		cfg.HijackCIDR[0].String() != "10.0.0.0/8" || cfg.ServiceCIDR[0].String() != "10.233.0.0/18" || cfg.OverlayPodCIDR[0].String() != "10.233.64.0/18" {
		t.Errorf("resolved config %+v does not match the input", cfg)
	}
	if conf.AgentSocket != "/run/x.sock" || conf.LogLevel != "debug" {
		t.Errorf("plugin-only fields: %+v", conf)
	}
}

func TestResolveDefaults(t *testing.T) {
	cfg, err := Resolve(Settings{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeAuto || !cfg.TunePodRoutes || cfg.HostRuleTable != 500 || cfg.PodRPFilter != 0 ||
		len(cfg.HijackCIDR) != 1 || cfg.HijackCIDR[0].String() != "169.254.0.0/16" ||
		cfg.DetectIPConflict || cfg.DetectGateway || cfg.PodMACPrefix != nil || cfg.VethMTU != 0 {
		t.Errorf("defaults %+v", cfg)
	}
	if cfg, _ := Resolve(Settings{Mode: "disable"}); cfg.Mode != ModeDisabled {
		t.Errorf("mode \"disable\" (Spiderpool's spelling) resolved to %q", cfg.Mode)
	}
}

func TestMergePluginOverridesAgent(t *testing.T) {
	agent := Settings{Mode: ModeUnderlay, TunePodRoutes: ptr(false), HostRuleTable: ptr(700), ServiceCIDR: []string{"10.96.0.0/12"}, DetectGateway: ptr(true)}
	plugin := Settings{Mode: ModeOverlay, TunePodRoutes: ptr(true), DetectGateway: ptr(false)}
	got := Merge(agent, plugin)
	if got.Mode != ModeOverlay || !*got.TunePodRoutes || *got.HostRuleTable != 700 || got.ServiceCIDR[0] != "10.96.0.0/12" || *got.DetectGateway {
		t.Errorf("merged %+v: plugin values must win, agent values fill the rest", got)
	}
}

func TestResolveRejectsBadFields(t *testing.T) {
	for _, tc := range []struct {
		s     Settings
		field string
	}{
		{Settings{Mode: "bridge"}, `"mode"`},
		{Settings{PodDefaultRouteNIC: "a/b"}, `"podDefaultRouteNIC"`},
		{Settings{HijackCIDR: []string{"10.0.0.0"}}, `"hijackCIDR"`},
		{Settings{ServiceCIDR: []string{"x"}}, `"serviceCIDR"`},
		{Settings{OverlayPodCIDR: []string{"10.0.0.0/33"}}, `"overlayPodCIDR"`},
		{Settings{HostRuleTable: ptr(254)}, `"hostRuleTable"`},
		{Settings{HostRuleTable: ptr(0)}, `"hostRuleTable"`},
		{Settings{HostRuleTable: ptr(101)}, `"hostRuleTable"`},
		{Settings{PodMACPrefix: "0b:1b"}, `"podMACPrefix"`},
		{Settings{PodMACPrefix: "0a1b"}, `"podMACPrefix"`},
		{Settings{PodRPFilter: ptr(3)}, `"podRPFilter"`},
		{Settings{TxQueueLen: ptr(-1)}, `"txQueueLen"`},
		{Settings{VethMTU: ptr(100)}, `"vethMTU"`},
		{Settings{VethLinkAddress: "10.0.0.1"}, `"vethLinkAddress"`},
		{Settings{VethLinkAddress: "169.254.0.0/16"}, `"vethLinkAddress"`},
	} {
		_, err := Resolve(tc.s)
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig || !strings.Contains(cniErr.Msg, tc.field) {
			t.Errorf("Resolve(%+v) = %v, want an invalid-config error naming %s", tc.s, err, tc.field)
		}
	}
	if _, err := ParseNetConf([]byte(`{"logLevel":"loud"}`)); err == nil || !strings.Contains(err.Error(), `"logLevel"`) {
		t.Errorf("bad logLevel: %v", err)
	}
	if _, err := ParseNetConf([]byte(`{"mode":`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func FuzzParseAndResolve(f *testing.F) {
	f.Add([]byte(`{"mode":"underlay","hijackCIDR":["169.254.0.0/16"],"podMACPrefix":"0a:1b","hostRuleTable":500}`))
	f.Add([]byte(`{"podRPFilter":-1,"vethLinkAddress":"169.254.1.1/32","vethMTU":1500}`))
	f.Add([]byte(`{"serviceCIDR":["fd00::/108"],"podDefaultRouteNIC":"net1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		conf, err := ParseNetConf(data)
		if err != nil {
			return
		}
		cfg, err := Resolve(conf.Settings)
		if err != nil {
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig {
				t.Fatalf("Resolve error %v is not an invalid-config CNI error", err)
			}
			return
		}
		switch cfg.Mode {
		case ModeUnderlay, ModeOverlay, ModeAuto, ModeDisabled:
		default:
			t.Fatalf("resolved mode %q", cfg.Mode)
		}
		if cfg.PodMACPrefix != nil && (len(cfg.PodMACPrefix) != 2 || cfg.PodMACPrefix[0]&1 == 1) {
			t.Fatalf("resolved MAC prefix %v", cfg.PodMACPrefix)
		}
		if cfg.HostRuleTable < 1 || cfg.HostRuleTable >= 252 && cfg.HostRuleTable <= 255 || cfg.PodRPFilter < -1 || cfg.PodRPFilter > 2 {
			t.Fatalf("resolved out-of-range values %+v", cfg)
		}
		if len(cfg.HijackCIDR) == 0 {
			t.Fatal("no hijack CIDR")
		}
	})
}
