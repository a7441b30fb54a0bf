// Package config holds the lab's static facts (names, ports, address plan) and
// renders the files derived from them: the env file, kubeconfigs and the
// nodes' CNI configuration. Nothing here performs I/O beyond what its callers
// hand in.
package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Config is the lab's configuration. It is chosen by the first `up` and
// persisted in the lab state so later commands see the same values.
type Config struct {
	// Dir is the absolute path of the lab directory (`_lab`).
	Dir string `json:"dir"`
	// RepoRoot is the absolute path of the repository the lab runs from.
	RepoRoot string `json:"repoRoot"`
	// Prefix starts the name of every network namespace the lab creates.
	Prefix string `json:"prefix"`
	// Nodes is the number of simulated nodes.
	Nodes int `json:"nodes"`
	// MaxPods is the pod capacity every node reports (a kubelet's
	// --max-pods). Labs saved before it existed read as 0 and get
	// DefaultMaxPods.
	MaxPods int `json:"maxPods,omitempty"`
	// CNIWorkers is how many pods each node's shim sets up or tears down
	// at once. All nodes share the machine's CPUs, so many nodes on few
	// CPUs want fewer. Labs saved before it existed read as 0 and get
	// DefaultCNIWorkers.
	CNIWorkers int `json:"cniWorkers,omitempty"`

	APIServerPort         int `json:"apiServerPort"`
	EtcdPort              int `json:"etcdPort"`
	EtcdPeerPort          int `json:"etcdPeerPort"`
	ControllerManagerPort int `json:"controllerManagerPort"`
	SchedulerPort         int `json:"schedulerPort"`

	ServiceCIDR string `json:"serviceCIDR"`
	PodCIDR     string `json:"podCIDR"`
	PodCIDRV6   string `json:"podCIDRV6"`
	UnderlayV4  string `json:"underlayV4"`
	UnderlayV6  string `json:"underlayV6"`
	UnderlayIf  string `json:"underlayIf"`
}

// Default returns the configuration used when nothing else is asked for.
func Default(repoRoot string) Config {
	return Config{
		Dir:                   filepath.Join(repoRoot, "_lab"),
		RepoRoot:              repoRoot,
		Prefix:                "spl",
		Nodes:                 2,
		MaxPods:               DefaultMaxPods,
		CNIWorkers:            DefaultCNIWorkers,
		APIServerPort:         36443,
		EtcdPort:              32379,
		EtcdPeerPort:          32380,
		ControllerManagerPort: 36257,
		SchedulerPort:         36259,
		ServiceCIDR:           "10.96.0.0/16",
		PodCIDR:               "10.244.0.0/16",
		PodCIDRV6:             "fd10:244::/56",
		UnderlayV4:            "172.30.0.0/16",
		UnderlayV6:            "fd30:172:30::/64",
		UnderlayIf:            "ul0",
	}
}

// MaxNodes bounds the node count so every node gets a /24 of the pod CIDR
// and a /64 of the IPv6 pod CIDR.
const MaxNodes = 200

// DefaultMaxPods is a kubelet's default pod capacity.
const DefaultMaxPods = 110

// DefaultCNIWorkers is how many pods a node's shim sets up at once unless
// told otherwise.
const DefaultCNIWorkers = 4

// MaxCNIWorkers bounds the CNI concurrency of a node.
const MaxCNIWorkers = 64

// MaxPodsLimit is the most pods a node can run: its eth0 addresses come from
// its /24 of the pod CIDR (host-local), which has 253 after the network
// address, the gateway and the broadcast address.
const MaxPodsLimit = 253

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)

