package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spindle-net/spindle/ipam/apis/v2beta1"
	"github.com/spindle-net/spindle/ipam/migrate"
	"github.com/spindle-net/spindle/test/e2e/framework"
)

// The import specs use the underlay blocks 230-232: pods there hold
// addresses that only the old IPAM's records know about (the "old" network
// is macvlan with static IPAM: the address comes from the pod's network
// selection, as if an IPAM that is gone had handed it out).
const importBlockBase = 230

// importRun runs `spindle-controller --import=from` (bin/) against the lab.
func importRun(ctx context.Context, from string, extra ...string) binResult {
	GinkgoHelper()
	return runBin(ctx, "spindle-controller", "spindle-controller", append([]string{"--import=" + from, "--kubeconfig", f.Kubeconfig}, extra...)...)
}

// reportOutcomes reads the report's record lines: address -> outcome.
func reportOutcomes(stdout string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(stdout, "\n") {
		fs := strings.Fields(line)
		if len(fs) >= 2 && !strings.HasPrefix(line, "summary:") {
			out[fs[1]] = fs[0]
		}
	}
	return out
}

// oldNetwork creates the NetworkAttachmentDefinition "old": macvlan on the
// underlay whose address is the one the pod's network selection names.
func (e *ipamEnv) oldNetwork(ctx context.Context) {
	GinkgoHelper()
	cfg, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": e.ns + "-old", "type": "macvlan", "master": e.lab.UnderlayIf, "mode": "bridge",
		"capabilities": map[string]bool{"ips": true}, "ipam": map[string]any{"type": "static"},
	})
	_, err := f.CreateNAD(ctx, e.ns, "old", string(cfg))
	Expect(err).NotTo(HaveOccurred())
}

// onOld is the network selection of a pod that holds addr on net1 of the
// old network.
func (e *ipamEnv) onOld(addr netip.Addr) string {
	return fmt.Sprintf(`[{"name":"old","interface":"net1","ips":["%s/%d"]}]`, addr, e.lab.UnderlayV4.Bits())
}

// objectRVs returns name -> resourceVersion of the claims of the pools and
// of the namespace's SpiderEndpoints.
func (e *ipamEnv) objectRVs(ctx context.Context, pools ...string) map[string]string {
	GinkgoHelper()
	out := map[string]string{}
	for _, p := range pools {
		for _, c := range e.claims(ctx, Default, p) {
			out["SpiderIPClaim/"+c.Name] = c.ResourceVersion
		}
	}
	var eps v2beta1.SpiderEndpointList
	Expect(e.c.List(ctx, &eps, client.InNamespace(e.ns))).To(Succeed())
	for _, se := range eps.Items {
		out["SpiderEndpoint/"+se.Name] = se.ResourceVersion
	}
	return out
}

// applyWhereaboutsCRDs installs test/e2e/testdata/whereabouts-crds.yaml
// unless the cluster serves whereabouts already, and removes them (with
// every object of theirs) at the end of the spec.
func applyWhereaboutsCRDs(ctx context.Context, c client.Client) {
	GinkgoHelper()
	wd, err := os.Getwd()
	Expect(err).NotTo(HaveOccurred())
	data, err := os.ReadFile(filepath.Join(framework.RepoRoot(wd), "test", "e2e", "testdata", "whereabouts-crds.yaml"))
	Expect(err).NotTo(HaveOccurred())
	r := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(data)), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := r.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		err := c.Create(ctx, u)
		if apierrors.IsAlreadyExists(err) {
			Fail(fmt.Sprintf("CustomResourceDefinition %s exists already: whereabouts is installed in the cluster under test, or an earlier run left it", u.GetName()))
		}
		Expect(err).NotTo(HaveOccurred())
		crd := u.DeepCopy()
		DeferCleanup(func(ctx SpecContext) {
			Expect(client.IgnoreNotFound(c.Delete(ctx, crd))).To(Succeed())
		})
		Eventually(func(g Gomega) {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(u.GroupVersionKind())
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			g.Expect(fmt.Sprint(conds)).To(ContainSubstring("type:Established"))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	}
}

