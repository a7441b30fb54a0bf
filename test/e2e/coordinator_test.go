package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// The coordinator specs use the underlay blocks 10-51 (IPv4 /24s and IPv6
// /120s, see framework.Lab.UnderlaySliceV4/V6), one per spec, so they never
// share addresses with each other or with other specs, also when they run
// at the same time on parallel processes. Each run takes one of six slots,
// so a pool an earlier run left behind (its addresses not yet
// garbage-collected) rarely blocks the next run.
const coordBlockBase, coordSpecs, coordSlots = 10, 7, 6

var coordSlot = int(time.Now().UnixNano() % coordSlots)

// coordBlock is the underlay block of the spec numbered offset (0-6).
func coordBlock(offset int) int { return coordBlockBase + coordSlot*coordSpecs + offset }

// defaultRouteNICAnnotation moves a pod's default routes to the named NIC.
const defaultRouteNICAnnotation = "ipam.spidernet.io/default-route-nic"

// coordLab is what a coordinator spec knows about the lab.
type coordLab struct {
	lab          *framework.Testbed
	c            client.Client
	node1, node2 string
	// CIDRs the coordinator routes over the host path, from the
	// SpiderCoordinator "default" (spec.hijackCIDR or the built-in
	// 169.254.0.0/16, status.serviceCIDR, status.overlayPodCIDR).
	hostCIDRs []netip.Prefix
	svcCIDR   netip.Prefix
}

// requireCoordinatorLab skips unless the lab, its facts, two nodes, the
// plugins on the nodes and the SpiderCoordinator "default" are there, and
// waits for the SpiderCoordinator to be synced.
func requireCoordinatorLab(ctx context.Context) *coordLab {
	lab := requireCluster()
	requireExec()
	for _, k := range []string{"SERVICE_CIDR", "UNDERLAY_IF"} {
		if lab.Env[lab.Prefix+k] == "" {
			missing(fmt.Sprintf("the %s env has no %s%s; bring the %[1]s up again", lab.Name(), lab.Prefix, k))
		}
	}
	if f.Lab != nil && lab.Env["LAB_GATEWAY_NETNS"] == "" {
		missing("the lab env has no LAB_GATEWAY_NETNS; rebuild bin/lab and run bin/lab up")
	}
	n1, n2 := twoNodes(ctx)
	for _, p := range []string{"coordinator", "spiderpool", "macvlan"} {
		if _, _, err := lab.ExecInNode(ctx, n1, "test", "-x", "/opt/cni/bin/"+p); err != nil {
			missing(fmt.Sprintf("CNI plugin %q is not installed on %s: run make build, then bin/lab daemons restart", p, n1))
		}
	}
	cl := &coordLab{lab: lab, c: crClient(), node1: n1, node2: n2}
	cl.svcCIDR = netip.MustParsePrefix(lab.ServiceCIDR)
	var co v2beta1.SpiderCoordinator
	if err := cl.c.Get(ctx, types.NamespacedName{Name: "default"}, &co); err != nil {
		missing(fmt.Sprintf("no SpiderCoordinator \"default\" (%v): run spindle-controller (make lab-up)", err))
	}
	// Right after the lab starts, the controller may still be discovering
	// the service and pod CIDRs that the agent serves to the plugin.
	Eventually(func(g Gomega) {
		g.Expect(cl.c.Get(ctx, types.NamespacedName{Name: "default"}, &co)).To(Succeed())
		g.Expect(co.Status.Phase).To(Equal("Synced"), "SpiderCoordinator default: %s", co.Status.Reason)
	}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
	hijack := co.Spec.HijackCIDR
	if len(hijack) == 0 {
		hijack = []string{"169.254.0.0/16"}
	}
	for _, set := range [][]string{hijack, co.Status.ServiceCIDR, co.Status.OverlayPodCIDR} {
		for _, s := range set {
			cl.hostCIDRs = append(cl.hostCIDRs, netip.MustParsePrefix(s).Masked())
		}
	}
	return cl
}

// pools creates an IPv4 pool (and, when n6 > 0, an IPv6 pool) over block
// coordBlock(offset) with the lab gateways; they are deleted when the spec
// ends, after its namespace (create them before it).
func (cl *coordLab) pools(ctx context.Context, base string, offset, n4, n6 int) (v4, v6 *v2beta1.SpiderIPPool) {
	mk := func(family int64, subnet netip.Prefix, start, end, gw netip.Addr) *v2beta1.SpiderIPPool {
		p := &v2beta1.SpiderIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-v%d-%s", base, family, framework.RandSuffix(4))},
			Spec: v2beta1.IPPoolSpec{
				IPVersion: ptr.To(family),
				Subnet:    subnet.Masked().String(),
				IPs:       []string{start.String() + "-" + end.String()},
				Gateway:   ptr.To(gw.String()),
			},
		}
		Expect(cl.c.Create(ctx, p)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			_ = cl.c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: p.Name}})
			// The pool goes once its last claim is released; a later spec
			// with the same addresses must not find it still there.
			Eventually(func() bool {
				return apierrors.IsNotFound(cl.c.Get(ctx, client.ObjectKey{Name: p.Name}, &v2beta1.SpiderIPPool{}))
			}).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(250*time.Millisecond).Should(BeTrue(), "SpiderIPPool %s not removed", p.Name)
		})
		return p
	}
	start, end, err := cl.lab.UnderlaySliceV4(coordBlock(offset), n4)
	Expect(err).NotTo(HaveOccurred())
	v4 = mk(4, cl.lab.UnderlayV4, start, end, cl.lab.GatewayV4)
	if n6 > 0 {
		start, end, err := cl.lab.UnderlaySliceV6(coordBlock(offset), n6)
		Expect(err).NotTo(HaveOccurred())
		v6 = mk(6, cl.lab.UnderlayV6, start, end, cl.lab.GatewayV6)
	}
	return v4, v6
}

