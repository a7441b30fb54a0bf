package e2e

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/test/e2e/framework"
)

// The lab has KubeVirt's CRDs but no KubeVirt: the spec plays KubeVirt's
// part, creating VirtualMachine and VirtualMachineInstance objects and pods
// shaped like virt-launcher pods (controlled by the instance, labelled with
// the machine's name), and deleting them as KubeVirt would.
var _ = Describe("KubeVirt virtual machines", func() {
	It("a VM's launcher pods keep its IPv4, IPv6 and MAC across live migration (source and target running at once), launcher pod replacement and instance restart; the addresses go back to the pools when the VirtualMachine is deleted", func(ctx SpecContext) {
		cl := requireCoordinatorLab(ctx)
		e := newIPAMEnv(ctx, "e2e-kubevirt")
		block := ipamBlockBase + 17
		pool4, pool6 := e.pool(ctx, "vm-v4-"+e.ns, 4, block, 5), e.pool(ctx, "vm-v6-"+e.ns, 6, block, 5)
		e.underlayNAD(ctx, "underlay", true, pool4.Name, pool6.Name)

		kubevirt := func(kind, name string, owner *unstructured.Unstructured) *unstructured.Unstructured {
			GinkgoHelper()
			u := &unstructured.Unstructured{}
			u.SetAPIVersion("kubevirt.io/v1")
			u.SetKind(kind)
			u.SetNamespace(e.ns)
			u.SetName(name)
			Expect(unstructured.SetNestedField(u.Object, map[string]any{"running": true}, "spec")).To(Succeed())
			if owner != nil {
				u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "kubevirt.io/v1", Kind: owner.GetKind(), Name: owner.GetName(), UID: owner.GetUID(), Controller: ptr.To(true)}})
			}
			Expect(e.c.Create(ctx, u)).To(Succeed())
			return u
		}
		launcher := func(vmi *unstructured.Unstructured, suffix, node string) *corev1.Pod {
			GinkgoHelper()
			p := f.NewPod(e.ns, "virt-launcher-vm1-"+suffix, framework.PodOptions{Node: node, Networks: "underlay"})
			p.Labels = map[string]string{"kubevirt.io": "virt-launcher", "vm.kubevirt.io/name": "vm1"}
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance", Name: vmi.GetName(), UID: vmi.GetUID(), Controller: ptr.To(true)}}
			_, err := f.CreatePod(ctx, p)
			Expect(err).NotTo(HaveOccurred())
			out, err := f.WaitPodRunning(ctx, e.ns, p.Name)
			Expect(err).NotTo(HaveOccurred())
			return out
		}
		// identity is what the guest's network sees: net1's addresses (and
		// their claims, which must name this launcher pod) and MAC.
		identity := func(p *corev1.Pod) [3]string {
			GinkgoHelper()
			v4, v6 := e.expectNIC(ctx, p, "net1", pool4.Name, pool6.Name)
			return [3]string{v4.String(), v6.String(), ifaceMAC(ctx, p, "net1")}
		}
		deletePod := func(p *corev1.Pod) {
			GinkgoHelper()
			Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
			Eventually(func() bool {
				_, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, p.Name, metav1.GetOptions{})
				return apierrors.IsNotFound(err)
			}).WithContext(ctx).WithTimeout(time.Minute).Should(BeTrue(), "%s not gone", p.Name)
		}
		held := func() int {
			return len(e.claims(ctx, Default, pool4.Name)) + len(e.claims(ctx, Default, pool6.Name))
		}

		vm := kubevirt("VirtualMachine", "vm1", nil)
		vmi := kubevirt("VirtualMachineInstance", "vm1", vm)
		source := launcher(vmi, "aaaaa", cl.node1)
		want := identity(source)
		GinkgoWriter.Printf("vm1: %v\n", want)

		// With bridge binding virt-launcher hands net1's addresses to the
		// guest: the pod's namespace no longer holds them. Played here, so
		// that the target's IPv6 duplicate address detection on the shared
		// underlay meets no second holder (kind's nodes run it; a pod still
		// holding the address would leave the target's net1 DADFAILED, as
		// two hosts with one address would).
		_, _, err := requireExec().ExecInPod(ctx, source, "ip", "addr", "flush", "dev", "net1", "scope", "global")
		Expect(err).NotTo(HaveOccurred())

		By("live migration: the target launcher pod on the other node gets the same addresses and MAC while the source runs")
		target := launcher(vmi, "bbbbb", cl.node2)
		Expect(identity(target)).To(Equal(want))
		cur, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, source.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cur.Status.Phase).To(Equal(corev1.PodRunning), "the source launcher pod still runs")
		e.show(ctx, "get", "sic", "-o", "wide", "-l", "ipam.spidernet.io/pool in ("+pool4.Name+","+pool6.Name+")")
		deletePod(source) // the migration completed
		Consistently(held).WithContext(ctx).WithTimeout(3*time.Second).Should(Equal(2), "the source's end released the machine's addresses")
		Expect(identity(target)).To(Equal(want))

		By("instance restart: the VMI and its launcher pod are replaced")
		deletePod(target)
		Expect(e.c.Delete(ctx, vmi)).To(Succeed())
		Consistently(held).WithContext(ctx).WithTimeout(3*time.Second).Should(Equal(2), "a stopped VM lost its addresses")
		vmi = kubevirt("VirtualMachineInstance", "vm1", vm)
		Expect(identity(launcher(vmi, "ccccc", cl.node1))).To(Equal(want))

		By("the VirtualMachine deleted (with its instance and launcher pod, as KubeVirt's controllers would)")
		for _, o := range []client.Object{vm, vmi} {
			// The VMI is owned by the VM: the cluster's garbage collector
			// may remove it before this delete does.
			Expect(client.IgnoreNotFound(e.c.Delete(ctx, o))).To(Succeed())
		}
		deletePod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "virt-launcher-vm1-ccccc"}})
		Eventually(held).WithContext(ctx).WithTimeout(30*time.Second).Should(BeZero(), "addresses of a deleted VM still held")
		e.expectSp(ctx, pool4.Name, 0, 5)

	})
})
