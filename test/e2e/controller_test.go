package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
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
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/lifecycle"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// The controller specs use the underlay blocks 200-208 of each family (the
// /24s of framework.Lab.UnderlaySliceV4 and the /120s of UnderlaySliceV6) so
// they never share addresses with others' specs.
const controllerBlockBase = 200

// Underlay blocks (added to controllerBlockBase) of the controller specs.
const (
	blockPoolRules = iota
	blockSMC
	blockPoolDelete
	blockGC
	blockStatefulSet
	blockSameName
	blockChurn
	blockOverlap
	blockReserved
	blockMetrics
	blockGCRace
)

// controllerMetricsURL is where the lab's controller serves its metrics
// (E2E_CONTROLLER_METRICS overrides it).
func controllerMetricsURL(ctx context.Context) string {
	GinkgoHelper()
	if u := os.Getenv("E2E_CONTROLLER_METRICS"); u != "" {
		return u
	}
	if f.Lab != nil || f.Testbed == nil {
		return "https://127.0.0.1:5721/metrics"
	}
	// The chart's controllers run on the host network, and only the leader
	// counts.
	return "https://" + f.Testbed.NodeEnv(controllerLeaderNode(ctx), "UNDERLAY_V4") + ":5721/metrics"
}

// controllerLeaderNode is the node whose controller holds the leader Lease
// (named by its host name, the node's) on a cluster installed by the chart;
// "" on the lab, whose controller is a process of no node.
func controllerLeaderNode(ctx context.Context) string {
	GinkgoHelper()
	if f.Lab != nil || f.Testbed == nil {
		return ""
	}
	var node string
	Eventually(func(g Gomega) {
		l, err := f.Client.CoordinationV1().Leases("kube-system").Get(ctx, "spindle-controller", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(l.Spec.HolderIdentity).NotTo(BeNil())
		node, _, _ = strings.Cut(*l.Spec.HolderIdentity, "_")
		g.Expect(f.Testbed.NodeEnv(node, "UNDERLAY_V4")).NotTo(BeEmpty(), "the leader %q is no node of the %s", *l.Spec.HolderIdentity, f.Testbed.Name())
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	return node
}

// metricsReader is the ServiceAccount whose token the specs scrape with: it is
// bound to a ClusterRole that may get /metrics, as the chart's
// <release>-metrics-reader is bound to a Prometheus.
const metricsReader = "spindle-e2e-metrics-reader"

var metricsToken = struct {
	sync.Mutex
	token string
}{}

// readerToken returns a token of metricsReader (created on first use).
func readerToken(ctx context.Context) string {
	GinkgoHelper()
	metricsToken.Lock()
	defer metricsToken.Unlock()
	if metricsToken.token == "" {
		t, err := framework.MetricsReaderToken(ctx, f.Client, "default", metricsReader, true)
		Expect(err).NotTo(HaveOccurred())
		metricsToken.token = t
	}
	return metricsToken.token
}

var quietControllerRuntime sync.Once

// crClient returns a client for Spindle's resources.
func crClient() client.Client {
	quietControllerRuntime.Do(func() { ctrllog.SetLogger(GinkgoLogr) })
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
	missing("spindle-controller's webhooks are not configured (run it, e.g. as a lab cluster daemon, see docs/controller.md)")
}

// expectDenied asserts that err is the refusal of kind's validating webhook
// and that its message contains every one of msgs.
func expectDenied(err error, kind string, msgs ...string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred(), "the %s webhook accepted the object", kind)
	Expect(err.Error()).To(HavePrefix(fmt.Sprintf(`admission webhook "%s.validate.spindle.spidernet.io" denied the request: `, kind)))
	for _, m := range msgs {
		Expect(err.Error()).To(ContainSubstring(m))
	}
}

// deleteAndWait deletes a cluster-scoped object and waits until it is gone.
func deleteAndWait(ctx context.Context, c client.Client, obj client.Object, timeout time.Duration) {
	GinkgoHelper()
	err := c.Delete(ctx, obj)
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool {
		return apierrors.IsNotFound(c.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	}).WithContext(ctx).WithTimeout(timeout).WithPolling(500*time.Millisecond).Should(BeTrue(), "%T %s is still there", obj, obj.GetName())
}

// underlayPool creates a SpiderIPPool over n addresses of underlay block
// controllerBlockBase+offset, in the lab's underlay subnet (IPv4 or IPv6).
// When the spec ends the pool is deleted and waited for (its finalizer goes
// once its last address is released), so create it BEFORE the spec's
// namespace: cleanups run in reverse order, the namespace's pods are then
// gone first.
func underlayPool(ctx context.Context, c client.Client, lab *framework.Testbed, name string, v6 bool, offset, n int) *v2beta1.SpiderIPPool {
	GinkgoHelper()
	slice, subnet, gw := lab.UnderlaySliceV4, lab.UnderlayV4, lab.GatewayV4
	if v6 {
		slice, subnet, gw = lab.UnderlaySliceV6, lab.UnderlayV6, lab.GatewayV6
	}
	start, end, err := slice(controllerBlockBase+offset, n)
	Expect(err).NotTo(HaveOccurred())
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{
			Subnet:  subnet.Masked().String(),
			IPs:     []string{start.String() + "-" + end.String()},
			Gateway: ptr.To(gw.String()),
		},
	}
	Expect(c.Create(ctx, p)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) {
		deleteAndWait(ctx, c, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}, 60*time.Second)
	}, NodeTimeout(90*time.Second))
	return p
}

// pools are the IPv4 and IPv6 pool of a spec: the lab's agents run dual
// stack, so every pod gets an address of each family on net1.
type pools struct{ V4, V6 *v2beta1.SpiderIPPool }

// names returns both pool names.
func (p pools) names() []string { return []string{p.V4.Name, p.V6.Name} }

// underlayPools creates name-v4 and name-v6 over n addresses of block
// controllerBlockBase+offset of each underlay subnet (see underlayPool).
func underlayPools(ctx context.Context, c client.Client, lab *framework.Testbed, name string, offset, n int) pools {
	GinkgoHelper()
	return pools{
		V4: underlayPool(ctx, c, lab, name+"-v4", false, offset, n),
		V6: underlayPool(ctx, c, lab, name+"-v6", true, offset, n),
	}
}

