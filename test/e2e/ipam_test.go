package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// The IPAM specs use the underlay /24 blocks 100-199 (172.30.100.x-172.30.199.x
// and fd30:172:30::100:x-fd30:172:30::199:x on the default lab): each spec its
// own blocks (ipamBlockBase+n, and +50/+60 for second pools), starting at host
// 100 so they stay clear of the .10-.14 addresses other specs hand out with
// host-local. The specs of this file run one after another (Ordered) and
// every spec deletes its pools, and waits for them to be gone, before the
// next; the seed 003 pool spans the whole range, so that spec runs alone
// (Serial). The large IPv6 pools use
// fd30:172:31::/64 and fd30:172:32::/64, next to the underlay, and no pod.
const ipamBlockBase = 100

// Pod annotations (Multus and Spiderpool).
const (
	annotNetworks       = "k8s.v1.cni.cncf.io/networks"
	annotDefaultNetwork = "v1.multus-cni.io/default-network"
	annotIPPool         = "ipam.spidernet.io/ippool"
	annotIPPools        = "ipam.spidernet.io/ippools"
)

// ipamEnv is what one IPAM spec works with: its namespace, the pools it
// created (deleted at the end) and clients.
type ipamEnv struct {
	c       client.Client
	lab     *framework.Testbed
	ns      string
	pools   []string
	kubectl string
	lastSp  string // last `kubectl get sp` output
}

// newIPAMEnv creates the spec's namespace. At the end of the spec it deletes
// the namespace (waiting for its pods to be torn down), checks that the
// pods left no SpiderIPClaim of the spec's pools behind, then deletes the
// pools and waits until they are gone.
func newIPAMEnv(ctx context.Context, base string) *ipamEnv {
	lab := requireCluster()
	c, err := f.SpindleClient()
	Expect(err).NotTo(HaveOccurred())
	e := &ipamEnv{c: c, lab: lab}
	// Registered first so that it runs last, and runs even when the
	// namespace cleanup fails: a pool left behind (above all a cluster
	// default pool) would change what other suites' pods get.
	DeferCleanup(func(ctx SpecContext) {
		for _, p := range e.pools {
			err := e.c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: p}})
			if !apierrors.IsNotFound(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		}
		for _, p := range e.pools {
			Eventually(func() bool {
				return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Name: p}, &v2beta1.SpiderIPPool{}))
			}).WithContext(ctx).WithTimeout(60*time.Second).Should(BeTrue(), "SpiderIPPool %q still exists", p)
		}
	}, NodeTimeout(2*time.Minute))
	ns, err := f.CreateNamespace(ctx, base)
	Expect(err).NotTo(HaveOccurred())
	e.ns = ns.Name
	DeferCleanup(func(ctx SpecContext) {
		deleteNamespaceAndWait(ctx, e.ns)
		// Pods released their addresses on the way out: no claim of this
		// spec's pools may outlive them.
		Eventually(func(g Gomega) {
			var left []string
			for _, p := range e.pools {
				for _, cl := range e.claims(ctx, g, p) {
					left = append(left, fmt.Sprintf("%s (pool %s, pod %s/%s)", cl.Name, p, cl.Spec.PodNamespace, cl.Spec.PodName))
				}
			}
			g.Expect(left).To(BeEmpty(), "SpiderIPClaims left after the pods of %s were deleted", e.ns)
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
	}, NodeTimeout(4*time.Minute))
	return e
}

// deleteNamespaceAndWait deletes a namespace and waits up to 3 minutes for
// it to be gone. The lab is shared: another suite may stop a node for a
// while, and its pods are torn down only when it is back.
func deleteNamespaceAndWait(ctx context.Context, ns string) {
	err := f.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool {
		_, err := f.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}).WithContext(ctx).WithTimeout(3*time.Minute).WithPolling(500*time.Millisecond).Should(BeTrue(), "namespace %s is still there; events: %s", ns, (&ipamEnv{ns: ns}).events(ctx))
}

// createPool creates p (which must not exist yet) and records it for deletion.
func (e *ipamEnv) createPool(ctx context.Context, p *v2beta1.SpiderIPPool) *v2beta1.SpiderIPPool {
	// A pool of an earlier, interrupted run may still be there.
	old := &v2beta1.SpiderIPPool{}
	if err := e.c.Get(ctx, client.ObjectKey{Name: p.Name}, old); err == nil {
		Fail(fmt.Sprintf("SpiderIPPool %q already exists (left by an earlier run?); delete it first", p.Name))
	}
	Expect(e.c.Create(ctx, p)).To(Succeed(), "create SpiderIPPool %q", p.Name)
	e.pools = append(e.pools, p.Name)
	return p
}

// pool creates a pool of n addresses of /24 block (see ipamBlockBase), from
// host 100 on, in family 4 or 6, with the lab's gateway.
func (e *ipamEnv) pool(ctx context.Context, name string, family, block, n int, mutate ...func(*v2beta1.SpiderIPPool)) *v2beta1.SpiderIPPool {
	var start, end netip.Addr
	var err error
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if family == 4 {
		start, end, err = e.lab.UnderlayRangeV4(block, 100, n)
		p.Spec.Subnet, p.Spec.Gateway = e.lab.UnderlayV4.Masked().String(), ptr.To(e.lab.GatewayV4.String())
	} else {
		start, end, err = e.lab.UnderlayRangeV6(block, 100, n)
		p.Spec.Subnet, p.Spec.Gateway = e.lab.UnderlayV6.Masked().String(), ptr.To(e.lab.GatewayV6.String())
	}
	Expect(err).NotTo(HaveOccurred())
	p.Spec.IPs = []string{start.String() + "-" + end.String()}
	for _, m := range mutate {
		m(p)
	}
	return e.createPool(ctx, p)
}

// claims lists the SpiderIPClaims of pool.
func (e *ipamEnv) claims(ctx context.Context, g Gomega, pool string) []v2beta1.SpiderIPClaim {
	var list v2beta1.SpiderIPClaimList
	g.Expect(e.c.List(ctx, &list, client.MatchingLabels{v2beta1.LabelPool: pool})).To(Succeed())
	return list.Items
}

// nad creates a macvlan NetworkAttachmentDefinition on the lab underlay
// with spiderpool IPAM.
func (e *ipamEnv) nad(ctx context.Context, name string, extraIPAM map[string]any) {
	_, err := f.CreateNAD(ctx, e.ns, name, framework.SpiderpoolMacvlanConfig(e.ns+"-"+name, e.lab.UnderlayIf, extraIPAM))
	Expect(err).NotTo(HaveOccurred())
}

// pod creates a bare pod with annotations and returns it once Running.
func (e *ipamEnv) pod(ctx context.Context, name, node string, annotations map[string]string) *corev1.Pod {
	p := f.NewPod(e.ns, name, framework.PodOptions{Node: node, Annotations: annotations})
	_, err := f.CreatePod(ctx, p)
	Expect(err).NotTo(HaveOccurred())
	out, err := f.WaitPodRunning(ctx, e.ns, name)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// podRunningReady reports whether p is Running and Ready and not going away.
func podRunningReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// workloadPods waits until exactly n pods match selector, all Running and
// none terminating, and returns them sorted by name.
func (e *ipamEnv) workloadPods(ctx context.Context, selector string, n int) []corev1.Pod {
	var pods []corev1.Pod
	Eventually(func(g Gomega) {
		list, err := f.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		g.Expect(err).NotTo(HaveOccurred())
		var states []string
		ok := 0
		for _, p := range list.Items {
			if podRunningReady(&p) {
				ok++
			}
			states = append(states, fmt.Sprintf("%s=%s(deleting=%v)", p.Name, p.Status.Phase, p.DeletionTimestamp != nil))
		}
		g.Expect(len(list.Items)).To(Equal(n), "pods %v", states)
		g.Expect(ok).To(Equal(n), "pods %v; events: %s", states, e.events(ctx))
		pods = list.Items
	}).WithContext(ctx).WithTimeout(framework.PodStartTimeout).WithPolling(500 * time.Millisecond).Should(Succeed())
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	return pods
}

// events returns the Warning events of the namespace, for failure messages.
func (e *ipamEnv) events(ctx context.Context) string {
	evs, err := f.Client.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, ev := range evs.Items {
		out = append(out, fmt.Sprintf("%s %s: %s", ev.InvolvedObject.Name, ev.Reason, ev.Message))
	}
	return strings.Join(out, "\n")
}

// sandboxErrors waits until pod name has a FailedCreatePodSandBox event
// and returns the messages of all of them.
func (e *ipamEnv) sandboxErrors(ctx context.Context, name string) string {
	var msg string
	Eventually(func(g Gomega) {
		evs, err := f.PodEvents(ctx, e.ns, name, "FailedCreatePodSandBox")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(evs).NotTo(BeEmpty(), "no FailedCreatePodSandBox event for pod %s/%s yet", e.ns, name)
		var msgs []string
		for _, ev := range evs {
			msgs = append(msgs, ev.Message)
		}
		msg = strings.Join(msgs, "\n")
	}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())
	return msg
}

// ifaceAddrs returns the global addresses of ifName inside the pod, read
// with `ip -br addr` in the pod's network namespace.
func ifaceAddrs(ctx context.Context, pod *corev1.Pod, ifName string) []netip.Prefix {
	out, _, err := requireExec().ExecInPod(ctx, pod, "ip", "-br", "addr", "show", "dev", ifName)
	Expect(err).NotTo(HaveOccurred())
	var addrs []netip.Prefix
	fields := strings.Fields(out)
	for _, fl := range fields[min(2, len(fields)):] {
		p, err := netip.ParsePrefix(fl)
		if err == nil && !p.Addr().IsLinkLocalUnicast() {
			addrs = append(addrs, p)
		}
	}
	return addrs
}

// ifaceMAC returns the MAC address of ifName inside the pod, read with
// `ip -br link` in the pod's network namespace.
func ifaceMAC(ctx context.Context, pod *corev1.Pod, ifName string) string {
	GinkgoHelper()
	out, _, err := requireExec().ExecInPod(ctx, pod, "ip", "-br", "link", "show", "dev", ifName)
	Expect(err).NotTo(HaveOccurred())
	fields := strings.Fields(out) // net1@if5 UP 02:42:0a:10:00:0f <BROADCAST,...>
	Expect(len(fields)).To(BeNumerically(">=", 3), "ip -br link: %q", out)
	return fields[2]
}

// defaultRoutes returns the devices that carry a default route of the
// family (4 or 6) inside the pod, ignoring router-advertisement routes.
func defaultRoutes(ctx context.Context, pod *corev1.Pod, family int) []string {
	out, _, err := requireExec().ExecInPod(ctx, pod, "ip", fmt.Sprintf("-%d", family), "route", "show", "default")
	Expect(err).NotTo(HaveOccurred())
	var devs []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		fl := strings.Fields(l)
		if strings.Contains(l, "proto ra") {
			continue
		}
		for i := 0; i+1 < len(fl); i++ {
			if fl[i] == "dev" {
				devs = append(devs, fl[i+1]+" via "+viaOf(fl))
			}
		}
	}
	sort.Strings(devs)
	return devs
}

