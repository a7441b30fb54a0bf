// Package topology builds and removes the lab's network namespaces (fabric
// bridge, gateway, nodes) and the nodes' private mount namespaces. The root
// network namespace is never changed: every link and address lives in a
// namespace the lab created, and every command runs inside one.
package topology

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spindle-net/spindle/test/lab/config"
)

// BridgeName is the fabric bridge joining the nodes' underlay interfaces.
const BridgeName = "br0"

func run(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("failed to run %q: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// InNetns runs a shell script inside the named network namespace.
func InNetns(ctx context.Context, netns, script string) error {
	return run(ctx, "nsenter", "--net=/run/netns/"+netns, "--", "sh", "-euc", script)
}

// NetnsPath is the bind-mount path of a named network namespace.
func NetnsPath(name string) string { return "/run/netns/" + name }

// NetnsExists reports whether the named network namespace exists.
func NetnsExists(name string) bool {
	_, err := os.Stat(NetnsPath(name))
	return err == nil
}

// ListNetns lists named network namespaces starting with prefix.
func ListNetns(prefix string) []string {
	entries, _ := os.ReadDir("/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// AddNetns creates a named network namespace with lo up and IPv6 duplicate
// address detection off (addresses are usable at once).
func AddNetns(ctx context.Context, name string) error {
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	return InNetns(ctx, name, `ip link set lo up
echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad
echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad`)
}

// DelNetns removes a named network namespace; a missing one is not an error.
func DelNetns(ctx context.Context, name string) error {
	if !NetnsExists(name) {
		return nil
	}
	return run(ctx, "ip", "netns", "del", name)
}

// FabricScript configures the fabric namespace: the bridge and the gateway's
// veth. Pure, for tests.
func FabricScript(c config.Config) string {
	return fmt.Sprintf(`ip link add %[1]s type bridge mcast_snooping 0
ip link set %[1]s up
ip link add gw type veth peer name %[2]s netns %[3]s
ip link set gw master %[1]s up
`, BridgeName, c.UnderlayIf, c.GatewayNetns())
}

// GatewayScript configures the gateway namespace: the gateway addresses and
// routes to every node's pod CIDRs so pods can reach it over eth0.
func GatewayScript(c config.Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, `echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
ip addr add %s/%d dev %s
ip addr add %s/%d dev %s nodad
ip link set %s up
`, c.GatewayV4(), bits(c.UnderlayV4), c.UnderlayIf, c.GatewayV6(), bits(c.UnderlayV6), c.UnderlayIf, c.UnderlayIf)
	for i := 1; i <= c.Nodes; i++ {
		fmt.Fprintf(&b, "ip route replace %s via %s\n", c.NodePodCIDR(i), c.NodeUnderlayV4(i))
		fmt.Fprintf(&b, "ip -6 route replace %s via %s\n", c.NodePodCIDRV6(i), c.NodeUnderlayV6(i))
	}
	return b.String()
}

// NodeScript configures node i's namespace: forwarding, the underlay
// addresses and routes to the other nodes' pod CIDRs.
func NodeScript(c config.Config, i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/ipv6/conf/all/forwarding
ip addr add %s/%d dev %s
ip addr add %s/%d dev %s nodad
ip link set %s up
`, c.NodeUnderlayV4(i), bits(c.UnderlayV4), c.UnderlayIf, c.NodeUnderlayV6(i), bits(c.UnderlayV6), c.UnderlayIf, c.UnderlayIf)
	for j := 1; j <= c.Nodes; j++ {
		if j == i {
			continue
		}
		fmt.Fprintf(&b, "ip route replace %s via %s dev %s\n", c.NodePodCIDR(j), c.NodeUnderlayV4(j), c.UnderlayIf)
		fmt.Fprintf(&b, "ip -6 route replace %s via %s dev %s\n", c.NodePodCIDRV6(j), c.NodeUnderlayV6(j), c.UnderlayIf)
	}
	return b.String()
}

func bits(cidr string) int {
	_, after, _ := strings.Cut(cidr, "/")
	n, _ := strconv.Atoi(after)
	return n
}

func fabricPort(i int) string { return fmt.Sprintf("n%d", i) }

// Ensure creates whatever part of the network topology is missing. A
// namespace that exists is trusted as configured.
func Ensure(ctx context.Context, c config.Config) error {
	if !NetnsExists(c.FabricNetns()) {
		_ = DelNetns(ctx, c.GatewayNetns())
		if err := AddNetns(ctx, c.FabricNetns()); err != nil {
			return err
		}
		if err := AddNetns(ctx, c.GatewayNetns()); err != nil {
			return err
		}
		if err := InNetns(ctx, c.FabricNetns(), FabricScript(c)); err != nil {
			return err
		}
		if err := InNetns(ctx, c.GatewayNetns(), GatewayScript(c)); err != nil {
			return err
		}
	}
	for i := 1; i <= c.Nodes; i++ {
		ns := c.NodeNetns(config.NodeName(i))
		if NetnsExists(ns) {
			continue
		}
		if err := AddNetns(ctx, ns); err != nil {
			return err
		}
		port := fabricPort(i)
		if err := InNetns(ctx, c.FabricNetns(), fmt.Sprintf(
			"ip link del %[1]s 2>/dev/null || true\nip link add %[1]s type veth peer name %[2]s netns %[3]s\nip link set %[1]s master %[4]s up\n",
			port, c.UnderlayIf, ns, BridgeName)); err != nil {
			return err
		}
		if err := InNetns(ctx, ns, NodeScript(c, i)); err != nil {
			return err
		}
	}
	return nil
}

// Teardown removes every network namespace carrying the lab prefix: pods
// first, then nodes, gateway and fabric.
func Teardown(ctx context.Context, c config.Config) []error {
	var errs []error
	all := ListNetns(c.Prefix + "-")
	order := func(n string) int {
		switch {
		case strings.HasPrefix(n, c.PodNetnsPrefix()):
			return 0
		case n == c.FabricNetns():
			return 3
		case n == c.GatewayNetns():
			return 2
		default:
			return 1
		}
	}
	for pass := 0; pass <= 3; pass++ {
		for _, n := range all {
			if order(n) == pass {
				if err := DelNetns(ctx, n); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errs
}

// Mount is one entry of /proc/self/mountinfo.
type Mount struct {
	Target string
	FSType string
	Source string
}

// Mounts lists the mounts of the calling process's mount namespace.
func Mounts() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("failed to read mountinfo: %w", err)
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 {
			continue
		}
		m := Mount{Target: unescape(fields[4])}
		for k, fld := range fields {
			if fld == "-" && k+2 < len(fields) {
				m.FSType = fields[k+1]
				m.Source = fields[k+2]
				break
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Leftovers lists what of the lab is still present in the root namespaces:
// network namespaces with the prefix, mounts under the lab directory or of
// the lab's namespaces, and links with the prefix in the root namespace.
func Leftovers(ctx context.Context, c config.Config) []string {
	var left []string
	for _, n := range ListNetns(c.Prefix + "-") {
		left = append(left, "netns "+n)
	}
	mounts, err := Mounts()
	if err != nil {
		left = append(left, err.Error())
	}
	for _, m := range mounts {
		if strings.HasPrefix(m.Target, c.Dir+"/") || m.Target == c.Dir ||
			strings.HasPrefix(m.Target, "/run/netns/"+c.Prefix+"-") ||
			strings.HasPrefix(m.Source, "lab-") && m.FSType == "overlay" {
			left = append(left, "mount "+m.Target+" ("+m.FSType+")")
		}
	}
	out, err := exec.CommandContext(ctx, "ip", "-o", "link", "show").Output()
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				name := strings.TrimSuffix(f[1], ":")
				name, _, _ = strings.Cut(name, "@")
				if strings.HasPrefix(name, c.Prefix+"-") {
					left = append(left, "link "+name+" in the root network namespace")
				}
			}
		}
	}
	return left
}

// NodeMountPlan describes how one node's private directories are made: the
// existing ancestors overlaid (so mount points can be created without
// touching the host) and the bind mounts of the node's directories.
type NodeMountPlan struct {
	Overlays []Overlay
	Binds    [][2]string // host source, node target
}

// Overlay mounts an overlay on Lower with the node's upper directory.
type Overlay struct {
	Lower, Upper, Work string
	// MountPoints are created in Upper before mounting.
	MountPoints []string
	// Submounts already mounted below Lower; they are moved aside and back so
	// the overlay does not hide them (e.g. /run/netns).
	Submounts []string
}

// PlanNodeMounts decides the node's mounts. exists reports whether a host
// path exists; mounts lists the host's current mount points.
func PlanNodeMounts(c config.Config, node string, exists func(string) bool, mounts []string) (NodeMountPlan, error) {
	var plan NodeMountPlan
	byLower := map[string]*Overlay{}
	var lowers []string
	for _, dir := range config.NodePrivateDirs {
		plan.Binds = append(plan.Binds, [2]string{c.NodeFS(node, dir), dir})
		if exists(dir) {
			continue
		}
		anc := filepath.Dir(dir)
		for anc != "/" && !exists(anc) {
			anc = filepath.Dir(anc)
		}
		if anc == "/" {
			return plan, fmt.Errorf("failed to plan private directory %q of node %q: no existing parent other than /", dir, node)
		}
		if strings.HasPrefix(c.Dir+"/", anc+"/") {
			return plan, fmt.Errorf("failed to plan private directory %q of node %q: lab directory %q lies under %q", dir, node, c.Dir, anc)
		}
		o, ok := byLower[anc]
		if !ok {
			esc := strings.ReplaceAll(strings.Trim(anc, "/"), "/", "_")
			o = &Overlay{
				Lower: anc,
				Upper: filepath.Join(c.NodeDir(node), "ovl", esc, "upper"),
				Work:  filepath.Join(c.NodeDir(node), "ovl", esc, "work"),
			}
			for _, m := range mounts {
				if strings.HasPrefix(m, anc+"/") && !coveredBy(m, o.Submounts) {
					o.Submounts = append(o.Submounts, m)
				}
			}
			byLower[anc] = o
			lowers = append(lowers, anc)
		}
		rel, _ := filepath.Rel(anc, dir)
		o.MountPoints = append(o.MountPoints, filepath.Join(o.Upper, rel))
	}
	for _, l := range lowers {
		plan.Overlays = append(plan.Overlays, *byLower[l])
	}
	return plan, nil
}

func coveredBy(m string, parents []string) bool {
	for _, p := range parents {
		if strings.HasPrefix(m, p+"/") || m == p {
			return true
		}
	}
	return false
}

// MountScript renders the shell script run in a fresh mount namespace to
// apply plan; it finishes by writing readyFile. Directories it names are
// created by the caller beforehand on the host.
func MountScript(plan NodeMountPlan, node, asideDir, readyFile string) string {
	var b strings.Builder
	b.WriteString("set -eu\n")
	for oi, o := range plan.Overlays {
		for si, s := range o.Submounts {
			fmt.Fprintf(&b, "mount --move %s %s\n", q(s), q(asidePath(asideDir, oi, si)))
		}
		fmt.Fprintf(&b, "mount -t overlay %s -o %s %s\n", q("lab-"+node),
			q("lowerdir="+o.Lower+",upperdir="+o.Upper+",workdir="+o.Work), q(o.Lower))
		for si, s := range o.Submounts {
			fmt.Fprintf(&b, "mount --move %s %s\n", q(asidePath(asideDir, oi, si)), q(s))
		}
	}
	for _, bnd := range plan.Binds {
		fmt.Fprintf(&b, "mount --bind %s %s\n", q(bnd[0]), q(bnd[1]))
	}
	fmt.Fprintf(&b, "echo ready > %s\nexec sleep infinity\n", q(readyFile))
	return b.String()
}

// AsideDirs lists the directories MountScript moves submounts to.
func AsideDirs(plan NodeMountPlan, asideDir string) []string {
	var out []string
	for oi, o := range plan.Overlays {
		for si := range o.Submounts {
			out = append(out, asidePath(asideDir, oi, si))
		}
	}
	return out
}

func asidePath(dir string, oi, si int) string {
	return filepath.Join(dir, fmt.Sprintf("%d-%d", oi, si))
}

func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