// macvlanSMC creates a SpiderMultusConfig on the lab's underlay using the
// pools and waits for its NetworkAttachmentDefinition. coordinator chains
// the coordinator plugin (the default of a SpiderMultusConfig).
func macvlanSMC(ctx context.Context, c client.Client, lab *framework.Testbed, ns, name string, p pools, coordinator bool) *v2beta1.SpiderMultusConfig {
	GinkgoHelper()
	smc := newMacvlanSMC(lab, ns, name, p)
	if !coordinator {
		smc.Spec.EnableCoordinator = ptr.To(false)
	}
	Expect(c.Create(ctx, smc)).To(Succeed())
	Eventually(func(g Gomega) {
		_, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	return smc
}

func newMacvlanSMC(lab *framework.Testbed, ns, name string, p pools) *v2beta1.SpiderMultusConfig {
	return &v2beta1.SpiderMultusConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v2beta1.MultusCNIConfigSpec{CniType: v2beta1.CNITypeMacvlan, MacvlanConfig: &v2beta1.SpiderMacvlanCniConfig{
			Master:                []string{lab.UnderlayIf},
			SpiderpoolConfigPools: &v2beta1.SpiderpoolPools{IPv4IPPool: []string{p.V4.Name}, IPv6IPPool: []string{p.V6.Name}},
		}},
	}
}

// macvlanSMCNoWait creates a SpiderMultusConfig without waiting for its
// NetworkAttachmentDefinition.
func macvlanSMCNoWait(ctx context.Context, c client.Client, lab *framework.Testbed, ns, name string, p pools) *v2beta1.SpiderMultusConfig {
	GinkgoHelper()
	smc := newMacvlanSMC(lab, ns, name, p)
	Expect(c.Create(ctx, smc)).To(Succeed())
	return smc
}

// poolClaims returns the SpiderIPClaims of pool, read from the API server.
func poolClaims(ctx context.Context, c client.Client, pool string) []v2beta1.SpiderIPClaim {
	GinkgoHelper()
	var list v2beta1.SpiderIPClaimList
	Expect(c.List(ctx, &list, client.MatchingLabels{v2beta1.LabelPool: pool})).To(Succeed())
	return list.Items
}

// claimsOf returns the SpiderIPClaims of pool held by pod ns/name.
func claimsOf(ctx context.Context, c client.Client, pool, ns, name string) []v2beta1.SpiderIPClaim {
	GinkgoHelper()
	var out []v2beta1.SpiderIPClaim
	for _, cl := range poolClaims(ctx, c, pool) {
		if cl.Spec.PodNamespace == ns && cl.Spec.PodName == name {
			out = append(out, cl)
		}
	}
	return out
}

func net1Pod(ns, name, nad, node string) *corev1.Pod {
	return f.NewPod(ns, name, framework.PodOptions{Node: node, Networks: ns + "/" + nad})
}

// endpointOf returns the SpiderEndpoint of pod ns/name, nil when there is
// none.
func endpointOf(ctx context.Context, c client.Client, ns, name string) *v2beta1.SpiderEndpoint {
	GinkgoHelper()
	var se v2beta1.SpiderEndpoint
	err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &se)
	if apierrors.IsNotFound(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())
	return &se
}

// podClaims returns the claims of pod ns/name in both pools, IPv4 first.
func podClaims(ctx context.Context, c client.Client, p pools, ns, name string) []v2beta1.SpiderIPClaim {
	GinkgoHelper()
	return append(claimsOf(ctx, c, p.V4.Name, ns, name), claimsOf(ctx, c, p.V6.Name, ns, name)...)
}

// net1Addrs returns the IPv4 and the global IPv6 address configured on net1
// inside the pod.
func net1Addrs(ctx context.Context, lab *framework.Testbed, pod *corev1.Pod) (v4, v6 string) {
	GinkgoHelper()
	v4, v6, err := readNet1Addrs(ctx, lab, pod)
	Expect(err).NotTo(HaveOccurred())
	return v4, v6
}

// readNet1Addrs reads the IPv4 and the global IPv6 address configured on
// net1 inside the pod; it fails when either is missing.
func readNet1Addrs(ctx context.Context, lab *framework.Testbed, pod *corev1.Pod) (v4, v6 string, err error) {
	out, _, err := lab.ExecInPodIncarnation(ctx, pod, "ip", "-o", "addr", "show", "dev", "net1", "scope", "global")
	if err != nil {
		return "", "", err
	}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		for i := 0; i+1 < len(fields); i++ {
			if fields[i] != "inet" && fields[i] != "inet6" {
				continue
			}
			p, err := netip.ParsePrefix(fields[i+1])
			if err != nil {
				return "", "", fmt.Errorf("pod %s/%s: bad address in %q: %w", pod.Namespace, pod.Name, line, err)
			}
			if p.Addr().Is4() {
				v4 = p.Addr().String()
			} else {
				v6 = p.Addr().String()
			}
		}
	}
	if v4 == "" || v6 == "" {
		return "", "", fmt.Errorf("pod %s/%s lacks an IPv4 or IPv6 address on net1: %q", pod.Namespace, pod.Name, out)
	}
	return v4, v6, nil
}

// expectPodHolds checks that pod holds exactly one claim in each pool, made
// for its UID, and that those are the addresses on net1 inside it. It
// returns the IPv4 and IPv6 address.
func expectPodHolds(ctx context.Context, c client.Client, lab *framework.Testbed, p pools, pod *corev1.Pod) (v4, v6 string) {
	GinkgoHelper()
	v4, v6 = net1Addrs(ctx, lab, pod)
	for _, x := range []struct{ pool, addr string }{{p.V4.Name, v4}, {p.V6.Name, v6}} {
		held := claimsOf(ctx, c, x.pool, pod.Namespace, pod.Name)
		Expect(held).To(HaveLen(1), "claims of %s/%s in %s", pod.Namespace, pod.Name, x.pool)
		Expect(held[0].Spec.Address).To(Equal(x.addr), "the claim of %s/%s in %s is not the address on net1", pod.Namespace, pod.Name, x.pool)
		Expect(held[0].Spec.PodUID).To(Equal(string(pod.UID)))
	}
	return v4, v6
}

// inSlice reports whether addr lies in the n addresses of underlay block
// controllerBlockBase+offset of its family.
func inSlice(lab *framework.Testbed, offset, n int, addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	slice := lab.UnderlaySliceV4
	if a.Is6() {
		slice = lab.UnderlaySliceV6
	}
	start, end, err := slice(controllerBlockBase+offset, n)
	Expect(err).NotTo(HaveOccurred())
	return a.Compare(start) >= 0 && a.Compare(end) <= 0
}

func scrape(ctx context.Context) framework.Metrics {
	GinkgoHelper()
	m, err := framework.ScrapeMetrics(ctx, controllerMetricsURL(ctx), readerToken(ctx))
	Expect(err).NotTo(HaveOccurred(), "the controller's metrics must be reachable from the test process")
	return m
}

func envInt(key string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(key)); err == nil && v > 0 {
		return v
	}
	return def
}

