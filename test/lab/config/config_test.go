package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spindle-net/spindle/test/prereq"
)

func testConfig(nodes int) Config {
	c := Default("/repo")
	c.Nodes = nodes
	return c
}

func TestDefaultIsValid(t *testing.T) {
	if err := testConfig(3).Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := map[string]func(*Config){
		"relative dir":       func(c *Config) { c.Dir = "_lab" },
		"prefix with dash":   func(c *Config) { c.Prefix = "a-b" },
		"long prefix":        func(c *Config) { c.Prefix = "abcdefg" },
		"zero nodes":         func(c *Config) { c.Nodes = 0 },
		"too many nodes":     func(c *Config) { c.Nodes = MaxNodes + 1 },
		"port clash":         func(c *Config) { c.EtcdPort = c.APIServerPort },
		"privileged port":    func(c *Config) { c.SchedulerPort = 80 },
		"v6 service cidr":    func(c *Config) { c.ServiceCIDR = "fd00::/108" },
		"small pod cidr":     func(c *Config) { c.PodCIDR = "10.244.0.0/24" },
		"small underlay":     func(c *Config) { c.UnderlayV4 = "172.30.0.0/25" },
		"v4 pod v6 cidr":     func(c *Config) { c.PodCIDRV6 = "10.0.0.0/8" },
		"long interface":     func(c *Config) { c.UnderlayIf = "abcdefghijklmnop" },
		"empty v6 underlay":  func(c *Config) { c.UnderlayV6 = "" },
		"no pods":            func(c *Config) { c.MaxPods = 0 },
		"more pods than /24": func(c *Config) { c.MaxPods = MaxPodsLimit + 1 },
		"no CNI workers":     func(c *Config) { c.CNIWorkers = 0 },
		"many CNI workers":   func(c *Config) { c.CNIWorkers = MaxCNIWorkers + 1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := testConfig(2)
			mutate(&c)
			if err := c.Validate(); err == nil {
				t.Fatalf("Validate accepted %+v", c)
			}
		})
	}
}

func TestAddressPlan(t *testing.T) {
	c := testConfig(3)
	checks := map[string][2]string{
		"gateway v4":     {c.GatewayV4().String(), "172.30.0.1"},
		"gateway v6":     {c.GatewayV6().String(), "fd30:172:30::1"},
		"node 1 v4":      {c.NodeUnderlayV4(1).String(), "172.30.0.11"},
		"node 3 v6":      {c.NodeUnderlayV6(3).String(), "fd30:172:30::d"},
		"node 2 pods":    {c.NodePodCIDR(2).String(), "10.244.2.0/24"},
		"node 2 pods v6": {c.NodePodCIDRV6(2).String(), "fd10:244:0:2::/64"},
		"service ip":     {c.FirstServiceIP().String(), "10.96.0.1"},
		"reserved":       {c.UnderlayReservedV4().String(), "172.30.0.0/24"},
		"netns":          {c.NodeNetns("lab-node-2"), "spl-lab-node-2"},
	}
	for name, got := range checks {
		if got[0] != got[1] {
			t.Errorf("%s = %s, want %s", name, got[0], got[1])
		}
	}
	// Node pod CIDRs must not overlap and must lie in the pod CIDR.
	all := netip.MustParsePrefix(c.PodCIDR)
	seen := map[netip.Prefix]bool{}
	for i := 1; i <= c.Nodes; i++ {
		p := c.NodePodCIDR(i)
		if !all.Contains(p.Addr()) || seen[p] {
			t.Errorf("node %d pod CIDR %s overlaps or is outside %s", i, p, all)
		}
		seen[p] = true
		if !c.UnderlayReservedV4().Contains(c.NodeUnderlayV4(i)) {
			t.Errorf("node %d underlay address %s outside the reserved block", i, c.NodeUnderlayV4(i))
		}
	}
}

func TestNodeIndex(t *testing.T) {
	c := testConfig(3)
	for _, n := range c.NodeNames() {
		if _, ok := c.NodeIndex(n); !ok {
			t.Errorf("NodeIndex(%q) not found", n)
		}
	}
	for _, n := range []string{"lab-node-0", "lab-node-4", "lab-node-01", "node-1", ""} {
		if _, ok := c.NodeIndex(n); ok {
			t.Errorf("NodeIndex(%q) accepted a name that is not a node", n)
		}
	}
}

func TestPodNetnsIsBoundedAndUnique(t *testing.T) {
	c := testConfig(1)
	long := strings.Repeat("x", 253)
	a := c.PodNetns("ns", long, "11111111-2222")
	b := c.PodNetns("ns", long, "22222222-2222")
	if a == b {
		t.Fatalf("different UIDs share namespace name %q", a)
	}
	if len(a) > 120 || !strings.HasPrefix(a, c.PodNetnsPrefix()+"ns-") {
		t.Fatalf("PodNetns = %q (len %d)", a, len(a))
	}
	if got := c.PodNetns("ns", "a/b c", "abc"); strings.ContainsAny(got, "/ ") {
		t.Fatalf("PodNetns kept unsafe characters: %q", got)
	}
}