// Validate checks the configuration and reports the first bad field.
func (c Config) Validate() error {
	if !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("lab dir %q must be absolute", c.Dir)
	}
	if !prefixRE.MatchString(c.Prefix) {
		return fmt.Errorf("prefix %q must be 1-6 lowercase letters or digits starting with a letter", c.Prefix)
	}
	if c.Nodes < 1 || c.Nodes > MaxNodes {
		return fmt.Errorf("node count %d must be between 1 and %d", c.Nodes, MaxNodes)
	}
	if c.MaxPods < 1 || c.MaxPods > MaxPodsLimit {
		return fmt.Errorf("max pods %d must be between 1 and %d (a node's pods take their eth0 address from its /24 of the pod CIDR)", c.MaxPods, MaxPodsLimit)
	}
	if c.CNIWorkers < 1 || c.CNIWorkers > MaxCNIWorkers {
		return fmt.Errorf("CNI workers %d must be between 1 and %d", c.CNIWorkers, MaxCNIWorkers)
	}
	ports := map[int]string{}
	for name, p := range map[string]int{
		"apiserver port": c.APIServerPort, "etcd port": c.EtcdPort, "etcd peer port": c.EtcdPeerPort,
		"controller-manager port": c.ControllerManagerPort, "scheduler port": c.SchedulerPort,
	} {
		if p < 1024 || p > 65535 {
			return fmt.Errorf("%s %d must be between 1024 and 65535", name, p)
		}
		if other, dup := ports[p]; dup {
			return fmt.Errorf("%s and %s both use port %d", name, other, p)
		}
		ports[p] = name
	}
	for name, cidr := range map[string]string{"service CIDR": c.ServiceCIDR, "pod CIDR": c.PodCIDR, "underlay IPv4 subnet": c.UnderlayV4} {
		p, err := netip.ParsePrefix(cidr)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("%s %q must be an IPv4 CIDR", name, cidr)
		}
	}
	if p, err := netip.ParsePrefix(c.PodCIDR); err != nil || p.Bits() > 16 {
		return fmt.Errorf("pod CIDR %q must be /16 or larger (one /24 per node)", c.PodCIDR)
	}
	if p, err := netip.ParsePrefix(c.UnderlayV4); err != nil || p.Bits() > 24 {
		return fmt.Errorf("underlay IPv4 subnet %q must be /24 or larger", c.UnderlayV4)
	}
	if p, err := netip.ParsePrefix(c.PodCIDRV6); err != nil || !p.Addr().Is6() || p.Bits() > 56 {
		return fmt.Errorf("IPv6 pod CIDR %q must be an IPv6 /56 or larger", c.PodCIDRV6)
	}
	if p, err := netip.ParsePrefix(c.UnderlayV6); err != nil || !p.Addr().Is6() || p.Bits() > 120 {
		return fmt.Errorf("underlay IPv6 subnet %q must be an IPv6 CIDR of /120 or larger", c.UnderlayV6)
	}
	if c.UnderlayIf == "" || len(c.UnderlayIf) > 15 {
		return fmt.Errorf("underlay interface name %q must be 1-15 characters", c.UnderlayIf)
	}
	return nil
}

// NodeName returns the name of node i (1-based).
func NodeName(i int) string { return "lab-node-" + strconv.Itoa(i) }

// NodeNames lists all node names.
func (c Config) NodeNames() []string {
	names := make([]string, c.Nodes)
	for i := range names {
		names[i] = NodeName(i + 1)
	}
	return names
}