func viaOf(fields []string) string {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == "via" {
			return fields[i+1]
		}
	}
	return "-"
}

// statusAddrs returns the addresses network-status reports for ifName.
func statusAddrs(pod *corev1.Pod, ifName string) []netip.Addr {
	st, err := framework.InterfaceStatus(pod, ifName)
	Expect(err).NotTo(HaveOccurred())
	var out []netip.Addr
	for _, s := range st.IPs {
		a, err := netip.ParseAddr(s)
		Expect(err).NotTo(HaveOccurred(), "network-status of %s/%s %s", pod.Namespace, pod.Name, ifName)
		out = append(out, a)
	}
	return out
}

// byFamily splits addresses into the single IPv4 and IPv6 address expected
// on a NIC; a missing family is the zero Addr.
func byFamily(g Gomega, addrs []netip.Addr) (v4, v6 netip.Addr) {
	for _, a := range addrs {
		if a.Is4() {
			g.Expect(v4.IsValid()).To(BeFalse(), "two IPv4 addresses in %v", addrs)
			v4 = a
		} else {
			g.Expect(v6.IsValid()).To(BeFalse(), "two IPv6 addresses in %v", addrs)
			v6 = a
		}
	}
	return v4, v6
}

// expectNIC checks that ifName of pod carries exactly one address from pool
// v4 (if not "") and one from pool v6 (if not ""), as reported by
// network-status and as configured in the pod, and that the pod's
// SpiderIPClaims and SpiderEndpoint agree. It returns the addresses.
func (e *ipamEnv) expectNIC(ctx context.Context, pod *corev1.Pod, ifName, pool4, pool6 string) (v4, v6 netip.Addr) {
	return e.expectNICFrom(ctx, pod, ifName, pool4, pool6, true)
}

// expectNICFrom is expectNIC; without fromStatus the addresses are taken
// from the pod's interface only (Multus writes no network-status entry for
// results of CNI versions before 0.3.0, which have no interface names).
func (e *ipamEnv) expectNICFrom(ctx context.Context, pod *corev1.Pod, ifName, pool4, pool6 string, fromStatus bool) (v4, v6 netip.Addr) {
	if fromStatus {
		v4, v6 = byFamily(Default, statusAddrs(pod, ifName))
	} else {
		var got []netip.Addr
		for _, p := range ifaceAddrs(ctx, pod, ifName) {
			got = append(got, p.Addr())
		}
		v4, v6 = byFamily(Default, got)
	}
	for _, w := range []struct {
		pool string
		addr netip.Addr
		fam  string
	}{{pool4, v4, "IPv4"}, {pool6, v6, "IPv6"}} {
		if w.pool == "" {
			Expect(w.addr.IsValid()).To(BeFalse(), "%s/%s %s should have no %s address, has %s", pod.Namespace, pod.Name, ifName, w.fam, w.addr)
			continue
		}
		Expect(w.addr.IsValid()).To(BeTrue(), "%s/%s %s has no %s address", pod.Namespace, pod.Name, ifName, w.fam)
		p := &v2beta1.SpiderIPPool{}
		Expect(e.c.Get(ctx, client.ObjectKey{Name: w.pool}, p)).To(Succeed())
		Expect(framework.InIPList(p.Spec.IPs, w.addr)).To(BeTrue(), "%s/%s %s address %s is not in pool %s %v", pod.Namespace, pod.Name, ifName, w.addr, w.pool, p.Spec.IPs)
		// The claim of the address names this pod incarnation and NIC.
		cl := &v2beta1.SpiderIPClaim{}
		Expect(e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(w.addr)}, cl)).To(Succeed(), "claim of %s", w.addr)
		Expect(cl.Spec).To(claimFor(w.pool, pod, ifName, w.addr))
	}
	// What the pod really has on the interface.
	var want []netip.Addr
	for _, a := range []netip.Addr{v4, v6} {
		if a.IsValid() {
			want = append(want, a)
		}
	}
	var got []netip.Addr
	for _, p := range ifaceAddrs(ctx, pod, ifName) {
		got = append(got, p.Addr())
	}
	Expect(got).To(ConsistOf(want), "addresses of %s in pod %s/%s", ifName, pod.Namespace, pod.Name)
	// The SpiderEndpoint is written in the background.
	Eventually(func(g Gomega) {
		se := &v2beta1.SpiderEndpoint{}
		g.Expect(e.c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: pod.Name}, se)).To(Succeed())
		g.Expect(se.Status.Current.UID).To(Equal(string(pod.UID)))
		g.Expect(se.Status.Current.Node).To(Equal(pod.Spec.NodeName))
		var d *v2beta1.IPAllocationDetail
		for i := range se.Status.Current.IPs {
			if se.Status.Current.IPs[i].Interface == ifName {
				d = &se.Status.Current.IPs[i]
			}
		}
		g.Expect(d).NotTo(BeNil(), "SpiderEndpoint %s/%s has no %s: %+v", pod.Namespace, pod.Name, ifName, se.Status.Current.IPs)
		g.Expect(addrOf(d.IPv4)).To(Equal(v4), "SpiderEndpoint IPv4 of %s", ifName)
		g.Expect(addrOf(d.IPv6)).To(Equal(v6), "SpiderEndpoint IPv6 of %s", ifName)
		if pool4 != "" {
			g.Expect(ptr.Deref(d.IPv4Pool, "")).To(Equal(pool4))
		}
		if pool6 != "" {
			g.Expect(ptr.Deref(d.IPv6Pool, "")).To(Equal(pool6))
		}
	}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
	return v4, v6
}

// addrOf parses "10.6.0.5/16" (or nil) into the address.
func addrOf(s *string) netip.Addr {
	if s == nil {
		return netip.Addr{}
	}
	p, err := netip.ParsePrefix(*s)
	if err != nil {
		a, _ := netip.ParseAddr(*s)
		return a
	}
	return p.Addr()
}

// claimFor matches a claim spec against the pod, NIC, pool and address
// it must record.
func claimFor(pool string, pod *corev1.Pod, ifName string, addr netip.Addr) OmegaMatcher {
	return And(
		HaveField("Pool", pool),
		HaveField("Address", addr.String()),
		HaveField("PodNamespace", pod.Namespace),
		HaveField("PodName", pod.Name),
		HaveField("PodUID", string(pod.UID)),
		HaveField("Interface", ifName),
		HaveField("Node", pod.Spec.NodeName),
	)
}

// spRows runs `kubectl get sp NAMES...` and returns the rows by name.
func (e *ipamEnv) spRows(ctx context.Context, names ...string) map[string]map[string]string {
	out := e.run(ctx, append([]string{"get", "sp"}, names...)...)
	e.lastSp = out
	rows := map[string]map[string]string{}
	for _, r := range framework.ParseTable(out) {
		rows[r["NAME"]] = r
	}
	return rows
}

// run runs kubectl with args and returns its output.
func (e *ipamEnv) run(ctx context.Context, args ...string) string {
	GinkgoHelper()
	if e.kubectl == "" {
		wd, err := os.Getwd()
		Expect(err).NotTo(HaveOccurred())
		e.kubectl, err = framework.KubectlPath(ctx, framework.RepoRoot(wd))
		Expect(err).NotTo(HaveOccurred())
	}
	out, err := f.Kubectl(ctx, e.kubectl, args...)
	Expect(err).NotTo(HaveOccurred())
	return out
}

