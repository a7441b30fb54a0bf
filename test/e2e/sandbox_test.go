package e2e

import (
	"encoding/json"
	"net/netip"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spindle-net/spindle/test/e2e/framework"
)

var _ = Describe("Sandbox failures", func() {
	It("reports a failing CNI ADD as FailedCreatePodSandBox and still deletes the pod", func(ctx SpecContext) {
		n1, _ := twoNodes(ctx)
		ns := newTestNamespace(ctx, "e2e-sandbox")
		conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": ns + "-broken", "type": "no-such-plugin"})
		_, err := f.CreateNAD(ctx, ns, "broken", string(conf))
		Expect(err).NotTo(HaveOccurred())
		_, err = f.CreatePod(ctx, f.NewPod(ns, "broken", framework.PodOptions{Node: n1, Networks: "broken"}))
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			evs, err := f.PodEvents(ctx, ns, "broken", "FailedCreatePodSandBox")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(evs).NotTo(BeEmpty())
			g.Expect(evs[0].Message).To(ContainSubstring("no-such-plugin"))
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())
		p, err := f.Client.CoreV1().Pods(ns).Get(ctx, "broken", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Status.Phase).To(Equal(corev1.PodPending))

		Expect(f.DeletePodAndWait(ctx, ns, "broken")).To(Succeed())
		if f.Testbed != nil {
			Expect(podSandboxes(ctx, f.Testbed, ns)).To(BeEmpty())
		}
	})
})

// The default-network spec takes one of defnetBlocks underlay blocks from
// defnetBlockBase, after the coordinator specs' (coordBlock).
const defnetBlockBase, defnetBlocks = coordBlockBase + coordSpecs*coordSlots, 38

var _ = Describe("Default network from a pod annotation", func() {
	It("replaces eth0 with the network named by v1.multus-cni.io/default-network", func(ctx SpecContext) {
		lab := requireCluster()
		n1, _ := twoNodes(ctx)
		ns := newTestNamespace(ctx, "e2e-defnet")
		start, end, err := lab.UnderlaySliceV4(defnetBlockBase+int(time.Now().UnixNano()%defnetBlocks), 5)
		Expect(err).NotTo(HaveOccurred())
		_, err = f.CreateNAD(ctx, ns, "underlay", framework.MacvlanConfig(ns+"-underlay", lab.UnderlayIf, lab.UnderlayV4, start, end, lab.GatewayV4))
		Expect(err).NotTo(HaveOccurred())

		pod := startPod(ctx, ns, "p", framework.PodOptions{Node: n1, Annotations: map[string]string{
			"v1.multus-cni.io/default-network": ns + "/underlay",
		}})
		ip := netip.MustParseAddr(pod.Status.PodIP)
		Expect(ip.Compare(start) >= 0 && ip.Compare(end) <= 0).To(BeTrue(), "pod IP %s outside %s-%s", ip, start, end)
		st, err := framework.InterfaceStatus(pod, "eth0")
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Name).To(Equal(ns + "/underlay"))
		Expect(st.Default).To(BeTrue())
		_, err = framework.InterfaceStatus(pod, "net1")
		Expect(err).To(HaveOccurred(), "no secondary network was asked for")
		out, _, err := lab.ExecInPod(ctx, pod, "ping", "-c", "2", "-W", "2", lab.GatewayV4.String())
		Expect(err).NotTo(HaveOccurred(), "ping the gateway over the underlay eth0: %s", out)
	})
})