// nad creates a NetworkAttachmentDefinition: macvlan on the underlay with
// spiderpool IPAM over the pools, chained with the coordinator configured
// by coord.
func (cl *coordLab) nad(ctx context.Context, ns, name string, v4, v6 *v2beta1.SpiderIPPool, coord map[string]any) {
	ipam := map[string]any{"type": "spiderpool", "default_ipv4_ippool": []string{v4.Name}}
	if v6 != nil {
		ipam["default_ipv6_ippool"] = []string{v6.Name}
	}
	co := map[string]any{"type": "coordinator"}
	for k, v := range coord {
		co[k] = v
	}
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       ns + "-" + name,
		"plugins": []any{
			map[string]any{"type": "macvlan", "master": cl.lab.UnderlayIf, "mode": "bridge", "ipam": ipam},
			co,
		},
	})
	Expect(err).NotTo(HaveOccurred())
	_, err = f.CreateNAD(ctx, ns, name, string(conf))
	Expect(err).NotTo(HaveOccurred())
}

// podSh runs a command in the pod and fails the spec if it fails.
func podSh(ctx context.Context, pod *corev1.Pod, cmd ...string) string {
	out, _, err := f.Exec.ExecInPod(ctx, pod, cmd...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

func (cl *coordLab) gwSh(ctx context.Context, cmd ...string) string {
	out, _, err := cl.lab.ExecInGateway(ctx, cmd...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// podNet is a pod's routing as `ip` shows it.
type podNet struct {
	rules4, rules6   []string
	routes4, routes6 []string
	raw              map[string]string
}

var podNetCommands = [][]string{
	{"ip", "-4", "rule"}, {"ip", "-6", "rule"},
	{"ip", "-4", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
}

func readPodNet(ctx context.Context, pod *corev1.Pod) *podNet {
	p := &podNet{raw: map[string]string{}}
	for _, c := range podNetCommands {
		p.raw[strings.Join(c, " ")] = podSh(ctx, pod, c...)
	}
	p.rules4 = framework.IPLines(p.raw["ip -4 rule"])
	p.rules6 = framework.IPLines(p.raw["ip -6 rule"])
	p.routes4 = framework.RouteTables(p.raw["ip -4 route show table all"])
	p.routes6 = framework.RouteTables(p.raw["ip -6 route show table all"])
	return p
}

func defaults(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "default ") {
			out = append(out, l)
		}
	}
	return out
}

func withPrefix(lines []string, dst string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, dst+" ") {
			out = append(out, l)
		}
	}
	return out
}

// ifAddrs returns an interface's IPv4 and IPv6 addresses from the pod's
// network-status annotation.
func ifAddrs(pod *corev1.Pod, ifName string) (v4, v6 netip.Addr) {
	st, err := framework.InterfaceStatus(pod, ifName)
	Expect(err).NotTo(HaveOccurred())
	for _, s := range st.IPs {
		a := netip.MustParseAddr(s)
		if a.Is4() && !v4.IsValid() {
			v4 = a
		} else if a.Is6() && !v6.IsValid() {
			v6 = a
		}
	}
	return v4, v6
}

// nodeAddrs returns the node's global addresses (what the coordinator routes
// over the host path as /32 and /128), first seen first.
func (cl *coordLab) nodeAddrs(ctx context.Context, node string) (v4, v6 []netip.Addr) {
	out, _, err := cl.lab.ExecInNode(ctx, node, "ip", "-o", "addr", "show", "scope", "global")
	Expect(err).NotTo(HaveOccurred())
	for _, l := range framework.IPLines(out) {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" && f[i] != "inet6" {
				continue
			}
			a := netip.MustParsePrefix(f[i+1]).Addr()
			if a.Is4() && !slices.Contains(v4, a) {
				v4 = append(v4, a)
			}
			if a.Is6() && !slices.Contains(v6, a) {
				v6 = append(v6, a)
			}
		}
	}
	return v4, v6
}

// podCIDRGateway is the first address of the node's pod CIDR: the ptp
// gateway of overlay eth0.
func (cl *coordLab) podCIDRGateway(node, suffix string) netip.Addr {
	v := cl.lab.NodeEnv(node, suffix)
	Expect(v).NotTo(BeEmpty(), "LAB_NODE_<i>_%s of %s in the lab env", suffix, node)
	return netip.MustParsePrefix(v).Masked().Addr().Next()
}

// hostPath is the oracle of the coordinator's host path in one table: the
// routes to the node's addresses and to the host CIDRs.
type hostPath struct {
	dev      string
	underlay bool
	gw       netip.Addr // overlay: eth0's gateway; underlay IPv4: node address; IPv6: fe80::1
	nodes    []netip.Addr
	cidrs    []netip.Prefix
	src      netip.Addr // IPv4 source of the table
}

func (h hostPath) lines() []string {
	var out, seen []string
	add := func(dst, l string) {
		if slices.Contains(seen, dst) {
			return
		}
		seen = append(seen, dst)
		out = append(out, l)
	}
	v4 := h.gw.Is4()
	tail := " proto 77 metric 1024 pref medium"
	if v4 {
		tail = " proto 77"
	}
	for _, a := range h.nodes {
		dst := a.String()
		switch {
		case v4 && (h.underlay || a == h.gw):
			add(dst, dst+" dev "+h.dev+" proto 77 scope link src "+h.src.String())
		case v4:
			add(dst, dst+" via "+h.gw.String()+" dev "+h.dev+tail+" src "+h.src.String())
		case a == h.gw:
			add(dst, dst+" dev "+h.dev+tail)
		default:
			add(dst, dst+" via "+h.gw.String()+" dev "+h.dev+tail)
		}
	}
	for _, c := range h.cidrs {
		if c.Addr().Is4() != v4 {
			continue
		}
		dst := c.String()
		if v4 {
			add(dst, dst+" via "+h.gw.String()+" dev "+h.dev+tail+" src "+h.src.String())
		} else {
			add(dst, dst+" via "+h.gw.String()+" dev "+h.dev+tail)
		}
	}
	return out
}

var dumpMu sync.Mutex