// show prints `kubectl args` and its output to the spec's log (the pages
// in docs/ quote them).
func (e *ipamEnv) show(ctx context.Context, args ...string) {
	GinkgoHelper()
	GinkgoWriter.Printf("$ kubectl %s\n%s\n", strings.Join(args, " "), e.run(ctx, args...))
}

// expectSp waits until `kubectl get sp` shows pool with the given
// ALLOCATED-IP-COUNT and TOTAL-IP-COUNT.
func (e *ipamEnv) expectSp(ctx context.Context, pool string, allocated, total int) map[string]string {
	var row map[string]string
	Eventually(func(g Gomega) {
		row = e.spRows(ctx, pool)[pool]
		g.Expect(row).NotTo(BeNil())
		g.Expect(row["ALLOCATED-IP-COUNT"]).To(Equal(fmt.Sprint(allocated)), "ALLOCATED-IP-COUNT of %s", pool)
		g.Expect(row["TOTAL-IP-COUNT"]).To(Equal(fmt.Sprint(total)), "TOTAL-IP-COUNT of %s", pool)
	}).WithContext(ctx).WithTimeout(15 * time.Second).WithPolling(time.Second).Should(Succeed())
	GinkgoWriter.Printf("kubectl get sp %s\n%s", pool, e.lastSp)
	return row
}

// decodeInto reads a YAML manifest (written as in the seed documents) into
// obj.
func decodeInto(manifest string, obj any) {
	Expect(yaml.UnmarshalStrict([]byte(manifest), obj)).To(Succeed(), "manifest:\n%s", manifest)
}

// underlayV4 returns the underlay address with the given last two octets,
// where the seed's 10.244.<third>.<fourth> addresses move to.
func underlayV4(lab *framework.Testbed, third, fourth int) netip.Addr {
	b := lab.UnderlayV4.Masked().Addr().As4()
	b[2], b[3] = byte(third), byte(fourth)
	return netip.AddrFrom4(b)
}