func TestEnvRoundTripAndShell(t *testing.T) {
	entries := [][2]string{
		{"PLAIN", "value"},
		{"SPACES", "a b c"},
		{"QUOTE", "it's"},
		{"EMPTY", ""},
		{"DOLLAR", "$HOME `x`"},
	}
	data := RenderEnv(entries)
	got, err := ParseEnv(data)
	if err != nil {
		t.Fatalf("ParseEnv: %v", err)
	}
	for _, e := range entries {
		if got[e[0]] != e[1] {
			t.Errorf("%s = %q, want %q", e[0], got[e[0]], e[1])
		}
	}
	// The file must also mean the same thing to a shell.
	sh, err := exec.LookPath("sh")
	if err != nil {
		prereq.Missing(t, "no sh to cross-check the env file with")
	}
	f := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		out, err := exec.Command(sh, "-c", `. "$0" && printf %s "$`+e[0]+`"`, f).Output()
		if err != nil {
			t.Fatalf("sourcing env: %v", err)
		}
		if string(out) != e[1] {
			t.Errorf("shell sees %s=%q, want %q", e[0], out, e[1])
		}
	}
}

func TestLabEnvHasDocumentedKeys(t *testing.T) {
	c := testConfig(2)
	env := map[string]string{}
	for _, kv := range c.Env() {
		env[kv[0]] = kv[1]
	}
	for _, k := range []string{"LAB_KUBECONFIG", "LAB_NODES", "LAB_UNDERLAY_IF", "LAB_UNDERLAY_V4", "LAB_UNDERLAY_V6",
		"LAB_GATEWAY_V4", "LAB_GATEWAY_V6", "LAB_GATEWAY_NETNS", "LAB_SERVICE_CIDR", "LAB_POD_CIDR", "LAB_NODE_2_UNDERLAY_V4"} {
		if env[k] == "" {
			t.Errorf("env lacks %s", k)
		}
	}
	if env["LAB_NODES"] != "lab-node-1 lab-node-2" {
		t.Errorf("LAB_NODES = %q", env["LAB_NODES"])
	}
}

func TestParseEnvRejects(t *testing.T) {
	for _, in := range []string{"NOEQUALS", "=value", "K='unterminated", "K='a'b"} {
		if _, err := ParseEnv([]byte(in)); err == nil {
			t.Errorf("ParseEnv(%q) accepted bad input", in)
		}
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add([]byte("A=b\nB='c d'\n# x\n"))
	f.Add([]byte(`K='it'\''s'`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseEnv(data)
		if err != nil {
			return
		}
		// Whatever parses must survive a render/parse round trip.
		var entries [][2]string
		for _, k := range SortedKeys(m) {
			if strings.ContainsAny(k, "\n=#") || strings.TrimSpace(k) != k || strings.Contains(m[k], "\n") {
				return
			}
			entries = append(entries, [2]string{k, m[k]})
		}
		again, err := ParseEnv(RenderEnv(entries))
		if err != nil {
			t.Fatalf("re-parse of rendered %q: %v", RenderEnv(entries), err)
		}
		for k, v := range m {
			if again[k] != v {
				t.Fatalf("%s: %q became %q", k, v, again[k])
			}
		}
	})
}

func TestParseDaemonSpec(t *testing.T) {
	d, err := ParseDaemonSpec("agent=bin/spindle-agent,--v=2,--x", "/repo")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "agent" || d.Path != "/repo/bin/spindle-agent" || strings.Join(d.Args, " ") != "--v=2 --x" {
		t.Fatalf("got %+v", d)
	}
	d, err = ParseDaemonSpec("c=/abs/ctl", "/repo")
	if err != nil || d.Path != "/abs/ctl" || d.Args != nil {
		t.Fatalf("got %+v, %v", d, err)
	}
	for _, bad := range []string{"", "agent", "agent=", "Agent=/x", "a b=/x", "agent=,--v"} {
		if _, err := ParseDaemonSpec(bad, "/repo"); err == nil {
			t.Errorf("ParseDaemonSpec(%q) accepted bad input", bad)
		}
	}
}

func FuzzParseDaemonSpec(f *testing.F) {
	f.Add("agent=bin/a,--x")
	f.Add("=")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDaemonSpec(s, "/repo")
		if err != nil {
			return
		}
		if !daemonNameRE.MatchString(d.Name) || !filepath.IsAbs(d.Path) {
			t.Fatalf("accepted %q as %+v", s, d)
		}
	})
}