// dumpForDocs appends the pod's rules and tables to $COORDINATOR_DOCS_DUMP,
// as docs/coordinator.md shows them (local table, kernel link-local and
// multicast routes left out), and the node's routes back to the pod.
func dumpForDocs(title, setup string, p *podNet, node string, nodeRoutes []string) {
	file := os.Getenv("COORDINATOR_DOCS_DUMP")
	if file == "" {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n%s\n\n```\n", title, setup)
	for _, c := range podNetCommands {
		cmd := strings.Join(c, " ")
		fmt.Fprintf(&b, "# %s\n", cmd)
		keep := framework.IPLines(p.raw[cmd])
		if strings.Contains(cmd, "route") {
			keep = framework.RouteTables(p.raw[cmd])
		}
		for _, l := range strings.Split(strings.TrimRight(p.raw[cmd], "\n"), "\n") {
			if n := framework.IPLines(l); len(n) == 1 && slices.Contains(keep, n[0]) {
				fmt.Fprintln(&b, strings.TrimRight(l, " "))
			}
		}
	}
	fmt.Fprintf(&b, "```\n\nNode %s, table 500 (this pod's addresses):\n\n```\n", node)
	for _, l := range nodeRoutes {
		fmt.Fprintln(&b, l)
	}
	b.WriteString("```\n\n")
	dumpMu.Lock()
	defer dumpMu.Unlock()
	fh, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	Expect(err).NotTo(HaveOccurred())
	defer fh.Close()
	_, err = fh.WriteString(b.String())
	Expect(err).NotTo(HaveOccurred())
}

// txPackets reads the packets sent on dev from the pod's /proc/net/dev
// (`lab exec` enters the network namespace only, so /sys is the node's).
func txPackets(ctx context.Context, pod *corev1.Pod, dev string) int {
	for _, l := range strings.Split(podSh(ctx, pod, "cat", "/proc/net/dev"), "\n") {
		name, stats, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) != dev {
			continue
		}
		f := strings.Fields(stats)
		Expect(len(f)).To(BeNumerically(">=", 10), "/proc/net/dev line %q", l)
		n, err := strconv.Atoi(f[9])
		Expect(err).NotTo(HaveOccurred())
		return n
	}
	Fail(fmt.Sprintf("no %s in /proc/net/dev of pod %s/%s", dev, pod.Namespace, pod.Name))
	return 0
}

// linkInfo returns a pod link's MAC address and, for a veth, the ifindex of
// its peer.
func linkInfo(ctx context.Context, pod *corev1.Pod, dev string) (mac string, peer int) {
	f := strings.Fields(podSh(ctx, pod, "ip", "-o", "link", "show", "dev", dev))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "link/ether" {
			mac = f[i+1]
		}
	}
	Expect(len(f)).To(BeNumerically(">", 1))
	if _, p, ok := strings.Cut(strings.TrimSuffix(f[1], ":"), "@if"); ok {
		peer, _ = strconv.Atoi(p)
	}
	Expect(mac).NotTo(BeEmpty(), "MAC of %s in pod %s", dev, pod.Name)
	return mac, peer
}

// offSubnetClient adds an address outside the underlay to the gateway
// namespace's lo for the rest of the spec.
func (cl *coordLab) offSubnetClient(ctx context.Context, a netip.Addr) {
	bits := 32
	args := []string{"ip", "addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", "lo"}
	if a.Is6() {
		bits = 128
		args = []string{"ip", "-6", "addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", "lo", "nodad"}
	}
	cl.gwSh(ctx, args...)
	DeferCleanup(func(ctx SpecContext) {
		_, _, _ = cl.lab.ExecInGateway(ctx, "ip", "addr", "del", fmt.Sprintf("%s/%d", a, bits), "dev", "lo")
	})
}

// nicRule is a pod address and the per-NIC table its rule looks up.
type nicRule struct {
	addr  netip.Addr
	table int
}

// rules is the exact `ip rule` of a pod whose NICs have the given
// addresses, in table order.
func rules(fam int, nics ...nicRule) []string {
	out := []string{"0: from all lookup local"}
	for _, n := range nics {
		out = append(out, fmt.Sprintf("%d: from %s lookup %d", n.table, n.addr, n.table))
	}
	out = append(out, "32766: from all lookup main")
	if fam == 4 {
		out = append(out, "32767: from all lookup default")
	}
	return out
}