// Seed 003's pool covers every IPAM block (and those of other files taken
// from this range): it runs alone, after the specs that run in parallel.
var _ = Describe("IPAM", Serial, func() {
	BeforeEach(func() {
		requireCluster()
		requireExec()
	})

	// Seed 003 (Calico quick start): the nginx-ippool-v4 pool and the
	// nginx Deployment pinned to it with ipam.spidernet.io/ippool, scaled
	// from 2 to 3 replicas. The pool is applied as written except for its
	// subnet and range, moved from the pod network 10.244.0.0/16 (which is
	// the lab's eth0 network) onto the lab underlay: 10.244.100.0-10.244.200.1
	// becomes 172.30.100.0-172.30.200.1, the same 25602 addresses. The
	// pool's network is a macvlan NAD on the underlay given to the pods as
	// their default network (eth0), as the seed's Calico network was.
	It("seed 003: nginx Deployment on nginx-ippool-v4 gets addresses from the pool, scales 2->3 inside it, kubectl get sp counts them", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-seed003")
		sub := e.lab.UnderlayV4.Masked()
		first, last := underlayV4(e.lab, 100, 0), underlayV4(e.lab, 200, 1)
		subnetLabel := strings.NewReplacer(".", "-", "/", "-").Replace(sub.String())
		pool := &v2beta1.SpiderIPPool{}
		decodeInto(fmt.Sprintf(`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: nginx-ippool-v4
  labels:
    ipam.spidernet.io/subnet-cidr: %s   # seed: 10-244-0-0-16
spec:
  ips:
  - %s-%s                               # seed: 10.244.100.0-10.244.200.1
  subnet: %s                            # seed: 10.244.0.0/16
`, subnetLabel, first, last, sub), pool)
		e.createPool(ctx, pool)
		// The seed's first table: VERSION 4, 0 allocated of 25602.
		row := e.expectSp(ctx, "nginx-ippool-v4", 0, 25602)
		Expect(row["VERSION"]).To(Equal("4"))
		Expect(row["SUBNET"]).To(Equal(sub.String()))

		e.nad(ctx, "underlay", nil)
		deploy := &appsv1.Deployment{}
		decodeInto(`
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
spec:
  replicas: 2
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      annotations:
        ipam.spidernet.io/ippool: '{"ipv4":["nginx-ippool-v4"]}'
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx
        imagePullPolicy: IfNotPresent
        ports:
        - name: http
          containerPort: 80
          protocol: TCP
`, deploy)
		// Lab adaptation: the pool's network is the pods' default network.
		deploy.Namespace = e.ns
		deploy.Spec.Template.Annotations[annotDefaultNetwork] = e.ns + "/underlay"
		_, err := f.Client.AppsV1().Deployments(e.ns).Create(ctx, deploy, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		check := func(n int) {
			pods := e.workloadPods(ctx, "app=nginx", n)
			seen := map[netip.Addr]string{}
			for i := range pods {
				p := &pods[i]
				// kubectl get po -o wide: the pod IP is the pool address.
				ip, err := netip.ParseAddr(p.Status.PodIP)
				Expect(err).NotTo(HaveOccurred())
				Expect(framework.InIPList(pool.Spec.IPs, ip)).To(BeTrue(), "pod %s IP %s outside nginx-ippool-v4 %v", p.Name, ip, pool.Spec.IPs)
				v4, _ := e.expectNIC(ctx, p, "eth0", "nginx-ippool-v4", "")
				Expect(v4).To(Equal(ip))
				Expect(seen).NotTo(HaveKey(ip), "pods %s and %s share %s", seen[ip], p.Name, ip)
				seen[ip] = p.Name
				GinkgoWriter.Printf("%s %s %s\n", p.Name, p.Spec.NodeName, ip)
			}
			// allocatedIPCount follows within seconds.
			_, err := framework.WaitPoolAllocated(ctx, e.c, "nginx-ippool-v4", int64(n), 10*time.Second)
			Expect(err).NotTo(HaveOccurred())
			e.expectSp(ctx, "nginx-ippool-v4", n, 25602)
		}
		check(2)
		// kubectl scale deploy nginx --replicas 3
		_, err = f.Client.AppsV1().Deployments(e.ns).Patch(ctx, "nginx", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		check(3)
	})
})

// The other IPAM specs run one after another (Ordered: their pools share
// seed names, and the cluster default pools of one would serve the pods of
// another), on one process, beside the specs of the other files. They take
// the longest of any unit: they start first (SpecPriority), so that the
// other processes are not left idle while they end.
var _ = Describe("IPAM", Ordered, SpecPriority(10), func() {
	BeforeEach(func() {
		requireCluster()
		requireExec()
	})

	// Seed 004 (SpiderIPPool): the dual-stack Deployment with
	// ipam.spidernet.io/ippool naming one IPv4 and one IPv6 pool. The
	// seed's pods use the pools on their main network; here they are given
	// net1 (macvlan on the underlay, spiderpool IPAM) since the lab's
	// default network keeps its own IPAM.
	It("seed 004: custom-dual-ippool-deploy gets one IPv4 and one IPv6 on net1 from its pools; an IPv4-only annotation gets IPv4 only", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-dual")
		block := ipamBlockBase + 1
		e.pool(ctx, "custom-ipv4-ippool", 4, block, 20)
		e.pool(ctx, "custom-ipv6-ippool", 6, block, 20)
		e.nad(ctx, "underlay", nil)
		deploy := &appsv1.Deployment{}
		decodeInto(`
apiVersion: apps/v1
kind: Deployment
metadata:
  name: custom-dual-ippool-deploy
spec:
  replicas: 3
  selector:
    matchLabels:
      app: custom-dual-ippool-deploy
  template:
    metadata:
      annotations:
        ipam.spidernet.io/ippool: |-
          {
            "ipv4": ["custom-ipv4-ippool"],"ipv6": ["custom-ipv6-ippool"]
          }
      labels:
        app: custom-dual-ippool-deploy
    spec:
      containers:
        - name: custom-dual-ippool-deploy
          image: busybox
          imagePullPolicy: IfNotPresent
          command: ["/bin/sh", "-c", "trap : TERM INT; sleep infinity & wait"]
`, deploy)
		deploy.Spec.Template.Annotations[annotNetworks] = "underlay" // lab adaptation: the pools serve net1
		_, err := f.Client.AppsV1().Deployments(e.ns).Create(ctx, deploy, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pods := e.workloadPods(ctx, "app=custom-dual-ippool-deploy", 3)
		seen := map[netip.Addr]bool{}
		for i := range pods {
			v4, v6 := e.expectNIC(ctx, &pods[i], "net1", "custom-ipv4-ippool", "custom-ipv6-ippool")
			Expect(seen).NotTo(HaveKey(v4))
			Expect(seen).NotTo(HaveKey(v6))
			seen[v4], seen[v6] = true, true
			// eth0 stays on the default network.
			def, err := framework.InterfaceStatus(&pods[i], "eth0")
			Expect(err).NotTo(HaveOccurred())
			Expect(def.Default).To(BeTrue())
		}
		e.expectSp(ctx, "custom-ipv4-ippool", 3, 20)
		e.expectSp(ctx, "custom-ipv6-ippool", 3, 20)

		// In a dual-stack cluster a pod may ask for IPv4 only.
		p := e.pod(ctx, "v4-only", "", map[string]string{
			annotNetworks: "underlay",
			annotIPPool:   `{"ipv4": ["custom-ipv4-ippool"]}`,
		})
		e.expectNIC(ctx, p, "net1", "custom-ipv4-ippool", "")
		e.expectSp(ctx, "custom-ipv4-ippool", 4, 20)
		e.expectSp(ctx, "custom-ipv6-ippool", 3, 20)
	})

	It("seed 004: ipam.spidernet.io/ippool backup pools are used when the first pool of each family is exhausted", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-backup")
		block := ipamBlockBase + 2
		e.pool(ctx, "demo-v4-ippool1", 4, block, 1)
		e.pool(ctx, "demo-v6-ippool1", 6, block, 1)
		e.pool(ctx, "backup-ipv4-ippool", 4, block+50, 5)
		e.pool(ctx, "backup-ipv6-ippool", 6, block+50, 5)
		e.nad(ctx, "underlay", nil)
		ann := map[string]string{annotNetworks: "underlay", annotIPPool: `{
    "ipv4": ["demo-v4-ippool1", "backup-ipv4-ippool"],
    "ipv6": ["demo-v6-ippool1", "backup-ipv6-ippool"]
  }`}
		a := e.pod(ctx, "a", "", ann)
		e.expectNIC(ctx, a, "net1", "demo-v4-ippool1", "demo-v6-ippool1")
		b := e.pod(ctx, "b", "", ann)
		e.expectNIC(ctx, b, "net1", "backup-ipv4-ippool", "backup-ipv6-ippool")
	})

	// Seed 004: ipam.spidernet.io/ippools, the multi-NIC annotation, both
	// forms. eth0 and net1 are both macvlan NICs on the underlay with
	// spiderpool IPAM (eth0 through Multus' default-network annotation), so
	// every route they have comes from the IPAM result; no coordinator.
	It("seed 004: ipam.spidernet.io/ippools gives eth0 and net1 their pools by position and by name, and cleangateway drops that NIC's default route", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-multinic")
		block := ipamBlockBase + 3
		e.pool(ctx, "demo-v4-ippool1", 4, block, 10)
		e.pool(ctx, "demo-v6-ippool1", 6, block, 10)
		e.pool(ctx, "demo-v4-ippool2", 4, block+1, 10)
		e.pool(ctx, "demo-v6-ippool2", 6, block+1, 10)
		e.nad(ctx, "underlay-eth0", nil)
		e.nad(ctx, "underlay-net1", nil)
		nets := map[string]string{annotDefaultNetwork: e.ns + "/underlay-eth0", annotNetworks: "underlay-net1"}
		with := func(pools string) map[string]string {
			m := map[string]string{annotIPPools: pools}
			for k, v := range nets {
				m[k] = v
			}
			return m
		}

		// By position, exactly as written in the seed: the trailing comma
		// after the first entry's "ipv6" list is not JSON, and the pod is
		// refused with an event naming the annotation.
		asWritten := `[{
      "ipv4": ["demo-v4-ippool1"],
      "ipv6": ["demo-v6-ippool1"],
   },{
      "ipv4": ["demo-v4-ippool2"],
      "ipv6": ["demo-v6-ippool2"],
      "cleangateway": true
  }]`
		_, err := f.CreatePod(ctx, f.NewPod(e.ns, "by-position-as-written", framework.PodOptions{Annotations: with(asWritten)}))
		Expect(err).NotTo(HaveOccurred())
		msg := e.sandboxErrors(ctx, "by-position-as-written")
		Expect(msg).To(ContainSubstring(`"ipam.spidernet.io/ippools"`))
		Expect(msg).To(ContainSubstring("invalid character '}'"))
		p, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, "by-position-as-written", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Status.Phase).To(Equal(corev1.PodPending))

		// The same with the comma removed: entry 1 is eth0, entry 2 net1.
		pos := e.pod(ctx, "by-position", "", with(strings.Replace(asWritten, `["demo-v6-ippool1"],`, `["demo-v6-ippool1"]`, 1)))
		e.expectNIC(ctx, pos, "eth0", "demo-v4-ippool1", "demo-v6-ippool1")
		e.expectNIC(ctx, pos, "net1", "demo-v4-ippool2", "demo-v6-ippool2")
		gw4, gw6 := e.lab.GatewayV4.String(), e.lab.GatewayV6.String()
		Expect(defaultRoutes(ctx, pos, 4)).To(Equal([]string{"eth0 via " + gw4}), "IPv4 default routes of %s", pos.Name)
		Expect(defaultRoutes(ctx, pos, 6)).To(Equal([]string{"eth0 via " + gw6}), "IPv6 default routes of %s", pos.Name)
		st, err := framework.InterfaceStatus(pos, "net1")
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Gateway).To(BeEmpty(), "net1 (cleangateway) should report no gateway in network-status")

		// By name, as written: eth0 cleangateway, net1 carries the default
		// routes.
		named := e.pod(ctx, "by-name", "", with(`[{
      "interface": "eth0",
      "ipv4": ["demo-v4-ippool1"],
      "ipv6": ["demo-v6-ippool1"],
      "cleangateway": true
   },{
      "interface": "net1",
      "ipv4": ["demo-v4-ippool2"],
      "ipv6": ["demo-v6-ippool2"],
      "cleangateway": false
  }]`))
		e.expectNIC(ctx, named, "eth0", "demo-v4-ippool1", "demo-v6-ippool1")
		e.expectNIC(ctx, named, "net1", "demo-v4-ippool2", "demo-v6-ippool2")
		Expect(defaultRoutes(ctx, named, 4)).To(Equal([]string{"net1 via " + gw4}), "IPv4 default routes of %s", named.Name)
		Expect(defaultRoutes(ctx, named, 6)).To(Equal([]string{"net1 via " + gw6}), "IPv6 default routes of %s", named.Name)
		st, err = framework.InterfaceStatus(named, "eth0")
		Expect(err).NotTo(HaveOccurred())
		Expect(st.Gateway).To(BeEmpty(), "eth0 (cleangateway) should report no gateway in network-status")
		// Each NIC reaches the underlay gateway from its own address.
		for _, nic := range []string{"eth0", "net1"} {
			out, _, err := requireExec().ExecInPod(ctx, named, "ping", "-c", "1", "-W", "2", "-I", nic, gw4)
			Expect(err).NotTo(HaveOccurred(), "ping %s over %s: %s", gw4, nic, out)
		}
		e.expectSp(ctx, "demo-v4-ippool1", 2, 10)
		e.expectSp(ctx, "demo-v6-ippool2", 2, 10)
	})

	// Seed 004: namespace default pools. The seed annotates kube-system;
	// here the spec's own namespace carries the same annotations. The NAD
	// also names CNI-configuration defaults, which the namespace overrides.
	It("seed 004: namespace default pools are used when the pod names none, the second when the first is exhausted", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-nsdefault")
		block := ipamBlockBase + 5
		e.pool(ctx, "ns-v4-ippool1", 4, block, 1)
		e.pool(ctx, "ns-v6-ippool1", 6, block, 1)
		e.pool(ctx, "ns-v4-ippool2", 4, block+50, 5)
		e.pool(ctx, "ns-v6-ippool2", 6, block+50, 5)
		e.pool(ctx, "ns-cni-v4", 4, block+60, 5)
		e.pool(ctx, "ns-cni-v6", 6, block+60, 5)
		nsObj := &corev1.Namespace{}
		decodeInto(fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata:
  annotations:
    ipam.spidernet.io/default-ipv4-ippool: '["ns-v4-ippool1","ns-v4-ippool2"]'
    ipam.spidernet.io/default-ipv6-ippool: '["ns-v6-ippool1","ns-v6-ippool2"]'
  name: %s   # seed: kube-system
`, e.ns), nsObj)
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": nsObj.Annotations}})
		_, err := f.Client.CoreV1().Namespaces().Patch(ctx, e.ns, types.MergePatchType, patch, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		e.nad(ctx, "underlay", map[string]any{"default_ipv4_ippool": []string{"ns-cni-v4"}, "default_ipv6_ippool": []string{"ns-cni-v6"}})
		a := e.pod(ctx, "a", "", map[string]string{annotNetworks: "underlay"})
		e.expectNIC(ctx, a, "net1", "ns-v4-ippool1", "ns-v6-ippool1")
		b := e.pod(ctx, "b", "", map[string]string{annotNetworks: "underlay"})
		e.expectNIC(ctx, b, "net1", "ns-v4-ippool2", "ns-v6-ippool2")
		e.expectSp(ctx, "ns-cni-v4", 0, 5)
	})

	// Seed 004: default_ipv4_ippool / default_ipv6_ippool in the CNI
	// configuration, as written (master eth0 becomes the lab underlay ul0;
	// the seed's configuration has no cniVersion).
	It("seed 004: CNI-configuration default pools are used when neither pod nor namespace names one, the backup when the first is exhausted", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-cnidefault")
		block := ipamBlockBase + 6
		e.pool(ctx, "default-v4-ippool", 4, block, 1)
		e.pool(ctx, "default-v6-ippool", 6, block, 1)
		e.pool(ctx, "backup-ipv4-ippool", 4, block+50, 5)
		e.pool(ctx, "backup-ipv6-ippool", 6, block+50, 5)
		conf := strings.Replace(`{
  "name": "macvlan-vlan0",
  "type": "macvlan",
  "master": "eth0",
  "ipam": {
    "type": "spiderpool",
    "default_ipv4_ippool":["default-v4-ippool","backup-ipv4-ippool"],
    "default_ipv6_ippool":["default-v6-ippool","backup-ipv6-ippool"]
    }
}`, `"master": "eth0"`, `"master": "`+e.lab.UnderlayIf+`"`, 1)
		_, err := f.CreateNAD(ctx, e.ns, "macvlan-vlan0", conf)
		Expect(err).NotTo(HaveOccurred())
		// Without cniVersion the result is CNI 0.1.0, for which Multus
		// writes no network-status entry: read the pod's net1 instead.
		a := e.pod(ctx, "a", "", map[string]string{annotNetworks: "macvlan-vlan0"})
		e.expectNICFrom(ctx, a, "net1", "default-v4-ippool", "default-v6-ippool", false)
		// The same configuration with a cniVersion, so network-status shows net1.
		var withVersion map[string]any
		Expect(json.Unmarshal([]byte(conf), &withVersion)).To(Succeed())
		withVersion["cniVersion"], withVersion["name"] = "1.0.0", "macvlan-vlan0-v1"
		confV1, _ := json.Marshal(withVersion)
		_, err = f.CreateNAD(ctx, e.ns, "macvlan-vlan0-v1", string(confV1))
		Expect(err).NotTo(HaveOccurred())
		b := e.pod(ctx, "b", "", map[string]string{annotNetworks: "macvlan-vlan0-v1"})
		e.expectNIC(ctx, b, "net1", "backup-ipv4-ippool", "backup-ipv6-ippool")
		// A pod annotation still wins over the CNI configuration.
		c := e.pod(ctx, "c", "", map[string]string{annotNetworks: "macvlan-vlan0-v1", annotIPPool: `{"ipv4":["backup-ipv4-ippool"],"ipv6":["backup-ipv6-ippool"]}`})
		e.expectNIC(ctx, c, "net1", "backup-ipv4-ippool", "backup-ipv6-ippool")
		e.expectSp(ctx, "default-v4-ippool", 1, 1)
		e.expectSp(ctx, "backup-ipv4-ippool", 2, 5)
	})

	// Seed 004: spec.default: true. master-172 is the seed's pool; its
	// IPv6 sibling exists because the lab allocates both families.
	It("seed 004: cluster default pools (spec.default: true) are used when nothing more specific names a pool; CNI and namespace defaults win over them", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-clusterdefault")
		block := ipamBlockBase + 7
		for _, fam := range []int{4, 6} {
			name := map[int]string{4: "master-172", 6: "master-172-v6"}[fam]
			p := &v2beta1.SpiderIPPool{}
			decodeInto(fmt.Sprintf(`
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: %s
spec:
  default: true
`, name), p)
			e.pool(ctx, name, fam, block, 5, func(q *v2beta1.SpiderIPPool) { q.Spec.Default = p.Spec.Default })
		}
		Expect(e.spRows(ctx, "master-172")["master-172"]["DEFAULT"]).To(Equal("true"))
		e.nad(ctx, "underlay", nil)
		a := e.pod(ctx, "a", "", map[string]string{annotNetworks: "underlay"})
		// Another cluster default pool of the family (another user's)
		// could have been chosen as well; then name it.
		v4, v6 := byFamily(Default, statusAddrs(a, "net1"))
		for _, w := range []struct {
			addr netip.Addr
			want string
		}{{v4, "master-172"}, {v6, "master-172-v6"}} {
			cl := &v2beta1.SpiderIPClaim{}
			Expect(e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(w.addr)}, cl)).To(Succeed())
			if cl.Spec.Pool != w.want {
				p := &v2beta1.SpiderIPPool{}
				Expect(e.c.Get(ctx, client.ObjectKey{Name: cl.Spec.Pool}, p)).To(Succeed())
				Expect(ptr.Deref(p.Spec.Default, false)).To(BeTrue(), "pod a got %s from %s, which is not a default pool", w.addr, cl.Spec.Pool)
				missing(fmt.Sprintf("another cluster default pool %q was chosen; this spec needs master-172 to be the only default pool", cl.Spec.Pool))
			}
		}
		e.expectNIC(ctx, a, "net1", "master-172", "master-172-v6")
		e.expectSp(ctx, "master-172", 1, 5)

		// More specific rules still win over the cluster default: the CNI
		// configuration's pools, then the namespace's.
		e.pool(ctx, "cd-cni-v4-"+e.ns, 4, block+50, 5)
		e.pool(ctx, "cd-cni-v6-"+e.ns, 6, block+50, 5)
		e.nad(ctx, "with-defaults", map[string]any{"default_ipv4_ippool": []string{"cd-cni-v4-" + e.ns}, "default_ipv6_ippool": []string{"cd-cni-v6-" + e.ns}})
		b := e.pod(ctx, "b", "", map[string]string{annotNetworks: "with-defaults"})
		e.expectNIC(ctx, b, "net1", "cd-cni-v4-"+e.ns, "cd-cni-v6-"+e.ns)
		e.pool(ctx, "cd-ns-v4-"+e.ns, 4, block+60, 5)
		e.pool(ctx, "cd-ns-v6-"+e.ns, 6, block+60, 5)
		patch := fmt.Sprintf(`{"metadata":{"annotations":{"ipam.spidernet.io/default-ipv4-ippool":"[\"cd-ns-v4-%s\"]","ipam.spidernet.io/default-ipv6-ippool":"[\"cd-ns-v6-%s\"]"}}}`, e.ns, e.ns)
		_, err := f.Client.CoreV1().Namespaces().Patch(ctx, e.ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		c := e.pod(ctx, "c", "", map[string]string{annotNetworks: "with-defaults"})
		e.expectNIC(ctx, c, "net1", "cd-ns-v4-"+e.ns, "cd-ns-v6-"+e.ns)
		e.expectSp(ctx, "master-172", 1, 5)
	})

	// IPv6 pools are commonly a whole /64: TOTAL-IP-COUNT (an int64 column)
	// must count them, saturating at the largest int64, never wrap negative.
	// The pools use a /64 next to the lab underlay that no pod uses.
	It("kubectl get sp: TOTAL-IP-COUNT of large IPv6 pools is exact up to the int64 limit and saturates there", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-bigv6")
		subnet := "fd30:172:31::/64"
		e.createPool(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "big-v6-half-" + e.ns}, Spec: v2beta1.IPPoolSpec{
			Subnet: subnet, IPs: []string{"fd30:172:31::4000:0:0:0-fd30:172:31::7fff:ffff:ffff:ffff"}, // 2^62
		}})
		e.expectSp(ctx, "big-v6-half-"+e.ns, 0, 1<<62)
		e.createPool(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "big-v6-full-" + e.ns}, Spec: v2beta1.IPPoolSpec{
			Subnet: "fd30:172:32::/64", IPs: []string{"fd30:172:32::1-fd30:172:32::ffff:ffff:ffff:fffe"}, // 2^64-2
		}})
		e.expectSp(ctx, "big-v6-full-"+e.ns, 0, math.MaxInt64)
	})

	// A StatefulSet replica keeps its addresses when its pod is re-created,
	// on the same node or on another one.
	It("StatefulSet: a deleted replica comes back with the same IPv4 and IPv6, also when it moves to another node", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-sts")
		n1, n2 := twoNodes(ctx)
		block := ipamBlockBase + 8
		e.pool(ctx, "sts-v4-"+e.ns, 4, block, 10)
		e.pool(ctx, "sts-v6-"+e.ns, 6, block, 10)
		e.nad(ctx, "underlay", nil)
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: e.ns},
			Spec: appsv1.StatefulSetSpec{
				Replicas:    ptr.To[int32](2),
				ServiceName: "web",
				Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{
						Labels: map[string]string{"app": "web"},
						Annotations: map[string]string{
							annotNetworks: "underlay",
							annotIPPool:   fmt.Sprintf(`{"ipv4":["sts-v4-%s"],"ipv6":["sts-v6-%s"]}`, e.ns, e.ns),
						},
					},
					Spec: corev1.PodSpec{
						Containers:                    []corev1.Container{{Name: "web", Image: f.PodImage}},
						TerminationGracePeriodSeconds: ptr.To[int64](5),
					},
				},
			},
		}
		_, err := f.Client.AppsV1().StatefulSets(e.ns).Create(ctx, sts, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pool4, pool6 := "sts-v4-"+e.ns, "sts-v6-"+e.ns
		type addrs struct{ v4, v6 netip.Addr }
		before := map[string]addrs{}
		var web0 *corev1.Pod
		for _, p := range e.workloadPods(ctx, "app=web", 2) {
			p := p
			v4, v6 := e.expectNIC(ctx, &p, "net1", pool4, pool6)
			before[p.Name] = addrs{v4, v6}
			if p.Name == "web-0" {
				web0 = &p
			}
		}
		GinkgoWriter.Printf("before: web-0 %s %s, web-1 %s %s; web-0 on %s\n", before["web-0"].v4, before["web-0"].v6, before["web-1"].v4, before["web-1"].v6, web0.Spec.NodeName)

		// Delete web-0: its replacement (new UID) has the same addresses.
		Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, "web-0", metav1.DeleteOptions{})).To(Succeed())
		var again *corev1.Pod
		Eventually(func(g Gomega) {
			p, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, "web-0", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.UID).NotTo(Equal(web0.UID))
			g.Expect(podRunningReady(p)).To(BeTrue(), "web-0 is %s; events: %s", p.Status.Phase, e.events(ctx))
			again = p
		}).WithContext(ctx).WithTimeout(framework.PodStartTimeout).WithPolling(500 * time.Millisecond).Should(Succeed())
		v4, v6 := e.expectNIC(ctx, again, "net1", pool4, pool6)
		Expect(addrs{v4, v6}).To(Equal(before["web-0"]), "web-0 changed addresses after re-creation on %s", again.Spec.NodeName)
		expectPodEvent(ctx, e.ns, "web-0", "AddressRebound", fmt.Sprintf("interface net1 keeps %s (pool %s) of StatefulSet web, held before by pod %s/web-0 (uid %s)", v4, pool4, e.ns, web0.UID))

		// Move web-0 to the other node: the template change re-creates
		// every replica there (rolling update), with the same addresses.
		other := n1
		if again.Spec.NodeName == n1 {
			other = n2
		}
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"nodeSelector":{"kubernetes.io/hostname":%q}}}}}`, other)
		_, err = f.Client.AppsV1().StatefulSets(e.ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			s, err := f.Client.AppsV1().StatefulSets(e.ns).Get(ctx, "web", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s.Status.ObservedGeneration).To(Equal(s.Generation))
			g.Expect(s.Status.UpdatedReplicas).To(Equal(int32(2)))
			g.Expect(s.Status.ReadyReplicas).To(Equal(int32(2)), "events: %s", e.events(ctx))
			g.Expect(s.Status.CurrentRevision).To(Equal(s.Status.UpdateRevision))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(time.Second).Should(Succeed())
		for _, p := range e.workloadPods(ctx, "app=web", 2) {
			p := p
			Expect(p.Spec.NodeName).To(Equal(other))
			v4, v6 := e.expectNIC(ctx, &p, "net1", pool4, pool6)
			Expect(addrs{v4, v6}).To(Equal(before[p.Name]), "%s changed addresses after moving to %s", p.Name, other)
		}
		e.expectSp(ctx, pool4, 2, 10)
		e.expectSp(ctx, pool6, 2, 10)

		// Scaling down holds the dropped replica's addresses for the
		// StatefulSet; opting out of that releases them.
		_, err = f.Client.AppsV1().StatefulSets(e.ns).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		e.workloadPods(ctx, "app=web", 1)
		Consistently(func(g Gomega) {
			for _, a := range []netip.Addr{before["web-1"].v4, before["web-1"].v6} {
				g.Expect(e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(a)}, &v2beta1.SpiderIPClaim{})).To(Succeed(), "claim of web-1's %s after scale-down", a)
			}
		}).WithContext(ctx).WithTimeout(3 * time.Second).Should(Succeed())
		e.expectSp(ctx, pool4, 2, 10)
		_, err = f.Client.AppsV1().StatefulSets(e.ns).Patch(ctx, "web", types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"spindle.spidernet.io/release-on-scale-down":"true"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			for _, a := range []netip.Addr{before["web-1"].v4, before["web-1"].v6} {
				err := e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(a)}, &v2beta1.SpiderIPClaim{})
				g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "claim of web-1's %s after scale-down: %v", a, err)
			}
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
		e.expectSp(ctx, pool4, 1, 10)
	})

	It("exhausted pools: the pod stays pending and its FailedCreatePodSandBox event names every pool and why; it starts once an address is freed", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-exhausted")
		block := ipamBlockBase + 9
		pa, pb := "exh-a-"+e.ns, "exh-b-"+e.ns
		e.pool(ctx, pa, 4, block, 2)
		e.pool(ctx, pb, 4, block+50, 1)
		e.nad(ctx, "underlay", nil)
		ann := map[string]string{annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q,%q]}`, pa, pb)}
		for _, n := range []string{"p1", "p2", "p3"} {
			e.pod(ctx, n, "", ann)
		}
		e.expectSp(ctx, pa, 2, 2)
		e.expectSp(ctx, pb, 1, 1)
		_, err := f.CreatePod(ctx, f.NewPod(e.ns, "p4", framework.PodOptions{Annotations: ann}))
		Expect(err).NotTo(HaveOccurred())
		msg := e.sandboxErrors(ctx, "p4")
		GinkgoWriter.Printf("p4 events:\n%s\n", msg)
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`pool %q: 2/2 allocated`, pa)))
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`pool %q: 1/1 allocated`, pb)))
		Expect(msg).To(ContainSubstring(`"net1"`))
		By("the agent records AllocationFailed on the pod and PoolExhausted on both pools")
		expectPodEvent(ctx, e.ns, "p4", "AllocationFailed", fmt.Sprintf(`pool %q: 2/2 allocated`, pa))
		for _, pool := range []string{pa, pb} {
			e.expectPoolEvent(ctx, pool, "PoolExhausted", fmt.Sprintf("pod %s/p4 found no free address for interface net1 here (candidates: %s, %s)", e.ns, pa, pb))
		}
		Consistently(func(g Gomega) {
			p, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, "p4", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Status.Phase).To(Equal(corev1.PodPending))
		}).WithContext(ctx).WithTimeout(3 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
		// Nothing half-allocated: p4 holds no claim.
		for _, pool := range []string{pa, pb} {
			for _, cl := range e.claims(ctx, Default, pool) {
				Expect(cl.Spec.PodName).NotTo(Equal("p4"))
			}
		}

		// Free an address: p4 gets it (the runtime retries with backoff).
		p2, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, "p2", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		freed, _ := byFamily(Default, statusAddrs(p2, "net1"))
		Expect(f.DeletePodAndWait(ctx, e.ns, "p2")).To(Succeed())
		p4, err := f.WaitPodRunning(ctx, e.ns, "p4")
		Expect(err).NotTo(HaveOccurred())
		v4, _ := byFamily(Default, statusAddrs(p4, "net1"))
		Expect(v4).To(Equal(freed))
	})

	It("pool affinity: an explicitly named pool whose namespace affinity excludes the pod is refused with an event naming the pool and the reason", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-affinity")
		allowed, err := f.CreateNamespace(ctx, "e2e-ipam-affinity-ok")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { deleteNamespaceAndWait(ctx, allowed.Name) }, NodeTimeout(4*time.Minute))
		block := ipamBlockBase + 10
		byName, byLabel := "aff-name-"+e.ns, "aff-label-"+e.ns
		e.pool(ctx, byName, 4, block, 5, func(p *v2beta1.SpiderIPPool) { p.Spec.NamespaceName = []string{allowed.Name} })
		e.pool(ctx, byLabel, 4, block+50, 5, func(p *v2beta1.SpiderIPPool) {
			p.Spec.NamespaceAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": allowed.Name}}
		})
		e.nad(ctx, "underlay", nil)
		_, err = f.CreatePod(ctx, f.NewPod(e.ns, "refused", framework.PodOptions{Annotations: map[string]string{
			annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q,%q]}`, byName, byLabel),
		}}))
		Expect(err).NotTo(HaveOccurred())
		msg := e.sandboxErrors(ctx, "refused")
		GinkgoWriter.Printf("refused events:\n%s\n", msg)
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`pool %q: namespaceName [%s] does not include namespace %q`, byName, allowed.Name, e.ns)))
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`pool %q: namespace affinity does not match namespace %q`, byLabel, e.ns)))
		for _, pool := range []string{byName, byLabel} {
			Expect(e.claims(ctx, Default, pool)).To(BeEmpty())
		}
		p, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, "refused", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(p.Status.Phase).To(Equal(corev1.PodPending))

		// The same pod in the namespace the pools are for is served.
		ok := &ipamEnv{c: e.c, lab: e.lab, ns: allowed.Name}
		_, err = f.CreateNAD(ctx, allowed.Name, "underlay", framework.SpiderpoolMacvlanConfig(allowed.Name+"-underlay", e.lab.UnderlayIf, nil))
		Expect(err).NotTo(HaveOccurred())
		for _, pool := range []string{byName, byLabel} {
			pod := ok.pod(ctx, "served-"+strings.Split(pool, "-")[1], "", map[string]string{
				annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool),
			})
			ok.expectNIC(ctx, pod, "net1", pool, "")
		}
	})

	// Each agent watches the claims of the pools its node may use; a pool
	// that starts admitting a node after the agents started (a node label
	// added, the pool's nodeAffinity edited) must be served there at once.
	It("pool affinity: a pool that admits a node only after the agents started is used there once it does (node label added, then nodeAffinity edited to another node), without a duplicate; the first node still releases its pod's address", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-late-pool")
		n1, n2 := twoNodes(ctx)
		label := "spindle.e2e/late-pool-" + e.ns
		pool := "late-" + e.ns
		e.pool(ctx, pool, 4, ipamBlockBase+19, 4, func(p *v2beta1.SpiderIPPool) {
			p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{label: "yes"}}
		})
		e.nad(ctx, "underlay", nil)
		annotations := map[string]string{annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool)}
		_, err := f.CreatePod(ctx, f.NewPod(e.ns, "first", framework.PodOptions{Node: n1, Annotations: annotations}))
		Expect(err).NotTo(HaveOccurred())
		msg := e.sandboxErrors(ctx, "first")
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`pool %q: node affinity does not match node %q`, pool, n1)))

		// The node gets the label: the pending pod starts with an address
		// of the pool.
		setNodeLabel := func(ctx context.Context, node, value string) {
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, label, value)
			_, err := f.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		setNodeLabel(ctx, n1, `"yes"`)
		DeferCleanup(func(ctx SpecContext) { setNodeLabel(ctx, n1, "null") })
		first, err := f.WaitPodRunning(ctx, e.ns, "first")
		Expect(err).NotTo(HaveOccurred())
		a1, _ := e.expectNIC(ctx, first, "net1", pool, "")

		// The pool's nodeAffinity is edited to admit only the other node:
		// a pod there gets another address of the pool.
		p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool}}
		e.update(ctx, p, func() {
			p.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": n2}}
		})
		second := e.pod(ctx, "second", n2, annotations)
		a2, _ := e.expectNIC(ctx, second, "net1", pool, "")
		Expect(a2).NotTo(Equal(a1), "pods on %s and %s share %s", n1, n2, a1)
		GinkgoWriter.Printf("first on %s: %s, second on %s: %s\n", n1, a1, n2, a2)

		// The first node may no longer allocate from the pool, but its pod's
		// claim is still its own: deleting the pod releases the address.
		Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, "first", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func(g Gomega) {
			claims := e.claims(ctx, g, pool)
			g.Expect(claims).To(HaveLen(1))
			g.Expect(claims[0].Spec.PodName).To(Equal("second"))
		}).WithContext(ctx).WithTimeout(60 * time.Second).WithPolling(time.Second).Should(Succeed())
	})

	It("fixed addresses: Kube-OVN's per-network ip_address and mac_address give net1 exactly that IPv4, IPv6 and MAC inside the pod; pods asking for the held addresses or MAC wait, their events naming the holder, and start once it is gone", func(ctx SpecContext) {
		requireCoordinatorLab(ctx)
		e := newIPAMEnv(ctx, "e2e-ipam-fixed")
		block := ipamBlockBase + 13
		pool4, pool6 := "fixed-v4-"+e.ns, "fixed-v6-"+e.ns
		e.pool(ctx, pool4, 4, block, 10)
		e.pool(ctx, pool6, 6, block, 10)
		// No default pools: only the addresses name the pools. The
		// coordinator in the chain sets the MAC.
		conf, err := json.Marshal(map[string]any{
			"cniVersion": "1.0.0", "name": e.ns + "-underlay",
			"plugins": []any{
				map[string]any{"type": "macvlan", "master": e.lab.UnderlayIf, "mode": "bridge", "ipam": map[string]any{"type": "spiderpool"}},
				map[string]any{"type": "coordinator"},
			},
		})
		Expect(err).NotTo(HaveOccurred())
		_, err = f.CreateNAD(ctx, e.ns, "underlay", string(conf))
		Expect(err).NotTo(HaveOccurred())
		start4, _, err := e.lab.UnderlayRangeV4(block, 100, 10)
		Expect(err).NotTo(HaveOccurred())
		start6, _, err := e.lab.UnderlayRangeV6(block, 100, 10)
		Expect(err).NotTo(HaveOccurred())
		want4, want6 := start4, start6
		for range 5 {
			want4, want6 = want4.Next(), want6.Next()
		}
		const mac = "02:42:0a:10:00:0f"
		ipKey := "underlay." + e.ns + ".ovn.kubernetes.io/ip_address"
		macKey := "underlay." + e.ns + ".ovn.kubernetes.io/mac_address"
		ann := map[string]string{annotNetworks: "underlay", ipKey: want4.String() + "," + want6.String(), macKey: strings.ToUpper(mac)}

		holder := e.pod(ctx, "fixed-a", "", ann)
		v4, v6 := e.expectNIC(ctx, holder, "net1", pool4, pool6)
		Expect(v4).To(Equal(want4))
		Expect(v6).To(Equal(want6))
		Expect(ifaceMAC(ctx, holder, "net1")).To(Equal(mac))
		for _, a := range []netip.Addr{v4, v6} {
			cl := &v2beta1.SpiderIPClaim{}
			Expect(e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(a)}, cl)).To(Succeed())
			Expect(cl.Spec.MAC).To(Equal(mac), "claim of %s", a)
		}

		By("a second pod asking for the same addresses waits")
		_, err = f.CreatePod(ctx, f.NewPod(e.ns, "fixed-b", framework.PodOptions{Annotations: map[string]string{annotNetworks: "underlay", ipKey: ann[ipKey]}}))
		Expect(err).NotTo(HaveOccurred())
		msg := e.sandboxErrors(ctx, "fixed-b")
		GinkgoWriter.Printf("fixed-b events:\n%s\n", msg)
		Expect(msg).To(ContainSubstring(fmt.Sprintf("is held by pod %s/fixed-a", e.ns)))

		By("a third pod asking for the same MAC with another address waits")
		other4 := want4.Next()
		_, err = f.CreatePod(ctx, f.NewPod(e.ns, "fixed-c", framework.PodOptions{Annotations: map[string]string{annotNetworks: "underlay", ipKey: other4.String(), macKey: mac}}))
		Expect(err).NotTo(HaveOccurred())
		msg = e.sandboxErrors(ctx, "fixed-c")
		GinkgoWriter.Printf("fixed-c events:\n%s\n", msg)
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`%s is held by pod %s/fixed-a on interface "net1"`, mac, e.ns)))
		e.expectSp(ctx, pool4, 1, 10)
		e.expectSp(ctx, pool6, 1, 10)

		By("once the holder is gone, both waiting pods start with what they asked for")
		Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, "fixed-a", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
		b, err := f.WaitPodRunning(ctx, e.ns, "fixed-b")
		Expect(err).NotTo(HaveOccurred())
		v4, v6 = e.expectNIC(ctx, b, "net1", pool4, pool6)
		Expect([]netip.Addr{v4, v6}).To(Equal([]netip.Addr{want4, want6}))
		Expect(ifaceMAC(ctx, b, "net1")).NotTo(Equal(mac))
		c, err := f.WaitPodRunning(ctx, e.ns, "fixed-c")
		Expect(err).NotTo(HaveOccurred())
		v4, _ = e.expectNIC(ctx, c, "net1", pool4, "")
		Expect(v4).To(Equal(other4))
		Expect(ifaceMAC(ctx, c, "net1")).To(Equal(mac))
	})

	It("single-family network: a NAD naming only IPv4 default pools gives net1 an IPv4 address on the dual-stack lab, with no pod annotation", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-v4net")
		pool4 := "v4net-" + e.ns
		e.pool(ctx, pool4, 4, ipamBlockBase+18, 4)
		e.nad(ctx, "underlay", map[string]any{"default_ipv4_ippool": []string{pool4}})
		pod := e.pod(ctx, "v4only", "", map[string]string{annotNetworks: "underlay"})
		e.expectNIC(ctx, pod, "net1", pool4, "")
		e.expectSp(ctx, pool4, 1, 4)
	})

	// Both nodes' agents allocate from one small pool at the same moment:
	// every address is handed out exactly once and nothing is refused
	// while addresses are free.
	It("contention: a pool of 24 addresses serves exactly 24 pods created at once on two nodes; the 25th waits", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-full")
		nodes, err := f.ReadyNodes(ctx)
		Expect(err).NotTo(HaveOccurred())
		block := ipamBlockBase + 12
		pool := "full-v4-" + e.ns
		e.pool(ctx, pool, 4, block, 24)
		e.nad(ctx, "underlay", nil)
		ann := map[string]string{annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, pool)}
		for i := 0; i < 24; i++ {
			p := f.NewPod(e.ns, fmt.Sprintf("p%02d", i), framework.PodOptions{Node: nodes[i%len(nodes)], Annotations: ann})
			p.Labels = map[string]string{"app": "full"}
			_, err := f.CreatePod(ctx, p)
			Expect(err).NotTo(HaveOccurred())
		}
		pods := e.workloadPods(ctx, "app=full", 24)
		seen := map[netip.Addr]string{}
		for i := range pods {
			v4, _ := byFamily(Default, statusAddrs(&pods[i], "net1"))
			Expect(seen).NotTo(HaveKey(v4), "%s and %s share %s", seen[v4], pods[i].Name, v4)
			seen[v4] = pods[i].Name
		}
		Expect(seen).To(HaveLen(24))
		e.expectSp(ctx, pool, 24, 24)
		_, err = f.CreatePod(ctx, f.NewPod(e.ns, "extra", framework.PodOptions{Annotations: ann}))
		Expect(err).NotTo(HaveOccurred())
		Expect(e.sandboxErrors(ctx, "extra")).To(ContainSubstring(fmt.Sprintf(`pool %q: 24/24 allocated`, pool)))
	})

	// Churn: ~50 pods created and deleted across the nodes on one pool pair
	// (some deleted mid-ADD, some force-deleted and re-created under the same name),
	// then every record is checked against what the pods really have.
	It("churn: after ~50 pods came and went on one pool, claims, SpiderEndpoints, pod addresses and pool counts all agree, with no duplicates", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-ipam-churn")
		nodes, err := f.ReadyNodes(ctx)
		Expect(err).NotTo(HaveOccurred())
		block := ipamBlockBase + 11
		pool4, pool6 := "churn-v4-"+e.ns, "churn-v6-"+e.ns
		e.pool(ctx, pool4, 4, block, 40)
		e.pool(ctx, pool6, 6, block, 40)
		e.nad(ctx, "underlay", nil)
		ann := map[string]string{annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q],"ipv6":[%q]}`, pool4, pool6)}
		created, next := 0, 0
		create := func(n int) {
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("c%02d", next)
				p := f.NewPod(e.ns, name, framework.PodOptions{Node: nodes[next%len(nodes)], Annotations: ann})
				p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
				_, err := f.CreatePod(ctx, p)
				Expect(err).NotTo(HaveOccurred())
				next++
				created++
			}
		}
		deleteSome := func(names []string) {
			for _, n := range names {
				Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, n, metav1.DeleteOptions{})).To(Succeed())
			}
		}
		live := func() []string {
			list, err := f.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
			Expect(err).NotTo(HaveOccurred())
			var out []string
			for _, p := range list.Items {
				if p.DeletionTimestamp == nil {
					out = append(out, p.Name)
				}
			}
			sort.Strings(out)
			return out
		}
		create(20)
		time.Sleep(3 * time.Second) // let some start, leave others mid-ADD
		l := live()
		deleteSome(l[:10:10])
		create(15)
		time.Sleep(2 * time.Second)
		l = live()
		deleteSome([]string{l[0], l[2], l[4], l[6], l[8], l[10], l[12], l[14]})
		create(15)
		// Force-delete five pods (grace 0: they leave the API before their
		// node tore them down) and re-create them at once under the same
		// names on the other node: the new pods (new UIDs) must not share
		// or inherit the old incarnations' addresses by accident.
		time.Sleep(2 * time.Second)
		l = live()
		for _, name := range l[len(l)-5:] {
			old, err := f.Client.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(f.Client.CoreV1().Pods(e.ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
			node := nodes[0]
			if old.Spec.NodeSelector["kubernetes.io/hostname"] == node {
				node = nodes[len(nodes)-1]
			}
			p := f.NewPod(e.ns, name, framework.PodOptions{Node: node, Annotations: ann})
			p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
			Eventually(func() error {
				_, err := f.Client.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{})
				return err
			}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
			created++
		}
		Expect(created).To(Equal(55))
		// Wait until only the surviving pods exist, all Running.
		want := len(live())
		Eventually(func(g Gomega) {
			list, err := f.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			running := 0
			for _, p := range list.Items {
				if podRunningReady(&p) {
					running++
				}
			}
			g.Expect(len(list.Items)).To(Equal(want), "pods still terminating")
			g.Expect(running).To(Equal(want), "events: %s", e.events(ctx))
		}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
		e.expectConsistent(ctx, want, pool4, pool6)
	})
})

// expectConsistent checks, after churn in the spec's namespace, that its
// want Running pods and the records of pools pool4/pool6 agree, and that no
// address is held twice anywhere in the cluster.
func (e *ipamEnv) expectConsistent(ctx context.Context, want int, pool4, pool6 string) {
	list, err := f.Client.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	Expect(list.Items).To(HaveLen(want))
	pods := map[string]*corev1.Pod{}
	owner := map[netip.Addr]string{}
	perNode := map[string]int{}
	for i := range list.Items {
		p := &list.Items[i]
		pods[p.Name] = p
		perNode[p.Spec.NodeName]++
		// Network-status, the pod's interface, claims and SpiderEndpoint
		// agree for this pod (expectNIC).
		v4, v6 := e.expectNIC(ctx, p, "net1", pool4, pool6)
		for _, a := range []netip.Addr{v4, v6} {
			Expect(owner).NotTo(HaveKey(a), "%s is held by %s and %s", a, owner[a], p.Name)
			owner[a] = p.Name
		}
	}
	GinkgoWriter.Printf("churn: %d running pods per node %v\n", want, perNode)
	// Every claim of the pools belongs to a Running pod of this incarnation:
	// deleted pods left none behind.
	for _, pool := range []string{pool4, pool6} {
		claims := e.claims(ctx, Default, pool)
		Expect(claims).To(HaveLen(want), "claims of %s", pool)
		for _, cl := range claims {
			p, ok := pods[cl.Spec.PodName]
			Expect(ok).To(BeTrue(), "claim %s names pod %s/%s, which is gone", cl.Name, cl.Spec.PodNamespace, cl.Spec.PodName)
			Expect(cl.Spec.PodUID).To(Equal(string(p.UID)), "claim %s is of an earlier pod %s", cl.Name, cl.Spec.PodName)
		}
		// Pool status equals a recount.
		_, err := framework.WaitPoolAllocated(ctx, e.c, pool, int64(want), 10*time.Second)
		Expect(err).NotTo(HaveOccurred())
	}
	// SpiderEndpoints: one per live pod, none for deleted ones.
	Eventually(func(g Gomega) {
		var ses v2beta1.SpiderEndpointList
		g.Expect(e.c.List(ctx, &ses, client.InNamespace(e.ns))).To(Succeed())
		var names []string
		for _, se := range ses.Items {
			names = append(names, se.Name)
			p, ok := pods[se.Name]
			g.Expect(ok).To(BeTrue(), "SpiderEndpoint %s/%s of a deleted pod", se.Namespace, se.Name)
			g.Expect(se.Status.Current.UID).To(Equal(string(p.UID)))
		}
		g.Expect(names).To(HaveLen(want))
	}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())

	// Cluster-wide: every claim's address is held by at most one Running
	// pod, and the pod its claim names reports it.
	var all v2beta1.SpiderIPClaimList
	Expect(e.c.List(ctx, &all)).To(Succeed())
	claimOf := map[netip.Addr]v2beta1.SpiderIPClaim{}
	for _, cl := range all.Items {
		a, err := netip.ParseAddr(cl.Spec.Address)
		Expect(err).NotTo(HaveOccurred())
		Expect(v2beta1.ClaimName(a)).To(Equal(cl.Name))
		claimOf[a] = cl
	}
	allPods, err := f.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	holder := map[netip.Addr]string{}
	for i := range allPods.Items {
		p := &allPods.Items[i]
		if !podRunningReady(p) {
			continue
		}
		st, err := framework.NetworkStatus(p)
		if err != nil {
			continue
		}
		for _, s := range st {
			for _, ip := range s.IPs {
				a, err := netip.ParseAddr(ip)
				if err != nil {
					continue
				}
				cl, ok := claimOf[a]
				if !ok {
					continue // not a spiderpool address (host-local)
				}
				key := p.Namespace + "/" + p.Name + " " + s.Interface
				Expect(holder).NotTo(HaveKey(a), "%s is configured in %s and %s", a, holder[a], key)
				holder[a] = key
				Expect(cl.Spec.PodNamespace+"/"+cl.Spec.PodName).To(Equal(p.Namespace+"/"+p.Name), "%s is on %s but claimed for %s/%s", a, key, cl.Spec.PodNamespace, cl.Spec.PodName)
			}
		}
	}
}

// expectPodEvent waits for an Event with reason on the pod whose message
// contains want.
func expectPodEvent(ctx context.Context, ns, pod, reason, want string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		evs, err := f.PodEvents(ctx, ns, pod, reason)
		g.Expect(err).NotTo(HaveOccurred())
		var msgs []string
		for _, e := range evs {
			msgs = append(msgs, e.Message)
		}
		g.Expect(strings.Join(msgs, "\n")).To(ContainSubstring(want), "%s events of pod %s/%s", reason, ns, pod)
	}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
}

// expectPoolEvent waits for an Event with reason on SpiderIPPool pool
// (recorded in namespace default, as for every cluster-scoped object) whose
// message contains want.
// expectPoolEvent waits for an event of reason on pool whose message holds
// want, found the way `kubectl describe sp` finds it: by the pool's UID.
func (e *ipamEnv) expectPoolEvent(ctx context.Context, pool, reason, want string) {
	GinkgoHelper()
	sp := &v2beta1.SpiderIPPool{}
	Expect(e.c.Get(ctx, client.ObjectKey{Name: pool}, sp)).To(Succeed())
	Eventually(func(g Gomega) {
		evs, err := f.Client.CoreV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=SpiderIPPool,involvedObject.name=" + pool + ",involvedObject.uid=" + string(sp.UID) + ",reason=" + reason})
		g.Expect(err).NotTo(HaveOccurred())
		var msgs []string
		for _, e := range evs.Items {
			msgs = append(msgs, e.Message)
		}
		g.Expect(strings.Join(msgs, "\n")).To(ContainSubstring(want), "%s events of SpiderIPPool %s (UID %s)", reason, pool, sp.UID)
	}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Succeed())
}

// update reads obj again, applies change and writes it, again on a
// conflict: the object's controller writes its status meanwhile.
func (e *ipamEnv) update(ctx context.Context, obj client.Object, change func()) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change()
		return e.c.Update(ctx, obj)
	})).To(Succeed())
}
