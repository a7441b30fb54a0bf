package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// The controller specs use the underlay /24 blocks 200-209 (see
// framework.Lab.UnderlaySliceV4) so they never share addresses with others.
const controllerBlockBase = 200

// crClient returns a client for Spindle's resources.
func crClient() client.Client {
	s := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(s)).To(Succeed())
	Expect(v2beta1.AddToScheme(s)).To(Succeed())
	c, err := client.New(f.Config, client.Options{Scheme: s})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// requireController skips unless spindle-controller's webhooks are
// configured in the cluster.
func requireController(ctx context.Context, c client.Client) {
	var list admissionv1.ValidatingWebhookConfigurationList
	Expect(c.List(ctx, &list)).To(Succeed())
	for _, v := range list.Items {
		for _, w := range v.Webhooks {
			if w.Name == "spiderippool.validate.spindle.spidernet.io" {
				return
			}
		}
	}
	Skip("spindle-controller's webhooks are not configured (run it, e.g. as a lab cluster daemon, see docs/controller.md)")
}

// underlayPool creates a SpiderIPPool over n addresses of underlay block
// controllerBlockBase+offset and deletes it when the spec ends.
func underlayPool(ctx context.Context, c client.Client, lab *framework.Lab, name string, offset, n int) *v2beta1.SpiderIPPool {
	start, end, err := lab.UnderlaySliceV4(controllerBlockBase+offset, n)
	Expect(err).NotTo(HaveOccurred())
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{
			Subnet:  lab.UnderlayV4.Masked().String(),
			IPs:     []string{start.String() + "-" + end.String()},
			Gateway: ptr.To(lab.GatewayV4.String()),
		},
	}
	Expect(c.Create(ctx, p)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		_ = c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	return p
}