func TestMultusConfInlinesDefaultNetwork(t *testing.T) {
	c := testConfig(2)
	data, err := c.MultusConf(2)
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Type          string `json:"type"`
		Kubeconfig    string `json:"kubeconfig"`
		ClusterNet    string `json:"clusterNetwork"`
		Delegates     []map[string]any
		MultusNS      string `json:"multusNamespace"`
		CNIVersionStr string `json:"cniVersion"`
		RetryDel      bool   `json:"retryDeleteOnError"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		t.Fatalf("multus conf is not JSON: %v", err)
	}
	if !conf.RetryDel {
		t.Fatalf("multus conf without retryDeleteOnError: a DEL retried after a delegate failed can skip the delegates: %s", data)
	}
	if conf.Type != "multus" || conf.Kubeconfig != MultusKubeconfigPath || conf.ClusterNet != "" {
		t.Fatalf("unexpected multus conf: %s", data)
	}
	if len(conf.Delegates) != 1 || conf.Delegates[0]["type"] != "ptp" || conf.Delegates[0]["name"] != DefaultNetworkName {
		t.Fatalf("want one inline ptp delegate, got %v", conf.Delegates)
	}
	ranges := conf.Delegates[0]["ipam"].(map[string]any)["ranges"].([]any)
	if got := ranges[0].([]any)[0].(map[string]any)["subnet"]; got != "10.244.2.0/24" {
		t.Fatalf("node 2 IPv4 range = %v", got)
	}
	routes := conf.Delegates[0]["ipam"].(map[string]any)["routes"].([]any)
	if gw := routes[0].(map[string]any)["gw"]; gw != "10.244.2.1" {
		t.Fatalf("default route gateway = %v", gw)
	}
}

func TestStateSaveLoad(t *testing.T) {
	c := Default("/repo")
	c.Dir = t.TempDir()
	st := State{Config: c, NodeDaemons: []DaemonSpec{{Name: "agent", Path: "/x", Args: []string{"-v"}}}}
	if err := st.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != c || len(got.NodeDaemons) != 1 || got.NodeDaemons[0].Args[0] != "-v" {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := LoadState(t.TempDir()); err == nil {
		t.Fatal("LoadState of an empty directory succeeded")
	}
}

func TestMaxPods(t *testing.T) {
	c := Default("/repo")
	if c.MaxPods != DefaultMaxPods {
		t.Fatalf("default max pods = %d, want %d", c.MaxPods, DefaultMaxPods)
	}
	c.MaxPods = MaxPodsLimit
	if err := c.Validate(); err != nil {
		t.Fatalf("max pods %d refused: %v", MaxPodsLimit, err)
	}
	// Every pod of a full node gets an eth0 address of the node's /24
	// (host-local skips the network address, the gateway and broadcast).
	if got := 1<<(32-c.NodePodCIDR(1).Bits()) - 3; got != MaxPodsLimit {
		t.Fatalf("a node /24 gives %d pod addresses, MaxPodsLimit is %d", got, MaxPodsLimit)
	}
	env := map[string]string{}
	for _, kv := range c.Env() {
		env[kv[0]] = kv[1]
	}
	if env["LAB_MAX_PODS"] != "253" {
		t.Errorf("LAB_MAX_PODS = %q, want 253", env["LAB_MAX_PODS"])
	}
}

func TestLoadStateOfOlderLabDefaultsMaxPodsAndCNIWorkers(t *testing.T) {
	c := Default("/repo")
	c.Dir = t.TempDir()
	data, err := json.Marshal(State{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	// A lab saved before maxPods existed has no such key.
	var raw map[string]map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	delete(raw["config"], "maxPods")
	delete(raw["config"], "cniWorkers")
	if data, err = json.Marshal(raw); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.StatePath(), data, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.MaxPods != DefaultMaxPods || got.Config.CNIWorkers != DefaultCNIWorkers {
		t.Fatalf("an older lab has max pods %d and %d CNI workers, want %d and %d", got.Config.MaxPods, got.Config.CNIWorkers, DefaultMaxPods, DefaultCNIWorkers)
	}
}

func TestParseEnvAssignments(t *testing.T) {
	got, err := ParseEnvAssignments([]string{"KUBECONFIG=/x/kubeconfig", "EMPTY=", "A_1=b=c"})
	if err != nil || len(got) != 3 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, in := range []string{"NOEQUALS", "=v", "1A=v", "A-B=v", "A B=v"} {
		_, err := ParseEnvAssignments([]string{in})
		want := fmt.Sprintf("failed to parse environment entry %q: want KEY=VALUE with KEY of letters, digits and _ (not starting with a digit)", in)
		if err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %s", in, err, want)
		}
	}
}

func FuzzParseEnvAssignments(f *testing.F) {
	for _, s := range []string{"KUBECONFIG=/x", "A=", "=", "1=2", "A B=c", "\x00=\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := ParseEnvAssignments([]string{s})
		if err != nil {
			return
		}
		key, _, ok := strings.Cut(out[0], "=")
		if !ok || key == "" || strings.ContainsAny(key, " -=\x00") {
			t.Fatalf("accepted %q", s)
		}
	})
}