var _ = Describe("spindle-controller", func() {
	var c client.Client

	BeforeEach(func(ctx SpecContext) {
		c = crClient()
		requireController(ctx, c)
	})

	It("infers a pool's ipVersion, and refuses a wrong ipVersion, a changed subnet and addresses outside the subnet", func(ctx SpecContext) {
		lab := requireCluster()
		subnet := lab.UnderlayV4.Masked()
		start, end, err := lab.UnderlaySliceV4(controllerBlockBase+blockPoolRules, 10)
		Expect(err).NotTo(HaveOccurred())
		mid := start.Next().Next().Next().Next().Next()

		// Defaulting: ipVersion from the subnet, ranges merged and sorted,
		// the in-use finalizer.
		name := "e2e-rules-" + framework.RandSuffix(4)
		p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v2beta1.IPPoolSpec{Subnet: subnet.String(), IPs: []string{mid.String() + "-" + end.String(), start.String() + "-" + mid.String()}}}
		Expect(c.Create(ctx, p)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			deleteAndWait(ctx, c, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}, 30*time.Second)
		})
		var got v2beta1.SpiderIPPool
		Expect(c.Get(ctx, types.NamespacedName{Name: name}, &got)).To(Succeed())
		Expect(got.Spec.IPVersion).To(HaveValue(Equal(int64(4))))
		Expect(got.Spec.IPs).To(Equal([]string{start.String() + "-" + end.String()}))
		Expect(got.Finalizers).To(ContainElement("spindle.spidernet.io/pool-in-use"))

		// An ipVersion that contradicts the subnet.
		err = c.Create(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-v6-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To[int64](6), Subnet: subnet.String()}})
		expectDenied(err, "spiderippool", fmt.Sprintf("spec.ipVersion: 6 does not match spec.subnet %s (IPv4): set it to 4 or leave it unset", subnet))

		// The subnet is immutable.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cur v2beta1.SpiderIPPool
			if err := c.Get(ctx, types.NamespacedName{Name: name}, &cur); err != nil {
				return err
			}
			cur.Spec.Subnet = "172.31.0.0/16"
			cur.Spec.IPs = nil
			return c.Update(ctx, &cur)
		})
		expectDenied(err, "spiderippool", fmt.Sprintf("spec.subnet: changing the subnet from %s to 172.31.0.0/16 is not allowed: create a new pool with the new subnet and move the workloads to it", subnet))

		// ips, excludeIPs, gateway and route next hops outside the subnet,
		// all reported at once.
		err = c.Create(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-outside-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{
				Subnet:     subnet.String(),
				IPs:        []string{start.String(), "10.255.0.5"},
				ExcludeIPs: []string{"10.255.0.6-10.255.0.7"},
				Gateway:    ptr.To("10.255.0.1"),
				Routes:     []v2beta1.Route{{Dst: "10.10.0.0/16", Gw: "10.255.0.9"}},
			}})
		expectDenied(err, "spiderippool",
			fmt.Sprintf("spec.ips[1]: 10.255.0.5 is outside spec.subnet %s: move it into the subnet or widen the subnet", subnet),
			fmt.Sprintf("spec.excludeIPs[0]: 10.255.0.6-10.255.0.7 is outside spec.subnet %s: move it into the subnet or widen the subnet", subnet),
			fmt.Sprintf("spec.gateway: 10.255.0.1 is outside spec.subnet %s: use an address of the subnet as gateway", subnet),
			fmt.Sprintf("spec.routes[0].gw: 10.255.0.9 is outside spec.subnet %s: the next hop must be reachable on the pool's subnet; use an address of the subnet", subnet),
		)
		Expect(strings.Count(err.Error(), "; spec.")).To(Equal(3), "every violation is reported once: %v", err)
	})

	It("refuses pools sharing addresses or partially overlapping subnets, and empty affinity selectors", func(ctx SpecContext) {
		lab := requireCluster()
		subnet := lab.UnderlayV4.Masked()
		_, end, err := lab.UnderlaySliceV4(controllerBlockBase+blockOverlap, 10)
		Expect(err).NotTo(HaveOccurred())
		first := underlayPool(ctx, c, lab, "e2e-first-"+framework.RandSuffix(4), false, blockOverlap, 10)

		err = c.Create(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-second-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{Subnet: subnet.String(), IPs: []string{end.String()}}})
		expectDenied(err, "spiderippool", fmt.Sprintf(
			`spec.ips: %s already belong to SpiderIPPool %q: an address can be in one pool only; remove them from spec.ips or add them to spec.excludeIPs`, end, first.Name))

		// A /24 inside the underlay /16: same addresses reachable through
		// two subnets is refused even when no address is shared.
		inner := netip.PrefixFrom(end, 24).Masked()
		far := inner.Addr().As4()
		far[3] = 200
		err = c.Create(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-inner-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{Subnet: inner.String(), IPs: []string{netip.AddrFrom4(far).String()}}})
		expectDenied(err, "spiderippool", fmt.Sprintf(
			`spec.subnet: %s overlaps spec.subnet %s of SpiderIPPool %q: pools whose subnets overlap must use exactly the same subnet; use %s or a subnet that does not overlap`,
			inner, subnet, first.Name, subnet))

		err = c.Create(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e-empty-aff-" + framework.RandSuffix(4)},
			Spec: v2beta1.IPPoolSpec{Subnet: subnet.String(), PodAffinity: &metav1.LabelSelector{}, NodeAffinity: &metav1.LabelSelector{}}})
		expectDenied(err, "spiderippool",
			"spec.podAffinity: an empty selector matches every pod: add matchLabels or matchExpressions, or remove spec.podAffinity",
			"spec.nodeAffinity: an empty selector matches every node: add matchLabels or matchExpressions, or remove spec.nodeAffinity")
	})

	It("validates SpiderReservedIPs, SpiderSubnets, SpiderMultusConfigs and the singleton SpiderCoordinator", func(ctx SpecContext) {
		lab := requireCluster()
		ns := newTestNamespace(ctx, "e2e-kinds")
		sfx := framework.RandSuffix(4)
		resStart, _, err := lab.UnderlaySliceV4(controllerBlockBase+blockReserved, 1)
		Expect(err).NotTo(HaveOccurred())

		By("SpiderReservedIP: one family, ipVersion inferred")
		err = c.Create(ctx, &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "e2e-res-mixed-" + sfx},
			Spec: v2beta1.ReservedIPSpec{IPs: []string{resStart.String(), "fd30:172:30::ff01", "10.1.2.300"}}})
		expectDenied(err, "spiderreservedip",
			"spec.ips[1]: fd30:172:30::ff01 is an IPv6 entry in an IPv4 list: use IPv4 addresses only",
			`spec.ips[2]: "10.1.2.300" is not an address or range (`)
		res := &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "e2e-res-" + sfx},
			Spec: v2beta1.ReservedIPSpec{IPs: []string{resStart.String()}}}
		Expect(c.Create(ctx, res)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			deleteAndWait(ctx, c, &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: res.Name}}, 30*time.Second)
		})
		Expect(res.Spec.IPVersion).To(HaveValue(Equal(int64(4))))

		By("SpiderSubnet: inside its subnet, no overlap, subnet immutable")
		// 198.18.0.0/15 is reserved for benchmarking: no one else's subnet.
		sub := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "e2e-subnet-" + sfx},
			Spec: v2beta1.SubnetSpec{Subnet: "198.18.200.0/24", IPs: []string{"198.18.200.10-198.18.200.20"}}}
		Expect(c.Create(ctx, sub)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			deleteAndWait(ctx, c, &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: sub.Name}}, 30*time.Second)
		})
		Expect(sub.Spec.IPVersion).To(HaveValue(Equal(int64(4))))
		err = c.Create(ctx, &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: "e2e-subnet-b-" + sfx},
			Spec: v2beta1.SubnetSpec{Subnet: "198.18.200.128/25", IPs: []string{"198.18.201.5"}}})
		expectDenied(err, "spidersubnet",
			"spec.ips[0]: 198.18.201.5 is outside spec.subnet 198.18.200.128/25: move it into the subnet or widen the subnet",
			fmt.Sprintf(`spec.subnet: 198.18.200.128/25 overlaps spec.subnet 198.18.200.0/24 of SpiderSubnet %q: SpiderSubnets must not overlap; pick a disjoint subnet`, sub.Name))
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cur v2beta1.SpiderSubnet
			if err := c.Get(ctx, client.ObjectKeyFromObject(sub), &cur); err != nil {
				return err
			}
			cur.Spec.Subnet, cur.Spec.IPs = "198.18.201.0/24", nil
			return c.Update(ctx, &cur)
		})
		expectDenied(err, "spidersubnet", "spec.subnet: changing the subnet from 198.18.200.0/24 to 198.18.201.0/24 is not allowed: create a new SpiderSubnet instead")

		By("SpiderMultusConfig: interface names, one section per type, chained plugins, coordinator overrides")
		err = c.Create(ctx, &v2beta1.SpiderMultusConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
			Spec: v2beta1.MultusCNIConfigSpec{
				CniType:           v2beta1.CNITypeMacvlan,
				MacvlanConfig:     &v2beta1.SpiderMacvlanCniConfig{Master: []string{"ul0/x", lab.UnderlayIf}},
				IPVlanConfig:      &v2beta1.SpiderIPvlanCniConfig{Master: []string{lab.UnderlayIf}},
				ChainCNIJsonData:  []string{`{"type":"tuning"}`, `{"mtu":1400}`},
				CoordinatorConfig: &v2beta1.CoordinatorSpec{HostRuleTable: ptr.To(254)},
			}})
		expectDenied(err, "spidermultusconfig",
			`spec.macvlan.master[0]: "ul0/x" is not a network interface name: use at most 15 characters without '/', ':' or spaces`,
			"spec.macvlan.master: lists 2 interfaces but spec.macvlan.bond is not set: list one interface, or set spec.macvlan.bond to bond them",
			`spec.ipvlan: is set but spec.cniType is "macvlan": remove spec.ipvlan or set spec.cniType to "ipvlan"`,
			`spec.chainCNIJsonData[1]: has no "type": every chained plugin configuration needs its plugin type`,
			"spec.coordinator.hostRuleTable: 254 cannot hold pod routes: use a positive table number other than 253, 254 and 255 (the kernel's default, main and local tables), e.g. 500")

		By("SpiderCoordinator: only `default`, and its spec is checked")
		err = c.Create(ctx, &v2beta1.SpiderCoordinator{ObjectMeta: metav1.ObjectMeta{Name: "e2e-second"}})
		expectDenied(err, "spidercoordinator", `metadata.name: "e2e-second": there is one cluster-wide SpiderCoordinator and it must be named "default"`)
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var co v2beta1.SpiderCoordinator
			if err := c.Get(ctx, types.NamespacedName{Name: "default"}, &co); err != nil {
				return err
			}
			co.Spec.PodMACPrefix = ptr.To("01:00")
			co.Spec.VethLinkAddress = ptr.To("10.0.0.1")
			return c.Update(ctx, &co)
		})
		expectDenied(err, "spidercoordinator",
			`spec.podMACPrefix: "01:00" is a multicast prefix (lowest bit of the first byte set): use an even first byte such as 0a`,
			`spec.vethLinkAddress: "10.0.0.1" is not an IPv4 link-local address: use an address of 169.254.0.0/16 such as 169.254.100.1, or leave it empty`)
	})

	It("generates a NetworkAttachmentDefinition from a SpiderMultusConfig that a pod uses for net1", func(ctx SpecContext) {
		lab := requireCluster()
		p := underlayPools(ctx, c, lab, "e2e-smc-"+framework.RandSuffix(4), blockSMC, 10)
		ns := newTestNamespace(ctx, "e2e-smc")
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", p, true)

		nad, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, smc.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(metav1.GetControllerOf(nad)).NotTo(BeNil())
		Expect(metav1.GetControllerOf(nad).UID).To(Equal(smc.UID))
		var conf struct {
			Plugins []struct {
				Type   string `json:"type"`
				Master string `json:"master"`
				IPAM   struct {
					Type string   `json:"type"`
					V4   []string `json:"default_ipv4_ippool"`
					V6   []string `json:"default_ipv6_ippool"`
				} `json:"ipam"`
			} `json:"plugins"`
		}
		Expect(json.Unmarshal([]byte(nad.Spec.Config), &conf)).To(Succeed(), "NAD config: %s", nad.Spec.Config)
		Expect(conf.Plugins).To(HaveLen(2), "NAD config: %s", nad.Spec.Config)
		Expect(conf.Plugins[0].Type).To(Equal("macvlan"))
		Expect(conf.Plugins[0].Master).To(Equal(lab.UnderlayIf))
		Expect(conf.Plugins[0].IPAM.Type).To(Equal("spiderpool"))
		Expect(conf.Plugins[0].IPAM.V4).To(Equal([]string{p.V4.Name}))
		Expect(conf.Plugins[0].IPAM.V6).To(Equal([]string{p.V6.Name}))
		Expect(conf.Plugins[1].Type).To(Equal("coordinator"))

		_, err = f.CreatePod(ctx, net1Pod(ns, "pod-net1", smc.Name, ""))
		Expect(err).NotTo(HaveOccurred())
		pod, err := f.WaitPodRunning(ctx, ns, "pod-net1")
		Expect(err).NotTo(HaveOccurred())
		st, err := framework.InterfaceStatus(pod, "net1")
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Name).To(Equal(ns + "/" + smc.Name))
		v4, v6 := expectPodHolds(ctx, c, lab, p, pod)
		Expect(st.IPs).To(ConsistOf(v4, v6))
		Expect(inSlice(lab, blockSMC, 10, v4)).To(BeTrue(), "net1 address %s outside the pool", v4)
		Expect(inSlice(lab, blockSMC, 10, v6)).To(BeTrue(), "net1 address %s outside the pool", v6)
		var se v2beta1.SpiderEndpoint
		Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "pod-net1"}, &se)).To(Succeed())
		Expect(se.Status.Current.UID).To(Equal(string(pod.UID)))

		By("edits of the generated object are reverted, changes of the SpiderMultusConfig are applied")
		generated := nad.Spec.Config
		nad.Spec.Config = `{"cniVersion":"1.0.0","name":"hijacked","type":"bridge"}`
		_, err = f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Update(ctx, nad, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			cur, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, smc.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cur.Spec.Config).To(Equal(generated))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var cur v2beta1.SpiderMultusConfig
			if err := c.Get(ctx, client.ObjectKeyFromObject(smc), &cur); err != nil {
				return err
			}
			cur.Spec.EnableCoordinator = ptr.To(false)
			return c.Update(ctx, &cur)
		})).To(Succeed())
		Eventually(func(g Gomega) {
			cur, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, smc.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cur.Spec.Config).NotTo(ContainSubstring(`"coordinator"`))
			g.Expect(cur.Spec.Config).To(ContainSubstring(`"macvlan"`))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		By("a NetworkAttachmentDefinition of the same name that it does not own is left alone, with a Warning saying so")
		const foreignConf = `{"cniVersion":"1.0.0","name":"foreign","type":"bridge"}`
		_, err = f.CreateNAD(ctx, ns, "foreign", foreignConf)
		Expect(err).NotTo(HaveOccurred())
		foreign := macvlanSMCNoWait(ctx, c, lab, ns, "foreign", p)
		Eventually(func(g Gomega) {
			var evs eventsv1.EventList
			g.Expect(c.List(ctx, &evs, client.InNamespace(ns))).To(Succeed())
			found := false
			for _, e := range evs.Items {
				if e.Reason == "NetworkAttachmentDefinitionNotOwned" && e.Regarding.Name == foreign.Name && e.Type == corev1.EventTypeWarning &&
					strings.Contains(e.Note, fmt.Sprintf("NetworkAttachmentDefinition %s/foreign already exists and is not managed by this SpiderMultusConfig", ns)) {
					found = true
				}
			}
			g.Expect(found).To(BeTrue(), "no NetworkAttachmentDefinitionNotOwned event")
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		cur, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, "foreign", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(cur.Spec.Config).To(Equal(foreignConf))
		Expect(metav1.GetControllerOf(cur)).To(BeNil())
		// Once the foreign object is gone the SpiderMultusConfig creates its own.
		Expect(f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Delete(ctx, "foreign", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			cur, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, "foreign", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(metav1.GetControllerOf(cur)).NotTo(BeNil())
			g.Expect(metav1.GetControllerOf(cur).UID).To(Equal(foreign.UID))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		// Deleting the SpiderMultusConfig deletes its NAD (owner reference).
		Expect(f.DeletePodAndWait(ctx, ns, "pod-net1")).To(Succeed())
		Expect(c.Delete(ctx, smc)).To(Succeed())
		Eventually(func() bool {
			_, err := f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Get(ctx, smc.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(BeTrue())
	})

	It("refuses to remove an allocated address and keeps a pool with allocations until its last address is released", func(ctx SpecContext) {
		lab := requireCluster()
		const size = 5
		p := underlayPools(ctx, c, lab, "e2e-inuse-"+framework.RandSuffix(4), blockPoolDelete, size)
		pool := p.V4
		ns := newTestNamespace(ctx, "e2e-pool-del")
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", p, false)
		_, err := f.CreatePod(ctx, net1Pod(ns, "holder", smc.Name, ""))
		Expect(err).NotTo(HaveOccurred())
		holder, err := f.WaitPodRunning(ctx, ns, "holder")
		Expect(err).NotTo(HaveOccurred())
		v4, _ := expectPodHolds(ctx, c, lab, p, holder)
		addr := netip.MustParseAddr(v4)

		By("an update that drops the allocated address is refused, naming the pod")
		start, end, _ := lab.UnderlaySliceV4(controllerBlockBase+blockPoolDelete, size)
		var rest []string
		for a := start; a.Compare(end) <= 0; a = a.Next() {
			if a != addr {
				rest = append(rest, a.String())
			}
		}
		update := func(mut func(*v2beta1.SpiderIPPool)) error {
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var cur v2beta1.SpiderIPPool
				if err := c.Get(ctx, types.NamespacedName{Name: pool.Name}, &cur); err != nil {
					return err
				}
				mut(&cur)
				return c.Update(ctx, &cur)
			})
		}
		err = update(func(p *v2beta1.SpiderIPPool) { p.Spec.IPs = rest })
		expectDenied(err, "spiderippool", fmt.Sprintf(
			"spec.ips: %s is allocated to pod %s/holder (interface net1) and cannot be removed from the pool: delete the pod (or wait until it is gone) first, or keep the address in the pool", addr, ns))
		err = update(func(p *v2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = []string{addr.String()} })
		expectDenied(err, "spiderippool", fmt.Sprintf("spec.excludeIPs: %s is allocated to pod %s/holder (interface net1) and cannot be removed from the pool", addr, ns))
		err = update(func(p *v2beta1.SpiderIPPool) { p.Spec.Gateway = ptr.To(addr.String()) })
		expectDenied(err, "spiderippool", fmt.Sprintf("spec.gateway: %s is allocated to pod %s/holder (interface net1) and cannot be removed from the pool", addr, ns))
		// Dropping a free address is fine.
		Expect(update(func(p *v2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = []string{rest[len(rest)-1]} })).To(Succeed())

		By("deleting the pool waits for the pod, with a PoolInUse event saying why")
		Expect(c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool.Name}})).To(Succeed())
		Eventually(func(g Gomega) {
			var evs eventsv1.EventList
			g.Expect(c.List(ctx, &evs)).To(Succeed())
			found := false
			for _, e := range evs.Items {
				if e.Reason == "PoolInUse" && e.Regarding.Name == pool.Name && e.Type == corev1.EventTypeWarning &&
					strings.Contains(e.Note, fmt.Sprintf("deletion waits until the pool's 1 allocated address(es) are released: %s (pod %s/holder)", addr, ns)) {
					found = true
				}
			}
			g.Expect(found).To(BeTrue(), "no PoolInUse event naming the holder")
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
		Consistently(func(g Gomega) {
			var p v2beta1.SpiderIPPool
			g.Expect(c.Get(ctx, types.NamespacedName{Name: pool.Name}, &p)).To(Succeed())
			g.Expect(p.DeletionTimestamp).NotTo(BeNil())
			g.Expect(p.Finalizers).To(ContainElement("spindle.spidernet.io/pool-in-use"))
		}).WithContext(ctx).WithTimeout(5 * time.Second).Should(Succeed())

		Eventually(func(g Gomega) {
			alloc, ok := scrape(ctx).Get("spindle_controller_ippool_allocated_ips", "pool", pool.Name)
			g.Expect(ok).To(BeTrue(), "no spindle_controller_ippool_allocated_ips{pool=%q}", pool.Name)
			g.Expect(alloc).To(Equal(1.0))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())

		Expect(f.DeletePodAndWait(ctx, ns, "holder")).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Name: pool.Name}, &v2beta1.SpiderIPPool{}))
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(BeTrue())
		By("a removed pool's gauges are gone")
		Eventually(func(g Gomega) {
			m := scrape(ctx)
			_, ok := m.Get("spindle_controller_ippool_allocated_ips", "pool", pool.Name)
			g.Expect(ok).To(BeFalse())
			_, ok = m.Get("spindle_controller_ippool_total_ips", "pool", pool.Name)
			g.Expect(ok).To(BeFalse())
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())
	})

	It("releases the addresses of pods force-deleted or stuck terminating while their node is down, and counts them in its metrics", Serial, func(ctx SpecContext) {
		lab := requireCluster()
		if len(lab.Nodes) < 2 {
			missing(fmt.Sprintf("needs two nodes, the lab has %v", lab.Nodes))
		}
		up, down := lab.Nodes[0], lab.Nodes[len(lab.Nodes)-1]
		// The node that goes down is not the leader controller's: its
		// counters are what the spec reads before and after (a stand-by
		// taking over would count from zero).
		if leader := controllerLeaderNode(ctx); leader == down {
			if len(lab.Nodes) < 3 {
				missing(fmt.Sprintf("needs a node that is neither %s nor the leader controller's (%s)", up, leader))
			}
			down = lab.Nodes[len(lab.Nodes)-2]
		}
		Expect(f.WaitNodeReady(ctx, down, true, time.Minute)).To(Succeed())
		// The pools have exactly one address per pod on the node that goes
		// down: the pod that comes after can only run with addresses the
		// collector released.
		const victims = 4
		p := underlayPools(ctx, c, lab, "e2e-gc-"+framework.RandSuffix(4), blockGC, victims+1)
		ns := newTestNamespace(ctx, "e2e-gc-node")
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", p, false)
		names := []string{"stuck"}
		for i := 0; i < victims; i++ {
			names = append(names, fmt.Sprintf("victim-%d", i))
		}
		for _, name := range names {
			_, err := f.CreatePod(ctx, net1Pod(ns, name, smc.Name, down))
			Expect(err).NotTo(HaveOccurred())
		}
		pods := map[string]*corev1.Pod{}
		released := map[string]bool{}
		for _, name := range names {
			pod, err := f.WaitPodRunning(ctx, ns, name)
			Expect(err).NotTo(HaveOccurred())
			pods[name] = pod
			a4, a6 := expectPodHolds(ctx, c, lab, p, pod)
			Expect(endpointOf(ctx, c, ns, name)).NotTo(BeNil())
			if name != "stuck" {
				released[a4] = true // each family is allocated on its own
				released[a6] = true
			}
		}

		before := scrape(ctx)
		collected0, _ := before.Get("spindle_controller_gc_collected_total", "reason", "PodDeleted")
		released0, _ := before.Get("spindle_controller_gc_released_ips_total", "reason", "PodDeleted")
		stuck0, _ := before.Get("spindle_controller_gc_collected_total", "reason", "TerminatingOnNotReadyNode")

		Expect(lab.NodeStop(ctx, down)).To(Succeed())
		restarted := false
		DeferCleanup(func(ctx SpecContext) {
			if !restarted {
				Expect(lab.NodeStart(ctx, down)).To(Succeed())
			}
		}, NodeTimeout(2*time.Minute))
		Expect(f.WaitNodeReady(ctx, down, false, time.Minute)).To(Succeed())
		// An ordinary deletion: with no node to tear the sandbox down the
		// pod stays Terminating.
		stuck := pods["stuck"]
		Expect(f.Client.CoreV1().Pods(ns).Delete(ctx, "stuck", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &stuck.UID}})).To(Succeed())
		for _, name := range names[1:] {
			Expect(f.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &pods[name].UID},
			})).To(Succeed())
		}
		deleted := time.Now()

		// Collection is driven by the pods' deletion, well within the
		// periodic pass (--gc-interval, 5m in the lab).
		for _, name := range names[1:] {
			Eventually(func() []v2beta1.SpiderIPClaim {
				return podClaims(ctx, c, p, ns, name)
			}).WithContext(ctx).WithTimeout(30*time.Second).Should(BeEmpty(), "claims of %s", name)
			Eventually(func() *v2beta1.SpiderEndpoint {
				return endpointOf(ctx, c, ns, name)
			}).WithContext(ctx).WithTimeout(30*time.Second).Should(BeNil(), "SpiderEndpoint of %s", name)
		}
		GinkgoWriter.Printf("claims and SpiderEndpoints of the force-deleted pods collected %s after their deletion\n", time.Since(deleted).Round(100*time.Millisecond))
		Eventually(func(g Gomega) {
			m := scrape(ctx)
			collected, _ := m.Get("spindle_controller_gc_collected_total", "reason", "PodDeleted")
			ips, _ := m.Get("spindle_controller_gc_released_ips_total", "reason", "PodDeleted")
			g.Expect(collected).To(BeNumerically(">=", collected0+victims))
			g.Expect(ips).To(BeNumerically(">=", released0+2*victims))
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(Succeed())

		By("the released addresses are handed out again")
		_, err := f.CreatePod(ctx, net1Pod(ns, "reuser", smc.Name, up))
		Expect(err).NotTo(HaveOccurred())
		reuser, err := f.WaitPodRunning(ctx, ns, "reuser")
		Expect(err).NotTo(HaveOccurred())
		r4, r6 := expectPodHolds(ctx, c, lab, p, reuser)
		Expect(released).To(HaveKey(r4))
		Expect(released).To(HaveKey(r6))

		By("a pod stuck terminating on the NotReady node is released after its grace period and --gc-terminating-pod-delay (30s)")
		Eventually(func() []v2beta1.SpiderIPClaim {
			return podClaims(ctx, c, p, ns, "stuck")
		}).WithContext(ctx).WithTimeout(90 * time.Second).WithPolling(time.Second).Should(BeEmpty())
		GinkgoWriter.Printf("claims of the pod stuck terminating collected %s after its deletion\n", time.Since(deleted).Round(time.Second))
		Eventually(func() *v2beta1.SpiderEndpoint {
			return endpointOf(ctx, c, ns, "stuck")
		}).WithContext(ctx).WithTimeout(10*time.Second).Should(BeNil(), "SpiderEndpoint of stuck")
		still, err := f.Client.CoreV1().Pods(ns).Get(ctx, "stuck", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred(), "the pod is still Terminating: its node is down")
		Expect(still.DeletionTimestamp).NotTo(BeNil())
		Expect(time.Since(still.DeletionTimestamp.Time)).To(BeNumerically(">=", 30*time.Second), "released before --gc-terminating-pod-delay")
		Eventually(func() float64 {
			v, _ := scrape(ctx).Get("spindle_controller_gc_collected_total", "reason", "TerminatingOnNotReadyNode")
			return v
		}).WithContext(ctx).WithTimeout(10 * time.Second).Should(BeNumerically(">=", stuck0+1))

		By("tearing down the old sandboxes when the node returns leaves the new holder's addresses alone")
		Expect(lab.NodeStart(ctx, down)).To(Succeed())
		restarted = true
		Eventually(func() []string {
			var left []string
			for _, n := range podSandboxes(ctx, lab, ns) {
				if !strings.HasPrefix(n, "reuser") {
					left = append(left, n)
				}
			}
			return left
		}).WithContext(ctx).WithTimeout(60*time.Second).Should(BeEmpty(), "the restarted node did not tear down the deleted pods' sandboxes")
		Eventually(func() bool {
			_, err := f.Client.CoreV1().Pods(ns).Get(ctx, "stuck", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(BeTrue())
		a4, a6 := expectPodHolds(ctx, c, lab, p, reuser)
		Expect([]string{a4, a6}).To(Equal([]string{r4, r6}))
	})

	It("holds the addresses of ordinals 1 and 2 while a StatefulSet is scaled from 3 to 1 and gives IPv4, IPv6 and MAC back at 3; one that opts out releases them", func(ctx SpecContext) {
		lab := requireCoordinatorLab(ctx).lab
		const size = 10
		p := underlayPools(ctx, c, lab, "e2e-sts-"+framework.RandSuffix(4), blockStatefulSet, size)
		ns := newTestNamespace(ctx, "e2e-sts")
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", p, true) // the coordinator keeps the MAC
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
		update := func(mutate func(*appsv1.StatefulSet)) {
			GinkgoHelper()
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := c.Get(ctx, client.ObjectKeyFromObject(sts), sts); err != nil {
					return err
				}
				mutate(sts)
				return c.Update(ctx, sts)
			})).To(Succeed())
		}
		scale := func(n int32) { update(func(s *appsv1.StatefulSet) { s.Spec.Replicas = ptr.To(n) }) }
		// running waits for web-i Running with net1 addresses from the
		// pools, recorded in its claims and configured inside the pod, and
		// returns them with net1's MAC.
		running := func(i int) string {
			GinkgoHelper()
			name := fmt.Sprintf("web-%d", i)
			// Not a replica of before that is still terminating: its
			// status says Running until it is gone.
			var pod *corev1.Pod
			Eventually(func(g Gomega) {
				var err error
				pod, err = f.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pod.DeletionTimestamp).To(BeNil())
				g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
				g.Expect(pod.Status.PodIP).NotTo(BeEmpty())
			}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
			v4, v6 := expectPodHolds(ctx, c, lab, p, pod)
			Expect(inSlice(lab, blockStatefulSet, size, v4)).To(BeTrue(), "%s got %s, outside the pool", name, v4)
			Expect(inSlice(lab, blockStatefulSet, size, v6)).To(BeTrue(), "%s got %s, outside the pool", name, v6)
			return v4 + "," + v6 + "," + ifaceMAC(ctx, pod, "net1")
		}
		gone := func(names ...string) {
			GinkgoHelper()
			for _, name := range names {
				Eventually(func() bool {
					_, err := f.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
					return apierrors.IsNotFound(err)
				}).WithContext(ctx).WithTimeout(60*time.Second).Should(BeTrue(), "%s not gone", name)
			}
		}
		before := []string{running(0), running(1), running(2)}
		web0 := before[0]

		scale(1)
		gone("web-1", "web-2")
		By("the scaled-away ordinals' claims stay, held for the StatefulSet")
		Consistently(func() int {
			return len(poolClaims(ctx, c, p.V4.Name)) + len(poolClaims(ctx, c, p.V6.Name))
		}).WithContext(ctx).WithTimeout(5*time.Second).Should(Equal(6), "a scaled-away ordinal's address was released")
		for _, name := range []string{"web-1", "web-2"} {
			for _, cl := range podClaims(ctx, c, p, ns, name) {
				Expect(cl.Spec.OwnerKind).To(Equal("StatefulSet"))
				Expect(cl.Spec.OwnerName).To(Equal("web"))
			}
		}
		Expect(running(0)).To(Equal(web0))

		By("a deleted replica within the ordinals comes back with its addresses")
		old, err := f.Client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(f.Client.CoreV1().Pods(ns).Delete(ctx, "web-0", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.UID}})).To(Succeed())
		Eventually(func(g Gomega) {
			pod, err := f.Client.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.UID).NotTo(Equal(old.UID))
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
		Expect(running(0)).To(Equal(web0))
		Expect(poolClaims(ctx, c, p.V4.Name)).To(HaveLen(3))

		By("scaled back to 3, every replica has the IPv4 and IPv6 addresses it had before")
		scale(3)
		Expect([]string{running(0), running(1), running(2)}).To(Equal(before))
		Expect(poolClaims(ctx, c, p.V4.Name)).To(HaveLen(3))
		Expect(poolClaims(ctx, c, p.V6.Name)).To(HaveLen(3))

		By("a StatefulSet that opts out releases ordinals 1 and 2 at scale-down")
		update(func(s *appsv1.StatefulSet) {
			s.Annotations = map[string]string{lifecycle.ReleaseOnScaleDown: "true"}
			s.Spec.Replicas = ptr.To[int32](1)
		})
		gone("web-1", "web-2")
		for _, name := range []string{"web-1", "web-2"} {
			Eventually(func() []v2beta1.SpiderIPClaim {
				return podClaims(ctx, c, p, ns, name)
			}).WithContext(ctx).WithTimeout(90*time.Second).Should(BeEmpty(), "claims of %s not released", name)
			Eventually(func() bool {
				return apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &v2beta1.SpiderEndpoint{}))
			}).WithContext(ctx).WithTimeout(30*time.Second).Should(BeTrue(), "SpiderEndpoint of %s not removed", name)
		}
		Expect(running(0)).To(Equal(web0))
		scale(3)
		Expect(running(0)).To(Equal(web0))
		running(1)
		running(2)

		By("deleting the namespace releases every replica's addresses, although its pods go before the StatefulSet")
		Expect(f.DeleteNamespace(ctx, ns)).To(Succeed())
		Eventually(func() int {
			return len(poolClaims(ctx, c, p.V4.Name)) + len(poolClaims(ctx, c, p.V6.Name))
		}).WithContext(ctx).WithTimeout(30*time.Second).Should(BeZero(), "claims kept for replicas of a deleted StatefulSet (the periodic pass would only find them after --gc-interval)")
	})

	It("keeps the new pod's addresses when a pod is deleted and re-created with the same name at once", func(ctx SpecContext) {
		lab := requireCluster()
		const size = 5
		iterations := envInt("E2E_SAME_NAME_ITERATIONS", 20)
		p := underlayPools(ctx, c, lab, "e2e-same-"+framework.RandSuffix(4), blockSameName, size)
		ns := newTestNamespace(ctx, "e2e-same-name")
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", p, false)
		const name = "same"
		_, err := f.CreatePod(ctx, net1Pod(ns, name, smc.Name, ""))
		Expect(err).NotTo(HaveOccurred())
		pod, err := f.WaitPodRunning(ctx, ns, name)
		Expect(err).NotTo(HaveOccurred())
		m0 := scrape(ctx)
		conflicts0, _ := m0.Get("spindle_controller_gc_precondition_conflicts_total")
		uidMismatch0, _ := m0.Get("spindle_controller_gc_collected_total", "reason", "PodUIDMismatch")
		deleted0, _ := m0.Get("spindle_controller_gc_collected_total", "reason", "PodDeleted")

		for i := 0; i < iterations; i++ {
			old := pod
			// Force deletion removes the pod object at once; its sandbox
			// (and the agent's release) follows, while the new pod of the
			// same name is being set up and the collector looks at both.
			Expect(f.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &old.UID},
			})).To(Succeed())
			Eventually(func() error {
				_, err := f.Client.CoreV1().Pods(ns).Create(ctx, net1Pod(ns, name, smc.Name, ""), metav1.CreateOptions{})
				return err
			}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
			pod, err = f.WaitPodRunning(ctx, ns, name)
			Expect(err).NotTo(HaveOccurred(), "iteration %d", i)
			Expect(pod.UID).NotTo(Equal(old.UID))

			// Once the old incarnation is released, exactly the new one
			// holds addresses, recorded in its claims and SpiderEndpoint,
			// and they are the addresses inside the pod.
			Eventually(func(g Gomega) {
				held := podClaims(ctx, c, p, ns, name)
				g.Expect(held).To(HaveLen(2), "iteration %d: claims %v", i, held)
				for _, cl := range held {
					g.Expect(cl.Spec.PodUID).To(Equal(string(pod.UID)), "iteration %d: claim %s", i, cl.Name)
				}
				var se v2beta1.SpiderEndpoint
				g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &se)).To(Succeed())
				g.Expect(se.Status.Current.UID).To(Equal(string(pod.UID)), "iteration %d: SpiderEndpoint of the old pod", i)
				g.Expect(se.Status.Current.IPs).To(ContainElement(HaveField("IPv4", HaveValue(HavePrefix(held[0].Spec.Address+"/")))))
				g.Expect(poolClaims(ctx, c, p.V4.Name)).To(HaveLen(1), "iteration %d: an old incarnation's address is left", i)
				g.Expect(poolClaims(ctx, c, p.V6.Name)).To(HaveLen(1), "iteration %d: an old incarnation's address is left", i)
			}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
			expectPodHolds(ctx, c, lab, p, pod)
		}
		// No late collection takes the last pod's addresses away.
		held := podClaims(ctx, c, p, ns, name)
		Consistently(func() []v2beta1.SpiderIPClaim {
			return podClaims(ctx, c, p, ns, name)
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Equal(held))
		expectPodHolds(ctx, c, lab, p, pod)
		m := scrape(ctx)
		conflicts, _ := m.Get("spindle_controller_gc_precondition_conflicts_total")
		uidMismatch, _ := m.Get("spindle_controller_gc_collected_total", "reason", "PodUIDMismatch")
		deleted, _ := m.Get("spindle_controller_gc_collected_total", "reason", "PodDeleted")
		GinkgoWriter.Printf("%d re-creations: the collector (all specs running meanwhile) collected %v incarnations as PodUIDMismatch and %v as PodDeleted, and skipped %v deletions on preconditions\n",
			iterations, uidMismatch-uidMismatch0, deleted-deleted0, conflicts-conflicts0)
	})

	// The longest spec after the IPAM ones: started early (SpecPriority).
	It("keeps pool counters equal to a recount of the claims after churning pods, and exports them as metrics", SpecPriority(5), func(ctx SpecContext) {
		lab := requireCluster()
		const size = 60
		total := envInt("E2E_CHURN_PODS", 500)
		workers := envInt("E2E_CHURN_WORKERS", 12)
		keep := 8
		p := underlayPools(ctx, c, lab, "e2e-churn-"+framework.RandSuffix(4), blockChurn, size)
		ns := newTestNamespace(ctx, "e2e-churn")
		smc := macvlanSMC(ctx, c, lab, ns, "macvlan-ul0", p, false)
		tracker, err := f.TrackPods(ctx, ns)
		Expect(err).NotTo(HaveOccurred())
		defer tracker.Stop()

		var mu sync.Mutex
		var failures []string
		fail := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			failures = append(failures, fmt.Sprintf(format, args...))
		}
		jobs := make(chan int)
		var wg sync.WaitGroup
		begin := time.Now()
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				for i := range jobs {
					name := fmt.Sprintf("churn-%d", i)
					created, err := f.Client.CoreV1().Pods(ns).Create(ctx, net1Pod(ns, name, smc.Name, ""), metav1.CreateOptions{})
					if err != nil {
						fail("create %s: %v", name, err)
						continue
					}
					if _, err := tracker.WaitRunning(name, created.UID, 2*time.Minute); err != nil {
						fail("%s: %v", name, err)
					}
					if i >= total-keep {
						continue
					}
					// Every fourth pod is force-deleted: its object is gone
					// before its sandbox, as when a node is lost.
					opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &created.UID}}
					if i%4 == 0 {
						opts.GracePeriodSeconds = ptr.To[int64](0)
					}
					if err := f.Client.CoreV1().Pods(ns).Delete(ctx, name, opts); err != nil {
						fail("delete %s: %v", name, err)
						continue
					}
					if err := tracker.WaitGone(name, created.UID, 2*time.Minute); err != nil {
						fail("%s: %v", name, err)
					}
				}
			}()
		}
		for i := 0; i < total && ctx.Err() == nil; i++ {
			jobs <- i
			if (i+1)%100 == 0 {
				GinkgoWriter.Printf("churn: %d pods started after %s\n", i+1, time.Since(begin).Round(time.Second))
			}
		}
		close(jobs)
		wg.Wait()
		GinkgoWriter.Printf("churn: %d pods created and %d deleted in %s with %d workers\n", total, total-keep, time.Since(begin).Round(time.Second), workers)
		Expect(failures).To(BeEmpty())

		// Steady state: the claims are exactly those of the live pods, and
		// the pool status and the gauges say the same.
		live := map[string]types.UID{}
		for _, pod := range tracker.Pods() {
			live[pod.Name] = pod.UID
		}
		Expect(live).To(HaveLen(keep))
		Eventually(func(g Gomega) {
			var ses v2beta1.SpiderEndpointList
			g.Expect(c.List(ctx, &ses, client.InNamespace(ns))).To(Succeed())
			g.Expect(ses.Items).To(HaveLen(keep), "SpiderEndpoints left by deleted pods")
			m := scrape(ctx)
			for _, pool := range p.names() {
				claims := poolClaims(ctx, c, pool)
				g.Expect(claims).To(HaveLen(keep), "claims of %s left by deleted pods", pool)
				for _, cl := range claims {
					g.Expect(live).To(HaveKeyWithValue(cl.Spec.PodName, types.UID(cl.Spec.PodUID)), "claim %s", cl.Name)
				}
				var got v2beta1.SpiderIPPool
				g.Expect(c.Get(ctx, types.NamespacedName{Name: pool}, &got)).To(Succeed())
				g.Expect(got.Status.AllocatedIPCount).To(HaveValue(Equal(int64(len(claims)))), "status.allocatedIPCount of %s", pool)
				g.Expect(got.Status.TotalIPCount).To(HaveValue(Equal(int64(size))), "status.totalIPCount of %s", pool)

				alloc, ok := m.Get("spindle_controller_ippool_allocated_ips", "pool", pool)
				g.Expect(ok).To(BeTrue(), "no spindle_controller_ippool_allocated_ips{pool=%q}", pool)
				g.Expect(alloc).To(Equal(float64(len(claims))))
				tot, ok := m.Get("spindle_controller_ippool_total_ips", "pool", pool)
				g.Expect(ok).To(BeTrue(), "no spindle_controller_ippool_total_ips{pool=%q}", pool)
				g.Expect(tot).To(Equal(float64(size)))
			}
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())

		By("a SpiderReservedIP inside the pool lowers its total, in the status and the gauge")
		start, _, err := lab.UnderlaySliceV4(controllerBlockBase+blockChurn, size)
		Expect(err).NotTo(HaveOccurred())
		last := start
		for i := 1; i < size; i++ {
			last = last.Next()
		}
		res := &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "e2e-churn-res-" + framework.RandSuffix(4)},
			Spec: v2beta1.ReservedIPSpec{IPs: []string{last.String()}}}
		Expect(c.Create(ctx, res)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			deleteAndWait(ctx, c, &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: res.Name}}, 30*time.Second)
		})
		Eventually(func(g Gomega) {
			var got v2beta1.SpiderIPPool
			g.Expect(c.Get(ctx, types.NamespacedName{Name: p.V4.Name}, &got)).To(Succeed())
			g.Expect(got.Status.TotalIPCount).To(HaveValue(Equal(int64(size - 1))))
			tot, _ := scrape(ctx).Get("spindle_controller_ippool_total_ips", "pool", p.V4.Name)
			g.Expect(tot).To(Equal(float64(size - 1)))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		// The addresses inside the surviving pods are their claims, no two
		// alike.
		seen := map[string]string{}
		for _, pod := range tracker.Pods() {
			v4, v6 := expectPodHolds(ctx, c, lab, p, pod)
			for _, a := range []string{v4, v6} {
				Expect(seen).NotTo(HaveKey(a), "%s and %s share %s", seen[a], pod.Name, a)
				seen[a] = pod.Name
			}
		}
	}, SpecTimeout(10*time.Minute))

	It("shows the cluster's service CIDR in the default SpiderCoordinator", func(ctx SpecContext) {
		lab := requireCluster()
		want := lab.ServiceCIDR
		Expect(want).NotTo(BeEmpty())
		Eventually(func(g Gomega) {
			var co v2beta1.SpiderCoordinator
			g.Expect(c.Get(ctx, types.NamespacedName{Name: "default"}, &co)).To(Succeed())
			g.Expect(co.Status.ServiceCIDR).To(ContainElement(want))
			g.Expect(co.Status.Phase).To(Equal("Synced"), "reason: %s", co.Status.Reason)
		}).WithContext(ctx).WithTimeout(90 * time.Second).Should(Succeed())
	})
})
