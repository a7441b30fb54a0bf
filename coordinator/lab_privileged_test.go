package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/spindle-net/spindle/test/prereq"
)

// The lab of the privileged tests, all in namespaces the tests create:
//
//	node ns:  uplink0 10.10.0.1/24 fd00:10::1/64 ---- lan0 10.10.0.254/24 fd00:10::fe/64  (lan ns,
//	          uplink1 10.20.0.1/24 fd00:20::1/64 ---- lan1 10.20.0.254/24 fd00:20::fe/64   the gateway)
//	pod ns:   eth0 (ptp, the overlay) or macvlan on uplink0; net1 macvlan on uplink0; net2 macvlan on uplink1
//
// The plugins run in the node namespace, as kubelet/Multus would run them.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func requireRoot(t *testing.T) {
	t.Helper()
	prereq.Root(t)
}

// cniPaths returns the reference plugins' directory and a directory holding
// a freshly built coordinator.
func cniPaths(t *testing.T) []string {
	t.Helper()
	ref := os.Getenv("CNI_PLUGINS_DIR")
	if ref == "" {
		out, err := exec.Command("bash", "../test/lab/tools/build-deps.sh", "path", "cni").Output()
		if err == nil {
			ref = strings.TrimSpace(string(out))
		}
	}
	for _, p := range []string{"macvlan", "ptp", "static", "host-local"} {
		if _, err := os.Stat(filepath.Join(ref, p)); err != nil {
			prereq.Missing(t, "reference CNI plugins not found in %q (missing %s): run `bash test/lab/tools/build-deps.sh cni` or set CNI_PLUGINS_DIR", ref, p)
		}
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "coordinator-bin-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "coordinator"), "../cmd/coordinator").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/coordinator: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return []string{ref, binDir}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type lab struct {
	t      *testing.T
	node   ns.NetNS
	lan    ns.NetNS
	pod    ns.NetNS
	cni    *libcni.CNIConfig
	tmp    string
	lanMAC map[string]string
	agent  string
}

func newNS(t *testing.T) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("failed to create netns: %v", err)
	}
	t.Cleanup(func() {
		n.Close()
		if err := testutils.UnmountNS(n); err != nil {
			t.Errorf("failed to remove netns: %v", err)
		}
	})
	return n
}