var _ = Describe("coordinator", func() {
	It("keeps one default route per family on eth0 and answers off-subnet clients of net1 through net1 (overlay)", func(ctx SpecContext) {
		cl := requireCoordinatorLab(ctx)
		p4, p6 := cl.pools(ctx, "e2e-co-overlay", 0, 4, 4)
		ns := newTestNamespace(ctx, "e2e-co-overlay")
		cl.nad(ctx, ns, "underlay", p4, p6, map[string]any{"mode": "overlay"})
		pod := startPod(ctx, ns, "pod", framework.PodOptions{Node: cl.node1, Networks: "underlay"})

		e4, e6 := ifAddrs(pod, "eth0")
		n4, n6 := ifAddrs(pod, "net1")
		Expect(e4.IsValid() && e6.IsValid() && n4.IsValid() && n6.IsValid()).To(BeTrue(), "eth0 %s %s, net1 %s %s: want both families on both", e4, e6, n4, n6)
		eg4, eg6 := cl.podCIDRGateway(cl.node1, "POD_CIDR"), cl.podCIDRGateway(cl.node1, "POD_CIDR_V6")
		p := readPodNet(ctx, pod)

		By("one default route per family in main, via eth0")
		Expect(defaults(framework.InTable(p.routes4, 254))).To(Equal([]string{"default via " + eg4.String() + " dev eth0 proto static"}))
		Expect(defaults(framework.InTable(p.routes6, 254))).To(Equal([]string{"default via " + eg6.String() + " dev eth0 proto static metric 1024 pref medium"}))

		By("a rule per address and per-NIC tables 100 (eth0) and 101 (net1)")
		Expect(p.rules4).To(Equal(rules(4, nicRule{e4, 100}, nicRule{n4, 101})))
		Expect(p.rules6).To(Equal(rules(6, nicRule{e6, 100}, nicRule{n6, 101})))
		node4, node6 := cl.nodeAddrs(ctx, cl.node1)
		want4 := append([]string{
			"default via " + cl.lab.GatewayV4.String() + " dev net1 proto static",
			cl.lab.UnderlayV4.Masked().String() + " dev net1 proto static scope link src " + n4.String(),
		}, hostPath{dev: "eth0", gw: eg4, nodes: node4, cidrs: cl.hostCIDRs, src: n4}.lines()...)
		Expect(framework.InTable(p.routes4, 101)).To(ConsistOf(want4))
		want6 := append([]string{
			"default via " + cl.lab.GatewayV6.String() + " dev net1 proto static metric 1024 pref medium",
			cl.lab.UnderlayV6.Masked().String() + " dev net1 proto static metric 1024 pref medium",
		}, hostPath{dev: "eth0", gw: eg6, nodes: node6, cidrs: cl.hostCIDRs}.lines()...)
		Expect(framework.InTable(p.routes6, 101)).To(ConsistOf(want6))
		Expect(withPrefix(framework.InTable(p.routes4, 254), cl.svcCIDR.String())).To(Equal([]string{
			fmt.Sprintf("%s via %s dev eth0 proto 77 src %s", cl.svcCIDR, eg4, e4)}), "services go over eth0")
		Expect(p.routes4).To(HaveLen(len(framework.InTable(p.routes4, 254))+len(framework.InTable(p.routes4, 100))+len(want4)),
			"no table besides main, 100 and 101")
		By("the node routes net1's addresses back over eth0's node-side veth (table 500)")
		_, eth0Peer := linkInfo(ctx, pod, "eth0")
		ptpVeth := cl.nodeLink(ctx, cl.node1, eth0Peer)
		back := cl.hostRoutes(ctx, cl.node1, n4, n6)
		Expect(back).To(ConsistOf(
			n4.String()+" dev "+ptpVeth+" proto 77 scope link",
			n6.String()+" via "+podLinkLocal(ctx, pod, "eth0")+" dev "+ptpVeth+" proto 77 metric 1024 pref medium"))
		dumpForDocs("Overlay + underlay: eth0 (ptp), net1 (macvlan on `ul0`, spiderpool), mode `overlay`",
			fmt.Sprintf("Pod on %s; eth0 %s %s, net1 %s %s.", cl.node1, e4, e6, n4, n6), p, cl.node1, back)

		By("an off-subnet client in the gateway namespace pings net1; the replies leave through net1")
		client4 := netip.AddrFrom4([4]byte{198, 51, 100, byte(coordBlock(0))})
		client6 := netip.MustParseAddr(fmt.Sprintf("2001:db8:%x::1", coordBlock(0)))
		cl.offSubnetClient(ctx, client4)
		cl.offSubnetClient(ctx, client6)
		Expect(podSh(ctx, pod, "ip", "route", "get", client4.String(), "from", n4.String())).To(ContainSubstring(
			fmt.Sprintf("%s from %s via %s dev net1 table 101", client4, n4, cl.lab.GatewayV4)))
		for _, c := range []struct{ from, to netip.Addr }{{client4, n4}, {client6, n6}} {
			txNet1, txEth0 := txPackets(ctx, pod, "net1"), txPackets(ctx, pod, "eth0")
			out := cl.gwSh(ctx, "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", c.from.String(), c.to.String())
			Expect(out).To(ContainSubstring("5 received"), out)
			Expect(txPackets(ctx, pod, "net1")-txNet1).To(BeNumerically(">=", 5), "echo replies to %s sent on net1", c.from)
			Expect(txPackets(ctx, pod, "eth0")-txEth0).To(BeNumerically("<", 5), "echo replies to %s must not leave on eth0", c.from)
		}

		By("deleting the pod removes its routes from the node's table 500")
		Expect(f.DeletePodAndWait(ctx, ns, "pod")).To(Succeed())
		Expect(cl.hostRoutes(ctx, cl.node1, n4, n6)).To(BeEmpty())
	})

	It("gives an underlay-only pod veth0 to its node and reaches the node and pods on another node", func(ctx SpecContext) {
		cl := requireCoordinatorLab(ctx)
		p4, p6 := cl.pools(ctx, "e2e-co-underlay", 1, 4, 4)
		ns := newTestNamespace(ctx, "e2e-co-underlay")
		cl.nad(ctx, ns, "underlay", p4, p6, map[string]any{"mode": "underlay"})
		ann := map[string]string{"v1.multus-cni.io/default-network": ns + "/underlay"}
		// An overlay pod on the same node keeps the node's ptp gateway
		// addresses (on its host veth) there during the whole spec, so the
		// node addresses the coordinator saw are those checked below.
		local := startPod(ctx, ns, "local", framework.PodOptions{Node: cl.node1})
		pod := startPod(ctx, ns, "a", framework.PodOptions{Node: cl.node1, Annotations: ann})
		peer := startPod(ctx, ns, "b", framework.PodOptions{Node: cl.node2, Annotations: ann})
		overlay := startPod(ctx, ns, "c", framework.PodOptions{Node: cl.node2})

		u4, u6 := ifAddrs(pod, "eth0")
		Expect(u4.IsValid() && u6.IsValid()).To(BeTrue(), "eth0 %s %s: want both families", u4, u6)
		p := readPodNet(ctx, pod)
		Expect(podSh(ctx, pod, "ip", "-o", "link", "show", "veth0")).To(ContainSubstring("veth0@"))

		By("exact rules and tables: main and 100 hold the default route, the subnet and the host path over veth0")
		node4, node6 := cl.nodeAddrs(ctx, cl.node1)
		nodeGw := netip.MustParseAddr(cl.lab.NodeEnv(cl.node1, "UNDERLAY_V4"))
		Expect(p.rules4).To(Equal(rules(4, nicRule{u4, 100})))
		Expect(p.rules6).To(Equal(rules(6, nicRule{u6, 100})))
		hp4 := hostPath{dev: "veth0", underlay: true, gw: nodeGw, nodes: node4, cidrs: cl.hostCIDRs, src: u4}.lines()
		hp6 := hostPath{dev: "veth0", underlay: true, gw: netip.MustParseAddr("fe80::1"), nodes: node6, cidrs: cl.hostCIDRs}.lines()
		def4 := "default via " + cl.lab.GatewayV4.String() + " dev eth0 proto static"
		def6 := "default via " + cl.lab.GatewayV6.String() + " dev eth0 proto static metric 1024 pref medium"
		sub4, sub6 := cl.lab.UnderlayV4.Masked().String(), cl.lab.UnderlayV6.Masked().String()
		Expect(framework.InTable(p.routes4, 254)).To(ConsistOf(append([]string{def4, sub4 + " dev eth0 proto kernel scope link src " + u4.String()}, hp4...)))
		Expect(framework.InTable(p.routes4, 100)).To(ConsistOf(append([]string{def4, sub4 + " dev eth0 proto static scope link src " + u4.String()}, hp4...)))
		Expect(framework.InTable(p.routes6, 254)).To(ConsistOf(append([]string{def6, sub6 + " dev eth0 proto kernel metric 256 pref medium"}, hp6...)))
		Expect(framework.InTable(p.routes6, 100)).To(ConsistOf(append([]string{def6, sub6 + " dev eth0 proto static metric 1024 pref medium"}, hp6...)))
		Expect(p.routes4).To(HaveLen(2 * (2 + len(hp4))))
		Expect(p.routes6).To(HaveLen(2 * (2 + len(hp6))))
		By("the node routes the pod's addresses over the node end of veth0 (table 500)")
		_, vethPeer := linkInfo(ctx, pod, "veth0")
		hostVeth := cl.nodeLink(ctx, cl.node1, vethPeer)
		Expect(hostVeth).To(MatchRegexp(`^veth[0-9a-f]{11}$`))
		back := cl.hostRoutes(ctx, cl.node1, u4, u6)
		Expect(back).To(ConsistOf(
			u4.String()+" dev "+hostVeth+" proto 77 scope link",
			u6.String()+" via fe80::2 dev "+hostVeth+" proto 77 metric 1024 pref medium"))
		dumpForDocs("Underlay only: eth0 = macvlan on `ul0` (spiderpool, via `v1.multus-cni.io/default-network`), mode `underlay`",
			fmt.Sprintf("Pod on %s (underlay %s); eth0 %s %s.", cl.node1, nodeGw, u4, u6), p, cl.node1, back)

		By("the pod reaches its node's InternalIPs over veth0")
		node, err := f.Client.CoreV1().Nodes().Get(ctx, cl.node1, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		var internal []string
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				internal = append(internal, a.Address)
			}
		}
		Expect(internal).NotTo(BeEmpty())
		for _, ip := range internal {
			Expect(podSh(ctx, pod, "ip", "route", "get", ip)).To(MatchRegexp(`^` + regexp.QuoteMeta(ip) + ` (from \S+ )?(via \S+ )?dev veth0 `))
			out := podSh(ctx, pod, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip)
			Expect(out).To(ContainSubstring("2 received"), out)
		}

		By("the pod reaches an underlay pod and an overlay pod on " + cl.node2 + ", and an overlay pod on its own node")
		b4, b6 := ifAddrs(peer, "eth0")
		targets := []string{b4.String(), b6.String()}
		for _, ip := range append(overlay.Status.PodIPs, local.Status.PodIPs...) {
			targets = append(targets, ip.IP)
		}
		for _, ip := range targets {
			out := podSh(ctx, pod, "ping", "-c", "2", "-i", "0.2", "-W", "2", ip)
			Expect(out).To(ContainSubstring("2 received"), "ping %s: %s", ip, out)
		}

		By("deleting the pod removes the node end of veth0 and its routes in table 500")
		Expect(f.DeletePodAndWait(ctx, ns, "a")).To(Succeed())
		Expect(cl.hostRoutes(ctx, cl.node1, u4, u6)).To(BeEmpty())
		_, _, err = cl.lab.ExecInNode(ctx, cl.node1, "ip", "link", "show", hostVeth)
		Expect(err).To(HaveOccurred(), "node link %s is left behind", hostVeth)
	})

	It("moves the default routes to net1 with the default-route-nic annotation", func(ctx SpecContext) {
		cl := requireCoordinatorLab(ctx)
		p4, p6 := cl.pools(ctx, "e2e-co-defnic", 2, 4, 4)
		ns := newTestNamespace(ctx, "e2e-co-defnic")
		cl.nad(ctx, ns, "underlay", p4, p6, map[string]any{"mode": "auto"})
		pod := startPod(ctx, ns, "pod", framework.PodOptions{Node: cl.node1, Networks: "underlay",
			Annotations: map[string]string{defaultRouteNICAnnotation: "net1"}})
		e4, e6 := ifAddrs(pod, "eth0")
		n4, n6 := ifAddrs(pod, "net1")
		eg4, eg6 := cl.podCIDRGateway(cl.node1, "POD_CIDR"), cl.podCIDRGateway(cl.node1, "POD_CIDR_V6")
		p := readPodNet(ctx, pod)

		Expect(defaults(framework.InTable(p.routes4, 254))).To(Equal([]string{"default via " + cl.lab.GatewayV4.String() + " dev net1 proto static"}))
		Expect(defaults(framework.InTable(p.routes6, 254))).To(Equal([]string{"default via " + cl.lab.GatewayV6.String() + " dev net1 proto static metric 1024 pref medium"}))
		Expect(defaults(framework.InTable(p.routes4, 100))).To(Equal([]string{"default via " + eg4.String() + " dev eth0 proto static"}))
		Expect(defaults(framework.InTable(p.routes6, 100))).To(Equal([]string{"default via " + eg6.String() + " dev eth0 proto static metric 1024 pref medium"}))
		Expect(defaults(framework.InTable(p.routes4, 101))).To(Equal([]string{"default via " + cl.lab.GatewayV4.String() + " dev net1 proto static"}))
		Expect(p.rules4).To(Equal(rules(4, nicRule{e4, 100}, nicRule{n4, 101})))
		Expect(p.rules6).To(Equal(rules(6, nicRule{e6, 100}, nicRule{n6, 101})))
		Expect(withPrefix(framework.InTable(p.routes4, 254), cl.svcCIDR.String())).To(Equal([]string{
			fmt.Sprintf("%s via %s dev eth0 proto 77 src %s", cl.svcCIDR, eg4, e4)}), "services still go over eth0")
		_, eth0Peer := linkInfo(ctx, pod, "eth0")
		ptpVeth := cl.nodeLink(ctx, cl.node1, eth0Peer)
		back := cl.hostRoutes(ctx, cl.node1, n4, n6)
		Expect(back).To(ConsistOf(
			n4.String()+" dev "+ptpVeth+" proto 77 scope link",
			n6.String()+" via "+podLinkLocal(ctx, pod, "eth0")+" dev "+ptpVeth+" proto 77 metric 1024 pref medium"))
		dumpForDocs("Default route on net1: eth0 (ptp), net1 (macvlan), annotation `ipam.spidernet.io/default-route-nic: net1`, mode `auto`",
			fmt.Sprintf("Pod on %s; eth0 %s %s, net1 %s %s.", cl.node1, e4, e6, n4, n6), p, cl.node1, back)

		By("traffic to an off-subnet destination leaves through net1")
		dst := netip.AddrFrom4([4]byte{198, 51, 100, byte(coordBlock(2))})
		cl.offSubnetClient(ctx, dst)
		tx := txPackets(ctx, pod, "net1")
		out := podSh(ctx, pod, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst.String())
		Expect(out).To(ContainSubstring("3 received"), out)
		Expect(txPackets(ctx, pod, "net1") - tx).To(BeNumerically(">=", 3))
	})

	It("refuses an address that already answers ARP and names it in the pod's events", func(ctx SpecContext) {
		conflictSpec(ctx, 3, false)
	})

	// The coordinator reports the conflict to the node agent, which
	// releases the address and does not offer it again for a while: the
	// pod's retries wait for the next free address.
	It("gives a pod refused for an address conflict the pool's next free address", func(ctx SpecContext) {
		conflictSpec(ctx, 6, true)
	})

	It("lets a peer reach a re-created pod with a fixed address at once: its neighbour entry has the new MAC", func(ctx SpecContext) {
		cl := requireCoordinatorLab(ctx)
		p4, p6 := cl.pools(ctx, "e2e-co-garp", 4, 4, 4)
		ns := newTestNamespace(ctx, "e2e-co-garp")
		cl.nad(ctx, ns, "underlay", p4, p6, map[string]any{"mode": "underlay"})
		// The pool's first addresses, fixed with Kube-OVN's annotation: the
		// re-created pod gets them again, with the new MAC its main plugin
		// gives it (it is no StatefulSet replica, whose MAC would stay).
		first := func(p *v2beta1.SpiderIPPool) netip.Addr {
			return netip.MustParseAddr(strings.SplitN(p.Spec.IPs[0], "-", 2)[0])
		}
		u4, u6 := first(p4), first(p6)
		create := func() *corev1.Pod {
			GinkgoHelper()
			return startPod(ctx, ns, "garp", framework.PodOptions{Node: cl.node1, Annotations: map[string]string{
				"v1.multus-cni.io/default-network": ns + "/underlay",
				"ovn.kubernetes.io/ip_address":     u4.String() + "," + u6.String()}})
		}
		pod := create()
		a4, a6 := ifAddrs(pod, "eth0")
		Expect([]netip.Addr{a4, a6}).To(Equal([]netip.Addr{u4, u6}))
		oldMAC, _ := linkInfo(ctx, pod, "eth0")

		ul := cl.lab.GatewayIf
		neigh := func(ip netip.Addr) string {
			out := cl.gwSh(ctx, "ip", "neigh", "show", "to", ip.String(), "dev", ul)
			f := strings.Fields(out)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "lladdr" {
					return f[i+1]
				}
			}
			return "no entry: " + out
		}
		for _, ip := range []netip.Addr{u4, u6} {
			out := cl.gwSh(ctx, "ping", "-c", "1", "-W", "2", ip.String())
			Expect(out).To(ContainSubstring("1 received"), out)
			Expect(neigh(ip)).To(Equal(oldMAC), "the gateway cached %s", ip)
		}

		// Announcements of the addresses seen from the gateway: gratuitous
		// ARP (sender = target = u4) and unsolicited neighbour advertisements
		// from u6 to all nodes.
		u4b := u4.As4()
		gw := cl.lab.GatewayArgv("tcpdump", "-n", "-l", "-i", ul, fmt.Sprintf(
			"(arp and arp[14:4] = 0x%x and arp[24:4] = 0x%[1]x) or (icmp6 and ip6[40] == 136 and ip6 src %s and ip6 dst ff02::1)",
			uint32(u4b[0])<<24|uint32(u4b[1])<<16|uint32(u4b[2])<<8|uint32(u4b[3]), u6))
		stop := startCapture(ctx, gw[0], gw[1:]...)

		// The pod is deleted and created again under the same name.
		Expect(f.Client.CoreV1().Pods(ns).Delete(ctx, "garp", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			_, err := f.Client.CoreV1().Pods(ns).Get(ctx, "garp", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithContext(ctx).WithTimeout(framework.PodDeleteTimeout).Should(BeTrue())
		again := create()
		a4, a6 = ifAddrs(again, "eth0")
		Expect([]netip.Addr{a4, a6}).To(Equal([]netip.Addr{u4, u6}), "the re-created pod has its fixed addresses")
		newMAC, _ := linkInfo(ctx, again, "eth0")
		Expect(newMAC).NotTo(Equal(oldMAC))

		By("right after Running, the gateway's entries already have the new MAC and the first ping answers")
		Expect(neigh(u4)).To(Equal(newMAC), "gratuitous ARP updated the gateway's entry for %s", u4)
		Expect(neigh(u6)).To(Equal(newMAC), "unsolicited neighbour advertisement updated the gateway's entry for %s", u6)
		for _, ip := range []netip.Addr{u4, u6} {
			out := cl.gwSh(ctx, "ping", "-c", "1", "-W", "1", ip.String())
			Expect(out).To(ContainSubstring("1 received"), out)
		}

		By("the coordinator announced both addresses, besides the kernel")
		// macvlan sets arp_notify and ndisc_notify, so the kernel announces
		// each address once when the link comes up; the coordinator sends
		// its own announcement after configuring the pod: two of each.
		var garp, una int
		seen := stop(time.Second) // tcpdump may still hold the last lines
		GinkgoWriter.Printf("announcements seen from the gateway:\n%s\n", strings.Join(seen, "\n"))
		for _, l := range seen {
			switch {
			case strings.Contains(l, fmt.Sprintf("ARP, Request who-has %s tell %[1]s", u4)), strings.Contains(l, fmt.Sprintf("ARP, Announcement %s", u4)):
				garp++
			case strings.Contains(l, fmt.Sprintf("IP6 %s > ff02::1: ICMP6, neighbor advertisement, tgt is %[1]s", u6)):
				una++
			}
		}
		Expect(garp).To(BeNumerically(">=", 2), "gratuitous ARPs for %s", u4)
		Expect(una).To(BeNumerically(">=", 2), "unsolicited neighbour advertisements for %s", u6)
	})

	It("routes an underlay pod's service traffic over veth0 to its node (no kube-proxy in the lab)", func(ctx SpecContext) {
		cl := requireCoordinatorLab(ctx)
		p4, p6 := cl.pools(ctx, "e2e-co-svc", 5, 2, 2)
		ns := newTestNamespace(ctx, "e2e-co-svc")
		cl.nad(ctx, ns, "underlay", p4, p6, map[string]any{"mode": "underlay"})
		pod := startPod(ctx, ns, "pod", framework.PodOptions{Node: cl.node1, Annotations: map[string]string{
			"v1.multus-cni.io/default-network": ns + "/underlay"}})
		svc, err := f.Client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "svc"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		clusterIP := netip.MustParseAddr(svc.Spec.ClusterIP)
		Expect(cl.svcCIDR.Contains(clusterIP)).To(BeTrue(), "ClusterIP %s in LAB_SERVICE_CIDR %s", clusterIP, cl.svcCIDR)

		u4, _ := ifAddrs(pod, "eth0")
		nodeGw := cl.lab.NodeEnv(cl.node1, "UNDERLAY_V4")
		p := readPodNet(ctx, pod)
		Expect(withPrefix(framework.InTable(p.routes4, 254), cl.svcCIDR.String())).To(Equal([]string{
			fmt.Sprintf("%s via %s dev veth0 proto 77 src %s", cl.svcCIDR, nodeGw, u4)}))
		Expect(withPrefix(framework.InTable(p.routes4, 100), cl.svcCIDR.String())).To(Equal([]string{
			fmt.Sprintf("%s via %s dev veth0 proto 77 src %s", cl.svcCIDR, nodeGw, u4)}))
		Expect(podSh(ctx, pod, "ip", "route", "get", clusterIP.String())).To(HavePrefix(
			fmt.Sprintf("%s via %s dev veth0 src %s", clusterIP, nodeGw, u4)))

		By("echo requests to the ClusterIP arrive on the node end of the veth pair")
		_, peer := linkInfo(ctx, pod, "veth0")
		peerIdx := strconv.Itoa(peer)
		links, _, err := cl.lab.ExecInNode(ctx, cl.node1, "ip", "-o", "link", "show")
		Expect(err).NotTo(HaveOccurred())
		hostVeth := ""
		for _, l := range framework.IPLines(links) {
			if name, ok := strings.CutPrefix(l, peerIdx+": "); ok {
				hostVeth, _, _ = strings.Cut(name, "@")
			}
		}
		Expect(hostVeth).To(HavePrefix("veth"), "node link with ifindex %s", peerIdx)
		captured := capture(ctx, cl.lab, cl.node1, hostVeth, 3, "icmp and dst host "+clusterIP.String(), func() {
			_, _, _ = f.Exec.ExecInPod(ctx, pod, "ping", "-c", "3", "-i", "0.2", "-W", "1", clusterIP.String())
		})
		Expect(captured).To(HaveLen(3))
		for _, l := range captured {
			Expect(l).To(ContainSubstring(fmt.Sprintf("IP %s > %s: ICMP echo request", u4, clusterIP)))
		}
	})
})

func podRunningNow(ctx context.Context, ns, name string) bool {
	p, err := f.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	return p.Status.Phase == corev1.PodRunning
}

// conflictSpec: a pool of two addresses in the coordinator specs' underlay
// block coordBlock(block); a first pod holds one, the other answers ARP from
// the gateway namespace; a second pod, whose coordinator has
// detectIPConflict, is refused with an error naming the address. With
// expectRecovery, the first pod then goes and the second must get its
// address.
func conflictSpec(ctx context.Context, block int, expectRecovery bool) {
	cl := requireCoordinatorLab(ctx)
	p4, p6 := cl.pools(ctx, "e2e-co-conflict", block, 2, 2)
	a, b, err := cl.lab.UnderlaySliceV4(coordBlock(block), 2)
	Expect(err).NotTo(HaveOccurred())
	ns := newTestNamespace(ctx, "e2e-co-conflict")
	cl.nad(ctx, ns, "underlay", p4, p6, map[string]any{"mode": "overlay", "detectIPConflict": true})

	// The pool has two addresses: a first pod takes one, the other is
	// made to answer ARP from the gateway namespace, so the second pod
	// can only be offered the conflicting address until the first pod
	// goes.
	first := startPod(ctx, ns, "first", framework.PodOptions{Node: cl.node1, Networks: "underlay"})
	held, _ := ifAddrs(first, "net1")
	taken := a
	if held == a {
		taken = b
	}
	ul := cl.lab.GatewayIf
	cl.gwSh(ctx, "ip", "addr", "add", taken.String()+"/32", "dev", ul)
	DeferCleanup(func(ctx SpecContext) {
		_, _, _ = cl.lab.ExecInGateway(ctx, "ip", "addr", "del", taken.String()+"/32", "dev", ul)
	})
	gwMAC := strings.TrimSpace(cl.gwSh(ctx, "cat", "/sys/class/net/"+ul+"/address"))

	_, err = f.CreatePod(ctx, f.NewPod(ns, "second", framework.PodOptions{Node: cl.node1, Networks: "underlay"}))
	Expect(err).NotTo(HaveOccurred())
	want := fmt.Sprintf("IP address %s is already used by %s (probed on net1)", taken, gwMAC)
	Eventually(func(g Gomega) {
		evs, err := f.PodEvents(ctx, ns, "second", "FailedCreatePodSandBox")
		g.Expect(err).NotTo(HaveOccurred())
		var msgs []string
		for _, e := range evs {
			msgs = append(msgs, e.Message)
		}
		g.Expect(strings.Join(msgs, "\n")).To(ContainSubstring(want))
	}).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(time.Second).Should(Succeed(), "the pod's events name the conflicting address")
	Expect(podRunningNow(ctx, ns, "second")).To(BeFalse(), "the pod must not run with a conflicting address")
	if expectRecovery {
		// The agent released and quarantined the address (it is no
		// StatefulSet replica's), and says so on the pod.
		expectPodEvent(ctx, ns, "second", "AddressConflict", fmt.Sprintf("net1: %s answers from another machine (MAC %s); released it and quarantined it", taken, gwMAC))
	}

	if !expectRecovery {
		return
	}
	Expect(f.DeletePodAndWait(ctx, ns, "first")).To(Succeed())
	pod, err := f.WaitPodRunning(ctx, ns, "second")
	Expect(err).NotTo(HaveOccurred(), "after the conflict the IPAM side must release %s and allocate %s, freed by the first pod", taken, held)
	got, _ := ifAddrs(pod, "net1")
	Expect(got).To(Equal(held))
}

// nodeLink returns the name of the node link with ifindex index.
func (cl *coordLab) nodeLink(ctx context.Context, node string, index int) string {
	out, _, err := cl.lab.ExecInNode(ctx, node, "ip", "-o", "link", "show")
	Expect(err).NotTo(HaveOccurred())
	for _, l := range framework.IPLines(out) {
		if rest, ok := strings.CutPrefix(l, strconv.Itoa(index)+": "); ok {
			name, _, _ := strings.Cut(rest, "@")
			return strings.TrimSuffix(name, ":")
		}
	}
	Fail(fmt.Sprintf("no link with ifindex %d on %s", index, node))
	return ""
}

// hostRoutes returns the node's routes in the coordinator's host rule table
// (500) towards the given pod addresses, and checks the node's rules that
// look the table up.
func (cl *coordLab) hostRoutes(ctx context.Context, node string, addrs ...netip.Addr) []string {
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		rules, _, err := cl.lab.ExecInNode(ctx, node, "ip", fam, "rule")
		Expect(err).NotTo(HaveOccurred())
		routes, _, err := cl.lab.ExecInNode(ctx, node, "ip", fam, "route", "show", "table", "500")
		Expect(err).NotTo(HaveOccurred())
		lines := framework.IPLines(routes)
		for _, a := range addrs {
			if a.Is4() != (fam == "-4") {
				continue
			}
			if mine := withPrefix(lines, a.String()); len(mine) > 0 {
				Expect(framework.IPLines(rules)).To(ContainElement("1000: from all lookup 500"), "node %s routes to %s in table 500 but does not look it up", node, a)
				out = append(out, mine...)
			}
		}
	}
	return out
}