// NodeIndex parses a node name back into its index; ok is false for names the
// lab does not own.
func (c Config) NodeIndex(node string) (int, bool) {
	s, found := strings.CutPrefix(node, "lab-node-")
	if !found {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 1 || i > c.Nodes || NodeName(i) != node {
		return 0, false
	}
	return i, true
}

// FabricNetns is the namespace holding the underlay bridge.
func (c Config) FabricNetns() string { return c.Prefix + "-fabric" }

// GatewayNetns is the namespace holding the underlay gateway addresses.
func (c Config) GatewayNetns() string { return c.Prefix + "-gw" }

// NodeNetns is the network namespace of a node.
func (c Config) NodeNetns(node string) string { return c.Prefix + "-" + node }

// PodNetnsPrefix starts the name of every pod network namespace.
func (c Config) PodNetnsPrefix() string { return c.Prefix + "-pod-" }

var nonName = regexp.MustCompile(`[^a-zA-Z0-9.-]+`)

// PodNetns is the network namespace name of a pod. It carries namespace and
// name (trimmed) for humans and the first 8 characters of the UID for
// uniqueness.
func (c Config) PodNetns(namespace, name, uid string) string {
	base := nonName.ReplaceAllString(namespace+"-"+name, "_")
	if len(base) > 80 {
		base = base[:80]
	}
	u := strings.ReplaceAll(uid, "-", "")
	if len(u) > 8 {
		u = u[:8]
	}
	return c.PodNetnsPrefix() + base + "-" + u
}

// Gateway addresses are the first host of each underlay subnet.
func (c Config) GatewayV4() netip.Addr { return nthAddr(netip.MustParsePrefix(c.UnderlayV4), 1) }

// GatewayV6 is the IPv6 underlay gateway.
func (c Config) GatewayV6() netip.Addr { return nthAddr(netip.MustParsePrefix(c.UnderlayV6), 1) }

// nodeHostOffset places node i at host number 10+i of the underlay subnets.
const nodeHostOffset = 10

// NodeUnderlayV4 is node i's underlay (InternalIP) IPv4 address.
func (c Config) NodeUnderlayV4(i int) netip.Addr {
	return nthAddr(netip.MustParsePrefix(c.UnderlayV4), nodeHostOffset+i)
}

// NodeUnderlayV6 is node i's underlay IPv6 address.
func (c Config) NodeUnderlayV6(i int) netip.Addr {
	return nthAddr(netip.MustParsePrefix(c.UnderlayV6), nodeHostOffset+i)
}

// UnderlayReservedV4 is the part of the underlay the lab itself uses (the
// gateway and node addresses); tests allocate elsewhere in the subnet.
func (c Config) UnderlayReservedV4() netip.Prefix {
	p := netip.MustParsePrefix(c.UnderlayV4)
	return netip.PrefixFrom(p.Masked().Addr(), 24)
}

// UnderlayReservedV6 is the IPv6 counterpart of UnderlayReservedV4.
func (c Config) UnderlayReservedV6() netip.Prefix {
	p := netip.MustParsePrefix(c.UnderlayV6)
	return netip.PrefixFrom(p.Masked().Addr(), 120)
}

// NodePodCIDR is node i's IPv4 pod CIDR: the i-th /24 of the pod CIDR.
func (c Config) NodePodCIDR(i int) netip.Prefix {
	p := netip.MustParsePrefix(c.PodCIDR).Masked()
	b := p.Addr().As4()
	b[2] += byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(b), 24)
}

// NodePodCIDRV6 is node i's IPv6 pod CIDR: the i-th /64 of the IPv6 pod CIDR.
func (c Config) NodePodCIDRV6(i int) netip.Prefix {
	p := netip.MustParsePrefix(c.PodCIDRV6).Masked()
	b := p.Addr().As16()
	b[7] += byte(i)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// FirstServiceIP is the address of the `kubernetes` service.
func (c Config) FirstServiceIP() netip.Addr {
	return nthAddr(netip.MustParsePrefix(c.ServiceCIDR), 1)
}

// APIServerURL is the API server address, the same on the host and in every
// node network namespace.
func (c Config) APIServerURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(c.APIServerPort)
}

func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	carry := n
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := int(b[i]) + carry
		b[i] = byte(sum & 0xff)
		carry = sum >> 8
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// Paths inside the lab directory.

// KubeconfigPath is the admin kubeconfig.
func (c Config) KubeconfigPath() string { return filepath.Join(c.Dir, "kubeconfig") }

// EnvPath is the shell env file.
func (c Config) EnvPath() string { return filepath.Join(c.Dir, "env") }

