package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/test/e2e/framework"
)

// newTestNamespace creates a namespace for the current spec and deletes it
// (waiting for its pods to be torn down) when the spec ends.
func newTestNamespace(ctx context.Context, base string) string {
	ns, err := f.CreateNamespace(ctx, base)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		Expect(f.DeleteNamespace(ctx, ns.Name)).To(Succeed())
	}, NodeTimeout(2*time.Minute))
	return ns.Name
}

// twoNodes returns two Ready nodes or skips.
func twoNodes(ctx context.Context) (string, string) {
	nodes, err := f.ReadyNodes(ctx)
	Expect(err).NotTo(HaveOccurred())
	if len(nodes) < 2 {
		missing(fmt.Sprintf("needs two Ready nodes, found %v", nodes))
	}
	return nodes[0], nodes[1]
}

func startPod(ctx context.Context, ns, name string, o framework.PodOptions) *corev1.Pod {
	_, err := f.CreatePod(ctx, f.NewPod(ns, name, o))
	Expect(err).NotTo(HaveOccurred())
	p, err := f.WaitPodRunning(ctx, ns, name)
	Expect(err).NotTo(HaveOccurred())
	return p
}

var _ = Describe("Default network", func() {
	It("runs pods on two nodes with addresses from each node's pod CIDRs", func(ctx SpecContext) {
		n1, n2 := twoNodes(ctx)
		ns := newTestNamespace(ctx, "e2e-default")
		for i, node := range []string{n1, n2} {
			pod := startPod(ctx, ns, fmt.Sprintf("pod-%d", i), framework.PodOptions{Node: node})
			Expect(pod.Spec.NodeName).To(Equal(node))
			Expect(pod.Status.PodIPs).NotTo(BeEmpty())
			n, err := f.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(framework.PodIPInCIDRs(pod, n)).To(Succeed())
		}
	})

	It("lets a pod reach a pod on another node over eth0", func(ctx SpecContext) {
		exec := requireExec()
		n1, n2 := twoNodes(ctx)
		ns := newTestNamespace(ctx, "e2e-ping")
		a := startPod(ctx, ns, "a", framework.PodOptions{Node: n1})
		b := startPod(ctx, ns, "b", framework.PodOptions{Node: n2})
		for _, ip := range b.Status.PodIPs {
			out, _, err := exec.ExecInPod(ctx, a, "ping", "-c", "2", "-W", "2", ip.IP)
			Expect(err).NotTo(HaveOccurred(), "ping %s from %s: %s", ip.IP, a.Name, out)
			Expect(out).To(ContainSubstring("2 received"))
		}
	})
})

var _ = Describe("Secondary network via NetworkAttachmentDefinition", func() {
	It("gives a pod a macvlan net1 on the underlay with its address in network-status", func(ctx SpecContext) {
		lab := requireCluster()
		n1, _ := twoNodes(ctx)
		ns := newTestNamespace(ctx, "e2e-macvlan")
		// Each run takes its own /24 of the underlay so concurrent runs on
		// one lab do not hand out the same addresses.
		block := 100 + int(time.Now().UnixNano()%100)
		start, end, err := lab.UnderlaySliceV4(block, 5)
		Expect(err).NotTo(HaveOccurred())
		_, err = f.CreateNAD(ctx, ns, "underlay", framework.MacvlanConfig(ns+"-underlay", lab.UnderlayIf, lab.UnderlayV4, start, end, lab.GatewayV4))
		Expect(err).NotTo(HaveOccurred())

		pod := startPod(ctx, ns, "mv", framework.PodOptions{Node: n1, Networks: "underlay"})

		st, err := framework.InterfaceStatus(pod, "net1")
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Name).To(Equal(ns + "/underlay"))
		Expect(st.IPs).To(HaveLen(1))
		addr := netip.MustParseAddr(st.IPs[0])
		Expect(addr.Compare(start) >= 0 && addr.Compare(end) <= 0).To(BeTrue(), "net1 address %s outside %s-%s", addr, start, end)
		def, err := framework.InterfaceStatus(pod, "eth0")
		Expect(err).NotTo(HaveOccurred())
		Expect(def.Default).To(BeTrue())

		out, _, err := lab.ExecInPod(ctx, pod, "ip", "-o", "-4", "addr", "show", "dev", "net1")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring(" " + addr.String() + "/"))
		out, _, err = lab.ExecInPod(ctx, pod, "ping", "-c", "2", "-W", "2", "-I", "net1", lab.GatewayV4.String())
		Expect(err).NotTo(HaveOccurred(), "ping the underlay gateway over net1: %s", out)
	})
})

// The pod-deletion spec takes one of the underlay blocks after the controller
// specs' (controllerBlockBase) and before the self-test's.
const deleteBlockBase = controllerBlockBase + blockGCRace + 1

var _ = Describe("Pod deletion", func() {
	It("leaves no pod network namespace behind", func(ctx SpecContext) {
		lab := requireCluster()
		n1, n2 := twoNodes(ctx)
		ns := newTestNamespace(ctx, "e2e-delete")
		start, end, err := lab.UnderlaySliceV4(deleteBlockBase+int(time.Now().UnixNano()%(selftestBlockBase-deleteBlockBase)), 5)
		Expect(err).NotTo(HaveOccurred())
		_, err = f.CreateNAD(ctx, ns, "underlay", framework.MacvlanConfig(ns+"-underlay", lab.UnderlayIf, lab.UnderlayV4, start, end, lab.GatewayV4))
		Expect(err).NotTo(HaveOccurred())
		startPod(ctx, ns, "a", framework.PodOptions{Node: n1})
		startPod(ctx, ns, "b", framework.PodOptions{Node: n2, Networks: "underlay"})
		Expect(podSandboxes(ctx, lab, ns)).To(HaveLen(2))

		for _, name := range []string{"a", "b"} {
			Expect(f.DeletePodAndWait(ctx, ns, name)).To(Succeed())
		}
		Expect(podSandboxes(ctx, lab, ns)).To(BeEmpty())
	})
})

var _ = Describe("Node loss", Serial, func() {
	It("marks a node whose shim stopped NotReady and Ready again after it restarts", func(ctx SpecContext) {
		lab := requireCluster()
		if len(lab.Nodes) < 2 {
			missing("needs at least two lab nodes (with one the controller-manager never marks nodes NotReady)")
		}
		node := lab.Nodes[len(lab.Nodes)-1]
		Expect(f.WaitNodeReady(ctx, node, true, 30*time.Second)).To(Succeed())
		Expect(lab.NodeStop(ctx, node)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			Expect(lab.NodeStart(ctx, node)).To(Succeed())
		}, NodeTimeout(90*time.Second))

		// Grace period 10 s, monitor period 2 s.
		Expect(f.WaitNodeReady(ctx, node, false, 40*time.Second)).To(Succeed())
		Eventually(func(g Gomega) {
			n, err := f.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			var keys []string
			for _, t := range n.Spec.Taints {
				keys = append(keys, t.Key)
			}
			g.Expect(strings.Join(keys, ",")).To(ContainSubstring("node.kubernetes.io/unreachable"))
		}).WithContext(ctx).WithTimeout(20 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())

		Expect(lab.NodeStart(ctx, node)).To(Succeed())
		Expect(f.WaitNodeReady(ctx, node, true, 30*time.Second)).To(Succeed())
	})
})