// sh runs a command inside n (on a thread locked into it) and returns its
// output.
func sh(t *testing.T, n ns.NetNS, args ...string) string {
	t.Helper()
	out, err := shErr(n, args...)
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

func shErr(n ns.NetNS, args ...string) (string, error) {
	var out []byte
	err := n.Do(func(ns.NetNS) error {
		var err error
		out, err = exec.Command(args[0], args[1:]...).CombinedOutput()
		return err
	})
	return string(out), err
}

func newLab(t *testing.T) *lab {
	requireRoot(t)
	paths := cniPaths(t)
	l := &lab{t: t, node: newNS(t), lan: newNS(t), pod: newNS(t), tmp: t.TempDir(), lanMAC: map[string]string{}}
	l.cni = libcni.NewCNIConfigWithCacheDir(paths, filepath.Join(l.tmp, "cache"), nil)
	for _, n := range []ns.NetNS{l.node, l.lan, l.pod} {
		sh(t, n, "ip", "link", "set", "lo", "up")
		sh(t, n, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	sh(t, l.lan, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.default.rp_filter=1")
	lanPath := l.lan.Path()
	for i, sub := range []string{"10", "20"} {
		up, lan := fmt.Sprintf("uplink%d", i), fmt.Sprintf("lan%d", i)
		sh(t, l.node, "ip", "link", "add", up, "type", "veth", "peer", "name", lan, "netns", lanPath)
		sh(t, l.node, "ip", "addr", "add", "10."+sub+".0.1/24", "dev", up)
		sh(t, l.node, "ip", "addr", "add", "fd00:"+sub+"::1/64", "dev", up, "nodad")
		sh(t, l.node, "ip", "link", "set", up, "up")
		sh(t, l.lan, "ip", "addr", "add", "10."+sub+".0.254/24", "dev", lan)
		sh(t, l.lan, "ip", "addr", "add", "fd00:"+sub+"::fe/64", "dev", lan, "nodad")
		sh(t, l.lan, "ip", "link", "set", lan, "up")
		sh(t, l.lan, "sysctl", "-qw", "net.ipv4.conf."+lan+".rp_filter=1", "net.ipv4.neigh."+lan+".locktime=0")
		l.lanMAC[lan] = linkMAC(t, l.lan, lan)
	}
	return l
}

// linkMAC returns the MAC address of link in n, as `ip` prints it.
func linkMAC(t *testing.T, n ns.NetNS, link string) string {
	t.Helper()
	f := strings.Fields(sh(t, n, "ip", "-o", "link", "show", link))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "link/ether" {
			return f[i+1]
		}
	}
	t.Fatalf("no MAC address for %s", link)
	return ""
}

// serveAgent serves a fake node agent on a unix socket: the SpiderCoordinator
// defaults and one pod's annotations.
func (l *lab) serveAgent(defaults map[string]any, annotations map[string]string) {
	l.agent = filepath.Join(l.tmp, "agent.sock")
	lis, err := net.Listen("unix", l.agent)
	if err != nil {
		l.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/coordinator", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(defaults)
	})
	mux.HandleFunc("GET /v1/pods/{ns}/{name}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("ns") != "lab" || r.PathValue("name") != "pod" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"annotations": annotations})
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(lis) }()
	l.t.Cleanup(func() { srv.Close() })
}

func (l *lab) coordinator(extra map[string]any) map[string]any {
	c := map[string]any{
		"type":           "coordinator",
		"agentSocket":    filepath.Join(l.tmp, "absent.sock"),
		"hostLockFile":   filepath.Join(l.tmp, "coordinator.lock"),
		"serviceCIDR":    []string{"10.96.0.0/12", "fd00:96::/108"},
		"overlayPodCIDR": []string{"10.244.0.0/16", "fd00:244::/64"},
		"logFile":        filepath.Join(l.tmp, "coordinator.log"),
		"logLevel":       "debug",
	}
	if l.agent != "" {
		c["agentSocket"] = l.agent
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func macvlan(master string, addrs []string, gws []string, routes ...string) map[string]any {
	var as []map[string]string
	for i, a := range addrs {
		as = append(as, map[string]string{"address": a, "gateway": gws[i]})
	}
	var rs []map[string]string
	for _, r := range routes {
		rs = append(rs, map[string]string{"dst": r})
	}
	return map[string]any{
		"type": "macvlan", "master": master, "mode": "bridge",
		"ipam": map[string]any{"type": "static", "addresses": as, "routes": rs},
	}
}

func ptp() map[string]any {
	return map[string]any{
		"type": "ptp",
		"ipam": map[string]any{
			"type": "host-local",
			"ranges": [][]map[string]string{
				{{"subnet": "10.244.1.0/24"}},
				{{"subnet": "fd00:244::/64"}},
			},
			"routes":  []map[string]string{{"dst": "0.0.0.0/0"}, {"dst": "::/0"}},
			"dataDir": "",
		},
	}
}

func (l *lab) conflist(name, cniVersion string, plugins ...map[string]any) *libcni.NetworkConfigList {
	for _, p := range plugins {
		if ipam, ok := p["ipam"].(map[string]any); ok && ipam["type"] == "host-local" {
			ipam["dataDir"] = filepath.Join(l.tmp, "host-local")
		}
	}
	b, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": name, "plugins": plugins})
	if err != nil {
		l.t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		l.t.Fatalf("conflist %s: %v", b, err)
	}
	return list
}

func (l *lab) rt(ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: "lab-container-1",
		NetNS:       l.pod.Path(),
		IfName:      ifName,
		Args:        [][2]string{{"K8S_POD_NAMESPACE", "lab"}, {"K8S_POD_NAME", "pod"}, {"IgnoreUnknown", "true"}},
	}
}

// inNode runs f on a thread of the node namespace, so that the plugins
// libcni starts run there.
func (l *lab) inNode(f func() error) error {
	return l.node.Do(func(ns.NetNS) error {
		runtime.LockOSThread()
		return f()
	})
}

func (l *lab) add(list *libcni.NetworkConfigList, ifName string) error {
	return l.inNode(func() error {
		_, err := l.cni.AddNetworkList(context.Background(), list, l.rt(ifName))
		return err
	})
}

func (l *lab) mustAdd(list *libcni.NetworkConfigList, ifName string) {
	l.t.Helper()
	if err := l.add(list, ifName); err != nil {
		l.t.Fatalf("ADD %s (%s): %v\nlog:\n%s", ifName, list.Name, err, l.log())
	}
}

func (l *lab) check(list *libcni.NetworkConfigList, ifName string) error {
	return l.inNode(func() error { return l.cni.CheckNetworkList(context.Background(), list, l.rt(ifName)) })
}

func (l *lab) del(list *libcni.NetworkConfigList, ifName string) error {
	return l.inNode(func() error { return l.cni.DelNetworkList(context.Background(), list, l.rt(ifName)) })
}

func (l *lab) log() string {
	b, _ := os.ReadFile(filepath.Join(l.tmp, "coordinator.log"))
	return string(b)
}

// tables returns what users see: rules and every table but local, both
// families, without the kernel's IPv6 link-local routes.
func tables(t *testing.T, n ns.NetNS) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"ip", "-4", "rule"}, {"ip", "-6", "rule"},
		{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
	} {
		fmt.Fprintf(&b, "# %s\n", strings.Join(args, " "))
		for _, line := range strings.Split(strings.TrimSpace(sh(t, n, args...)), "\n") {
			// The kernel adds IPv6 link-local routes asynchronously, once a
			// link's carrier is up; they are not the coordinator's.
			if strings.Contains(line, "table local") || line == "" || strings.HasPrefix(line, "fe80::/64 ") {
				continue
			}
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// dump appends what users see to $COORDINATOR_LAB_DUMP, for the docs.
func dump(t *testing.T, title string, sections ...string) {
	path := os.Getenv("COORDINATOR_LAB_DUMP")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== %s\n", title)
	for _, s := range sections {
		fmt.Fprintln(f, s)
	}
}

// addCoordinatorOnly runs the coordinator alone, with the list's cached
// result as prevResult: a repeated ADD of the last plugin of the chain.
func (l *lab) addCoordinatorOnly(list *libcni.NetworkConfigList, ifName string) error {
	conf := map[string]any{}
	if err := json.Unmarshal(list.Plugins[len(list.Plugins)-1].Bytes, &conf); err != nil {
		return err
	}
	return l.execCoordinator("ADD", list, conf, ifName)
}

// execCoordinator runs the coordinator binary with conf, named and
// versioned like list, and list's cached result as prevResult.
func (l *lab) execCoordinator(cmd string, list *libcni.NetworkConfigList, conf map[string]any, ifName string) error {
	cached, err := l.cni.GetNetworkListCachedResult(list, l.rt(ifName))
	if err != nil || cached == nil {
		return fmt.Errorf("no cached result for %s: %v", ifName, err)
	}
	prev, err := json.Marshal(cached)
	if err != nil {
		return err
	}
	conf["name"], conf["cniVersion"], conf["prevResult"] = list.Name, list.CNIVersion, json.RawMessage(prev)
	stdin, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	rt := l.rt(ifName)
	args := &invoke.Args{
		Command: cmd, ContainerID: rt.ContainerID, NetNS: rt.NetNS, IfName: ifName,
		PluginArgs: rt.Args, Path: binDir,
	}
	plugin := filepath.Join(binDir, "coordinator")
	return l.inNode(func() error {
		if cmd != "ADD" {
			return invoke.ExecPluginWithoutResult(context.Background(), plugin, stdin, args, nil)
		}
		_, err := invoke.ExecPluginWithResult(context.Background(), plugin, stdin, args, nil)
		return err
	})
}

// ping runs one ping from n; it reports whether an answer came back.
func ping(n ns.NetNS, args ...string) error {
	out, err := shErr(n, append([]string{"ping", "-c1", "-W2"}, args...)...)
	if err != nil {
		return fmt.Errorf("ping %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

var (
	vethName  = regexp.MustCompile(`veth[0-9a-f]{8}\b`)
	linkLocal = regexp.MustCompile(`fe80::[0-9a-f:]+ dev`)
)

// normaliseNode hides the names and addresses the overlay plugin picks at
// random.
func normaliseNode(s string) string {
	s = vethName.ReplaceAllString(s, "<ptp-host-veth>")
	return linkLocal.ReplaceAllString(s, "<pod-eth0-link-local> dev")
}