// StatePath is the persisted lab state.
func (c Config) StatePath() string { return filepath.Join(c.Dir, "state.json") }

// LogDir holds every process's log.
func (c Config) LogDir() string { return filepath.Join(c.Dir, "logs") }

// PKIDir holds certificates and keys.
func (c Config) PKIDir() string { return filepath.Join(c.Dir, "pki") }

// PidDir holds the pid file of every process the lab started.
func (c Config) PidDir() string { return filepath.Join(c.Dir, "pids") }

// NodeDir is the per-node state directory.
func (c Config) NodeDir(node string) string { return filepath.Join(c.Dir, "nodes", node) }

// NodeFS maps a path of a node's private file-system view to the host
// directory that backs it.
func (c Config) NodeFS(node, path string) string {
	return filepath.Join(c.NodeDir(node), "fs", filepath.Clean("/"+path))
}

// NodePodsDir holds the shim's per-pod records.
func (c Config) NodePodsDir(node string) string { return filepath.Join(c.NodeDir(node), "pods") }

// NodePrivateDirs are the directories every node sees as its own. Each is
// backed by NodeFS(node, dir).
var NodePrivateDirs = []string{"/etc/cni", "/opt/cni", "/var/lib/cni", "/run/spindle"}

// Env returns the env file entries in a stable order.
func (c Config) Env() [][2]string {
	nodes := c.NodeNames()
	env := [][2]string{
		{"LAB_DIR", c.Dir},
		{"LAB_KUBECONFIG", c.KubeconfigPath()},
		{"LAB_APISERVER", c.APIServerURL()},
		{"LAB_PREFIX", c.Prefix},
		{"LAB_NODES", strings.Join(nodes, " ")},
		{"LAB_MAX_PODS", strconv.Itoa(c.MaxPods)},
		{"LAB_CNI_WORKERS", strconv.Itoa(c.CNIWorkers)},
		{"LAB_UNDERLAY_IF", c.UnderlayIf},
		{"LAB_UNDERLAY_V4", c.UnderlayV4},
		{"LAB_UNDERLAY_V6", c.UnderlayV6},
		{"LAB_UNDERLAY_RESERVED_V4", c.UnderlayReservedV4().String()},
		{"LAB_UNDERLAY_RESERVED_V6", c.UnderlayReservedV6().String()},
		{"LAB_GATEWAY_V4", c.GatewayV4().String()},
		{"LAB_GATEWAY_V6", c.GatewayV6().String()},
		{"LAB_GATEWAY_NETNS", c.GatewayNetns()},
		{"LAB_FABRIC_NETNS", c.FabricNetns()},
		{"LAB_SERVICE_CIDR", c.ServiceCIDR},
		{"LAB_POD_CIDR", c.PodCIDR},
		{"LAB_POD_CIDR_V6", c.PodCIDRV6},
		{"LAB_POD_NETNS_PREFIX", c.PodNetnsPrefix()},
	}
	for i, n := range nodes {
		p := fmt.Sprintf("LAB_NODE_%d_", i+1)
		env = append(env,
			[2]string{p + "NAME", n},
			[2]string{p + "NETNS", c.NodeNetns(n)},
			[2]string{p + "UNDERLAY_V4", c.NodeUnderlayV4(i + 1).String()},
			[2]string{p + "UNDERLAY_V6", c.NodeUnderlayV6(i + 1).String()},
			[2]string{p + "POD_CIDR", c.NodePodCIDR(i + 1).String()},
			[2]string{p + "POD_CIDR_V6", c.NodePodCIDRV6(i + 1).String()},
		)
	}
	return env
}