var _ = Describe("import of another IPAM's allocations", Serial, func() {
	BeforeEach(func() {
		requireCluster()
	})

	It("claims the addresses of live Spiderpool and whereabouts pods: new pods never get them, a StatefulSet replica gets its own back, a second run and a dry run change nothing", func(ctx SpecContext) {
		e := newIPAMEnv(ctx, "e2e-import")
		nodes := e.lab.Nodes
		n1, n2 := nodes[0], nodes[len(nodes)-1]
		e.oldNetwork(ctx)
		e.nad(ctx, "underlay", nil)

		By("a Spiderpool pool of 4 addresses, and pods holding two of them on the old network")
		sp := e.pool(ctx, "e2e-import-sp", 4, importBlockBase, 4)
		start, _, err := e.lab.UnderlayRangeV4(importBlockBase, 100, 4)
		Expect(err).NotTo(HaveOccurred())
		addr := func(i int) netip.Addr {
			a := start
			for range i {
				a = a.Next()
			}
			return a
		}
		bare := e.pod(ctx, "sp-bare", n1, map[string]string{annotNetworks: e.onOld(addr(0))})
		tmpl := f.NewPod(e.ns, "", framework.PodOptions{Node: n2, Networks: e.onOld(addr(1))})
		sts := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "db"},
			Spec: appsv1.StatefulSetSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}, Annotations: tmpl.Annotations},
					Spec:       tmpl.Spec,
				},
			},
		}
		Expect(e.c.Create(ctx, sts)).To(Succeed())
		db0 := e.workloadPods(ctx, "app=db", 1)[0]
		Expect(podAddrs(ctx, bare, "net1")).To(Equal([]netip.Addr{addr(0)}))
		Expect(podAddrs(ctx, &db0, "net1")).To(Equal([]netip.Addr{addr(1)}))

		By("Spiderpool's records: status.allocatedIPs of the pool (and a pod that is gone), SpiderEndpoints of the live pods")
		records := map[string]map[string]string{
			addr(0).String(): {"pod": e.ns + "/sp-bare", "podUid": string(bare.UID)},
			addr(1).String(): {"pod": e.ns + "/db-0", "podUid": string(db0.UID)},
			addr(2).String(): {"pod": e.ns + "/gone-0", "podUid": "3f1c2a9e-0000-4000-8000-000000000001"},
		}
		raw, err := json.Marshal(records)
		Expect(err).NotTo(HaveOccurred())
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := e.c.Get(ctx, client.ObjectKeyFromObject(sp), sp); err != nil {
				return err
			}
			sp.Status.AllocatedIPs = ptr.To(string(raw))
			return e.c.Status().Update(ctx, sp)
		})).To(Succeed())
		for _, p := range []struct {
			pod        *corev1.Pod
			a          netip.Addr
			kind, name string
		}{{bare, addr(0), "Pod", "sp-bare"}, {&db0, addr(1), "StatefulSet", "db"}} {
			// Written whole, status included, as Spiderpool writes them.
			se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: p.pod.Name}}
			se.Status = v2beta1.WorkloadEndpointStatus{
				Current: v2beta1.PodIPAllocation{UID: string(p.pod.UID), Node: p.pod.Spec.NodeName, IPs: []v2beta1.IPAllocationDetail{{
					Interface: "net1", IPv4: ptr.To(fmt.Sprintf("%s/%d", p.a, e.lab.UnderlayV4.Bits())), IPv4Pool: ptr.To(sp.Name),
					IPv4Gateway: ptr.To(e.lab.GatewayV4.String()),
				}}},
				OwnerControllerType: p.kind, OwnerControllerName: p.name,
			}
			Expect(e.c.Create(ctx, se)).To(Succeed())
		}

		e.show(ctx, "get", "pods", "-n", e.ns, "-o", "wide")
		e.show(ctx, "get", "sp", sp.Name, "-o", "jsonpath={.status.allocatedIPs}")
		By("a dry run reports and writes nothing")
		r := importRun(ctx, migrate.FromSpiderpool, "--import-dry-run")
		Expect(r.code).To(Equal(0), r.String())
		Expect(reportOutcomes(r.stdout)).To(Equal(map[string]string{
			addr(0).String(): "would-import", addr(1).String(): "would-import", addr(2).String(): "skipped-pod-gone",
		}), r.String())
		Expect(r.stdout).To(ContainSubstring("2 would be imported (dry run: nothing was written)"))
		Expect(e.claims(ctx, Default, sp.Name)).To(BeEmpty(), "the dry run created claims")

		By("the import claims the live pods' addresses, recording the StatefulSet as owner")
		r = importRun(ctx, migrate.FromSpiderpool)
		Expect(r.code).To(Equal(0), r.String())
		Expect(reportOutcomes(r.stdout)).To(Equal(map[string]string{
			addr(0).String(): "imported", addr(1).String(): "imported", addr(2).String(): "skipped-pod-gone",
		}), r.String())
		Expect(r.stdout).To(ContainSubstring("summary: spiderpool: 3 records, 2 imported, 0 already imported, 1 skipped (pod gone), 0 conflicts, 0 outside every pool;"))
		// The SpiderEndpoints are Spindle's now: written by the import, or by
		// the node's agent that saw the claims first.
		block, _, err := e.lab.UnderlayRangeV4(importBlockBase, 0, 1)
		Expect(err).NotTo(HaveOccurred())
		inBlock := "net1=" + strings.TrimSuffix(block.String(), "0") // 172.30.230. on the default lab
		for _, p := range []*corev1.Pod{bare, &db0} {
			se := &v2beta1.SpiderEndpoint{}
			Eventually(func(g Gomega) {
				g.Expect(e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: p.Name}, se)).To(Succeed())
				g.Expect(se.Labels).To(HaveKeyWithValue("ipam.spidernet.io/node", p.Spec.NodeName))
				g.Expect(se.Status.Current.UID).To(Equal(string(p.UID)))
				g.Expect(se.Status.Current.Addresses).To(HavePrefix(inBlock))
			}).WithContext(ctx).WithTimeout(15 * time.Second).Should(Succeed())
		}
		Expect(e.claims(ctx, Default, sp.Name)).To(ConsistOf(
			HaveField("Spec", claimFor(sp.Name, bare, "net1", addr(0))),
			HaveField("Spec", claimFor(sp.Name, &db0, "net1", addr(1))),
		))
		dbClaim := &v2beta1.SpiderIPClaim{}
		Expect(e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(addr(1))}, dbClaim)).To(Succeed())
		Expect([]string{dbClaim.Spec.OwnerKind, dbClaim.Spec.OwnerName, dbClaim.Spec.Node}).To(Equal([]string{"StatefulSet", "db", db0.Spec.NodeName}))
		e.expectSp(ctx, sp.Name, 2, 4)
		Expect(e.c.Get(ctx, client.ObjectKeyFromObject(sp), sp)).To(Succeed())
		Expect(sp.Status.AllocatedIPs).To(HaveValue(Equal(string(raw))), "Spindle's controller changed Spiderpool's status.allocatedIPs")

		e.show(ctx, "get", "sic", "-o", "wide", "-l", v2beta1.LabelPool+"="+sp.Name)
		e.show(ctx, "get", "sp", sp.Name)
		By("a second run changes nothing")
		before := e.objectRVs(ctx, sp.Name)
		r = importRun(ctx, migrate.FromSpiderpool)
		Expect(r.code).To(Equal(0), r.String())
		Expect(reportOutcomes(r.stdout)).To(Equal(map[string]string{
			addr(0).String(): "already-imported", addr(1).String(): "already-imported", addr(2).String(): "skipped-pod-gone",
		}), r.String())
		Expect(r.stdout).To(ContainSubstring("; 0 SpiderEndpoints written"))
		Expect(e.objectRVs(ctx, sp.Name)).To(Equal(before))

		By("new pods from the pool get only the two addresses nobody holds")
		got := map[netip.Addr]string{}
		for _, name := range []string{"new-a", "new-b"} {
			p := e.pod(ctx, name, n1, map[string]string{annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, sp.Name)})
			addrs := podAddrs(ctx, p, "net1")
			Expect(addrs).To(HaveLen(1))
			Expect(got).NotTo(HaveKey(addrs[0]))
			got[addrs[0]] = name
		}
		Expect(got).To(HaveKey(addr(2)))
		Expect(got).To(HaveKey(addr(3)))

		By("the StatefulSet moves to Spindle's network: its re-created replica gets its old address back")
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := e.c.Get(ctx, client.ObjectKeyFromObject(sts), sts); err != nil {
				return err
			}
			sts.Spec.Template.Annotations = map[string]string{annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, sp.Name)}
			return e.c.Update(ctx, sts)
		})).To(Succeed())
		var next corev1.Pod
		Eventually(func(g Gomega) {
			pods := e.workloadPods(ctx, "app=db", 1)
			g.Expect(pods[0].UID).NotTo(Equal(db0.UID))
			g.Expect(pods[0].Annotations[annotNetworks]).To(Equal("underlay"))
			next = pods[0]
		}).WithContext(ctx).WithTimeout(framework.PodStartTimeout).WithPolling(time.Second).Should(Succeed())
		Expect(ifaceAddrs(ctx, &next, "net1")).To(Equal([]netip.Prefix{netip.PrefixFrom(addr(1), e.lab.UnderlayV4.Bits())}), "net1 inside db-0's network namespace")
		Expect(e.c.Get(ctx, client.ObjectKey{Name: v2beta1.ClaimName(addr(1))}, dbClaim)).To(Succeed())
		Expect(dbClaim.Spec.PodUID).To(Equal(string(next.UID)), "the claim was not re-bound to the new replica")
		e.show(ctx, "get", "pods", "-n", e.ns, "-o", "wide")
		e.show(ctx, "get", "sic", "-o", "wide", "-l", v2beta1.LabelPool+"="+sp.Name)
		out, _, err := requireExec().ExecInPod(ctx, &next, "ip", "-br", "addr", "show", "dev", "net1")
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("in the network namespace of %s: ip -br addr show dev net1\n%s\n", next.Name, out)

		By("whereabouts' records: an IPPool over the underlay (offsets from its first address) and a reservation")
		applyWhereaboutsCRDs(ctx, e.c)
		wbStart, _, err := e.lab.UnderlayRangeV4(importBlockBase+1, 100, 2)
		Expect(err).NotTo(HaveOccurred())
		noPool, _, err := e.lab.UnderlayRangeV4(importBlockBase+2, 100, 1)
		Expect(err).NotTo(HaveOccurred())
		wbBare := e.pod(ctx, "wb-bare", n2, map[string]string{annotNetworks: e.onOld(wbStart)})
		wbOther := e.pod(ctx, "wb-other", n1, map[string]string{annotNetworks: e.onOld(noPool)})
		underlay := e.lab.UnderlayV4.Masked()
		offset := func(a netip.Addr) string {
			b, s := a.As4(), underlay.Addr().As4()
			return strconv.Itoa((int(b[2])-int(s[2]))<<8 | (int(b[3]) - int(s[3])))
		}
		ippool := &unstructured.Unstructured{Object: map[string]any{
			"spec": map[string]any{"range": underlay.String(), "allocations": map[string]any{
				offset(wbStart):        map[string]any{"id": "5e1d0c6a9b7f4e3d2c1b0a99887766554433221100ffeeddccbbaa0099887766", "podref": e.ns + "/wb-bare", "ifname": "net1"},
				offset(wbStart.Next()): map[string]any{"id": "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9", "podref": e.ns + "/wb-gone", "ifname": "net1"},
				offset(noPool):         map[string]any{"id": "99887766554433221100ffeeddccbbaa5e1d0c6a9b7f4e3d2c1b0a9988776655", "podref": e.ns + "/wb-other", "ifname": "net1"},
			}},
		}}
		ippool.SetGroupVersionKind(migrate.WhereaboutsGroupVersion.WithKind("IPPool"))
		ippool.SetNamespace("kube-system")
		ippool.SetName(strings.ReplaceAll(underlay.String(), "/", "-"))
		Expect(e.c.Create(ctx, ippool)).To(Succeed())
		orip := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
			"containerid": "5e1d0c6a9b7f4e3d2c1b0a99887766554433221100ffeeddccbbaa0099887766", "podref": e.ns + "/wb-bare", "ifname": "net1"}}}
		orip.SetGroupVersionKind(migrate.WhereaboutsGroupVersion.WithKind("OverlappingRangeIPReservation"))
		orip.SetNamespace("kube-system")
		orip.SetName(wbStart.String())
		Expect(e.c.Create(ctx, orip)).To(Succeed())

		e.show(ctx, "get", "ippools.whereabouts.cni.cncf.io", "-n", "kube-system", ippool.GetName(), "-o", "yaml")
		By("without SpiderIPPools covering the range the import says so and exits 3")
		r = importRun(ctx, migrate.FromWhereabouts)
		Expect(r.code).To(Equal(3), r.String())
		Expect(reportOutcomes(r.stdout)).To(Equal(map[string]string{
			wbStart.String(): "no-pool", wbStart.Next().String(): "skipped-pod-gone", noPool.String(): "no-pool",
		}), r.String())
		Expect(r.stderr).To(ContainSubstring("the import left addresses of live pods unclaimed: 2 records"))

		By("with a pool for one of the ranges: imported there, the other still reported")
		wb := e.pool(ctx, "e2e-import-wb", 4, importBlockBase+1, 2)
		r = importRun(ctx, migrate.FromWhereabouts)
		Expect(r.code).To(Equal(3), r.String())
		Expect(reportOutcomes(r.stdout)).To(Equal(map[string]string{
			wbStart.String(): "imported", wbStart.Next().String(): "skipped-pod-gone", noPool.String(): "no-pool",
		}), r.String())
		Expect(e.claims(ctx, Default, wb.Name)).To(ConsistOf(HaveField("Spec", claimFor(wb.Name, wbBare, "net1", wbStart))))
		e.show(ctx, "get", "sic", "-o", "wide", "-l", v2beta1.LabelPool+"="+wb.Name)
		p := e.pod(ctx, "new-wb", n1, map[string]string{annotNetworks: "underlay", annotIPPool: fmt.Sprintf(`{"ipv4":[%q]}`, wb.Name)})
		Expect(podAddrs(ctx, p, "net1")).To(Equal([]netip.Addr{wbStart.Next()}))

		By("once the other pod is gone, the import is clean; run twice, nothing changes")
		Expect(f.DeletePodAndWait(ctx, e.ns, wbOther.Name)).To(Succeed())
		before = e.objectRVs(ctx, wb.Name)
		r = importRun(ctx, migrate.FromWhereabouts)
		Expect(r.code).To(Equal(0), r.String())
		Expect(reportOutcomes(r.stdout)).To(Equal(map[string]string{
			wbStart.String(): "already-imported", wbStart.Next().String(): "skipped-pod-gone", noPool.String(): "skipped-pod-gone",
		}), r.String())
		Expect(e.objectRVs(ctx, wb.Name)).To(Equal(before))
	})
})
