package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/inline"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// Inline ranges: NetworkAttachmentDefinitions whose spiderpool ipam object
// carries its own ranges in host-local's, whereabouts' or kube-ipam's form.
// The ranges are outside the lab's underlay and every other spec's
// (10.185-10.188, fd00:187::/120): the pods attach with macvlan on the
// underlay, and only their addresses are checked.

// inlineNAD creates NetworkAttachmentDefinition name with a macvlan
// configuration on the lab underlay whose ipam object is ipam.
func (e *ipamEnv) inlineNAD(ctx context.Context, name, cniVersion string, ipam map[string]any) {
	GinkgoHelper()
	e.inlineNADWith(ctx, name, map[string]any{"cniVersion": cniVersion, "type": "macvlan", "master": e.lab.UnderlayIf, "mode": "bridge"}, ipam)
}

// inlineNADWith creates NetworkAttachmentDefinition name whose
// configuration is conf with ipam as its ipam object.
func (e *ipamEnv) inlineNADWith(ctx context.Context, name string, conf, ipam map[string]any) {
	GinkgoHelper()
	full := map[string]any{"name": e.ns + "-" + name, "ipam": ipam}
	for k, v := range conf {
		full[k] = v
	}
	b, err := json.Marshal(full)
	Expect(err).NotTo(HaveOccurred())
	_, err = f.CreateNAD(ctx, e.ns, name, string(b))
	Expect(err).NotTo(HaveOccurred())
}

// inlinePools waits until spindle-controller created the pools of network
// nad with the given suffixes, records them for the spec's cleanup and
// returns them.
func (e *ipamEnv) inlinePools(ctx context.Context, nad string, suffixes ...string) []*v2beta1.SpiderIPPool {
	GinkgoHelper()
	var out []*v2beta1.SpiderIPPool
	for _, s := range suffixes {
		name := inline.PoolName(e.ns, nad, s)
		e.pools = append(e.pools, name)
		p := &v2beta1.SpiderIPPool{}
		Eventually(func() error { return e.c.Get(ctx, client.ObjectKey{Name: name}, p) }).WithContext(ctx).
			WithTimeout(30*time.Second).WithPolling(250*time.Millisecond).Should(Succeed(), "pool %s of NetworkAttachmentDefinition %s/%s; events: %s", name, e.ns, nad, e.nadEvents(ctx, nad, ""))
		Expect(p.Labels).To(HaveKeyWithValue(v2beta1.LabelInline, "true"))
		Expect(p.Annotations).To(HaveKeyWithValue(v2beta1.AnnoInlineNetwork, e.ns+"/"+nad))
		Expect(p.Spec.MultusName).To(Equal([]string{e.ns + "/" + nad}))
		out = append(out, p)
	}
	return out
}

// nadEvents returns the messages of the events of NetworkAttachmentDefinition
// nad with reason ("" for all).
func (e *ipamEnv) nadEvents(ctx context.Context, nad, reason string) string {
	evs, err := f.Client.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + nad})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, ev := range evs.Items {
		if reason == "" || ev.Reason == reason {
			out = append(out, ev.Reason+": "+ev.Message)
		}
	}
	return strings.Join(out, "\n")
}

// net1Pod creates a pod attached to nad as net1 and waits until it runs.
func (e *ipamEnv) net1Pod(ctx context.Context, name, nad string, annotations map[string]string) *corev1.Pod {
	GinkgoHelper()
	a := map[string]string{annotNetworks: e.ns + "/" + nad}
	for k, v := range annotations {
		a[k] = v
	}
	return e.pod(ctx, name, "", a)
}

// net1DNS returns the dns of net1 in the pod's Multus network-status.
func net1DNS(pod *corev1.Pod) inline.DNS {
	GinkgoHelper()
	st, err := framework.InterfaceStatus(pod, "net1")
	Expect(err).NotTo(HaveOccurred())
	return inline.DNS{Nameservers: st.DNS.Nameservers, Domain: st.DNS.Domain, Search: st.DNS.Search, Options: st.DNS.Options}
}