// RenderEnv writes entries as shell assignments that `source` accepts and
// that ParseEnv reads back.
func RenderEnv(entries [][2]string) []byte {
	var b strings.Builder
	b.WriteString("# Written by `lab up`; source it from a shell.\n")
	for _, e := range entries {
		b.WriteString(e[0])
		b.WriteByte('=')
		b.WriteString(shellQuote(e[1]))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:,@%+=-]*$`)

func shellQuote(s string) string {
	if s != "" && shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ParseEnv reads the subset of shell syntax RenderEnv writes: KEY=value lines,
// values optionally single-quoted (a quote inside is written as quote,
// backslash, quote, quote), comments and blank lines.
func ParseEnv(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("failed to parse env line %d %q: want KEY=value", n+1, line)
		}
		if strings.HasPrefix(v, "'") {
			var val strings.Builder
			rest := v
			for len(rest) > 0 {
				if !strings.HasPrefix(rest, "'") {
					return nil, fmt.Errorf("failed to parse env line %d %q: bad quoting", n+1, line)
				}
				end := strings.IndexByte(rest[1:], '\'')
				if end < 0 {
					return nil, fmt.Errorf("failed to parse env line %d %q: unterminated quote", n+1, line)
				}
				val.WriteString(rest[1 : 1+end])
				rest = rest[end+2:]
				if strings.HasPrefix(rest, `\''`) {
					val.WriteByte('\'')
					rest = rest[2:]
				} else if rest != "" {
					return nil, fmt.Errorf("failed to parse env line %d %q: bad quoting", n+1, line)
				}
			}
			v = val.String()
		}
		out[k] = v
	}
	return out, nil
}

// DaemonSpec is a process the lab keeps running: once per node (inside the
// node's namespaces) or once for the cluster.
type DaemonSpec struct {
	Name string   `json:"name"`
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
}

var daemonNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// ParseDaemonSpec parses NAME=PATH[,ARG...]. Relative paths are resolved
// against cwd so the daemon can be started from any directory.
func ParseDaemonSpec(s, cwd string) (DaemonSpec, error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || rest == "" {
		return DaemonSpec{}, fmt.Errorf("failed to parse daemon %q: want NAME=PATH[,ARG...]", s)
	}
	if !daemonNameRE.MatchString(name) {
		return DaemonSpec{}, fmt.Errorf("failed to parse daemon %q: name %q must be lowercase letters, digits, '.', '_' or '-'", s, name)
	}
	parts := strings.Split(rest, ",")
	path := parts[0]
	if path == "" {
		return DaemonSpec{}, fmt.Errorf("failed to parse daemon %q: empty path", s)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(cwd, path)
	}
	d := DaemonSpec{Name: name, Path: path}
	if len(parts) > 1 {
		d.Args = parts[1:]
	}
	return d, nil
}

// State is what `up` persists in the lab directory.
type State struct {
	Config         Config       `json:"config"`
	NodeDaemons    []DaemonSpec `json:"nodeDaemons,omitempty"`
	ClusterDaemons []DaemonSpec `json:"clusterDaemons,omitempty"`
	// CNIDirs are extra directories whose executables every node gets in
	// its CNI bin directory.
	CNIDirs []string `json:"cniDirs,omitempty"`
	// NodeEnv holds, per node, KEY=VALUE entries added to the environment
	// of that node's daemons (after the lab's own, so they win), e.g. a
	// KUBECONFIG of their own; set with `lab node env`.
	NodeEnv map[string][]string `json:"nodeEnv,omitempty"`
}

// ParseEnvAssignments checks KEY=VALUE entries of `lab node env`: KEY is a
// shell variable name, VALUE anything (possibly empty).
func ParseEnvAssignments(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		key, _, ok := strings.Cut(a, "=")
		if !ok || !envKey.MatchString(key) {
			return nil, fmt.Errorf("failed to parse environment entry %q: want KEY=VALUE with KEY of letters, digits and _ (not starting with a digit)", a)
		}
		out = append(out, a)
	}
	return out, nil
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// NodeCNIJournal is the file where node's shim appends one JSON line per
// CNI DEL it ran (see shim.DelRecord).
func (c Config) NodeCNIJournal(node string) string {
	return filepath.Join(c.NodeDir(node), "cni-del.jsonl")
}

// LoadState reads the persisted state of the lab in dir.
func LoadState(dir string) (State, error) {
	var s State
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return s, fmt.Errorf("failed to read lab state in %q (is the lab up?): %w", dir, err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("failed to parse lab state %q: %w", filepath.Join(dir, "state.json"), err)
	}
	if s.Config.MaxPods == 0 {
		s.Config.MaxPods = DefaultMaxPods
	}
	if s.Config.CNIWorkers == 0 {
		s.Config.CNIWorkers = DefaultCNIWorkers
	}
	return s, s.Config.Validate()
}

// Save writes the state atomically.
func (s State) Save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.Config.StatePath(), data, 0o644)
}

// WriteFileAtomic writes data to a temporary file next to path and renames it
// into place, so readers never see a partial file and a running executable
// can be replaced.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("failed to create directory for %q: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("failed to create temporary file for %q: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %q: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to chmod %q: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write %q: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("failed to rename into %q: %w", path, err)
	}
	return nil
}

// DefaultNetworkName is the name of the pods' eth0 network.
const DefaultNetworkName = "lab-default"

// MultusKubeconfigPath is where Multus finds its kubeconfig inside a node.
const MultusKubeconfigPath = "/etc/cni/net.d/multus.d/multus.kubeconfig"

// MultusConfFile is the name of the node's Multus configuration, first in
// lexical order so it is the one the shim runs.
const MultusConfFile = "00-multus.conf"

// DefaultNetworkConf renders node i's default network: ptp with host-local
// over the node's pod CIDRs, with default routes in the pod via the first
// address of each CIDR (host-local's gateway, which ptp puts on the node side
// of the veth).
func (c Config) DefaultNetworkConf(i int) map[string]any {
	return map[string]any{
		"cniVersion": "1.0.0",
		"name":       DefaultNetworkName,
		"type":       "ptp",
		"mtu":        1500,
		"ipam": map[string]any{
			"type": "host-local",
			"ranges": []any{
				[]any{map[string]any{"subnet": c.NodePodCIDR(i).String()}},
				[]any{map[string]any{"subnet": c.NodePodCIDRV6(i).String()}},
			},
			"routes": []any{
				map[string]any{"dst": "0.0.0.0/0", "gw": nthAddr(c.NodePodCIDR(i), 1).String()},
				map[string]any{"dst": "::/0", "gw": nthAddr(c.NodePodCIDRV6(i), 1).String()},
			},
		},
	}
}

// MultusConf renders node i's Multus thin-plugin configuration with the
// default network inlined as its only delegate.
func (c Config) MultusConf(i int) ([]byte, error) {
	conf := map[string]any{
		"cniVersion":      "1.0.0",
		"name":            "multus-cni-network",
		"type":            "multus",
		"kubeconfig":      MultusKubeconfigPath,
		"confDir":         "/etc/cni/net.d",
		"cniDir":          "/var/lib/cni/multus",
		"binDir":          "/opt/cni/bin",
		"multusNamespace": "kube-system",
		"logLevel":        "verbose",
		"logFile":         filepath.Join(c.LogDir(), NodeName(i)+"-multus.log"),
		"delegates":       []any{c.DefaultNetworkConf(i)},
		// Without it Multus deletes its cached delegate list on the first
		// DEL even when a delegate failed; the runtime's retry then finds no
		// list, and when the pod cannot be read either (API server down)
		// Multus reports success without calling the delegates: a DEL that
		// Spindle refused is turned into a silent leak (found by the chaos
		// run, docs/chaos.md).
		"retryDeleteOnError": true,
	}
	return json.MarshalIndent(conf, "", "  ")
}

// SortedKeys returns the keys of m sorted, a helper for deterministic output.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