// macvlanSMC creates a SpiderMultusConfig on the lab's underlay using pool.
func macvlanSMC(ctx context.Context, c client.Client, lab *framework.Lab, ns, name, pool string) *v2beta1.SpiderMultusConfig {
	smc := &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v2beta1.MultusCNIConfigSpec{CniType: v2beta1.CNITypeMacvlan, MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
			Master:                []string{lab.UnderlayIf},
			SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{pool}},
		}},
	}
	Expect(c.Create(ctx, smc)).To(Succeed())
	Eventually(func(g Gomega) {
		_, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	return smc
}

// claimsOf returns the SpiderIPClaims of pool held by pod ns/name.
func claimsOf(ctx context.Context, c client.Client, pool, ns, name string) []v2beta1.SpiderIPClaim {
	var list v2beta1.SpiderIPClaimList
	Expect(c.List(ctx, &list, client.MatchingLabels{v2beta1.LabelPool: pool})).To(Succeed())
	var out []v2beta1.SpiderIPClaim
	for _, cl := range list.Items {
		if cl.Spec.PodNamespace == ns && cl.Spec.PodName == name {
			out = append(out, cl)
		}
	}
	return out
}

func net1Pod(ns, name, nad, node string) *corev1.Pod {
	return f.NewPod(ns, name, framework.PodOptions{Node: node, Networks: ns + "/" + nad})
}

var _ = Describe("spindle-controller", func() {
	var c client.Client

	BeforeEach(func(ctx SpecContext) {
		c = crClient()
		requireController(ctx, c)
	})

	It("rejects invalid pools, overlapping pools and a second coordinator with messages naming the field", func(ctx SpecContext) {
		lab := requireLab()
		subnet := lab.UnderlayV4.Masked()
		start, end, err := lab.UnderlaySliceV4(controllerBlockBase, 10)
		Expect(err).NotTo(HaveOccurred())
		outside := netip.MustParseAddr("10.255.0.5")

		bad := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-outside-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{Subnet: subnet.String(), IPs: []string{start.String(), end.String(), outside.String()}}}
		err = c.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(fmt.Sprintf(
			`admission webhook "spiderippool.validate.spindle.spidernet.io" denied the request: spec.ips[2]: %s is outside spec.subnet %s: move it into the subnet or widen the subnet`,
			outside, subnet)))

		first := underlayPool(ctx, c, lab, "e2e-first-"+framework.RandSuffix(4), 0, 10)
		second := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-second-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{Subnet: subnet.String(), IPs: []string{end.String()}}}
		err = c.Create(ctx, second)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(fmt.Sprintf(
			`spec.ips: %s already belong to SpiderIPPool %q: an address can be in one pool only; remove them from spec.ips or add them to spec.excludeIPs`, end, first.Name)))

		empty := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-empty-aff-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{Subnet: "10.254.0.0/24", PodAffinity: &metav1.LabelSelector{}}}
		err = c.Create(ctx, empty)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.podAffinity: an empty selector matches every pod: add matchLabels or matchExpressions, or remove spec.podAffinity"))

		err = c.Create(ctx, &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "e2e-second"}})
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`metadata.name: "e2e-second": there is one cluster-wide SpiderCoordinator and it must be named "default"`))
	})

	It("generates a NetworkAttachmentDefinition from a SpiderMultusConfig that a pod uses for net1", func(ctx SpecContext) {
		lab := requireLab()
		ns := newTestNamespace(ctx, "e2e-smc")
		pool := underlayPool(ctx, c, lab, "e2e-smc-"+framework.RandSuffix(4), 1, 10)
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", pool.Name)

		nad, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, smc.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(metav1.GetControllerOf(nad)).NotTo(BeNil())
		Expect(metav1.GetControllerOf(nad).UID).To(Equal(smc.UID))
		Expect(nad.Spec.Config).To(ContainSubstring(`"default_ipv4_ippool": [`))
		Expect(nad.Spec.Config).To(ContainSubstring(`"type": "coordinator"`))

		_, err = f.CreatePod(ctx, net1Pod(ns, "pod-net1", smc.Name, ""))
		Expect(err).NotTo(HaveOccurred())
		pod, err := f.WaitPodRunning(ctx, ns, "pod-net1")
		Expect(err).NotTo(HaveOccurred())
		st, err := framework.InterfaceStatus(pod, "net1")
		Expect(err).NotTo(HaveOccurred())
		start, end, _ := lab.UnderlaySliceV4(controllerBlockBase+1, 10)
		Expect(st.IPs).NotTo(BeEmpty())
		a := netip.MustParseAddr(st.IPs[0])
		Expect(a.Compare(start) >= 0 && a.Compare(end) <= 0).To(BeTrue(), "net1 address %s outside %s-%s", a, start, end)

		// Deleting the SpiderMultusConfig deletes its NAD (owner reference).
		Expect(f.DeletePodAndWait(ctx, ns, "pod-net1")).To(Succeed())
		Expect(c.Delete(ctx, smc)).To(Succeed())
		Eventually(func() bool {
			_, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, smc.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(BeTrue())
	})

	It("keeps a pool with allocations until its last address is released", func(ctx SpecContext) {
		lab := requireLab()
		ns := newTestNamespace(ctx, "e2e-pool-del")
		pool := underlayPool(ctx, c, lab, "e2e-inuse-"+framework.RandSuffix(4), 2, 5)
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", pool.Name)
		_, err := f.CreatePod(ctx, net1Pod(ns, "holder", smc.Name, ""))
		Expect(err).NotTo(HaveOccurred())
		_, err = f.WaitPodRunning(ctx, ns, "holder")
		Expect(err).NotTo(HaveOccurred())
		held := claimsOf(ctx, c, pool.Name, ns, "holder")
		Expect(held).To(HaveLen(1))

		Expect(c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool.Name}})).To(Succeed())
		Eventually(func(g Gomega) {
			var evs eventsv1.EventList
			g.Expect(c.List(ctx, &evs)).To(Succeed())
			found := false
			for _, e := range evs.Items {
				if e.Reason == "PoolInUse" && e.Regarding.Name == pool.Name && strings.Contains(e.Note, fmt.Sprintf("%s (pod %s/holder)", held[0].Spec.Address, ns)) {
					found = true
				}
			}
			g.Expect(found).To(BeTrue(), "no PoolInUse event naming the holder")
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Consistently(func() error {
			return c.Get(ctx, types.NamespacedName{Name: pool.Name}, &v2beta1.SpiderIPPool{})
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())

		Expect(f.DeletePodAndWait(ctx, ns, "holder")).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Name: pool.Name}, &v2beta1.SpiderIPPool{}))
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(BeTrue())
	})

	It("releases the address of a pod force-deleted while its node is down", func(ctx SpecContext) {
		lab := requireLab()
		_, n2 := twoNodes(ctx)
		ns := newTestNamespace(ctx, "e2e-gc-node")
		pool := underlayPool(ctx, c, lab, "e2e-gc-"+framework.RandSuffix(4), 3, 5)
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", pool.Name)
		_, err := f.CreatePod(ctx, net1Pod(ns, "victim", smc.Name, n2))
		Expect(err).NotTo(HaveOccurred())
		_, err = f.WaitPodRunning(ctx, ns, "victim")
		Expect(err).NotTo(HaveOccurred())
		Expect(claimsOf(ctx, c, pool.Name, ns, "victim")).To(HaveLen(1))

		Expect(lab.NodeStop(ctx, n2)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { Expect(lab.NodeStart(ctx, n2)).To(Succeed()) }, NodeTimeout(2*time.Minute))
		Expect(f.WaitNodeReady(ctx, n2, false, time.Minute)).To(Succeed())
		Expect(f.Client.CoreV1().Pods(ns).Delete(ctx, "victim", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())

		Eventually(func() []v2beta1.SpiderIPClaim {
			return claimsOf(ctx, c, pool.Name, ns, "victim")
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(BeEmpty())
		Eventually(func() bool {
			return apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "victim"}, &v2beta1.SpiderEndpoint{}))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(BeTrue())
	})

	It("frees ordinals 1 and 2 of a StatefulSet scaled from 3 to 1 and keeps ordinal 0's address", func(ctx SpecContext) {
		lab := requireLab()
		ns := newTestNamespace(ctx, "e2e-sts")
		pool := underlayPool(ctx, c, lab, "e2e-sts-"+framework.RandSuffix(4), 4, 10)
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", pool.Name)
		tmpl := net1Pod(ns, "", smc.Name, "")
		tmpl.Labels = map[string]string{"app": "web"}
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
			Spec: appsv1.StatefulSetSpec{
				Replicas:            ptr.To[int32](3),
				PodManagementPolicy: appsv1.ParallelPodManagement,
				Selector:            &metav1.LabelSelector{MatchLabels: tmpl.Labels},
				Template:            corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
			},
		}
		sts.Spec.Template.Namespace, sts.Spec.Template.Name = "", ""
		Expect(c.Create(ctx, sts)).To(Succeed())
		for i := 0; i < 3; i++ {
			Eventually(func() error {
				_, err := f.WaitPodRunning(ctx, ns, fmt.Sprintf("web-%d", i))
				return err
			}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
		}
		kept := claimsOf(ctx, c, pool.Name, ns, "web-0")
		Expect(kept).To(HaveLen(1))
		Expect(claimsOf(ctx, c, pool.Name, ns, "web-1")).To(HaveLen(1))
		Expect(claimsOf(ctx, c, pool.Name, ns, "web-2")).To(HaveLen(1))

		Expect(c.Get(ctx, client.ObjectKeyFromObject(sts), sts)).To(Succeed())
		sts.Spec.Replicas = ptr.To[int32](1)
		Expect(c.Update(ctx, sts)).To(Succeed())
		for _, p := range []string{"web-1", "web-2"} {
			Eventually(func() []v2beta1.SpiderIPClaim {
				return claimsOf(ctx, c, pool.Name, ns, p)
			}).WithContext(ctx).WithTimeout(90*time.Second).Should(BeEmpty(), "claim of %s not released", p)
		}
		now := claimsOf(ctx, c, pool.Name, ns, "web-0")
		Expect(now).To(HaveLen(1))
		Expect(now[0].Spec.Address).To(Equal(kept[0].Spec.Address))
	})

	It("shows the cluster's service CIDR in the default SpiderCoordinator", func(ctx SpecContext) {
		lab := requireLab()
		want := lab.Env["LAB_SERVICE_CIDR"]
		Expect(want).NotTo(BeEmpty())
		Eventually(func(g Gomega) {
			var co v2beta1.SpiderCoordinator
			g.Expect(c.Get(ctx, types.NamespacedName{Name: "default"}, &co)).To(Succeed())
			g.Expect(co.Status.ServiceCIDR).To(ContainElement(want))
			g.Expect(co.Status.Phase).To(Equal("Synced"), "reason: %s", co.Status.Reason)
		}).WithContext(ctx).WithTimeout(90 * time.Second).Should(Succeed())
	})
})