var _ = Describe("Inline ranges in a NetworkAttachmentDefinition", Ordered, func() {
	BeforeAll(func(ctx SpecContext) {
		requireCluster()
		requireExec()
		c, err := f.SpindleClient()
		Expect(err).NotTo(HaveOccurred())
		requireController(ctx, c)
	})

	// The network is a bridge on each node: macvlan and ipvlan replace the
	// ipam plugin's dns with their own configuration's, bridge keeps it.
	It("host-local ranges: one pool per family, pods get addresses of the ranges with the resolvConf DNS; a deleted network keeps its pools until the pods release their addresses", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-inline-hl")
		nodes, err := f.ReadyNodes(ctx)
		Expect(err).NotTo(HaveOccurred())
		resolv := "/var/lib/cni/" + e.ns + "-resolv.conf"
		for _, n := range nodes {
			_, stderr, err := e.lab.ExecInNode(ctx, n, "sh", "-c", "printf 'nameserver 10.187.0.53\\nnameserver fd00:187::53\\nsearch inline.test svc.cluster.local\\noptions ndots:3\\n' > "+resolv)
			Expect(err).NotTo(HaveOccurred(), stderr)
		}
		DeferCleanup(func(ctx SpecContext) {
			for _, n := range nodes {
				_, _, _ = e.lab.ExecInNode(ctx, n, "rm", "-f", resolv)
				_, _, _ = e.lab.ExecInNode(ctx, n, "ip", "link", "del", "inl187")
			}
		})
		e.inlineNADWith(ctx, "hl", map[string]any{"cniVersion": "1.0.0", "type": "bridge", "bridge": "inl187"}, map[string]any{"type": "spiderpool", "dataDir": "/var/lib/cni/networks",
			"ranges": []any{
				[]any{map[string]any{"subnet": "10.187.0.0/24", "rangeStart": "10.187.0.10", "rangeEnd": "10.187.0.19"}},
				[]any{map[string]any{"subnet": "fd00:187::/120", "rangeStart": "fd00:187::10", "rangeEnd": "fd00:187::19"}},
			},
			"routes":     []any{map[string]any{"dst": "10.184.0.0/16"}},
			"resolvConf": resolv,
		})
		ps := e.inlinePools(ctx, "hl", "v4", "v6")
		v4, v6 := ps[0], ps[1]
		Expect(v4.Spec.Subnet).To(Equal("10.187.0.0/24"))
		Expect(v4.Spec.IPs).To(Equal([]string{"10.187.0.10-10.187.0.19"}))
		Expect(ptr.Deref(v4.Spec.Gateway, "")).To(Equal("10.187.0.1"), "host-local's default gateway is the subnet's first address")
		Expect(v4.Spec.Routes).To(Equal([]v2beta1.Route{{Dst: "10.184.0.0/16", Gw: "10.187.0.1"}}))
		Expect(v6.Spec.Subnet).To(Equal("fd00:187::/120"))
		Expect(v6.Spec.IPs).To(Equal([]string{"fd00:187::10-fd00:187::19"}))

		By("two pods attached to the network")
		for _, name := range []string{"hl-a", "hl-b"} {
			pod := e.net1Pod(ctx, name, "hl", nil)
			e.expectNIC(ctx, pod, "net1", v4.Name, v6.Name)
			out, _, err := requireExec().ExecInPod(ctx, pod, "ip", "route", "show", "10.184.0.0/16")
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(ContainSubstring("via 10.187.0.1 dev net1"), "the range's route inside pod %s", name)
			Expect(net1DNS(pod)).To(Equal(inline.DNS{Nameservers: []string{"10.187.0.53", "fd00:187::53"},
				Search: []string{"inline.test", "svc.cluster.local"}, Options: []string{"ndots:3"}}), "dns of net1 in the network-status of %s", name)
			GinkgoWriter.Printf("network-status of %s:\n%s\n", name, pod.Annotations["k8s.v1.cni.cncf.io/network-status"])
		}
		e.expectSp(ctx, v4.Name, 2, 10)
		e.expectSp(ctx, v6.Name, 2, 10)
		e.show(ctx, "get", "sp", v4.Name, v6.Name)

		By("deleting the network while the pods hold addresses")
		Expect(f.NAD.K8sCniCncfIoV1().NetworkAttachmentDefinitions(e.ns).Delete(ctx, "hl", metav1.DeleteOptions{})).To(Succeed())
		for _, p := range ps {
			Eventually(func(g Gomega) {
				cur := &v2beta1.SpiderIPPool{}
				g.Expect(e.c.Get(ctx, client.ObjectKey{Name: p.Name}, cur)).To(Succeed())
				g.Expect(cur.DeletionTimestamp).NotTo(BeNil(), "pool %s is not being deleted", p.Name)
			}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(250 * time.Millisecond).Should(Succeed())
		}
		Consistently(func(g Gomega) {
			for _, p := range ps {
				g.Expect(e.claims(ctx, g, p.Name)).To(HaveLen(2), "claims of %s", p.Name)
			}
		}).WithContext(ctx).WithTimeout(3 * time.Second).WithPolling(500 * time.Millisecond).Should(Succeed())
		e.show(ctx, "get", "sp", v4.Name, v6.Name, "-o", "custom-columns=NAME:.metadata.name,DELETING-SINCE:.metadata.deletionTimestamp,FINALIZERS:.metadata.finalizers,ALLOCATED-IP-COUNT:.status.allocatedIPCount")
		e.show(ctx, "get", "sic", "-l", v2beta1.LabelPool+"="+v4.Name)

		By("the pods go, and so do the pools")
		for _, name := range []string{"hl-a", "hl-b"} {
			Expect(f.DeletePodAndWait(ctx, e.ns, name)).To(Succeed())
		}
		for _, p := range ps {
			Eventually(func() bool {
				return apierrors.IsNotFound(e.c.Get(ctx, client.ObjectKey{Name: p.Name}, &v2beta1.SpiderIPPool{}))
			}).WithContext(ctx).WithTimeout(60*time.Second).WithPolling(500*time.Millisecond).Should(BeTrue(), "pool %s outlives its addresses", p.Name)
		}
	})

	It("whereabouts range and exclude: only the addresses left by exclude are handed out, foreign keys are ignored; overlapping networks and bad keys are refused with the network and the key named", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-inline-wb")
		e.inlineNAD(ctx, "wb", "1.0.0", map[string]any{"type": "spiderpool",
			"range": "10.186.0.0/28", "exclude": []string{"10.186.0.0/29", "10.186.0.12/32"},
			"etcd_host": "https://etcd:2379", "log_file": "/tmp/whereabouts.log", "log_level": "debug",
			"leader_lease_duration": 1500, "kubernetes": map[string]any{"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
			"datastore": "kubernetes"})
		pool := e.inlinePools(ctx, "wb", "v4")[0]
		Expect(pool.Spec.IPs).To(Equal([]string{"10.186.0.1-10.186.0.14"}))
		Expect(pool.Spec.ExcludeIPs).To(Equal([]string{"10.186.0.0-10.186.0.7", "10.186.0.12"}))

		By("six pods take the six addresses exclude leaves")
		var got []netip.Addr
		for i := range 6 {
			pod := e.net1Pod(ctx, fmt.Sprintf("wb-%d", i), "wb", nil)
			v4, _ := e.expectNIC(ctx, pod, "net1", pool.Name, "")
			got = append(got, v4)
		}
		slices.SortFunc(got, func(a, b netip.Addr) int { return a.Compare(b) })
		var want []netip.Addr
		for _, h := range []string{"8", "9", "10", "11", "13", "14"} {
			want = append(want, netip.MustParseAddr("10.186.0."+h))
		}
		Expect(got).To(Equal(want))
		e.expectSp(ctx, pool.Name, 6, 6)
		e.show(ctx, "get", "sp", pool.Name)

		By("a seventh pod finds the network's pool exhausted")
		_, err := f.CreatePod(ctx, f.NewPod(e.ns, "wb-6", framework.PodOptions{Networks: e.ns + "/wb"}))
		Expect(err).NotTo(HaveOccurred())
		Expect(e.sandboxErrors(ctx, "wb-6")).To(ContainSubstring(pool.Name))

		By("another network over the same range is refused")
		e.inlineNAD(ctx, "wb-overlap", "1.0.0", map[string]any{"type": "spiderpool", "range": "10.186.0.0/28", "range_start": "10.186.0.9"})
		e.pools = append(e.pools, inline.PoolName(e.ns, "wb-overlap", "v4"))
		var msg string
		Eventually(func() string {
			msg = e.nadEvents(ctx, "wb-overlap", "InlinePoolRefused")
			return msg
		}).WithContext(ctx).WithTimeout(30 * time.Second).WithPolling(500 * time.Millisecond).Should(ContainSubstring(
			fmt.Sprintf(`the inline ranges of NetworkAttachmentDefinitions %s/wb-overlap and %s/wb overlap; if both attach to one network, give both the same "sharedNetwork"`, e.ns, e.ns)))
		GinkgoWriter.Printf("event of NetworkAttachmentDefinition wb-overlap: %s\n", msg)

		By("a network with a key no IPAM knows: an event on it and the pod's ADD error name the key")
		e.inlineNAD(ctx, "wb-typo", "1.0.0", map[string]any{"type": "spiderpool", "range": "10.185.9.0/24", "range_begin": "10.185.9.10"})
		want1 := fmt.Sprintf(`NetworkAttachmentDefinition %s/wb-typo: spec.config ipam.range_begin: is not a key of whereabouts range: remove it or correct its spelling`, e.ns)
		Eventually(func() string { return e.nadEvents(ctx, "wb-typo", "InvalidInlineRanges") }).WithContext(ctx).
			WithTimeout(30 * time.Second).WithPolling(500 * time.Millisecond).Should(ContainSubstring(want1))
		_, err = f.CreatePod(ctx, f.NewPod(e.ns, "typo", framework.PodOptions{Networks: e.ns + "/wb-typo"}))
		Expect(err).NotTo(HaveOccurred())
		msg = e.sandboxErrors(ctx, "typo")
		Expect(msg).To(ContainSubstring(fmt.Sprintf(`network "%s-wb-typo" (its NetworkAttachmentDefinition's spec.config): ipam.range_begin: is not a key of whereabouts range`, e.ns)))
		GinkgoWriter.Printf("sandbox error of pod typo: %s\n", msg)
	})

	It("kube-ipam (seed 002) with type spiderpool: pods get addresses of rangeStart-rangeEnd, the fixed range only by kube-ipam.ip", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-inline-ki")
		// The network of seed 002 as its document writes it; only the
		// ipam type and the macvlan master (the lab's underlay) change.
		seed := `{
        "cniVersion":"0.3.1",
        "name": "k8snetwork",
        "type": "macvlan",
        "master": "MASTER",
        "ipam": {
                "name": "kube-subnet",
                "type": "spiderpool",
                "kubeConfig": "/etc/kubernetes/pki/kubectl.kubeconfig",
                "etcdConfig": {
                        "etcdURL": "https://192.168.1.50:2379,https://192.168.1.58:2379,https://192.168.1.63:2379",
                        "etcdCertFile": "/etc/kubernetes/pki/etcd.pem",
                        "etcdKeyFile": "/etc/kubernetes/pki/etcd-key.pem",
                        "etcdTrustedCAFileFile": "/etc/kubernetes/pki/ca.pem"
                },
                "subnet": "10.188.0.0/16",
                "fixedStart": "10.188.0.10",
                "fixedEnd": "10.188.0.255",
                "rangeStart": "10.188.1.0",
                "rangeEnd": "10.188.255.254",
                "gateway": "10.188.0.1",
                "routes": [{
                        "dst": "0.0.0.0/0"
                }],
                "resolvConf": "/etc/resolv.conf"
        }
}`
		_, err := f.CreateNAD(ctx, e.ns, "k8snetwork", strings.ReplaceAll(seed, "MASTER", e.lab.UnderlayIf))
		Expect(err).NotTo(HaveOccurred())
		ps := e.inlinePools(ctx, "k8snetwork", "v4", "fixed-v4")
		everyone, fixed := ps[0], ps[1]
		Expect(everyone.Spec.IPs).To(Equal([]string{"10.188.1.0-10.188.255.254"}))
		Expect(fixed.Spec.IPs).To(Equal([]string{"10.188.0.10-10.188.0.255"}))
		for _, p := range ps {
			Expect(p.Spec.Subnet).To(Equal("10.188.0.0/16"))
			Expect(ptr.Deref(p.Spec.Gateway, "")).To(Equal("10.188.0.1"))
		}

		By("a pod without kube-ipam.ip gets an address of rangeStart-rangeEnd")
		web := e.net1Pod(ctx, "web", "k8snetwork", nil)
		e.expectNIC(ctx, web, "net1", everyone.Name, "")
		route, _, err := requireExec().ExecInPod(ctx, web, "ip", "route", "show", "default", "dev", "net1")
		Expect(err).NotTo(HaveOccurred())
		Expect(route).To(ContainSubstring("via 10.188.0.1"), "routes [{dst: 0.0.0.0/0}] go through the gateway")

		By("the seed's fixed-ip-test pod gets 10.188.0.216 from the fixed range")
		kubeIPAM := map[string]string{"kube-ipam.ip": "10.188.0.216", "kube-ipam.netmask": "255.255.0.0", "kube-ipam.gateway": "10.188.0.1"}
		db := e.net1Pod(ctx, "fixed-ip-test", "k8snetwork", kubeIPAM)
		v4, _ := e.expectNIC(ctx, db, "net1", fixed.Name, "")
		Expect(v4).To(Equal(netip.MustParseAddr("10.188.0.216")))
		e.expectSp(ctx, fixed.Name, 1, 246)
		e.show(ctx, "get", "sp", everyone.Name, fixed.Name)
		e.show(ctx, "get", "sic", "-l", v2beta1.LabelPool+"="+fixed.Name)

		By("a network whose range runs out does not hand out its fixed range")
		e.inlineNAD(ctx, "small", "0.3.1", map[string]any{"type": "spiderpool", "subnet": "10.185.0.0/24",
			"fixedStart": "10.185.0.10", "fixedEnd": "10.185.0.20", "rangeStart": "10.185.0.100", "rangeEnd": "10.185.0.101",
			"gateway": "10.185.0.1", "routes": []any{map[string]any{"dst": "0.0.0.0/0"}}})
		sp := e.inlinePools(ctx, "small", "v4", "fixed-v4")
		var gotSmall []netip.Addr
		for _, name := range []string{"small-a", "small-b"} {
			a, _ := e.expectNIC(ctx, e.net1Pod(ctx, name, "small", nil), "net1", sp[0].Name, "")
			gotSmall = append(gotSmall, a)
		}
		Expect(gotSmall).To(ConsistOf(netip.MustParseAddr("10.185.0.100"), netip.MustParseAddr("10.185.0.101")))
		_, err = f.CreatePod(ctx, f.NewPod(e.ns, "small-c", framework.PodOptions{Networks: e.ns + "/small"}))
		Expect(err).NotTo(HaveOccurred())
		msg := e.sandboxErrors(ctx, "small-c")
		Expect(msg).To(ContainSubstring(sp[0].Name))
		Expect(msg).NotTo(ContainSubstring(sp[1].Name), "the fixed-only pool is no candidate of a pod without kube-ipam.ip")
		e.expectSp(ctx, sp[1].Name, 0, 11)
		pinned := e.net1Pod(ctx, "small-fixed", "small", map[string]string{"kube-ipam.ip": "10.185.0.15", "kube-ipam.netmask": "255.255.255.0", "kube-ipam.gateway": "10.185.0.1"})
		a, _ := e.expectNIC(ctx, pinned, "net1", sp[1].Name, "")
		Expect(a).To(Equal(netip.MustParseAddr("10.185.0.15")))
		e.show(ctx, "get", "sp", sp[0].Name, sp[1].Name)
	})
})