// podLinkLocal returns the IPv6 link-local address of a pod link.
func podLinkLocal(ctx context.Context, pod *corev1.Pod, dev string) string {
	for _, l := range framework.IPLines(podSh(ctx, pod, "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link")) {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet6" {
				return netip.MustParsePrefix(f[i+1]).Addr().String()
			}
		}
	}
	Fail(fmt.Sprintf("no link-local address on %s in pod %s", dev, pod.Name))
	return ""
}

// startCapture starts a packet capture (tcpdump -l ...) and returns once it
// listens; stop waits up to grace for it to end by itself (tcpdump -c), then
// interrupts it, and returns the packets it printed.
func startCapture(ctx context.Context, name string, args ...string) (stop func(grace time.Duration) []string) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	cmd := exec.CommandContext(cctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(cmd.Start()).To(Succeed())
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		found := false
		for sc.Scan() {
			if !found && strings.Contains(sc.Text(), "listening on") {
				found = true
				listening <- true
			}
		}
		if !found {
			listening <- false
		}
	}()
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	select {
	case ok := <-listening:
		Expect(ok).To(BeTrue(), "%s %s did not start capturing", name, strings.Join(args, " "))
	case <-time.After(15 * time.Second):
		cancel()
		Fail(fmt.Sprintf("%s %s did not start capturing within 15s", name, strings.Join(args, " ")))
	}
	return func(grace time.Duration) []string {
		select {
		case <-done:
		case <-time.After(grace):
		}
		cancel()
		<-done
		return framework.IPLines(stdout.String())
	}
}

// capture runs tcpdump on a node interface, runs send once tcpdump listens,
// and returns the first n packets matching filter (fewer on timeout).
func capture(ctx context.Context, lab *framework.Testbed, node, dev string, n int, filter string, send func()) []string {
	argv, err := lab.NodeNetworkArgv(ctx, node, "tcpdump", "-n", "-l", "-i", dev, "-c", strconv.Itoa(n), filter)
	Expect(err).NotTo(HaveOccurred())
	stop := startCapture(ctx, argv[0], argv[1:]...)
	send()
	return stop(10 * time.Second)
}
